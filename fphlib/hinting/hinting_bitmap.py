"""Nitesh Narayan Lal's per-zone bitmap hinting, RFC v10-v12 (``"hinting_bitmap"``, Jun-Aug
2019; mm/page_hinting.c, renamed mm/page_reporting.c in v12).

Sources: v10 http://mail.spinics.net/lists/kvm/msg188524.html, v11
https://lkml.org/lkml/2019/7/10/742, v12-style dev tree
github.com/niteshnarayanlal/linux/blob/08be6a2f/mm/page_reporting.c; docs/references.md §2
("v12 design details").

- One bit per chunk of order ``hint_order`` (9 = MAX_ORDER - 2, 2 MiB) per zone, nbits =
  (zone pages >> hint_order) + 1, and an atomic ``free_pages`` counter of set bits.
- After ``__free_one_page`` merged a block of order >= ``hint_order``: test_and_set its
  chunk's bit; if newly set, ``free_pages++``; when ``free_pages >= threshold`` (16) and the
  zone has no pending request, set the zone flag and schedule the work.
- The work walks the set bits. Under zone->lock it re-checks PageBuddy and the order
  (>= ``hint_order``) and ``__isolate_free_page`` (which fails below min watermark +
  2^order), then clears the bit (``free_pages--``). Every ``capacity`` (16,
  PAGE_REPORTING_MAX_PAGES) isolated blocks it reports (one kick; the host discards) and, on
  the host's reply, returns them to the buddy (to the tail, without setting bits again).
- At the end it reports the remainder and clears the zone flag; if ``free_pages`` reached the
  threshold meanwhile, the work is scheduled again.
- Bits are cleared only when the work processes them, never on reallocation: a bit whose
  chunk was allocated again is a stale hint; the work counts each (``stale_hints`` per guest)
  and clears it.

Costs: one zone->lock hold per bit examined and per putback, one exit per report, the host's
discards (:mod:`fphlib.host.discard_queue`).

Simplifications: no ISOLATE pageblocks (one migratetype), so that re-check always passes; one
zone per guest; the work runs at the next mechanism instant after being scheduled (no
workqueue delay); a block of order > ``hint_order`` is isolated whole at its chunk's bit
(later chunks of it find their bits stale if set).
"""

import numpy as np

from .._jit import borrowed, jit
from ..costs import C_ACK_IRQ, C_ZONE_LOCK
from ..guest.buddy import NR_ORDERS, nr_free_pages
from ..host.discard_queue import discard_due
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GF, GI, PI, PrivateState, private_columns
from ..state.params import Param
from .virtio_report import isolate_into, putback_blocks, report_blocks

NAME = "hinting_bitmap"
PARAMS = {
    "capacity": Param("int", 16, 1, 1024, "blocks", "PAGE_REPORTING_MAX_PAGES: blocks "
                      "isolated per report"),
    "threshold": Param("int", 16, 1, 1 << 20, "bits", "set bits (free_pages) that schedule "
                       "the work"),
}
TAKES_HINT_ORDER = True
ASKS = ("hint",)  # host policy asks it reads: hinting on/off (GI.ASK_HINT)
# RFC v10 and v11 (whose cover letters give the capacity and swap results) used MADV_FREE;
# v12 switched to MADV_DONTNEED (docs/references.md §2): host_madvise="dontneed" for v12
MADVISE = "free"


def safe(params):
    """Isolated until the host's reply: never loses a write."""
    return True


HB_COUNT, HB_FLAG, HB_PHASE, HB_CURSOR, HB_NSG, HB_CAP, HB_THRESHOLD, HB_NBITS = (
    private_columns("COUNT FLAG PHASE CURSOR NSG CAP THRESHOLD NBITS")
)
(HB_WAKE,) = private_columns("WAKE")
PH_IDLE = 0
PH_WORK = 1  # the work runs (or resumes its walk) at HB_WAKE
PH_HOST = 2  # report sent; the host discards at HB_WAKE
PH_ACK = 3  # the host's reply at HB_WAKE


def _nbits(params, n_pages, hint_order):
    return (n_pages >> hint_order) + 1


def _buffer(params, n_pages, vcpus):
    # bitmap words for the smallest hint order (the run's order is known only at run time)
    return (_nbits(params, n_pages, 0) + 63) // 64 + 2 * params["capacity"]


def _init(params, n_pages, vcpus, ints, floats):
    ints[HB_CAP] = params["capacity"]
    ints[HB_THRESHOLD] = params["threshold"]
    floats[HB_WAKE] = np.inf


STATE = PrivateState(
    ints=("COUNT", "FLAG", "PHASE", "CURSOR", "NSG", "CAP", "THRESHOLD", "NBITS"),
    floats=("WAKE",),
    buffer=_buffer,
    init=_init,
    discard_slots=lambda params: params["capacity"],
)


@jit(inline="always")
def _sg(s, g):
    """Start of the scatterlist (after the bitmap words) in guest g's mbuf slice."""
    return s.gi[g, GI.MBUF_OFF] + (s.gi[g, GI.NPAGES] + 1 + 63) // 64


