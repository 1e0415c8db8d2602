"""Host reclaim: swapping guest pages out to make room, in the background (kswapd) or in a
faulting vCPU (direct reclaim), and the OOM killer when that frees nothing.

Follows mm/vmscan.c (``shrink_*``, ``add_to_swap``) and the slow path of mm/page_alloc.c:

- An allocation that would leave free memory below the min watermark enters direct reclaim
  (``__alloc_pages_slowpath`` → ``__alloc_pages_direct_reclaim``, :func:`ensure_ram`) in the
  faulting vCPU's page fault: the guest's workload stalls for the reclaim's CPU time and until
  the swap device has written the pages it swapped out (``reclaim_stall_s``; pages under
  writeback are freed when written). When nothing can be swapped out it OOM-kills
  (:mod:`fphlib.host.oom`). kswapd (:mod:`fphlib.host.daemons`) calls :func:`reclaim` too.
- Lazily-freed pages (a host discarding with MADV_FREE, :mod:`fphlib.host.backing`) go first,
  freed without swap I/O (mm/vmscan.c ``shrink_folio_list``: an anonymous folio that is not
  swap-backed and still clean is freed; they sit on the inactive file list, reclaimed before
  anonymous memory while it is large, ``cache_trim_mode``).
- Reclaim swaps pages out with a global second-chance clock over all guest pages
  (``PG_REFERENCED`` is the accessed bit; touches set it), at least SWAP_CLUSTER_MAX = 32
  pages at a time. A THP is one folio: it is referenced if any of its pages is, and it is
  swapped out whole, 512 contiguous swap slots in one I/O, when that many slots are free
  (THP_SWAP, v4.13+: ``add_to_swap`` → ``folio_alloc_swap``; the PMD becomes 512 swap PTEs);
  otherwise it is split first (``split_folio_to_list``, ``thp_split``) and swapped per 4 KiB.

Simplifications: host page cache (reclaimable, assumed dropped first at no cost), zswap and
swap-slot fragmentation (a THP always finds 512 contiguous slots while 512 are free) are not
modelled; one LRU (the clock) instead of active/inactive lists; direct reclaim's throttling
(``reclaim_throttle``) is the device queue wait.
"""

import numpy as np

from .._jit import borrowed, jit
from ..costs import C_SWAP_OUT, C_THP_SPLIT
from ..state.borrow import borrow_state
from ..state.layout import GI, HF, HI, PG_DISCARDED, PG_REFERENCED, PG_SWAPPED, PI, ST_RUNNING
from ..state.zone import PG_BACKED, PG_DATA
from .memory import (
    BYTES_X8,
    HPAGE_PAGES,
    HPAGE_SHIFT,
    NOT_BACKED,
    NOT_REFERENCED,
    below_min,
    host_used_pages,
    swap_io,
)
from .oom import oom_kill

SWAP_CLUSTER_MAX = 32  # include/linux/swap.h
# a flag in each of 8 pages' flag bytes read as one uint64 (the clock's fast paths)
_BACKED_X8 = BYTES_X8 * np.uint64(PG_BACKED)
_REFERENCED_X8 = BYTES_X8 * np.uint64(PG_REFERENCED)


@jit(inline="always")  # one caller: no compile unit of its own
def _guest_of(s, p, g):
    """Guest owning global page p, starting the search at g (the clock moves forward)."""
    s = borrow_state(s)
    G = s.pi[PI.G]
    while not (s.gi[g, GI.OFF] <= p < s.gi[g, GI.OFF] + s.gi[g, GI.NPAGES]):
        g = (g + 1) % G
    return g


