"""Pieces shared by the workload kernels: boot footprint, stall debt, alloc + touch, page-cache
and slab pages."""

from .._jit import borrowed, jit
from ..guest.buddy import nr_free_pages, rmqueue_smallest
from ..guest.mm import free_block
from ..guest.pcp import pcp_alloc
from ..guest.reclaim import SLAB_PC_PAGES, lru_add, slab_push
from ..host.backing import BACKED_OR_LAZY, WRITTEN, touch
from ..state.borrow import borrow_state, borrow_zone, zone_of
from ..state.hooks import guest_alloc_slowpath
from ..state.layout import GF, GI, WP
from ..state.zone import PG_BACKED
from ..units import PAGE_SIZE


@jit(inline="always")
def pay_debt(s, g, dt):
    """Workload time left in this tick after paying earlier stalls."""
    debt = s.gf[g, GF.DEBT]
    if debt >= dt:
        s.gf[g, GF.DEBT] = debt - dt
        return 0.0
    s.gf[g, GF.DEBT] = 0.0
    return dt - debt


@jit(inline="always")
def _below_low(s, g, z, n):
    """``!zone_watermark_ok(low)`` after taking n pages; the free top-order blocks alone
    usually clear it (one load instead of summing every order)."""
    low = s.gi[g, GI.LOW_WMARK] + n
    top = z.nr_free.shape[0] - 1
    if z.nr_free[top] << top >= low:
        return False
    return nr_free_pages(z) < low


@jit(inline="always")
def alloc_touch(s, g, z, order, cpu, t, cost, ovh):
    """Allocate and write a block. Returns pfn, -1 (allocation failed) or -2 (guest killed).

    Inlined into each workload: the common case (a pcp or buddy hit on backed memory) makes
    no function call; the slow paths (refill failure, first touch, swap) are calls.
    """
    s.gi[g, GI.EVENTS] += 1
    if s.gi[g, GI.MM_ON] and _below_low(s, g, z, 1 << order):
        pfn = -1  # below the low watermark: the slow path (wakes kswapd, may reclaim)
    elif order == 0:
        pfn = pcp_alloc(s, g, z, cpu)
    else:
        pfn = rmqueue_smallest(z, order)
        s.gi[g, GI.LOCK_OPS] += 1
    if pfn < 0:
        pfn = guest_alloc_slowpath(s, g, z, order, cpu, t, cost)  # mm.alloc_pages
        if pfn < 0:
            s.gi[g, GI.ALLOC_FAIL] += 1
            return -1
    n = 1 << order
    s.gi[g, GI.USED] += n  # allocated now, even if the host kills the guest while touching
    if write_block(s, g, z, pfn, n, t, cost, ovh) < 0.0:
        return -2
    return pfn


@jit(inline="always")
def write_block(s, g, z, pfn, n, t, cost, ovh):
    """The workload writes pages [pfn, pfn + n): pages still backed are just written, else the
    host backs them first (``touch``: a fault, refault or swap-in; or a lazily-freed page
    the write keeps). Returns the stall seconds, < 0 if the host OOM-killed the guest
    meanwhile."""
    for p in range(pfn, pfn + n):
        if (z.flags[p] & BACKED_OR_LAZY) != PG_BACKED:
            return touch(s, g, z, pfn, n, t, cost, ovh)
    for p in range(pfn, pfn + n):
        z.flags[p] |= WRITTEN
    return 0.0


@jit(inline="always")
def release(s, g, z, pfn, order, cpu, t):
    """Free a block the workload owned."""
    s.gi[g, GI.EVENTS] += 1
    s.gi[g, GI.USED] -= 1 << order
    free_block(s, g, z, pfn, order, cpu, t)


# Not inlined: boot and add_file_page would each hold copies of the allocation path. Called
# once per page, so it takes the state by reference and guest g's zone (zone_of) is built here:
# numba passes a tuple flattened, and copying the state (~400 words) and the zone (~90) to the
# stack for each call was most of the boot loop's time.
@jit(state_by_ref=True)
def alloc_kernel_page(s, g, cpu, t, cost, ovh, kind):
    """Allocate and write one order-0 page for the kernel: ``kind`` 0 slab, 1 clean page
    cache, 2 dirty page cache. Returns pfn, -1 (no memory) or -2 (guest killed)."""
    s = borrow_state(s)
    cost = borrowed(cost)
    z = zone_of(s, g)
    pfn = alloc_touch(s, g, z, 0, cpu, t, cost, ovh)
    if pfn >= 0:
        s.gi[g, GI.USED] -= 1  # not the workload's: counted as page cache or slab
        if kind == 0:
            slab_push(s, g, z, pfn)
        else:
            lru_add(s, g, z, pfn, kind == 2)
    return pfn


@jit(inline="always")
def add_file_page(s, g, cpu, t, cost, ovh, dirty):
    """A page read or written through the page cache, with the slab that comes with file
    activity (one page per ``SLAB_PC_PAGES``). Returns pfn, -1 or -2 as ``alloc_touch``."""
    pfn = alloc_kernel_page(s, g, cpu, t, cost, ovh, 2 if dirty else 1)
    if pfn < 0:
        return pfn
    s.gi[g, GI.SLAB_DEBT] += 1
    if s.gi[g, GI.SLAB_DEBT] >= SLAB_PC_PAGES:
        s.gi[g, GI.SLAB_DEBT] -= SLAB_PC_PAGES
        if alloc_kernel_page(s, g, cpu, t, cost, ovh, 0) == -2:
            return -2
    return pfn


@jit
def boot(s, g, z, t, cost, ovh):
    """Allocate and touch the boot footprint (kernel and slab, page cache, anonymous memory
    of init and daemons); the anonymous part is never freed.

    Returns False if the host killed the guest while it booted.
    """
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    n_slab = int(s.wp[g, WP.BOOT_SLAB]) // PAGE_SIZE
    n_cache = int(s.wp[g, WP.BOOT_CACHE]) // PAGE_SIZE
    n = int(s.wp[g, WP.BOOT]) // PAGE_SIZE - n_slab - n_cache
    for i in range(n_slab + n_cache):
        pfn = alloc_kernel_page(s, g, 0, t, cost, ovh, 0 if i < n_slab else 1)
        if pfn == -2:
            return False
        if pfn == -1:
            break
    for _ in range(n):
        pfn = alloc_touch(s, g, z, 0, 0, t, cost, ovh)
        if pfn == -2:
            return False
        if pfn == -1:
            break
        s.gi[g, GI.BOOT] += 1
    return True
