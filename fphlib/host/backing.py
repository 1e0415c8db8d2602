"""Host backing of guest memory: lazy faults, THP, swap-in and discards.

Model (docs/design.md §3.3):

- A guest page is backed lazily on its first touch (EPT violation + zero-fill, cost
  ``fault_4k``). With ``host_thp`` a touch of a 2 MiB region that has no page present backs
  the whole region as one THP (cost ``fault_2m``, as ``do_huge_pmd_anonymous_page``); a region
  that already has 4 KiB pages present faults per 4 KiB until khugepaged collapses it
  (:mod:`fphlib.host.daemons`).
- A discard (QEMU ``ram_block_discard_range`` → ``MADV_DONTNEED``) of a whole THP zaps the PMD
  (``madvise_2m``); a discard of part of a THP splits it first (``thp_split``) and then zaps
  4 KiB PTEs (``madvise_4k``). Discarding a swapped page frees its swap slot. A discard of a
  page that holds guest data (``PG_DATA``) is a lost write: counted, never hidden.
- A fault that would leave the host's free memory below the min watermark enters direct
  reclaim first (:func:`fphlib.host.reclaim.ensure_ram`, reached through the run's
  ``host_ensure_ram`` hook): the faulting guest stalls for it (``reclaim_stall_s``).
- ``host_madvise="free"`` (``PI.MADV_FREE``; RFC v10/v11 of Nitesh's hinting): a discard is
  ``MADV_FREE`` instead: the page stays backed and in RSS, lazily freed, until host reclaim
  takes it - first, before any anonymous page, as vmscan keeps lazily-freed pages on the
  inactive file list (mm/swap.c ``lru_lazyfree``) and reclaims them without swap I/O
  (mm/vmscan.c ``shrink_folio_list``) - or until a guest write keeps it (no refault, no loss).
- A swapped page touched again is swapped in: the faulting guest stalls ``max(swap_in, queue
  wait + transfer)`` on the swap device's queue (``swap_in_stall_s``).

The host's memory accounting, watermarks and swap device are :mod:`fphlib.host.memory`,
reclaim and swap-out :mod:`fphlib.host.reclaim`, the OOM killer :mod:`fphlib.host.oom`; their
names are re-exported here for callers (``from fphlib.host.backing import reclaim`` keeps
working).

Simplifications: KSM, swap readahead (``page-cluster``) and NUMA are not modelled; a
lazily-freed THP is split like a discarded one (the kernel keeps a whole PMD-mapped THP
intact under MADV_FREE); lazily-freed pages are all taken before anonymous pages, whatever
``swappiness`` (the kernel balances the file and anon lists, and prefers the file list while
it holds enough inactive pages: ``cache_trim_mode``).
"""

import numpy as np

from .._jit import borrowed, jit, load_8_bytes
from ..costs import (
    C_FAULT_2M,
    C_FAULT_4K,
    C_MADVISE_2M,
    C_MADVISE_4K,
    C_MADVISE_CALL,
    C_SWAP_IN,
    C_THP_SPLIT,
)
from ..state.borrow import borrow_state, borrow_zone
from ..state.hooks import host_ensure_ram
from ..state.layout import GF, GI, HF, HI, PG_DISCARDED, PG_SWAPPED, PI, ST_RUNNING
from ..state.zone import PG_BACKED, PG_DATA, PG_DATA_SHIFT
from .memory import (
    BACKED_OR_LAZY,
    BYTES_X8,
    HOST_BITS_CLEAR,
    HPAGE_PAGES,
    HPAGE_SHIFT,
    NOT_BACKED,
    NOT_DISCARDED,
    NOT_REFERENCED,
    NOT_SWAPPED,
    WRITTEN,
    below_min,
    host_used_pages,
    note_peak,
    record_event,
    swap_io,
    wake_kswapd,
)
from .oom import (
    NO_VICTIM,
    OOM_SCORE_ADJ_MAX,
    OOM_SCORE_ADJ_MIN,
    kill_guest,
    oom_badness,
    oom_kill,
    oom_victim,
    page_table_pages,
)
from .reclaim import SWAP_CLUSTER_MAX, ensure_ram, reclaim

