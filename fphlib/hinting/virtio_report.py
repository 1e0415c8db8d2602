"""What every isolating hinting mechanism does with a list of {pfn, order} blocks: isolate
them into it, report it to the host over a virtqueue, put the blocks back after the ack.

The list lives in the mechanism's ``mbuf`` slice as pairs (pfn, order) from ``base``. A
report is one kick (an exit), queues the host's discards (performed ``discard_latency``
later, :mod:`fphlib.host.discard_queue`) and returns when they are due; the mechanism runs
the queue at that instant and takes the ack ``ack_irq`` after the discard work.
"""

from .._jit import borrowed, jit
from ..guest.buddy import isolate_free_page, putback_isolated_page
from ..host.discard_queue import discard_later
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GI
from ..state.zone import set_page_reported
from .counters import count_lock_ops, count_report, count_reported_pages


@jit(inline="always")
def isolate_into(s, g, z, pfn, order, base, k):
    """``__isolate_free_page`` of a free head into entry k of the list at ``base``."""
    isolate_free_page(z, pfn, order)
    s.gi[g, GI.ISOLATED] += 1 << order
    s.mbuf[base + 2 * k] = pfn
    s.mbuf[base + 2 * k + 1] = order


@jit
def report_blocks(s, g, z, base, n, now, cost):
    """Report n blocks of the list at ``base``: one kick, the host's discards queued;
    return when the host performs them."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    due = now
    pages = 0
    for i in range(n):
        npages = 1 << s.mbuf[base + 2 * i + 1]
        due = discard_later(s, g, z, s.mbuf[base + 2 * i], npages, now, cost)
        pages += npages
    count_reported_pages(s, g, pages)
    count_report(s, g, pages, cost)  # the virtqueue kick
    return due


@jit
def putback_blocks(s, g, z, base, n, mark_reported, cost):
    """``__putback_isolated_page`` (to the tail) of n blocks of the list at ``base``; with
    ``mark_reported``, set PageReported on each that is still a free head of its order (did
    not merge), as ``page_reporting_drain``."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    for i in range(n):
        pfn = s.mbuf[base + 2 * i]
        order = s.mbuf[base + 2 * i + 1]
        putback_isolated_page(z, pfn, order)
        s.gi[g, GI.ISOLATED] -= 1 << order
        if mark_reported and z.state[pfn] == order:
            set_page_reported(z, pfn, order)
    count_lock_ops(s, g, n, cost)
