"""Linux's buddy allocator for one zone, as numba kernels on plain arrays.

Semantics follow mm/page_alloc.c of v5.10 (reference/kernel-mechanisms.md §1.3-1.5):
free lists of head pages per order, ``nr_free`` counted in blocks, ``__rmqueue_smallest``
taking the list head of the smallest order that fits and ``expand()`` putting the upper
halves at list heads, ``__free_one_page`` merging with ``pfn ^ (1 << order)`` and placing the
result at the tail when ``buddy_merge_likely()`` holds (placement ``"kernel"``) or always at
the head (placement ``"head"``); isolated pages go back at the tail (``FPI_TO_TAIL``).

The zone is a :class:`Zone` tuple of arrays so that the simulation engine can call the same
kernels from its own jitted loop on views of its per-guest arrays.

Simplifications (each deliberate):

- one migratetype and no ISOLATE pageblocks, so merging always continues up to the top order
  (the kernel's two-stage merge across pageblock_order only differs when a pageblock is
  isolated) and ``__rmqueue_fallback`` never runs;
- no page shuffling (``shuffle_pick_tail``), so order-10 frees go to the head;
- one zone per guest; memory is a whole number of top-order blocks, so a buddy pfn is
  always inside the zone (the kernel's ``pfn_valid_within`` checks are always true).
"""

from typing import NamedTuple

import numpy as np

from .._jit import jit

NR_ORDERS = 11  # orders 0..10 (MAX_ORDER = 11 before v6.4, NR_PAGE_ORDERS since v6.8)
PAGEBLOCK_ORDER = 9  # x86-64 with hugetlb: HUGETLB_PAGE_ORDER

# ``Zone.state`` per page. A free head holds its order (0..10), like PageBuddy + buddy_order().
NOT_HEAD = -1  # a tail page of some block
ALLOC_BASE = 16  # allocated head: ALLOC_BASE + order
ISOLATED_BASE = 32  # isolated head (``__isolate_free_page``): ISOLATED_BASE + order
ON_PCP = 48  # order-0 page sitting on a per-CPU list (allocated as far as the buddy can see)

# ``Zone.flags`` per page.
PG_REPORTED = np.uint8(1)  # PageReported: valid only on free heads
PG_BACKED = np.uint8(2)  # host has backing memory for this page
PG_DATA = np.uint8(4)  # the guest wrote data it still needs
PG_IN_FLIGHT = np.uint8(8)  # hinted to the host, discard pending

# ``Zone.cfg``
CFG_PLACEMENT = 0  # 0 = head, 1 = kernel (buddy_merge_likely)
CFG_TRACK = 1  # free-page tracking in the xbitmap: 0 off, 1 per page, 2 per block head
CFG_LEN = 4

PLACEMENTS = {"head": 0, "kernel": 1}


class Zone(NamedTuple):
    """The arrays of one zone; every kernel takes one of these.

    ``next``/``prev`` link free heads into per-order lists (-1 ends a list), ``state`` and
    ``flags`` are per page (10 bytes per page in all), ``head``/``tail``/``nr_free`` per order.
    ``xb_*`` hold the optional xbitmap of free pages (empty arrays when tracking is off).
    """

    next: np.ndarray  # int32[n_pages]
    prev: np.ndarray  # int32[n_pages]
    state: np.ndarray  # int8[n_pages]
    flags: np.ndarray  # uint8[n_pages]
    head: np.ndarray  # int32[n_orders]
    tail: np.ndarray  # int32[n_orders]
    nr_free: np.ndarray  # int64[n_orders]
    cfg: np.ndarray  # int64[CFG_LEN]
    xb_nodes: np.ndarray  # int64[:, :]
    xb_leaves: np.ndarray  # uint64[:, :]
    xb_meta: np.ndarray  # int64[:]


def new_zone(n_pages, n_orders=NR_ORDERS, placement="kernel", track=0):
    """Allocate the arrays of a zone with every page free as top-order blocks in pfn order."""
    zone = Zone(
        next=np.full(n_pages, -1, np.int32),
        prev=np.full(n_pages, -1, np.int32),
        state=np.full(n_pages, NOT_HEAD, np.int8),
        flags=np.zeros(n_pages, np.uint8),
        head=np.full(n_orders, -1, np.int32),
        tail=np.full(n_orders, -1, np.int32),
        nr_free=np.zeros(n_orders, np.int64),
        cfg=np.zeros(CFG_LEN, np.int64),
        xb_nodes=np.zeros((0, 0), np.int64),
        xb_leaves=np.zeros((0, 0), np.uint64),
        xb_meta=np.zeros(0, np.int64),
    )
    zone.cfg[CFG_PLACEMENT] = PLACEMENTS[placement]
    zone.cfg[CFG_TRACK] = track
    init_free_lists(zone)
    return zone


@jit
def init_free_lists(zone):
    """Free every page as top-order blocks listed in pfn order (``__free_pages_core`` tail)."""
    top = zone.head.shape[0] - 1
    for pfn in range(0, zone.state.shape[0], 1 << top):
        add_to_free_list_tail(zone, pfn, top)


# ---------------------------------------------------------------------------------------------
# List operations (the only places where a block enters or leaves a free list: the places
# where Linux holds zone->lock and where free-page tracking hooks in).


@jit(inline="always")
def _track_add(zone, pfn, order):
    pass


@jit(inline="always")
def _track_del(zone, pfn, order):
    pass


