"""Nitesh Narayan Lal's guest free page hinting, RFC v8 (``"hinting_v8"``, 4 Feb 2019).

Source: https://lkml.org/lkml/2019/2/4/993 (virt/kvm/page_hinting.c of the series) and
docs/references.md §2. Wei Wang's reply (https://lkml.org/lkml/2019/2/13/188)
asks when the isolated pages go back to the buddy: v8 did not say.

- Every free is recorded in the freeing vCPU's array ``kvm_pt[MAX_FGPT_ENTRIES = 1000]`` of
  {pfn, order} (``arch_free_page``, order 0 and up).
- When the array is full it is compacted to the entries whose page is still free in the
  buddy (PageBuddy with order >= the entry's). When it is full again, the vCPU's kthread
  ("hinting/%u") is woken: under zone->lock it isolates (``__isolate_free_page``) every entry
  still free, at its current buddy order, copies it to ``hypervisor_pagelist[1000]``, empties
  ``kvm_pt``, and reports the list through virtio (one kick; the host discards each block).
- The pages return to the buddy (``__putback_isolated_page``, to the tail) when the host
  replies: parameter ``return_pages="after_ack"`` (default). Why this default: v9, the next
  revision by the same author, states that pages go back only after the host's reply, and
  returning them earlier lets the guest reuse a page before the host's discard lands (a lost
  write). ``"at_send"`` models the other reading of v8 and is unsafe (its lost writes are
  counted, never hidden).

Costs: one zone->lock hold per isolation and per putback (``zone_lock_hold_s``), one exit per
report (``vmexits``), ``page_op`` of guest CPU per entry the compaction or the kthread
examines, and the host's discards (through :mod:`fphlib.host.discard_queue`).

Simplifications:
- Entries are recorded after ``__free_one_page`` merged the block (the engine's ``on_free``
  hook, merged head and order) rather than in ``arch_free_page`` before it; a page freed to
  a pcp list is recorded when it spills to the buddy (v8 would record it at the free and drop
  it at the compaction check as not PageBuddy).
- The freeing vCPU is not known at the hook: a block goes to the array of vCPU
  (pfn / 1024) mod vcpus, so that the merges of one 4 MiB block (the hook sees the merged
  head once per merge level) land in one array and are isolated once per kthread run.
- The kthreads share the one virtqueue, so one report is in flight per guest; a vCPU whose
  array is full while its kthread waits drops further frees (counted as stale hints).
- A kthread runs at the next instant of the mechanism (no scheduling delay).
"""

import numpy as np

from .._jit import jit
from ..costs import C_ACK_IRQ, C_PAGE_OP, C_ZONE_LOCK
from ..guest.buddy import NR_ORDERS
from ..host.discard_queue import discard_due
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GF, GI, PrivateState, private_columns
from ..state.params import Param
from .virtio_report import isolate_into, putback_blocks, report_blocks

NAME = "hinting_v8"
MAX_FGPT_ENTRIES = 1000  # kvm_pt[] and hypervisor_pagelist[] entries per vCPU
PARAMS = {
    "entries": Param("int", MAX_FGPT_ENTRIES, 16, 100_000, "entries",
                     "MAX_FGPT_ENTRIES: entries of each per-vCPU array"),
    "return_pages": Param("choice", "after_ack", help="when isolated pages go back to the "
                          "buddy: after the host's reply (safe) or at send (unsafe)",
                          choices=("after_ack", "at_send")),
}
TAKES_HINT_ORDER = False
ASKS = ("hint",)  # host policy asks it reads: hinting on/off (GI.ASK_HINT)


def safe(params):
    """No lost writes unless pages return before the host's discard."""
    return params["return_pages"] == "after_ack"


V8_PHASE, V8_NHYP, V8_AT_SEND, V8_ENTRIES, V8_VCPUS = private_columns(
    "PHASE NHYP AT_SEND ENTRIES VCPUS"
)
(V8_WAKE,) = private_columns("WAKE")
PH_IDLE = 0
PH_RUN = 1  # a kthread is woken; it runs at V8_WAKE
PH_HOST = 2  # report sent; the host discards at V8_WAKE
PH_ACK = 3  # the host's reply arrives at V8_WAKE
# per-vCPU header in mbuf: entries used, compacted once, kthread woken
H_IDX, H_COMPACTED, H_PENDING = 0, 1, 2
H_LEN = 3


def _buffer(params, n_pages, vcpus):
    n = params["entries"]
    return vcpus * (H_LEN + 2 * n) + 2 * n  # headers, kvm_pt per vCPU, hypervisor list


def _init(params, n_pages, vcpus, ints, floats):
    ints[V8_AT_SEND] = int(params["return_pages"] == "at_send")
    ints[V8_ENTRIES] = params["entries"]
    ints[V8_VCPUS] = vcpus
    floats[V8_WAKE] = np.inf


STATE = PrivateState(
    ints=("PHASE", "NHYP", "AT_SEND", "ENTRIES", "VCPUS"),
    floats=("WAKE",),
    buffer=_buffer,
    init=_init,
    discard_slots=lambda params: params["entries"],
)


@jit(inline="always")
def _hdr(s, g, c):
    return s.gi[g, GI.MBUF_OFF] + c * H_LEN


@jit(inline="always")
def _kvm_pt(s, g, c):
    n = s.mi[g, V8_ENTRIES]
    return s.gi[g, GI.MBUF_OFF] + s.mi[g, V8_VCPUS] * H_LEN + c * 2 * n


