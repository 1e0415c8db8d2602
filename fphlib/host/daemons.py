"""The host's memory daemons: kswapd (background reclaim) and khugepaged (THP collapse).

One compile unit (``host_step``, :mod:`fphlib.state.units`), run by the engine at the end of
a tick when one of them has an instant in it (``HF.HOST_NEXT``), so a run whose host never
gets near its low watermark and has no split THPs pays one comparison per tick.

- **kswapd** (mm/vmscan.c ``kswapd`` → ``balance_pgdat``): woken by an allocation that left
  free memory below the low watermark (:func:`fphlib.host.backing.wake_kswapd`), it reclaims
  in the background until free memory reaches the high watermark, then sleeps. It runs on
  host CPU (``swap_out`` per page, one kswapd thread: a THP swapped out whole may take it
  past the tick, and it resumes when that CPU time is spent) and
  queues its writes on the swap device, at most as many as the device can finish in the tick,
  so kswapd never stalls a guest directly; a guest faulting meanwhile may wait behind its
  writes in the device queue. If it can free nothing (swap full) it gives up and sleeps
  (``kswapd_failures``) until the next wake-up.
- **khugepaged** (mm/khugepaged.c): every ``scan_sleep_millisecs`` = 10000 ms it scans
  ``pages_to_scan`` = 4096 PTEs = 8 regions of 2 MiB, a cursor moving through all guests'
  memory (``khugepaged_scan_mm_slot``). A region mapped by 4 KiB PTEs (split by a partial
  discard or by reclaim) is collapsed into a THP (``collapse_huge_page``) when at most
  ``max_ptes_none`` = 511 PTEs are none, at most ``max_ptes_swap`` = 64 are swapped, and it is
  referenced (at least one young page; at least 256 when some are swapped:
  ``SCAN_LACK_REFERENCED_PAGE``). The collapse backs the none PTEs (zero-filled: RSS grows)
  and swaps the swapped ones in (``__collapse_huge_page_swapin``), costing ``collapse`` of
  host CPU, no guest stall.

Simplifications: khugepaged collapses only when the new THP leaves free memory at or above
the high watermark (it never reclaims for a collapse; ``alloc_sleep_millisecs`` is not
modelled); the 8 regions per scan are counted whatever they hold (the kernel counts a
region as HPAGE_PMD_NR of progress whether it collapses, is already huge or is empty); the
collapse's swap-ins take the device's time but stall nobody; kswapd's budget per tick is one
CPU and the device's remaining time in the tick (no kswapd_failures counting, no
``watermark_boost``).
"""

import numpy as np

from .._jit import borrowed, jit
from ..costs import C_COLLAPSE, C_SWAP_IN, C_SWAP_OUT
from ..state.borrow import borrow_state
from ..state.layout import (
    GF,
    GI,
    HF,
    HI,
    PF,
    PG_DISCARDED,
    PG_REFERENCED,
    PG_SWAPPED,
    PI,
    ST_RUNNING,
)
from ..state.zone import PG_BACKED
from .backing import HPAGE_PAGES, HPAGE_SHIFT, host_used_pages, note_peak, reclaim, swap_io

# mm/khugepaged.c defaults (x86-64, 4 KiB pages; docs admin-guide/mm/transhuge.rst)
PAGES_TO_SCAN = HPAGE_PAGES * 8  # khugepaged_pages_to_scan
SCAN_SLEEP_S = 10.0  # khugepaged_scan_sleep_millisecs = 10000
MAX_PTES_NONE = HPAGE_PAGES - 1  # khugepaged_max_ptes_none = 511
MAX_PTES_SWAP = HPAGE_PAGES // 8  # khugepaged_max_ptes_swap = 64
NOT_SWAPPED_DISCARDED = ~(PG_SWAPPED | PG_DISCARDED)
# hpage_collapse_scan_pmd: with swapped (unmapped) PTEs, at least half must be referenced
MIN_REFERENCED_SWAP = HPAGE_PAGES // 2


@jit
def kswapd(s, t0, t1, cost):
    """kswapd's work in [t0, t1): reclaim toward the high watermark within one CPU and the
    swap device's time left in the interval; sleep at the high watermark or when stuck."""
    s = borrow_state(s)
    cost = borrowed(cost)
    free = s.hi[HI.RAM_PAGES] - host_used_pages(s)
    want = s.hi[HI.WMARK_HIGH] - free
    if want <= 0:
        s.hi[HI.KSWAPD] = 0
        return
    t0 = max(t0, s.hf[HF.KSWAPD_UNTIL])  # one kswapd thread: its earlier work first
    span = t1 - t0
    if span <= 0.0:
        return
    if cost[C_SWAP_OUT] > 0.0:
        want = min(want, int(span / cost[C_SWAP_OUT]) + 1)
    page_s = s.pf[PF.SWAP_PAGE_S]
    if page_s > 0.0:
        start = max(s.hf[HF.SWAP_BUSY], t0)
        want = min(want, int((t1 - start) / page_s))
    if want <= 0:
        return  # the device is busy for the whole interval: try again next tick
    before = s.hf[HF.CPU]
    freed = reclaim(s, want, t0, cost, False)
    spent = s.hf[HF.CPU] - before
    s.hf[HF.KSWAPD_CPU] += spent
    s.hf[HF.KSWAPD_UNTIL] = t0 + spent
    if freed == 0 or s.hi[HI.RAM_PAGES] - host_used_pages(s) >= s.hi[HI.WMARK_HIGH]:
        s.hi[HI.KSWAPD] = 0