@jit(inline="always")
def add_to_free_list(zone, pfn, order):
    """``add_to_free_list``: link a free head at the list head, ``nr_free++``."""
    first = zone.head[order]
    zone.next[pfn] = first
    zone.prev[pfn] = -1
    if first >= 0:
        zone.prev[first] = pfn
    else:
        zone.tail[order] = pfn
    zone.head[order] = pfn
    zone.state[pfn] = order
    zone.nr_free[order] += 1
    if zone.cfg[CFG_TRACK]:
        _track_add(zone, pfn, order)


@jit(inline="always")
def add_to_free_list_tail(zone, pfn, order):
    """``add_to_free_list_tail``: link a free head at the list tail, ``nr_free++``."""
    last = zone.tail[order]
    zone.prev[pfn] = last
    zone.next[pfn] = -1
    if last >= 0:
        zone.next[last] = pfn
    else:
        zone.head[order] = pfn
    zone.tail[order] = pfn
    zone.state[pfn] = order
    zone.nr_free[order] += 1
    if zone.cfg[CFG_TRACK]:
        _track_add(zone, pfn, order)


@jit(inline="always")
def del_page_from_free_list(zone, pfn, order):
    """``del_page_from_free_list``: unlink, clear PageReported and PageBuddy, ``nr_free--``."""
    nxt = zone.next[pfn]
    prv = zone.prev[pfn]
    if prv >= 0:
        zone.next[prv] = nxt
    else:
        zone.head[order] = nxt
    if nxt >= 0:
        zone.prev[nxt] = prv
    else:
        zone.tail[order] = prv
    zone.state[pfn] = NOT_HEAD
    zone.flags[pfn] &= ~PG_REPORTED
    zone.nr_free[order] -= 1
    if zone.cfg[CFG_TRACK]:
        _track_del(zone, pfn, order)


@jit(inline="always")
def list_rotate_to_front(zone, pfn, order):
    """``list_rotate_to_front``: make ``pfn`` the head; entries before it move to the tail.

    Page reporting rotates so that the next pass starts where this one stopped.
    """
    first = zone.head[order]
    if first == pfn or first < 0:
        return
    last = zone.tail[order]
    before = zone.prev[pfn]
    # close the ring, then cut it just before pfn
    zone.next[last] = first
    zone.prev[first] = last
    zone.next[before] = -1
    zone.prev[pfn] = -1
    zone.head[order] = pfn
    zone.tail[order] = before


# ---------------------------------------------------------------------------------------------
# Allocation


@jit(inline="always")
def expand(zone, pfn, low, high):
    """``expand``: split a block of order ``high`` down to ``low``; upper halves to list heads."""
    while high > low:
        high -= 1
        add_to_free_list(zone, pfn + (1 << high), high)


@jit(inline="always")
def rmqueue_smallest(zone, order):
    """``__rmqueue_smallest``: allocate an ``order`` block; return its pfn or -1."""
    n_orders = zone.head.shape[0]
    current = order
    while current < n_orders and zone.head[current] < 0:
        current += 1
    if current >= n_orders:
        return -1
    pfn = zone.head[current]
    del_page_from_free_list(zone, pfn, current)
    expand(zone, pfn, order, current)
    zone.state[pfn] = ALLOC_BASE + order
    return pfn


@jit(inline="always")
def isolate_free_page(zone, pfn, order):
    """``__isolate_free_page``: take a free head off its list without allocating it."""
    del_page_from_free_list(zone, pfn, order)
    zone.state[pfn] = ISOLATED_BASE + order


# ---------------------------------------------------------------------------------------------
# Freeing


@jit(inline="always")
def buddy_merge_likely(zone, pfn, order):
    """v5.10 ``buddy_merge_likely``: is the order+1 buddy of the combined block free?"""
    if order >= zone.head.shape[0] - 2:  # order >= MAX_ORDER - 2
        return False
    combined = pfn & ~(1 << order)
    higher_buddy = combined ^ (1 << (order + 1))
    return zone.state[higher_buddy] == order + 1


@jit(inline="always")
def free_one_page(zone, pfn, order, to_tail):
    """``__free_one_page``: merge with free buddies, then place the block.

    ``to_tail`` forces tail placement (``FPI_TO_TAIL``, used when isolated pages go back).
    Returns the final order; the merged head is ``pfn`` with its low ``order`` bits cleared.
    """
    top = zone.head.shape[0] - 1
    zone.state[pfn] = NOT_HEAD
    while order < top:
        buddy = pfn ^ (1 << order)
        if zone.state[buddy] != order:
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
def putback_isolated_page(zone, pfn, order):
    """``__putback_isolated_page``: return an isolated block at the tail; return final order."""
    return free_one_page(zone, pfn, order, True)


# ---------------------------------------------------------------------------------------------
# Trace replay (../shared/bench/README.md format)


@jit
def replay_trace(zone, kind, order, slot, n_slots):
    """Run a whole alloc/free trace; return (failed allocs, sum of pfns allocated)."""
    held = np.full(n_slots, -1, np.int64)
    failed = 0
    checksum = np.uint64(0)
    for i in range(kind.shape[0]):
        o = order[i]
        if kind[i] == 0:
            pfn = rmqueue_smallest(zone, o)
            held[slot[i]] = pfn
            if pfn < 0:
                failed += 1
            else:
                checksum += np.uint64(pfn)
        else:
            pfn = held[slot[i]]
            if pfn >= 0:
                free_one_page(zone, pfn, o, False)
    return failed, checksum
