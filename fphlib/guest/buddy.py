"""Linux's buddy allocator for one zone, as numba kernels on plain arrays.

Semantics follow mm/page_alloc.c of v5.10 (reference/kernel-mechanisms.md §1.3-1.5):
free lists of head pages per order, ``nr_free`` counted in blocks, ``__rmqueue_smallest``
taking the list head of the smallest order that fits and ``expand()`` putting the upper
halves at list heads, ``__free_one_page`` merging with ``pfn ^ (1 << order)`` and placing the
result at the tail when ``buddy_merge_likely()`` holds (placement ``"kernel"``) or always at
the head (placement ``"head"``); isolated pages go back at the tail (``FPI_TO_TAIL``).

The zone is a :class:`Zone` tuple of arrays so that the simulation engine can call the same
kernels from its own jitted loop on views of its per-guest arrays. The kernels are
``inline="always"`` and each starts with ``borrow_zone`` (see the note there): together they
make a loop over them compile to what a hand-written monolithic loop gives, ~0.85x the
speed of ``../bench/ref_buddy.c`` (``benchmarks/buddy_replay.py``).
:class:`BuddyAllocator` is the validated Python front end (DESIGN §4).

Simplifications (each deliberate):

- one migratetype and no ISOLATE pageblocks, so merging always continues up to the top order
  (the kernel's two-stage merge across pageblock_order only differs when a pageblock is
  isolated) and ``__rmqueue_fallback`` never runs;
- no page shuffling (``shuffle_pick_tail``), so order-10 frees go to the head;
- one zone per guest; memory is a whole number of top-order blocks, so a buddy pfn is
  always inside the zone (the kernel's ``pfn_valid_within`` checks are always true);
- no watermarks, no GFP flags, no per-CPU lists here (those are the callers': ``pcp.py``,
  the engine), and ``page_reporting_notify_free`` is left to the reporting mechanism;
- pages are bare indices: PageBuddy + ``buddy_order()`` live in ``Zone.state`` together with
  "allocated with order o", "isolated" and "on a pcp list", which the kernel does not store
  (it knows them from context) but a simulator must check.
"""

import operator
from typing import NamedTuple

import numpy as np
from numba.core import types
from numba.extending import overload

from .._jit import borrowed_all, jit
from ..units import NR_ORDERS
from .xbitmap import (
    M_TRACK_FN,
    TRACK_BITMAP,
    bitmap_track_ptr,
    read_only,
    track_rebuild,
    tracking_arrays,
    tracking_mismatch,
    tracking_nbytes,
    xb_stats,
    xb_track_add_call,
    xb_track_call,
    xb_track_del_call,
)

PAGEBLOCK_ORDER = 9  # x86-64 with hugetlb: HUGETLB_PAGE_ORDER

# ``Zone.state`` per page. A free head holds its order (0..10), like PageBuddy + buddy_order().
NOT_HEAD = -1  # a tail page of some block
ALLOC_BASE = 16  # allocated head: ALLOC_BASE + order
ISOLATED_BASE = 32  # isolated head (``__isolate_free_page``): ISOLATED_BASE + order
ON_PCP = 48  # order-0 page sitting on a per-CPU list (allocated as far as the buddy can see)
# order-0 page-cache page, clean or dirty (fphlib.guest.reclaim): allocated as far as the
# buddy, the free-page trackers and reporting can see, as in the kernel (PG_lru/PG_dirty)
PC_CLEAN = 56
PC_DIRTY = 57

# ``Zone.flags`` per page.
PG_REPORTED = np.uint8(1)  # PageReported: valid only on free heads
PG_BACKED = np.uint8(2)  # host has backing memory for this page
PG_DATA = np.uint8(4)  # the guest wrote data it still needs
PG_IN_FLIGHT = np.uint8(8)  # hinted to the host, discard pending

# ``Zone.cfg``
CFG_PLACEMENT = 0  # 0 = head, 1 = kernel (buddy_merge_likely)
CFG_TRACK = 1  # free-page tracking in the xbitmap: 0 off, 1 per page, 2 per block head
# 1 = the ``page_reporting_enabled`` static key is off: no page is ever PageReported, so
# ``del_page_from_free_list`` skips the PageReported test (page_reported() in v5.10
# mm/page_reporting.h). 0 (the default) always tests, which is correct either way.
CFG_REPORTING_OFF = 2
CFG_LEN = 4

PLACEMENTS = {"head": 0, "kernel": 1}
# BuddyAllocator(track=...) -> Zone.cfg[CFG_TRACK] (xbitmap.TRACK_*)
TRACKS = {None: 0, "page": 1, "head": 2, "bitmap": 3}


class Zone(NamedTuple):
    """The arrays of one zone; every kernel takes one of these.

    ``next``/``prev`` link free heads into per-order lists (-1 ends a list), ``state`` and
    ``flags`` are per page (10 bytes per page in all), ``head``/``tail``/``nr_free`` per order.
    ``xb_*`` hold the optional xbitmap of free pages (empty pools when tracking is off);
    layout and entry points in :mod:`fphlib.guest.xbitmap`. Kernels also take the zone
    returned by :func:`untracked_zone` (``xb_*`` None), which compiles without tracking code.
    """

    next: np.ndarray  # int32[n_pages]
    prev: np.ndarray  # int32[n_pages]
    state: np.ndarray  # int8[n_pages]
    flags: np.ndarray  # uint8[n_pages]
    head: np.ndarray  # int32[n_orders]
    tail: np.ndarray  # int32[n_orders]
    nr_free: np.ndarray  # int64[n_orders]
    cfg: np.ndarray  # int64[CFG_LEN]
    xb_nodes: np.ndarray  # int64[node rows, xbitmap.NODE_WIDTH]
    xb_leaves: np.ndarray  # uint64[leaf rows, xbitmap.LEAF_WORDS]
    xb_meta: np.ndarray  # int64[xbitmap.META_LEN]


