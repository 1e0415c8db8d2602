"""The xbitmap (eXtensible Bitmap) of Matthew Wilcox and Wei Wang, final v21 API, as numba kernels.

A sparse bitmap over the whole unsigned 64-bit index range (reference/kernel-mechanisms.md §5;
lib/xbitmap.c and include/linux/xbitmap.h of "[PATCH v21 1/5] xbitmap: Introduce xbitmap",
https://lore.kernel.org/lkml/1515496262-7533-2-git-send-email-wei.w.wang@intel.com/).
Bit ``b`` lives in leaf ``b >> 10`` (a ``struct ida_bitmap`` of 16 longs = 1024 bits, one
order-10 block of guest pages) at position ``b & 1023``; leaves hang off an IDR-flavoured radix
tree of 64-slot nodes (lib/radix-tree.c, v4.15) whose height grows with the largest leaf index.

Array layout (the engine keeps these three arrays per guest and calls the kernels on them)
--------------------------------------------------------------------------------------------
``nodes`` : int64[node_capacity, NODE_WIDTH]
    One radix node per row. Columns 0..63 are the slots (child node row at levels > 0, leaf
    row at level 0, -1 when empty); ``N_PARENT`` parent row (-1 for the root), ``N_OFFSET``
    slot in the parent, ``N_LEVEL`` 0 for the bottom level (``node->shift / 6``), ``N_OCC``
    bitmask of occupied slots (its popcount is ``node->count``), ``N_FULL``
    bitmask of slots whose subtree is entirely set (the complement of the IDR_FREE tag).
    Free rows are chained through column 0.
``leaves`` : uint64[leaf_capacity, LEAF_WIDTH]
    One 1024-bit leaf per row: words 0..15 the bits, column ``L_COUNT`` the number of set
    bits (model bookkeeping, so "empty" and "full" need no scan). Free rows are all zero
    except word 0, which chains them.
``meta`` : int64[META_LEN]
    ``M_ROOT`` root entry (-1 empty; a leaf row when ``M_HEIGHT`` is 0, else a node row),
    ``M_HEIGHT`` node levels, the free-list heads ``M_NODE_FREE``/``M_LEAF_FREE`` (-1 when
    exhausted), ``M_NODES_AVAIL``, ``M_MODE`` (``MODE_GROW`` or ``MODE_PRELOAD``),
    ``M_SPARE`` (the preloaded per-CPU leaf, -1 if none) and the counters listed in
    :data:`COUNTERS`. Rows in the tree = allocs - frees, so the counters must never be reset.

All three are passed by the caller; kernels never allocate or grow them. Each entry point
drops NumPy reference counting on them for its duration (borrowed views), so calls from a
hot loop cost no atomic operations.

Create them with :func:`xb_new` (sized with :func:`xb_capacity` for a bounded index range, so
that no kernel ever runs out of rows in a hot loop).

Jitted entry points (all take ``nodes, leaves, meta`` first; bits may be int64 or uint64)
---------------------------------------------------------------------------------------------
``xb_set_bit(..., bit) -> int``            0, ``ENOMEM`` (no preloaded leaf in MODE_PRELOAD),
                                           ``NEED_NODES`` / ``NEED_LEAVES`` (pool exhausted,
                                           nothing changed: grow outside and retry)
``xb_clear_bit(..., bit)``
``xb_test_bit(..., bit) -> bool``
``xb_find_set(..., start, max) -> (bool, uint64)``   first set bit in [start, max]
``xb_find_zero(..., start, max) -> (bool, uint64)``  first zero bit in [start, max]
``xb_zero(..., lo, hi)``                   clear [lo, hi], visiting populated leaves only
``xb_fill(..., lo, hi) -> int``            set [lo, hi]; codes as ``xb_set_bit``
``xb_preload(nodes, leaves, meta) -> int`` fill the per-CPU spare leaf (0 or ``NEED_LEAVES``)
``xb_empty(meta) -> bool``, ``xb_count(...) -> int``, ``xb_nbytes(meta) -> int``
``xb_track_add(..., pfn, order, granularity)`` / ``xb_track_del(...)``: the free-page
tracking hooks of the buddy allocator (granularity 1 = one bit per page, 2 = per block head;
inlined); ``xb_track_add_call`` / ``xb_track_del_call`` the same as plain calls on the arrays
(granularity 3 = per page in a flat bitmap with no tree, for comparison, included);
``xb_track_ptr`` / ``bitmap_track_ptr`` the same on the arrays' addresses (what the buddy's hot
loops call: a much cheaper call than one passing three arrays).

Simplifications (each deliberate):

- ``nbytes`` counts the kernel structures (576-byte ``radix_tree_node``, 128-byte
  ``ida_bitmap``), not the NumPy rows that model them; the preloaded spare leaf is per-CPU
  memory and is not counted.
- Radix nodes never fail to allocate (the kernel allocates them with GFP_NOWAIT, backed by the
  ``XB_PRELOAD_SIZE`` = 17 node preload); only leaves are subject to preloading.
- A set that cannot get a leaf fails before touching the tree (v21 leaves the empty radix
  nodes it created behind on -ENOMEM).
- ``xb_fill`` is only declared in v21; it is modelled as setting every bit of the range, a
  new leaf per missing 1024-bit chunk, each new leaf taken like ``xb_set_bit`` takes one.
- No RCU, no concurrency: the caller provides locking (zone->lock in the buddy allocator).
- Model bookkeeping the kernel does not have, for speed only (it changes no result and no
  ``nbytes``): a set-bit count per leaf and a bitmask of occupied slots per node.
- IDR details kept: a lone leaf 0 in an empty tree sits in the root with no node; the bottom
  node is never shrunk back into the root; only the radix tags' IDR_FREE meaning is modelled.
"""

import functools

import numpy as np
from numba.core import errors, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic
from numba.np.numpy_support import carray

from .._jit import borrowed, call_native, jit, native_address

# Geometry (include/linux/idr.h IDA_BITMAP_LONGS = 128 / 8; RADIX_TREE_MAP_SHIFT = 6)
LEAF_SHIFT = 10
LEAF_BITS = 1 << LEAF_SHIFT  # IDA_BITMAP_BITS
LEAF_WORDS = LEAF_BITS // 64
L_COUNT = LEAF_WORDS  # ``leaves`` column: set bits in the leaf
LEAF_WIDTH = LEAF_WORDS + 1
MAP_SHIFT = 6
MAP_SIZE = 1 << MAP_SHIFT
MAX_HEIGHT = 9  # XB_MAX_PATH = DIV_ROUND_UP(64 - 10, 6)
PRELOAD_NODES = 2 * MAX_HEIGHT - 1  # XB_PRELOAD_SIZE
NODE_BYTES = 576  # sizeof(struct radix_tree_node) on x86-64
LEAF_BYTES = 128  # sizeof(struct ida_bitmap)
MAX_BIT = (1 << 64) - 1

