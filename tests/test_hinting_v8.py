"""hinting_v8 as the series' virt/kvm/page_hinting.c does it: ``scan_array`` and
``hinting_fn`` against their naive twins on a tiny zone, and the capture path (arch_free_page,
the per-vCPU array, drain, scan, kthread, report, free back) worked by hand on an engine
state."""

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from fphlib import SimConfig, simulate
from fphlib.guest.buddy import BuddyAllocator
from fphlib.guest.buddy_kernels import _free_list
from fphlib.guest.mm import alloc_pages, free_block
from fphlib.hinting import hinting_v8 as v8
from fphlib.state import layout as L
from fphlib.state.zone import ALLOC_BASE

from engine_helpers import one_guest
from naive import NaiveBuddy, naive_v8_hinting_walk, naive_v8_scan_array

N_ORDERS = 5


def _zone_pair(data, blocks=4):
    """A BuddyAllocator and its naive twin after the same random allocations and frees."""
    n_pages = blocks << (N_ORDERS - 1)
    b = BuddyAllocator(n_pages, N_ORDERS, "kernel")
    t = NaiveBuddy(n_pages, N_ORDERS, "kernel")
    for _ in range(data.draw(st.integers(0, 40), label="ops")):
        if t.allocated and data.draw(st.booleans(), label="free"):
            pfn = data.draw(st.sampled_from(sorted(t.allocated)), label="pfn")
            order = t.allocated[pfn]
            b.free(pfn, order)
            t.free_block(pfn, order)
        else:
            order = data.draw(st.integers(0, N_ORDERS - 1), label="order")
            assert b.alloc(order) == t.alloc(order)
    return b, t