# ---------------------------------------------------------------------------------------------
# Borrowed views: why the kernels are fast when called from a loop.
#
# Numba reference-counts every array it touches: reading ``zone.next`` out of the tuple, or
# binding an inlined function's argument, emits NRT_incref/NRT_decref, which are atomic
# read-modify-writes on the array's MemInfo. The LLVM refcount-pruning pass removes the pairs
# that sit in one basic block, but not those spread over the branches of the merge and split
# loops: the Zone-tuple kernels ran churn5m in ~0.5 s against 0.04 s for the C reference, with
# 70+ atomic increfs left inside the loop. Every kernel therefore starts with
# ``zone = borrow_zone(zone)``: the same arrays with a NULL MemInfo (``fphlib._jit.borrowed``),
# for which NRT_incref is a no-op that LLVM folds away (the prologue's own incref/decref
# pairs share one basic block and are pruned). A borrowed array is valid only while the
# caller holds the original zone, which is always the case inside a kernel call; never
# return or store one.


@jit(inline="always")
def borrow_zone(zone):
    """The zone's arrays as borrowed views; call once at the top of a hot jitted loop."""
    return borrowed_all(zone)


def new_zone(n_pages, n_orders=NR_ORDERS, placement="kernel", track=0, reporting=True):
    """Allocate the arrays of a zone with every page free as top-order blocks in pfn order.

    ``reporting=False`` sets ``CFG_REPORTING_OFF`` (no page will ever be PageReported).
    """
    # free-page xbitmap (fphlib.guest.xbitmap layout), pre-sized for pfns [0, n_pages)
    xb_nodes, xb_leaves, xb_meta = tracking_arrays(n_pages, track)
    zone = Zone(
        next=np.full(n_pages, -1, np.int32),
        prev=np.full(n_pages, -1, np.int32),
        state=np.full(n_pages, NOT_HEAD, np.int8),
        flags=np.zeros(n_pages, np.uint8),
        head=np.full(n_orders, -1, np.int32),
        tail=np.full(n_orders, -1, np.int32),
        nr_free=np.zeros(n_orders, np.int64),
        cfg=np.zeros(CFG_LEN, np.int64),
        xb_nodes=xb_nodes,
        xb_leaves=xb_leaves,
        xb_meta=xb_meta,
    )
    zone.cfg[CFG_PLACEMENT] = PLACEMENTS[placement]
    zone.cfg[CFG_TRACK] = track
    zone.cfg[CFG_REPORTING_OFF] = 0 if reporting else 1
    init_free_lists(kernel_zone(zone))
    return zone


def kernel_zone(zone):
    """The zone as the kernels should get it: its tracking mode becomes part of the type.

    Without tracking the xbitmap fields are None (:func:`untracked_zone` on the Python side:
    no tracking code is even compiled); with a flat bitmap (TRACK_BITMAP) ``xb_nodes`` is
    None, which selects the bitmap's own small hook at compile time.
    """
    track = zone.cfg[CFG_TRACK]
    if track == 0:
        return zone._replace(xb_nodes=None, xb_leaves=None, xb_meta=None)
    if track == TRACK_BITMAP:
        return zone._replace(xb_nodes=None)
    return zone


@jit
def init_free_lists(zone):
    """Free every page as top-order blocks listed in pfn order (``__free_pages_core`` tail)."""
    zone = borrow_zone(zone)
    top = zone.head.shape[0] - 1
    for pfn in range(0, zone.state.shape[0], 1 << top):
        add_to_free_list_tail(zone, pfn, top)


# ---------------------------------------------------------------------------------------------
# Page indices are cast to ``np.uintp`` where they index the per-page arrays: numba wraps
# negative signed indices (``i < 0 ? i + n : i``), which puts a compare and a select on every
# step of the pointer chasing through next/prev/state; unsigned indices skip it (churn5m
# replay 0.051 -> 0.045 s, measured interleaved with the C reference). Every cast index is
# a valid pfn: list links are tested for -1 first.
#
# List operations (the only places where a block enters or leaves a free list: the places
# where Linux holds zone->lock and where free-page tracking hooks in).


# The list operations reach the tracking hooks through ``_track_add_hook``/``_track_del_hook``
# (Wei Wang's proposal, seed thread: set the block's bits under zone->lock when it enters a
# free list, clear them when it leaves), only when CFG_TRACK is set. What each costs in the
# churn5m replay, measured against the plain replay (benchmarks/tracking_overhead.py):
#
# - xbitmap zones call ``xbitmap.xb_track_ptr`` out of line with the arrays' addresses
#   (2.6x; 3.2x when the three arrays crossed the call as numba arrays, 7.7x through a
#   zone-taking wrapper kernel), through its address in ``xb_meta[M_TRACK_FN]`` so that zones
#   without an xbitmap never compile it (``xbitmap.tracking_arrays`` sets it). Inlining the
#   hook instead was slower every time: 5.2-6.2x with the xbitmap, 4.4x even with the flat
#   bitmap, as the bigger loop body spills the allocator's own state; and
#   ``@overload(..., inline="always")`` miscompiled the zone kernels in numba 0.68 (every
#   allocation failed). The int64 casts keep one signature.
# - flat-bitmap zones (:func:`kernel_zone`: ``xb_nodes`` None) call the small
#   ``xbitmap.bitmap_track_ptr``, chosen at compile time (1.5x);
# - an :func:`untracked_zone` (xbitmap fields None) compiles them to nothing, so the
#   CFG_TRACK test and the cold call sites vanish from hot loops: that is worth ~7 % of the
#   churn5m replay (measured interleaved with the C reference).