# ``nodes`` columns after the 64 slots
N_PARENT = 64
N_OFFSET = 65
N_LEVEL = 66
N_OCC = 67
N_FULL = 68
NODE_WIDTH = 69

# ``meta`` entries
M_ROOT = 0
M_HEIGHT = 1
M_NODE_FREE = 2
M_LEAF_FREE = 3
M_MODE = 4
M_SPARE = 5
M_NODES_AVAIL = 6
M_SET = 7
M_CLEAR = 8
M_TEST = 9
M_FIND = 10
M_ZERO = 11
M_FILL = 12
M_LEAF_ALLOCS = 13  # leaves in the tree = M_LEAF_ALLOCS - M_LEAF_FREES
M_LEAF_FREES = 14
M_NODE_ALLOCS = 15  # nodes in the tree = M_NODE_ALLOCS - M_NODE_FREES
M_NODE_FREES = 16
M_PRELOAD_CALLS = 17
M_PRELOAD_ALLOCS = 18
M_NOMEM = 19
M_FAILED = 20
M_TRACK_FN = 21  # native address of xb_track_ptr (tracking_arrays), 0 for other bitmaps
META_LEN = 24  # 22..23 reserved

COUNTERS = {
    "set_bit": M_SET,
    "clear_bit": M_CLEAR,
    "test_bit": M_TEST,
    "find": M_FIND,
    "zero": M_ZERO,
    "fill": M_FILL,
    "leaf_allocs": M_LEAF_ALLOCS,
    "leaf_frees": M_LEAF_FREES,
    "node_allocs": M_NODE_ALLOCS,
    "node_frees": M_NODE_FREES,
    "preload_calls": M_PRELOAD_CALLS,
    "preload_allocs": M_PRELOAD_ALLOCS,
    "nomem": M_NOMEM,
    "failed": M_FAILED,
}
"""Counter name -> ``meta`` index. ``failed`` counts pool exhaustion seen by the tracking hooks,
which cannot return an error (it must stay 0 with a correctly pre-sized bitmap)."""

MODE_GROW = 0  # a missing leaf is allocated on the spot (kmalloc GFP_NOWAIT that never fails)
MODE_PRELOAD = 1  # kernel-faithful: a missing leaf must come from xb_preload's per-CPU spare

OK = 0
ENOMEM = -12  # -ENOMEM, as v21 xb_set_bit returns
NEED_NODES = -1001  # node pool exhausted (model-only; the wrapper grows the arrays)
NEED_LEAVES = -1002  # leaf pool exhausted (model-only)

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U6 = np.uint64(MAP_SHIFT)
_U10 = np.uint64(LEAF_SHIFT)
_U63 = np.uint64(63)
_U1023 = np.uint64(LEAF_BITS - 1)
_ALL = np.uint64(MAX_BIT)


@intrinsic
def _popcount(typingctx, src):
    """LLVM ctpop (the kernel's hweight64)."""
    if not isinstance(src, types.Integer):
        raise errors.NumbaTypeError(f"_popcount needs an integer, got {src}")

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return src(src), codegen


@jit(inline="always")
def _borrow(nodes, leaves, meta):
    return borrowed(nodes), borrowed(leaves), borrowed(meta)


@jit(inline="always")
def _ux(i):
    """An index known to be >= 0 as unsigned: numba then skips its negative-index wraparound
    (a compare and select on every access; same device as buddy's np.uintp casts)."""
    return np.uintp(i)


# ---------------------------------------------------------------------------------------------
# Pools (kmalloc / kfree of radix_tree_node and ida_bitmap)


@jit(inline="always")
def _alloc_node(nodes, meta, level, parent, offset):
    """``radix_tree_node_alloc``: take a row off the free list (caller checked availability)."""
    n = meta[M_NODE_FREE]
    meta[M_NODE_FREE] = nodes[n, 0]
    meta[M_NODES_AVAIL] -= 1
    for i in range(MAP_SIZE):
        nodes[n, i] = -1
    nodes[n, N_PARENT] = parent
    nodes[n, N_OFFSET] = offset
    nodes[n, N_LEVEL] = level
    nodes[n, N_OCC] = 0
    nodes[n, N_FULL] = 0
    meta[M_NODE_ALLOCS] += 1
    return n


@jit(inline="always")
def _free_node(nodes, meta, n):
    nodes[n, 0] = meta[M_NODE_FREE]
    meta[M_NODE_FREE] = n
    meta[M_NODES_AVAIL] += 1
    meta[M_NODE_FREES] += 1


@jit(inline="always")
def _pop_leaf(leaves, meta):
    l = meta[M_LEAF_FREE]
    meta[M_LEAF_FREE] = np.int64(leaves[_ux(l), 0])
    return l


@jit(inline="always")
def _take_leaf(leaves, meta):
    """Get a zeroed leaf: the preloaded spare (``this_cpu_xchg(ida_bitmap, NULL)``) or, in
    MODE_GROW, a fresh one. The caller checked :func:`_leaf_available`. Free rows are kept
    zero, so only the free-list link needs clearing (the kernel's memset)."""
    l = meta[M_SPARE]
    if l >= 0:
        meta[M_SPARE] = -1
    else:
        l = _pop_leaf(leaves, meta)
    leaves[_ux(l), 0] = _U0
    meta[M_LEAF_ALLOCS] += 1
    return l


@jit(inline="always")
def _leaf_available(meta):
    """OK, ENOMEM (preload mode without a spare) or NEED_LEAVES (pool exhausted)."""
    if meta[M_SPARE] >= 0:
        return OK
    if meta[M_MODE] == MODE_PRELOAD:
        return ENOMEM
    if meta[M_LEAF_FREE] < 0:
        return NEED_LEAVES
    return OK


@jit(inline="always")
def _release_leaf(leaves, meta, l):
    """``kfree(bitmap)``; the row is zeroed so that it can be reused without a memset."""
    if leaves[_ux(l), L_COUNT] != 0:
        for w in range(LEAF_WIDTH):
            leaves[_ux(l), _ux(w)] = _U0
    leaves[_ux(l), 0] = np.uint64(meta[M_LEAF_FREE])
    meta[M_LEAF_FREE] = l
    meta[M_LEAF_FREES] += 1


@jit(inline="always")
def _preload(leaves, meta):
    meta[M_PRELOAD_CALLS] += 1
    if meta[M_SPARE] < 0:
        if meta[M_LEAF_FREE] < 0:
            return NEED_LEAVES
        meta[M_SPARE] = _pop_leaf(leaves, meta)
        meta[M_PRELOAD_ALLOCS] += 1
    return OK


@jit
def xb_preload(nodes, leaves, meta):
    """``xb_preload``: make sure the per-CPU spare leaf exists (allocating it if not).

    Returns 0, or NEED_LEAVES when the leaf pool is exhausted (the kernel's -ENOMEM).
    """
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    return _preload(leaves, meta)


# ---------------------------------------------------------------------------------------------
# Leaf helpers (lib/bitmap.c: bitmap_full, bitmap_empty, find_next_bit, ...)


