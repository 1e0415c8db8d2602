"""Free page reporting (``"page_reporting"``): mm/page_reporting.c of Linux 5.7+ (v5.10).

Faithful to docs/references.md §3.2:

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

Time: the worker runs at its own instants (``PR_WAKE``) inside the engine's tick; list
walking and isolation take no simulated time (their CPU is charged as zone->lock holds). A
report queues its discards with the host (:mod:`fphlib.host.discard_queue`, performed
``discard_latency`` later), and the ack comes after the host's discard work plus
``ack_irq``; the isolated pages are unavailable to the guest until then. Reports never fail
(no VFIO, no page poisoning), so PageReported is always set after a successful drain.

Parameters (``mechanism_params``): ``capacity`` (PAGE_REPORTING_CAPACITY, 32; older name
``report_capacity``) and ``delay_s`` (PAGE_REPORTING_DELAY, 2 s; ``report_delay_s``); the
order is the run's ``hint_order``. A host policy that switches hinting off
(``GI.ASK_HINT`` = 0) makes a pass end at once, as if the zone were below the gate.

Simplifications: one zone per guest; the worker's own CPU time outside zone->lock is not
charged; the scatterlist entries hold a pfn and an order (no struct scatterlist).
"""

import numpy as np

from .._jit import borrowed, jit
from ..costs import C_ACK_IRQ, C_ZONE_LOCK
from ..guest.buddy import list_rotate_to_front, nr_free_pages
from ..host.discard_queue import discard_due
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GF, GI, PI, PrivateState, private_columns
from ..state.params import Param
from ..state.zone import CFG_REPORTED, PG_REPORTED
from .virtio_report import isolate_into, putback_blocks, report_blocks

NAME = "page_reporting"
PARAMS = {
    "capacity": Param("int", 32, 1, 1024, "blocks", "PAGE_REPORTING_CAPACITY: blocks per "
                      "report (a power of 2)", field="report_capacity"),
    "delay_s": Param("float", 2.0, 1e-3, 3600.0, "s", "PAGE_REPORTING_DELAY: work delay "
                     "after a request", field="report_delay_s"),
}
TAKES_HINT_ORDER = True
ASKS = ("hint",)  # host policy asks it reads: hinting on/off (GI.ASK_HINT)
# QEMU virtio_balloon_handle_report -> ram_block_discard_range: MADV_DONTNEED
# (docs/references.md §3)
MADVISE = "dontneed"
REPORTS_PAGES = True  # sets PageReported: the page_reporting_enabled static key is on

# private columns (mi / mf); the scatterlist is the guest's mbuf slice, (pfn, order) pairs
PR_STATE, PR_PHASE, PR_ORDER, PR_BUDGET, PR_CURSOR, PR_OFFSET, PR_CAP = private_columns(
    "STATE PHASE ORDER BUDGET CURSOR OFFSET CAP"
)
PR_WAKE, PR_DELAY = private_columns("WAKE DELAY")


def _init(params, n_pages, vcpus, ints, floats):
    ints[PR_OFFSET] = ints[PR_CAP] = params["capacity"]
    floats[PR_WAKE] = np.inf
    floats[PR_DELAY] = params["delay_s"]


def check_params(params):
    """The kernel's capacity is a power of two (sg tables); refuse others."""
    cap = params["capacity"]
    if cap & (cap - 1):
        raise ValueError(
            f"mechanism_params['capacity']: {cap!r} is not allowed; expected a power of 2 "
            "in 1..1024 (the kernel's 32)"
        )


STATE = PrivateState(
    ints=("STATE", "PHASE", "ORDER", "BUDGET", "CURSOR", "OFFSET", "CAP"),
    floats=("WAKE", "DELAY"),
    buffer=lambda params, n_pages, vcpus: 2 * params["capacity"],
    init=_init,
    discard_slots=lambda params: params["capacity"],
)

PAGE_REPORTING_IDLE = 0
PAGE_REPORTING_REQUESTED = 1
PAGE_REPORTING_ACTIVE = 2

# worker phases (where the resumable work item stands)
PH_IDLE = 0  # no work queued
PH_SCHED = 1  # delayed work queued for PR_WAKE
PH_ORDER = 2  # about to start page_reporting_cycle for PR_ORDER
PH_WALK = 3  # walking the free list of PR_ORDER at PR_CURSOR
PH_WAIT = 4  # report(CAPACITY) in flight, ack at PR_WAKE
PH_WAIT_LEFTOVER = 5  # report of the leftover entries in flight
PH_HOST = 6  # report(CAPACITY) sent; the host discards at PR_WAKE
PH_HOST_LEFTOVER = 7  # the same for the leftover report

