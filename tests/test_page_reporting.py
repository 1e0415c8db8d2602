"""Free page reporting, behaviour by behaviour (reference/kernel-mechanisms.md §3.2)."""

import random

import numpy as np
import pytest

import fphlib
from fphlib.api.counters import guest_counters
from fphlib.costs import SIZE_DEFAULTS
from fphlib.guest.buddy import free_one_page, rmqueue_smallest
from fphlib.hinting import page_reporting as pr
from fphlib.state import layout as L
from fphlib.state.zone import PG_REPORTED, set_page_reported

from engine_helpers import free_list, one_guest, reported_anywhere, reported_set
from naive import naive_reporting_pass


def step(s, z, t_end):
    pr.page_reporting_step(s, 0, z, t_end, s.cost)


def test_nothing_before_the_two_second_delay():
    s, z = one_guest()
    pr.page_reporting_request(s, 0, 0.0)  # page_reporting_register at boot
    assert s.mi[0, pr.PR_STATE] == pr.PAGE_REPORTING_REQUESTED
    step(s, z, 1.999)
    assert guest_counters(s, 0).reports == 0 and reported_anywhere(z) == set()
    step(s, z, 2.0)
    assert guest_counters(s, 0).reports > 0


def test_notify_only_at_or_above_hint_order_and_only_from_idle():
    s, z = one_guest(hint_order=9)
    pr.page_reporting_notify_free(s, 0, 8, 1.0)
    assert s.mi[0, pr.PR_STATE] == pr.PAGE_REPORTING_IDLE
    assert s.mf[0, pr.PR_WAKE] == np.inf
    pr.page_reporting_notify_free(s, 0, 9, 1.0)
    assert s.mf[0, pr.PR_WAKE] == 3.0
    pr.page_reporting_notify_free(s, 0, 10, 1.5)  # already REQUESTED: no new schedule
    assert s.mf[0, pr.PR_WAKE] == 3.0


def test_budget_per_pass_then_requested_again_two_seconds_later():
    # 512 MiB = 128 free order-10 blocks; capacity 4: budget = ceil(128 / 64) = 2, so
    # budget + 1 = 3 report calls of 4 blocks per pass, then REQUESTED and a new pass in 2 s.
    s, z = one_guest(report_capacity=4, hint_order=10)
    pr.page_reporting_request(s, 0, 0.0)
    step(s, z, 2.5)
    assert guest_counters(s, 0).reports == 3
    assert len(reported_set(z, 10)) == 12
    assert s.mi[0, pr.PR_STATE] == pr.PAGE_REPORTING_REQUESTED
    assert 4.0 < s.mf[0, pr.PR_WAKE] < 4.01
    step(s, z, 4.5)
    assert guest_counters(s, 0).reports == 6 and len(reported_set(z, 10)) == 24
    assert guest_counters(s, 0).reported_pages == 24 * 1024
    assert guest_counters(s, 0).isolated == 0


def test_idle_system_is_fully_reported_in_about_thirty_seconds():
    # The code comment's claim, on a 4 GiB guest with the kernel constants.
    s, z = one_guest(guest_mem="4GiB")
    pr.page_reporting_request(s, 0, 0.0)
    step(s, z, 20.0)
    assert len(reported_set(z, 10)) < 1024
    step(s, z, 40.0)
    assert len(reported_set(z, 10)) == 1024
    assert s.mi[0, pr.PR_STATE] == pr.PAGE_REPORTING_IDLE


def test_reported_pages_go_back_at_the_tail_and_the_list_is_rotated():
    s, z = one_guest(report_capacity=4, hint_order=10)
    before = free_list(z, 10)
    pr.page_reporting_request(s, 0, 0.0)
    step(s, z, 2.5)
    after = free_list(z, 10)
    rep = reported_set(z, 10)
    assert sorted(after) == sorted(before)
    # unreported first (the walk stopped at the 13th block, rotated to the front) ...
    assert after[0] == before[12]
    assert not any(p in rep for p in after[:116])
    # ... reported at the tail
    assert set(after[116:]) == rep == set(before[:12])


@pytest.mark.parametrize("seed", range(12))
def test_one_pass_matches_the_naive_twin(seed):
    rnd = random.Random(seed)
    cap = rnd.choice([1, 2, 4, 8])
    s, z = one_guest(report_capacity=cap, hint_order=10)
    # shuffle the order-10 list: allocate every block, free in random order (head placement)
    blocks = [int(rmqueue_smallest(z, 10)) for _ in range(128)]
    keep = rnd.randint(1, 128)
    rnd.shuffle(blocks)
    for b in blocks[:keep]:
        free_one_page(z, b, 10, False)
    pre = set(rnd.sample(blocks[:keep], rnd.randint(0, keep)))
    for b in pre:
        set_page_reported(z, b, 10)
    start = free_list(z, 10)
    want_list, want_rep, want_reports, want_req = naive_reporting_pass(start, pre, cap)
    s.mi[0, pr.PR_STATE] = pr.PAGE_REPORTING_REQUESTED
    s.mi[0, pr.PR_PHASE] = pr.PH_SCHED
    s.mf[0, pr.PR_WAKE] = 0.0
    gate = guest_counters(s, 0).low_wmark + (cap << 10)
    step(s, z, 1.0)  # one pass only (a rescheduled one would start at >= 2 s)
    if keep * 1024 <= gate:  # the watermark gate skips the zone
        assert guest_counters(s, 0).reports == 0 and free_list(z, 10) == start
        return
    assert free_list(z, 10) == want_list
    assert reported_set(z, 10) == want_rep
    assert guest_counters(s, 0).reports == want_reports
    requested = s.mi[0, pr.PR_STATE] == pr.PAGE_REPORTING_REQUESTED
    assert requested == want_req