@jit(inline="always")
def _leaf_full(leaves, l):
    """``bitmap_full``."""
    return leaves[_ux(l), L_COUNT] == np.uint64(LEAF_BITS)


@jit(inline="always")
def _leaf_empty(leaves, l):
    """``bitmap_empty``."""
    return leaves[_ux(l), L_COUNT] == _U0


@jit(inline="always")
def _range_mask(lo, hi):
    """Bits lo..hi (0 <= lo <= hi <= 63) of a word."""
    return (_ALL >> np.uint64(63 - (hi - lo))) << np.uint64(lo)


@jit(inline="always")
def _leaf_set_range(leaves, l, first, last):
    """Set bits first..last (``bitmap_set``); keep the leaf's count."""
    w0 = first >> 6
    w1 = last >> 6
    added = _U0
    for w in range(w0, w1 + 1):
        lo = first & 63 if w == w0 else 0
        hi = last & 63 if w == w1 else 63
        old = leaves[l, w]
        new = old | _range_mask(lo, hi)
        leaves[l, w] = new
        added += _popcount(new ^ old)
    leaves[l, L_COUNT] += added


@jit(inline="always")
def _leaf_clear_range(leaves, l, first, last):
    """Clear bits first..last (``bitmap_clear``); keep the leaf's count."""
    w0 = first >> 6
    w1 = last >> 6
    removed = _U0
    for w in range(w0, w1 + 1):
        lo = first & 63 if w == w0 else 0
        hi = last & 63 if w == w1 else 63
        old = leaves[l, w]
        new = old & ~_range_mask(lo, hi)
        leaves[l, w] = new
        removed += _popcount(new ^ old)
    leaves[l, L_COUNT] -= removed


@jit(inline="always")
def _leaf_find(leaves, l, first, last, want_set):
    """First set (or zero) bit of a leaf within [first, last]; -1 if none."""
    w = first >> 6
    w1 = last >> 6
    mask = _ALL << np.uint64(first & 63)
    while w <= w1:
        x = leaves[l, w] if want_set else ~leaves[l, w]
        x &= mask
        if w == w1:
            x &= _ALL >> np.uint64(63 - (last & 63))
        if x != _U0:
            return w * 64 + np.int64(trailing_zeros(x))
        w += 1
        mask = _ALL
    return -1


# ---------------------------------------------------------------------------------------------
# Radix tree (lib/radix-tree.c, v4.15: the IDR flavour the xbitmap uses)


@jit(inline="always")
def _height_for(li):
    """Node levels needed to index leaf ``li`` (``radix_tree_extend``'s maxshift loop)."""
    h = 0
    while (li >> np.uint64(MAP_SHIFT * h)) != _U0:
        h += 1
    return h


@jit(inline="always")
def _digit(li, level):
    return np.int64((li >> np.uint64(MAP_SHIFT * level)) & _U63)


@jit(inline="always")
def _lookup(nodes, meta, li):
    """``__radix_tree_lookup``: (leaf row or -1, bottom node or -1, slot in it)."""
    root = meta[M_ROOT]
    h = meta[M_HEIGHT]
    if root < 0:
        return -1, -1, 0
    if h == 0:
        if li == _U0:
            return root, -1, 0
        return -1, -1, 0
    if (li >> np.uint64(MAP_SHIFT * h)) != _U0:
        return -1, -1, 0
    n = root
    level = h - 1
    while True:
        off = _digit(li, level)
        child = nodes[_ux(n), _ux(off)]
        if level == 0:
            return child, n, off  # child -1: the leaf is missing but its bottom node exists
        if child < 0:
            return -1, -1, 0
        n = child
        level -= 1


@jit(inline="always")
def _set_full_up(nodes, n, off):
    """Clear IDR_FREE on a slot whose subtree became full, and on ancestors that fill up."""
    while n >= 0:
        full = np.uint64(nodes[_ux(n), N_FULL]) | (_U1 << np.uint64(off))
        nodes[_ux(n), N_FULL] = np.int64(full)
        if full != _ALL:
            return
        off = nodes[_ux(n), N_OFFSET]
        n = nodes[_ux(n), N_PARENT]


@jit(inline="always")
def _clear_full_up(nodes, n, off):
    """Set IDR_FREE again on a slot (and on ancestors that were full)."""
    while n >= 0:
        full = np.uint64(nodes[_ux(n), N_FULL])
        bit = _U1 << np.uint64(off)
        if (full & bit) == _U0:
            return
        nodes[_ux(n), N_FULL] = np.int64(full & ~bit)
        if full != _ALL:
            return
        off = nodes[_ux(n), N_OFFSET]
        n = nodes[_ux(n), N_PARENT]


@jit(inline="always")
def _nodes_needed(nodes, meta, li):
    """Radix nodes that inserting leaf ``li`` would allocate (extension plus missing path)."""
    root = meta[M_ROOT]
    h = meta[M_HEIGHT]
    need = _height_for(li)
    if root < 0:
        return need
    if need > h:
        # radix_tree_extend adds levels h..need-1 above the old root (slot 0); li's digit at
        # the new top level is non-zero, so every level below the top is a new node.
        return (need - h) + (need - 1)
    if h == 0:
        return 0
    n = root
    level = h - 1
    while level > 0:
        child = nodes[n, _digit(li, level)]
        if child < 0:
            return level
        n = child
        level -= 1
    return 0


@jit(inline="always")
def _subtree_full(nodes, leaves, entry, level):
    """Is the entry at ``level`` (-1 = a leaf) entirely set?"""
    if level < 0:
        return _leaf_full(leaves, entry)
    return np.uint64(nodes[entry, N_FULL]) == _ALL


@jit(inline="always")
def _extend(nodes, leaves, meta, li):
    """``radix_tree_extend``: grow the tree until leaf index ``li`` fits."""
    need = _height_for(li)
    h = meta[M_HEIGHT]
    root = meta[M_ROOT]
    if root < 0:
        # an empty root just records the shift; nodes are created on the way down
        meta[M_HEIGHT] = need
        return
    while h < need:
        n = _alloc_node(nodes, meta, h, -1, 0)
        nodes[n, 0] = root
        nodes[n, N_OCC] = 1
        if _subtree_full(nodes, leaves, root, h - 1):
            nodes[n, N_FULL] = 1
        if h > 0:
            nodes[root, N_PARENT] = n
            nodes[root, N_OFFSET] = 0
        root = n
        h += 1
    meta[M_ROOT] = root
    meta[M_HEIGHT] = h


