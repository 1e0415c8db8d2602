"""Debug-mode invariants (``SimConfig(debug=True)``), checked at every sample.

Each check returns 0 or an invariant code (``INVARIANTS``) with a detail value; the engine
stops at the first violation and ``simulate`` raises naming guest, time and invariant.
"""

from .._jit import jit
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GI, HI, PG_DISCARDED, PG_SWAPPED, PI, ST_KILLED
from ..state.zone import (
    ALLOC_BASE,
    CFG_REPORTED,
    ISOLATED_BASE,
    NOT_HEAD,
    ON_PCP,
    PC_CLEAN,
    PC_DIRTY,
    PG_BACKED,
    PG_DATA,
    PG_IN_FLIGHT,
    PG_REPORTED,
)

INVARIANTS = {
    1: "free list links (next/prev/tail) are inconsistent",
    2: "a free-list entry is not a free head of that order, or is misaligned",
    3: "nr_free differs from the free-list length",
    4: "block structure broken (a head is not followed by its tail pages)",
    5: "page conservation: free + allocated + isolated + pcp != total pages",
    6: "free pages differ from sum(nr_free << order)",
    7: "isolated pages differ from the isolated counter",
    8: "pcp list length or page state differs from pcp count",
    9: "allocated pages differ from workload + balloon + page-cache + slab pages",
    10: "PageReported set on a page that is not a free head",
    11: "PG_DATA set on a free, isolated or pcp page",
    12: "backed pages differ from the guest's RSS counter",
    13: "a page is both backed and swapped",
    14: "host RSS, swap or lazily-freed pages differ from the sum over guests",
    15: "swapped pages differ from the guest's swap counter",
    16: "a safe mechanism hinted or discarded a page-cache page (in flight, or neither backed "
        "nor swapped); an unsafe variant's such loss is a counted lost write instead",
    17: "page-cache LRU list or counters (pages, dirty) inconsistent",
    18: "slab list broken or different from the slab counter",
    20: "pages discarded on a hint and not touched since (PG_DISCARDED) differ from the "
        "guest's returned counter",
    21: "lazily-freed pages (PG_BACKED and PG_DISCARDED: MADV_FREE) differ from the guest's "
        "lazyfree counter",
    22: "pages in PageReported blocks differ from the zone's reported count "
        "(cfg[CFG_REPORTED])",
    19: "the workload's held list is broken, or held pages + guest swap != its mapped pages, "
        "or guest swap over size",
}


