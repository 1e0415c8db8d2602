"""Host backing of guest memory: lazy faults, THP, discards, swap and the OOM killer.

Model (DESIGN §3.3):

- A guest page is backed lazily on its first touch (EPT violation + zero-fill, cost
  ``fault_4k``). With ``host_thp`` a touch of a 2 MiB region that has no page present backs
  the whole region as one THP (cost ``fault_2m``, as ``do_huge_pmd_anonymous_page``); a region
  that already has 4 KiB pages present faults per 4 KiB (khugepaged never collapses it again).
- A discard (QEMU ``ram_block_discard_range`` → ``MADV_DONTNEED``) of a whole THP zaps the PMD
  (``madvise_2m``); a discard of part of a THP splits it first (``thp_split``) and then zaps
  4 KiB PTEs (``madvise_4k``). Discarding a swapped page frees its swap slot. A discard of a
  page that holds guest data (``PG_DATA``) is a lost write: counted, never hidden.
- Host RSS = backed pages + a fixed overhead per running guest. When backing a page would
  exceed host RAM, host reclaim swaps pages out with a global second-chance clock over all
  guest pages (``PG_REFERENCED`` is the accessed bit; touches set it), at least
  SWAP_CLUSTER_MAX = 32 pages at a time; a THP being swapped is split first. A swapped page
  touched again is swapped in (``swap_in``, a workload stall).
- With swap full or absent the OOM killer kills the running guest with the largest
  RSS + swap (``oom_badness``); its memory is released and the run goes on without it.
- Reclaim is direct: the fault that needs the room waits for it, so the swap-out time is host
  CPU and a stall of the faulting guest's workload (``__alloc_pages_slowpath`` →
  direct reclaim in the host's page-fault path).

Simplifications: host page cache, KSM, zswap and NUMA are not modelled; no kswapd
watermarks (every reclaim is direct).
"""

import numpy as np