def _track_add_hook(zone, pfn, order):
    """Python stand-in; jitted code gets the overload below."""
    xb_track_add_call(zone.xb_nodes, zone.xb_leaves, zone.xb_meta, pfn, order,
                      zone.cfg[CFG_TRACK])


def _track_del_hook(zone, pfn, order):
    """Python stand-in; jitted code gets the overload below."""
    xb_track_del_call(zone.xb_nodes, zone.xb_leaves, zone.xb_meta, pfn, order,
                      zone.cfg[CFG_TRACK])


def _untracked_type(zone):
    return isinstance(zone, types.BaseNamedTuple) and isinstance(zone.types[9], types.NoneType)


def _bitmap_type(zone):
    """A :func:`kernel_zone` with a flat bitmap: ``xb_nodes`` None, ``xb_leaves`` an array."""
    return isinstance(zone.types[8], types.NoneType) and not _untracked_type(zone)


def _hook_overload(add):
    """The overload of ``_track_add_hook`` (add) or ``_track_del_hook``: chosen by zone type."""

    def ol(zone, pfn, order):
        if _untracked_type(zone):
            return lambda zone, pfn, order: None
        if _bitmap_type(zone):
            return lambda zone, pfn, order: bitmap_track_ptr(
                zone.xb_leaves.ctypes.data, zone.xb_leaves.shape[0], zone.xb_meta.ctypes.data,
                pfn, order, add)

        def impl(zone, pfn, order):
            fn = zone.xb_meta[M_TRACK_FN]
            if fn == 0:  # arrays not made by tracking_arrays: never call address 0
                raise RuntimeError("xbitmap tracking arrays must come from tracking_arrays()")
            xb_track_call(fn, zone.xb_nodes.ctypes.data, zone.xb_nodes.shape[0],
                          zone.xb_leaves.ctypes.data, zone.xb_leaves.shape[0],
                          zone.xb_meta.ctypes.data, pfn, order, zone.cfg[CFG_TRACK], add)

        return impl

    return ol


overload(_track_add_hook)(_hook_overload(True))
overload(_track_del_hook)(_hook_overload(False))
# the same hooks for mechanisms that edit a zone's free-page bits themselves (read-only hints)
track_block_add = _track_add_hook
track_block_del = _track_del_hook


@jit(inline="always")
def untracked_zone(zone):
    """The zone without its xbitmap arrays, for hot loops while CFG_TRACK is 0.

    Kernels given it skip free-page tracking at compile time. Use it only when tracking is
    off: with CFG_TRACK set, blocks would move without their bits following.
    """
    return Zone(
        zone.next, zone.prev, zone.state, zone.flags, zone.head, zone.tail, zone.nr_free,
        zone.cfg, None, None, None,
    )


@jit(inline="always")
def add_to_free_list(zone, pfn, order):
    """``add_to_free_list``: link a free head at the list head, ``nr_free++``."""
    zone = borrow_zone(zone)
    first = zone.head[order]
    zone.next[np.uintp(pfn)] = first
    zone.prev[np.uintp(pfn)] = -1
    if first >= 0:
        zone.prev[np.uintp(first)] = pfn
    else:
        zone.tail[order] = pfn
    zone.head[order] = pfn
    zone.state[np.uintp(pfn)] = order
    zone.nr_free[order] += 1
    if zone.cfg[CFG_TRACK]:
        _track_add_hook(zone, np.int64(pfn), np.int64(order))


@jit(inline="always")
def add_to_free_list_tail(zone, pfn, order):
    """``add_to_free_list_tail``: link a free head at the list tail, ``nr_free++``."""
    zone = borrow_zone(zone)
    last = zone.tail[order]
    zone.prev[np.uintp(pfn)] = last
    zone.next[np.uintp(pfn)] = -1
    if last >= 0:
        zone.next[np.uintp(last)] = pfn
    else:
        zone.head[order] = pfn
    zone.tail[order] = pfn
    zone.state[np.uintp(pfn)] = order
    zone.nr_free[order] += 1
    if zone.cfg[CFG_TRACK]:
        _track_add_hook(zone, np.int64(pfn), np.int64(order))


@jit(inline="always")
def del_page_from_free_list(zone, pfn, order):
    """``del_page_from_free_list``: unlink, clear PageReported and PageBuddy, ``nr_free--``."""
    zone = borrow_zone(zone)
    nxt = zone.next[np.uintp(pfn)]
    prv = zone.prev[np.uintp(pfn)]
    if prv >= 0:
        zone.next[np.uintp(prv)] = nxt
    else:
        zone.head[order] = nxt
    if nxt >= 0:
        zone.prev[np.uintp(nxt)] = prv
    else:
        zone.tail[order] = prv
    zone.state[np.uintp(pfn)] = NOT_HEAD
    # v5.10: ``if (page_reported(page)) __ClearPageReported(page);``
    if zone.cfg[CFG_REPORTING_OFF] == 0 and zone.flags[np.uintp(pfn)] & PG_REPORTED:
        zone.flags[np.uintp(pfn)] &= ~PG_REPORTED
    zone.nr_free[order] -= 1
    if zone.cfg[CFG_TRACK]:
        _track_del_hook(zone, np.int64(pfn), np.int64(order))


