"""The xbitmap's three arrays: their layout, the pools its nodes and leaves come from, and
creating and growing them.

Follows the allocation side of the v21 xbitmap (lib/xbitmap.c of "[PATCH v21 1/5] xbitmap:
Introduce xbitmap") and of lib/radix-tree.c (v4.15): ``radix_tree_node_alloc``, the
``kmalloc``/``kfree`` of a ``struct ida_bitmap`` and the per-CPU spare leaf that ``xb_preload``
fills. The tree and the v21 API on these arrays are :mod:`fphlib.guest.xbitmap_tree`; the
Python front end is :class:`fphlib.guest.xbitmap.XBitmap`.

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
    ``M_SPARE`` (the preloaded per-CPU leaf, -1 if none), the counters listed in
    :data:`COUNTERS`, the free-page tracking hooks' addresses (``M_TRACK_FN``,
    ``M_TRACK_DEL_FN``; 0 outside :func:`fphlib.guest.free_page_tracking.tracking_arrays`) and
    the lookup cache (``M_CACHE_*``: the last leaf found, see ``xbitmap_tree._lookup``).
    Rows in the tree = allocs - frees, so the counters must never be reset.

All three are passed by the caller; kernels never allocate or grow them. Each entry point
drops NumPy reference counting on them for its duration (borrowed views, :func:`_borrow`), so
calls from a hot loop cost no atomic operations.

Create them with :func:`xb_new` (sized with :func:`xb_capacity` for a bounded index range, so
that no kernel ever runs out of rows in a hot loop); :func:`xb_grow` adds rows.

Simplifications (each deliberate):

- ``nbytes`` counts the kernel structures (576-byte ``radix_tree_node``, 128-byte
  ``ida_bitmap``), not the NumPy rows that model them; the preloaded spare leaf is per-CPU
  memory and is not counted.
- Radix nodes never fail to allocate (the kernel allocates them with GFP_NOWAIT, backed by the
  ``XB_PRELOAD_SIZE`` = 17 node preload); only leaves are subject to preloading.
- Model bookkeeping the kernel does not have, for speed only (it changes no result and no
  ``nbytes``): a set-bit count per leaf, a bitmask of occupied slots per node, and the last
  leaf a lookup found (index, row, bottom node, slot), which every change to the tree's shape
  forgets (``radix_tree_lookup`` walks from the root every time).
"""

import numpy as np

from .._jit import borrowed, jit

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
# native addresses of the free-page tracking hooks (free_page_tracking.tracking_arrays), 0 for
# other bitmaps: the add hook, the del hook
M_TRACK_FN = 21
M_TRACK_DEL_FN = 22
# the lookup cache: leaf index + 1 of the last leaf found (0: none, so that zeroed arrays hold
# no entry), its row, its bottom node and the slot there
M_CACHE_LI = 23
M_CACHE_L = 24
M_CACHE_N = 25
M_CACHE_OFF = 26
META_LEN = 28  # 27 reserved

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
