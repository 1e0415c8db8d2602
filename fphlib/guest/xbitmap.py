"""The xbitmap (eXtensible Bitmap) of Matthew Wilcox and Wei Wang, final v21 API: the Python
front end :class:`XBitmap`, and the names of the xbitmap modules for callers.

A sparse bitmap over the whole unsigned 64-bit index range (docs/references.md §5;
lib/xbitmap.c and include/linux/xbitmap.h of "[PATCH v21 1/5] xbitmap: Introduce xbitmap",
https://lore.kernel.org/lkml/1515496262-7533-2-git-send-email-wei.w.wang@intel.com/).
Bit ``b`` lives in leaf ``b >> 10`` (a ``struct ida_bitmap`` of 16 longs = 1024 bits, one
order-10 block of guest pages) at position ``b & 1023``; leaves hang off an IDR-flavoured radix
tree of 64-slot nodes (lib/radix-tree.c, v4.15) whose height grows with the largest leaf index.

The numba kernels, one idea per module (each re-exported here: ``from fphlib.guest.xbitmap
import xb_set_bit`` keeps working):

:mod:`fphlib.guest.xbitmap_arrays`
    the three arrays ``nodes, leaves, meta``: their layout, the pools the tree takes nodes and
    leaves from (``xb_preload``), creating and growing them (``xb_new``, ``xb_capacity``,
    ``xb_grow``) and the counters (``xb_stats``);
:mod:`fphlib.guest.xbitmap_tree`
    leaf bit operations, the radix tree and the v21 API (``xb_set_bit``, ``xb_find_set``, ...);
:mod:`fphlib.guest.xbitmap_check`
    ``check_arrays``, the full structural check;
:mod:`fphlib.guest.free_page_tracking`
    the buddy allocator's free-page tracking hooks (Wei Wang's proposal) on an xbitmap or a
    flat bitmap.
"""

import numpy as np

from .free_page_tracking import (
    TRACK_BITMAP,
    TRACK_HEAD,
    TRACK_OFF,
    TRACK_PAGE,
    XB_HOOKS,
    bitmap_track_ptr,
    track_rebuild,
    tracking_arrays,
    tracking_mismatch,
    tracking_nbytes,
    xb_add_head_ptr,
    xb_add_page_ptr,
    xb_del_head_ptr,
    xb_del_page_ptr,
    xb_hook_address,
    xb_hook_call,
    xb_track_add,
    xb_track_add_call,
    xb_track_del,
    xb_track_del_call,
)
from .xbitmap_arrays import (
    COUNTERS,
    ENOMEM,
    L_COUNT,
    LEAF_BITS,
    LEAF_BYTES,
    LEAF_SHIFT,
    LEAF_WIDTH,
    LEAF_WORDS,
    M_CLEAR,
    M_FAILED,
    M_FILL,
    M_FIND,
    M_HEIGHT,
    M_LEAF_ALLOCS,
    M_LEAF_FREE,
    M_LEAF_FREES,
    M_MODE,
    M_NODE_ALLOCS,
    M_NODE_FREE,
    M_NODE_FREES,
    M_NODES_AVAIL,
    M_NOMEM,
    M_PRELOAD_ALLOCS,
    M_PRELOAD_CALLS,
    M_ROOT,
    M_SET,
    M_SPARE,
    M_TEST,
    M_TRACK_DEL_FN,
    M_TRACK_FN,
    M_ZERO,
    MAP_SHIFT,
    MAP_SIZE,
    MAX_BIT,
    MAX_HEIGHT,
    META_LEN,
    MODE_GROW,
    MODE_PRELOAD,
    N_FULL,
    N_LEVEL,
    N_OCC,
    N_OFFSET,
    N_PARENT,
    NEED_LEAVES,
    NEED_NODES,
    NODE_BYTES,
    NODE_WIDTH,
    OK,
    PRELOAD_NODES,
    xb_capacity,
    xb_grow,
    xb_new,
    xb_preload,
    xb_stats,
)
from .xbitmap_check import check_arrays
from .xbitmap_tree import (
    _count_leaves,
    _fill_from,
    _n_leaves,
    _n_nodes,
    xb_clear_bit,
    xb_count,
    xb_dense,
    xb_empty,
    xb_fill,
    xb_find_set,
    xb_find_zero,
    xb_nbytes,
    xb_set_bit,
    xb_test_bit,
    xb_zero,
)

# this module's own names, then the kernels' (re-exported for callers)
__all__ = [
    "XBitmap", "read_only",
    # xbitmap_arrays
    "COUNTERS", "ENOMEM", "L_COUNT", "LEAF_BITS", "LEAF_BYTES", "LEAF_SHIFT", "LEAF_WIDTH",
    "LEAF_WORDS", "M_CLEAR", "M_FAILED", "M_FILL", "M_FIND", "M_HEIGHT", "M_LEAF_ALLOCS",
    "M_LEAF_FREE", "M_LEAF_FREES", "M_MODE", "M_NODE_ALLOCS", "M_NODE_FREE", "M_NODE_FREES",
    "M_NODES_AVAIL", "M_NOMEM", "M_PRELOAD_ALLOCS", "M_PRELOAD_CALLS", "M_ROOT", "M_SET",
    "M_SPARE", "M_TEST", "M_TRACK_DEL_FN", "M_TRACK_FN", "M_ZERO", "MAP_SHIFT", "MAP_SIZE",
    "MAX_BIT", "MAX_HEIGHT", "META_LEN", "MODE_GROW", "MODE_PRELOAD", "N_FULL", "N_LEVEL",
    "N_OCC", "N_OFFSET", "N_PARENT", "NEED_LEAVES", "NEED_NODES", "NODE_BYTES", "NODE_WIDTH", "OK",
    "PRELOAD_NODES", "xb_capacity", "xb_grow", "xb_new", "xb_preload", "xb_stats",
    # xbitmap_tree
    "xb_clear_bit", "xb_count", "xb_dense", "xb_empty", "xb_fill", "xb_find_set",
    "xb_find_zero", "xb_nbytes", "xb_set_bit", "xb_test_bit", "xb_zero",
    # xbitmap_check
    "check_arrays",
    # free_page_tracking
    "TRACK_BITMAP", "TRACK_HEAD", "TRACK_OFF", "TRACK_PAGE", "XB_HOOKS", "bitmap_track_ptr",
    "track_rebuild", "tracking_arrays", "tracking_mismatch", "tracking_nbytes",
    "xb_add_head_ptr", "xb_add_page_ptr", "xb_del_head_ptr", "xb_del_page_ptr",
    "xb_hook_address", "xb_hook_call", "xb_track_add", "xb_track_add_call", "xb_track_del",
    "xb_track_del_call",
]


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
