"""Free-page tracking: the buddy allocator's hooks that keep a bitmap of its free memory
current, in an xbitmap or, to compare with, a flat bitmap.

Wei Wang's proposal (seed thread: "xb_set/clear the bit under the zone->lock, i.e. in rmqueue
and free_one_page"; "xb_preload in prepare_alloc_pages"): a block's bits are set when it
enters a free list and cleared when it leaves one (mm/page_alloc.c, v5.10: the list
operations of :mod:`fphlib.guest.buddy_kernels` call the hooks). The bitmap is the xbitmap of
:mod:`fphlib.guest.xbitmap_tree` (lib/xbitmap.c, v21) on the arrays of
:mod:`fphlib.guest.xbitmap_arrays`, or a flat bitmap with no tree (docs/design.md §3.2's
comparison).

Entry points
------------
``xb_track_add(..., pfn, order, granularity)`` / ``xb_track_del(...)``
    the hooks on ``nodes, leaves, meta`` (granularity ``TRACK_PAGE`` = one bit per page,
    ``TRACK_HEAD`` = per block head; inlined);
``xb_track_add_call`` / ``xb_track_del_call``
    the same as plain calls on the arrays (``TRACK_BITMAP`` = per page in a flat bitmap with
    no tree, included);
``XB_HOOKS`` (``xb_add_page_ptr``, ``xb_del_page_ptr``, ``xb_add_head_ptr``,
``xb_del_head_ptr``) / ``bitmap_track_ptr``
    the same on the arrays' addresses, one entry point per granularity and direction (what
    the buddy's hot loops call: a much cheaper call than one passing three arrays);
    ``xb_hook_call`` calls one through its address (``xb_hook_address``);
``tracking_arrays``, ``tracking_nbytes``, ``tracking_mismatch``, ``track_rebuild``
    a zone's tracking arrays, their size, their check against the free lists, and their
    rebuild from the free lists.
"""

import functools

import numpy as np
from numba.core import types
from numba.extending import intrinsic
from numba.np.numpy_support import carray

from .._jit import call_native, jit, native_address
from .xbitmap_arrays import (
    _ALL,
    _U0,
    _U1,
    _U10,
    _U1023,
    L_COUNT,
    LEAF_BITS,
    LEAF_BYTES,
    LEAF_SHIFT,
    LEAF_WIDTH,
    LEAF_WORDS,
    M_CLEAR,
    M_FAILED,
    M_FILL,
    M_MODE,
    M_SET,
    M_TRACK_DEL_FN,
    M_TRACK_FN,
    M_ZERO,
    META_LEN,
    MODE_GROW,
    MODE_PRELOAD,
    NODE_WIDTH,
    OK,
    _borrow,
    _preload,
    _ux,
    xb_capacity,
    xb_new,
)
from .xbitmap_check import check_arrays
from .xbitmap_tree import (
    _clear_bit,
    _clear_full_up,
    _delete_leaf,
    _fill_leaf,
    _insert_leaf,
    _leaf_empty,
    _leaf_full,
    _lookup,
    _popcount,
    _set_bit,
    _set_full_up,
    _zero_in_leaf,
    xb_dense,
    xb_nbytes,
    xb_zero,
)

# Granularities: a zone's ``cfg[CFG_TRACK]`` (fphlib.guest.buddy_kernels.TRACKS)
TRACK_OFF = 0
TRACK_PAGE = 1
TRACK_HEAD = 2
TRACK_BITMAP = 3  # the comparison layout: a flat bitmap of free pages, no radix tree


@jit(inline="always")
def _leaf_block(leaves, l, pos, order, set_):
    """Set (or clear) the aligned block of 2**order bits at ``pos`` (order <= 10) with whole
    words where it can: fewer branches than the general range code on the tracking path."""
    if order < 6:
        w = pos >> 6
        mask = ((_U1 << np.uint64(1 << order)) - _U1) << np.uint64(pos & 63)
        old = leaves[_ux(l), _ux(w)]
        new = old | mask if set_ else old & ~mask
        leaves[_ux(l), _ux(w)] = new
        changed = _popcount(new ^ old)
    else:
        w0 = pos >> 6
        changed = _U0
        fill = _ALL if set_ else _U0
        for w in range(w0, w0 + (1 << (order - 6))):
            changed += _popcount(leaves[_ux(l), _ux(w)] ^ fill)
            leaves[_ux(l), _ux(w)] = fill
    if set_:
        leaves[_ux(l), L_COUNT] += changed
    else:
        leaves[_ux(l), L_COUNT] -= changed


