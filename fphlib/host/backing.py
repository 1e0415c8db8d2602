"""Host backing of guest memory: lazy faults, THP, discards, reclaim, swap and the OOM killer.

Model (DESIGN §3.3):

- A guest page is backed lazily on its first touch (EPT violation + zero-fill, cost
  ``fault_4k``). With ``host_thp`` a touch of a 2 MiB region that has no page present backs
  the whole region as one THP (cost ``fault_2m``, as ``do_huge_pmd_anonymous_page``); a region
  that already has 4 KiB pages present faults per 4 KiB until khugepaged collapses it
  (:mod:`fphlib.host.daemons`).
- A discard (QEMU ``ram_block_discard_range`` → ``MADV_DONTNEED``) of a whole THP zaps the PMD
  (``madvise_2m``); a discard of part of a THP splits it first (``thp_split``) and then zaps
  4 KiB PTEs (``madvise_4k``). Discarding a swapped page frees its swap slot. A discard of a
  page that holds guest data (``PG_DATA``) is a lost write: counted, never hidden.
- Host memory in use = backed guest pages + the VMM overhead of each running guest + the
  host's own memory (``SimConfig.host_reserve``: kernel, slab, services; all in
  ``HI_OVERHEAD_PAGES``). The host has the kernel's zone watermarks (min/low/high from its RAM,
  ``__setup_per_zone_wmarks``, :func:`fphlib.engine.build.watermarks`).
- An allocation that leaves free memory below the low watermark wakes kswapd
  (``wakeup_kswapd``), which reclaims in the background, on host CPU, until free memory is
  back at the high watermark (:mod:`fphlib.host.daemons`). An allocation that would leave
  free memory below the min watermark enters direct reclaim (``__alloc_pages_slowpath`` →
  ``__alloc_pages_direct_reclaim``) in the faulting vCPU's page fault: the guest's workload
  stalls for the reclaim's CPU time and until the swap device has written the pages it
  swapped out (``reclaim_stall_s``; pages under writeback are freed when written).
- Reclaim swaps pages out with a global second-chance clock over all guest pages
  (``PG_REFERENCED`` is the accessed bit; touches set it), at least SWAP_CLUSTER_MAX = 32
  pages at a time. A THP is one folio: it is referenced if any of its pages is, and it is
  swapped out whole, 512 contiguous swap slots in one I/O, when that many slots are free
  (THP_SWAP, v4.13+: ``add_to_swap`` → ``folio_alloc_swap``; the PMD becomes 512 swap PTEs);
  otherwise it is split first (``split_folio_to_list``, ``thp_split``) and swapped per 4 KiB.
- The swap device is one FIFO queue shared by swap-out and swap-in (``HF_SWAP_BUSY``: when
  all I/O queued so far is done), each 4 KiB taking ``4096 / host_swap_bandwidth``. A swapped
  page touched again is swapped in: the faulting guest stalls ``max(swap_in, queue wait +
  transfer)`` (``swap_in_stall_s``).
- With swap full or absent the OOM killer kills the running guest with the highest
  ``oom_badness``: RSS + swap entries + page tables, plus ``oom_score_adj * totalpages /
  1000``; ``oom_score_adj = -1000`` is never chosen (mm/oom_kill.c). Its memory is released and
  the run goes on without it. With no killable guest the host panics ("System is deadlocked
  on memory"): every guest dies (event ``host_panic``).

Simplifications: host page cache (reclaimable, assumed dropped first at no cost), KSM,
zswap, swap readahead (``page-cluster``), swap-slot fragmentation (a THP always finds 512
contiguous slots while 512 are free) and NUMA are not modelled; one LRU (the clock) instead
of active/inactive lists; a guest's page tables are one PTE page per 2 MiB region with pages
present (a THP deposits one too) plus one PMD page per GiB; the OOM victim's RSS includes the
VMM overhead; direct reclaim's throttling (``reclaim_throttle``) is the device queue wait.
"""

import numpy as np

