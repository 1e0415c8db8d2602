"""Classic virtio balloon (``"balloon"``): drivers/virtio/virtio_balloon.c (v5.10) and
QEMU hw/virtio/virtio-balloon.c (docs/references.md §7.1).

- The host policy (``fphlib.host.policy``; ``"static"`` keeps today's fixed
  ``balloon_target``) asks for a balloon size (``GI.ASK_PAGES``); each ask is a config
  change (``GI.ASK_SEQ`` moves on) that queues ``update_balloon_size_func`` at the ask's
  instant.
- Inflate (``fill_balloon``): allocate up to VIRTIO_BALLOON_ARRAY_PFNS_MAX = 256 order-0 pages
  (``__GFP_NORETRY``: a failure does not trigger the OOM path), enqueue them, send their PFNs
  in one inflate-vq message (one kick) and wait for the ack; QEMU discards each 4 KiB page
  with its own ``ram_block_discard_range`` (splitting host THPs). On an allocation failure the
  driver sleeps 200 ms ("Out of puff") and the work requeues itself.
- Deflate (``leak_balloon``): dequeue up to 256 pages (LIFO), tell the host (MUST_TELL_HOST),
  wait for the ack, then free the pages to the guest (``put_page`` → pcp).
- DEFLATE_ON_OOM (``virtballoon_oom_notify``): when an allocation fails, deflate
  VIRTIO_BALLOON_OOM_NR_PAGES = 256 pages synchronously and let the allocation retry; the
  balloon is re-inflated only at the next config change.

Parameters (``mechanism_params``): ``deflate_on_oom`` (VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
default True; older name: the SimConfig field ``deflate_on_oom``).

Simplifications: balloon pages are not migrated by compaction (balloon_compaction); stats
vq and free page hinting are separate mechanisms; the host's MADV_WILLNEED on deflate is free.
"""

import numpy as np

from .._jit import borrowed, jit
from ..costs import C_ACK_IRQ, C_KICK_WAKEUP, C_PAGE_OP, C_VMEXIT
from ..guest.mm import free_block
from ..guest.pcp import pcp_alloc
from ..host.discard_queue import discard_due, discard_later
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GF, GI, PrivateState, private_columns
from ..state.lists import list_add, list_del
from ..state.params import Param

NAME = "balloon"
PARAMS = {
    "deflate_on_oom": Param("bool", True, unit="", help="VIRTIO_BALLOON_F_DEFLATE_ON_OOM: "
                            "deflate 256 pages when an allocation fails",
                            field="deflate_on_oom"),
}
TAKES_HINT_ORDER = False
ASKS = ("pages",)  # host policy asks it reads: pages wanted back (GI.ASK_PAGES)
# QEMU balloon_inflate_page -> ram_block_discard_range: MADV_DONTNEED for anonymous memory
# (docs/references.md §7)
MADVISE = "dontneed"
BALLOON_PFNS = 256  # VIRTIO_BALLOON_ARRAY_PFNS_MAX (include/uapi/linux/virtio_balloon.h)

# private columns; the message's PFNs are the guest's mbuf slice
B_HEAD, B_TAIL, B_PHASE, B_WANT, B_MSG_N, B_ASK_SEEN, B_DEFLATE_OOM, B_SHORT = private_columns(
    "HEAD TAIL PHASE WANT MSG_N ASK_SEEN DEFLATE_OOM SHORT"
)
(B_WAKE,) = private_columns("WAKE")


def _init(params, n_pages, vcpus, ints, floats):
    ints[B_HEAD] = ints[B_TAIL] = -1
    ints[B_DEFLATE_OOM] = int(params["deflate_on_oom"])
    floats[B_WAKE] = np.inf


STATE = PrivateState(
    ints=("HEAD", "TAIL", "PHASE", "WANT", "MSG_N", "ASK_SEEN", "DEFLATE_OOM", "SHORT"),
    floats=("WAKE",),
    buffer=lambda params, n_pages, vcpus: BALLOON_PFNS,
    init=_init,
    discard_slots=lambda params: BALLOON_PFNS,
)

B_IDLE = 0
B_WORK = 1  # update_balloon_size_func queued for B_WAKE
B_WAIT_INFLATE = 2  # inflate message in flight
B_WAIT_DEFLATE = 3  # deflate message in flight; pages freed at the ack
B_HOST = 4  # inflate message sent; the host discards its pages at B_WAKE
OOM_NR_PAGES = 256  # VIRTIO_BALLOON_OOM_NR_PAGES
OUT_OF_PUFF_S = 0.2  # msleep(200) in fill_balloon

INF = np.inf


@jit
def _message(s, g, cost):
    """One inflate/deflate-vq message: kick, host work, ack. Return the round-trip time."""
    s = borrow_state(s)
    cost = borrowed(cost)
    s.gi[g, GI.VMEXITS] += 1
    s.gi[g, GI.BALLOON_MSGS] += 1
    s.gi[g, GI.EVENTS] += 1
    s.gf[g, GF.GUEST_CPU] += cost[C_VMEXIT] + cost[C_ACK_IRQ]
    s.gf[g, GF.HOST_CPU] += cost[C_KICK_WAKEUP]
    return cost[C_VMEXIT] + cost[C_KICK_WAKEUP] + cost[C_ACK_IRQ]


