"""Per-CPU page lists (pcp) for order 0, one per vCPU (docs/references.md §1.6).

v5.10 semantics (mm/page_alloc.c): ``free_unref_page_commit`` adds a freed page at the list
head without zone->lock and, when ``count >= high``, ``free_pcppages_bulk`` returns ``batch``
pages from the list tail to the buddy under one zone->lock (``__free_one_page`` for each, which
notifies page reporting). ``__rmqueue_pcplist`` takes the list head; on an empty list
``rmqueue_bulk`` moves ``batch`` pages from the buddy to the list tail. ``batch``/``high`` come
from ``zone_batchsize``/``pageset_set_batch`` (:func:`pcp_batch_high`).

Pages on pcp lists are allocated as far as the buddy, reporting and the host can see. The
lists are linked through the zone's ``next``/``prev`` arrays (as ``page->lru``), with
:mod:`fphlib.state.lists`.

Simplifications: one list per vCPU (one migratetype); order 0 only (v5.13 and earlier);
no ``drain_all_pages`` on CPU hotplug, only when an allocation fails (before giving up).
"""

from .._jit import jit
from ..state.borrow import borrow_state, borrow_zone
from ..state.hooks import mech_on_free, mech_on_free_page
from ..state.layout import GI, PI
from ..state.lists import list_add, list_add_tail, list_del
from ..state.zone import ALLOC_BASE, ON_PCP, PG_DATA
from ..units import PAGE_SIZE
from .buddy import free_one_page, rmqueue_smallest

NOT_DATA = ~PG_DATA


@jit(inline="always")
def free_pages_prepare(s, g, z, pfn, order, cpu, t):
    """``free_pages_prepare`` of a block the guest frees on vCPU ``cpu``: its data is gone,
    and ``arch_free_page`` hands the block, as freed, to the mechanism's ``on_free_page``
    before the pcp list or the buddy sees it."""
    for p in range(pfn, pfn + (1 << order)):
        z.flags[p] &= NOT_DATA
    mech_on_free_page(s, g, z, cpu, pfn, order, t)


@jit(inline="always")
def notify_free(s, g, z, pfn, order, t):
    """After ``__free_one_page`` placed a block freed at ``pfn`` with final ``order``: the
    mechanism's ``on_free`` with the merged head (only at orders it asked for, so that the
    test costs the hot path one compare)."""
    if order >= s.pi[PI.FREE_HOOK_ORDER]:
        mech_on_free(s, g, z, pfn & ~((1 << order) - 1), order, t)


def pcp_batch_high(n_pages):
    """``zone_batchsize`` + ``pageset_set_batch`` (v5.10): (batch, high) for a zone size.

    1 GiB or more gives batch 63, high 378 (= 6 * batch); below 8 MiB batch 1, high 0.
    """
    batch = min(n_pages // 1024, (1 << 20) // PAGE_SIZE)  # min(managed/1024, 1 MiB / PAGE_SIZE)
    batch //= 4
    if batch < 1:
        batch = 1
    x = batch + batch // 2
    batch = (1 << (x.bit_length() - 1)) - 1  # rounddown_pow_of_two(batch + batch/2) - 1
    # pageset_set_batch: high = 6 * batch, batch = max(1, batch) (tiny zones: high 0)
    return max(1, batch), 6 * batch


@jit
def rmqueue_bulk(s, g, z, cpu, count):
    """Move up to ``count`` order-0 pages from the buddy to the pcp tail; return how many."""
    s = borrow_state(s)
    z = borrow_zone(z)
    got = 0
    for _ in range(count):
        pfn = rmqueue_smallest(z, 0)
        if pfn < 0:
            break
        z.state[pfn] = ON_PCP
        list_add_tail(z.next, z.prev, s.pcp_head, (g, cpu), s.pcp_tail, (g, cpu), pfn)
        got += 1
    s.pcp_cnt[g, cpu] += got
    s.gi[g, GI.LOCK_OPS] += got
    return got


@jit
def free_pcppages_bulk(s, g, z, cpu, count, t):
    """Return ``count`` pages from the pcp tail to the buddy (``__free_one_page`` each)."""
    s = borrow_state(s)
    z = borrow_zone(z)
    n = 0
    while n < count and s.pcp_cnt[g, cpu] > 0:
        pfn = s.pcp_tail[g, cpu]
        list_del(z.next, z.prev, s.pcp_head, (g, cpu), s.pcp_tail, (g, cpu), pfn)
        s.pcp_cnt[g, cpu] -= 1
        order = free_one_page(z, pfn, 0, False)
        notify_free(s, g, z, pfn, order, t)
        n += 1
    s.gi[g, GI.LOCK_OPS] += n


@jit(inline="always")
def pcp_alloc(s, g, z, cpu):
    """``rmqueue_pcplist``: an order-0 page from vCPU ``cpu``'s list, or -1."""
    if s.pcp_cnt[g, cpu] == 0:
        rmqueue_bulk(s, g, z, cpu, s.gi[g, GI.PCP_BATCH])
        if s.pcp_cnt[g, cpu] == 0:
            return -1
    pfn = s.pcp_head[g, cpu]
    list_del(z.next, z.prev, s.pcp_head, (g, cpu), s.pcp_tail, (g, cpu), pfn)
    s.pcp_cnt[g, cpu] -= 1
    z.state[pfn] = ALLOC_BASE
    return pfn


@jit(inline="always")
def pcp_free(s, g, z, cpu, pfn, t):
    """``free_unref_page``: put an order-0 page on the pcp head; spill a batch at ``high``."""
    z.state[pfn] = ON_PCP
    list_add(z.next, z.prev, s.pcp_head, (g, cpu), s.pcp_tail, (g, cpu), pfn)
    s.pcp_cnt[g, cpu] += 1
    if s.pcp_cnt[g, cpu] >= s.gi[g, GI.PCP_HIGH]:
        free_pcppages_bulk(s, g, z, cpu, s.gi[g, GI.PCP_BATCH], t)


@jit
def drain_all_pages(s, g, z, t):
    """``drain_all_pages``: every vCPU's pcp pages back to the buddy."""
    s = borrow_state(s)
    z = borrow_zone(z)
    for cpu in range(s.pcp_cnt.shape[1]):
        free_pcppages_bulk(s, g, z, cpu, s.pcp_cnt[g, cpu], t)