@jit(inline="always")
def list_rotate_to_front(zone, pfn, order):
    """``list_rotate_to_front``: make ``pfn`` the head; entries before it move to the tail.

    Page reporting rotates so that the next pass starts where this one stopped.
    """
    zone = borrow_zone(zone)
    first = zone.head[order]
    if first == pfn or first < 0:
        return
    last = zone.tail[order]
    before = zone.prev[np.uintp(pfn)]
    # close the ring, then cut it just before pfn
    zone.next[np.uintp(last)] = first
    zone.prev[np.uintp(first)] = last
    zone.next[np.uintp(before)] = -1
    zone.prev[np.uintp(pfn)] = -1
    zone.head[order] = pfn
    zone.tail[order] = before


# ---------------------------------------------------------------------------------------------
# Allocation


@jit(inline="always")
def expand(zone, pfn, low, high):
    """``expand``: split a block of order ``high`` down to ``low``; upper halves to list heads."""
    zone = borrow_zone(zone)
    while high > low:
        high -= 1
        add_to_free_list(zone, pfn + (1 << high), high)


@jit(inline="always")
def rmqueue_smallest(zone, order):
    """``__rmqueue_smallest``: allocate an ``order`` block; return its pfn or -1."""
    zone = borrow_zone(zone)
    n_orders = zone.head.shape[0]
    current = order
    while current < n_orders and zone.head[current] < 0:
        current += 1
    if current >= n_orders:
        return -1
    pfn = zone.head[current]
    del_page_from_free_list(zone, pfn, current)
    expand(zone, pfn, order, current)
    zone.state[np.uintp(pfn)] = ALLOC_BASE + order
    return pfn


@jit(inline="always")
def isolate_free_page(zone, pfn, order):
    """``__isolate_free_page``: take a free head off its list without allocating it."""
    zone = borrow_zone(zone)
    del_page_from_free_list(zone, pfn, order)
    zone.state[np.uintp(pfn)] = ISOLATED_BASE + order


# ---------------------------------------------------------------------------------------------
# Freeing


@jit(inline="always")
def buddy_merge_likely(zone, pfn, order):
    """v5.10 ``buddy_merge_likely``: is the order+1 buddy of the combined block free?

    mm/page_alloc.c: false for ``order >= MAX_ORDER - 2``; else ``combined_pfn = buddy_pfn &
    pfn`` and the test is ``page_is_buddy(higher_page, higher_buddy, order + 1)``.
    """
    zone = borrow_zone(zone)
    if order >= zone.head.shape[0] - 2:  # order >= MAX_ORDER - 2
        return False
    combined = pfn & ~(1 << order)
    higher_buddy = combined ^ (1 << (order + 1))
    return zone.state[np.uintp(higher_buddy)] == order + 1


@jit(inline="always")
def free_one_page(zone, pfn, order, to_tail):
    """``__free_one_page``: merge with free buddies, then place the block.

    ``to_tail`` forces tail placement (``FPI_TO_TAIL``, used when isolated pages go back).
    Returns the final order; the merged head is ``pfn`` with its low ``order`` bits cleared.
    """
    zone = borrow_zone(zone)
    top = zone.head.shape[0] - 1
    zone.state[np.uintp(pfn)] = NOT_HEAD
    while order < top:
        buddy = pfn ^ (1 << order)
        if zone.state[np.uintp(buddy)] != order:
            break
        del_page_from_free_list(zone, buddy, order)
        pfn &= buddy
        order += 1
    if to_tail or (zone.cfg[CFG_PLACEMENT] == 1 and buddy_merge_likely(zone, pfn, order)):
        add_to_free_list_tail(zone, pfn, order)
    else:
        add_to_free_list(zone, pfn, order)
    return order


@jit(inline="always")
def free_pages(zone, pfn, order):
    """Free an allocated block (``__free_pages`` for one zone, no pcp)."""
    return free_one_page(zone, pfn, order, False)


@jit(inline="always")
def nr_free_pages(zone):
    """NR_FREE_PAGES: pages in the free lists (isolated and pcp pages excluded)."""
    total = 0
    for o in range(zone.nr_free.shape[0]):
        total += zone.nr_free[o] << o
    return total


@jit(inline="always")
def putback_isolated_page(zone, pfn, order):
    """``__putback_isolated_page``: return an isolated block at the tail; return final order."""
    return free_one_page(zone, pfn, order, True)


# ---------------------------------------------------------------------------------------------
# Trace replay (../shared/bench/README.md format)


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


# ---------------------------------------------------------------------------------------------
# Invariants


