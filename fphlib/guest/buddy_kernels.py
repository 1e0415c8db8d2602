"""Linux's buddy allocator for one zone, as numba kernels on plain arrays: the zone's arrays,
its free lists, allocation and freeing.

Semantics follow mm/page_alloc.c of v5.10 (docs/references.md §1.3-1.5):
free lists of head pages per order, ``nr_free`` counted in blocks, ``__rmqueue_smallest``
taking the list head of the smallest order that fits and ``expand()`` putting the upper
halves at list heads, ``__free_one_page`` merging with ``pfn ^ (1 << order)`` and placing the
result at the tail when ``buddy_merge_likely()`` holds (placement ``"kernel"``) or always at
the head (placement ``"head"``); isolated pages go back at the tail (``FPI_TO_TAIL``).

The zone is a :class:`Zone` tuple of arrays so that the simulation engine can call the same
kernels from its own jitted loop on views of its per-guest arrays. The kernels are
``inline="always"`` and each starts with ``borrow_zone`` (see the note there): together they
make a loop over them compile to what a hand-written monolithic loop gives, ~0.85x the
speed of the C reference (docs/design.md §5; ``benchmarks/buddy_replay.py``). The list
operations call the free-page tracking hooks of :mod:`fphlib.guest.free_page_tracking`. The
trace replay is :mod:`fphlib.guest.buddy_trace`, the invariant check
:mod:`fphlib.guest.buddy_check`, and :class:`fphlib.guest.buddy.BuddyAllocator` the validated
Python front end (docs/design.md §4).

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

import numpy as np
from numba.core import types
from numba.extending import overload

from .._jit import jit
from ..state.lists import list_add, list_add_tail, list_del
from ..state.lists import list_rotate_to_front as _rotate
from ..state.zone import (  # the zone and its per-page values live on the bottom floor
    ALLOC_BASE,
    CFG_LEN,
    CFG_PLACEMENT,
    CFG_REPORTED,
    CFG_REPORTING_OFF,
    CFG_TRACK,
    ISOLATED_BASE,
    NOT_HEAD,
    PG_REPORTED,
    Zone,
    borrow_zone,
)
from ..units import NR_ORDERS
from .free_page_tracking import (
    TRACK_BITMAP,
    bitmap_track_ptr,
    tracking_arrays,
    xb_hook_call,
    xb_track_add_call,
    xb_track_del_call,
)
from .xbitmap_arrays import M_TRACK_DEL_FN, M_TRACK_FN

PAGEBLOCK_ORDER = 9  # x86-64 with hugetlb: HUGETLB_PAGE_ORDER

PLACEMENTS = {"head": 0, "kernel": 1}
# BuddyAllocator(track=...) -> Zone.cfg[CFG_TRACK] (free_page_tracking.TRACK_*)
TRACKS = {None: 0, "page": 1, "head": 2, "bitmap": 3}


def new_zone(n_pages, n_orders=NR_ORDERS, placement="kernel", track=0, reporting=True):
    """Allocate the arrays of a zone with every page free as top-order blocks in pfn order.

    ``reporting=False`` sets ``CFG_REPORTING_OFF`` (no page will ever be PageReported).
    """
    # free-page xbitmap (fphlib.guest.xbitmap_arrays layout), pre-sized for pfns [0, n_pages)
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
# - xbitmap zones call the hook of their granularity (``free_page_tracking.XB_HOOKS``) out of
#   line with the arrays' addresses (2.4-2.6x; 2.5-2.6x with one entry point taking the
#   granularity and the direction as arguments, 3.2x when the three arrays crossed the call as
#   numba arrays, 7.7x through a zone-taking wrapper kernel), through its address in
#   ``xb_meta[M_TRACK_FN]`` (add) or ``xb_meta[M_TRACK_DEL_FN]`` (del) so that zones without an
#   xbitmap never compile it (``free_page_tracking.tracking_arrays`` sets them). Inlining the
#   hook instead was slower every time: 5.2-6.2x with the xbitmap, 4.4x even with the flat
#   bitmap, as the bigger loop body spills the allocator's own state; and
#   ``@overload(..., inline="always")`` miscompiled the zone kernels in numba 0.68 (every
#   allocation failed). The int64 casts keep one signature.
# - flat-bitmap zones (:func:`kernel_zone`: ``xb_nodes`` None) call the small
#   ``free_page_tracking.bitmap_track_ptr``, chosen at compile time (1.5x);
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

        slot = M_TRACK_FN if add else M_TRACK_DEL_FN

        def impl(zone, pfn, order):
            fn = zone.xb_meta[slot]
            if fn == 0:  # arrays not made by tracking_arrays: never call address 0
                raise RuntimeError("xbitmap tracking arrays must come from tracking_arrays()")
            xb_hook_call(fn, zone.xb_nodes.ctypes.data, zone.xb_nodes.shape[0],
                         zone.xb_leaves.ctypes.data, zone.xb_leaves.shape[0],
                         zone.xb_meta.ctypes.data, pfn, order)

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
    list_add(zone.next, zone.prev, zone.head, order, zone.tail, order, pfn)
    zone.state[np.uintp(pfn)] = order
    zone.nr_free[order] += 1
    if zone.cfg[CFG_TRACK]:
        _track_add_hook(zone, np.int64(pfn), np.int64(order))


@jit(inline="always")
def add_to_free_list_tail(zone, pfn, order):
    """``add_to_free_list_tail``: link a free head at the list tail, ``nr_free++``."""
    zone = borrow_zone(zone)
    list_add_tail(zone.next, zone.prev, zone.head, order, zone.tail, order, pfn)
    zone.state[np.uintp(pfn)] = order
    zone.nr_free[order] += 1
    if zone.cfg[CFG_TRACK]:
        _track_add_hook(zone, np.int64(pfn), np.int64(order))


@jit(inline="always")
def del_page_from_free_list(zone, pfn, order):
    """``del_page_from_free_list``: unlink, clear PageReported and PageBuddy, ``nr_free--``."""
    zone = borrow_zone(zone)
    list_del(zone.next, zone.prev, zone.head, order, zone.tail, order, pfn)
    zone.state[np.uintp(pfn)] = NOT_HEAD
    # v5.10: ``if (page_reported(page)) __ClearPageReported(page);``
    if zone.cfg[CFG_REPORTING_OFF] == 0 and zone.flags[np.uintp(pfn)] & PG_REPORTED:
        zone.flags[np.uintp(pfn)] &= ~PG_REPORTED
        zone.cfg[CFG_REPORTED] -= 1 << order
    zone.nr_free[order] -= 1
    if zone.cfg[CFG_TRACK]:
        _track_del_hook(zone, np.int64(pfn), np.int64(order))


@jit(inline="always")
def list_rotate_to_front(zone, pfn, order):
    """``list_rotate_to_front``: make ``pfn`` the head; entries before it move to the tail.

    Page reporting rotates so that the next pass starts where this one stopped.
    """
    zone = borrow_zone(zone)
    _rotate(zone.next, zone.prev, zone.head, order, zone.tail, order, pfn)


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
# Whole-zone kernels of the Python front end (fphlib.guest.buddy.BuddyAllocator)


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
    zone.cfg[CFG_REPORTED] = 0
    init_free_lists(zone)