@jit(inline="always")
def _bitmap_track(leaves, meta, pfn, order, set_):
    """TRACK_BITMAP: the same page bits in a flat bitmap, no radix tree (docs/design.md §3.2's
    comparison). Row ``li`` of ``leaves`` always holds pages [1024 li, 1024 li + 1023], so
    every row is allocated once, up front; counted as ``fill``/``zero`` (bitmap_set/clear)."""
    p = np.uint64(pfn)
    if set_:
        meta[M_FILL] += 1
    else:
        meta[M_ZERO] += 1
    first = np.int64(p >> _U10)
    if order <= LEAF_SHIFT:
        _leaf_block(leaves, first, np.int64(p & _U1023), order, set_)
        return
    for li in range(first, first + (1 << (order - LEAF_SHIFT))):
        _leaf_block(leaves, li, 0, LEAF_SHIFT, set_)


@jit(inline="always")
def xb_track_add(nodes, leaves, meta, pfn, order, granularity):
    """A free block of ``order`` at ``pfn`` entered a free list: set its page bits (or head bit).

    In MODE_PRELOAD each new-leaf-capable set is preceded by ``xb_preload`` (Wei's
    ``prepare_alloc_pages`` preload), so ``preload_allocs`` counts the kmallocs the proposal
    would do. Pool exhaustion (a bitmap sized too small) is counted in ``failed``. Inlined
    into the buddy's list operations: pass borrowed arrays (``buddy.borrow_zone``).
    """
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    if granularity == TRACK_BITMAP:
        _bitmap_track(leaves, meta, pfn, order, True)
        return
    p = np.uint64(pfn)
    preload = meta[M_MODE] == MODE_PRELOAD
    if granularity == TRACK_HEAD:
        meta[M_SET] += 1
        if preload:
            _preload(leaves, meta)
        if _set_bit(nodes, leaves, meta, p) != OK:
            meta[M_FAILED] += 1
        return
    meta[M_FILL] += 1
    if order <= LEAF_SHIFT:  # a buddy block of order <= 10 lies in one leaf
        if preload:
            _preload(leaves, meta)
        l, n, off = _lookup(nodes, meta, p >> _U10)
        if l < 0:
            code, l, n, off = _insert_leaf(nodes, leaves, meta, p >> _U10, n, off)
            if code != OK:
                meta[M_FAILED] += 1
                return
        was_full = _leaf_full(leaves, l)
        _leaf_block(leaves, l, np.int64(p & _U1023), order, True)
        if not was_full and _leaf_full(leaves, l):
            _set_full_up(nodes, n, off)
        return
    last = p + (_U1 << np.uint64(order)) - _U1
    while True:  # one leaf at a time: each new leaf needs its own preloaded spare
        end = p | _U1023
        if end > last:
            end = last
        if preload:
            _preload(leaves, meta)
        if _fill_leaf(nodes, leaves, meta, p >> _U10, np.int64(p & _U1023),
                      np.int64(end & _U1023)) != OK:
            meta[M_FAILED] += 1
        if end == last:
            return
        p = end + _U1


