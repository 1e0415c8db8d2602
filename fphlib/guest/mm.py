"""Guest page allocation and freeing as the workloads see them (``alloc_pages``/``__free_pages``).

Order 0 goes through the vCPU's pcp list, higher orders straight to the buddy under
zone->lock. A failed allocation first drains every pcp list (``drain_all_pages`` in the
slow path), then asks the mechanism to give memory back (its ``on_alloc_fail`` hook: the
balloon's OOM notifier deflates 256 pages) and retries while it frees some; otherwise it
fails (the guest would OOM-kill the task). Every block freed into the buddy reaches the
mechanism's ``on_free`` hook with its merged pfn and order (:func:`notify_free`); every block
the guest frees reaches its ``on_free_page`` first, as freed and with the vCPU
(``arch_free_page``, :func:`fphlib.guest.pcp.free_pages_prepare`).

A guest with reclaim on (``GI.MM_ON``: page cache, slab or guest swap; fphlib.guest.reclaim)
has the kernel's zone watermarks: the fast path (``workloads.common.alloc_touch``) refuses to
go below the low watermark and comes here; the slow path wakes kswapd, allows allocations down
to the min watermark (``ALLOC_WMARK_MIN``) and below it reclaims directly
(``__alloc_pages_direct_reclaim``, at least ``SWAP_CLUSTER_MAX`` pages a pass) while reclaim
makes progress, before the pcp drain and the mechanism's turn. A guest without reclaim keeps the
older model: no watermarks, an allocation succeeds while a block of the order exists.

Simplifications: no compaction (a high-order allocation that finds no block reclaims until
nothing is left to reclaim), no ``should_reclaim_retry`` back-off, no guest OOM killer (the
allocation fails and the workload handles it).
"""

from .._jit import borrowed, jit
from ..state.borrow import borrow_state, borrow_zone
from ..state.hooks import guest_reclaim, mech_on_alloc_fail
from ..state.layout import GF, GI
from ..state.zone import ALLOC_BASE
from .buddy import free_one_page, nr_free_pages, rmqueue_smallest
from .pcp import drain_all_pages, free_pages_prepare, notify_free, pcp_alloc, pcp_free

SWAP_CLUSTER_MAX = 32  # include/linux/swap.h: pages a direct reclaim pass aims for


@jit(inline="always")  # one call site (the loop below): no compile unit of its own
def _try_alloc(s, g, z, order, cpu):
    s = borrow_state(s)
    z = borrow_zone(z)
    if order == 0:
        return pcp_alloc(s, g, z, cpu)
    pfn = rmqueue_smallest(z, order)
    s.gi[g, GI.LOCK_OPS] += 1
    return pfn


@jit
def alloc_pages(s, g, z, order, cpu, t, cost):
    """Allocate an ``order`` block for the workload; return its pfn or -1."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    mm_on = s.gi[g, GI.MM_ON] != 0
    n = 1 << order
    if mm_on and nr_free_pages(z) - n < s.gi[g, GI.LOW_WMARK]:
        s.gi[g, GI.KSWAPD] = 1  # wake_all_kswapds: it runs at the end of this tick
    attempt = 0
    while True:
        short = s.gi[g, GI.MIN_WMARK] + n - nr_free_pages(z) if mm_on else 0
        pfn = _try_alloc(s, g, z, order, cpu) if short <= 0 else -1
        if pfn >= 0:
            return pfn
        if mm_on:  # __alloc_pages_direct_reclaim, while it makes progress
            if guest_reclaim(s, g, z, max(short, SWAP_CLUSTER_MAX), 1, t, cost) > 0:
                continue
        if attempt > 0:  # after draining: the mechanism's turn, while it frees some
            freed, stall = mech_on_alloc_fail(s, g, z, t, cost)
            if freed == 0:
                return pfn
            s.gf[g, GF.DEBT] += stall
            s.gf[g, GF.STALL] += stall
        drain_all_pages(s, g, z, t)
        attempt += 1


@jit(inline="always")
def free_block(s, g, z, pfn, order, cpu, t):
    """The workload frees a block it owns: its data is no longer needed."""
    free_pages_prepare(s, g, z, pfn, order, cpu, t)
    if order == 0:
        pcp_free(s, g, z, cpu, pfn, t)
    else:
        final = free_one_page(z, pfn, order, False)
        s.gi[g, GI.LOCK_OPS] += 1
        notify_free(s, g, z, pfn, final, t)


@jit(inline="always")
def block_order(z, pfn):
    """Order of an allocated head page."""
    return z.state[pfn] - ALLOC_BASE
