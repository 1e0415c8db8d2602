"""Wei Wang's xbitmap free page hints (``"xbitmap_hints"``): the seed thread's proposal.

Source: "RE: [RFC][Patch v8 0/7] KVM: Guest Free Page Hinting", Wei Wang, LKML, 14 Feb 2019
(docs/references.md §4.2, §5; docs/design.md §3.4 item 6): "xb_set/clear
the bit under the zone->lock, i.e. in rmqueue and free_one_page", "get_free_page_hints() was
designed to clear the bit, and need put_free_page_hints() to set it later after host finishes
madvise", VIRTIO_BALLOON_F_ADVANCED_BALLOON with "report_vq and ack_vq to wait for the host's
ack". The xbitmap itself follows v21 of his virtio-balloon series (Matthew Wilcox's xbitmap).

- The guest keeps an xbitmap of free pages, set and cleared under zone->lock wherever the buddy
  adds or removes a free block (rmqueue, __free_one_page): the per-guest tracking of
  :mod:`fphlib.guest.xbitmap` (v21 layout), per block head (``track="head"``, the default)
  or per page (``track="page"``).
- Every ``interval_s`` (and while a pass finds more) the guest calls
  ``get_free_page_hints(max=capacity)``: it reads up to ``capacity`` set bits of free blocks
  of order >= ``hint_order`` and clears them, sends the blocks on report_vq (one kick), the
  host discards them (through the discard queue, ``discard_latency`` after the kick) and acks
  on ack_vq; then ``put_free_page_hints()`` sets the bits back for the blocks still free.
- ``isolate=True`` (default, safe): the hinted blocks are isolated from the buddy until the
  ack (``__isolate_free_page``; the tracking hooks clear their bits) and put back to the tail
  after it (the hooks set them again): free memory the guest cannot use while in flight.
- ``isolate=False`` (read-only hints, David Hildenbrand's objection in the seed thread): the
  blocks stay allocatable. A block allocated and written between the hint and the host's
  discard loses its data: every such page is a lost write (counted by the host discard, never
  hidden); the guest's next touch of it refaults a zero page (``PG_DISCARDED``).

Why ``track="head"`` is the default: hints are whole free blocks at ``hint_order``
granularity, and a head bit gives the block at once (its order is the buddy's), where per-page
bits need a walk to the block's head; the tracking work and memory are the same for both in
``benchmarks/tracking_overhead.py`` and ``xbitmap_memory.py`` (a leaf exists iff its 4 MiB
holds free memory). Per-page tracking is Wei's literal "bit per free page", as a parameter.

Costs: the xbitmap's work under zone->lock on every alloc/free (its operations times the
``xbitmap_op`` cost, added to ``zone_lock_hold_s``; leaf kmallocs counted in
``guest_summary.xbitmap_kmallocs``), the scan (``xbitmap_op`` per find), one exit per report,
the host's discards.

Simplifications: one report in flight per guest; the guest's worker runs at its own instants
without scheduling delay; a hinted block is a whole free block (never a part of one), so with
per-page bits a partly set block is skipped until its bits are all set again; put_free_page_hints
runs at the ack, not batched.
"""

import numpy as np

from .._jit import borrowed, jit
from ..costs import C_ACK_IRQ, C_XBITMAP_OP
from ..guest.buddy import NR_ORDERS, track_block_add, track_block_del
from ..guest.xbitmap import xb_find_set
from ..host.discard_queue import discard_due
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GF, GI, PI, PrivateState, private_columns
from ..state.params import Param
from ..units import PAGE_SIZE
from .virtio_report import isolate_into, putback_blocks, report_blocks

NAME = "xbitmap_hints"
PARAMS = {
    "isolate": Param("bool", True, help="isolate hinted blocks until the host's ack (safe); "
                     "False: read-only hints that race with allocations"),
    "track": Param("choice", "head", help="xbitmap bit per free block head or per free page",
                   choices=("head", "page")),
    "capacity": Param("int", 32, 1, PAGE_SIZE, "blocks", "max of get_free_page_hints: blocks per "
                      "report [assumption: as PAGE_REPORTING_CAPACITY]"),
    "interval_s": Param("float", 2.0, 1e-3, 3600.0, "s", "how often the guest looks for "
                        "hints [assumption: as PAGE_REPORTING_DELAY]"),
}
TAKES_HINT_ORDER = True
ASKS = ("hint",)  # host policy asks it reads: hinting on/off (GI.ASK_HINT)
# [assumption] the proposal does not say how the host discards; as the balloon's QEMU
MADVISE = "dontneed"


def safe(params):
    """Isolating hints never lose a write; read-only ones can."""
    return bool(params["isolate"])


XH_PHASE, XH_CURSOR, XH_N, XH_CAP, XH_ISOLATE, XH_PAGE = private_columns(
    "PHASE CURSOR N CAP ISOLATE PAGE"
)
XH_WAKE, XH_INTERVAL = private_columns("WAKE INTERVAL")
PH_IDLE = 0  # next pass at XH_WAKE
PH_HOST = 1  # report sent; the host discards at XH_WAKE
PH_ACK = 2  # the host's ack at XH_WAKE