@jit(inline="always")
def xb_track_del(nodes, leaves, meta, pfn, order, granularity):
    """A free block left its free list: clear its page bits (or head bit)."""
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    if granularity == TRACK_BITMAP:
        _bitmap_track(leaves, meta, pfn, order, False)
        return
    p = np.uint64(pfn)
    if granularity == TRACK_HEAD:
        meta[M_CLEAR] += 1
        _clear_bit(nodes, leaves, meta, p)
        return
    meta[M_ZERO] += 1
    if order <= LEAF_SHIFT:
        l, n, off = _lookup(nodes, meta, p >> _U10)
        if l < 0:
            return
        if order == LEAF_SHIFT:
            _delete_leaf(nodes, leaves, meta, l, n, off)
            return
        if _leaf_full(leaves, l):
            _clear_full_up(nodes, n, off)
        _leaf_block(leaves, l, np.int64(p & _U1023), order, False)
        if _leaf_empty(leaves, l):
            _delete_leaf(nodes, leaves, meta, l, n, off)
        return
    last = p + (_U1 << np.uint64(order)) - _U1
    while True:
        end = p | _U1023
        if end > last:
            end = last
        l, n, off = _lookup(nodes, meta, p >> _U10)
        if l >= 0:
            _zero_in_leaf(nodes, leaves, meta, l, n, off, np.int64(p & _U1023),
                          np.int64(end & _U1023))
        if end == last:
            return
        p = end + _U1


# Hook entry points. The buddy's list operations call them out of line, with the arrays'
# addresses rather than the arrays: numba passes an array as 7-9 fields, mostly on the stack,
# and with three arrays the call alone cost about as much as a flat bitmap update (churn5m:
# the flat bitmap went from 1.8x to 1.5x the plain replay, the xbitmap from 3.2x to 2.6x).
# The views rebuilt here are C-contiguous with constant row widths, and own no reference
# (like ``borrowed`` views): valid while the caller holds the arrays, as it does during a call.
# The flat bitmap has its own entry point: the xbitmap code in the same function made the
# same flat update cost 2.4x instead of 1.8x.
#
# The xbitmap has one entry point per granularity and direction (add or del), each compiled
# for its constant granularity: a zone stores the pair for its granularity in ``meta``
# (``tracking_arrays``), so the caller passes neither and the callee tests neither. With one
# entry point taking both as arguments (9 in all, 5 on the stack), a hook that only counted
# cost 1.59x the plain churn5m replay; with these (7 arguments) 1.40x; the whole hook 2.53x ->
# 2.41x (head), 2.64x -> 2.59x (page). A run compiles only the two it uses: 15 s + 10 s cold
# for TRACK_HEAD against 29 s for the single entry point (a first xbitmap_hints simulate():
# 79 -> 69 s of CPU). One entry point doing a whole split or merge (a del and expand()'s
# adds, or the buddies' dels and an add, in a loop) made one call per __rmqueue_smallest or
# __free_one_page (demo xbitmap_hints 223 -> 216 ms) but took 55 s to compile, more than
# 261 s with separate loops for split and merge: LLVM on the inlined add and del in loops.


@intrinsic
def _voidptr(typingctx, addr):
    """An address (``arr.ctypes.data``) as a ``void *`` for ``carray``."""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.voidptr))

    return types.voidptr(types.uintp), codegen


@jit(inline="always")
def _views(nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr):
    """The xbitmap's arrays at these addresses (``arr.ctypes.data``; ``n_*`` their rows)."""
    nodes = carray(_voidptr(nodes_addr), (n_nodes, NODE_WIDTH), np.int64)
    leaves = carray(_voidptr(leaves_addr), (n_leaves, LEAF_WIDTH), np.uint64)
    meta = carray(_voidptr(meta_addr), (META_LEN,), np.int64)
    return nodes, leaves, meta


@jit
def xb_add_page_ptr(nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr, pfn, order):
    """:func:`xb_track_add` with TRACK_PAGE on the arrays at these addresses."""
    nodes, leaves, meta = _views(nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr)
    xb_track_add(nodes, leaves, meta, pfn, order, TRACK_PAGE)


@jit
def xb_del_page_ptr(nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr, pfn, order):
    """:func:`xb_track_del` with TRACK_PAGE on the arrays at these addresses."""
    nodes, leaves, meta = _views(nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr)
    xb_track_del(nodes, leaves, meta, pfn, order, TRACK_PAGE)


