"""Mechanism ``"eager"``: hint every free block of order >= ``hint_order`` at once.

Free page reporting (mm/page_reporting.c, Linux 5.7+) waits ``PAGE_REPORTING_DELAY`` (2 s)
after a free and reports at most 1/16 of a free list per pass. This plug-in drops both: a
free of a block of order >= ``hint_order`` wakes it at that instant; it isolates up to
``capacity`` unreported free blocks (``__isolate_free_page``, which refuses to take the zone
below its min watermark), reports them in one virtqueue kick, waits for the host to discard
them and ack, puts them back flagged PageReported (as ``page_reporting_drain``), and looks
again until nothing is left to report. It reads the host policy's hinting on/off ask.

Safe: pages are isolated while the host discards them, so no guest write is ever lost.

Simplifications: one report in flight per guest; no per-pass budget; the list walk itself
takes no simulated time (only its zone->lock holds are charged).
"""

import numpy as np

from fphlib import extend as fx

NAME = "eager"
PARAMS = {
    "capacity": fx.Param("int", 32, 1, 1024, "blocks", "blocks per report (the kernel's "
                         "PAGE_REPORTING_CAPACITY is 32)"),
}
TAKES_HINT_ORDER = True
ASKS = ("hint",)  # reads the host policy's hinting on/off
REPORTS_PAGES = True  # sets PageReported on the blocks it reported

PHASE, N, CAP = fx.private_columns("PHASE N CAP")
WAKE = fx.MECH_WAKE  # float column 0: the next instant the engine runs tick
IDLE, AT_HOST, ACK = 0, 1, 2


def _init(params, n_pages, vcpus, ints, floats):
    ints[CAP] = params["capacity"]
    floats[WAKE] = np.inf


STATE = fx.PrivateState(
    ints=("PHASE", "N", "CAP"),
    floats=("WAKE",),
    buffer=lambda params, n_pages, vcpus: 2 * params["capacity"],  # (pfn, order) pairs
    init=_init,
    discard_slots=lambda params: params["capacity"],
)


@fx.jit
def start(s, g, z, t, cost):
    """At boot: a first pass."""
    s = fx.borrow_state(s)
    cost = fx.borrowed(cost)
    s.mf[g, WAKE] = t


@fx.jit
def on_free(s, g, z, pfn, order, t, cost):
    """A block of order >= hint_order was freed: run at once (unless a report is in flight,
    after which the mechanism looks again anyway)."""
    s = fx.borrow_state(s)
    cost = fx.borrowed(cost)
    if s.mi[g, PHASE] == IDLE and t < s.mf[g, WAKE]:
        s.mf[g, WAKE] = t


def free_hook_order(params, hint_order):
    """The buddy calls on_free for merged blocks of order >= hint_order."""
    return hint_order


@fx.jit
def _isolate_unreported(s, g, z, cap):
    """Isolate up to ``cap`` unreported free blocks of order >= hint_order into the buffer."""
    base = fx.buffer_start(s, g)
    wmin, _, _ = fx.watermarks(s, g)
    n = 0
    for order in range(fx.hint_order(s), fx.NR_ORDERS):
        pfn = fx.free_list_first(z, order)
        while pfn >= 0 and n < cap:
            nxt = fx.free_list_next(z, pfn)
            if not fx.is_reported(z, pfn):
                if fx.nr_free_pages(z) <= wmin + (1 << order):
                    return n  # __isolate_free_page: the zone would drop below min
                fx.isolate_into(s, g, z, pfn, order, base, n)
                n += 1
            pfn = nxt
    return n


@fx.jit
def tick(s, g, z, t_end, cost):
    """Every instant of guest g's mechanism up to ``t_end``."""
    s = fx.borrow_state(s)
    z = fx.borrow_zone(z)
    cost = fx.borrowed(cost)
    while s.mf[g, WAKE] <= t_end:
        now = s.mf[g, WAKE]
        phase = s.mi[g, PHASE]
        if phase == AT_HOST:  # the host discards the report's pages, then acks
            spent = fx.discard_due(s, g, z, now, cost)
            s.mf[g, WAKE] = now + spent + cost[fx.C_ACK_IRQ]
            s.mi[g, PHASE] = ACK
        elif phase == ACK:  # back to the free lists, flagged reported; look again
            fx.putback_blocks(s, g, z, fx.buffer_start(s, g), s.mi[g, N], True, cost)
            s.mi[g, PHASE] = IDLE
        else:
            s.mf[g, WAKE] = np.inf  # until the next free (on_free) or ask
            if not fx.hint_asked(s, g):
                return
            n = _isolate_unreported(s, g, z, s.mi[g, CAP])
            if n == 0:
                return
            fx.count_lock_ops(s, g, n, cost)  # one zone->lock hold per isolation
            s.mi[g, N] = n
            s.mf[g, WAKE] = fx.report_blocks(s, g, z, fx.buffer_start(s, g), n, now, cost)
            s.mi[g, PHASE] = AT_HOST


@fx.jit
def reported_pages(s, g, z):
    """Pages in free blocks flagged PageReported now."""
    s = fx.borrow_state(s)
    z = fx.borrow_zone(z)
    total = 0
    for order in range(fx.hint_order(s), fx.NR_ORDERS):
        pfn = fx.free_list_first(z, order)
        while pfn >= 0:
            if fx.is_reported(z, pfn):
                total += 1 << order
            pfn = fx.free_list_next(z, pfn)
    return total
