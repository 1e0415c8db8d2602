"""Nitesh Narayan Lal's guest free page hinting, RFC v8 (``"hinting_v8"``, 4 Feb 2019), as the
series' code does it.

Source: the cover letter https://lkml.org/lkml/2019/2/4/993 and the series'
``virt/kvm/page_hinting.c`` (line numbers below are that file's); docs/references.md §2.
Everything is per vCPU: a capture array ``kvm_pt[MAX_FGPT_ENTRIES = 1000]`` of {pfn, order},
a kthread ``hinting/%u`` and its ``hypervisor_pagelist``.

- **Capture** (``guest_free_page``, L293-328, called from ``arch_free_page`` in
  ``free_pages_prepare``): every free is recorded in the freeing vCPU's array as {pfn, order as
  freed} before the page reaches the pcp list or the buddy (order 0 for the pages of a process
  exit), while the ``guest_page_hinting_key`` static key is on (the host policy's hint ask).
  While the array is full a free is not recorded (counted in ``stale_hints``).
- **Array full** (L314-325): ``drain_local_pages`` (this vCPU's pcp pages to the buddy, where
  they merge), then ``scan_array`` (L244-271): each entry whose page is not itself a free head
  but lies inside a free buddy block (``get_buddy_page``, L85-96) is replaced by that block's
  head and order, or dropped when the head is already in the array (``if_exist``); other
  entries (free heads, allocated pages) stay as they are; ``pack_array`` closes the gaps. Only
  if the array is still full (nothing was dropped) is the kthread woken.
- **kthread** (``hinting_fn``, L99-200): for each entry it walks the entry's pfn range one page
  at a time, taking and dropping zone->lock for each page: a compound page is skipped whole, an
  allocated page (refcount) is passed, a free head (PageBuddy) is isolated at its current
  buddy order (``__isolate_free_page``, which refuses below ``min_wmark + 2^order``), a page
  inside a free block has that block isolated, anything else is passed. Any order is isolated,
  down to 0. Then ``hyperlist_ready`` (L66-83): one report of the whole list (one kick), and
  every block goes back to the buddy with ``free_one_page`` (not to the tail, not through
  ``arch_free_page``: they are not captured again); the array is emptied (``kvm_pt_idx = 0``).
- **When the pages go back** (parameter ``return_pages``): the report is synchronous in the
  series' balloon driver (``virtqueue_kick_sync``, a busy wait until the host returns the
  buffer: the development tree of the series; v8's own balloon patch is not public in a form we
  could read), so ``hyperlist_ready`` frees the blocks after the host's madvise:
  ``"after_ack"`` (default, safe), with the kthread's vCPU spinning meanwhile (guest CPU).
  ``"at_send"`` frees them as soon as the report is queued: unsafe, its lost writes are
  counted.
- ``capture="merged"`` is an older reading of this model, **not what v8 did**: entries are
  recorded after ``__free_one_page`` merged the block (merged head and order), in the array of
  vCPU (pfn / 1024) mod vcpus, with no pcp drain.

Costs: one zone->lock hold per page the kthread visits and per block it frees back
(``zone_lock_hold_s``), one exit per report, ``page_op`` of guest CPU per entry a scan
examines ([assumption]: the scan's linear ``if_exist`` search, up to 1000 compares per entry,
is not charged apart), the spin while a synchronous report is out, and the host's discards
(:mod:`fphlib.host.discard_queue`; one discard per block, where the series' QEMU code of v9
madvises each 4 KiB page).

Simplifications:
- An empty array slot is -1, not pfn 0 (``pack_array`` treats pfn 0 as empty; guest pfn 0 is
  never free in Linux but is in this model); ``if_exist`` is answered from the heads the scan
  meets (a short list or a hash table, :func:`scan_array`) instead of the linear search, with
  the same answers.
- Every allocated block of order > 0 counts as a compound page (THP; a non-compound
  high-order allocation would be walked page by page, with the same isolations); page-cache
  pages and allocated order-0 pages have a refcount; pcp and isolated pages have none.
- ``hypervisor_pagelist`` holds at most 2 * entries blocks; v8 does not bound ``hyp_idx`` (an
  entry replaced by a large block that was split since can yield several blocks); past that
  the walk goes on without isolating.
- The kthreads share the one virtqueue, so one report is in flight per guest; a kthread runs
  at the instant it is woken (no scheduling delay); the spin is guest CPU, not a stall of the
  workload.
- Frees by the guest's reclaim (page cache, slab, swap-out) are captured on vCPU 0.
"""