@jit(inline="always")
def _insert_leaf(nodes, leaves, meta, li, bottom, slot):
    """``idr_get_free_cmn`` + ``radix_tree_iter_replace``: add an empty leaf at index ``li``.

    ``bottom``/``slot`` come from a failed :func:`_lookup`: when the bottom node exists the
    leaf just goes into its slot. Returns (code, leaf, bottom node or -1, slot). Nothing
    changes unless code is OK.
    """
    code = _leaf_available(meta)
    if code != OK:
        if code == ENOMEM:
            meta[M_NOMEM] += 1
        return code, -1, -1, 0
    if bottom >= 0:
        l = _take_leaf(leaves, meta)
        row = _ux(bottom)
        nodes[row, _ux(slot)] = l
        nodes[row, N_OCC] = np.int64(np.uint64(nodes[row, N_OCC]) | (_U1 << np.uint64(slot)))
        return OK, l, bottom, slot
    if meta[M_NODES_AVAIL] < _nodes_needed(nodes, meta, li):
        return NEED_NODES, -1, -1, 0
    _extend(nodes, leaves, meta, li)
    h = meta[M_HEIGHT]
    l = _take_leaf(leaves, meta)
    if h == 0:
        meta[M_ROOT] = l
        return OK, l, -1, 0
    if meta[M_ROOT] < 0:
        meta[M_ROOT] = _alloc_node(nodes, meta, h - 1, -1, 0)
    n = meta[M_ROOT]
    level = h - 1
    while level > 0:
        off = _digit(li, level)
        child = nodes[_ux(n), _ux(off)]
        if child < 0:
            child = _alloc_node(nodes, meta, level - 1, n, off)
            row = _ux(n)
            nodes[row, _ux(off)] = child
            nodes[row, N_OCC] = np.int64(np.uint64(nodes[row, N_OCC]) | (_U1 << np.uint64(off)))
        n = child
        level -= 1
    off = _digit(li, 0)
    nodes[_ux(n), _ux(off)] = l
    nodes[_ux(n), N_OCC] = np.int64(np.uint64(nodes[_ux(n), N_OCC]) | (_U1 << np.uint64(off)))
    return OK, l, n, off


@jit(inline="always")
def _shrink(nodes, meta):
    """``radix_tree_shrink``: drop root levels that only use slot 0.

    An IDR tree never shrinks its bottom node into the root ("we must not shrink entry 0 into
    the root"), so a lone leaf 0 keeps one node once the tree has had one.
    """
    while meta[M_HEIGHT] > 1:
        r = meta[M_ROOT]
        if nodes[r, N_OCC] != 1:  # count != 1 or slot 0 empty
            return
        child = nodes[r, 0]
        nodes[child, N_PARENT] = -1
        nodes[child, N_OFFSET] = 0
        meta[M_ROOT] = child
        meta[M_HEIGHT] -= 1
        _free_node(nodes, meta, r)


@jit(inline="always")
def _delete_leaf(nodes, leaves, meta, l, n, off):
    """``kfree(bitmap)`` + ``radix_tree_iter_delete`` (``delete_node``): free the leaf, then
    every node left without children, then shrink the root."""
    _release_leaf(leaves, meta, l)
    if n < 0:
        meta[M_ROOT] = -1
        meta[M_HEIGHT] = 0
        return
    while True:
        _clear_full_up(nodes, n, off)
        nodes[_ux(n), _ux(off)] = -1
        occ = np.uint64(nodes[_ux(n), N_OCC]) & ~(_U1 << np.uint64(off))
        nodes[_ux(n), N_OCC] = np.int64(occ)
        if occ != _U0:
            break
        parent = nodes[_ux(n), N_PARENT]
        poff = nodes[_ux(n), N_OFFSET]
        _free_node(nodes, meta, n)
        if parent < 0:
            meta[M_ROOT] = -1
            meta[M_HEIGHT] = 0
            return
        n = parent
        off = poff
    if nodes[_ux(n), N_PARENT] < 0:  # delete_node shrinks only when it stopped at the root
        _shrink(nodes, meta)


@jit(inline="always")
def _next_sibling(nodes, n, level):
    """From node ``n``, climb to the first ancestor with a slot right of the path.

    Returns (ancestor, its level, next slot) or (-1, 0, 0) when the walk leaves the tree.
    """
    while True:
        p = nodes[n, N_PARENT]
        if p < 0:
            return -1, 0, 0
        off = nodes[n, N_OFFSET]
        n = p
        level += 1
        if off < MAP_SIZE - 1:
            return n, level, off + 1


@jit(inline="always")
def _at_slot(li, level, off):
    """Leaf index of the first leaf under slot ``off`` of the level-``level`` node on li's path."""
    up = np.uint64(MAP_SHIFT * (level + 1))
    return ((li >> up) << up) | (np.uint64(off) << np.uint64(MAP_SHIFT * level))


@jit(inline="always")
def _next_leaf(nodes, meta, li):
    """``radix_tree_for_each_slot`` step: first present leaf with index >= li.

    Returns (found, index, leaf, bottom node or -1, slot).
    """
    root = meta[M_ROOT]
    h = meta[M_HEIGHT]
    if root < 0:
        return False, li, -1, -1, 0
    if h == 0:
        if li == _U0:
            return True, li, root, -1, 0
        return False, li, -1, -1, 0
    if (li >> np.uint64(MAP_SHIFT * h)) != _U0:
        return False, li, -1, -1, 0
    n = root
    level = h - 1
    while True:
        off = _digit(li, level)
        occ = np.uint64(nodes[n, N_OCC]) >> np.uint64(off)
        if occ != _U0:
            noff = off + np.int64(trailing_zeros(occ))
            if noff != off:
                li = _at_slot(li, level, noff)
            child = nodes[n, noff]
            if level == 0:
                return True, li, child, n, noff
            n = child
            level -= 1
        else:
            n, level, noff = _next_sibling(nodes, n, level)
            if n < 0:
                return False, li, -1, -1, 0
            li = _at_slot(li, level, noff)


@jit(inline="always")
def _next_zero_leaf(nodes, leaves, meta, li):
    """``radix_tree_for_each_tagged(IDR_FREE)`` step: first leaf index >= li that is missing
    or not full. Returns (index, leaf or -1 if missing, bottom node, slot); the index may be
    2**54 (past the last leaf) when everything from li on is full."""
    root = meta[M_ROOT]
    h = meta[M_HEIGHT]
    if root < 0:
        return li, -1, -1, 0
    if h == 0:
        if li == _U0:
            if _leaf_full(leaves, root):
                return _U1, -1, -1, 0
            return li, root, -1, 0
        return li, -1, -1, 0
    if (li >> np.uint64(MAP_SHIFT * h)) != _U0:
        return li, -1, -1, 0
    n = root
    level = h - 1
    while True:
        off = _digit(li, level)
        cand = ~np.uint64(nodes[n, N_FULL]) >> np.uint64(off)
        if cand != _U0:
            noff = off + np.int64(trailing_zeros(cand))
            if noff != off:
                li = _at_slot(li, level, noff)
            child = nodes[n, noff]
            if child < 0:
                return li, -1, n, noff
            if level == 0:
                return li, child, n, noff
            n = child
            level -= 1
        else:
            n, level, noff = _next_sibling(nodes, n, level)
            if n < 0:
                return _U1 << np.uint64(MAP_SHIFT * h), -1, -1, 0
            li = _at_slot(li, level, noff)


# ---------------------------------------------------------------------------------------------
# The v21 API


