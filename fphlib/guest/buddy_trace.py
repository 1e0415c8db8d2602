"""Replay of an alloc/free trace (the format of docs/design.md §5) on a zone, in one jitted
call: the loop ``benchmarks/buddy_replay.py`` times against the C reference allocator
(``ref_buddy.c``, docs/design.md §5).

Each op is ``__rmqueue_smallest`` or ``__free_one_page`` (mm/page_alloc.c, v5.10, as modelled
by :mod:`fphlib.guest.buddy_kernels`); a bad op stops the replay with a ``TRACE_*`` code, which
:meth:`fphlib.guest.buddy.BuddyAllocator.replay` turns into a message.
"""

import numpy as np

from .._jit import jit
from ..state.zone import ALLOC_BASE, CFG_TRACK
from .buddy_kernels import free_one_page, rmqueue_smallest, untracked_zone

# Why ``_replay`` stopped: TRACE_OK, or the first bad op (its index is returned alongside).
TRACE_OK = 0
TRACE_BAD_KIND = 1  # kind not 0 (alloc) or 1 (free)
TRACE_BAD_ORDER = 2  # order outside 0..n_orders-1
TRACE_BAD_SLOT = 3  # slot outside 0..n_slots-1
TRACE_NOT_ALLOCATED = 4  # free of a block not allocated with that order (double free, ...)
TRACE_SLOT_FREED = 5  # free through a slot whose block was already freed through it
SLOT_FREED = -2  # ``held`` marker of a slot whose block was freed (-1: never got a block)


@jit
def _replay(zone, kind, order, slot, n_slots):
    """Replay a trace (see ``_replay_loop``); without tracking code when tracking is off."""
    held = np.full(n_slots, -1, np.int32)
    if zone.cfg[CFG_TRACK] == 0:
        return _replay_loop(untracked_zone(zone), kind, order, slot, held)
    return _replay_loop(zone, kind, order, slot, held)


@jit
def _replay_sampled(zone, kind, order, slot, n_slots, ends, out):
    """Replay a trace in segments ``[ends[i-1], ends[i])`` (one slot table throughout),
    copying ``nr_free`` into ``out[i]`` after each; returns what ``_replay_loop`` returns
    (the bad op's index counts from the trace's start)."""
    held = np.full(n_slots, -1, np.int32)
    failed = 0
    checksum = np.uint64(0)
    a = 0
    for i in range(ends.shape[0]):
        b = ends[i]
        if zone.cfg[CFG_TRACK] == 0:
            f, c, bad, code = _replay_loop(untracked_zone(zone), kind[a:b], order[a:b],
                                           slot[a:b], held)
        else:
            f, c, bad, code = _replay_loop(zone, kind[a:b], order[a:b], slot[a:b], held)
        failed += f
        checksum += c
        if bad >= 0:
            return failed, checksum, a + bad, code
        out[i, :] = zone.nr_free
        a = b
    return failed, checksum, -1, TRACE_OK


@jit
def _replay_loop(zone, kind, order, slot, held):
    """Replay a trace, stopping before the first bad op; ``held[s]`` is the pfn slot s holds
    (-1 none, SLOT_FREED freed), updated in place.

    Returns ``(failed allocs, pfn checksum, index of the bad op or -1, TRACE_* code)``; the
    ops before a bad one have been applied. The checks keep every index in bounds and free
    only blocks allocated with the order given, so no input can corrupt the zone. Like the C
    reference, a slot that is overwritten before its free leaks the earlier block, and the free
    of a slot that never got a block is a no-op (as after a failed alloc). A second free
    through a slot is refused (``TRACE_SLOT_FREED``): the block it held may have been handed to
    another slot since, and the state check alone would free that slot's block.
    """
    n_orders = zone.head.shape[0]
    n_slots = held.shape[0]
    failed = 0
    checksum = np.uint64(0)
    bad = -1
    code = TRACE_OK
    for i in range(kind.shape[0]):
        o = order[i]
        s = slot[i]
        if o < 0 or o >= n_orders:
            bad, code = i, TRACE_BAD_ORDER
            break
        if s < 0 or s >= n_slots:
            bad, code = i, TRACE_BAD_SLOT
            break
        k = kind[i]
        if k == 0:
            pfn = rmqueue_smallest(zone, o)
            held[s] = pfn
            if pfn < 0:
                failed += 1
            else:
                checksum += np.uint64(pfn)
        elif k == 1:
            pfn = held[s]
            if pfn >= 0:
                if zone.state[pfn] != ALLOC_BASE + o:
                    bad, code = i, TRACE_NOT_ALLOCATED
                    break
                free_one_page(zone, pfn, o, False)
                held[s] = SLOT_FREED
            elif pfn == SLOT_FREED:  # its block may now be another slot's: never free it
                bad, code = i, TRACE_SLOT_FREED
                break
        else:
            bad, code = i, TRACE_BAD_KIND
            break
    return failed, checksum, bad, code


@jit
def replay_trace(zone, kind, order, slot, n_slots):
    """Run a whole alloc/free trace; return (failed allocs, sum of pfns allocated).

    ``slot`` values must be below ``n_slots``. A bad op raises ValueError after the ops before
    it were applied (:meth:`BuddyAllocator.replay` names the op and restores the allocator).
    """
    failed, checksum, bad, code = _replay(zone, kind, order, slot, n_slots)
    if bad >= 0:
        raise ValueError("replay_trace: bad trace op (see BuddyAllocator.replay for details)")
    return failed, checksum