def _entries(data, n_pages, n):
    """n kvm_pt entries {pfn, order as freed}: aligned, some repeated."""
    pool = []
    for _ in range(max(1, n // 2)):
        order = data.draw(st.integers(0, N_ORDERS - 1), label="entry order")
        pfn = data.draw(st.integers(0, n_pages - 1), label="entry pfn") & ~((1 << order) - 1)
        pool.append((pfn, order))
    return [data.draw(st.sampled_from(pool), label="entry") for _ in range(n)]


def _scan(state, entries):
    n = len(entries)
    bits = v8._table_bits(n)
    pt = np.array(entries, np.int64).reshape(-1)
    keys = np.empty(1 << bits, np.int64)
    counts = np.empty(1 << bits, np.int64)
    left = v8.scan_array(state, N_ORDERS, pt, n, keys, counts, bits)
    return [(int(pt[2 * i]), int(pt[2 * i + 1])) for i in range(left)]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_scan_array_matches_the_naive_twin(data):
    b, t = _zone_pair(data)
    entries = _entries(data, b.n_pages, data.draw(st.integers(1, 24), label="n"))
    left = _scan(b._zone.state, entries)
    want, woken = naive_v8_scan_array(dict(t.free), entries, N_ORDERS)
    assert left == want
    assert (len(left) == len(entries)) == woken


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_scan_array_matches_the_naive_twin_with_many_heads(data):
    """Longer arrays over a larger zone: more than FEW_HEADS heads (scan_array's table), runs
    of entries in one free block (memhog's frees) and heads met after free heads."""
    b, t = _zone_pair(data, blocks=16)
    n = data.draw(st.integers(9, 80), label="n")
    if data.draw(st.booleans(), label="run"):
        start = data.draw(st.integers(0, b.n_pages - 1), label="start")
        entries = [((start + k) % b.n_pages, 0) for k in range(n)]
    else:
        entries = _entries(data, b.n_pages, n)
    left = _scan(b._zone.state, entries)
    want, woken = naive_v8_scan_array(dict(t.free), entries, N_ORDERS)
    assert left == want
    assert (len(left) == len(entries)) == woken


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_hinting_walk_matches_the_naive_twin(data):
    b, t = _zone_pair(data)
    entries = _entries(data, b.n_pages, data.draw(st.integers(1, 24), label="n"))
    min_wmark = data.draw(st.integers(0, b.n_pages), label="min_wmark")
    cap = data.draw(st.integers(1, 2 * len(entries)), label="cap")
    pt = np.array(entries, np.int64).reshape(-1)
    hyp = np.full(2 * cap, -1, np.int64)
    k, pages, visits = v8.hinting_walk(b._kzone, pt, len(entries), hyp, cap, min_wmark)
    refcounted = {p for p, o in t.allocated.items() if o == 0}
    free = dict(t.free)
    want, want_visits = naive_v8_hinting_walk(free, dict(t.allocated), refcounted, entries,
                                              N_ORDERS, min_wmark, cap)
    got = [(int(hyp[2 * i]), int(hyp[2 * i + 1])) for i in range(k)]
    assert got == want
    assert visits == want_visits
    assert pages == sum(1 << o for _, o in want)
    # what stayed in the buddy is what the twin did not isolate
    listed = {(int(p), o) for o in range(N_ORDERS) for p in _free_list(b._kzone, o)}
    assert listed == set(free.items())


def test_a_page_inside_a_free_block_becomes_the_block_and_duplicates_go():
    b = BuddyAllocator(32, N_ORDERS, "kernel")  # two free order-4 blocks: heads 0 and 16
    held = b.alloc(0)  # splits block 0: 0 allocated, 1 (o0), 2 (o1), 4 (o2), 8 (o3) free
    assert held == 0
    entries = [(5, 0), (6, 0), (1, 0), (0, 0), (16, 0), (20, 2)]
    # 5 and 6 lie in the free order-2 block at 4: 5 becomes (4, 2), 6 is then a duplicate;
    # 1 is a free head (kept as recorded), 0 is allocated (kept), 16 a free head (kept),
    # 20 lies in the order-4 block at 16, whose head is already listed: dropped
    assert _scan(b._zone.state, entries) == [(4, 2), (1, 0), (0, 0), (16, 0)]


def test_the_walk_skips_compound_pages_and_isolates_whole_free_blocks():
    b = BuddyAllocator(32, N_ORDERS, "kernel")
    thp = b.alloc(2)  # 0..3 allocated (compound), 4 (o2), 8 (o3), 16 (o4) free
    assert thp == 0 and b._zone.state[0] == ALLOC_BASE + 2
    pt = np.array([0, 3, 16, 0], np.int64)  # {0, order 3}: pages 0..7; {16, order 0}
    hyp = np.full(8, -1, np.int64)
    k, pages, visits = v8.hinting_walk(b._kzone, pt, 2, hyp, 4, 0)
    # page 0: compound, jump to 4; page 4: free head of order 2, isolated, jump to 8 > 7;
    # page 16: free head of order 4, isolated whole although the entry named one page
    assert hyp[:2 * k].tolist() == [4, 2, 16, 4]
    assert (pages, visits) == (4 + 16, 3)


def _v8_guest(entries=16, **kw):
    s, z = one_guest(guest_mem="64MiB", mechanism="hinting_v8", vcpus=1,
                     mechanism_params={"entries": entries, **kw})
    return s, z


def _kvm_pt_idx(s, c=0):
    return int(s.mbuf[v8._hdr(s, 0, c)])


def test_frees_that_merge_leave_room_in_the_array_and_wake_nobody():
    s, z = _v8_guest()
    pfns = [alloc_pages(s, 0, z, 0, 0, 0.0, s.cost) for _ in range(16)]
    for pfn in pfns:
        free_block(s, 0, z, pfn, 0, 0, 0.0)
    # the 16th free filled the array: drain put the pcp pages back, they merged with their
    # buddies, the scan replaced the first entry by the merged block and dropped the others
    # (the 16th page itself was not yet freed: it stays as recorded)
    assert _kvm_pt_idx(s) < 16
    assert s.mi[0, v8.V8_PHASE] == v8.PH_IDLE
    assert s.pcp_cnt[0, 0] == 1  # the 16th page reaches the pcp list after arch_free_page


def test_a_full_array_of_separate_pages_is_isolated_reported_and_freed_back():
    s, z = _v8_guest()
    n_free0 = int((z.nr_free << np.arange(z.nr_free.shape[0])).sum())
    held = {alloc_pages(s, 0, z, 0, 0, 0.0, s.cost) for _ in range(64)}
    # pages whose buddy stays allocated: freed, they cannot merge
    lonely = sorted(p for p in held if p % 2 == 0 and p + 1 in held)[:16]
    assert len(lonely) == 16
    for pfn in lonely:
        free_block(s, 0, z, pfn, 0, 0, 0.0)
    assert _kvm_pt_idx(s) == 16 and s.mi[0, v8.V8_PHASE] == v8.PH_RUN
    reports = s.gi[0, L.GI.REPORTS]
    # the kthread isolates 15 pages and reports them: the 16th free reached the pcp list
    # after arch_free_page filled the array and drained it, so it is not in the buddy
    v8.tick(s, 0, z, 0.0, s.cost)
    assert s.pcp_cnt[0, 0] == 1
    assert s.mi[0, v8.V8_NHYP] == 15 and s.gi[0, L.GI.ISOLATED] == 15
    assert s.gi[0, L.GI.REPORTS] == reports + 1
    assert _kvm_pt_idx(s) == 16  # frees stay unseen until hyperlist_ready returns
    v8.tick(s, 0, z, 1.0, s.cost)  # the host's discards, the reply, free_one_page
    assert s.gi[0, L.GI.ISOLATED] == 0 and _kvm_pt_idx(s) == 0
    assert s.mi[0, v8.V8_PHASE] == v8.PH_IDLE
    # 15 pages are back in the buddy, one on the pcp list, 48 still allocated
    assert int((z.nr_free << np.arange(z.nr_free.shape[0])).sum()) == n_free0 - 49


def test_nothing_is_captured_while_the_host_has_hinting_off():
    s, z = _v8_guest()
    s.gi[0, L.GI.ASK_HINT] = 0
    pfn = alloc_pages(s, 0, z, 0, 0, 0.0, s.cost)
    free_block(s, 0, z, pfn, 0, 0, 0.0)
    assert _kvm_pt_idx(s) == 0


@pytest.mark.parametrize("capture", ["as_freed", "merged"])
def test_memhog_exit_is_hinted_back_in_both_readings(capture):
    r = simulate(SimConfig(guests=1, guest_mem="512MiB", workload="memhog", duration_s=20,
                 workload_params={"size": "256MiB", "rate": "1GiB"},
                 mechanism="hinting_v8", mechanism_params={"capture": capture}, seed=1))
    g = r.guest_summary.iloc[0]
    assert g.reports > 0 and g.reported_bytes > 0
    assert g.lost_writes == 0
