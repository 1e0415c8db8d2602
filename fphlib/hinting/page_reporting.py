"""Free page reporting (``"page_reporting"``): mm/page_reporting.c of Linux 5.7+ (v5.10).

Faithful to reference/kernel-mechanisms.md §3.2:

- ``page_reporting_notify_free(order)`` runs after ``__free_one_page`` places a block (not
  after a putback, which uses FPI_SKIP_REPORT_NOTIFY). For ``order >= page_reporting_order``
  (``hint_order``, default pageblock_order 9) ``__page_reporting_request`` sets the state to
  REQUESTED and, only if it was IDLE, schedules the work ``PAGE_REPORTING_DELAY`` (2 s) later.
  ``page_reporting_register`` issues the same request when the guest boots.
- ``page_reporting_process`` sets ACTIVE and runs ``page_reporting_process_zone``: skip the
  zone unless ``zone_watermark_ok(0, low_wmark + (CAPACITY << order))``; then for each order
  ``page_reporting_cycle``; then report the leftover (< CAPACITY) entries. At the end
  cmpxchg(ACTIVE → IDLE); if the state was REQUESTED again, reschedule in 2 s.
- ``page_reporting_cycle(order)``: skip an empty list; ``budget = DIV_ROUND_UP(nr_free,
  CAPACITY * 16)``; walk from the head skipping PageReported pages; with ``budget < 0`` set
  REQUESTED and stop; while sg slots remain ``__isolate_free_page`` (fails, ending the walk,
  when free pages would drop to ``min_wmark + 2^order``) and fill the scatterlist from its end
  (``--offset``); when it is full, rotate the list so the current page is the head, report
  (kick; the host discards; the worker sleeps until the ack), ``budget--`` and drain; resume at
  the list head. After the walk, rotate the first unprocessed page to the front.
- ``page_reporting_drain``: ``__putback_isolated_page`` (FPI_TO_TAIL) each entry in
  scatterlist order and set PageReported if the page is still a free head of the same order.

Time: the worker runs at its own instants (``GF_PR_WAKE``) inside the engine's tick; list
walking and isolation take no simulated time (their CPU is charged as zone->lock holds), a
report takes ``vmexit + kick_wakeup + host discard time + ack_irq`` of simulated time, during
which the isolated pages are unavailable to the guest. Reports never fail (no VFIO, no page
poisoning), so PageReported is always set after a successful drain.
"""

import numpy as np

from .._jit import jit
from ..engine.borrow import borrow_state, borrow_zone
from ..engine.layout import (
    GF_GUEST_CPU,
    GF_HOST_CPU,
    GF_PR_WAKE,
    GI_EVENTS,
    GI_ISOLATED,
    GI_LOCK_OPS,
    GI_LOW_WMARK,
    GI_MIN_WMARK,
    GI_PR_BUDGET,
    GI_PR_CURSOR,
    GI_PR_OFFSET,
    GI_PR_ORDER,
    GI_PR_PHASE,
    GI_PR_STATE,
    GI_REPORTED_PAGES,
    GI_REPORTS,
    GI_VMEXITS,
    PF_DELAY,
    PI_CAP,
    PI_HINT_ORDER,
)
from ..guest.buddy import (
    PG_REPORTED,
    isolate_free_page,
    list_rotate_to_front,
    putback_isolated_page,
)
from ..host.backing import discard
from ..host.costs import C_ACK_IRQ, C_KICK_WAKEUP, C_VMEXIT, C_ZONE_LOCK

PAGE_REPORTING_IDLE = 0
PAGE_REPORTING_REQUESTED = 1
PAGE_REPORTING_ACTIVE = 2

# worker phases (where the resumable work item stands)
PH_IDLE = 0  # no work queued
PH_SCHED = 1  # delayed work queued for GF_PR_WAKE
PH_ORDER = 2  # about to start page_reporting_cycle for GI_PR_ORDER
PH_WALK = 3  # walking the free list of GI_PR_ORDER at GI_PR_CURSOR
PH_WAIT = 4  # report(CAPACITY) in flight, ack at GF_PR_WAKE
PH_WAIT_LEFTOVER = 5  # report of the leftover entries in flight

INF = np.inf


@jit(inline="always")
def free_pages(z):
    """NR_FREE_PAGES: pages in the buddy free lists (isolated and pcp pages excluded)."""
    total = 0
    for o in range(z.nr_free.shape[0]):
        total += z.nr_free[o] << o
    return total


