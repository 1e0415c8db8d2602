"""Free page hint for live migration (``"free_page_hint"``): VIRTIO_BALLOON_F_FREE_PAGE_HINT.

Sources: Linux commit 86a559787e6f (v4.20, Wei Wang's series v37,
https://lkml.org/lkml/2018/8/27/29), drivers/virtio/virtio_balloon.c
(``virtio_balloon_queue_free_page_work``, ``get_free_page_and_send``,
``send_free_pages``, ``return_free_pages_to_mm``, the shrinker); QEMU 4.0
hw/virtio/virtio-balloon.c (``virtio_balloon_free_page_hint_notify``) and migration/ram.c
(``qemu_guest_free_page_hint``); docs/references.md §4; the seed thread
(docs/references.md §4.2: get_free_page_hints "should be much faster than that allocation
function, which takes around 15us to get a 4MB block" and, for live migration, can leave the
bits set).

Driven by the host (:mod:`fphlib.host.migration`, which migrates guest 0): after each
dirty-bitmap sync QEMU writes a new cmd id (>= 0x80000000) in the config space and raises a
config interrupt (``GI.FPH_CMD``, ``GI.ASK_SEQ``); before the next sync it writes STOP (0); when
the migration completes, DONE (1). The guest acks a new id with one kick and hints free blocks;
each hint clears the block from the migration bitmap (those pages are not sent in this pass;
a later write dirties them again and the next pass re-sends them).

``mode="alloc"`` (the merged driver): allocate order-10 blocks (4 MiB) one at a time with
``alloc_pages(__GFP_NORETRY | __GFP_NOWARN | __GFP_NOMEMALLOC, 10)`` (cost ``alloc_4m``,
~15 µs each, seed thread), one buffer and one kick per block, until the allocation fails; keep
them on ``free_page_list`` (``GI.BALLOON``: memory the guest cannot use) until DONE, when
``return_free_pages_to_mm`` frees them all. Under memory pressure the shrinker
(``on_alloc_fail``) gives blocks back one at a time (``SHRINK_BATCH`` = 128 pages rounds up to
one 4 MiB block).

``mode="xbitmap"`` (Wei's "first step" in the seed thread): ``get_free_page_hints()`` reads the
free blocks of order >= ``min_order`` from the per-guest xbitmap the buddy keeps current (one
bit per free block head), without clearing the bits ("as host doesn't free the backing host
pages"), one ``xbitmap_op`` per find, one kick per ``batch`` hints; nothing is allocated, so
the hint can go stale (the block is allocated and written right after): the dirty log catches
the write and the page is re-sent, never lost.

Both modes are safe: a hinted page is free when hinted (no guest data), and a later write is
dirty-logged (``fphlib.host.migration`` counts a lost write if a hinted page held data).

Simplifications: the guest's work runs at its own instants without scheduling delay and QEMU's
iothread takes the hints at once (no vq-full back-pressure, no ``free_page_hint_status``
races); the ack of a cmd id is one kick; the alloc-mode blocks skip the pcp lists (order 10);
the page poisoning feature is off; only guest 0 is migrated, so only guest 0 hints.
"""

import numpy as np

from .._jit import borrowed, jit
from ..costs import C_ALLOC_4M, C_PAGE_OP, C_VMEXIT, C_XBITMAP_OP, C_ZONE_LOCK
from ..guest.buddy import rmqueue_smallest
from ..guest.mm import free_block
from ..guest.xbitmap import xb_find_set
from ..host.migration import CMD_ID_DONE, CMD_ID_FIRST, mig_hint, mig_note_held
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GF, GI, PrivateState, private_columns
from ..state.lists import list_add, list_del
from ..state.params import Param