@jit(inline="always")
def _set_bit(nodes, leaves, meta, b):
    li = b >> _U10
    l, n, off = _lookup(nodes, meta, li)
    if l < 0:
        code, l, n, off = _insert_leaf(nodes, leaves, meta, li, n, off)
        if code != OK:
            return code
    w = np.int64((b >> _U6) & np.uint64(LEAF_WORDS - 1))
    m = _U1 << (b & _U63)
    old = leaves[_ux(l), _ux(w)]
    if (old & m) == _U0:
        leaves[_ux(l), _ux(w)] = old | m
        leaves[_ux(l), L_COUNT] += _U1
        if _leaf_full(leaves, l):
            _set_full_up(nodes, n, off)
    return OK


@jit
def xb_set_bit(nodes, leaves, meta, bit):
    """``xb_set_bit``: 0, ENOMEM, NEED_NODES or NEED_LEAVES (then nothing changed)."""
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    meta[M_SET] += 1
    return _set_bit(nodes, leaves, meta, np.uint64(bit))


@jit(inline="always")
def _clear_bit(nodes, leaves, meta, b):
    l, n, off = _lookup(nodes, meta, b >> _U10)
    if l < 0:
        return
    w = np.int64((b >> _U6) & np.uint64(LEAF_WORDS - 1))
    m = _U1 << (b & _U63)
    old = leaves[_ux(l), _ux(w)]
    if (old & m) == _U0:
        return
    if _leaf_full(leaves, l):
        _clear_full_up(nodes, n, off)
    leaves[_ux(l), _ux(w)] = old & ~m
    leaves[_ux(l), L_COUNT] -= _U1
    if _leaf_empty(leaves, l):
        _delete_leaf(nodes, leaves, meta, l, n, off)


@jit
def xb_clear_bit(nodes, leaves, meta, bit):
    """``xb_clear_bit``: clear a bit; a leaf left empty is freed, then empty nodes."""
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    meta[M_CLEAR] += 1
    _clear_bit(nodes, leaves, meta, np.uint64(bit))


@jit
def xb_test_bit(nodes, leaves, meta, bit):
    """``xb_test_bit``."""
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    b = np.uint64(bit)
    meta[M_TEST] += 1
    l, n, off = _lookup(nodes, meta, b >> _U10)
    if l < 0:
        return False
    w = np.int64((b >> _U6) & np.uint64(LEAF_WORDS - 1))
    return (leaves[l, w] >> (b & _U63)) & _U1 != _U0


@jit
def xb_find_set(nodes, leaves, meta, start, max):
    """``xb_find_set``: (True, first set bit in [start, max]) or (False, start)."""
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    s = np.uint64(start)
    mx = np.uint64(max)
    meta[M_FIND] += 1
    if s > mx:
        return False, s
    li = s >> _U10
    first = np.int64(s & _U1023)
    last_li = mx >> _U10
    while True:
        found, at, l, n, off = _next_leaf(nodes, meta, li)
        if not found or at > last_li:
            return False, s
        if at != li:
            first = 0
        last = np.int64(mx & _U1023) if at == last_li else LEAF_BITS - 1
        r = _leaf_find(leaves, l, first, last, True)
        if r >= 0:
            return True, (at << _U10) | np.uint64(r)
        if at == last_li:
            return False, s
        li = at + _U1
        first = 0


@jit
def xb_find_zero(nodes, leaves, meta, start, max):
    """``xb_find_zero``: (True, first zero bit in [start, max]) or (False, start).

    Never-set bits read zero; full leaves are skipped through the IDR_FREE tags (``N_FULL``).
    """
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    s = np.uint64(start)
    mx = np.uint64(max)
    meta[M_FIND] += 1
    if s > mx:
        return False, s
    li = s >> _U10
    first = np.int64(s & _U1023)
    last_li = mx >> _U10
    while True:
        at, l, n, off = _next_zero_leaf(nodes, leaves, meta, li)
        if at > last_li:
            return False, s
        if at != li:
            first = 0
        if l < 0:
            return True, (at << _U10) | np.uint64(first)
        last = np.int64(mx & _U1023) if at == last_li else LEAF_BITS - 1
        r = _leaf_find(leaves, l, first, last, False)
        if r >= 0:
            return True, (at << _U10) | np.uint64(r)
        if at == last_li:
            return False, s
        li = at + _U1
        first = 0


@jit(inline="always")
def _zero_in_leaf(nodes, leaves, meta, l, n, off, first, last):
    """Clear bits first..last of leaf ``l`` (slot ``off`` of node ``n``); free it if empty."""
    if first == 0 and last == LEAF_BITS - 1:
        _delete_leaf(nodes, leaves, meta, l, n, off)
        return
    if _leaf_full(leaves, l):
        _clear_full_up(nodes, n, off)
    _leaf_clear_range(leaves, l, first, last)
    if _leaf_empty(leaves, l):
        _delete_leaf(nodes, leaves, meta, l, n, off)


@jit
def xb_zero(nodes, leaves, meta, lo, hi):
    """``xb_zero``: clear [lo, hi] (inclusive), visiting only the leaves that exist."""
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    a = np.uint64(lo)
    z = np.uint64(hi)
    meta[M_ZERO] += 1
    if a > z:
        return
    first_li = a >> _U10
    last_li = z >> _U10
    li = first_li
    while True:
        found, at, l, n, off = _next_leaf(nodes, meta, li)
        if not found or at > last_li:
            return
        first = np.int64(a & _U1023) if at == first_li else 0
        last = np.int64(z & _U1023) if at == last_li else LEAF_BITS - 1
        _zero_in_leaf(nodes, leaves, meta, l, n, off, first, last)
        if at == last_li:
            return
        li = at + _U1


@jit
def _count_leaves(nodes, meta, first_li, last_li):
    """Number of leaves present with index in [first_li, last_li]."""
    nodes, meta = borrowed(nodes), borrowed(meta)
    count = 0
    li = np.uint64(first_li)
    last = np.uint64(last_li)
    while True:
        found, at, l, n, off = _next_leaf(nodes, meta, li)
        if not found or at > last:
            return count
        count += 1
        if at == last:
            return count
        li = at + _U1


@jit(inline="always")
def _fill_leaf(nodes, leaves, meta, li, first, last):
    """Set bits first..last of leaf ``li``, inserting the leaf if missing; a code."""
    l, n, off = _lookup(nodes, meta, li)
    if l < 0:
        code, l, n, off = _insert_leaf(nodes, leaves, meta, li, n, off)
        if code != OK:
            return code
    was_full = _leaf_full(leaves, l)
    _leaf_set_range(leaves, l, first, last)
    if not was_full and _leaf_full(leaves, l):
        _set_full_up(nodes, n, off)
    return OK