# ``_check`` codes; BuddyAllocator.check turns them into messages. Checked in this order.
CHK_OK = 0
CHK_HEAD_TAIL = 1  # (order, head, tail): one of them is -1, the other not
CHK_LINK_RANGE = 2  # (order, from page, link)
CHK_LISTED_TWICE = 3  # (order, page)
CHK_PREV = 4  # (order, page, prev, expected)
CHK_LISTED_STATE = 5  # (order, page, state)
CHK_LISTED_ALIGN = 6  # (order, page)
CHK_TAIL = 7  # (order, tail, last page of the list)
CHK_NR_FREE = 8  # (order, nr_free, blocks on the list)
CHK_BAD_STATE = 9  # (page, state)
CHK_UNCOVERED = 10  # (page,)
CHK_MISALIGNED = 11  # (page, order)
CHK_OVERLAP = 12  # (page, order, overlapped page, its state)
CHK_UNLISTED = 13  # (page, order)
CHK_UNMERGED = 14  # (page, buddy, order)
CHK_REPORTED = 15  # (page, state)
CHK_COUNT = 16  # (free pages by blocks, free pages by nr_free)


@jit
def _check(zone):
    """Find the first broken invariant: ``(CHK_* code, a, b, c, d)``, plus page counts.

    Returns ``(code, a, b, c, d, free, allocated, isolated, on_pcp)`` in pages.
    """
    n = zone.state.shape[0]
    n_orders = zone.head.shape[0]
    top = n_orders - 1
    seen = np.zeros(n, np.bool_)
    counts = np.zeros(4, np.int64)
    # 1. every free list: well linked both ways, ends at tail, holds nr_free free heads
    for o in range(n_orders):
        first = zone.head[o]
        last = zone.tail[o]
        if (first < 0) != (last < 0) or first < -1 or last < -1:
            return CHK_HEAD_TAIL, o, first, last, 0, counts
        before = -1
        p = first
        length = 0
        while p != -1:
            if p < 0 or p >= n:
                return CHK_LINK_RANGE, o, before, p, 0, counts
            if seen[p]:
                return CHK_LISTED_TWICE, o, p, 0, 0, counts
            seen[p] = True
            if zone.prev[p] != before:
                return CHK_PREV, o, p, zone.prev[p], before, counts
            if zone.state[p] != o:
                return CHK_LISTED_STATE, o, p, zone.state[p], 0, counts
            if p & ((1 << o) - 1):
                return CHK_LISTED_ALIGN, o, p, 0, 0, counts
            length += 1
            before = p
            p = zone.next[p]
        if last != before:
            return CHK_TAIL, o, last, before, 0, counts
        if zone.nr_free[o] != length:
            return CHK_NR_FREE, o, zone.nr_free[o], length, 0, counts
    # 2. the blocks tile the zone: every page in exactly one block, heads aligned
    pfn = 0
    while pfn < n:
        st = np.int64(zone.state[pfn])
        if 0 <= st <= top:
            o, kind = st, 0
        elif ALLOC_BASE <= st <= ALLOC_BASE + top:
            o, kind = st - ALLOC_BASE, 1
        elif ISOLATED_BASE <= st <= ISOLATED_BASE + top:
            o, kind = st - ISOLATED_BASE, 2
        elif st == ON_PCP:
            o, kind = 0, 3
        elif st == NOT_HEAD:
            return CHK_UNCOVERED, pfn, 0, 0, 0, counts
        else:
            return CHK_BAD_STATE, pfn, st, 0, 0, counts
        if pfn & ((1 << o) - 1):
            return CHK_MISALIGNED, pfn, o, 0, 0, counts
        for q in range(pfn + 1, pfn + (1 << o)):
            if zone.state[q] != NOT_HEAD:
                return CHK_OVERLAP, pfn, o, q, zone.state[q], counts
        if kind == 0:
            if not seen[pfn]:
                return CHK_UNLISTED, pfn, o, 0, 0, counts
            if o < top:
                buddy = pfn ^ (1 << o)
                if zone.state[buddy] == o:
                    return CHK_UNMERGED, pfn, buddy, o, 0, counts
        counts[kind] += 1 << o
        pfn += 1 << o
    # 3. PageReported only on free heads
    for p in range(n):
        if zone.flags[p] & PG_REPORTED and not 0 <= zone.state[p] <= top:
            return CHK_REPORTED, p, zone.state[p], 0, 0, counts
    by_lists = 0
    for o in range(n_orders):
        by_lists += zone.nr_free[o] << o
    if by_lists != counts[0]:
        return CHK_COUNT, counts[0], by_lists, 0, 0, counts
    return CHK_OK, 0, 0, 0, 0, counts


def _check_message(code, a, b, c, d):
    messages = {
        CHK_HEAD_TAIL: lambda: f"free list of order {a}: head is {b} but tail is {c}",
        CHK_LINK_RANGE: lambda: (
            f"free list of order {a}: "
            + (f"the head is {c}" if b < 0 else f"the link after page {b} is {c}")
            + ", not a page number"
        ),
        CHK_LISTED_TWICE: lambda: (
            f"free list of order {a}: page {b} is listed twice (a cycle, or on two lists)"
        ),
        CHK_PREV: lambda: f"free list of order {a}: page {b} has prev {c}, expected {d}",
        CHK_LISTED_STATE: lambda: (
            f"free list of order {a}: listed page {b} is not a free head of order {a} "
            f"(state {c})"
        ),
        CHK_LISTED_ALIGN: lambda: (
            f"free list of order {a}: listed page {b} is not aligned to {1 << a} pages"
        ),
        CHK_TAIL: lambda: f"free list of order {a}: tail is {b} but the list ends at {c}",
        CHK_NR_FREE: lambda: f"nr_free[{a}] is {b} but the free list holds {c} blocks",
        CHK_BAD_STATE: lambda: f"page {a} has an invalid state {b}",
        CHK_UNCOVERED: lambda: (
            f"page {a} belongs to no block (a tail page where a block should start)"
        ),
        CHK_MISALIGNED: lambda: f"block at page {a} of order {b} is not aligned to {1 << b}",
        CHK_OVERLAP: lambda: (
            f"block at page {a} of order {b} overlaps page {c}, which has state {d}"
        ),
        CHK_UNLISTED: lambda: f"page {a} is a free head of order {b} but on no free list",
        CHK_UNMERGED: lambda: (
            f"free blocks at pages {a} and {b} of order {c} are buddies but were not merged"
        ),
        CHK_REPORTED: lambda: f"page {a} is PageReported but not a free head (state {b})",
        CHK_COUNT: lambda: (
            f"free blocks cover {a} pages but nr_free accounts for {b} pages"
        ),
    }
    return messages[code]()