# this module's own names, then those of memory, oom and reclaim (re-exported for callers)
__all__ = [
    "discard", "region_count_ok", "touch",
    # memory
    "BACKED_OR_LAZY", "HOST_BITS_CLEAR", "HPAGE_PAGES", "HPAGE_SHIFT", "NOT_BACKED",
    "NOT_DISCARDED", "NOT_REFERENCED", "NOT_SWAPPED", "WRITTEN", "below_min",
    "host_used_pages", "note_peak", "record_event", "swap_io", "wake_kswapd",
    # oom
    "NO_VICTIM", "OOM_SCORE_ADJ_MAX", "OOM_SCORE_ADJ_MIN", "kill_guest", "oom_badness",
    "oom_kill", "oom_victim", "page_table_pages",
    # reclaim
    "SWAP_CLUSTER_MAX", "ensure_ram", "reclaim",
]


# how the host discards a page a guest hinted or ballooned (SimConfig.host_madvise; None: the
# mechanism's own MADVISE, its series' QEMU)
MADVISE_CHOICES = ("dontneed", "free")


@jit
def _direct_reclaim(s, need, now, g, cost, overhead_pages):
    """``ensure_ram`` from guest g's fault at ``now``; return how long the vCPU waits: the
    reclaim's host CPU, or until the swap device has written what it swapped out."""
    s = borrow_state(s)
    cost = borrowed(cost)
    before = s.hf[HF.CPU]
    pages = s.hi[HI.DIRECT_PAGES]
    host_ensure_ram(s, need, now, g, cost, overhead_pages)  # ensure_ram, its own compile unit
    wait = s.hf[HF.CPU] - before
    if s.hi[HI.DIRECT_PAGES] != pages and s.hf[HF.SWAP_BUSY] - now > wait:
        wait = s.hf[HF.SWAP_BUSY] - now
    return wait


