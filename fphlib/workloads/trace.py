"""``trace``: replay a recorded alloc/free stream (format: data/README.md, loader
``fphlib.workloads.trace_file.load_trace``). Event times are µs after the workload start,
divided by ``speed``; ``slot`` names a held block (the pool maps slots to pfns); an event runs
on vCPU ``slot % vcpus``. A failed allocation leaves its slot empty and its free is skipped.
"""

import numpy as np

from .._jit import borrowed, jit
from ..bounds import MAX_SPEED, MIN_SPEED
from ..guest.mm import block_order
from ..host.backing import record_event
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import EV_WORKLOAD_END, GF, GI, PI, PrivateState, private_columns
from ..state.params import Param
from . import Setup
from .common import alloc_touch, pay_debt, release
from .trace_file import load_trace

NAME = "trace"
PARAMS = {
    "path": Param("path", None, help="a path to a trace file (data/README.md)"),
    "speed": Param("float", 1.0, MIN_SPEED, MAX_SPEED, "", "time scale: 2.0 replays twice as "
                   "fast"),
}
(TR_SPEED,) = private_columns("SPEED")


def check_params(params):
    """A trace needs its file."""
    if params.get("path") is None:
        raise ValueError("workload_params['path']: None is not allowed; workload 'trace' "
                         "needs workload_params={'path': ...}")


def _init(params, n_pages, vcpus, ints, floats):
    floats[TR_SPEED] = params["speed"]


STATE = PrivateState(floats=("SPEED",), init=_init)


def build(params, n_pages, rng):
    """Load the trace (slots below the guest's pages bound the pool)."""
    tr = load_trace(params["path"], n_pages=n_pages)
    arrays = (np.ascontiguousarray(tr.t_us, np.int64), np.ascontiguousarray(tr.kind, np.int8),
              np.ascontiguousarray(tr.order, np.int8), np.ascontiguousarray(tr.slot, np.int32))
    pool = int(arrays[3].max()) + 1 if len(arrays[3]) else 0
    return Setup(pool=pool, trace=arrays)

TR_RUN = 0
TR_DONE = 1


@jit
def step(s, g, z, t, dt, cost, ovh):
    """Replay the events due before t + dt; False if the guest was killed."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    pay_debt(s, g, dt)
    if s.gi[g, GI.WL_PHASE] == TR_DONE:
        return True
    start = s.gf[g, GF.WL_START]
    scale = 1e-6 / s.wl_f[g, TR_SPEED]
    off = s.gi[g, GI.TR_OFF]
    n = s.gi[g, GI.TR_N]
    pool = s.gi[g, GI.POOL_OFF]
    vcpus = s.pi[PI.VCPUS]
    pos = s.gi[g, GI.TR_POS]
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
    s.gi[g, GI.TR_POS] = pos
    if pos >= n:
        s.gi[g, GI.WL_PHASE] = TR_DONE
        s.gf[g, GF.WL_END] = t + dt
        record_event(s, t + dt, g, EV_WORKLOAD_END, 0.0)
    return True
