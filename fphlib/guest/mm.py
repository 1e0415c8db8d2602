"""Guest page allocation and freeing as the workloads see them (``alloc_pages``/``__free_pages``).

Order 0 goes through the vCPU's pcp list, higher orders straight to the buddy under
zone->lock. A failed allocation first drains every pcp list (``drain_all_pages`` in the
slow path), then asks the mechanism to give memory back (its ``on_alloc_fail`` hook: the
balloon's OOM notifier deflates 256 pages) and retries while it frees some; otherwise it
fails (the guest would OOM-kill the task). Every block freed into the buddy reaches the
mechanism's ``on_free`` hook with its merged pfn and order (:func:`notify_free`).

Simplification: no guest watermarks, kswapd or direct reclaim (the guest has no page cache to
reclaim); an allocation succeeds while a block of the order exists.
"""

from .._jit import jit
from ..state.borrow import borrow_state, borrow_zone
from ..state.hooks import mech_on_alloc_fail
from ..state.layout import GF_DEBT, GF_STALL, GI_LOCK_OPS
from .buddy import ALLOC_BASE, PG_DATA, free_one_page, rmqueue_smallest
from .pcp import drain_all_pages, notify_free, pcp_alloc, pcp_free

NOT_DATA = ~PG_DATA


@jit(inline="always")  # one call site (the loop below): no compile unit of its own
def _try_alloc(s, g, z, order, cpu):
    s = borrow_state(s)
    z = borrow_zone(z)
    if order == 0:
        return pcp_alloc(s, g, z, cpu)
    pfn = rmqueue_smallest(z, order)
    s.gi[g, GI_LOCK_OPS] += 1
    return pfn


@jit
def alloc_pages(s, g, z, order, cpu, t, cost):
    """Allocate an ``order`` block for the workload; return its pfn or -1."""
    s = borrow_state(s)
    z = borrow_zone(z)
    attempt = 0
    while True:
        pfn = _try_alloc(s, g, z, order, cpu)
        if pfn >= 0:
            return pfn
        if attempt > 0:  # after draining: the mechanism's turn, while it frees some
            freed, stall = mech_on_alloc_fail(s, g, z, t, cost)
            if freed == 0:
                return pfn
            s.gf[g, GF_DEBT] += stall
            s.gf[g, GF_STALL] += stall
        drain_all_pages(s, g, z, t)
        attempt += 1


@jit(inline="always")
def free_block(s, g, z, pfn, order, cpu, t):
    """The workload frees a block it owns: its data is no longer needed."""
    for p in range(pfn, pfn + (1 << order)):
        z.flags[p] &= NOT_DATA
    if order == 0:
        pcp_free(s, g, z, cpu, pfn, t)
    else:
        final = free_one_page(z, pfn, order, False)
        s.gi[g, GI_LOCK_OPS] += 1
        notify_free(s, g, z, pfn, final, t)


@jit(inline="always")
def block_order(z, pfn):
    """Order of an allocated head page."""
    return z.state[pfn] - ALLOC_BASE