INF = np.inf


@jit(inline="always")
def _schedule(s, g, t):
    s.mi[g, PR_PHASE] = PH_SCHED
    s.mf[g, PR_WAKE] = t + s.mf[g, PR_DELAY]


@jit(inline="always")
def page_reporting_request(s, g, t):
    """``__page_reporting_request``."""
    state = s.mi[g, PR_STATE]
    if state == PAGE_REPORTING_REQUESTED:
        return
    s.mi[g, PR_STATE] = PAGE_REPORTING_REQUESTED
    if state == PAGE_REPORTING_IDLE:
        _schedule(s, g, t)


@jit(inline="always")
def page_reporting_notify_free(s, g, order, t):
    """``page_reporting_notify_free``: request a pass when a block of order >= min is freed."""
    if order < s.pi[PI.HINT_ORDER]:
        return
    page_reporting_request(s, g, t)


@jit(inline="always")
def _report(s, g, z, first, last, now, cost):
    """``prdev->report`` of sg entries [first, last); return when the host discards them."""
    base = s.gi[g, GI.MBUF_OFF] + 2 * first
    return report_blocks(s, g, z, base, last - first, now, cost)


@jit(inline="always")
def _drain(s, g, z, first, last, cost):
    """``page_reporting_drain`` of sg entries [first, last)."""
    putback_blocks(s, g, z, s.gi[g, GI.MBUF_OFF] + 2 * first, last - first, True, cost)


@jit(inline="always")
def _finish(s, g, now):
    """End of ``page_reporting_process``: cmpxchg(ACTIVE, IDLE), else reschedule."""
    s = borrow_state(s)
    if s.mi[g, PR_STATE] == PAGE_REPORTING_ACTIVE:
        s.mi[g, PR_STATE] = PAGE_REPORTING_IDLE
        s.mi[g, PR_PHASE] = PH_IDLE
        s.mf[g, PR_WAKE] = INF
    else:
        _schedule(s, g, now)