@jit
def balloon_config_changed(s, g):
    """``virtballoon_changed`` on a new ask: queue the work at the ask's instant."""
    s = borrow_state(s)
    if s.mi[g, B_ASK_SEEN] == s.gi[g, GI.ASK_SEQ]:
        return
    s.mi[g, B_ASK_SEEN] = s.gi[g, GI.ASK_SEQ]
    want = s.gi[g, GI.ASK_PAGES]
    if want > s.gi[g, GI.NPAGES]:
        want = s.gi[g, GI.NPAGES]
    s.mi[g, B_WANT] = want
    if s.mi[g, B_PHASE] == B_IDLE and want != s.gi[g, GI.BALLOON]:
        s.mi[g, B_PHASE] = B_WORK
        s.mf[g, B_WAKE] = s.gf[g, GF.ASK_T]


@jit
def _deflate_pages(s, g, z, n):
    """Dequeue up to n balloon pages into the message buffer; return how many."""
    s = borrow_state(s)
    z = borrow_zone(z)
    off = s.gi[g, GI.MBUF_OFF]
    k = 0
    while k < n and s.mi[g, B_HEAD] >= 0:
        pfn = s.mi[g, B_HEAD]  # balloon_page_dequeue: the first on the list
        list_del(z.next, z.prev, s.mi, (g, B_HEAD), s.mi, (g, B_TAIL), pfn)
        s.mbuf[off + k] = pfn
        k += 1
    return k


@jit
def _release(s, g, z, k, t, cost):
    """``release_pages_balloon``: give k message pages back to the guest."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    off = s.gi[g, GI.MBUF_OFF]
    for i in range(k):
        free_block(s, g, z, s.mbuf[off + i], 0, 0, t)  # put_page: a guest free
    s.gi[g, GI.BALLOON] -= k
    s.gf[g, GF.GUEST_CPU] += k * cost[C_PAGE_OP]


@jit
def balloon_step(s, g, z, t_end, cost):
    """Run the balloon driver's work item up to ``t_end``."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    balloon_config_changed(s, g)
    off = s.gi[g, GI.MBUF_OFF]
    while s.mf[g, B_WAKE] <= t_end:
        now = s.mf[g, B_WAKE]
        phase = s.mi[g, B_PHASE]
        s.mf[g, B_WAKE] = INF
        if phase == B_HOST:
            # the host discards the message's pages, then acks; a short allocation sleeps
            # 200 ms before the work requeues
            spent = discard_due(s, g, z, now, cost)
            s.mi[g, B_PHASE] = B_WAIT_INFLATE
            puff = OUT_OF_PUFF_S if s.mi[g, B_SHORT] else 0.0
            s.mf[g, B_WAKE] = now + spent + cost[C_ACK_IRQ] + puff
            continue
        if phase == B_WAIT_DEFLATE:
            _release(s, g, z, s.mi[g, B_MSG_N], now, cost)
            s.mi[g, B_MSG_N] = 0
        elif phase != B_WORK and phase != B_WAIT_INFLATE:
            continue
        # update_balloon_size_func: towards_target
        diff = s.mi[g, B_WANT] - s.gi[g, GI.BALLOON]
        if diff == 0:
            s.mi[g, B_PHASE] = B_IDLE
            continue
        if diff > 0:
            n = min(diff, BALLOON_PFNS)
            k = 0
            for _ in range(n):
                pfn = pcp_alloc(s, g, z, 0)
                if pfn < 0:
                    break
                # balloon_page_enqueue: list_add to b_dev_info->pages
                list_add(z.next, z.prev, s.mi, (g, B_HEAD), s.mi, (g, B_TAIL), pfn)
                s.mbuf[off + k] = pfn
                k += 1
            s.gi[g, GI.BALLOON] += k
            s.gf[g, GF.GUEST_CPU] += k * cost[C_PAGE_OP]
            if k == 0:
                s.mi[g, B_PHASE] = B_WORK
                s.mf[g, B_WAKE] = now + OUT_OF_PUFF_S
                continue
            s.gi[g, GI.REPORTED_PAGES] += k
            _message(s, g, cost)
            due = now
            for i in range(k):  # QEMU: one discard per 4 KiB page
                due = discard_later(s, g, z, s.mbuf[off + i], 1, now, cost)
            s.mi[g, B_SHORT] = k < n
            s.mi[g, B_PHASE] = B_HOST
            s.mf[g, B_WAKE] = due
        else:
            k = _deflate_pages(s, g, z, min(-diff, BALLOON_PFNS))
            s.mi[g, B_MSG_N] = k
            s.mi[g, B_PHASE] = B_WAIT_DEFLATE
            s.mf[g, B_WAKE] = now + _message(s, g, cost)


@jit
def balloon_deflate_oom(s, g, z, t, cost):
    """``virtballoon_oom_notify``: deflate 256 pages now; return (pages freed, stall)."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    if not s.mi[g, B_DEFLATE_OOM] or s.mi[g, B_HEAD] < 0:
        return 0, 0.0
    # the message buffer may hold an in-flight deflate: free those first, they are ours
    if s.mi[g, B_PHASE] == B_WAIT_DEFLATE and s.mi[g, B_MSG_N] > 0:
        _release(s, g, z, s.mi[g, B_MSG_N], t, cost)
        s.mi[g, B_MSG_N] = 0
        s.mi[g, B_PHASE] = B_WORK
    # an inflate still waiting for the host holds balloon_lock: the notifier waits for it
    stall = discard_due(s, g, z, INF, cost)
    k = _deflate_pages(s, g, z, OOM_NR_PAGES)
    stall += _message(s, g, cost)
    _release(s, g, z, k, t, cost)
    s.gi[g, GI.OOM_DEFLATES] += 1
    return k, stall


# ------------------------------------------------------------------ the mechanism's hooks

tick = balloon_step
on_alloc_fail = balloon_deflate_oom