@jit
def xb_add_head_ptr(nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr, pfn, order):
    """:func:`xb_track_add` with TRACK_HEAD on the arrays at these addresses."""
    nodes, leaves, meta = _views(nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr)
    xb_track_add(nodes, leaves, meta, pfn, order, TRACK_HEAD)


@jit
def xb_del_head_ptr(nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr, pfn, order):
    """:func:`xb_track_del` with TRACK_HEAD on the arrays at these addresses."""
    nodes, leaves, meta = _views(nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr)
    xb_track_del(nodes, leaves, meta, pfn, order, TRACK_HEAD)


# the hooks' one signature: they are called through their addresses (``meta[M_TRACK_FN]`` and
# ``meta[M_TRACK_DEL_FN]``, set by ``tracking_arrays``), so only runs that track free pages in
# an xbitmap compile them (the biggest kernels of the package: a single entry point for both
# directions was ~25 % of the cold compile of a first simulate())
_HOOK_SIG = types.none(types.uint64, types.int64, types.uint64, types.int64, types.uint64,
                       types.int64, types.int64)
XB_HOOKS = {
    (TRACK_PAGE, True): xb_add_page_ptr,
    (TRACK_PAGE, False): xb_del_page_ptr,
    (TRACK_HEAD, True): xb_add_head_ptr,
    (TRACK_HEAD, False): xb_del_head_ptr,
}
"""(granularity, add) -> the xbitmap hook entry point for it."""


@functools.cache
def xb_hook_address(granularity, add):
    """Native address of ``XB_HOOKS[granularity, add]`` (compiled or loaded from the cache
    once)."""
    return native_address(XB_HOOKS[(granularity, add)], _HOOK_SIG)


@intrinsic
def xb_hook_call(typingctx, fn, nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr, pfn,
                 order):
    """``hook(...)`` through its address ``fn`` (``meta[M_TRACK_FN]`` or
    ``meta[M_TRACK_DEL_FN]``), for a hook of :data:`XB_HOOKS`."""
    have = (nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr, pfn, order)

    def codegen(context, builder, signature, args):
        want = _HOOK_SIG.args
        vals = [context.cast(builder, v, h, w) for v, h, w in zip(args[1:], have, want,
                                                                  strict=True)]
        return call_native(context, builder, args[0], types.none, want, vals)

    return types.none(fn, *have), codegen


@jit
def bitmap_track_ptr(leaves_addr, n_rows, meta_addr, pfn, order, add):
    """The TRACK_BITMAP hook (:func:`_bitmap_track`) on the arrays at these addresses."""
    leaves = carray(_voidptr(leaves_addr), (n_rows, LEAF_WIDTH), np.uint64)
    meta = carray(_voidptr(meta_addr), (META_LEN,), np.int64)
    _bitmap_track(leaves, meta, pfn, order, add)


@jit
def xb_track_add_call(nodes, leaves, meta, pfn, order, granularity):
    """:func:`xb_track_add` as a plain (not inlined) kernel on the arrays (any granularity,
    TRACK_BITMAP included); hot loops call the :data:`XB_HOOKS` instead."""
    xb_track_add(nodes, leaves, meta, pfn, order, granularity)


@jit
def xb_track_del_call(nodes, leaves, meta, pfn, order, granularity):
    """:func:`xb_track_del` as a plain (not inlined) kernel on the arrays."""
    xb_track_del(nodes, leaves, meta, pfn, order, granularity)


@jit
def _tracked_bits(head, next_, n_pages, granularity):
    """The bits the tracking bitmap must hold, from the free lists themselves."""
    want = np.zeros(n_pages, np.bool_)
    for order in range(head.shape[0]):
        p = head[order]
        steps = 0
        while p >= 0 and steps < n_pages:
            if granularity == TRACK_HEAD:
                want[p] = True
            else:
                want[p : p + (1 << order)] = True
            p = next_[p]
            steps += 1
    return want