@jit
def _fill_from(nodes, leaves, meta, lo, hi):
    """Set [lo, hi]; on pool exhaustion return (code, bit to resume from) with [lo, resume)
    already set, so the wrapper can grow the arrays and call again. Returns (OK, 0) when done.
    In MODE_PRELOAD the call is all-or-nothing: ENOMEM unless the spare covers every new leaf.
    """
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    a = np.uint64(lo)
    z = np.uint64(hi)
    first_li = a >> _U10
    last_li = z >> _U10
    if meta[M_MODE] == MODE_PRELOAD:
        span = last_li - first_li + _U1
        new = span - np.uint64(_count_leaves(nodes, meta, first_li, last_li))
        have = _U1 if meta[M_SPARE] >= 0 else _U0
        if new > have:
            meta[M_NOMEM] += 1
            return ENOMEM, a
    li = first_li
    while True:
        first = np.int64(a & _U1023) if li == first_li else 0
        last = np.int64(z & _U1023) if li == last_li else LEAF_BITS - 1
        code = _fill_leaf(nodes, leaves, meta, li, first, last)
        if code != OK:
            return code, (li << _U10) if li != first_li else a
        if li == last_li:
            return OK, _U0
        li += _U1


@jit
def xb_fill(nodes, leaves, meta, lo, hi):
    """``xb_fill``: set [lo, hi] (inclusive); 0 or an error code as :func:`xb_set_bit`.

    With NEED_NODES/NEED_LEAVES a prefix of the range is already set (fill is idempotent:
    grow the pools and call again).
    """
    meta[M_FILL] += 1
    code, resume = _fill_from(nodes, leaves, meta, lo, hi)
    return code


@jit
def xb_empty(meta):
    """``xb_empty``: no leaf in the tree."""
    return meta[M_ROOT] < 0


@jit(inline="always")
def _n_nodes(meta):
    return meta[M_NODE_ALLOCS] - meta[M_NODE_FREES]


@jit(inline="always")
def _n_leaves(meta):
    return meta[M_LEAF_ALLOCS] - meta[M_LEAF_FREES]


@jit
def xb_nbytes(meta):
    """Bytes of kernel structures: 576 per radix node, 128 per leaf."""
    return _n_nodes(meta) * NODE_BYTES + _n_leaves(meta) * LEAF_BYTES


@jit
def xb_count(nodes, leaves, meta):
    """Number of set bits (walks the leaves that exist)."""
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    total = 0
    li = _U0
    while True:
        found, at, l, n, off = _next_leaf(nodes, meta, li)
        if not found:
            return total
        for w in range(LEAF_WORDS):
            total += np.int64(_popcount(leaves[l, w]))
        li = at + _U1


@jit
def xb_dense(nodes, leaves, meta, n_bits):
    """Bits [0, n_bits) as a bool array, plus whether any bit >= n_bits is set."""
    nodes, leaves, meta = _borrow(nodes, leaves, meta)
    out = np.zeros(n_bits, np.bool_)
    li = _U0
    while True:
        found, at, l, n, off = _next_leaf(nodes, meta, li)
        if not found:
            return out, False
        base = np.int64(at) * LEAF_BITS if at < np.uint64(1 << 52) else n_bits
        if base >= n_bits:
            return out, True
        for i in range(LEAF_BITS):
            if (leaves[l, i >> 6] >> np.uint64(i & 63)) & _U1 != _U0:
                if base + i >= n_bits:
                    return out, True
                out[base + i] = True
        li = at + _U1


# ---------------------------------------------------------------------------------------------
# Free-page tracking hooks (Wei Wang, seed thread: "xb_set/clear the bit under the zone->lock,
# i.e. in rmqueue and free_one_page"; "xb_preload in prepare_alloc_pages")

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
    """TRACK_BITMAP: the same page bits in a flat bitmap, no radix tree (DESIGN §3.2's
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


@intrinsic
def _voidptr(typingctx, addr):
    """An address (``arr.ctypes.data``) as a ``void *`` for ``carray``."""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.voidptr))

    return types.voidptr(types.uintp), codegen


@jit
def xb_track_ptr(nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr, pfn, order,
                 granularity, add):
    """:func:`xb_track_add` (``add``) or :func:`xb_track_del` on the arrays at these
    addresses (``arr.ctypes.data``; ``n_*`` their rows)."""
    nodes = carray(_voidptr(nodes_addr), (n_nodes, NODE_WIDTH), np.int64)
    leaves = carray(_voidptr(leaves_addr), (n_leaves, LEAF_WIDTH), np.uint64)
    meta = carray(_voidptr(meta_addr), (META_LEN,), np.int64)
    if add:
        xb_track_add(nodes, leaves, meta, pfn, order, granularity)
    else:
        xb_track_del(nodes, leaves, meta, pfn, order, granularity)


# xb_track_ptr's one signature: it is called through its address (``meta[M_TRACK_FN]``, set by
# ``tracking_arrays``), so only runs that track free pages in an xbitmap compile it (the
# biggest kernel of the package: its cold compile was ~25 % of a first simulate()).
_TRACK_PTR_SIG = types.none(types.uint64, types.int64, types.uint64, types.int64, types.uint64,
                            types.int64, types.int64, types.int64, types.boolean)


@functools.cache
def xb_track_ptr_address():
    """Native address of :func:`xb_track_ptr` (compiled or loaded from the cache once)."""
    return native_address(xb_track_ptr, _TRACK_PTR_SIG)


@intrinsic
def xb_track_call(typingctx, fn, nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr, pfn,
                  order, granularity, add):
    """``xb_track_ptr(...)`` through its address ``fn`` (``meta[M_TRACK_FN]``)."""
    have = (nodes_addr, n_nodes, leaves_addr, n_leaves, meta_addr, pfn, order, granularity, add)

    def codegen(context, builder, signature, args):
        want = _TRACK_PTR_SIG.args
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
    TRACK_BITMAP included); hot loops call :func:`xb_track_ptr` instead."""
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
    meta[M_TRACK_FN] = xb_track_ptr_address()
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


# ---------------------------------------------------------------------------------------------
# Array management (Python side; never called from a hot loop)


