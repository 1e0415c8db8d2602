"""The buddy allocator's invariants, checked on a zone: ``_check`` finds the first broken one,
``_check_message`` names it, and :meth:`fphlib.guest.buddy.BuddyAllocator.check` raises it as
:class:`BuddyInvariantError`.

What mm/page_alloc.c (v5.10) keeps true of ``zone->free_area`` and PageBuddy, on the arrays of
:mod:`fphlib.guest.buddy_kernels`: free lists well linked with ``nr_free`` their lengths,
every free head listed and merged with no free buddy, and the blocks (free, allocated,
isolated, on a pcp list) tiling the zone; PageReported (mm/page_reporting.c) only on free heads.
"""

import numpy as np

from .._jit import jit
from ..state.zone import ALLOC_BASE, CFG_REPORTED, ISOLATED_BASE, NOT_HEAD, ON_PCP, PG_REPORTED

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
CHK_REPORTED_COUNT = 17  # (PageReported pages by flags, by cfg[CFG_REPORTED])


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
    # 3. PageReported only on free heads, and counted
    reported = 0
    for p in range(n):
        if zone.flags[p] & PG_REPORTED:
            if not 0 <= zone.state[p] <= top:
                return CHK_REPORTED, p, zone.state[p], 0, 0, counts
            reported += 1 << zone.state[p]
    if reported != zone.cfg[CFG_REPORTED]:
        return CHK_REPORTED_COUNT, reported, zone.cfg[CFG_REPORTED], 0, 0, counts
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
        CHK_REPORTED_COUNT: lambda: (
            f"{a} pages are in PageReported blocks but the zone counts {b} (cfg[CFG_REPORTED])"
        ),
    }
    return messages[code]()


class BuddyInvariantError(AssertionError):
    """A buddy allocator invariant is broken (raised by :meth:`BuddyAllocator.check`)."""