from .._jit import jit
from ..guest.buddy import PG_BACKED, PG_DATA
from ..state.borrow import borrow_state, borrow_zone
from ..state.hooks import host_ensure_ram
from ..state.layout import (
    EV_HOST_PANIC,
    EV_OOM_KILL,
    GF_DEBT,
    GF_GUEST_CPU,
    GF_HOST_CPU,
    GF_RECLAIM_STALL,
    GF_REFAULT_STALL,
    GF_STALL,
    GF_SWAPIN_STALL,
    GI_FAULTS,
    GI_LOST,
    GI_NPAGES,
    GI_OFF,
    GI_OOM_ADJ,
    GI_REFAULTS,
    GI_RSS,
    GI_STATUS,
    GI_SWAP,
    GI_SWAPINS,
    GI_SWAPOUT,
    GI_VMEXITS,
    HF_CPU,
    HF_HOST_NEXT,
    HF_SWAP_BUSY,
    HI_CLOCK,
    HI_DIRECT_PAGES,
    HI_KSWAPD,
    HI_KSWAPD_PAGES,
    HI_NEV,
    HI_NEV_LOST,
    HI_OOM_KILLS,
    HI_OVERHEAD_PAGES,
    HI_PANICS,
    HI_RAM_PAGES,
    HI_RSS,
    HI_RSS_PEAK,
    HI_SWAP,
    HI_SWAP_CAP,
    HI_SWAPOUTS,
    HI_THP_SPLITS,
    HI_THP_SWAPS,
    HI_WMARK_LOW,
    HI_WMARK_MIN,
    MAX_EVENTS,
    PF_SWAP_PAGE_S,
    PG_DISCARDED,
    PG_MIG_DIRTY,
    PG_REFERENCED,
    PG_SWAPPED,
    PI_G,
    PI_KSWAPD,
    PI_THP,
    ST_KILLED,
    ST_RUNNING,
)
from .costs import (
    C_FAULT_2M,
    C_FAULT_4K,
    C_MADVISE_2M,
    C_MADVISE_4K,
    C_MADVISE_CALL,
    C_SWAP_IN,
    C_SWAP_OUT,
    C_THP_SPLIT,
)

HPAGE_SHIFT = 9  # 2 MiB host THP = 512 guest pages
HPAGE_PAGES = 1 << HPAGE_SHIFT
SWAP_CLUSTER_MAX = 32  # include/linux/swap.h
OOM_SCORE_ADJ_MIN = -1000  # include/uapi/linux/oom.h: never OOM-kill
OOM_SCORE_ADJ_MAX = 1000
NO_VICTIM = np.iinfo(np.int64).min  # oom_badness's LONG_MIN

NOT_BACKED = ~PG_BACKED
NOT_SWAPPED = ~PG_SWAPPED
NOT_DISCARDED = ~PG_DISCARDED
NOT_REFERENCED = ~PG_REFERENCED
# what a guest write sets: data the guest needs, the accessed bit, KVM's dirty log
WRITTEN = PG_DATA | PG_REFERENCED | PG_MIG_DIRTY
HOST_BITS_CLEAR = ~(PG_BACKED | PG_SWAPPED | PG_REFERENCED)


@jit(inline="always")
def record_event(s, t, g, kind, value):
    """Append one row to the event log (counted, not stored, beyond MAX_EVENTS)."""
    s = borrow_state(s)
    n = s.hi[HI_NEV]
    if n < MAX_EVENTS:
        s.ev[n, 0] = t
        s.ev[n, 1] = g
        s.ev[n, 2] = kind
        s.ev[n, 3] = value
        s.hi[HI_NEV] = n + 1
    else:
        s.hi[HI_NEV_LOST] += 1


@jit(inline="always")
def host_used_pages(s):
    """Host memory in use: backed guest pages, per-guest overhead and the host reserve."""
    return s.hi[HI_RSS] + s.hi[HI_OVERHEAD_PAGES]


@jit(inline="always")
def note_peak(s):
    used = host_used_pages(s)
    if used > s.hi[HI_RSS_PEAK]:
        s.hi[HI_RSS_PEAK] = used


@jit(inline="always")
def below_min(s, need):
    """Would backing ``need`` more pages leave free memory below the min watermark?"""
    return host_used_pages(s) + need > s.hi[HI_RAM_PAGES] - s.hi[HI_WMARK_MIN]


@jit(inline="always")
def wake_kswapd(s, t):
    """``wakeup_kswapd`` when free memory is below the low watermark (kswapd on)."""
    if (s.pi[PI_KSWAPD] and not s.hi[HI_KSWAPD]
            and s.hi[HI_RAM_PAGES] - host_used_pages(s) < s.hi[HI_WMARK_LOW]):
        s.hi[HI_KSWAPD] = 1
        if s.hf[HF_HOST_NEXT] > t:
            s.hf[HF_HOST_NEXT] = t  # kswapd runs at the end of this tick