class BuddyInvariantError(AssertionError):
    """A buddy allocator invariant is broken (raised by :meth:`BuddyAllocator.check`)."""


@jit
def _free_list(zone, order):
    """The pfns on the free list of ``order``, head to tail (stops after ``n_pages`` links)."""
    items = []
    p = zone.head[order]
    while p >= 0 and len(items) < zone.state.shape[0]:
        items.append(np.int64(p))
        p = zone.next[p]
    out = np.empty(len(items), np.int64)
    for i in range(len(items)):
        out[i] = items[i]
    return out


@jit
def _reinit(zone):
    """Put a zone back into its initial state (every page free, top-order blocks in order)."""
    zone.next[:] = -1
    zone.prev[:] = -1
    zone.state[:] = NOT_HEAD
    zone.flags[:] = 0
    zone.head[:] = -1
    zone.tail[:] = -1
    zone.nr_free[:] = 0
    init_free_lists(zone)


# ---------------------------------------------------------------------------------------------
# Public wrapper

_TRACE_MESSAGES = {
    TRACE_BAD_KIND: "kind must be 0 (alloc) or 1 (free)",
    TRACE_BAD_ORDER: "order is outside 0..{top}",
    TRACE_BAD_SLOT: "slot must be >= 0",
    TRACE_SLOT_FREED: (
        "free through a slot whose block was already freed through it (the block may belong "
        "to another slot now); allocate into the slot again before freeing it"
    ),
    TRACE_NOT_ALLOCATED: (
        "free of a block that is not allocated with this order (freed twice, or allocated "
        "with another order)"
    ),
}


def _index(value, name):
    """``value`` as a Python int, or a ValueError naming ``name`` (bools are refused)."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _trace_array(values, name, dtype, lo, hi):
    """A trace array as a contiguous 1-D ``dtype`` array; values outside lo..hi refused."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"trace array {name!r} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"trace array {name!r} must hold integers, got dtype {arr.dtype}")
    if arr.dtype != dtype:
        # values that do not fit ``dtype`` would wrap when cast: name the first one
        if arr.size and (arr.min() < lo or arr.max() > hi):
            i = int(np.flatnonzero((arr < lo) | (arr > hi))[0])
            raise ValueError(
                f"trace array {name!r}: value {arr[i]} at index {i} is outside {lo}..{hi}"
            )
        arr = arr.astype(dtype)
    return np.ascontiguousarray(arr)