@jit
def _run(s, g, z, now, cost):
    """Advance the work item until it waits for an ack or ends."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    cap = s.mi[g, PR_CAP]
    off = s.gi[g, GI.MBUF_OFF]
    n_orders = z.nr_free.shape[0]
    while True:
        phase = s.mi[g, PR_PHASE]
        if phase == PH_ORDER:
            order = s.mi[g, PR_ORDER]
            if order >= n_orders:
                offset = s.mi[g, PR_OFFSET]
                if offset < cap:  # report the leftover pages before going idle
                    s.mf[g, PR_WAKE] = _report(s, g, z, offset, cap, now, cost)
                    s.mi[g, PR_PHASE] = PH_HOST_LEFTOVER
                    return
                _finish(s, g, now)
                return
            if z.head[order] < 0:  # list_empty: skip without taking the lock
                s.mi[g, PR_ORDER] = order + 1
                continue
            s.mi[g, PR_BUDGET] = (z.nr_free[order] + cap * 16 - 1) // (cap * 16)
            s.mi[g, PR_CURSOR] = z.head[order]
            s.mi[g, PR_PHASE] = PH_WALK
            s.gi[g, GI.LOCK_OPS] += 1
            s.gf[g, GF.GUEST_CPU] += cost[C_ZONE_LOCK]
        elif phase == PH_WALK:
            order = s.mi[g, PR_ORDER]
            page = s.mi[g, PR_CURSOR]
            budget = s.mi[g, PR_BUDGET]
            offset = s.mi[g, PR_OFFSET]
            mark = s.gi[g, GI.MIN_WMARK] + (1 << order)
            isolated = 0
            while page >= 0:
                nxt = z.next[page]
                if z.flags[page] & PG_REPORTED:
                    page = nxt
                    continue
                if budget < 0:
                    s.mi[g, PR_STATE] = PAGE_REPORTING_REQUESTED
                    break
                if offset > 0:
                    # __isolate_free_page: zone_watermark_ok(0, min_wmark + 2^order)
                    if not nr_free_pages(z) > mark:
                        break
                    offset -= 1
                    isolate_into(s, g, z, page, order, off, offset)
                    isolated += 1
                    page = nxt
                    continue
                # scatterlist full: the current page becomes the head, then report
                if z.head[order] != page:
                    list_rotate_to_front(z, page, order)
                s.mi[g, PR_OFFSET] = offset
                s.mi[g, PR_BUDGET] = budget
                s.gi[g, GI.LOCK_OPS] += isolated
                s.gf[g, GF.GUEST_CPU] += isolated * cost[C_ZONE_LOCK]
                s.mf[g, PR_WAKE] = _report(s, g, z, 0, cap, now, cost)
                s.mi[g, PR_PHASE] = PH_HOST
                return
            # rotate processed pages to the back (only when the walk stopped early)
            if page >= 0 and z.head[order] != page:
                list_rotate_to_front(z, page, order)
            s.mi[g, PR_OFFSET] = offset
            s.gi[g, GI.LOCK_OPS] += isolated
            s.gf[g, GF.GUEST_CPU] += isolated * cost[C_ZONE_LOCK]
            s.mi[g, PR_ORDER] = order + 1
            s.mi[g, PR_PHASE] = PH_ORDER
        else:
            return


@jit
def page_reporting_step(s, g, z, t_end, cost):
    """Run every worker instant of guest g up to ``t_end``."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    cap = s.mi[g, PR_CAP]
    while s.mf[g, PR_WAKE] <= t_end:
        now = s.mf[g, PR_WAKE]
        phase = s.mi[g, PR_PHASE]
        if phase == PH_HOST or phase == PH_HOST_LEFTOVER:
            # the host performs the report's discards, then acks (used-buffer interrupt)
            spent = discard_due(s, g, z, now, cost)
            s.mf[g, PR_WAKE] = now + spent + cost[C_ACK_IRQ]
            s.mi[g, PR_PHASE] = PH_WAIT if phase == PH_HOST else PH_WAIT_LEFTOVER
        elif phase == PH_SCHED:
            # page_reporting_process
            s.mi[g, PR_STATE] = PAGE_REPORTING_ACTIVE
            s.mi[g, PR_OFFSET] = cap
            s.mf[g, PR_WAKE] = INF
            hint_order = s.pi[PI.HINT_ORDER]
            gate = s.gi[g, GI.LOW_WMARK] + (cap << hint_order)
            if not s.gi[g, GI.ASK_HINT] or not nr_free_pages(z) > gate:
                _finish(s, g, now)
                continue
            s.mi[g, PR_ORDER] = hint_order
            s.mi[g, PR_PHASE] = PH_ORDER
            _run(s, g, z, now, cost)
        elif phase == PH_WAIT:
            s.mf[g, PR_WAKE] = INF
            s.mi[g, PR_OFFSET] = cap
            s.mi[g, PR_BUDGET] -= 1
            _drain(s, g, z, 0, cap, cost)
            s.mi[g, PR_CURSOR] = z.head[s.mi[g, PR_ORDER]]
            s.mi[g, PR_PHASE] = PH_WALK
            _run(s, g, z, now, cost)
        elif phase == PH_WAIT_LEFTOVER:
            s.mf[g, PR_WAKE] = INF
            _drain(s, g, z, s.mi[g, PR_OFFSET], cap, cost)
            s.mi[g, PR_OFFSET] = cap
            _finish(s, g, now)
        else:
            s.mf[g, PR_WAKE] = INF


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


# ------------------------------------------------------------------ the mechanism's hooks


@jit
def start(s, g, z, t, cost):
    """``page_reporting_register`` at boot: request a first pass."""
    s = borrow_state(s)
    cost = borrowed(cost)
    page_reporting_request(s, g, t)


tick = page_reporting_step


@jit
def on_free(s, g, z, pfn, order, t, cost):
    """``page_reporting_notify_free`` after ``__free_one_page``."""
    s = borrow_state(s)
    cost = borrowed(cost)
    page_reporting_notify_free(s, g, order, t)


def free_hook_order(params, hint_order):
    """The engine calls :func:`on_free` only for merged blocks of order >= hint_order."""
    return hint_order


@jit
def reported_pages(s, g, z):
    """Pages in free blocks flagged PageReported now."""
    z = borrow_zone(z)
    # = reported_pages_now(z, hint_order): only blocks of order >= hint_order are ever
    # reported, and a merge or a split clears the flag
    return z.cfg[CFG_REPORTED]