@jit(inline="always")
def _free_lazy(s, p, g, f):
    """Reclaim takes lazily-freed page p of guest g: freed without swap I/O (it was clean);
    the guest's next touch refaults a zero page, and data it held is a lost write."""
    s.flags[p] = f & NOT_BACKED
    if f & PG_DATA:
        s.gi[g, GI.LOST] += 1
    s.reg_cnt[p >> HPAGE_SHIFT] -= 1
    s.gi[g, GI.RSS] -= 1
    s.hi[HI.RSS] -= 1
    s.gi[g, GI.RETURNED] += 1
    s.gi[g, GI.LAZYFREE] -= 1
    s.hi[HI.LAZYFREE] -= 1
    s.gi[g, GI.LAZYFREED] += 1


@jit(inline="always")  # one caller
def _lazy_pass(s, want):
    """Free up to ``want`` lazily-freed pages, with their own hand, before any swapping;
    return pages freed."""
    total = s.flags.shape[0]
    hand = s.hi[HI.LAZY_CLOCK]
    freed = 0
    scanned = 0
    g = 0
    while freed < want and s.hi[HI.LAZYFREE] > 0 and scanned < total:
        p = hand
        hand += 1
        if hand >= total:
            hand = 0
        scanned += 1
        f = s.flags[p]
        if f & PG_BACKED and f & PG_DISCARDED:
            g = _guest_of(s, p, g)
            _free_lazy(s, p, g, f)
            freed += 1
    s.hi[HI.LAZY_CLOCK] = hand
    return freed


@jit  # its own compile unit, shared by the two callers (inlined, it compiled twice)
def _swap_out(s, lo, hi, hand, want, now, cost, direct):
    """The second-chance clock over pages [lo, hi) from ``hand``: swap out at least ``want``
    pages; return (pages freed, the hand where it stopped)."""
    s = borrow_state(s)
    cost = borrowed(cost)
    total = hi - lo
    freed = 0
    scanned = 0
    g = 0
    cpu = 0.0
    words = s.flags[: s.flags.shape[0] & ~7].view(np.uint64)  # 8 pages' flags in one load
    while freed < want and scanned < 2 * total and s.hi[HI.SWAP] < s.hi[HI.SWAP_CAP]:
        # 8 pages in a row without backing (most of a large, sparsely backed host): the
        # hand passes them as the page-by-page loop below would, with one load
        if (hand & 7) == 0 and hand + 8 <= hi and scanned + 8 <= 2 * total and (
                words[hand >> 3] & _BACKED_X8) == 0:
            hand += 8
            scanned += 8
            if hand >= hi:
                hand = lo
            continue
        p = hand
        hand += 1
        if hand >= hi:
            hand = lo
        scanned += 1
        f = s.flags[p]
        if not f & PG_BACKED:
            continue
        r = p >> HPAGE_SHIFT
        if s.reg_huge[r]:
            # one folio, one accessed bit (the PMD's): referenced if any page is
            base = r << HPAGE_SHIFT
            referenced = False
            # 8 pages per load and store: a THP's 512 pages are 8-aligned and lie in the
            # flags, so in ``words``
            for i in range(base >> 3, (base + HPAGE_PAGES) >> 3):
                if words[i] & _REFERENCED_X8:
                    referenced = True
                    words[i] &= ~_REFERENCED_X8
            if referenced:
                scanned += base + HPAGE_PAGES - 1 - p
                hand = base + HPAGE_PAGES
                if hand >= hi:
                    hand = lo
                continue
            g = _guest_of(s, p, g)
            s.reg_huge[r] = 0
            if s.hi[HI.SWAP_CAP] - s.hi[HI.SWAP] >= HPAGE_PAGES:
                # THP_SWAP: the whole THP in one I/O; the PMD becomes 512 swap PTEs
                for q in range(base, base + HPAGE_PAGES):
                    s.flags[q] = (s.flags[q] & NOT_BACKED) | PG_SWAPPED
                s.gi[g, GI.RSS] -= HPAGE_PAGES
                s.gi[g, GI.SWAP] += HPAGE_PAGES
                s.gi[g, GI.SWAPOUT] += HPAGE_PAGES
                s.hi[HI.RSS] -= HPAGE_PAGES
                s.hi[HI.SWAP] += HPAGE_PAGES
                s.hi[HI.THP_SWAPS] += 1
                cpu += HPAGE_PAGES * cost[C_SWAP_OUT]
                swap_io(s, now, HPAGE_PAGES)
                freed += HPAGE_PAGES
                scanned += base + HPAGE_PAGES - 1 - p
                hand = base + HPAGE_PAGES
                if hand >= hi:
                    hand = lo
                continue
            s.hi[HI.THP_SPLITS] += 1  # no room for a cluster: split, swap 4 KiB pages
            s.gi[g, GI.THP_SPLITS] += 1
            cpu += cost[C_THP_SPLIT]
        if f & PG_DISCARDED:  # lazily freed (MADV_FREE; a THP was split when it was)
            g = _guest_of(s, p, g)
            _free_lazy(s, p, g, f)
            freed += 1
            continue
        if f & PG_REFERENCED:
            s.flags[p] = f & NOT_REFERENCED
            continue
        g = _guest_of(s, p, g)
        s.flags[p] = (f & NOT_BACKED) | PG_SWAPPED
        s.gi[g, GI.RSS] -= 1
        s.gi[g, GI.SWAP] += 1
        s.gi[g, GI.SWAPOUT] += 1
        s.hi[HI.RSS] -= 1
        s.hi[HI.SWAP] += 1
        cpu += cost[C_SWAP_OUT]
        swap_io(s, now, 1)
        freed += 1
    s.hf[HF.CPU] += cpu
    s.hi[HI.SWAPOUTS] += freed
    if direct:
        s.hi[HI.DIRECT_PAGES] += freed
    else:
        s.hi[HI.KSWAPD_PAGES] += freed
    return freed, hand