class BuddyAllocator:
    """Linux's buddy allocator for one zone of ``n_pages`` 4 KiB pages.

    Parameters
    ----------
    n_pages : int
        Pages in the zone; a positive multiple of ``2 ** (n_orders - 1)`` (whole top-order
        blocks), below 2**31.
    n_orders : int
        Free areas, orders ``0 .. n_orders - 1`` (Linux: 11, so the top order is 10 = 4 MiB).
    placement : {"kernel", "head"}
        Where a freed block goes: ``"kernel"`` uses v5.10 ``buddy_merge_likely()`` (tail when
        the next-higher buddy is free), ``"head"`` always the list head.
    track : {None, "page", "head", "bitmap"}
        Keep an xbitmap of free memory current wherever a block enters or leaves a free list
        (Wei Wang's proposal): one bit per free page, or one bit per free block head; or, to
        compare with, the same page bits in a flat bitmap (``"bitmap"``: n_pages / 8 bytes
        allocated up front, no radix tree). :meth:`check` verifies it;
        :attr:`tracking_stats` counts its work.

    Notes
    -----
    A thin wrapper over a :class:`Zone` and the jitted kernels of this module; the zone's
    arrays take 10 bytes per page. ``last_checksum`` holds the sum of the pfns handed out by
    the last :meth:`replay` (the ``pfn_checksum`` of ``../bench/ref_buddy.c``). Every call
    validates its arguments and leaves the allocator unchanged when it raises.

    Examples
    --------
    >>> b = BuddyAllocator(2048)
    >>> b.alloc(0), b.free_list(9), b.free_list(0)
    (0, [512], [1])
    >>> b.free(0, 0); b.nr_free.tolist()
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    """

    def __init__(self, n_pages, n_orders=NR_ORDERS, placement="kernel", track=None):
        n_orders = _index(n_orders, "n_orders")
        if not 1 <= n_orders <= NR_ORDERS:
            raise ValueError(f"n_orders must be in 1..{NR_ORDERS}, got {n_orders}")
        n_pages = _index(n_pages, "n_pages")
        block = 1 << (n_orders - 1)
        if n_pages <= 0 or n_pages % block:
            raise ValueError(
                f"n_pages must be a positive multiple of 2**(n_orders-1) = {block} "
                f"(whole top-order blocks), got {n_pages}"
            )
        if n_pages >= 1 << 31:
            raise ValueError(f"n_pages must be below 2**31 (int32 links), got {n_pages}")
        if placement not in PLACEMENTS:
            raise ValueError(
                f"placement must be one of {sorted(PLACEMENTS)}, got {placement!r}"
            )
        if not (track is None or (isinstance(track, str) and track in TRACKS)):
            raise ValueError(f"track must be 'page', 'head', 'bitmap' or None, got {track!r}")
        self._zone = new_zone(n_pages, n_orders, placement, TRACKS[track], reporting=False)
        # what the kernels get: the tracking mode is part of its type (see kernel_zone)
        self._kzone = kernel_zone(self._zone)
        self._track = track
        self._placement = placement
        self._pristine = True  # no op since construction: a failed replay can re-initialise
        self.last_checksum = 0

    # --- read-only views ---------------------------------------------------------------------

    @property
    def zone(self):
        """The :class:`Zone` of arrays as read-only views (live: they follow the allocator).

        Read-only because the kernels trust them: a bad link or head would make them read
        or write outside the arrays.
        """
        return Zone(*(None if a is None else read_only(a) for a in self._zone))

    @property
    def n_pages(self):
        return self._zone.state.shape[0]

    @property
    def n_orders(self):
        return self._zone.head.shape[0]

    @property
    def placement(self):
        return self._placement

    @property
    def track(self):
        """Free-page tracking: ``"page"``, ``"head"`` (xbitmap), ``"bitmap"`` (flat) or None."""
        return self._track

    @property
    def tracking_stats(self):
        """xbitmap work done under zone->lock so far (empty dict when tracking is off).

        Operation counts (``set_bit``/``clear_bit`` per head, ``fill``/``zero`` per block with
        per-page tracking), leaf and node allocations, ``preload_allocs`` (the kmallocs of
        ``xb_preload``) and ``nbytes`` of the bitmap now; ``ops`` is the sum of the four
        operation counts (one per block that entered or left a free list). With
        ``track="bitmap"`` only ``fill``/``zero`` count (no allocations: every row exists from
        the start).
        """
        if self._track is None:
            return {}
        stats = xb_stats(self._zone.xb_meta)
        stats["ops"] = stats["set_bit"] + stats["clear_bit"] + stats["fill"] + stats["zero"]
        z = self._zone
        stats["nbytes"] = tracking_nbytes(z.xb_leaves, z.xb_meta, TRACKS[self._track])
        return stats

    @property
    def nr_free(self):
        """Free blocks per order (a copy), like ``zone->free_area[order].nr_free``."""
        return self._zone.nr_free.copy()

    @property
    def free_pages(self):
        """Free pages in the zone (``NR_FREE_PAGES``)."""
        return int((self._zone.nr_free << np.arange(self.n_orders)).sum())

    @property
    def nbytes(self):
        """Bytes held by the zone's arrays."""
        return sum(a.nbytes for a in self._zone)

    def free_list(self, order):
        """The pfns on the free list of ``order``, head to tail."""
        return _free_list(self._zone, self._order(order)).tolist()

    def __repr__(self):
        return (
            f"BuddyAllocator(n_pages={self.n_pages}, n_orders={self.n_orders}, "
            f"placement={self._placement!r}, free_pages={self.free_pages})"
        )

    # --- validation --------------------------------------------------------------------------

    def _order(self, order):
        order = _index(order, "order")
        if not 0 <= order < self.n_orders:
            raise ValueError(f"order must be in 0..{self.n_orders - 1}, got {order}")
        return order

    def _block(self, pfn, order):
        order = self._order(order)
        pfn = _index(pfn, "pfn")
        if not 0 <= pfn < self.n_pages:
            raise ValueError(f"pfn {pfn} is out of range 0..{self.n_pages - 1}")
        if pfn & ((1 << order) - 1):
            raise ValueError(f"pfn {pfn} is not aligned to 2**{order} = {1 << order} pages")
        return pfn, order

    def _describe(self, pfn):
        st = int(self._zone.state[pfn])
        top = self.n_orders - 1
        if 0 <= st <= top:
            return f"a free block of order {st}"
        if ALLOC_BASE <= st <= ALLOC_BASE + top:
            return f"allocated with order {st - ALLOC_BASE}"
        if ISOLATED_BASE <= st <= ISOLATED_BASE + top:
            return f"isolated with order {st - ISOLATED_BASE}"
        if st == ON_PCP:
            return "on a per-CPU list"
        return "not the head of a block"

    def _expect(self, pfn, order, state, what):
        if self._zone.state[pfn] != state:
            raise ValueError(
                f"pfn {pfn} is not {what} of order {order}: it is {self._describe(pfn)}"
            )

    # --- operations --------------------------------------------------------------------------

    def alloc(self, order):
        """Allocate a block of ``2**order`` pages (``__rmqueue_smallest``); its pfn, or -1."""
        order = self._order(order)
        self._pristine = False
        return int(rmqueue_smallest(self._kzone, order))

    def free(self, pfn, order):
        """Free the allocated block at ``pfn`` of ``order`` (``__free_one_page``).

        Raises ValueError, leaving the allocator unchanged, when ``pfn`` is out of range, not
        aligned to ``2**order``, or not the head of an allocated block of that order.
        """
        pfn, order = self._block(pfn, order)
        self._expect(pfn, order, ALLOC_BASE + order, "an allocated block")
        self._pristine = False
        free_pages(self._kzone, pfn, order)

    def isolate_free_page(self, pfn, order):
        """Take the free block at ``pfn`` off its list (``__isolate_free_page``)."""
        pfn, order = self._block(pfn, order)
        self._expect(pfn, order, order, "a free block")
        self._pristine = False
        isolate_free_page(self._kzone, pfn, order)

    def putback_isolated_page(self, pfn, order):
        """Return an isolated block at the list tail, merging (``__putback_isolated_page``).

        Returns the order of the block it ended up in.
        """
        pfn, order = self._block(pfn, order)
        self._expect(pfn, order, ISOLATED_BASE + order, "an isolated block")
        self._pristine = False
        return int(putback_isolated_page(self._kzone, pfn, order))

    def list_rotate_to_front(self, pfn, order):
        """Make the free block at ``pfn`` the head of its list (``list_rotate_to_front``)."""
        pfn, order = self._block(pfn, order)
        self._expect(pfn, order, order, "a free block")
        self._pristine = False
        list_rotate_to_front(self._kzone, pfn, order)

    def check(self):
        """Verify every invariant; raise :class:`BuddyInvariantError` naming the first broken.

        Free lists well linked both ways with consistent head/tail, ``nr_free`` equal to the
        list lengths, every listed page a free head of that order, every free head listed,
        no two free buddies of one order left unmerged, the blocks (free, allocated,
        isolated, on pcp) tiling the zone without overlap, PageReported only on free heads.
        """
        code, a, b, c, d, counts = _check(self._zone)
        if code != CHK_OK:
            raise BuddyInvariantError(_check_message(code, a, b, c, d))
        if int(counts.sum()) != self.n_pages:  # implied by the tiling; kept as a last guard
            raise BuddyInvariantError(f"blocks cover {int(counts.sum())} of {self.n_pages} pages")
        if self._track is not None:  # the free-page xbitmap equals the free lists
            problem = tracking_mismatch(self._zone, TRACKS[self._track])
            if problem:
                raise BuddyInvariantError(problem)

    def replay(self, kind, order, slot, sample_at=None):
        """Replay an alloc/free trace (``../bench/README.md``) in one jitted call.

        Returns the number of failed allocations; ``last_checksum`` gets the sum of the pfns
        handed out. A bad trace raises ValueError naming the first bad op and leaves the
        allocator unchanged.

        ``sample_at`` (optional, non-decreasing op counts in 0..len(trace)): also return the
        free blocks per order after each count of ops, ``(failed, nr_free)`` with ``nr_free``
        an int64 array of shape ``(len(sample_at), n_orders)`` (a buddyinfo over the trace).
        """
        kind = _trace_array(kind, "kind", np.int8, 0, 1)
        order = _trace_array(order, "order", np.int8, 0, self.n_orders - 1)
        slot = _trace_array(slot, "slot", np.int32, 0, 2**31 - 1)
        if not kind.shape[0] == order.shape[0] == slot.shape[0]:
            raise ValueError(
                f"trace arrays must have equal lengths, got kind {kind.shape[0]}, "
                f"order {order.shape[0]}, slot {slot.shape[0]}"
            )
        n_slots = int(slot.max()) + 1 if slot.shape[0] else 0
        if n_slots > self.n_pages:
            i = int(np.argmax(slot))
            raise ValueError(
                f"trace array 'slot': slot[{i}] = {slot[i]} is outside 0..{self.n_pages - 1}: "
                f"a zone of {self.n_pages} pages holds at most {self.n_pages} blocks; number "
                "slots densely from 0"
            )
        ends = None
        if sample_at is not None:
            ends = np.asarray(sample_at)
            if ends.ndim != 1 or (ends.size and not np.issubdtype(ends.dtype, np.integer)):
                raise ValueError(f"sample_at must be a 1-D sequence of op counts, got {ends!r}")
            ends = np.ascontiguousarray(ends, np.int64)
            if ends.size and (ends[0] < 0 or ends[-1] > kind.shape[0]
                              or (np.diff(ends) < 0).any()):
                raise ValueError(f"sample_at must be non-decreasing op counts in "
                                 f"0..{kind.shape[0]}")
        # a fresh allocator is restored by re-initialising it; any other by a snapshot
        snapshot = None if self._pristine else [a.copy() for a in self._zone[:7]]
        if ends is None:
            failed, checksum, bad, code = _replay(self._kzone, kind, order, slot,
                                                  max(n_slots, 1))
        else:
            sampled = np.zeros((ends.size, self.n_orders), np.int64)
            failed, checksum, bad, code = _replay_sampled(self._kzone, kind, order, slot,
                                                          max(n_slots, 1), ends, sampled)
        if bad >= 0:
            if snapshot is None:
                _reinit(self._kzone)
            else:
                for a, saved in zip(self._zone[:7], snapshot, strict=True):
                    a[...] = saved
            if self._track is not None:  # bring the free-page xbitmap back to the lists
                z = self._zone
                granularity = TRACKS[self._track]
                track_rebuild(z.head, z.next, z.xb_nodes, z.xb_leaves, z.xb_meta, granularity)
            what = _TRACE_MESSAGES[code].format(top=self.n_orders - 1)
            raise ValueError(
                f"trace op {bad} (kind={kind[bad]}, order={order[bad]}, slot={slot[bad]}): "
                f"{what}; the allocator is unchanged"
            )
        self._pristine = False
        self.last_checksum = int(checksum)
        return int(failed) if ends is None else (int(failed), sampled)