@jit
def touch(s, g, z, pfn, npages, t, cost, overhead_pages):
    """The guest writes pages [pfn, pfn+npages): back them, mark data; return stall seconds.

    The guest's clock during the call is ``t`` plus its unpaid stalls (``GF.DEBT``) plus the
    stalls of this call: swap-device waits are measured from there. Returns -1.0 if the host
    OOM-killed guest g meanwhile.
    """
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    off = s.gi[g, GI.OFF]
    flags = z.flags
    thp = s.pi[PI.THP]
    stall = 0.0  # host CPU on the faulting vCPU (faults, swap-in)
    wait = 0.0  # swap-in beyond its CPU: the swap device's queue
    refault_cost = 0.0
    reclaim_wait = 0.0  # direct reclaim: host CPU already, and the faulting vCPU's wait
    for p in range(pfn, pfn + npages):
        f = flags[p]
        if f & PG_BACKED:
            if f & PG_DISCARDED:  # a write cancels a lazy free: kept, no fault, nothing lost
                f &= NOT_DISCARDED
                s.gi[g, GI.LAZYFREE] -= 1
                s.hi[HI.LAZYFREE] -= 1
            flags[p] = f | WRITTEN
            continue
        r = (off + p) >> HPAGE_SHIFT
        if f & PG_SWAPPED:
            if below_min(s, 1):
                now = t + s.gf[g, GF.DEBT] + stall + wait + reclaim_wait
                reclaim_wait += _direct_reclaim(s, 1, now, g, cost, overhead_pages)
            if s.gi[g, GI.STATUS] != ST_RUNNING:
                return -1.0
            flags[p] = (flags[p] & NOT_SWAPPED) | PG_BACKED | WRITTEN
            s.gi[g, GI.SWAP] -= 1
            s.hi[HI.SWAP] -= 1
            s.gi[g, GI.RSS] += 1
            s.hi[HI.RSS] += 1
            now = t + s.gf[g, GF.DEBT] + stall + wait + reclaim_wait
            took = swap_io(s, now, 1) - now  # queue wait + the 4 KiB read
            extra = took - cost[C_SWAP_IN] if took > cost[C_SWAP_IN] else 0.0
            stall += cost[C_SWAP_IN]
            wait += extra
            s.gi[g, GI.SWAPINS] += 1
            s.gf[g, GF.SWAPIN_STALL] += cost[C_SWAP_IN] + extra
            s.gi[g, GI.VMEXITS] += 1
            continue
        if thp and s.reg_cnt[r] == 0:
            if below_min(s, HPAGE_PAGES):
                now = t + s.gf[g, GF.DEBT] + stall + wait + reclaim_wait
                reclaim_wait += _direct_reclaim(s, HPAGE_PAGES, now, g, cost, overhead_pages)
            if s.gi[g, GI.STATUS] != ST_RUNNING:
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
            s.gi[g, GI.RSS] += HPAGE_PAGES
            s.hi[HI.RSS] += HPAGE_PAGES
            stall += cost[C_FAULT_2M]
            s.gi[g, GI.FAULTS] += 1
            s.gi[g, GI.VMEXITS] += 1
            if refaulted:
                s.gi[g, GI.REFAULTS] += refaulted
                s.gi[g, GI.RETURNED] -= refaulted
                refault_cost += cost[C_FAULT_2M]
            continue
        if below_min(s, 1):
            now = t + s.gf[g, GF.DEBT] + stall + wait + reclaim_wait
            reclaim_wait += _direct_reclaim(s, 1, now, g, cost, overhead_pages)
        if s.gi[g, GI.STATUS] != ST_RUNNING:
            return -1.0
        f = flags[p]
        if f & PG_DISCARDED:
            s.gi[g, GI.REFAULTS] += 1
            s.gi[g, GI.RETURNED] -= 1
            refault_cost += cost[C_FAULT_4K]
        flags[p] = (f & NOT_DISCARDED) | PG_BACKED | WRITTEN
        s.reg_cnt[r] += 1
        s.gi[g, GI.RSS] += 1
        s.hi[HI.RSS] += 1
        stall += cost[C_FAULT_4K]
        s.gi[g, GI.FAULTS] += 1
        s.gi[g, GI.VMEXITS] += 1
    if stall > 0.0:
        note_peak(s)
        wake_kswapd(s, t)
        s.hf[HF.CPU] += stall
        s.gf[g, GF.HOST_CPU] += stall
        s.gf[g, GF.DEBT] += stall
        s.gf[g, GF.STALL] += stall
        # refaults are the guest-visible price of hinting
        s.gf[g, GF.GUEST_CPU] += refault_cost
        s.gf[g, GF.REFAULT_STALL] += refault_cost
    waited = wait + reclaim_wait
    if waited > 0.0:
        s.gf[g, GF.DEBT] += waited
        s.gf[g, GF.STALL] += waited
        s.gf[g, GF.RECLAIM_STALL] += reclaim_wait
    return stall + waited


@jit(inline="always")
def count_data_pages(flags, start, end):
    """Pages in [start, end) flagged ``PG_DATA``, eight flag bytes per load: the ``PG_DATA``
    bit of each byte moved to the byte's low bit, and the eight 0/1 bytes summed by one
    multiply into the top byte. The page-by-page sum LLVM vectorized widened every byte to a
    64-bit lane: half of ``xbitmap_hints``' worker time on the demo, which re-hints the same
    discarded free blocks every pass."""
    n = 0
    p = start
    while p + 8 <= end:  # unaligned loads: no page-by-page lead-in to an 8-byte boundary
        bits = (load_8_bytes(flags, p) >> np.uint64(PG_DATA_SHIFT)) & BYTES_X8
        n += np.int64((bits * BYTES_X8) >> np.uint64(56))
        p += 8
    while p < end:
        n += (flags[p] & PG_DATA) >> PG_DATA_SHIFT
        p += 1
    return n