@jit
def reclaim(s, want, now, cost, direct):
    """Free at least ``want`` pages: lazily-freed ones first (no I/O), then swap out with the
    second-chance clock, queueing the writes on the swap device at ``now``; return pages
    freed. A THP goes out whole (THP_SWAP) when 512 swap slots are free, else it is split
    first."""
    s = borrow_state(s)
    cost = borrowed(cost)
    lazy = _lazy_pass(s, want)  # nothing to do (one compare) without lazily-freed pages
    if lazy >= want:
        return lazy
    freed, hand = _swap_out(s, 0, s.flags.shape[0], s.hi[HI.CLOCK], want - lazy, now, cost,
                            direct)
    s.hi[HI.CLOCK] = hand
    return lazy + freed


@jit
def reclaim_guest(s, g, want, now, cost):
    """Swap out at least ``want`` of guest g's pages (a host that reclaims from one VM, as
    ESX swaps a VM whose balloon cannot reach its target), with the guest's own clock hand
    (``GI.HOST_CLOCK``, relative to its first page); return pages freed."""
    s = borrow_state(s)
    cost = borrowed(cost)
    lo = s.gi[g, GI.OFF]
    hi = lo + s.gi[g, GI.NPAGES]
    freed, hand = _swap_out(s, lo, hi, lo + s.gi[g, GI.HOST_CLOCK], want, now, cost, False)
    s.gi[g, GI.HOST_CLOCK] = hand - lo
    return freed


@jit
def ensure_ram(s, need, t, requester, cost, overhead_pages):
    """Direct reclaim: make room for ``need`` more backed pages above the min watermark by
    swapping out, else OOM-kill."""
    s = borrow_state(s)
    cost = borrowed(cost)
    while below_min(s, need):
        short = host_used_pages(s) + need - (s.hi[HI.RAM_PAGES] - s.hi[HI.WMARK_MIN])
        if short < SWAP_CLUSTER_MAX:
            short = SWAP_CLUSTER_MAX
        if reclaim(s, short, t, cost, True) > 0:
            continue
        if s.gi[requester, GI.STATUS] != ST_RUNNING:
            return
        oom_kill(s, t, requester, overhead_pages)
        if s.gi[requester, GI.STATUS] != ST_RUNNING:
            return
