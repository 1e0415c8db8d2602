"""Classic virtio balloon (``"balloon"``): drivers/virtio/virtio_balloon.c (v5.10) and
QEMU hw/virtio/virtio-balloon.c (reference/kernel-mechanisms.md §7.1).

- The host sets a target (``num_pages``) through a config change: here the balloon size that
  leaves the guest ``balloon_target`` bytes, re-sent every ``balloon_interval_s`` (a host
  policy loop such as oVirt MOM's 10 s; host policies proper come later). Each config change
  queues ``update_balloon_size_func``.
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

Simplifications: balloon pages are not migrated by compaction (balloon_compaction); stats
vq and free page hinting are separate mechanisms; the host's MADV_WILLNEED on deflate is free.
"""

import numpy as np

from .._jit import jit
from ..engine.borrow import borrow_state, borrow_zone
from ..engine.layout import (
    BALLOON_PFNS,
    GF_BAL_POLICY,
    GF_BAL_WAKE,
    GF_GUEST_CPU,
    GF_HOST_CPU,
    GI_BAL_HEAD,
    GI_BAL_MSG_N,
    GI_BAL_PHASE,
    GI_BAL_WANT,
    GI_BALLOON,
    GI_BALLOON_MSGS,
    GI_EVENTS,
    GI_NPAGES,
    GI_OOM_DEFLATES,
    GI_REPORTED_PAGES,
    GI_VMEXITS,
    PF_BAL_INTERVAL,
)
from ..guest.pcp import pcp_alloc, pcp_free
from ..host.backing import discard
from ..host.costs import C_ACK_IRQ, C_KICK_WAKEUP, C_PAGE_OP, C_VMEXIT

B_IDLE = 0
B_WORK = 1  # update_balloon_size_func queued for GF_BAL_WAKE
B_WAIT_INFLATE = 2  # inflate message in flight
B_WAIT_DEFLATE = 3  # deflate message in flight; pages freed at the ack
OOM_NR_PAGES = 256  # VIRTIO_BALLOON_OOM_NR_PAGES
OUT_OF_PUFF_S = 0.2  # msleep(200) in fill_balloon

INF = np.inf


@jit
def _message(s, g, cost):
    """One inflate/deflate-vq message: kick, host work, ack. Return the round-trip time."""
    s = borrow_state(s)
    s.gi[g, GI_VMEXITS] += 1
    s.gi[g, GI_BALLOON_MSGS] += 1
    s.gi[g, GI_EVENTS] += 1
    s.gf[g, GF_GUEST_CPU] += cost[C_VMEXIT] + cost[C_ACK_IRQ]
    s.gf[g, GF_HOST_CPU] += cost[C_KICK_WAKEUP]
    return cost[C_VMEXIT] + cost[C_KICK_WAKEUP] + cost[C_ACK_IRQ]


@jit
def balloon_policy(s, g, t_end, balloon_pages_wanted):
    """Host side: (re)send the target at every policy instant up to ``t_end``."""
    s = borrow_state(s)
    while s.gf[g, GF_BAL_POLICY] <= t_end:
        now = s.gf[g, GF_BAL_POLICY]
        s.gf[g, GF_BAL_POLICY] = now + s.pf[PF_BAL_INTERVAL]
        want = balloon_pages_wanted
        if want > s.gi[g, GI_NPAGES]:
            want = s.gi[g, GI_NPAGES]
        s.gi[g, GI_BAL_WANT] = want
        if s.gi[g, GI_BAL_PHASE] == B_IDLE and want != s.gi[g, GI_BALLOON]:
            s.gi[g, GI_BAL_PHASE] = B_WORK
            s.gf[g, GF_BAL_WAKE] = now


@jit
def _deflate_pages(s, g, z, n):
    """Dequeue up to n balloon pages into the message buffer; return how many."""
    s = borrow_state(s)
    z = borrow_zone(z)
    k = 0
    while k < n and s.gi[g, GI_BAL_HEAD] >= 0:
        pfn = s.gi[g, GI_BAL_HEAD]
        s.gi[g, GI_BAL_HEAD] = z.next[pfn]
        s.msg[g, k] = pfn
        k += 1
    return k


