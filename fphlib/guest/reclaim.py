"""Guest memory beyond anonymous pages: page cache, kernel slab, the guest's own reclaim
(kswapd and direct reclaim) and guest swap (docs/references.md §1; mm/vmscan.c,
mm/page_alloc.c of v5.10).

- **Page cache**: order-0 file pages, allocated blocks as far as the buddy, the free-page
  trackers and every hinting mechanism can see (``Zone.state`` ``PC_CLEAN``/``PC_DIRTY``),
  exactly as in the kernel: page cache is not free, so it is never hinted or reported. They sit
  on one LRU list linked through the zone's ``next``/``prev`` (as ``folio->lru``, with
  :mod:`fphlib.state.lists`), oldest at ``GI.PC_HEAD``. They hold data the guest needs
  (``PG_DATA``): a host discard of one would be a lost write.
- **Slab**: kernel pages (dentries, inodes, buffer heads) that grow with file activity: one
  slab page per ``SLAB_PC_PAGES`` page-cache pages read or written, given back at the same
  ratio when page cache is reclaimed (``shrink_slab`` scans slab in proportion to the LRU
  pages scanned), never below the boot slab. A list of allocated pages, newest first.
- **Watermarks** (``GI_MIN/LOW/HIGH_WMARK``, ``__setup_per_zone_wmarks``): an allocation that
  would leave fewer free pages than the low watermark takes the slow path
  (``get_page_from_freelist`` with ``ALLOC_WMARK_LOW`` fails), which wakes kswapd
  (``wake_all_kswapds``) and retries against the min watermark; below min it reclaims
  directly (``__alloc_pages_direct_reclaim``, ``SWAP_CLUSTER_MAX`` pages at a time) and the
  workload waits for it. kswapd (``balance_pgdat``) reclaims until the high watermark is met,
  then sleeps.
- **Reclaim order** (``shrink_node``): page cache first, oldest first; clean pages are dropped,
  dirty ones are written back (``pageout``) as the scan passes them and dropped once clean, so
  clean pages go before dirty ones and each in LRU order. Then anonymous pages to the guest's
  swap (``SimConfig.guest_swap``; none by default): the workload's held blocks (memhog's
  mapping, ``GI.HELD_HEAD``), oldest first; a swapped block's frame goes back to the buddy and
  its data lives in the guest's swap (``GI.GSWAP``) until the workload touches it again.

Costs: ``guest_reclaim`` per dropped page, ``guest_writeback`` per dirty page written,
``guest_swap_out`` per page swapped out (``fphlib.costs``); in direct reclaim they are a
stall of the allocating workload (``guest_reclaim_stall_s``), in kswapd guest CPU
(``kswapd_cpu_s``).

Simplifications:

- one LRU list for the page cache (no active/inactive split, no referenced bit, no
  workingset refault detection): the oldest page goes first;
- no flusher threads (``dirty_expire_centisecs``, ``dirty_background_ratio``): a dirty page
  stays dirty until reclaim writes it back; writeback completes at once (its time is the cost);
- kswapd does its whole balancing within the tick it wakes in;
- slab is one unreclaimable-looking pool that shrinks only together with the page cache
  (no SReclaimable/SUnreclaim split, no per-cache shrinkers);
- only the workload's held list (memhog) is anonymous memory reclaim can swap out; the boot
  footprint's anonymous pages and churn/trace pools stay resident; a guest THP goes to swap
  whole (``THP_SWAP``);
- reclaimed pages go straight back to the buddy (not through a pcp list);
- page-cache pages are never read again once cached (streaming I/O: no cache hits).
"""

from .._jit import borrowed, jit
from ..costs import C_GUEST_RECLAIM, C_GUEST_SWAP_OUT, C_GUEST_WRITEBACK
from ..state.borrow import borrow_state, borrow_zone
from ..state.hooks import guest_reclaim as hook_reclaim
from ..state.layout import GF, GI, WP
from ..state.lists import list_add, list_add_tail, list_del
from ..state.zone import ALLOC_BASE, PC_CLEAN, PC_DIRTY
from ..units import PAGE_SIZE
from .buddy import free_one_page, nr_free_pages
from .pcp import free_pages_prepare, notify_free

# Slab pages per page-cache page: [assumption] one dentry (192 B) + one ext4 inode (~1.1 KiB)
# per file, files of 64 KiB (16 pages) on average: ~1 KiB of slab per 16 file pages.
SLAB_PC_PAGES = 64

@jit  # not inlined: three call sites in shrink_node, each a copy of the buddy's free path
def free_to_buddy(s, g, z, pfn, order, t):
    """Give a reclaimed block back to the buddy (its data now lives elsewhere or nowhere)."""
    s = borrow_state(s)
    z = borrow_zone(z)
    free_pages_prepare(s, g, z, pfn, order, 0, t)  # reclaim frees on vCPU 0
    final = free_one_page(z, pfn, order, False)
    s.gi[g, GI.LOCK_OPS] += 1
    notify_free(s, g, z, pfn, final, t)


