"""``memhog``: touch ``size`` bytes at ``rate``, hold ``hold_s``, free (exit) at ``free_rate``,
repeat ``repeat`` times with ``gap_s`` between rounds (the test program of the reporting and
hinting cover letters: ``memhog 4g`` / malloc + memset + exit).

Runs on vCPU 0, allocating blocks of ``order`` (0: 4 KiB faults; 9: guest THP). Pages are
freed in allocation order (exit unmaps the address space in order). The held blocks are
linked through the zone's ``next`` array (allocated pages do not use it), so memhog adds no
per-page state. If an allocation fails the guest's OOM killer ends memhog at once: it frees
what it holds (event ``guest_alloc_failure``).
"""

from .._jit import jit
from ..host.backing import record_event
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import (
    EV_GUEST_OOM,
    EV_WORKLOAD_END,
    GF_CREDIT,
    GF_WL_END,
    GF_WL_NEXT,
    GI_HELD_HEAD,
    GI_HELD_TAIL,
    GI_WL_CUR,
    GI_WL_PHASE,
    GI_WL_ROUND,
    WP_FREE_RATE,
    WP_GAP,
    WP_HOLD,
    WP_ORDER,
    WP_RATE,
    WP_REPEAT,
    WP_SIZE,
)
from .common import alloc_touch, pay_debt, release

MH_WAIT = 0
MH_ALLOC = 1
MH_HOLD = 2
MH_FREE = 3
MH_GAP = 4
MH_DONE = 5


@jit
def memhog_step(s, g, z, t, dt, cost, ovh):
    """One tick [t, t + dt) of memhog on guest g; False if the guest was killed."""
    s = borrow_state(s)
    z = borrow_zone(z)
    avail = pay_debt(s, g, dt)
    order = int(s.wp[g, WP_ORDER])
    block = 1 << order
    phase = s.gi[g, GI_WL_PHASE]
    if phase == MH_WAIT or phase == MH_GAP:
        if t < s.gf[g, GF_WL_NEXT]:
            return True
        s.gi[g, GI_WL_PHASE] = phase = MH_ALLOC
        s.gf[g, GF_CREDIT] = 0.0
        s.gi[g, GI_WL_CUR] = 0
    if phase == MH_ALLOC:
        size = int(s.wp[g, WP_SIZE]) // 4096
        credit = s.gf[g, GF_CREDIT] + s.wp[g, WP_RATE] / 4096.0 * avail
        while credit >= block and s.gi[g, GI_WL_CUR] < size:
            pfn = alloc_touch(s, g, z, order, 0, t, cost, ovh)
            if pfn == -2:
                return False
            if pfn == -1:
                record_event(s, t, g, EV_GUEST_OOM, order)
                s.gi[g, GI_WL_PHASE] = MH_FREE
                credit = 0.0
                break
            tail = s.gi[g, GI_HELD_TAIL]
            z.next[pfn] = -1
            if tail >= 0:
                z.next[tail] = pfn
            else:
                s.gi[g, GI_HELD_HEAD] = pfn
            s.gi[g, GI_HELD_TAIL] = pfn
            s.gi[g, GI_WL_CUR] += block
            credit -= block
        s.gf[g, GF_CREDIT] = credit
        if s.gi[g, GI_WL_PHASE] == MH_ALLOC and s.gi[g, GI_WL_CUR] >= size:
            s.gi[g, GI_WL_PHASE] = MH_HOLD
            s.gf[g, GF_WL_NEXT] = t + dt + s.wp[g, WP_HOLD]
        return True
    if phase == MH_HOLD:
        if t < s.gf[g, GF_WL_NEXT]:
            return True
        s.gi[g, GI_WL_PHASE] = phase = MH_FREE
        s.gf[g, GF_CREDIT] = 0.0
    if phase == MH_FREE:
        credit = s.gf[g, GF_CREDIT] + s.wp[g, WP_FREE_RATE] / 4096.0 * avail
        while credit >= block and s.gi[g, GI_HELD_HEAD] >= 0:
            pfn = s.gi[g, GI_HELD_HEAD]
            nxt = z.next[pfn]
            s.gi[g, GI_HELD_HEAD] = nxt
            if nxt < 0:
                s.gi[g, GI_HELD_TAIL] = -1
            release(s, g, z, pfn, order, 0, t)
            credit -= block
        s.gf[g, GF_CREDIT] = credit
        if s.gi[g, GI_HELD_HEAD] < 0:
            s.gi[g, GI_WL_ROUND] += 1
            if s.gi[g, GI_WL_ROUND] < int(s.wp[g, WP_REPEAT]):
                s.gi[g, GI_WL_PHASE] = MH_GAP
                s.gf[g, GF_WL_NEXT] = t + dt + s.wp[g, WP_GAP]
            else:
                s.gi[g, GI_WL_PHASE] = MH_DONE
                s.gf[g, GF_WL_END] = t + dt
                record_event(s, t + dt, g, EV_WORKLOAD_END, 0.0)
    return True