import numpy as np

from .._jit import borrowed, jit
from ..costs import C_ACK_IRQ, C_PAGE_OP
from ..guest.buddy import NR_ORDERS, free_one_page, isolate_free_page, nr_free_pages
from ..guest.pcp import free_pcppages_bulk
from ..host.discard_queue import discard_due
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GF, GI, PrivateState, private_columns
from ..state.params import Param
from ..state.zone import ALLOC_BASE, NOT_HEAD, PC_CLEAN, PC_DIRTY
from .counters import count_lock_ops
from .virtio_report import report_blocks

NAME = "hinting_v8"
MAX_FGPT_ENTRIES = 1000  # include/linux/page_hinting.h: kvm_pt[] and hypervisor_pagelist[]
PARAMS = {
    "entries": Param("int", MAX_FGPT_ENTRIES, 16, 100_000, "entries",
                     "MAX_FGPT_ENTRIES: entries of each per-vCPU array"),
    "return_pages": Param("choice", "after_ack", help="when isolated pages go back to the "
                          "buddy: after the host's reply (safe) or at send (unsafe)",
                          choices=("after_ack", "at_send")),
    "capture": Param("choice", "as_freed", help="what a free records: {pfn, order as freed} "
                     "from arch_free_page (v8), or the merged block after __free_one_page "
                     "(an older reading, not v8)", choices=("as_freed", "merged")),
}
TAKES_HINT_ORDER = False
ASKS = ("hint",)  # host policy asks it reads: the guest_page_hinting_key sysctl (GI.ASK_HINT)
# the series' QEMU side (v9 patch) madvises each 4 KiB page with MADV_DONTNEED
# (docs/references.md §2)
MADVISE = "dontneed"


def safe(params):
    """No lost writes unless pages return before the host's discard."""
    return params["return_pages"] == "after_ack"


V8_PHASE, V8_NHYP, V8_AT_SEND, V8_ENTRIES, V8_VCPUS, V8_MERGED, V8_CPU, V8_TBITS = (
    private_columns("PHASE NHYP AT_SEND ENTRIES VCPUS MERGED CPU TBITS"))
V8_WAKE, V8_SENT = private_columns("WAKE SENT")
PH_IDLE = 0
PH_RUN = 1  # a kthread is woken; it runs at V8_WAKE
PH_HOST = 2  # report sent; the host discards at V8_WAKE
PH_ACK = 3  # the host's reply arrives at V8_WAKE
EMPTY = -1  # an unused kvm_pt slot (v8: pfn 0)
FEW_HEADS = 8  # scan_array: up to this many heads in a list, more in a table


def _table_bits(entries):
    """log2 of the slots of each of scan_array's two scratch arrays: at least 4 * entries."""
    return int(4 * entries - 1).bit_length()


def _buffer(params, n_pages, vcpus):
    n = params["entries"]
    # per vCPU: kvm_pt_idx and kvm_pt; then hypervisor_pagelist; then scan_array's scratch
    return vcpus * (1 + 2 * n) + 2 * (2 * n) + 2 * (1 << _table_bits(n))


def _init(params, n_pages, vcpus, ints, floats):
    ints[V8_AT_SEND] = int(params["return_pages"] == "at_send")
    ints[V8_ENTRIES] = params["entries"]
    ints[V8_VCPUS] = vcpus
    ints[V8_MERGED] = int(params["capture"] == "merged")
    ints[V8_TBITS] = _table_bits(params["entries"])
    floats[V8_WAKE] = np.inf


STATE = PrivateState(
    ints=("PHASE", "NHYP", "AT_SEND", "ENTRIES", "VCPUS", "MERGED", "CPU", "TBITS"),
    floats=("WAKE", "SENT"),
    buffer=_buffer,
    init=_init,
    discard_slots=lambda params: 2 * params["entries"],
)