@jit
def on_free(s, g, z, pfn, order, t, cost):
    """After merging at order >= hint_order: set the chunk's bit; schedule the work at the
    threshold."""
    s = borrow_state(s)
    cost = borrowed(cost)
    bit = pfn >> s.pi[PI.HINT_ORDER]
    w = s.gi[g, GI.MBUF_OFF] + (bit >> 6)
    mask = np.int64(1) << (bit & 63)
    if s.mbuf[w] & mask:
        return
    s.mbuf[w] |= mask
    s.mi[g, HB_COUNT] += 1
    if s.mi[g, HB_COUNT] >= s.mi[g, HB_THRESHOLD] and not s.mi[g, HB_FLAG]:
        s.mi[g, HB_FLAG] = 1
        s.mi[g, HB_CURSOR] = 0
        s.mi[g, HB_PHASE] = PH_WORK
        s.mf[g, HB_WAKE] = t


def free_hook_order(params, hint_order):
    """Merged blocks of order >= hint_order."""
    return hint_order


@jit
def _walk(s, g, z, now, cost):
    """Resume the walk over set bits; return True when a report was sent."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    hint = s.pi[PI.HINT_ORDER]
    off = s.gi[g, GI.MBUF_OFF]
    sg = _sg(s, g)
    nbits = (s.gi[g, GI.NPAGES] >> hint) + 1
    cap = s.mi[g, HB_CAP]
    bit = s.mi[g, HB_CURSOR]
    locks = 0
    while bit < nbits:
        w = off + (bit >> 6)
        if s.mbuf[w] == 0:
            bit = ((bit >> 6) + 1) << 6
            continue
        mask = np.int64(1) << (bit & 63)
        if not s.mbuf[w] & mask:
            bit += 1
            continue
        pfn = bit << hint
        locks += 1
        st = z.state[pfn] if pfn < s.gi[g, GI.NPAGES] else -1
        if hint <= st < NR_ORDERS:
            if not s.gi[g, GI.ASK_HINT] or not nr_free_pages(z) > (
                s.gi[g, GI.MIN_WMARK] + (1 << st)
            ):
                break  # __isolate_free_page fails: leave the bit for a later pass
            isolate_into(s, g, z, pfn, st, sg, s.mi[g, HB_NSG])
            s.mi[g, HB_NSG] += 1
        else:
            s.gi[g, GI.STALE_HINTS] += 1  # reallocated since its bit was set
        s.mbuf[w] &= ~mask
        s.mi[g, HB_COUNT] -= 1
        bit += 1
        if s.mi[g, HB_NSG] == cap:
            break
    s.mi[g, HB_CURSOR] = bit
    s.gi[g, GI.LOCK_OPS] += locks
    s.gf[g, GF.GUEST_CPU] += locks * cost[C_ZONE_LOCK]
    return s.mi[g, HB_NSG] > 0  # a full scatterlist, the remainder, or a failed isolation


@jit
def _putback(s, g, z, cost):
    cost = borrowed(cost)
    putback_blocks(s, g, z, _sg(s, g), s.mi[g, HB_NSG], False, cost)
    s.mi[g, HB_NSG] = 0


@jit
def tick(s, g, z, t_end, cost):
    """Run the work and its report round trips up to ``t_end``."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    nbits = (s.gi[g, GI.NPAGES] >> s.pi[PI.HINT_ORDER]) + 1
    while s.mf[g, HB_WAKE] <= t_end:
        now = s.mf[g, HB_WAKE]
        phase = s.mi[g, HB_PHASE]
        s.mf[g, HB_WAKE] = np.inf
        if phase == PH_WORK:
            if _walk(s, g, z, now, cost):
                s.mi[g, HB_PHASE] = PH_HOST
                s.mf[g, HB_WAKE] = report_blocks(s, g, z, _sg(s, g), s.mi[g, HB_NSG], now,
                                                 cost)
                continue
            # the walk ended (or isolation failed): clear the zone flag, maybe go again
            s.mi[g, HB_FLAG] = 0
            s.mi[g, HB_PHASE] = PH_IDLE
            if s.mi[g, HB_COUNT] >= s.mi[g, HB_THRESHOLD] and s.mi[g, HB_CURSOR] >= nbits:
                s.mi[g, HB_FLAG] = 1
                s.mi[g, HB_CURSOR] = 0
                s.mi[g, HB_PHASE] = PH_WORK
                s.mf[g, HB_WAKE] = now + 1e-3  # queue_work again: next run, not a busy loop
        elif phase == PH_HOST:
            spent = discard_due(s, g, z, now, cost)
            s.mi[g, HB_PHASE] = PH_ACK
            s.mf[g, HB_WAKE] = now + spent + cost[C_ACK_IRQ]
        elif phase == PH_ACK:
            _putback(s, g, z, cost)
            s.mi[g, HB_PHASE] = PH_WORK  # resume the walk where it stopped
            s.mf[g, HB_WAKE] = now
