"""A guest zone's arrays (:class:`Zone`) and what each per-page value means: the bottom floor
that the buddy allocator (fphlib.guest), the host, the mechanisms and the engine state all
read. The kernels that work on a zone are :mod:`fphlib.guest.buddy_kernels`.
"""

from typing import NamedTuple

import numpy as np

from .._jit import borrowed_all, jit

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
PG_DATA_SHIFT = 2  # PG_DATA == 1 << PG_DATA_SHIFT: (flags & PG_DATA) >> it is 0 or 1
PG_IN_FLIGHT = np.uint8(8)  # hinted to the host, discard pending

# ``Zone.cfg``: the zone's settings (and one count, CFG_REPORTED)
CFG_PLACEMENT = 0  # 0 = head, 1 = kernel (buddy_merge_likely)
CFG_TRACK = 1  # free-page tracking in the xbitmap: 0 off, 1 per page, 2 per block head
# 1 = the ``page_reporting_enabled`` static key is off: no page is ever PageReported, so
# ``del_page_from_free_list`` skips the PageReported test (page_reported() in v5.10
# mm/page_reporting.h). 0 (the default) always tests, which is correct either way.
CFG_REPORTING_OFF = 2
# Not a setting: pages in free blocks flagged PageReported, kept by whoever sets or clears the
# flag (:func:`set_page_reported`, ``del_page_from_free_list``), so that a sample or a summary need
# not walk the free lists (page reporting's reported-free series: a walk per sample cost 60 ms
# on 64 x 16 GiB guests). Linux keeps no such count; it changes nothing the model does.
CFG_REPORTED = 3
CFG_LEN = 4

class Zone(NamedTuple):
    """The arrays of one zone; every kernel takes one of these.

    ``next``/``prev`` link free heads into per-order lists (-1 ends a list; the same links
    hold allocated pages on the pcp, LRU, slab, held and balloon lists: a page is on one list
    at a time; operations in :mod:`fphlib.state.lists`), ``state`` and
    ``flags`` are per page (10 bytes per page in all), ``head``/``tail``/``nr_free`` per order.
    ``xb_*`` hold the optional xbitmap of free pages (empty pools when tracking is off);
    layout in :mod:`fphlib.guest.xbitmap_arrays`, hooks in
    :mod:`fphlib.guest.free_page_tracking`. Kernels also take the zone
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
    xb_nodes: np.ndarray  # int64[node rows, xbitmap_arrays.NODE_WIDTH]
    xb_leaves: np.ndarray  # uint64[leaf rows, xbitmap_arrays.LEAF_WORDS]
    xb_meta: np.ndarray  # int64[xbitmap_arrays.META_LEN]


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


@jit(inline="always")
def set_page_reported(zone, pfn, order):
    """``__SetPageReported`` on the free head ``pfn`` of ``order`` (not flagged yet), counted in
    ``cfg[CFG_REPORTED]``; ``del_page_from_free_list`` clears both."""
    zone.flags[pfn] |= PG_REPORTED
    zone.cfg[CFG_REPORTED] += 1 << order