# ---------------------------------------------------------------------------------------------
# The series' functions on a zone's arrays (tests/naive.py has their pure-Python twins)


@jit(inline="always")
def get_buddy_page(state, n_orders, pfn):
    """``get_buddy_page`` (L85-96): the head of the free block ``pfn`` lies in, or -1."""
    for order in range(n_orders):
        head = pfn & ~((1 << order) - 1)
        st = state[np.uintp(head)]
        if order <= st < n_orders:  # PageBuddy(head) && page_private(head) >= order
            return head
    return -1


@jit(inline="always")
def _compound_head(state, n_orders, pfn):
    """The head of the allocated block of order > 0 that ``pfn`` lies in, or -1."""
    for order in range(n_orders):
        head = pfn & ~((1 << order) - 1)
        st = state[np.uintp(head)] - ALLOC_BASE
        if 0 < st < n_orders and st >= order:
            return head
    return -1


@jit(inline="always")
def _hash(pfn, bits):
    """Fibonacci hashing: the top ``bits`` bits of pfn * 2^64 / phi."""
    return np.int64((np.uint64(pfn) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits))


@jit(inline="always")
def _slot(keys, mask, bits, pfn):
    """The slot of ``pfn`` in a table of heads (linear probing; -1 keys are free). A key is
    ``head << 1 | listed``."""
    i = _hash(pfn, bits)
    while True:
        k = keys[i]
        if k == EMPTY or k >> 1 == pfn:
            return i
        i = (i + 1) & mask


@jit(inline="always")
def _find(keys, mask, bits, few, d, pfn):
    """Where head ``pfn`` is kept: its slot in the table (``d > FEW_HEADS``; else its index in
    ``few``, or ``d``)."""
    if d > FEW_HEADS:
        return _slot(keys, mask, bits, pfn)
    q = 0
    while q < d and few[q] >> 1 != pfn:
        q += 1
    return q


@jit(inline="always")
def _mark(keys, mask, bits, few, d, pfn):
    """Entry ``pfn`` (a free head, as recorded) lists the head ``pfn`` if that is one."""
    q = _find(keys, mask, bits, few, d, pfn)
    if d > FEW_HEADS:
        if keys[q] != EMPTY:
            keys[q] |= 1
    elif q < d:
        few[q] |= 1