def test_watermark_gate_skips_a_small_zone():
    # 64 MiB guest: low watermark + (32 << 9) pages = more than the whole zone
    s, z = one_guest(guest_mem="64MiB")
    pr.page_reporting_request(s, 0, 0.0)
    step(s, z, 10.0)
    assert guest_counters(s, 0).reports == 0
    assert s.mi[0, pr.PR_STATE] == pr.PAGE_REPORTING_IDLE  # nothing requested it again


def test_isolation_stops_at_the_min_watermark():
    # free = 131072 pages; with min_wmark = 124928 the 6th isolation would leave
    # free <= min + 1024 (__isolate_free_page's zone_watermark_ok), so exactly 5 go.
    s, z = one_guest(hint_order=10)
    s.gi[0, L.GI.MIN_WMARK] = 124928
    pr.page_reporting_request(s, 0, 0.0)
    step(s, z, 2.5)
    assert guest_counters(s, 0).reports == 1  # the leftover report
    assert len(reported_set(z, 10)) == 5


def test_reported_cleared_by_allocation_and_split():
    s, z = one_guest(guest_mem="64MiB", report_capacity=1, hint_order=10)
    s.gi[0, L.GI.LOW_WMARK] = 0  # let the gate pass on this small zone
    pr.page_reporting_request(s, 0, 0.0)
    step(s, z, 60.0)
    assert reported_set(z, 10) == set(free_list(z, 10))  # all 16 blocks reported
    head = free_list(z, 10)[0]
    pfn = rmqueue_smallest(z, 10)
    assert pfn == head and not z.flags[pfn] & PG_REPORTED
    pfn0 = rmqueue_smallest(z, 0)  # splits the next reported order-10 block
    assert not z.flags[pfn0] & PG_REPORTED
    assert reported_anywhere(z) == reported_set(z, 10)
    assert all(not z.flags[p] & PG_REPORTED for o in range(10) for p in free_list(z, o))


def test_reported_cleared_by_merge():
    s, z = one_guest(hint_order=9)
    blocks = [int(rmqueue_smallest(z, 9)) for _ in range(256)]
    evens = [b for b in blocks if b % 1024 == 0][:40]  # their order-9 buddies stay allocated
    for b in evens:
        free_one_page(z, b, 9, False)
    pr.page_reporting_request(s, 0, 0.0)
    step(s, z, 3.0)
    assert reported_set(z, 9) == set(evens)
    final = free_one_page(z, evens[0] + 512, 9, False)  # free the buddy: merge to order 10
    assert final == 10
    assert evens[0] in free_list(z, 10)
    assert not z.flags[evens[0]] & PG_REPORTED
    assert evens[0] not in reported_anywhere(z)


def test_a_reported_page_touched_again_refaults():
    base = dict(
        host_mem="8GiB",
        guests=1,
        guest_mem="2GiB",
        workload="memhog",
        workload_params={"size": "1GiB", "hold_s": 1, "runs": 2, "gap_s": 40},
        duration_s=90,
    )
    none = fphlib.simulate(fphlib.SimConfig(mechanism="none", **base)).summary
    rep = fphlib.simulate(fphlib.SimConfig(mechanism="page_reporting", **base)).summary
    assert none["refault_pages"] == 0
    assert rep["refault_pages"] >= 256 * 512  # the second round reuses the reported GiB
    assert rep["lost_writes"] == 0 and none["lost_writes"] == 0
    assert rep["reported_bytes"] >= 1 << 30


def test_isolated_pages_show_in_the_time_series_only_while_in_flight():
    cfg = fphlib.SimConfig(
        guests=1, guest_mem="1GiB", workload="memhog", mechanism="page_reporting",
        workload_params={"size": "512MiB", "hold_s": 0}, duration_s=40, sample_s=0.001 * 7,
    )
    g = fphlib.simulate(cfg).guests
    assert (g.isolated_bytes >= 0).all()
    assert g.isolated_bytes.iloc[-1] == 0
    assert g.reported_bytes.max() > 0


def test_demo_done_when():
    """Three 5 GiB guests run memhog 4 GiB on a 16 GiB host (the issue's acceptance test)."""
    base = dict(host_mem="16GiB", guests=3, guest_mem="5GiB", workload="memhog",
                workload_params={"size": "4GiB"}, duration_s=120)
    runs = {
        m: fphlib.simulate(fphlib.SimConfig(
            mechanism=m, balloon_target="1GiB" if m == "balloon" else None, **base))
        for m in ("none", "balloon", "page_reporting")
    }
    for res in runs.values():
        assert res.summary["lost_writes"] == 0 and res.summary["oom_kills"] == 0
    rep = runs["page_reporting"]
    freed_at = rep.events[rep.events.kind == "workload_end"].t_s.max()
    h = rep.host.set_index("t_s").rss_bytes
    gt = rep.guests.groupby("t_s")  # in use: anonymous memory, page cache, slab
    used = gt.used_bytes.sum() + gt.page_cache_bytes.sum() + gt.slab_bytes.sum()
    # VMM overheads (costs SIZE_DEFAULTS) and the host's own memory (host_reserve)
    overhead = 3 * SIZE_DEFAULTS["guest_overhead"][0] + rep.config.host_reserve_bytes()
    late = h.index >= freed_at + 30
    # close to the guests' in-use memory (+ overhead + THP rounding) half a minute later
    assert (h[late] <= used[late] + overhead + (64 << 20)).all()
    assert h.max() > 12 << 30
    none = runs["none"].host.rss_bytes.to_numpy()
    assert (np.diff(none) >= 0).all()  # never falls
    assert none[-1] == none.max()