NAME = "free_page_hint"
PARAMS = {
    "mode": Param("choice", "alloc", help="alloc: allocate 4 MiB blocks until DONE (Linux "
                  "4.20); xbitmap: read free blocks from the xbitmap (seed proposal)",
                  choices=("alloc", "xbitmap")),
    "min_order": Param("int", 10, 0, 10, "order", "xbitmap mode: smallest free block hinted "
                       "(alloc mode always uses VIRTIO_BALLOON_HINT_BLOCK_ORDER = 10)"),
    "batch": Param("int", 1023, 1, 1 << 16, "hints", "xbitmap mode: hints per kick [assumption: "
                   "a free_page_vq of VIRTQUEUE_MAX_SIZE 1024 with one slot kept for a cmd id]"),
}
TAKES_HINT_ORDER = False
ASKS = ()  # reads no host policy ask (fphlib.host.policy refuses asking policies)
HINT_BLOCK_ORDER = 10  # VIRTIO_BALLOON_HINT_BLOCK_ORDER = MAX_ORDER - 1
HINT_BLOCK_PAGES = 1 << HINT_BLOCK_ORDER


def safe(params):
    """Both modes are safe: hinted pages are free, later writes are dirty-logged."""
    return True


FH_PHASE, FH_CMD_SEEN, FH_HEAD, FH_TAIL, FH_XB, FH_CURSOR, FH_MIN_ORDER, FH_BATCH = (
    private_columns("PHASE CMD_SEEN HEAD TAIL XB CURSOR MIN_ORDER BATCH"))
(FH_WAKE,) = private_columns("WAKE")
PH_IDLE = 0  # no round (never asked, STOP or DONE)
PH_HINT = 1  # a round is on: the next block at FH_WAKE


def _init(params, n_pages, vcpus, ints, floats):
    ints[FH_HEAD] = ints[FH_TAIL] = -1
    ints[FH_XB] = int(params["mode"] == "xbitmap")
    ints[FH_MIN_ORDER] = params["min_order"]
    ints[FH_BATCH] = params["batch"]
    floats[FH_WAKE] = np.inf


STATE = PrivateState(
    ints=("PHASE", "CMD_SEEN", "HEAD", "TAIL", "XB", "CURSOR", "MIN_ORDER", "BATCH"),
    floats=("WAKE",),
    init=_init,
    tracking=lambda params: "head" if params["mode"] == "xbitmap" else None,
)


@jit
def _kick(s, g, cost):
    """One buffer (or batch) added to free_page_vq and a kick: one exit."""
    s = borrow_state(s)
    cost = borrowed(cost)
    s.gi[g, GI.VMEXITS] += 1
    s.gi[g, GI.REPORTS] += 1
    s.gi[g, GI.EVENTS] += 1
    s.gf[g, GF.GUEST_CPU] += cost[C_VMEXIT]
    return cost[C_VMEXIT]


@jit
def _return_block(s, g, z, t):
    """Free the most recently allocated hint block; return its pages (0 if none)."""
    s = borrow_state(s)
    z = borrow_zone(z)
    pfn = s.mi[g, FH_HEAD]
    if pfn < 0:
        return 0
    list_del(z.next, z.prev, s.mi, (g, FH_HEAD), s.mi, (g, FH_TAIL), pfn)
    free_block(s, g, z, pfn, HINT_BLOCK_ORDER, 0, t)
    s.gi[g, GI.BALLOON] -= HINT_BLOCK_PAGES
    return HINT_BLOCK_PAGES