@jit(inline="always")
def _hyp(s, g):
    n = s.mi[g, V8_ENTRIES]
    return s.gi[g, GI.MBUF_OFF] + s.mi[g, V8_VCPUS] * (H_LEN + 2 * n)


@jit(inline="always")
def _still_free(z, pfn, order):
    """PageBuddy with a buddy order >= ``order``: ``pfn`` is still a free head."""
    st = z.state[pfn]
    return order <= st < NR_ORDERS


@jit
def _compact(s, g, z, c, cost):
    """Keep the entries of vCPU c's array whose page is still free; return how many."""
    s = borrow_state(s)
    z = borrow_zone(z)
    h = _hdr(s, g, c)
    a = _kvm_pt(s, g, c)
    n = s.mbuf[h + H_IDX]
    k = 0
    for i in range(n):
        pfn = s.mbuf[a + 2 * i]
        order = s.mbuf[a + 2 * i + 1]
        if _still_free(z, pfn, order):
            s.mbuf[a + 2 * k] = pfn
            s.mbuf[a + 2 * k + 1] = order
            k += 1
    s.mbuf[h + H_IDX] = k
    s.gf[g, GF.GUEST_CPU] += n * cost[C_PAGE_OP]
    return k


@jit
def on_free(s, g, z, pfn, order, t, cost):
    """``arch_free_page``: record {pfn, order} in the next vCPU's array."""
    s = borrow_state(s)
    z = borrow_zone(z)
    c = (pfn >> (NR_ORDERS - 1)) % s.mi[g, V8_VCPUS]
    h = _hdr(s, g, c)
    if s.mbuf[h + H_PENDING]:
        s.gi[g, GI.STALE_HINTS] += 1  # full, waiting for the kthread: the free is not seen
        return
    a = _kvm_pt(s, g, c)
    i = s.mbuf[h + H_IDX]
    s.mbuf[a + 2 * i] = pfn
    s.mbuf[a + 2 * i + 1] = order
    i += 1
    s.mbuf[h + H_IDX] = i
    if i < s.mi[g, V8_ENTRIES]:
        return
    if not s.mbuf[h + H_COMPACTED]:
        s.mbuf[h + H_COMPACTED] = 1
        if _compact(s, g, z, c, cost) < s.mi[g, V8_ENTRIES]:
            return
    s.mbuf[h + H_PENDING] = 1  # full again: wake the kthread
    if s.mi[g, V8_PHASE] == PH_IDLE:
        s.mi[g, V8_PHASE] = PH_RUN
        s.mf[g, V8_WAKE] = t


def free_hook_order(params, hint_order):
    """Every free, order 0 and up."""
    return 0


@jit
def _putback(s, g, z, cost):
    putback_blocks(s, g, z, _hyp(s, g), s.mi[g, V8_NHYP], False, cost)
    s.mi[g, V8_NHYP] = 0


@jit
def _kthread(s, g, z, c, now, cost):
    """vCPU c's kthread: isolate what is still free, report it; return the due time or -1."""
    s = borrow_state(s)
    z = borrow_zone(z)
    h = _hdr(s, g, c)
    a = _kvm_pt(s, g, c)
    b = _hyp(s, g)
    n = s.mbuf[h + H_IDX]
    k = 0
    for i in range(n):
        pfn = s.mbuf[a + 2 * i]
        if _still_free(z, pfn, s.mbuf[a + 2 * i + 1]) and s.gi[g, GI.ASK_HINT]:
            isolate_into(s, g, z, pfn, z.state[pfn], b, k)
            k += 1
    s.mbuf[h + H_IDX] = 0
    s.mbuf[h + H_COMPACTED] = 0
    s.mbuf[h + H_PENDING] = 0
    s.mi[g, V8_NHYP] = k
    s.gi[g, GI.LOCK_OPS] += k
    s.gf[g, GF.GUEST_CPU] += k * cost[C_ZONE_LOCK] + n * cost[C_PAGE_OP]
    if k == 0:
        return -1.0
    due = report_blocks(s, g, z, b, k, now, cost)
    if s.mi[g, V8_AT_SEND]:
        _putback(s, g, z, cost)
    return due


@jit
def tick(s, g, z, t_end, cost):
    """Run the kthreads and the report round trips of guest g up to ``t_end``."""
    s = borrow_state(s)
    z = borrow_zone(z)
    while s.mf[g, V8_WAKE] <= t_end:
        now = s.mf[g, V8_WAKE]
        phase = s.mi[g, V8_PHASE]
        s.mf[g, V8_WAKE] = np.inf
        if phase == PH_RUN:
            s.mi[g, V8_PHASE] = PH_IDLE
            for c in range(s.mi[g, V8_VCPUS]):
                if s.mbuf[_hdr(s, g, c) + H_PENDING]:
                    due = _kthread(s, g, z, c, now, cost)
                    if due >= 0.0:
                        s.mi[g, V8_PHASE] = PH_HOST
                        s.mf[g, V8_WAKE] = due
                        break
        elif phase == PH_HOST:
            spent = discard_due(s, g, z, now, cost)
            s.mi[g, V8_PHASE] = PH_ACK
            s.mf[g, V8_WAKE] = now + spent + cost[C_ACK_IRQ]
        elif phase == PH_ACK:
            if s.mi[g, V8_NHYP]:
                _putback(s, g, z, cost)
            s.mi[g, V8_PHASE] = PH_RUN  # other vCPUs' kthreads may be waiting
            s.mf[g, V8_WAKE] = now
