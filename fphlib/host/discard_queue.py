"""The host's discard queue: a discard the guest requests at t is performed at t + latency.

Between the request and the discard the pages are still backed (host RSS has not dropped
yet), and a guest write to them in that window is lost when the discard lands (counted by
:func:`fphlib.host.backing.discard`): the race of non-isolating hints. The latency is the
``discard_latency`` cost: the virtqueue kick's exit plus the wake-up of the QEMU thread that
calls ``ram_block_discard_range``.

Mechanisms that wait for the host's ack (page reporting, the balloon) run the queue at the
discard instant themselves and ack after the discard work; the engine runs every guest's
queue at the end of its tick for the rest. One ring per guest, sized by the mechanism
(``PrivateState.discard_slots``); a full ring performs its oldest discard early (counted in
``GI.DQ_EARLY``), which is safe for isolated or ballooned pages.

Simplification: the host handles one guest's discards in request order (one QEMU thread per
device); discards of different guests do not contend.
"""

from .._jit import borrowed, jit
from ..costs import C_DISCARD_LATENCY
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GI
from .backing import discard


@jit(inline="always")
def _pop(s, g, z, cost):
    """Perform the oldest queued discard; return its host CPU seconds."""
    slots = s.dq_t.shape[1]
    i = s.gi[g, GI.DQ_HEAD]
    spent = discard(s, g, z, s.dq_pfn[g, i], s.dq_n[g, i], cost)
    s.gi[g, GI.DQ_HEAD] = (i + 1) % slots
    s.gi[g, GI.DQ_N] -= 1
    return spent


@jit(inline="always")
def discard_later(s, g, z, pfn, npages, now, cost):
    """Queue a discard of guest pages [pfn, pfn+npages) requested at ``now``; return its due
    time (inlined: the balloon queues one per 4 KiB page)."""
    slots = s.dq_t.shape[1]
    if s.gi[g, GI.DQ_N] == slots:
        _pop(s, g, z, cost)
        s.gi[g, GI.DQ_EARLY] += 1
    i = (s.gi[g, GI.DQ_HEAD] + s.gi[g, GI.DQ_N]) % slots
    due = now + cost[C_DISCARD_LATENCY]
    s.dq_t[g, i] = due
    s.dq_pfn[g, i] = pfn
    s.dq_n[g, i] = npages
    s.gi[g, GI.DQ_N] += 1
    return due


@jit
def discard_due(s, g, z, t, cost):
    """Perform guest g's queued discards due at or before ``t``; return host CPU seconds."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    spent = 0.0
    while s.gi[g, GI.DQ_N] > 0 and s.dq_t[g, s.gi[g, GI.DQ_HEAD]] <= t:
        spent += _pop(s, g, z, cost)
    return spent


@jit
def discard_pending(s, g, pfn, npages):
    """Is any page of [pfn, pfn+npages) in a queued, not yet performed, discard?"""
    s = borrow_state(s)
    slots = s.dq_t.shape[1]
    for k in range(s.gi[g, GI.DQ_N]):
        i = (s.gi[g, GI.DQ_HEAD] + k) % slots
        a = s.dq_pfn[g, i]
        if a < pfn + npages and pfn < a + s.dq_n[g, i]:
            return True
    return False