def xb_capacity(n_bits):
    """(node rows, leaf rows) that hold any subset of bits [0, n_bits) plus the spare leaf.

    Every tree over leaves [0, L) is a sub-tree of the full one at the largest height, so the
    full tree's node count is an upper bound.
    """
    n_leaves = max(1, -(-int(n_bits) // LEAF_BITS))
    h = 0
    while (n_leaves - 1) >> (MAP_SHIFT * h):
        h += 1
    n_nodes = 0
    for level in range(1, h + 1):
        n_nodes += -(-n_leaves // (MAP_SIZE**level))
    return n_nodes, n_leaves + 1


def xb_new(node_capacity=0, leaf_capacity=0, mode=MODE_GROW):
    """Fresh ``(nodes, leaves, meta)`` arrays of an empty xbitmap with the given pool sizes."""
    nodes = np.zeros((0, NODE_WIDTH), np.int64)
    leaves = np.zeros((0, LEAF_WIDTH), np.uint64)
    meta = np.zeros(META_LEN, np.int64)
    meta[M_ROOT] = -1
    meta[M_NODE_FREE] = -1
    meta[M_LEAF_FREE] = -1
    meta[M_SPARE] = -1
    meta[M_MODE] = mode
    nodes, leaves = xb_grow(nodes, leaves, meta, node_capacity, leaf_capacity)
    return nodes, leaves, meta


def xb_grow(nodes, leaves, meta, node_capacity, leaf_capacity):
    """Return ``(nodes, leaves)`` with at least the given row counts; new rows join the free
    lists in ``meta`` (updated in place). The old arrays must not be used afterwards."""
    old = nodes.shape[0]
    if node_capacity > old:
        grown = np.empty((node_capacity, NODE_WIDTH), np.int64)
        grown[:old] = nodes
        grown[old:, :] = -1
        grown[old:-1, 0] = np.arange(old + 1, node_capacity)
        grown[-1, 0] = meta[M_NODE_FREE]
        meta[M_NODE_FREE] = old
        meta[M_NODES_AVAIL] += node_capacity - old
        nodes = grown
    old = leaves.shape[0]
    if leaf_capacity > old:
        grown = np.zeros((leaf_capacity, LEAF_WIDTH), np.uint64)
        grown[:old] = leaves
        grown[old:-1, 0] = np.arange(old + 1, leaf_capacity).astype(np.uint64)
        grown[-1, 0] = np.int64(meta[M_LEAF_FREE]).astype(np.uint64)
        meta[M_LEAF_FREE] = old
        leaves = grown
    return nodes, leaves


def xb_stats(meta):
    """The counters of ``meta`` as a dict (see :data:`COUNTERS`)."""
    return {name: int(meta[i]) for name, i in COUNTERS.items()}


def check_arrays(nodes, leaves, meta):
    """Full structural check of an xbitmap's arrays; raises AssertionError naming the fault.

    Checks parent links, slot counts and occupancy masks, the IDR_FREE (``N_FULL``) tags,
    minimal height (as ``radix_tree_shrink`` leaves it), no empty leaf or childless node,
    the in-use counters and that free lists and tree rows partition the pools.
    """
    root = int(meta[M_ROOT])
    height = int(meta[M_HEIGHT])
    tree_nodes = set()
    tree_leaves = set()

    def leaf_ok(l):
        """Check a leaf in the tree; return whether it is full."""
        words = leaves[l, :LEAF_WORDS]
        assert np.any(words != 0), f"leaf {l} is empty"
        count = sum(bin(int(w)).count("1") for w in words)
        assert int(leaves[l, L_COUNT]) == count, f"leaf {l}: count {leaves[l, L_COUNT]}"
        return count == LEAF_BITS

    def walk(n, level, parent, offset):
        """Return whether the subtree is full."""
        assert n not in tree_nodes, f"node {n} reached twice"
        tree_nodes.add(n)
        row = nodes[n]
        assert row[N_PARENT] == parent, f"node {n}: parent {row[N_PARENT]} != {parent}"
        assert parent < 0 or row[N_OFFSET] == offset, f"node {n}: offset {row[N_OFFSET]}"
        assert row[N_LEVEL] == level, f"node {n}: level {row[N_LEVEL]} != {level}"
        occ = 0
        full = 0
        for s in range(MAP_SIZE):
            child = int(row[s])
            if child < 0:
                continue
            occ |= 1 << s
            if level == 0:
                assert child not in tree_leaves, f"leaf {child} reached twice"
                tree_leaves.add(child)
                child_full = leaf_ok(child)
            else:
                child_full = walk(child, level - 1, n, s)
            full |= int(child_full) << s
        assert occ, f"node {n} has no children"
        assert int(row[N_OCC]) & MAX_BIT == occ, f"node {n}: occupancy mask"
        assert int(row[N_FULL]) & MAX_BIT == full, f"node {n}: full (IDR_FREE) mask"
        return full == MAX_BIT

    if root < 0:
        assert height == 0, f"empty tree with height {height}"
    elif height == 0:
        tree_leaves.add(root)
        leaf_ok(root)
    else:
        assert height <= MAX_HEIGHT, f"height {height}"
        walk(root, height - 1, -1, 0)
        if height > 1:
            # minimal height: the root uses a slot other than 0, or more than one slot
            assert nodes[root, N_OCC] != 1, "root could shrink"
    n_nodes = int(meta[M_NODE_ALLOCS] - meta[M_NODE_FREES])
    n_leaves = int(meta[M_LEAF_ALLOCS] - meta[M_LEAF_FREES])
    assert n_nodes == len(tree_nodes), f"node allocs - frees {n_nodes} != {len(tree_nodes)}"
    assert n_leaves == len(tree_leaves), f"leaf allocs - frees {n_leaves} != {len(tree_leaves)}"

    def free_chain(head, column, n_rows, as_int):
        seen = []
        i = int(head)
        while i >= 0:
            assert i < n_rows and len(seen) <= n_rows, "free list corrupt"
            seen.append(i)
            i = as_int(column[i])
        return seen

    free_nodes = free_chain(meta[M_NODE_FREE], nodes[:, 0], nodes.shape[0], int)
    free_leaves = free_chain(
        meta[M_LEAF_FREE], leaves[:, 0], leaves.shape[0], lambda v: int(np.int64(v))
    )
    assert meta[M_NODES_AVAIL] == len(free_nodes), "M_NODES_AVAIL"
    spare = {int(meta[M_SPARE])} if meta[M_SPARE] >= 0 else set()
    assert len(free_nodes) + len(tree_nodes) == nodes.shape[0], "node rows leaked"
    assert not set(free_nodes) & tree_nodes, "a free node is in the tree"
    assert len(free_leaves) + len(tree_leaves) + len(spare) == leaves.shape[0], "leaf rows leaked"
    assert not (set(free_leaves) | spare) & tree_leaves, "a free leaf is in the tree"
    for l in set(free_leaves) | spare:
        assert not np.any(leaves[l, 1:]), f"free leaf row {l} is not zero"


# ---------------------------------------------------------------------------------------------
# Public wrapper


def _index(value, name):
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer in [0, 2**64 - 1], got {value!r}")
    v = int(value)
    if v < 0 or v > MAX_BIT:
        raise ValueError(f"{name} must be in [0, 2**64 - 1], got {v}")
    return np.uint64(v)


def read_only(a):
    """A read-only view of ``a``: what the Python wrappers hand out of their kernels' arrays."""
    v = a.view()
    v.flags.writeable = False
    return v


class XBitmap:
    """A sparse bitmap over [0, 2**64 - 1] with the v21 xbitmap API and the kernel's layout.

    Parameters
    ----------
    require_preload : bool
        Kernel-faithful mode: a set (or fill) that needs a new leaf consumes the spare made by
        :meth:`preload` (``xb_preload``) and raises MemoryError (the kernel's -ENOMEM) without
        one. Default False: leaves are allocated on demand.
    max_nbytes : int
        ``fill`` refuses (MemoryError, nothing changed) to grow the structure beyond this many
        kernel bytes (``nbytes``); default 1 GiB (8 Mi leaves = 2**33 bits).

    Examples
    --------
    >>> xb = XBitmap()
    >>> xb.set_bit(2000); xb.set_bit(2040)
    >>> xb.find_set(2001), xb.find_zero(2000), xb.nbytes
    (2040, 2001, 704)
    """

    def __init__(self, *, require_preload=False, max_nbytes=1 << 30):
        if not isinstance(require_preload, bool | np.bool_):
            raise ValueError(f"require_preload must be True or False, got {require_preload!r}")
        if isinstance(max_nbytes, bool) or not isinstance(max_nbytes, int) or max_nbytes < 0:
            raise ValueError(f"max_nbytes must be an int >= 0, got {max_nbytes!r}")
        mode = MODE_PRELOAD if require_preload else MODE_GROW
        self._nodes, self._leaves, self._meta = xb_new(MAX_HEIGHT * 2, 4, mode)
        self.max_nbytes = max_nbytes

    # -- state -----------------------------------------------------------------------------
    @property
    def arrays(self):
        """``(nodes, leaves, meta)``: read-only views of the arrays the ``xb_*`` kernels use.

        Read-only because the kernels trust them (a bad child index would make them read or
        write outside the arrays); the views follow the bitmap until it grows its pools.
        """
        return read_only(self._nodes), read_only(self._leaves), read_only(self._meta)

    @property
    def require_preload(self):
        return bool(self._meta[M_MODE] == MODE_PRELOAD)

    @property
    def nbytes(self):
        """Kernel bytes: radix nodes × 576 + leaves × 128."""
        return int(xb_nbytes(self._meta))

    @property
    def n_nodes(self):
        return int(_n_nodes(self._meta))

    @property
    def n_leaves(self):
        return int(_n_leaves(self._meta))

    @property
    def height(self):
        """Radix node levels (0: empty, or leaf 0 held directly by the root)."""
        return int(self._meta[M_HEIGHT])

    @property
    def stats(self):
        """Operation and allocation counters (see :data:`COUNTERS`)."""
        return xb_stats(self._meta)

    def check(self):
        """Raise AssertionError if the structure is inconsistent."""
        check_arrays(self._nodes, self._leaves, self._meta)

    def _grow(self, code):
        nodes, leaves = self._nodes.shape[0], self._leaves.shape[0]
        if code == NEED_NODES:
            nodes = 2 * nodes + PRELOAD_NODES
        elif code == NEED_LEAVES:
            leaves = 2 * leaves + 1
        else:  # pragma: no cover - a kernel bug
            raise RuntimeError(f"unexpected xbitmap code {code}")
        self._nodes, self._leaves = xb_grow(
            self._nodes, self._leaves, self._meta, nodes, leaves
        )

    def _nomem(self, what):
        raise MemoryError(
            f"{what}: a new leaf is needed and no leaf is preloaded (xb_preload); "
            "call preload() first (the kernel returns -ENOMEM)"
        )

    # -- v21 API ---------------------------------------------------------------------------
    def preload(self):
        """``xb_preload``: make sure one spare leaf is ready for the next set."""
        while xb_preload(self._nodes, self._leaves, self._meta) != OK:
            self._grow(NEED_LEAVES)

    def set_bit(self, bit):
        """Set ``bit``. MemoryError in ``require_preload`` mode when no spare leaf is ready."""
        b = _index(bit, "bit")
        while True:
            code = xb_set_bit(self._nodes, self._leaves, self._meta, b)
            if code == OK:
                return
            if code == ENOMEM:
                self._nomem(f"set_bit({int(b)})")
            self._grow(code)

    def clear_bit(self, bit):
        xb_clear_bit(self._nodes, self._leaves, self._meta, _index(bit, "bit"))

    def test_bit(self, bit):
        return bool(xb_test_bit(self._nodes, self._leaves, self._meta, _index(bit, "bit")))

    def find_set(self, start, max=MAX_BIT):
        """First set bit in [start, max] (inclusive), or None."""
        found, at = xb_find_set(
            self._nodes, self._leaves, self._meta, _index(start, "start"), _index(max, "max")
        )
        return int(at) if found else None

    def find_zero(self, start, max=MAX_BIT):
        """First zero bit in [start, max] (inclusive), or None. Never-set bits are zero."""
        found, at = xb_find_zero(
            self._nodes, self._leaves, self._meta, _index(start, "start"), _index(max, "max")
        )
        return int(at) if found else None

    def _range(self, lo, hi):
        a, z = _index(lo, "lo"), _index(hi, "hi")
        if a > z:
            raise ValueError(f"lo must be <= hi (inclusive range), got lo={int(a)}, hi={int(z)}")
        return a, z

    def zero(self, lo, hi):
        """Clear bits [lo, hi] (inclusive); cost proportional to the leaves that exist."""
        a, z = self._range(lo, hi)
        xb_zero(self._nodes, self._leaves, self._meta, a, z)

    def fill(self, lo, hi):
        """Set bits [lo, hi] (inclusive).

        Raises MemoryError (nothing changed) if the result would exceed ``max_nbytes``, or in
        ``require_preload`` mode if more than the one preloaded leaf would be needed.
        """
        a, z = self._range(lo, hi)
        nodes, leaves, meta = self._nodes, self._leaves, self._meta
        first_li, last_li = int(a) >> LEAF_SHIFT, int(z) >> LEAF_SHIFT
        present = int(_count_leaves(nodes, meta, np.uint64(first_li), np.uint64(last_li)))
        new_leaves = last_li - first_li + 1 - present
        if self.nbytes + new_leaves * LEAF_BYTES > self.max_nbytes:
            raise MemoryError(
                f"fill({int(a)}, {int(z)}) needs {new_leaves} new leaves "
                f"({new_leaves * LEAF_BYTES} bytes), over max_nbytes={self.max_nbytes}"
            )
        meta[M_FILL] += 1
        if not self.require_preload:
            # pre-size: the leaves exactly, nodes roughly (the loop below grows any shortfall)
            want_leaves = self.n_leaves + new_leaves + 1 + (meta[M_SPARE] >= 0)
            want_nodes = self.n_nodes + new_leaves // (MAP_SIZE - 1) + PRELOAD_NODES
            if want_leaves > leaves.shape[0] or want_nodes > nodes.shape[0]:
                self._nodes, self._leaves = xb_grow(
                    nodes, leaves, meta, max(want_nodes, nodes.shape[0]),
                    max(want_leaves, leaves.shape[0]),
                )
        while True:
            code, resume = _fill_from(self._nodes, self._leaves, self._meta, a, z)
            if code == OK:
                return
            if code == ENOMEM:
                self._nomem(f"fill({int(a)}, {int(z)})")
            a = resume
            self._grow(code)

    def empty(self):
        return bool(xb_empty(self._meta))

    def count(self):
        """Number of set bits."""
        return int(xb_count(self._nodes, self._leaves, self._meta))

    def __repr__(self):
        return (
            f"XBitmap(leaves={self.n_leaves}, nodes={self.n_nodes}, height={self.height}, "
            f"nbytes={self.nbytes})"
        )
