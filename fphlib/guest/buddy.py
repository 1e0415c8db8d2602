"""Linux's buddy allocator for one zone (mm/page_alloc.c, v5.10): the validated Python front
end :class:`BuddyAllocator` (docs/design.md §4), and the names of the buddy modules for callers.

The numba kernels, one idea per module (each re-exported here: ``from fphlib.guest.buddy
import rmqueue_smallest`` keeps working):

:mod:`fphlib.guest.buddy_kernels`
    the zone's arrays (:class:`Zone`), its free lists, allocation (``rmqueue_smallest``,
    ``expand``), freeing (``free_one_page``), isolation and putback, and the page states and
    flags; the semantics and simplifications of the model are described there;
:mod:`fphlib.guest.buddy_trace`
    the replay of an alloc/free trace in one jitted call (``replay_trace``);
:mod:`fphlib.guest.buddy_check`
    the invariant check (``CHK_*`` codes and their messages, :class:`BuddyInvariantError`).

Free-page tracking (``BuddyAllocator(track=...)``) is :mod:`fphlib.guest.free_page_tracking`.
"""

import operator

import numpy as np

from ..bounds import MAX_ZONE_PAGES
from ..state.zone import (
    ALLOC_BASE,
    CFG_LEN,
    CFG_PLACEMENT,
    CFG_REPORTING_OFF,
    CFG_TRACK,
    ISOLATED_BASE,
    NOT_HEAD,
    ON_PCP,
    PC_CLEAN,
    PC_DIRTY,
    PG_BACKED,
    PG_DATA,
    PG_IN_FLIGHT,
    PG_REPORTED,
    Zone,
    borrow_zone,
)
from ..units import NR_ORDERS
from .buddy_check import (
    CHK_BAD_STATE,
    CHK_COUNT,
    CHK_HEAD_TAIL,
    CHK_LINK_RANGE,
    CHK_LISTED_ALIGN,
    CHK_LISTED_STATE,
    CHK_LISTED_TWICE,
    CHK_MISALIGNED,
    CHK_NR_FREE,
    CHK_OK,
    CHK_OVERLAP,
    CHK_PREV,
    CHK_REPORTED,
    CHK_TAIL,
    CHK_UNCOVERED,
    CHK_UNLISTED,
    CHK_UNMERGED,
    BuddyInvariantError,
    _check,
    _check_message,
)
from .buddy_kernels import (
    PAGEBLOCK_ORDER,
    PLACEMENTS,
    TRACKS,
    _free_list,
    _reinit,
    add_to_free_list,
    add_to_free_list_tail,
    buddy_merge_likely,
    del_page_from_free_list,
    expand,
    free_one_page,
    free_pages,
    init_free_lists,
    isolate_free_page,
    kernel_zone,
    list_rotate_to_front,
    new_zone,
    nr_free_pages,
    putback_isolated_page,
    rmqueue_smallest,
    track_block_add,
    track_block_del,
    untracked_zone,
)
from .buddy_trace import (
    SLOT_FREED,
    TRACE_BAD_KIND,
    TRACE_BAD_ORDER,
    TRACE_BAD_SLOT,
    TRACE_NOT_ALLOCATED,
    TRACE_OK,
    TRACE_SLOT_FREED,
    _replay,
    _replay_sampled,
    replay_trace,
)
from .free_page_tracking import track_rebuild, tracking_mismatch, tracking_nbytes
from .xbitmap import read_only
from .xbitmap_arrays import xb_stats

# this module's own name, then the kernels' (re-exported for callers)
__all__ = [
    "BuddyAllocator",
    # buddy_kernels (and NR_ORDERS, which callers have imported from here)
    "ALLOC_BASE", "CFG_LEN", "CFG_PLACEMENT", "CFG_REPORTING_OFF", "CFG_TRACK",
    "ISOLATED_BASE", "NOT_HEAD", "NR_ORDERS", "ON_PCP", "PAGEBLOCK_ORDER", "PC_CLEAN",
    "PC_DIRTY", "PG_BACKED", "PG_DATA", "PG_IN_FLIGHT", "PG_REPORTED", "PLACEMENTS", "TRACKS",
    "Zone", "add_to_free_list", "add_to_free_list_tail", "borrow_zone", "buddy_merge_likely",
    "del_page_from_free_list", "expand", "free_one_page", "free_pages", "init_free_lists",
    "isolate_free_page", "kernel_zone", "list_rotate_to_front", "new_zone", "nr_free_pages",
    "putback_isolated_page", "rmqueue_smallest", "track_block_add", "track_block_del",
    "untracked_zone",
    # buddy_trace
    "SLOT_FREED", "TRACE_BAD_KIND", "TRACE_BAD_ORDER", "TRACE_BAD_SLOT", "TRACE_NOT_ALLOCATED",
    "TRACE_OK", "TRACE_SLOT_FREED", "replay_trace",
    # buddy_check
    "BuddyInvariantError", "CHK_BAD_STATE", "CHK_COUNT", "CHK_HEAD_TAIL", "CHK_LINK_RANGE",
    "CHK_LISTED_ALIGN", "CHK_LISTED_STATE", "CHK_LISTED_TWICE", "CHK_MISALIGNED",
    "CHK_NR_FREE", "CHK_OK", "CHK_OVERLAP", "CHK_PREV", "CHK_REPORTED", "CHK_TAIL",
    "CHK_UNCOVERED", "CHK_UNLISTED", "CHK_UNMERGED",
]

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
    the last :meth:`replay` (the ``pfn_checksum`` of the C reference, docs/design.md §5). Every call
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
        if n_pages > MAX_ZONE_PAGES:
            raise ValueError(f"n_pages must be at most {MAX_ZONE_PAGES:,} (int32 links), "
                             f"got {n_pages}")
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
        """Replay an alloc/free trace (docs/design.md §5) in one jitted call.

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