@jit
def track_rebuild(head, next_, nodes, leaves, meta, granularity):
    """Empty the tracking bitmap and add every block on the free lists again (used after a
    failed replay restored the lists). Counters keep counting."""
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    if granularity == TRACK_BITMAP:
        leaves[:, :] = _U0
    else:
        xb_zero(nodes, leaves, meta, _U0, _ALL)
    for order in range(head.shape[0]):
        p = head[order]
        steps = 0
        while p >= 0 and steps < next_.shape[0]:
            xb_track_add(nodes, leaves, meta, p, order, granularity)
            p = next_[p]
            steps += 1


def tracking_arrays(n_pages, granularity):
    """``(nodes, leaves, meta)`` for a zone's free-page bitmap, pre-sized for pfns
    [0, n_pages) so the hooks never run out of rows; kernel-faithful preload mode (the hooks
    preload before each set, as Wei's ``prepare_alloc_pages`` would). Empty pools when off;
    for TRACK_BITMAP no tree and one zeroed row per 1024 pages."""
    if granularity == TRACK_OFF:
        return xb_new(0, 0, MODE_PRELOAD)
    if granularity == TRACK_BITMAP:
        nodes, _, meta = xb_new(0, 0, MODE_GROW)
        return nodes, np.zeros((-(-int(n_pages) // LEAF_BITS), LEAF_WIDTH), np.uint64), meta
    nodes, leaves, meta = xb_new(*xb_capacity(n_pages), MODE_PRELOAD)
    meta[M_TRACK_FN] = xb_hook_address(granularity, True)
    meta[M_TRACK_DEL_FN] = xb_hook_address(granularity, False)
    return nodes, leaves, meta


def tracking_nbytes(leaves, meta, granularity):
    """Bytes of the tracking structure: the xbitmap's (:func:`xb_nbytes`), or n_pages / 8
    rounded up to 128-byte rows for TRACK_BITMAP (the per-row counts are model bookkeeping)."""
    if granularity == TRACK_BITMAP:
        return leaves.shape[0] * LEAF_BYTES
    return int(xb_nbytes(meta))


def _bitmap_dense(leaves, n_bits):
    """TRACK_BITMAP rows as a bool per bit, and whether a row's count disagrees with it."""
    words = np.ascontiguousarray(leaves[:, :LEAF_WORDS])
    bits = np.unpackbits(words.view(np.uint8), bitorder="little").astype(bool)
    counts = bits.reshape(leaves.shape[0], LEAF_BITS).sum(axis=1)
    return bits, np.flatnonzero(counts != leaves[:, L_COUNT])


def tracking_mismatch(zone, granularity):
    """None if the zone's tracking bitmap equals its free lists, else a message naming the
    first wrong pfn. ``zone`` is a buddy ``Zone``; ``granularity`` a ``TRACK_*`` value."""
    n_pages = zone.state.shape[0]
    if granularity == TRACK_BITMAP:
        bits, bad_rows = _bitmap_dense(zone.xb_leaves, n_pages)
        if bad_rows.size:
            return f"free-page bitmap row {int(bad_rows[0])}: set-bit count is wrong"
        have, beyond = bits[:n_pages], bits[n_pages:].any()
    else:
        try:
            check_arrays(zone.xb_nodes, zone.xb_leaves, zone.xb_meta)
        except AssertionError as e:
            return f"free-page xbitmap is corrupt: {e}"
        if zone.xb_meta[M_FAILED]:
            return f"free-page xbitmap ran out of rows {int(zone.xb_meta[M_FAILED])} times"
        have, beyond = xb_dense(zone.xb_nodes, zone.xb_leaves, zone.xb_meta, n_pages)
    want = _tracked_bits(zone.head, zone.next, n_pages, granularity)
    if beyond:
        return f"free-page xbitmap has a bit set at or above n_pages={n_pages}"
    bad = np.flatnonzero(want != have)
    if bad.size:
        pfn = int(bad[0])
        what = "block head" if granularity == TRACK_HEAD else "page"
        return (
            f"free-page xbitmap (one bit per {what}) disagrees with the free lists at pfn "
            f"{pfn}: bit is {int(have[pfn])}, lists say {int(want[pfn])} "
            f"({bad.size} pfns differ)"
        )
    return None