@jit(inline="always")
def swap_io(s, now, npages):
    """Queue ``npages`` 4 KiB transfers on the swap device at ``now``; return when done."""
    start = s.hf[HF_SWAP_BUSY]
    if start < now:
        start = now
    done = start + npages * s.pf[PF_SWAP_PAGE_S]
    s.hf[HF_SWAP_BUSY] = done
    return done


@jit(inline="always")  # one caller: no compile unit of its own
def kill_guest(s, g, t, overhead_pages):
    """The host OOM killer kills guest g: all its memory and swap go back to the host."""
    s = borrow_state(s)
    off = s.gi[g, GI_OFF]
    n = s.gi[g, GI_NPAGES]
    for p in range(off, off + n):
        s.flags[p] &= HOST_BITS_CLEAR
    for r in range(off >> HPAGE_SHIFT, (off + n) >> HPAGE_SHIFT):
        s.reg_cnt[r] = 0
        s.reg_huge[r] = 0
    value = (s.gi[g, GI_RSS] + s.gi[g, GI_SWAP]) * 4096
    s.hi[HI_RSS] -= s.gi[g, GI_RSS]
    s.hi[HI_SWAP] -= s.gi[g, GI_SWAP]
    s.gi[g, GI_RSS] = 0
    s.gi[g, GI_SWAP] = 0
    s.gi[g, GI_STATUS] = ST_KILLED
    s.hi[HI_OVERHEAD_PAGES] -= overhead_pages
    s.hi[HI_OOM_KILLS] += 1
    record_event(s, t, g, EV_OOM_KILL, value)


@jit(inline="always")
def page_table_pages(s, g):
    """Guest g's host page-table pages (``mm_pgtables_bytes / PAGE_SIZE``): a PTE page per 2 MiB
    region with pages present (a THP deposits one, ``pgtable_trans_huge_deposit``) and a PMD
    page per GiB."""
    s = borrow_state(s)
    off = s.gi[g, GI_OFF]
    n = s.gi[g, GI_NPAGES]
    count = (n + (1 << 18) - 1) >> 18
    for r in range(off >> HPAGE_SHIFT, (off + n) >> HPAGE_SHIFT):
        if s.reg_cnt[r]:
            count += 1
    return count