def _init(params, n_pages, vcpus, ints, floats):
    ints[XH_CAP] = params["capacity"]
    ints[XH_ISOLATE] = int(params["isolate"])
    ints[XH_PAGE] = int(params["track"] == "page")
    floats[XH_INTERVAL] = params["interval_s"]
    floats[XH_WAKE] = np.inf


STATE = PrivateState(
    ints=("PHASE", "CURSOR", "N", "CAP", "ISOLATE", "PAGE"),
    floats=("WAKE", "INTERVAL"),
    buffer=lambda params, n_pages, vcpus: 2 * params["capacity"],
    init=_init,
    discard_slots=lambda params: params["capacity"],
    tracking=lambda params: params["track"],
)


@jit(inline="always")
def _block_of(z, p):
    """(head, order) of the free block holding page p, or (-1, -1)."""
    for o in range(NR_ORDERS):
        h = p & ~((1 << o) - 1)
        st = z.state[h]
        if o <= st < NR_ORDERS:
            return h, np.int64(st)
    return -1, np.int64(-1)


@jit
def start(s, g, z, t, cost):
    """The first pass one interval after boot."""
    s = borrow_state(s)
    cost = borrowed(cost)
    s.mf[g, XH_WAKE] = t + s.mf[g, XH_INTERVAL]


@jit
def get_free_page_hints(s, g, z, cost):
    """Read up to ``capacity`` free blocks of order >= hint_order from the xbitmap into the
    report list and clear their bits (isolating them when ``isolate``); return how many."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    base = s.gi[g, GI.MBUF_OFF]
    hint = s.pi[PI.HINT_ORDER]
    end = s.gi[g, GI.NPAGES] - 1
    cap = s.mi[g, XH_CAP]
    page_mode = s.mi[g, XH_PAGE]
    p = s.mi[g, XH_CURSOR]
    k = 0
    finds = 0
    while k < cap and p <= end:
        # uint64 bounds, as XBitmap.find_set passes them: one specialization for all callers
        found, at = xb_find_set(z.xb_nodes, z.xb_leaves, z.xb_meta, np.uint64(p),
                                np.uint64(end))
        finds += 1
        if not found:
            p = end + 1
            break
        q = np.int64(at)
        head, order = _block_of(z, q)
        if head < 0:  # cannot happen while the bits follow the free lists
            p = q + 1
            continue
        p = head + (1 << order)
        if order < hint or (page_mode and q != head):
            continue  # too small, or a per-page block whose head bit is clear (hinted part)
        if s.mi[g, XH_ISOLATE]:
            isolate_into(s, g, z, head, order, base, k)  # the tracking hook clears its bits
        else:
            # the block's bits as the buddy's own hook clears them (per head or per page)
            track_block_del(z, np.int64(head), np.int64(order))
            s.mbuf[base + 2 * k] = head
            s.mbuf[base + 2 * k + 1] = order
        k += 1
    s.mi[g, XH_CURSOR] = p
    s.gi[g, GI.LOCK_OPS] += 1  # one zone->lock hold per call
    s.gf[g, GF.GUEST_CPU] += finds * cost[C_XBITMAP_OP]
    return k


@jit
def put_free_page_hints(s, g, z, n, cost):
    """After the ack: isolated blocks go back to the buddy (the hooks set their bits); read-only
    hints get their bits back where the block is still free and unchanged."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    base = s.gi[g, GI.MBUF_OFF]
    if s.mi[g, XH_ISOLATE]:
        putback_blocks(s, g, z, base, n, False, cost)
        return
    for i in range(n):
        head = s.mbuf[base + 2 * i]
        order = s.mbuf[base + 2 * i + 1]
        if z.state[head] != order:
            continue  # allocated, split or merged since: the hooks already tell the truth
        track_block_add(z, np.int64(head), np.int64(order))
    s.gi[g, GI.LOCK_OPS] += 1


@jit
def tick(s, g, z, t_end, cost):
    """The guest's hinting worker and its report round trips up to ``t_end``."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    while s.mf[g, XH_WAKE] <= t_end:
        now = s.mf[g, XH_WAKE]
        phase = s.mi[g, XH_PHASE]
        s.mf[g, XH_WAKE] = np.inf
        if phase == PH_HOST:
            spent = discard_due(s, g, z, now, cost)
            s.mi[g, XH_PHASE] = PH_ACK
            s.mf[g, XH_WAKE] = now + spent + cost[C_ACK_IRQ]
            continue
        if phase == PH_ACK:
            put_free_page_hints(s, g, z, s.mi[g, XH_N], cost)
            s.mi[g, XH_N] = 0
        k = 0
        if s.gi[g, GI.ASK_HINT]:
            k = get_free_page_hints(s, g, z, cost)
        if k == 0:  # the pass is over: the next one an interval later, from the start
            s.mi[g, XH_PHASE] = PH_IDLE
            s.mi[g, XH_CURSOR] = 0
            s.mf[g, XH_WAKE] = now + s.mf[g, XH_INTERVAL]
            continue
        s.mi[g, XH_N] = k
        s.mi[g, XH_PHASE] = PH_HOST
        s.mf[g, XH_WAKE] = report_blocks(s, g, z, s.gi[g, GI.MBUF_OFF], k, now, cost)