@jit
def _release(s, g, z, k, t, cost):
    """``release_pages_balloon``: give k message pages back to the guest."""
    s = borrow_state(s)
    z = borrow_zone(z)
    for i in range(k):
        pcp_free(s, g, z, 0, s.msg[g, i], t)
    s.gi[g, GI_BALLOON] -= k
    s.gf[g, GF_GUEST_CPU] += k * cost[C_PAGE_OP]


@jit
def balloon_step(s, g, z, t_end, cost):
    """Run the balloon driver's work item up to ``t_end``."""
    s = borrow_state(s)
    z = borrow_zone(z)
    while s.gf[g, GF_BAL_WAKE] <= t_end:
        now = s.gf[g, GF_BAL_WAKE]
        phase = s.gi[g, GI_BAL_PHASE]
        s.gf[g, GF_BAL_WAKE] = INF
        if phase == B_WAIT_DEFLATE:
            _release(s, g, z, s.gi[g, GI_BAL_MSG_N], now, cost)
            s.gi[g, GI_BAL_MSG_N] = 0
        elif phase != B_WORK and phase != B_WAIT_INFLATE:
            continue
        # update_balloon_size_func: towards_target
        diff = s.gi[g, GI_BAL_WANT] - s.gi[g, GI_BALLOON]
        if diff == 0:
            s.gi[g, GI_BAL_PHASE] = B_IDLE
            continue
        if diff > 0:
            n = min(diff, BALLOON_PFNS)
            k = 0
            for _ in range(n):
                pfn = pcp_alloc(s, g, z, 0)
                if pfn < 0:
                    break
                z.next[pfn] = s.gi[g, GI_BAL_HEAD]  # balloon_page_enqueue: list head
                s.gi[g, GI_BAL_HEAD] = pfn
                s.msg[g, k] = pfn
                k += 1
            s.gi[g, GI_BALLOON] += k
            s.gf[g, GF_GUEST_CPU] += k * cost[C_PAGE_OP]
            if k == 0:
                s.gi[g, GI_BAL_PHASE] = B_WORK
                s.gf[g, GF_BAL_WAKE] = now + OUT_OF_PUFF_S
                continue
            host = 0.0
            s.gi[g, GI_REPORTED_PAGES] += k
            for i in range(k):  # QEMU: one discard per 4 KiB page
                host += discard(s, g, z, s.msg[g, i], 1, cost)
            rtt = _message(s, g, cost) + host
            s.gi[g, GI_BAL_PHASE] = B_WAIT_INFLATE
            # a short allocation sleeps 200 ms before the work requeues
            s.gf[g, GF_BAL_WAKE] = now + rtt + (OUT_OF_PUFF_S if k < n else 0.0)
        else:
            k = _deflate_pages(s, g, z, min(-diff, BALLOON_PFNS))
            s.gi[g, GI_BAL_MSG_N] = k
            s.gi[g, GI_BAL_PHASE] = B_WAIT_DEFLATE
            s.gf[g, GF_BAL_WAKE] = now + _message(s, g, cost)


@jit
def balloon_deflate_oom(s, g, z, t, cost):
    """``virtballoon_oom_notify``: deflate 256 pages now; return (pages freed, stall)."""
    s = borrow_state(s)
    z = borrow_zone(z)
    if s.gi[g, GI_BAL_HEAD] < 0:
        return 0, 0.0
    # the message buffer may hold an in-flight deflate: free those first, they are ours
    if s.gi[g, GI_BAL_PHASE] == B_WAIT_DEFLATE and s.gi[g, GI_BAL_MSG_N] > 0:
        _release(s, g, z, s.gi[g, GI_BAL_MSG_N], t, cost)
        s.gi[g, GI_BAL_MSG_N] = 0
        s.gi[g, GI_BAL_PHASE] = B_WORK
    k = _deflate_pages(s, g, z, OOM_NR_PAGES)
    stall = _message(s, g, cost)
    _release(s, g, z, k, t, cost)
    s.gi[g, GI_OOM_DEFLATES] += 1
    return k, stall
