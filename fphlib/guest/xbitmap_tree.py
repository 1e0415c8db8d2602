"""The xbitmap's kernels: leaf bit operations, the IDR radix tree over the leaves, and the v21
xbitmap API on top of them.

Follows lib/xbitmap.c and include/linux/xbitmap.h of "[PATCH v21 1/5] xbitmap: Introduce
xbitmap" (https://lore.kernel.org/lkml/1515496262-7533-2-git-send-email-wei.w.wang@intel.com/),
lib/radix-tree.c of v4.15 (the IDR flavour the xbitmap uses) and lib/bitmap.c for the bit
operations within a leaf (docs/references.md §5). Bit ``b`` lives in leaf
``b >> 10`` (a ``struct ida_bitmap`` of 16 longs = 1024 bits, one order-10 block of guest
pages) at position ``b & 1023``; leaves hang off a radix tree of 64-slot nodes whose height
grows with the largest leaf index. The arrays, their layout and the pools the tree takes rows
from are :mod:`fphlib.guest.xbitmap_arrays`.

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
``xb_empty(meta) -> bool``, ``xb_count(...) -> int``, ``xb_nbytes(meta) -> int``

``xb_preload`` (fill the per-CPU spare leaf) is with the pools in
:mod:`fphlib.guest.xbitmap_arrays`.

Simplifications (each deliberate):

- A set that cannot get a leaf fails before touching the tree (v21 leaves the empty radix
  nodes it created behind on -ENOMEM).
- ``xb_fill`` is only declared in v21; it is modelled as setting every bit of the range, a
  new leaf per missing 1024-bit chunk, each new leaf taken like ``xb_set_bit`` takes one.
- No RCU, no concurrency: the caller provides locking (zone->lock in the buddy allocator).
- IDR details kept: a lone leaf 0 in an empty tree sits in the root with no node; the bottom
  node is never shrunk back into the root; only the radix tags' IDR_FREE meaning is modelled.
"""

import numpy as np
from numba.core import errors, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from .._jit import borrowed, jit
from .xbitmap_arrays import (
    _ALL,
    _U0,
    _U1,
    _U6,
    _U10,
    _U63,
    _U1023,
    ENOMEM,
    L_COUNT,
    LEAF_BITS,
    LEAF_BYTES,
    LEAF_WORDS,
    M_CACHE_L,
    M_CACHE_LI,
    M_CACHE_N,
    M_CACHE_OFF,
    M_CLEAR,
    M_FILL,
    M_FIND,
    M_HEIGHT,
    M_LEAF_ALLOCS,
    M_LEAF_FREES,
    M_MODE,
    M_NODE_ALLOCS,
    M_NODE_FREES,
    M_NODES_AVAIL,
    M_NOMEM,
    M_ROOT,
    M_SET,
    M_SPARE,
    M_TEST,
    M_ZERO,
    MAP_SHIFT,
    MAP_SIZE,
    MODE_PRELOAD,
    N_FULL,
    N_OCC,
    N_OFFSET,
    N_PARENT,
    NEED_NODES,
    NODE_BYTES,
    OK,
    _alloc_node,
    _borrow,
    _free_node,
    _leaf_available,
    _release_leaf,
    _take_leaf,
    _ux,
)


@intrinsic
def _popcount(typingctx, src):
    """LLVM ctpop (the kernel's hweight64)."""
    if not isinstance(src, types.Integer):
        raise errors.NumbaTypeError(f"_popcount needs an integer, got {src}")

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return src(src), codegen


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
    """``__radix_tree_lookup``: (leaf row or -1, bottom node or -1, slot in it).

    A leaf found in a node is remembered in ``meta`` (``M_CACHE_*``, model bookkeeping): the
    buddy's tracking hooks look up the same leaf several times in a row (a split or a merge
    chain stays in one 4 MiB leaf), and the root-to-bottom walk was most of their cost in the
    demo scenario (xbitmap_hints 277 -> 226 ms together with the per-direction hooks of
    free_page_tracking). :func:`_extend`, :func:`_shrink` and :func:`_delete_leaf`, the only
    changes that move or drop an existing leaf or node, forget it.
    """
    if meta[M_CACHE_LI] == np.int64(li) + 1:
        return meta[M_CACHE_L], meta[M_CACHE_N], meta[M_CACHE_OFF]
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
            if child >= 0:
                meta[M_CACHE_LI] = np.int64(li) + 1
                meta[M_CACHE_L] = child
                meta[M_CACHE_N] = n
                meta[M_CACHE_OFF] = off
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
    meta[M_CACHE_LI] = 0  # rare: forgetting is cheaper than proving the entry still right
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
    meta[M_CACHE_LI] = 0  # only root levels go, but forgetting is cheaper than proving it
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
    meta[M_CACHE_LI] = 0  # the cached leaf, or its node, may be the one freed
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

    Returns (found, index, leaf, bottom node or -1, slot). A leaf at ``li`` itself may be the
    one the lookup cache holds (:func:`_lookup`); a leaf found in a node becomes it.
    """
    if meta[M_CACHE_LI] == np.int64(li) + 1:
        return True, li, meta[M_CACHE_L], meta[M_CACHE_N], meta[M_CACHE_OFF]
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
                meta[M_CACHE_LI] = np.int64(li) + 1
                meta[M_CACHE_L] = child
                meta[M_CACHE_N] = n
                meta[M_CACHE_OFF] = noff
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
