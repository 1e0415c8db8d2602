"""The host's OOM killer: which guest dies when reclaim cannot make room.

Follows mm/oom_kill.c: with swap full or absent the OOM killer (``out_of_memory``) kills the
running guest (its QEMU process) with the highest ``oom_badness``: RSS + swap entries + page
tables, plus ``oom_score_adj * totalpages / 1000``; ``oom_score_adj = -1000`` is never chosen.
Its memory is released and the run goes on without it. With no killable guest the host panics
("System is deadlocked on memory"): every guest dies (event ``host_panic``). Direct reclaim
(:func:`fphlib.host.reclaim.ensure_ram`) calls it when swapping frees nothing.

Simplifications: a guest's page tables are one PTE page per 2 MiB region with pages present
(a THP deposits one too) plus one PMD page per GiB; the OOM victim's RSS includes the VMM
overhead.
"""

import numpy as np

from .._jit import jit
from ..state.borrow import borrow_state
from ..state.layout import EV_HOST_PANIC, EV_OOM_KILL, GI, HI, PI, ST_KILLED, ST_RUNNING
from ..units import PAGE_SIZE
from .memory import HOST_BITS_CLEAR, HPAGE_SHIFT, record_event

OOM_SCORE_ADJ_MIN = -1000  # include/uapi/linux/oom.h: never OOM-kill
OOM_SCORE_ADJ_MAX = 1000
NO_VICTIM = np.iinfo(np.int64).min  # oom_badness's LONG_MIN


@jit(inline="always")  # one caller: no compile unit of its own
def kill_guest(s, g, t, overhead_pages):
    """The host OOM killer kills guest g: all its memory and swap go back to the host."""
    s = borrow_state(s)
    off = s.gi[g, GI.OFF]
    n = s.gi[g, GI.NPAGES]
    for p in range(off, off + n):
        s.flags[p] &= HOST_BITS_CLEAR
    for r in range(off >> HPAGE_SHIFT, (off + n) >> HPAGE_SHIFT):
        s.reg_cnt[r] = 0
        s.reg_huge[r] = 0
    value = (s.gi[g, GI.RSS] + s.gi[g, GI.SWAP]) * PAGE_SIZE
    s.hi[HI.RSS] -= s.gi[g, GI.RSS]
    s.hi[HI.SWAP] -= s.gi[g, GI.SWAP]
    s.hi[HI.LAZYFREE] -= s.gi[g, GI.LAZYFREE]
    s.gi[g, GI.RSS] = 0
    s.gi[g, GI.SWAP] = 0
    s.gi[g, GI.LAZYFREE] = 0
    s.gi[g, GI.STATUS] = ST_KILLED
    s.hi[HI.OVERHEAD_PAGES] -= overhead_pages
    s.hi[HI.OOM_KILLS] += 1
    record_event(s, t, g, EV_OOM_KILL, value)


@jit(inline="always")
def page_table_pages(s, g):
    """Guest g's host page-table pages (``mm_pgtables_bytes / PAGE_SIZE``): a PTE page per 2 MiB
    region with pages present (a THP deposits one, ``pgtable_trans_huge_deposit``) and a PMD
    page per GiB."""
    s = borrow_state(s)
    off = s.gi[g, GI.OFF]
    n = s.gi[g, GI.NPAGES]
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
    adj = s.gi[g, GI.OOM_ADJ]
    if adj == OOM_SCORE_ADJ_MIN:
        return NO_VICTIM
    points = s.gi[g, GI.RSS] + overhead_pages + s.gi[g, GI.SWAP] + page_table_pages(s, g)
    totalpages = s.hi[HI.RAM_PAGES] + s.hi[HI.SWAP_CAP]  # totalram_pages + total_swap_pages
    return points + adj * (totalpages // 1000)


@jit
def oom_victim(s, overhead_pages):
    """``select_bad_process``: the running guest with the highest badness (on a tie the later
    one, as ``oom_evaluate_task`` replaces on ``>=``); -1 if none is killable."""
    s = borrow_state(s)
    victim = -1
    best = NO_VICTIM
    for g in range(s.pi[PI.G]):
        if s.gi[g, GI.STATUS] == ST_RUNNING:
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
    s.hi[HI.PANICS] += 1
    record_event(s, t, requester, EV_HOST_PANIC, 0.0)
    for g in range(s.pi[PI.G]):
        if s.gi[g, GI.STATUS] == ST_RUNNING:
            kill_guest(s, g, t, overhead_pages)