@jit
def discard(s, g, z, pfn, npages, cost):
    """Host ``MADV_DONTNEED`` (or, with ``PI.MADV_FREE``, ``MADV_FREE``) of guest pages
    [pfn, pfn+npages); return host CPU seconds.

    DONTNEED counts a lost write for every page that still holds guest data (``PG_DATA``).
    FREE (mm/madvise.c ``madvise_free_pte_range``) makes each backed PTE old and clean and
    frees the page lazily: it stays backed, in RSS, flagged ``PG_DISCARDED`` too, until host
    reclaim takes it (:func:`fphlib.host.reclaim.reclaim`, which counts the lost write
    then) or a guest write keeps it (:func:`touch`). A swapped page's slot is freed either way.
    """
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    off = s.gi[g, GI.OFF]
    flags = z.flags
    spent = cost[C_MADVISE_CALL]
    end = pfn + npages
    p = pfn
    lost = 0
    returned = 0
    lazy = 0
    lazily = s.pi[PI.MADV_FREE]
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
                s.gi[g, GI.THP_SPLITS] += 1
        if s.reg_cnt[r] == 0:
            # nothing here is backed or swapped (a region discarded before, as hints of
            # the same free blocks again are): the per-page pass below would change no flag
            # and no cost, only count the pages still flagged with guest data (lost writes
            # the host never held); counted without branches
            lost += count_data_pages(flags, p, seg_end)
            p = seg_end
            continue
        # the region's counts change once per region: stores to the counters in the loop were
        # a dependent read-modify-write chain per page (the compiler cannot keep them in
        # registers, as far as it knows they may share memory with the flags)
        unbacked = 0
        unswapped = 0
        for q in range(p, seg_end):
            f = flags[q]
            if lazily and f & PG_BACKED:
                if not f & PG_DISCARDED:
                    flags[q] = (f | PG_DISCARDED) & NOT_REFERENCED
                    lazy += 1
                if not whole:
                    spent += cost[C_MADVISE_4K]
                continue
            if f & PG_DATA:
                lost += 1
            if f & PG_BACKED:
                flags[q] = (f & NOT_BACKED) | PG_DISCARDED
                unbacked += 1
                if not whole:
                    spent += cost[C_MADVISE_4K]
            elif f & PG_SWAPPED:
                flags[q] = (f & NOT_SWAPPED) | PG_DISCARDED
                unswapped += 1
        if unbacked + unswapped:
            returned += unbacked + unswapped
            s.reg_cnt[r] -= unbacked + unswapped
            s.gi[g, GI.RSS] -= unbacked
            s.hi[HI.RSS] -= unbacked
            if unswapped:
                s.gi[g, GI.SWAP] -= unswapped
                s.hi[HI.SWAP] -= unswapped
        p = seg_end
    if lost:
        s.gi[g, GI.LOST] += lost
    s.gi[g, GI.RETURNED] += returned
    s.gi[g, GI.LAZYFREE] += lazy
    s.hi[HI.LAZYFREE] += lazy
    s.hf[HF.CPU] += spent
    s.gf[g, GF.HOST_CPU] += spent
    return spent


def region_count_ok(flags, reg_cnt, reg_huge):
    """Python-side check used by tests: reg_cnt equals present pages per region."""
    present = ((flags & (PG_BACKED | PG_SWAPPED)) != 0).reshape(-1, HPAGE_PAGES).sum(axis=1)
    huge_ok = np.all((reg_huge == 0) | (present == HPAGE_PAGES))
    return bool(np.array_equal(present, reg_cnt) and huge_ok)
