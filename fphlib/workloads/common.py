"""Pieces shared by the workload kernels: boot footprint, stall debt, alloc + touch."""

from .._jit import jit
from ..guest.buddy import PG_BACKED, rmqueue_smallest
from ..guest.mm import free_block
from ..guest.pcp import pcp_alloc
from ..host.backing import WRITTEN, touch
from ..state.borrow import borrow_state, borrow_zone
from ..state.hooks import guest_alloc_slowpath
from ..state.layout import (
    GF_DEBT,
    GI_ALLOC_FAIL,
    GI_BOOT,
    GI_EVENTS,
    GI_LOCK_OPS,
    GI_USED,
    WP_BOOT,
)


@jit(inline="always")
def pay_debt(s, g, dt):
    """Workload time left in this tick after paying earlier stalls."""
    debt = s.gf[g, GF_DEBT]
    if debt >= dt:
        s.gf[g, GF_DEBT] = debt - dt
        return 0.0
    s.gf[g, GF_DEBT] = 0.0
    return dt - debt


@jit(inline="always")
def alloc_touch(s, g, z, order, cpu, t, cost, ovh):
    """Allocate and write a block. Returns pfn, -1 (allocation failed) or -2 (guest killed).

    Inlined into each workload: the common case (a pcp or buddy hit on backed memory) makes
    no function call; the slow paths (refill failure, first touch, swap) are calls.
    """
    s.gi[g, GI_EVENTS] += 1
    if order == 0:
        pfn = pcp_alloc(s, g, z, cpu)
    else:
        pfn = rmqueue_smallest(z, order)
        s.gi[g, GI_LOCK_OPS] += 1
    if pfn < 0:
        pfn = guest_alloc_slowpath(s, g, z, order, cpu, t, cost)  # mm.alloc_pages
        if pfn < 0:
            s.gi[g, GI_ALLOC_FAIL] += 1
            return -1
    n = 1 << order
    s.gi[g, GI_USED] += n  # allocated now, even if the host kills the guest while touching
    backed = True
    for p in range(pfn, pfn + n):
        if not z.flags[p] & PG_BACKED:
            backed = False
            break
    if backed:
        for p in range(pfn, pfn + n):
            z.flags[p] |= WRITTEN
    elif touch(s, g, z, pfn, n, t, cost, ovh) < 0.0:
        return -2
    return pfn


@jit(inline="always")
def release(s, g, z, pfn, order, cpu, t):
    """Free a block the workload owned."""
    s.gi[g, GI_EVENTS] += 1
    s.gi[g, GI_USED] -= 1 << order
    free_block(s, g, z, pfn, order, cpu, t)


@jit
def boot(s, g, z, t, cost, ovh):
    """Allocate and touch the boot footprint (kernel, init, daemons); never freed.

    Returns False if the host killed the guest while it booted.
    """
    s = borrow_state(s)
    z = borrow_zone(z)
    n = int(s.wp[g, WP_BOOT]) // 4096
    for _ in range(n):
        pfn = alloc_touch(s, g, z, 0, 0, t, cost, ovh)
        if pfn == -2:
            return False
        if pfn == -1:
            break
        s.gi[g, GI_BOOT] += 1
    return True