@jit
def scan_array(state, n_orders, pt, n, keys, counts, bits):
    """``scan_array`` + ``pack_array`` (L202-271) of the ``n`` entries in ``pt`` (pfn, order
    pairs); return the entries left. ``keys``/``counts`` (``1 << bits`` slots each, at least
    4 * n) are scratch.

    ``if_exist(buddy_page)`` asks whether the head is in the array as it stands. A head is a
    free head, so it is there only as an entry kept as a free head (kept as recorded: the scan
    never changes it) or as an earlier entry of this scan replaced by it; an entry inside a free
    block is never a head. So it is enough to know, for each head an entry lies under, whether
    an entry as recorded holds it ("listed"), and then to resolve those entries in order: the
    first of a head not listed becomes it, the others are dropped. These are the series'
    answers, without a table of the whole array per scan.

    The array is read from its end: the entries inside free blocks are mostly the frees since
    the last scan, at the end, in few blocks, so their heads are known before the older entries
    (mostly free heads) are read, and each of those is checked against them as it is read (a
    handful of heads and their range: one compare for nearly every entry; more heads: a table
    in ``keys``). A head first seen after some free head was read is looked for again among
    the entries after it. An entry inside the block found for the one read before it has that
    head (a free block's other pages are tails), without ``get_buddy_page``'s walk; so is an
    entry that is itself the head of an allocated, isolated or pcp block (only a tail page can
    lie inside a free block: the walk would find no head)."""
    state, pt, keys, counts = borrowed(state), borrowed(pt), borrowed(keys), borrowed(counts)
    # the entries inside a free block, from the last, each the first of a run of such entries
    # with one head (the others are dropped as read): index in counts[:m], head in
    # counts[n:n + m]; their distinct heads (head << 1 | listed) in counts[2n:2n + d] while
    # there are at most FEW_HEADS, then in the table keys
    few = counts[2 * n:2 * n + FEW_HEADS]
    mask = (1 << bits) - 1
    m = 0
    d = 0
    hmin = np.int64(1) << 62  # the heads' range
    hmax = np.int64(-1)
    lo = 0  # the free block found last: [lo, hi)
    hi = 0
    free_read = False  # a free head was read (at a higher index)
    again = n  # the entries from again on are checked again against every head
    first = n  # the first entry dropped: pack_array moves only what follows
    for i in range(n - 1, -1, -1):
        pfn = pt[2 * i]
        st = state[np.uintp(pfn)]
        if 0 <= st < n_orders:  # PageBuddy(page): kept as recorded
            free_read = True
            if hmin <= pfn <= hmax:
                _mark(keys, mask, bits, few, d, pfn)
            continue
        if st != NOT_HEAD:
            # the head of an allocated, isolated or pcp block: no free block holds it
            # (get_buddy_page would walk every order to find none), kept
            continue
        if lo <= pfn < hi:
            head = lo
        else:
            head = get_buddy_page(state, n_orders, pfn)
            if head < 0:  # allocated, or on a pcp list: kept
                continue
            lo = head
            hi = head + (1 << state[head])
            q = _find(keys, mask, bits, few, d, head)
            if d > FEW_HEADS:
                if keys[q] == EMPTY:
                    keys[q] = head << 1
                    d += 1
                    again = i + 1 if free_read else again
            elif q == d:
                if d == FEW_HEADS:  # one more: the heads move to the table
                    keys[:mask + 1] = EMPTY
                    for r in range(d):
                        keys[_slot(keys, mask, bits, few[r] >> 1)] = few[r]
                    keys[_slot(keys, mask, bits, head)] = head << 1
                else:
                    few[d] = head << 1
                d += 1
                again = i + 1 if free_read else again
            hmin = min(hmin, head)
            hmax = max(hmax, head)
        if m > 0 and counts[n + m - 1] == head:
            # the entry inside a free block read before this one, later in the array, has
            # the same head: it is resolved after this one, so it is dropped
            pt[2 * counts[m - 1]] = EMPTY
            first = min(first, counts[m - 1])
            counts[m - 1] = i
        else:
            counts[m] = i
            counts[n + m] = head
            m += 1
    if m == 0:
        return n
    for j in range(again, n):  # (an entry dropped as read is EMPTY, out of the range)
        pfn = pt[2 * j]
        if hmin <= pfn <= hmax:
            _mark(keys, mask, bits, few, d, pfn)
    for k in range(m - 1, -1, -1):
        i = counts[k]
        head = counts[n + k]
        q = _find(keys, mask, bits, few, d, head)
        if d > FEW_HEADS:
            listed = keys[q] & 1
            keys[q] |= 1
        else:
            listed = few[q] & 1
            few[q] |= 1
        if listed:  # if_exist(buddy_page): dropped
            pt[2 * i] = EMPTY
            first = min(first, i)
        else:
            pt[2 * i] = head
            pt[2 * i + 1] = state[head]
    j = first
    for i in range(first, n):
        if pt[2 * i] != EMPTY:
            pt[2 * j] = pt[2 * i]
            pt[2 * j + 1] = pt[2 * i + 1]
            j += 1
    return j


@jit(inline="always")
def _isolate(z, pfn, order, min_wmark, hyp, k, cap):
    """``__isolate_free_page`` into entry k of ``hyp`` if the watermark allows; 1 or 0."""
    if k >= cap or not nr_free_pages(z) > min_wmark + (1 << order):
        return 0
    isolate_free_page(z, pfn, order)
    hyp[2 * k] = pfn
    hyp[2 * k + 1] = order
    return 1


