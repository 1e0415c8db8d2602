"""``trace``: replay a recorded alloc/free stream (format: data/README.md, loader
``fphlib.workloads.trace_file.load_trace``). Event times are µs after the workload start,
divided by ``speed``; ``slot`` names a held block (the pool maps slots to pfns); an event runs
on vCPU ``slot % vcpus``. A failed allocation leaves its slot empty and its free is skipped.
"""

from .._jit import jit
from ..guest.mm import block_order
from ..host.backing import record_event
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import (
    EV_WORKLOAD_END,
    GF_WL_END,
    GF_WL_START,
    GI_POOL_OFF,
    GI_TR_N,
    GI_TR_OFF,
    GI_TR_POS,
    GI_WL_PHASE,
    PI_VCPUS,
    WP_SPEED,
)
from .common import alloc_touch, pay_debt, release

TR_RUN = 0
TR_DONE = 1


@jit
def trace_step(s, g, z, t, dt, cost, ovh):
    """Replay the events due before t + dt; False if the guest was killed."""
    s = borrow_state(s)
    z = borrow_zone(z)
    pay_debt(s, g, dt)
    if s.gi[g, GI_WL_PHASE] == TR_DONE:
        return True
    start = s.gf[g, GF_WL_START]
    scale = 1e-6 / s.wp[g, WP_SPEED]
    off = s.gi[g, GI_TR_OFF]
    n = s.gi[g, GI_TR_N]
    pool = s.gi[g, GI_POOL_OFF]
    vcpus = s.pi[PI_VCPUS]
    pos = s.gi[g, GI_TR_POS]
    while pos < n and start + s.tr_t[off + pos] * scale < t + dt:
        i = off + pos
        slot = s.tr_slot[i]
        cpu = slot % vcpus
        if s.tr_kind[i] == 0:
            pfn = alloc_touch(s, g, z, s.tr_order[i], cpu, t, cost, ovh)
            if pfn == -2:
                return False
            s.pool[pool + slot] = pfn if pfn >= 0 else -1
        else:
            pfn = s.pool[pool + slot]
            if pfn >= 0:
                release(s, g, z, pfn, block_order(z, pfn), cpu, t)
                s.pool[pool + slot] = -1
        pos += 1
    s.gi[g, GI_TR_POS] = pos
    if pos >= n:
        s.gi[g, GI_WL_PHASE] = TR_DONE
        s.gf[g, GF_WL_END] = t + dt
        record_event(s, t + dt, g, EV_WORKLOAD_END, 0.0)
    return True