@jit(inline="always")
def lru_add(s, g, z, pfn, dirty):
    """``folio_add_lru`` of a new page-cache page (allocated, written) at the LRU's young end."""
    z.state[pfn] = PC_DIRTY if dirty else PC_CLEAN
    list_add_tail(z.next, z.prev, s.gi, (g, GI.PC_HEAD), s.gi, (g, GI.PC_TAIL), pfn)
    s.gi[g, GI.PC] += 1
    if dirty:
        s.gi[g, GI.PC_DIRTY] += 1


@jit(inline="always")
def slab_push(s, g, z, pfn):
    """A new slab page (allocated, written)."""
    list_add(z.next, z.prev, s.gi, (g, GI.SLAB_HEAD), s.gi, (g, GI.SLAB_TAIL), pfn)
    s.gi[g, GI.SLAB] += 1


@jit(inline="always")
def _slab_shrink(s, g, z, t):
    """``shrink_slab`` in proportion: one slab page per SLAB_PC_PAGES page-cache pages
    reclaimed, never below the boot slab."""
    debt = s.gi[g, GI.SLAB_DEBT] - 1
    freed = 0
    if debt <= -SLAB_PC_PAGES:
        debt += SLAB_PC_PAGES
        if s.gi[g, GI.SLAB] > int(s.wp[g, WP.BOOT_SLAB]) // PAGE_SIZE:
            pfn = s.gi[g, GI.SLAB_HEAD]
            list_del(z.next, z.prev, s.gi, (g, GI.SLAB_HEAD), s.gi, (g, GI.SLAB_TAIL), pfn)
            s.gi[g, GI.SLAB] -= 1
            free_to_buddy(s, g, z, pfn, 0, t)
            freed = 1
    s.gi[g, GI.SLAB_DEBT] = debt
    return freed


@jit
def shrink_node(s, g, z, want, t, cost):
    """Reclaim up to ``want`` pages of guest g; return (pages freed, seconds spent).

    Page cache first (clean pages dropped, dirty pages written back as the scan passes them,
    then dropped on the second pass: clean before dirty, oldest first), then the workload's
    held anonymous blocks to guest swap while it has room.
    """
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    freed = 0
    spent = 0.0
    for _ in range(2):
        p = s.gi[g, GI.PC_HEAD]
        wrote = 0
        while p >= 0 and freed < want:
            nxt = z.next[p]
            if z.state[p] == PC_CLEAN:
                list_del(z.next, z.prev, s.gi, (g, GI.PC_HEAD), s.gi, (g, GI.PC_TAIL), p)
                s.gi[g, GI.PC] -= 1
                s.gi[g, GI.PC_DROPPED] += 1
                z.state[p] = ALLOC_BASE
                free_to_buddy(s, g, z, p, 0, t)
                freed += 1 + _slab_shrink(s, g, z, t)
                spent += cost[C_GUEST_RECLAIM]
            else:  # pageout(): written back now, dropped when the scan comes round again
                z.state[p] = PC_CLEAN
                s.gi[g, GI.PC_DIRTY] -= 1
                s.gi[g, GI.WRITEBACK] += 1
                spent += cost[C_GUEST_WRITEBACK]
                wrote += 1
            p = nxt
        if freed >= want or wrote == 0:
            break
    while freed < want and s.gi[g, GI.HELD_HEAD] >= 0:
        pfn = s.gi[g, GI.HELD_HEAD]
        order = z.state[pfn] - ALLOC_BASE
        n = 1 << order
        if s.gi[g, GI.GSWAP] + n > s.gi[g, GI.GSWAP_CAP]:
            break
        list_del(z.next, z.prev, s.gi, (g, GI.HELD_HEAD), s.gi, (g, GI.HELD_TAIL), pfn)
        s.gi[g, GI.USED] -= n
        free_to_buddy(s, g, z, pfn, order, t)
        s.gi[g, GI.GSWAP] += n
        s.gi[g, GI.GSWAPOUT] += n
        spent += n * cost[C_GUEST_SWAP_OUT]
        freed += n
    return freed, spent


@jit
def guest_reclaim(s, g, z, need, direct, t, cost):
    """Reclaim ``need`` pages of guest g (the ``guest_reclaim`` unit); return pages freed.

    ``direct``: ``__alloc_pages_direct_reclaim``, a stall of the allocating workload;
    else kswapd, guest CPU of its own.
    """
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    freed, spent = shrink_node(s, g, z, need, t, cost)
    if direct:
        s.gi[g, GI.DIRECT_RECLAIMS] += 1
        s.gf[g, GF.DEBT] += spent
        s.gf[g, GF.STALL] += spent
        s.gf[g, GF.GUEST_RECLAIM_STALL] += spent
    else:
        s.gf[g, GF.KSWAPD_CPU] += spent
    return freed


@jit(inline="always")
def kswapd(s, g, z, t, cost):
    """``balance_pgdat``: reclaim until the high watermark is met, then sleep."""
    s.gi[g, GI.KSWAPD] = 0
    short = s.gi[g, GI.HIGH_WMARK] - nr_free_pages(z)
    if short > 0:
        s.gi[g, GI.KSWAPD_WAKES] += 1
        hook_reclaim(s, g, z, short, 0, t, cost)