@jit(inline="always")
def _schedule(s, g, t):
    s.gi[g, GI_PR_PHASE] = PH_SCHED
    s.gf[g, GF_PR_WAKE] = t + s.pf[PF_DELAY]


@jit(inline="always")
def page_reporting_request(s, g, t):
    """``__page_reporting_request``."""
    state = s.gi[g, GI_PR_STATE]
    if state == PAGE_REPORTING_REQUESTED:
        return
    s.gi[g, GI_PR_STATE] = PAGE_REPORTING_REQUESTED
    if state == PAGE_REPORTING_IDLE:
        _schedule(s, g, t)


@jit(inline="always")
def page_reporting_notify_free(s, g, order, t):
    """``page_reporting_notify_free``: request a pass when a block of order >= min is freed."""
    if order < s.pi[PI_HINT_ORDER]:
        return
    page_reporting_request(s, g, t)


@jit
def _report(s, g, z, first, last, now, cost):
    """``prdev->report`` of sg entries [first, last): the host discards; return ack time."""
    s = borrow_state(s)
    z = borrow_zone(z)
    host = cost[C_KICK_WAKEUP]
    for i in range(first, last):
        pfn = s.sg_pfn[g, i]
        n = 1 << s.sg_ord[g, i]
        host += discard(s, g, z, pfn, n, cost)
        s.gi[g, GI_REPORTED_PAGES] += n
    s.gi[g, GI_REPORTS] += 1
    s.gi[g, GI_VMEXITS] += 1  # the virtqueue kick
    s.gi[g, GI_EVENTS] += 1
    s.gf[g, GF_GUEST_CPU] += cost[C_VMEXIT] + cost[C_ACK_IRQ]
    s.gf[g, GF_HOST_CPU] += cost[C_KICK_WAKEUP]
    # discard() already charged its share of host CPU; wall time covers the whole trip
    return now + cost[C_VMEXIT] + host + cost[C_ACK_IRQ]


@jit
def _drain(s, g, z, first, last, cost):
    """``page_reporting_drain`` of sg entries [first, last)."""
    s = borrow_state(s)
    z = borrow_zone(z)
    for i in range(first, last):
        pfn = s.sg_pfn[g, i]
        order = s.sg_ord[g, i]
        putback_isolated_page(z, pfn, order)
        s.gi[g, GI_ISOLATED] -= 1 << order
        # still a free head of the same order: it did not merge
        if z.state[pfn] == order:
            z.flags[pfn] |= PG_REPORTED
    n = last - first
    s.gi[g, GI_LOCK_OPS] += n
    s.gf[g, GF_GUEST_CPU] += n * cost[C_ZONE_LOCK]


@jit
def _finish(s, g, now):
    """End of ``page_reporting_process``: cmpxchg(ACTIVE, IDLE), else reschedule."""
    s = borrow_state(s)
    if s.gi[g, GI_PR_STATE] == PAGE_REPORTING_ACTIVE:
        s.gi[g, GI_PR_STATE] = PAGE_REPORTING_IDLE
        s.gi[g, GI_PR_PHASE] = PH_IDLE
        s.gf[g, GF_PR_WAKE] = INF
    else:
        _schedule(s, g, now)