@jit
def hinting_walk(z, pt, n, hyp, cap, min_wmark):
    """The isolation loop of ``hinting_fn`` (L106-192) over ``n`` entries of ``pt``: isolate
    into ``hyp`` (at most ``cap`` blocks); return (blocks, pages, pages visited = zone->lock
    holds)."""
    z = borrow_zone(z)
    pt, hyp = borrowed(pt), borrowed(hyp)
    n_orders = z.head.shape[0]
    k = 0
    pages = 0
    visits = 0
    for i in range(n):
        pfn = pt[2 * i]
        end = pfn + (1 << pt[2 * i + 1]) - 1
        while pfn <= end:
            visits += 1  # spin_lock_irqsave(&zone->lock) for this page
            st = z.state[pfn]
            # only a tail page or an allocated head of order > 0 can be part of a compound
            # page (every other page is the head of its own block)
            head = _compound_head(z.state, n_orders, pfn) if (
                st == NOT_HEAD or ALLOC_BASE < st < ALLOC_BASE + n_orders) else -1
            if head >= 0:  # PageCompound: past the whole compound page
                pfn = head + (1 << (z.state[head] - ALLOC_BASE))
                continue
            if st == ALLOC_BASE or st == PC_CLEAN or st == PC_DIRTY:  # page_ref_count
                pfn += 1
                continue
            if 0 <= st < n_orders:  # PageBuddy: isolate at its buddy order
                got = _isolate(z, pfn, np.int64(st), min_wmark, hyp, k, cap)
                k += got
                pages += got << st
                pfn += 1 << st
                continue
            head = get_buddy_page(z.state, n_orders, pfn)
            if head >= 0:  # inside a free block: isolate that block
                order = np.int64(z.state[head])
                got = _isolate(z, head, order, min_wmark, hyp, k, cap)
                k += got
                pages += got << order
                pfn = head + (1 << order)
                continue
            pfn += 1
    return k, pages, visits


# ---------------------------------------------------------------------------------------------
# The mechanism's hooks


@jit(inline="always")
def _hdr(s, g, c):
    """vCPU c's ``kvm_pt_idx``; its ``kvm_pt`` follows."""
    return s.gi[g, GI.MBUF_OFF] + c * (1 + 2 * s.mi[g, V8_ENTRIES])


@jit(inline="always")
def _hyp(s, g):
    n = s.mi[g, V8_ENTRIES]
    return s.gi[g, GI.MBUF_OFF] + s.mi[g, V8_VCPUS] * (1 + 2 * n)


@jit(inline="always")
def _capture(s, g, z, c, pfn, order, t, cost):
    """``guest_free_page`` on vCPU c: record the entry (inlined into the hooks: it runs on
    every free, and a call would copy the state's arrays); a full array goes to
    :func:`_array_full`."""
    if not s.gi[g, GI.ASK_HINT]:  # guest_page_hinting_key off
        return
    n = s.mi[g, V8_ENTRIES]
    h = _hdr(s, g, c)
    idx = s.mbuf[h]
    if idx == n:  # full, waiting for the kthread: the free is not seen
        s.gi[g, GI.STALE_HINTS] += 1
        return
    s.mbuf[h + 1 + 2 * idx] = pfn
    s.mbuf[h + 2 + 2 * idx] = order
    s.mbuf[h] = idx + 1
    if idx + 1 == n:
        _array_full(s, g, z, c, t, cost)