@jit
def _command(s, g, z, cost):
    """``virtballoon_changed``: act on a new free_page_hint_cmd_id."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    cmd = s.gi[g, GI.FPH_CMD]
    if cmd == s.mi[g, FH_CMD_SEEN]:
        return
    s.mi[g, FH_CMD_SEEN] = cmd
    now = s.gf[g, GF.ASK_T]
    if cmd >= CMD_ID_FIRST:  # a new round: ack the id (one kick), then hint from the start
        s.mi[g, FH_PHASE] = PH_HINT
        s.mi[g, FH_CURSOR] = 0
        s.mf[g, FH_WAKE] = now + _kick(s, g, cost)
        return
    s.mi[g, FH_PHASE] = PH_IDLE
    s.mf[g, FH_WAKE] = np.inf
    if cmd == CMD_ID_DONE:  # return_free_pages_to_mm: every block back to the buddy
        n = 0
        while _return_block(s, g, z, now):
            n += 1
        s.gi[g, GI.LOCK_OPS] += n
        s.gf[g, GF.GUEST_CPU] += n * cost[C_ZONE_LOCK]
        mig_note_held(s, g, now)
    # CMD_ID_STOP: stop hinting, keep the blocks


@jit
def _alloc_hints(s, g, z, t_end, cost):
    """alloc mode: one order-10 block per step while the round is on."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    while s.mi[g, FH_PHASE] == PH_HINT and s.mf[g, FH_WAKE] <= t_end:
        now = s.mf[g, FH_WAKE]
        pfn = rmqueue_smallest(z, HINT_BLOCK_ORDER)  # __GFP_NORETRY: no drain, no reclaim
        s.gi[g, GI.LOCK_OPS] += 1
        s.gf[g, GF.GUEST_CPU] += cost[C_ALLOC_4M]
        if pfn < 0:  # no more 4 MiB blocks: the guest sends STOP and waits for a new id
            _kick(s, g, cost)
            s.mi[g, FH_PHASE] = PH_IDLE
            s.mf[g, FH_WAKE] = np.inf
            break
        # virtio_balloon's free_page_list: list_add
        list_add(z.next, z.prev, s.mi, (g, FH_HEAD), s.mi, (g, FH_TAIL), pfn)
        s.gi[g, GI.BALLOON] += HINT_BLOCK_PAGES
        mig_note_held(s, g, now)
        mig_hint(s, g, pfn, HINT_BLOCK_PAGES)
        s.mf[g, FH_WAKE] = now + cost[C_ALLOC_4M] + _kick(s, g, cost)


@jit
def _xbitmap_hints(s, g, z, t_end, cost):
    """xbitmap mode: ``get_free_page_hints`` of up to ``batch`` blocks per step, bits kept."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    end = s.gi[g, GI.NPAGES] - 1
    min_order = s.mi[g, FH_MIN_ORDER]
    while s.mi[g, FH_PHASE] == PH_HINT and s.mf[g, FH_WAKE] <= t_end:
        now = s.mf[g, FH_WAKE]
        p = s.mi[g, FH_CURSOR]
        k = 0
        finds = 0
        while k < s.mi[g, FH_BATCH] and p <= end:
            # uint64 bounds, as XBitmap.find_set passes them: one specialization for all callers
            found, at = xb_find_set(z.xb_nodes, z.xb_leaves, z.xb_meta, np.uint64(p),
                                    np.uint64(end))
            finds += 1
            if not found:
                p = end + 1
                break
            head = np.int64(at)
            order = np.int64(z.state[head])
            if order < 0 or order > HINT_BLOCK_ORDER:  # cannot happen: bits follow free heads
                p = head + 1
                continue
            p = head + (1 << order)
            if order < min_order:
                continue
            mig_hint(s, g, head, 1 << order)
            k += 1
        s.mi[g, FH_CURSOR] = p
        s.gi[g, GI.LOCK_OPS] += 1  # one zone->lock hold per call
        spent = finds * cost[C_XBITMAP_OP]
        s.gf[g, GF.GUEST_CPU] += spent
        if k:
            spent += _kick(s, g, cost)
        if p > end:  # the whole bitmap read: STOP
            if not k:
                spent += _kick(s, g, cost)
            s.mi[g, FH_PHASE] = PH_IDLE
            s.mf[g, FH_WAKE] = np.inf
            break
        s.mf[g, FH_WAKE] = now + spent


@jit
def tick(s, g, z, t_end, cost):
    """The guest's free page hint work up to ``t_end``."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    _command(s, g, z, cost)
    if s.mi[g, FH_XB]:
        _xbitmap_hints(s, g, z, t_end, cost)
    else:
        _alloc_hints(s, g, z, t_end, cost)


@jit
def on_alloc_fail(s, g, z, t, cost):
    """The shrinker (``virtio_balloon_shrinker_scan``): give one hint block back."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    n = _return_block(s, g, z, t)
    if n:
        s.gi[g, GI.LOCK_OPS] += 1
        s.gi[g, GI.OOM_DEFLATES] += 1  # guest_summary.oom_deflates: shrinker returns
        mig_note_held(s, g, t)
    return n, cost[C_ZONE_LOCK] + cost[C_PAGE_OP]