@jit(inline="always")
def _region_guest(s, r):
    """The guest whose memory holds 2 MiB region r (guests are whole regions)."""
    p = r << HPAGE_SHIFT
    for g in range(s.pi[PI.G]):
        if s.gi[g, GI.OFF] <= p < s.gi[g, GI.OFF] + s.gi[g, GI.NPAGES]:
            return g
    return -1


@jit
def collapse_ok(s, r):
    """Would khugepaged collapse region r now? (``hpage_collapse_scan_pmd``'s checks)"""
    s = borrow_state(s)
    present = int(s.reg_cnt[r])
    if s.reg_huge[r] or present == 0:  # PMD-mapped already, or no page table (pmd_none)
        return False
    if HPAGE_PAGES - present > MAX_PTES_NONE:
        return False
    base = r << HPAGE_SHIFT
    swapped = 0
    referenced = 0
    for q in range(base, base + HPAGE_PAGES):
        f = s.flags[q]
        if f & PG_SWAPPED:
            swapped += 1
        elif f & PG_BACKED and f & PG_REFERENCED:
            referenced += 1
    if swapped > MAX_PTES_SWAP:
        return False
    if referenced == 0 or (swapped and referenced < MIN_REFERENCED_SWAP):
        return False
    return True


@jit
def khugepaged_scan(s, now, cost):
    """One khugepaged pass at ``now``: scan ``PAGES_TO_SCAN`` PTEs from the cursor, collapse
    what qualifies; return the number of collapses."""
    s = borrow_state(s)
    cost = borrowed(cost)
    n_reg = s.reg_cnt.shape[0]
    if n_reg == 0:
        return 0
    done = 0
    for _ in range(PAGES_TO_SCAN // HPAGE_PAGES):
        r = s.hi[HI.KHUGE_CURSOR]
        s.hi[HI.KHUGE_CURSOR] = (r + 1) % n_reg
        if not collapse_ok(s, r):
            continue
        g = _region_guest(s, r)
        if g < 0 or s.gi[g, GI.STATUS] != ST_RUNNING:
            continue
        base = r << HPAGE_SHIFT
        new = 0
        swapped = 0
        for q in range(base, base + HPAGE_PAGES):
            f = s.flags[q]
            if not f & PG_BACKED:
                new += 1
                if f & PG_SWAPPED:
                    swapped += 1
        if s.hi[HI.RAM_PAGES] - host_used_pages(s) - new < s.hi[HI.WMARK_HIGH]:
            continue  # the THP allocation would push the host toward reclaim
        for q in range(base, base + HPAGE_PAGES):
            f = s.flags[q]
            if not f & PG_BACKED:
                if f & PG_DISCARDED:  # filled by the collapse: no longer returned
                    s.gi[g, GI.RETURNED] -= 1
                s.flags[q] = (f & NOT_SWAPPED_DISCARDED) | PG_BACKED
            elif f & PG_DISCARDED:  # lazily freed: copied into the new THP, a normal page
                s.flags[q] = f & NOT_SWAPPED_DISCARDED
                s.gi[g, GI.LAZYFREE] -= 1
                s.hi[HI.LAZYFREE] -= 1
        s.reg_cnt[r] = HPAGE_PAGES
        s.reg_huge[r] = 1
        s.gi[g, GI.RSS] += new
        s.hi[HI.RSS] += new
        s.gi[g, GI.SWAP] -= swapped
        s.hi[HI.SWAP] -= swapped
        if swapped:
            swap_io(s, now, swapped)
        spent = cost[C_COLLAPSE] + swapped * cost[C_SWAP_IN]
        s.hf[HF.CPU] += spent
        s.hf[HF.KHUGE_CPU] += spent
        s.gf[g, GF.HOST_CPU] += spent
        s.hi[HI.COLLAPSES] += 1
        done += 1
    if done:
        note_peak(s)
    return done


@jit
def host_step(s, now, cost):
    """The host daemons' work in the tick ending at ``now``; schedule their next instant."""
    s = borrow_state(s)
    cost = borrowed(cost)
    nxt = np.inf
    if s.hi[HI.KSWAPD]:
        kswapd(s, now - s.pf[PF.DT], now, cost)
        if s.hi[HI.KSWAPD]:
            nxt = now  # awake: again at the end of the next tick
    if s.pi[PI.KHUGEPAGED] and s.pi[PI.THP]:
        while s.hf[HF.KHUGE_NEXT] <= now:
            khugepaged_scan(s, s.hf[HF.KHUGE_NEXT], cost)
            s.hf[HF.KHUGE_NEXT] += SCAN_SLEEP_S
        nxt = min(nxt, s.hf[HF.KHUGE_NEXT])
    s.hf[HF.HOST_NEXT] = nxt