@jit
def oom_badness(s, g, overhead_pages):
    """``oom_badness``: RSS + swap entries + page tables + ``oom_score_adj * totalpages /
    1000`` of running guest g (its QEMU process); ``NO_VICTIM`` for ``oom_score_adj`` -1000."""
    s = borrow_state(s)
    adj = s.gi[g, GI_OOM_ADJ]
    if adj == OOM_SCORE_ADJ_MIN:
        return NO_VICTIM
    points = s.gi[g, GI_RSS] + overhead_pages + s.gi[g, GI_SWAP] + page_table_pages(s, g)
    totalpages = s.hi[HI_RAM_PAGES] + s.hi[HI_SWAP_CAP]  # totalram_pages + total_swap_pages
    return points + adj * (totalpages // 1000)


@jit
def oom_victim(s, overhead_pages):
    """``select_bad_process``: the running guest with the highest badness (on a tie the later
    one, as ``oom_evaluate_task`` replaces on ``>=``); -1 if none is killable."""
    s = borrow_state(s)
    victim = -1
    best = NO_VICTIM
    for g in range(s.pi[PI_G]):
        if s.gi[g, GI_STATUS] == ST_RUNNING:
            points = oom_badness(s, g, overhead_pages)
            if points == NO_VICTIM or points < best:
                continue
            best = points
            victim = g
    return victim


@jit(inline="always")  # one caller: no compile unit of its own
def oom_kill(s, t, requester, overhead_pages):
    """``out_of_memory``: kill the guest ``oom_victim`` picks; with none killable the host
    panics (``panic("System is deadlocked on memory")``) and every running guest dies."""
    s = borrow_state(s)
    victim = oom_victim(s, overhead_pages)
    if victim >= 0:
        kill_guest(s, victim, t, overhead_pages)
        return
    s.hi[HI_PANICS] += 1
    record_event(s, t, requester, EV_HOST_PANIC, 0.0)
    for g in range(s.pi[PI_G]):
        if s.gi[g, GI_STATUS] == ST_RUNNING:
            kill_guest(s, g, t, overhead_pages)


@jit(inline="always")  # one caller: no compile unit of its own
def _guest_of(s, p, g):
    """Guest owning global page p, starting the search at g (the clock moves forward)."""
    s = borrow_state(s)
    G = s.pi[PI_G]
    while not (s.gi[g, GI_OFF] <= p < s.gi[g, GI_OFF] + s.gi[g, GI_NPAGES]):
        g = (g + 1) % G
    return g


@jit
def reclaim(s, want, now, cost, direct):
    """Swap out at least ``want`` pages with the second-chance clock, queueing their writes on
    the swap device at ``now``; return pages freed. A THP goes out whole (THP_SWAP) when 512
    swap slots are free, else it is split first."""
    s = borrow_state(s)
    total = s.flags.shape[0]
    freed = 0
    scanned = 0
    hand = s.hi[HI_CLOCK]
    g = 0
    cpu = 0.0
    while freed < want and scanned < 2 * total and s.hi[HI_SWAP] < s.hi[HI_SWAP_CAP]:
        p = hand
        hand += 1
        if hand >= total:
            hand = 0
        scanned += 1
        f = s.flags[p]
        if not f & PG_BACKED:
            continue
        r = p >> HPAGE_SHIFT
        if s.reg_huge[r]:
            # one folio, one accessed bit (the PMD's): referenced if any page is
            base = r << HPAGE_SHIFT
            referenced = False
            for q in range(base, base + HPAGE_PAGES):
                if s.flags[q] & PG_REFERENCED:
                    referenced = True
                    s.flags[q] &= NOT_REFERENCED
            if referenced:
                scanned += base + HPAGE_PAGES - 1 - p
                hand = base + HPAGE_PAGES
                if hand >= total:
                    hand = 0
                continue
            g = _guest_of(s, p, g)
            s.reg_huge[r] = 0
            if s.hi[HI_SWAP_CAP] - s.hi[HI_SWAP] >= HPAGE_PAGES:
                # THP_SWAP: the whole THP in one I/O; the PMD becomes 512 swap PTEs
                for q in range(base, base + HPAGE_PAGES):
                    s.flags[q] = (s.flags[q] & NOT_BACKED) | PG_SWAPPED
                s.gi[g, GI_RSS] -= HPAGE_PAGES
                s.gi[g, GI_SWAP] += HPAGE_PAGES
                s.gi[g, GI_SWAPOUT] += HPAGE_PAGES
                s.hi[HI_RSS] -= HPAGE_PAGES
                s.hi[HI_SWAP] += HPAGE_PAGES
                s.hi[HI_THP_SWAPS] += 1
                cpu += HPAGE_PAGES * cost[C_SWAP_OUT]
                swap_io(s, now, HPAGE_PAGES)
                freed += HPAGE_PAGES
                scanned += base + HPAGE_PAGES - 1 - p
                hand = base + HPAGE_PAGES
                if hand >= total:
                    hand = 0
                continue
            s.hi[HI_THP_SPLITS] += 1  # no room for a cluster: split, swap 4 KiB pages
            cpu += cost[C_THP_SPLIT]
        if f & PG_REFERENCED:
            s.flags[p] = f & NOT_REFERENCED
            continue
        g = _guest_of(s, p, g)
        s.flags[p] = (f & NOT_BACKED) | PG_SWAPPED
        s.gi[g, GI_RSS] -= 1
        s.gi[g, GI_SWAP] += 1
        s.gi[g, GI_SWAPOUT] += 1
        s.hi[HI_RSS] -= 1
        s.hi[HI_SWAP] += 1
        cpu += cost[C_SWAP_OUT]
        swap_io(s, now, 1)
        freed += 1
    s.hi[HI_CLOCK] = hand
    s.hf[HF_CPU] += cpu
    s.hi[HI_SWAPOUTS] += freed
    if direct:
        s.hi[HI_DIRECT_PAGES] += freed
    else:
        s.hi[HI_KSWAPD_PAGES] += freed
    return freed


@jit
def ensure_ram(s, need, t, requester, cost, overhead_pages):
    """Direct reclaim: make room for ``need`` more backed pages above the min watermark by
    swapping out, else OOM-kill."""
    s = borrow_state(s)
    while below_min(s, need):
        short = host_used_pages(s) + need - (s.hi[HI_RAM_PAGES] - s.hi[HI_WMARK_MIN])
        if short < SWAP_CLUSTER_MAX:
            short = SWAP_CLUSTER_MAX
        if reclaim(s, short, t, cost, True) > 0:
            continue
        if s.gi[requester, GI_STATUS] != ST_RUNNING:
            return
        oom_kill(s, t, requester, overhead_pages)
        if s.gi[requester, GI_STATUS] != ST_RUNNING:
            return


@jit
def _direct_reclaim(s, need, now, g, cost, overhead_pages):
    """``ensure_ram`` from guest g's fault at ``now``; return how long the vCPU waits: the
    reclaim's host CPU, or until the swap device has written what it swapped out."""
    s = borrow_state(s)
    before = s.hf[HF_CPU]
    pages = s.hi[HI_DIRECT_PAGES]
    host_ensure_ram(s, need, now, g, cost, overhead_pages)  # ensure_ram, its own compile unit
    wait = s.hf[HF_CPU] - before
    if s.hi[HI_DIRECT_PAGES] != pages and s.hf[HF_SWAP_BUSY] - now > wait:
        wait = s.hf[HF_SWAP_BUSY] - now
    return wait


@jit
def touch(s, g, z, pfn, npages, t, cost, overhead_pages):
    """The guest writes pages [pfn, pfn+npages): back them, mark data; return stall seconds.

    The guest's clock during the call is ``t`` plus its unpaid stalls (``GF_DEBT``) plus the
    stalls of this call: swap-device waits are measured from there. Returns -1.0 if the host
    OOM-killed guest g meanwhile.
    """
    s = borrow_state(s)
    z = borrow_zone(z)
    off = s.gi[g, GI_OFF]
    flags = z.flags
    thp = s.pi[PI_THP]
    stall = 0.0  # host CPU on the faulting vCPU (faults, swap-in)
    wait = 0.0  # swap-in beyond its CPU: the swap device's queue
    refault_cost = 0.0
    reclaim_wait = 0.0  # direct reclaim: host CPU already, and the faulting vCPU's wait
    for p in range(pfn, pfn + npages):
        f = flags[p]
        if f & PG_BACKED:
            flags[p] = f | WRITTEN
            continue
        r = (off + p) >> HPAGE_SHIFT
        if f & PG_SWAPPED:
            if below_min(s, 1):
                now = t + s.gf[g, GF_DEBT] + stall + wait + reclaim_wait
                reclaim_wait += _direct_reclaim(s, 1, now, g, cost, overhead_pages)
            if s.gi[g, GI_STATUS] != ST_RUNNING:
                return -1.0
            flags[p] = (flags[p] & NOT_SWAPPED) | PG_BACKED | WRITTEN
            s.gi[g, GI_SWAP] -= 1
            s.hi[HI_SWAP] -= 1
            s.gi[g, GI_RSS] += 1
            s.hi[HI_RSS] += 1
            now = t + s.gf[g, GF_DEBT] + stall + wait + reclaim_wait
            took = swap_io(s, now, 1) - now  # queue wait + the 4 KiB read
            extra = took - cost[C_SWAP_IN] if took > cost[C_SWAP_IN] else 0.0
            stall += cost[C_SWAP_IN]
            wait += extra
            s.gi[g, GI_SWAPINS] += 1
            s.gf[g, GF_SWAPIN_STALL] += cost[C_SWAP_IN] + extra
            s.gi[g, GI_VMEXITS] += 1
            continue
        if thp and s.reg_cnt[r] == 0:
            if below_min(s, HPAGE_PAGES):
                now = t + s.gf[g, GF_DEBT] + stall + wait + reclaim_wait
                reclaim_wait += _direct_reclaim(s, HPAGE_PAGES, now, g, cost, overhead_pages)
            if s.gi[g, GI_STATUS] != ST_RUNNING:
                return -1.0
            base = (p >> HPAGE_SHIFT) << HPAGE_SHIFT
            refaulted = 0
            for q in range(base, base + HPAGE_PAGES):
                fq = flags[q]
                if fq & PG_DISCARDED:
                    refaulted += 1
                flags[q] = (fq & NOT_DISCARDED) | PG_BACKED
            flags[p] |= WRITTEN
            s.reg_cnt[r] = HPAGE_PAGES
            s.reg_huge[r] = 1
            s.gi[g, GI_RSS] += HPAGE_PAGES
            s.hi[HI_RSS] += HPAGE_PAGES
            stall += cost[C_FAULT_2M]
            s.gi[g, GI_FAULTS] += 1
            s.gi[g, GI_VMEXITS] += 1
            if refaulted:
                s.gi[g, GI_REFAULTS] += refaulted
                refault_cost += cost[C_FAULT_2M]
            continue
        if below_min(s, 1):
            now = t + s.gf[g, GF_DEBT] + stall + wait + reclaim_wait
            reclaim_wait += _direct_reclaim(s, 1, now, g, cost, overhead_pages)
        if s.gi[g, GI_STATUS] != ST_RUNNING:
            return -1.0
        f = flags[p]
        if f & PG_DISCARDED:
            s.gi[g, GI_REFAULTS] += 1
            refault_cost += cost[C_FAULT_4K]
        flags[p] = (f & NOT_DISCARDED) | PG_BACKED | WRITTEN
        s.reg_cnt[r] += 1
        s.gi[g, GI_RSS] += 1
        s.hi[HI_RSS] += 1
        stall += cost[C_FAULT_4K]
        s.gi[g, GI_FAULTS] += 1
        s.gi[g, GI_VMEXITS] += 1
    if stall > 0.0:
        note_peak(s)
        wake_kswapd(s, t)
        s.hf[HF_CPU] += stall
        s.gf[g, GF_HOST_CPU] += stall
        s.gf[g, GF_DEBT] += stall
        s.gf[g, GF_STALL] += stall
        # refaults are the guest-visible price of hinting
        s.gf[g, GF_GUEST_CPU] += refault_cost
        s.gf[g, GF_REFAULT_STALL] += refault_cost
    waited = wait + reclaim_wait
    if waited > 0.0:
        s.gf[g, GF_DEBT] += waited
        s.gf[g, GF_STALL] += waited
        s.gf[g, GF_RECLAIM_STALL] += reclaim_wait
    return stall + waited


@jit
def discard(s, g, z, pfn, npages, cost):
    """Host ``MADV_DONTNEED`` of guest pages [pfn, pfn+npages); return host CPU seconds.

    Counts a lost write for every page that still holds guest data (``PG_DATA``).
    """
    s = borrow_state(s)
    z = borrow_zone(z)
    off = s.gi[g, GI_OFF]
    flags = z.flags
    spent = cost[C_MADVISE_CALL]
    end = pfn + npages
    p = pfn
    lost = 0
    while p < end:
        base = (p >> HPAGE_SHIFT) << HPAGE_SHIFT
        seg_end = min(end, base + HPAGE_PAGES)
        r = (off + p) >> HPAGE_SHIFT
        whole = p == base and seg_end == base + HPAGE_PAGES
        if s.reg_huge[r]:
            s.reg_huge[r] = 0
            if whole:
                spent += cost[C_MADVISE_2M]
            else:
                spent += cost[C_THP_SPLIT]
        for q in range(p, seg_end):
            f = flags[q]
            if f & PG_DATA:
                lost += 1
            if f & PG_BACKED:
                flags[q] = (f & NOT_BACKED) | PG_DISCARDED
                s.reg_cnt[r] -= 1
                s.gi[g, GI_RSS] -= 1
                s.hi[HI_RSS] -= 1
                if not whole:
                    spent += cost[C_MADVISE_4K]
            elif f & PG_SWAPPED:
                flags[q] = (f & NOT_SWAPPED) | PG_DISCARDED
                s.reg_cnt[r] -= 1
                s.gi[g, GI_SWAP] -= 1
                s.hi[HI_SWAP] -= 1
        p = seg_end
    if lost:
        s.gi[g, GI_LOST] += lost
    s.hf[HF_CPU] += spent
    s.gf[g, GF_HOST_CPU] += spent
    return spent


def region_count_ok(flags, reg_cnt, reg_huge):
    """Python-side check used by tests: reg_cnt equals present pages per region."""
    present = ((flags & (PG_BACKED | PG_SWAPPED)) != 0).reshape(-1, HPAGE_PAGES).sum(axis=1)
    huge_ok = np.all((reg_huge == 0) | (present == HPAGE_PAGES))
    return bool(np.array_equal(present, reg_cnt) and huge_ok)