@jit
def _run(s, g, z, now, cost):
    """Advance the work item until it waits for an ack or ends."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cap = s.pi[PI_CAP]
    n_orders = z.nr_free.shape[0]
    while True:
        phase = s.gi[g, GI_PR_PHASE]
        if phase == PH_ORDER:
            order = s.gi[g, GI_PR_ORDER]
            if order >= n_orders:
                offset = s.gi[g, GI_PR_OFFSET]
                if offset < cap:  # report the leftover pages before going idle
                    s.gf[g, GF_PR_WAKE] = _report(s, g, z, offset, cap, now, cost)
                    s.gi[g, GI_PR_PHASE] = PH_WAIT_LEFTOVER
                    return
                _finish(s, g, now)
                return
            if z.head[order] < 0:  # list_empty: skip without taking the lock
                s.gi[g, GI_PR_ORDER] = order + 1
                continue
            s.gi[g, GI_PR_BUDGET] = (z.nr_free[order] + cap * 16 - 1) // (cap * 16)
            s.gi[g, GI_PR_CURSOR] = z.head[order]
            s.gi[g, GI_PR_PHASE] = PH_WALK
            s.gi[g, GI_LOCK_OPS] += 1
            s.gf[g, GF_GUEST_CPU] += cost[C_ZONE_LOCK]
        elif phase == PH_WALK:
            order = s.gi[g, GI_PR_ORDER]
            page = s.gi[g, GI_PR_CURSOR]
            budget = s.gi[g, GI_PR_BUDGET]
            offset = s.gi[g, GI_PR_OFFSET]
            mark = s.gi[g, GI_MIN_WMARK] + (1 << order)
            isolated = 0
            while page >= 0:
                nxt = z.next[page]
                if z.flags[page] & PG_REPORTED:
                    page = nxt
                    continue
                if budget < 0:
                    s.gi[g, GI_PR_STATE] = PAGE_REPORTING_REQUESTED
                    break
                if offset > 0:
                    # __isolate_free_page: zone_watermark_ok(0, min_wmark + 2^order)
                    if not free_pages(z) > mark:
                        break
                    isolate_free_page(z, page, order)
                    offset -= 1
                    s.sg_pfn[g, offset] = page
                    s.sg_ord[g, offset] = order
                    s.gi[g, GI_ISOLATED] += 1 << order
                    isolated += 1
                    page = nxt
                    continue
                # scatterlist full: the current page becomes the head, then report
                if z.head[order] != page:
                    list_rotate_to_front(z, page, order)
                s.gi[g, GI_PR_OFFSET] = offset
                s.gi[g, GI_PR_BUDGET] = budget
                s.gi[g, GI_LOCK_OPS] += isolated
                s.gf[g, GF_GUEST_CPU] += isolated * cost[C_ZONE_LOCK]
                s.gf[g, GF_PR_WAKE] = _report(s, g, z, 0, cap, now, cost)
                s.gi[g, GI_PR_PHASE] = PH_WAIT
                return
            # rotate processed pages to the back (only when the walk stopped early)
            if page >= 0 and z.head[order] != page:
                list_rotate_to_front(z, page, order)
            s.gi[g, GI_PR_OFFSET] = offset
            s.gi[g, GI_LOCK_OPS] += isolated
            s.gf[g, GF_GUEST_CPU] += isolated * cost[C_ZONE_LOCK]
            s.gi[g, GI_PR_ORDER] = order + 1
            s.gi[g, GI_PR_PHASE] = PH_ORDER
        else:
            return


@jit
def page_reporting_step(s, g, z, t_end, cost):
    """Run every worker instant of guest g up to ``t_end``."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cap = s.pi[PI_CAP]
    while s.gf[g, GF_PR_WAKE] <= t_end:
        now = s.gf[g, GF_PR_WAKE]
        phase = s.gi[g, GI_PR_PHASE]
        if phase == PH_SCHED:
            # page_reporting_process
            s.gi[g, GI_PR_STATE] = PAGE_REPORTING_ACTIVE
            s.gi[g, GI_PR_OFFSET] = cap
            s.gf[g, GF_PR_WAKE] = INF
            hint_order = s.pi[PI_HINT_ORDER]
            gate = s.gi[g, GI_LOW_WMARK] + (cap << hint_order)
            if not free_pages(z) > gate:
                _finish(s, g, now)
                continue
            s.gi[g, GI_PR_ORDER] = hint_order
            s.gi[g, GI_PR_PHASE] = PH_ORDER
            _run(s, g, z, now, cost)
        elif phase == PH_WAIT:
            s.gf[g, GF_PR_WAKE] = INF
            s.gi[g, GI_PR_OFFSET] = cap
            s.gi[g, GI_PR_BUDGET] -= 1
            _drain(s, g, z, 0, cap, cost)
            s.gi[g, GI_PR_CURSOR] = z.head[s.gi[g, GI_PR_ORDER]]
            s.gi[g, GI_PR_PHASE] = PH_WALK
            _run(s, g, z, now, cost)
        elif phase == PH_WAIT_LEFTOVER:
            s.gf[g, GF_PR_WAKE] = INF
            _drain(s, g, z, s.gi[g, GI_PR_OFFSET], cap, cost)
            s.gi[g, GI_PR_OFFSET] = cap
            _finish(s, g, now)
        else:
            s.gf[g, GF_PR_WAKE] = INF


@jit
def reported_pages_now(z, min_order):
    """Pages in free blocks flagged PageReported (walks lists of order >= min_order)."""
    z = borrow_zone(z)
    total = 0
    for o in range(min_order, z.head.shape[0]):
        p = z.head[o]
        while p >= 0:
            if z.flags[p] & PG_REPORTED:
                total += 1 << o
            p = z.next[p]
    return total