from .._jit import jit
from ..guest.buddy import PG_BACKED, PG_DATA
from ..state.borrow import borrow_state, borrow_zone
from ..state.hooks import host_ensure_ram
from ..state.layout import (
    EV_OOM_KILL,
    GF_DEBT,
    GF_GUEST_CPU,
    GF_HOST_CPU,
    GF_REFAULT_STALL,
    GF_STALL,
    GF_SWAPIN_STALL,
    GI_FAULTS,
    GI_LOST,
    GI_NPAGES,
    GI_OFF,
    GI_REFAULTS,
    GI_RSS,
    GI_STATUS,
    GI_SWAP,
    GI_SWAPINS,
    GI_SWAPOUT,
    GI_VMEXITS,
    HF_CPU,
    HI_CLOCK,
    HI_NEV,
    HI_NEV_LOST,
    HI_OOM_KILLS,
    HI_OVERHEAD_PAGES,
    HI_RAM_PAGES,
    HI_RSS,
    HI_RSS_PEAK,
    HI_SWAP,
    HI_SWAP_CAP,
    MAX_EVENTS,
    PG_DISCARDED,
    PG_MIG_DIRTY,
    PG_REFERENCED,
    PG_SWAPPED,
    PI_G,
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
    """Host memory in use: backed guest pages plus per-guest overhead."""
    return s.hi[HI_RSS] + s.hi[HI_OVERHEAD_PAGES]


@jit(inline="always")
def note_peak(s):
    used = host_used_pages(s)
    if used > s.hi[HI_RSS_PEAK]:
        s.hi[HI_RSS_PEAK] = used


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


@jit(inline="always")  # one caller: no compile unit of its own
def oom_kill(s, t, requester, overhead_pages):
    """``out_of_memory``: kill the running guest with the largest RSS + swap."""
    s = borrow_state(s)
    victim = -1
    best = -1
    for g in range(s.pi[PI_G]):
        if s.gi[g, GI_STATUS] == ST_RUNNING:
            badness = s.gi[g, GI_RSS] + s.gi[g, GI_SWAP]
            if badness > best:
                best = badness
                victim = g
    if victim < 0:
        victim = requester
    kill_guest(s, victim, t, overhead_pages)


@jit(inline="always")  # one caller: no compile unit of its own
def _guest_of(s, p, g):
    """Guest owning global page p, starting the search at g (the clock moves forward)."""
    s = borrow_state(s)
    G = s.pi[PI_G]
    while not (s.gi[g, GI_OFF] <= p < s.gi[g, GI_OFF] + s.gi[g, GI_NPAGES]):
        g = (g + 1) % G
    return g


@jit(inline="always")  # one caller: no compile unit of its own
def reclaim(s, want, cost):
    """Swap out up to ``want`` pages with the second-chance clock; return pages freed."""
    s = borrow_state(s)
    total = s.flags.shape[0]
    freed = 0
    scanned = 0
    hand = s.hi[HI_CLOCK]
    g = 0
    while freed < want and scanned < 2 * total and s.hi[HI_SWAP] < s.hi[HI_SWAP_CAP]:
        p = hand
        hand += 1
        if hand >= total:
            hand = 0
        scanned += 1
        f = s.flags[p]
        if not f & PG_BACKED:
            continue
        if f & PG_REFERENCED:
            s.flags[p] = f & NOT_REFERENCED
            continue
        g = _guest_of(s, p, g)
        r = p >> HPAGE_SHIFT
        if s.reg_huge[r]:
            s.reg_huge[r] = 0  # THP split before swap-out (split_huge_page_to_list)
            s.hf[HF_CPU] += cost[C_THP_SPLIT]
        s.flags[p] = (f & NOT_BACKED) | PG_SWAPPED
        s.gi[g, GI_RSS] -= 1
        s.gi[g, GI_SWAP] += 1
        s.gi[g, GI_SWAPOUT] += 1
        s.hi[HI_RSS] -= 1
        s.hi[HI_SWAP] += 1
        s.hf[HF_CPU] += cost[C_SWAP_OUT]
        freed += 1
    s.hi[HI_CLOCK] = hand
    return freed


@jit
def ensure_ram(s, need, t, requester, cost, overhead_pages):
    """Make room for ``need`` more backed pages: swap out, else OOM-kill."""
    s = borrow_state(s)
    while host_used_pages(s) + need > s.hi[HI_RAM_PAGES]:
        short = host_used_pages(s) + need - s.hi[HI_RAM_PAGES]
        if short < SWAP_CLUSTER_MAX:
            short = SWAP_CLUSTER_MAX
        if reclaim(s, short, cost) > 0:
            continue
        if s.gi[requester, GI_STATUS] != ST_RUNNING:
            return
        oom_kill(s, t, requester, overhead_pages)
        if s.gi[requester, GI_STATUS] != ST_RUNNING:
            return


@jit
def _direct_reclaim(s, need, t, g, cost, overhead_pages):
    """``ensure_ram`` from guest g's fault; return the host CPU it took (the vCPU waits)."""
    s = borrow_state(s)
    before = s.hf[HF_CPU]
    host_ensure_ram(s, need, t, g, cost, overhead_pages)  # ensure_ram, its own compile unit
    return s.hf[HF_CPU] - before


@jit
def touch(s, g, z, pfn, npages, t, cost, overhead_pages):
    """The guest writes pages [pfn, pfn+npages): back them, mark data; return stall seconds.

    Returns -1.0 if the host OOM-killed guest g meanwhile.
    """
    s = borrow_state(s)
    z = borrow_zone(z)
    off = s.gi[g, GI_OFF]
    flags = z.flags
    thp = s.pi[PI_THP]
    stall = 0.0
    refault_cost = 0.0
    reclaim_wait = 0.0  # direct reclaim: host CPU already, and the faulting vCPU's wait
    for p in range(pfn, pfn + npages):
        f = flags[p]
        if f & PG_BACKED:
            flags[p] = f | WRITTEN
            continue
        r = (off + p) >> HPAGE_SHIFT
        if f & PG_SWAPPED:
            if host_used_pages(s) + 1 > s.hi[HI_RAM_PAGES]:
                reclaim_wait += _direct_reclaim(s, 1, t, g, cost, overhead_pages)
            if s.gi[g, GI_STATUS] != ST_RUNNING:
                return -1.0
            flags[p] = (flags[p] & NOT_SWAPPED) | PG_BACKED | WRITTEN
            s.gi[g, GI_SWAP] -= 1
            s.hi[HI_SWAP] -= 1
            s.gi[g, GI_RSS] += 1
            s.hi[HI_RSS] += 1
            stall += cost[C_SWAP_IN]
            s.gi[g, GI_SWAPINS] += 1
            s.gf[g, GF_SWAPIN_STALL] += cost[C_SWAP_IN]
            s.gi[g, GI_VMEXITS] += 1
            continue
        if thp and s.reg_cnt[r] == 0:
            if host_used_pages(s) + HPAGE_PAGES > s.hi[HI_RAM_PAGES]:
                reclaim_wait += _direct_reclaim(s, HPAGE_PAGES, t, g, cost, overhead_pages)
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
        if host_used_pages(s) + 1 > s.hi[HI_RAM_PAGES]:
            reclaim_wait += _direct_reclaim(s, 1, t, g, cost, overhead_pages)
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
        s.hf[HF_CPU] += stall
        s.gf[g, GF_HOST_CPU] += stall
        s.gf[g, GF_DEBT] += stall
        s.gf[g, GF_STALL] += stall
        # refaults are the guest-visible price of hinting
        s.gf[g, GF_GUEST_CPU] += refault_cost
        s.gf[g, GF_REFAULT_STALL] += refault_cost
    if reclaim_wait > 0.0:
        s.gf[g, GF_DEBT] += reclaim_wait
        s.gf[g, GF_STALL] += reclaim_wait
    return stall + reclaim_wait


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