@jit
def _array_full(s, g, z, c, t, cost):
    """L314-325: vCPU c's array just filled: drain its pcp list, scan, wake its kthread if the
    scan dropped nothing."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    n = s.mi[g, V8_ENTRIES]
    h = _hdr(s, g, c)
    if not s.mi[g, V8_MERGED]:  # drain_local_pages(NULL)
        free_pcppages_bulk(s, g, z, c, s.pcp_cnt[g, c], t)
    b = _hyp(s, g)
    tb = b + 4 * n
    slots = 1 << s.mi[g, V8_TBITS]
    left = scan_array(z.state, z.head.shape[0], s.mbuf[h + 1:h + 1 + 2 * n], n,
                      s.mbuf[tb:tb + slots], s.mbuf[tb + slots:tb + 2 * slots],
                      s.mi[g, V8_TBITS])
    s.mbuf[h] = left
    s.gf[g, GF.GUEST_CPU] += n * cost[C_PAGE_OP]
    if left == n and s.mi[g, V8_PHASE] == PH_IDLE:  # wake_up_process(hinting/c)
        s.mi[g, V8_PHASE] = PH_RUN
        s.mf[g, V8_WAKE] = t


@jit
def on_free_page(s, g, z, cpu, pfn, order, t, cost):
    """``arch_free_page(page, order)`` on vCPU ``cpu``: capture (``capture="as_freed"``)."""
    s = borrow_state(s)
    cost = borrowed(cost)
    if s.mi[g, V8_MERGED]:
        return
    _capture(s, g, z, cpu, pfn, order, t, cost)


@jit
def on_free(s, g, z, pfn, order, t, cost):
    """The merged block after ``__free_one_page`` (``capture="merged"``, not v8)."""
    s = borrow_state(s)
    cost = borrowed(cost)
    _capture(s, g, z, (pfn >> (NR_ORDERS - 1)) % s.mi[g, V8_VCPUS], pfn, order, t, cost)


def free_hook_order(params, hint_order):
    """``on_free`` sees every merged free with ``capture="merged"``, none otherwise."""
    return 0 if params["capture"] == "merged" else NR_ORDERS


@jit
def _free_back(s, g, z, cost):
    """``hyperlist_ready``'s loop (L75-82): ``free_one_page`` of every reported block."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    b = _hyp(s, g)
    k = s.mi[g, V8_NHYP]
    for i in range(k):
        order = s.mbuf[b + 2 * i + 1]
        free_one_page(z, s.mbuf[b + 2 * i], order, False)
        s.gi[g, GI.ISOLATED] -= 1 << order
    count_lock_ops(s, g, k, cost)
    s.mi[g, V8_NHYP] = 0


@jit
def _kthread(s, g, z, c, now, cost):
    """``hinting_fn`` of vCPU c: isolate, report; return the discards' due time, or -1 when
    nothing was isolated (the array is emptied at once)."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    n = s.mi[g, V8_ENTRIES]
    h = _hdr(s, g, c)
    b = _hyp(s, g)
    k, pages, visits = hinting_walk(z, s.mbuf[h + 1:h + 1 + 2 * n], n, s.mbuf[b:b + 4 * n],
                                    2 * n, s.gi[g, GI.MIN_WMARK])
    s.gi[g, GI.ISOLATED] += pages
    count_lock_ops(s, g, visits, cost)
    s.mi[g, V8_NHYP] = k
    if k == 0:
        s.mbuf[h] = 0
        return -1.0
    due = report_blocks(s, g, z, b, k, now, cost)
    if s.mi[g, V8_AT_SEND]:
        _free_back(s, g, z, cost)
        s.mbuf[h] = 0
    return due


@jit
def tick(s, g, z, t_end, cost):
    """Run the kthreads and the report round trips of guest g up to ``t_end``."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    n = s.mi[g, V8_ENTRIES]
    while s.mf[g, V8_WAKE] <= t_end:
        now = s.mf[g, V8_WAKE]
        phase = s.mi[g, V8_PHASE]
        s.mf[g, V8_WAKE] = np.inf
        if phase == PH_RUN:
            s.mi[g, V8_PHASE] = PH_IDLE
            for c in range(s.mi[g, V8_VCPUS]):
                if s.mbuf[_hdr(s, g, c)] == n:  # hinting_should_run
                    due = _kthread(s, g, z, c, now, cost)
                    if due >= 0.0:
                        s.mi[g, V8_PHASE] = PH_HOST
                        s.mi[g, V8_CPU] = c
                        s.mf[g, V8_SENT] = now
                        s.mf[g, V8_WAKE] = due
                        break
        elif phase == PH_HOST:
            spent = discard_due(s, g, z, now, cost)
            s.mi[g, V8_PHASE] = PH_ACK
            s.mf[g, V8_WAKE] = now + spent + cost[C_ACK_IRQ]
        elif phase == PH_ACK:
            if not s.mi[g, V8_AT_SEND]:  # virtqueue_kick_sync returned: free back, then empty
                _free_back(s, g, z, cost)
                s.mbuf[_hdr(s, g, s.mi[g, V8_CPU])] = 0
                s.gf[g, GF.GUEST_CPU] += now - s.mf[g, V8_SENT]  # the kthread spun
            s.mi[g, V8_PHASE] = PH_RUN  # other vCPUs' kthreads may be waiting
            s.mf[g, V8_WAKE] = now
