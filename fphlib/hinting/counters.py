"""The counters the summary reads, updated through a name (fphlib.extend): reports, reported
pages, exits, events, zone->lock holds, guest and host CPU (``SimResult.summary``; docs/plugins.md
says which a mechanism must update).
"""

from .._jit import jit
from ..costs import C_ACK_IRQ, C_KICK_WAKEUP, C_VMEXIT, C_ZONE_LOCK
from ..state.layout import GF, GI


@jit(inline="always")
def count_report(s, g, pages, cost):
    """One report of ``pages`` to the host over a virtqueue: a kick (one exit, its guest CPU
    and the host thread's wake-up) and the summary's ``reports``, ``vmexits``, ``events``.
    The pages count in ``reported_bytes`` when the host discards them
    (:func:`count_reported_pages`; :func:`report_blocks` does both)."""
    s.gi[g, GI.REPORTS] += 1
    s.gi[g, GI.VMEXITS] += 1
    s.gi[g, GI.EVENTS] += 1
    s.gf[g, GF.GUEST_CPU] += cost[C_VMEXIT] + cost[C_ACK_IRQ]
    s.gf[g, GF.HOST_CPU] += cost[C_KICK_WAKEUP]


@jit(inline="always")
def count_reported_pages(s, g, pages):
    """``pages`` more reported to the host (the summary's ``reported_bytes``)."""
    s.gi[g, GI.REPORTED_PAGES] += pages


@jit(inline="always")
def count_vmexits(s, g, n):
    """``n`` more VM exits (the summary's ``vmexits``)."""
    s.gi[g, GI.VMEXITS] += n


@jit(inline="always")
def count_events(s, g, n):
    """``n`` more simulated events (the summary's ``events``, the benchmark's unit)."""
    s.gi[g, GI.EVENTS] += n


@jit(inline="always")
def count_lock_ops(s, g, n, cost):
    """``n`` zone->lock holds: the summary's ``zone_lock_hold_s`` and their guest CPU."""
    s.gi[g, GI.LOCK_OPS] += n
    s.gf[g, GF.GUEST_CPU] += n * cost[C_ZONE_LOCK]


@jit(inline="always")
def charge_guest_cpu(s, g, seconds):
    """Guest CPU the mechanism spent (the summary's ``guest_cpu_overhead_s``)."""
    s.gf[g, GF.GUEST_CPU] += seconds


@jit(inline="always")
def charge_host_cpu(s, g, seconds):
    """Host CPU spent for guest g (the summary's ``host_cpu_s``)."""
    s.gf[g, GF.HOST_CPU] += seconds