@jit
def check_guest(s, g, z):
    """Return (code, detail) for the first violated invariant of guest g, or (0, 0)."""
    s = borrow_state(s)
    z = borrow_zone(z)
    n = z.state.shape[0]
    n_orders = z.head.shape[0]
    for o in range(n_orders):
        count = 0
        prev = -1
        p = z.head[o]
        while p >= 0:
            if z.prev[p] != prev:
                return 1, p
            if z.state[p] != o or p & ((1 << o) - 1):
                return 2, p
            count += 1
            if count > n:
                return 1, p
            prev = p
            p = z.next[p]
        if z.tail[o] != prev:
            return 1, o
        if count != z.nr_free[o]:
            return 3, o
    free = 0
    alloc = 0
    isolated = 0
    pcp = 0
    backed = 0
    swapped = 0
    returned = 0
    lazy = 0
    cache = 0
    dirty = 0
    reported = 0
    alive = s.gi[g, GI.STATUS] != ST_KILLED  # the host freed all of a killed guest's memory
    safe = s.pi[PI.SAFE] != 0
    p = 0
    while p < n:
        st = z.state[p]
        if 0 <= st < n_orders:
            size = 1 << st
            free += size
            kind = 0
        elif ALLOC_BASE <= st < ALLOC_BASE + n_orders:
            size = 1 << (st - ALLOC_BASE)
            alloc += size
            kind = 1
        elif ISOLATED_BASE <= st < ISOLATED_BASE + n_orders:
            size = 1 << (st - ISOLATED_BASE)
            isolated += size
            kind = 2
        elif st == ON_PCP:
            size = 1
            pcp += 1
            kind = 3
        elif st == PC_CLEAN or st == PC_DIRTY:
            size = 1
            alloc += 1
            kind = 1
            cache += 1
            if st == PC_DIRTY:
                dirty += 1
            f = z.flags[p]
            if safe and ((not f & (PG_BACKED | PG_SWAPPED) and alive) or f & PG_IN_FLIGHT):
                return 16, p
        else:
            return 4, p
        if p & (size - 1) or p + size > n:
            return 4, p
        if z.flags[p] & PG_REPORTED:
            if kind != 0:
                return 10, p
            reported += size
        for q in range(p, p + size):
            f = z.flags[q]
            if q > p:
                if z.state[q] != NOT_HEAD:
                    return 4, q
                if f & PG_REPORTED:
                    return 10, q
            if kind != 1 and f & PG_DATA:
                return 11, q
            if f & PG_DISCARDED:
                if f & PG_BACKED:
                    lazy += 1
                else:
                    returned += 1
            if f & PG_BACKED:
                backed += 1
                if f & PG_SWAPPED:
                    return 13, q
            if f & PG_SWAPPED:
                swapped += 1
        p += size
    if free + alloc + isolated + pcp != n:
        return 5, free + alloc + isolated + pcp
    total_free = 0
    for o in range(n_orders):
        total_free += z.nr_free[o] << o
    if total_free != free:
        return 6, free
    if reported != z.cfg[CFG_REPORTED]:
        return 22, reported
    if isolated != s.gi[g, GI.ISOLATED]:
        return 7, isolated
    pcp_listed = 0
    for cpu in range(s.pcp_cnt.shape[1]):
        c = 0
        q = s.pcp_head[g, cpu]
        while q >= 0 and c <= n:
            if z.state[q] != ON_PCP:
                return 8, q
            c += 1
            q = z.next[q]
        if c != s.pcp_cnt[g, cpu]:
            return 8, cpu
        pcp_listed += c
    if pcp_listed != pcp:
        return 8, pcp
    if alloc != s.gi[g, GI.USED] + s.gi[g, GI.BALLOON] + s.gi[g, GI.PC] + s.gi[g, GI.SLAB]:
        return 9, alloc
    if cache != s.gi[g, GI.PC] or dirty != s.gi[g, GI.PC_DIRTY]:
        return 17, cache
    c = 0
    prev = -1
    q = s.gi[g, GI.PC_HEAD]
    while q >= 0 and c <= n:
        if z.prev[q] != prev or not (z.state[q] == PC_CLEAN or z.state[q] == PC_DIRTY):
            return 17, q
        c += 1
        prev = q
        q = z.next[q]
    if c != cache or s.gi[g, GI.PC_TAIL] != prev:
        return 17, c
    c = 0
    prev = -1
    q = s.gi[g, GI.SLAB_HEAD]
    while q >= 0 and c <= n:
        if z.state[q] != ALLOC_BASE or z.prev[q] != prev:
            return 18, q
        c += 1
        prev = q
        q = z.next[q]
    if c != s.gi[g, GI.SLAB] or s.gi[g, GI.SLAB_TAIL] != prev:
        return 18, c
    held = 0
    prev = -1
    q = s.gi[g, GI.HELD_HEAD]
    while q >= 0 and held <= n:
        if z.prev[q] != prev or not ALLOC_BASE <= z.state[q] < ISOLATED_BASE:
            return 19, q
        held += 1 << (z.state[q] - ALLOC_BASE)
        prev = q
        q = z.next[q]
    if held + s.gi[g, GI.GSWAP] != s.gi[g, GI.HELD_PAGES] or not (
            0 <= s.gi[g, GI.GSWAP] <= s.gi[g, GI.GSWAP_CAP]) or s.gi[g, GI.HELD_TAIL] != prev:
        return 19, held
    if returned != s.gi[g, GI.RETURNED]:
        return 20, returned
    if lazy != s.gi[g, GI.LAZYFREE]:
        return 21, lazy
    if backed != s.gi[g, GI.RSS]:
        return 12, backed
    if swapped != s.gi[g, GI.SWAP]:
        return 15, swapped
    return 0, 0


@jit
def check_host(s):
    """Host counters equal the sums over guests."""
    s = borrow_state(s)
    rss = 0
    swap = 0
    lazy = 0
    for g in range(s.pi[PI.G]):
        if s.gi[g, GI.STATUS] == ST_KILLED:
            if s.gi[g, GI.RSS] or s.gi[g, GI.SWAP] or s.gi[g, GI.LAZYFREE]:
                return 14, g
        rss += s.gi[g, GI.RSS]
        swap += s.gi[g, GI.SWAP]
        lazy += s.gi[g, GI.LAZYFREE]
    if rss != s.hi[HI.RSS] or swap != s.hi[HI.SWAP] or lazy != s.hi[HI.LAZYFREE]:
        return 14, rss
    return 0, 0


def guest_bounds(gi, g):
    """(first, end) global page indices of guest g (Python helper for tests)."""
    return int(gi[g, GI.OFF]), int(gi[g, GI.OFF] + gi[g, GI.NPAGES])


class InvariantError(AssertionError):
    """A debug-mode invariant failed (``SimConfig(debug=True)``)."""
