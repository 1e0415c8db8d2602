"""Guest memory beyond anonymous pages (fphlib.guest.reclaim): page cache, slab, watermarks,
kswapd, direct reclaim and guest swap; their twins in tests/naive.py."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import fphlib
from fphlib.api.counters import guest_counters
from fphlib.api.result import FORMAT4_COLUMNS, FORMAT4_METRICS
from fphlib.costs import INDEX
from fphlib.engine.build import bind_units, build_state
from fphlib.engine.check import check_guest
from fphlib.guest.buddy import nr_free_pages
from fphlib.guest.mm import alloc_pages
from fphlib.guest.reclaim import lru_add, shrink_node
from fphlib.state import layout as L
from fphlib.state.borrow import zone_of
from fphlib.state.zone import PC_CLEAN, PC_DIRTY, PG_BACKED, PG_DATA
from fphlib.workloads.io import mm_step

from naive import naive_shrink_page_cache

OLD_STYLE = {"boot_cache": 0, "boot_slab": 0}  # the anonymous-only footprint of before


def mm_guest(mem="64MiB", guest_swap="16MiB"):
    """(state, cfg) of one running guest with reclaim on, every page free, units bound."""
    cfg = fphlib.SimConfig(guests=1, guest_mem=mem, host_mem="1GiB", duration_s=1.0,
                           workload_params={"boot": 0}, guest_swap=guest_swap)
    s, _ = build_state(cfg)
    bind_units(s, cfg)
    s.gi[0, L.GI.STATUS] = L.ST_RUNNING
    return s, cfg


@njit
def _fill_cache(s, g, dirty):
    """Put len(dirty) backed order-0 pages on the LRU (oldest first); return their pfns."""
    z = zone_of(s, g)
    out = np.empty(len(dirty), np.int64)
    for i in range(len(dirty)):
        pfn = alloc_pages(s, g, z, 0, 0, 0.0, s.cost)
        if not z.flags[pfn] & PG_BACKED:  # a reclaimed page reused is still backed
            s.gi[g, L.GI.RSS] += 1
            s.hi[L.HI.RSS] += 1
        z.flags[pfn] |= PG_BACKED | PG_DATA
        lru_add(s, g, z, pfn, dirty[i])
        out[i] = pfn
    return out


@njit
def _shrink(s, g, want):
    return shrink_node(s, g, zone_of(s, g), want, 0.0, s.cost)


@njit
def _kswapd(s, g):
    s.gi[g, L.GI.KSWAPD] = 1
    mm_step(s, g, zone_of(s, g), 0.0, 1e-3, s.cost, 0)


@njit
def _alloc(s, g, order):
    return alloc_pages(s, g, zone_of(s, g), order, 0, 0.0, s.cost)


@njit
def _free_pages(s, g):
    return nr_free_pages(zone_of(s, g))


@njit
def _check(s, g):
    return check_guest(s, g, zone_of(s, g))


def lru(s):
    out = []
    p = int(guest_counters(s, 0).pc_head)
    while p >= 0:
        out.append([p, bool(s.state[p] == PC_DIRTY)])
        p = int(s.nxt[p])
    return out


@settings(max_examples=60, deadline=None)
@given(dirty=st.lists(st.booleans(), min_size=1, max_size=120), want=st.integers(1, 140))
def test_reclaim_order_matches_the_naive_twin(dirty, want):
    """Clean pages go first, oldest first; dirty pages the scan passes are written back and
    dropped on the next pass: the same pages as the naive twin, the same LRU left."""
    s, _ = mm_guest()
    pfns = _fill_cache(s, 0, np.array(dirty))
    before = [[int(p), d] for p, d in zip(pfns, dirty, strict=True)]
    dropped, written, left = naive_shrink_page_cache(before, want)
    freed, spent = _shrink(s, 0, want)
    assert freed == len(dropped)
    assert lru(s) == left
    assert guest_counters(s, 0).pc_dropped == len(dropped)
    assert guest_counters(s, 0).writeback == len(written)
    assert guest_counters(s, 0).pc == len(left)
    assert guest_counters(s, 0).pc_dirty == sum(d for _, d in left)
    for p in dropped:  # back in the buddy, data gone
        assert s.state[p] not in (PC_CLEAN, PC_DIRTY) and not s.flags[p] & PG_DATA
    cost = s.cost
    assert spent == pytest.approx(len(dropped) * cost[INDEX["guest_reclaim"]]
                                  + len(written) * cost[INDEX["guest_writeback"]])
    assert _check(s, 0) == (0, 0)


def test_clean_pages_go_before_dirty_ones():
    s, _ = mm_guest()
    pfns = _fill_cache(s, 0, np.array([True, False, True, False, False, True]))
    freed, _ = _shrink(s, 0, 3)
    assert freed == 3
    # the three clean pages, though the dirty ones are older; the two dirty pages the scan
    # passed were written back, the youngest dirty page was not reached
    assert [p for p, _ in lru(s)] == [pfns[0], pfns[2], pfns[5]]
    assert [d for _, d in lru(s)] == [False, False, True]


def test_kswapd_reclaims_to_the_high_watermark_and_sleeps():
    s, _ = mm_guest()
    wmin, low, high = (int(s.gi[0, c]) for c in (L.GI.MIN_WMARK, L.GI.LOW_WMARK,
                                                  L.GI.HIGH_WMARK))
    assert wmin < low < high
    n = int(_free_pages(s, 0)) - (wmin + low) // 2  # leave free pages between min and low
    rng = np.random.default_rng(1)
    _fill_cache(s, 0, rng.random(n) < 0.3)
    assert wmin <= _free_pages(s, 0) < low
    assert guest_counters(s, 0).kswapd == 1  # the allocations below low woke it
    assert guest_counters(s, 0).direct_reclaims == 0  # never below min: no direct reclaim
    _kswapd(s, 0)
    assert _free_pages(s, 0) == high  # exactly: order-0 page cache, nothing else to free
    assert guest_counters(s, 0).kswapd == 0 and guest_counters(s, 0).kswapd_wakes == 1
    assert guest_counters(s, 0).kswapd_cpu > 0 and guest_counters(s, 0).guest_reclaim_stall == 0
    _kswapd(s, 0)  # woken again at the high watermark: nothing to do
    assert _free_pages(s, 0) == high and guest_counters(s, 0).kswapd_wakes == 1
    assert _check(s, 0) == (0, 0)


def test_direct_reclaim_below_min_stalls_the_allocation():
    s, _ = mm_guest()
    wmin = int(guest_counters(s, 0).min_wmark)
    n = int(_free_pages(s, 0)) - wmin + 40  # more than the pages above min
    _fill_cache(s, 0, np.zeros(n, bool))
    assert guest_counters(s, 0).direct_reclaims >= 1
    assert guest_counters(s, 0).pc_dropped >= 32  # SWAP_CLUSTER_MAX a pass
    stall = guest_counters(s, 0).guest_reclaim_stall
    assert stall == pytest.approx(guest_counters(s, 0).pc_dropped * s.cost[INDEX["guest_reclaim"]])
    assert guest_counters(s, 0).debt == stall  # the allocating workload waits for it
    assert _free_pages(s, 0) >= wmin - 63  # at most a pcp batch below min
    assert _check(s, 0) == (0, 0)


def test_no_reclaimable_memory_fails_at_the_min_watermark():
    s, _ = mm_guest(guest_swap=0)
    s.gi[0, L.GI.MM_ON] = 1
    wmin = int(guest_counters(s, 0).min_wmark)
    while _alloc(s, 0, 0) >= 0:
        s.gi[0, L.GI.USED] += 1
    # the pcp lists were drained before giving up; the reserve below min stays free
    assert s.pcp_cnt[0].sum() == 0
    assert wmin - 63 <= _free_pages(s, 0) <= wmin
    assert _check(s, 0) == (0, 0)


def sim(**kw):
    base = dict(host_mem="4GiB", guests=1, guest_mem="256MiB", duration_s=4, sample_s=0.05,
                host_thp=False)
    base.update(kw)
    return fphlib.simulate(fphlib.SimConfig(**base))


def test_page_conservation_with_page_cache_slab_and_guest_swap():
    """Debug mode checks every sample: buddy + pcp + page cache + slab + anon + guest swap."""
    res = sim(workload="memhog", debug=True, guest_swap="128MiB", mechanism="page_reporting",
              workload_params={"boot": "64MiB", "size": "240MiB", "repeat": 2,
                               "io_rate": "32MiB", "io_write": 0.5})
    gs = res.guest_summary.iloc[0]
    assert gs.page_cache_dropped_bytes > 0 and gs.writeback_bytes > 0
    assert gs.guest_swap_out_bytes > 0 and gs.guest_swap_in_bytes > 0
    assert gs.kswapd_wakes > 0 and gs.alloc_failures == 0
    assert res.summary["lost_writes"] == 0
    assert res.guests.slab_bytes.max() > res.guests.slab_bytes.iloc[1]  # grew with the I/O
    assert res.guests.guest_swap_bytes.max() > 0


def test_kswapd_keeps_free_memory_between_the_watermarks():
    """An idle guest reading files fills its memory with page cache; then kswapd holds the
    free pages between min and high (it wakes below low, stops at high)."""
    res = sim(workload="idle", duration_s=6,
              workload_params={"boot": "32MiB", "io_rate": "64MiB", "io_write": 0.0})
    s, _ = build_state(res.config)
    wmin, high = int(guest_counters(s, 0).min_wmark), int(guest_counters(s, 0).high_wmark)
    g = res.guests
    full = g[g.t_s >= 5.0]
    assert (full.page_cache_bytes > 200 << 20).all()
    assert (full.free_bytes >= wmin * 4096).all() and (full.free_bytes <= high * 4096).all()
    gs = res.guest_summary.iloc[0]
    assert gs.kswapd_wakes > 0 and gs.direct_reclaims == 0 and gs.writeback_bytes == 0


def test_page_cache_is_never_hinted():
    """Free page reporting under page-cache churn: the host never discards a page-cache page
    (debug invariant 16) and no write is lost; page cache is allocated memory, not free."""
    res = sim(workload="idle", duration_s=8, debug=True, mechanism="page_reporting",
              workload_params={"boot": "32MiB", "io_rate": "64MiB", "io_write": 0.5})
    assert res.summary["reported_bytes"] > 0
    assert res.summary["lost_writes"] == 0
    assert res.guest_summary.page_cache_dropped_bytes[0] > 0


def test_memhog_over_all_guest_memory_needs_guest_swap():
    """memhog of the whole guest: with guest swap it completes (the page cache goes first,
    then memhog's oldest pages to swap); without, it fails as the kernel's OOM would."""
    kw = dict(workload="memhog", duration_s=6,
              workload_params={"boot": "48MiB", "size": "256MiB"})
    with_swap = sim(guest_swap="128MiB", debug=True, **kw)
    gs = with_swap.guest_summary.iloc[0]
    assert gs.alloc_failures == 0 and not np.isnan(gs.workload_runtime_s)
    assert gs.page_cache_dropped_bytes > 0 and gs.guest_swap_out_bytes > 0
    assert (with_swap.events.kind == "guest_alloc_failure").sum() == 0
    without = sim(**kw)
    assert (without.events.kind == "guest_alloc_failure").sum() == 1
    # ... but only once the page cache was reclaimed
    assert without.guest_summary.page_cache_dropped_bytes[0] > 0


def test_guest_swap_in_on_retouch_is_a_stall():
    """A second pass reads memhog's swapped-out pages back (guest_swap_in each): the stall
    is the workload's and its runtime is the touching plus every stall."""
    size = 240 << 20
    kw = dict(workload="memhog", duration_s=30, guest_swap="128MiB",
              workload_params={"boot": "48MiB", "size": size, "repeat": 2, "rate": "512MiB"})
    res = sim(**kw)
    gs = res.guest_summary.iloc[0]
    swapins = gs.guest_swap_in_bytes / 4096
    assert swapins > 0 and gs.guest_swap_out_bytes >= gs.guest_swap_in_bytes
    assert gs.workload_stall_s >= swapins * 20e-6
    assert gs.workload_runtime_s == pytest.approx(2 * size / (512 << 20) + gs.workload_stall_s,
                                                  abs=0.01)
    dear = sim(costs={"guest_swap_in": 200e-6}, **kw).guest_summary.iloc[0]
    assert dear.workload_runtime_s - gs.workload_runtime_s > 0.9 * min(
        swapins, dear.guest_swap_in_bytes / 4096) * 180e-6


def test_reclaim_machinery_without_pressure_changes_nothing():
    """Watermarks, kswapd and guest swap on, but memory never tight: the same run."""
    kw = dict(workload="memhog", mechanism="page_reporting", duration_s=5, host_thp=True,
              workload_params={"boot": "32MiB", **OLD_STYLE, "size": "128MiB", "hold_s": 1})
    off = sim(**kw)
    on = sim(guest_swap="64MiB", **kw)
    a, b = off.summary.drop("wall_s"), on.summary.drop("wall_s")
    assert a.equals(b), (a[a != b], b[a != b])
    assert off.guests.equals(on.guests)


def _old_result(name):
    import pathlib

    old = fphlib.SimResult.load(pathlib.Path(__file__).parent / "data" / name)
    params = old.config.workload_params
    assert params["boot"] == 256 << 20 and params["boot_cache"] == params["boot_slab"] == 0
    return old, fphlib.simulate(old.config)


def test_an_old_result_of_a_remodelled_mechanism_loads_with_its_meaning():
    """main_churn_v2 (format 2) ran hinting_v8 before it was remodelled after the series' code
    (capture in arch_free_page, scan_array, hinting_fn): it loads with the old defaults made
    explicit and runs again, but its series differ by design."""
    old, new = _old_result("main_churn_v2")
    assert old.config.mechanism == "hinting_v8" and old.config.workload == "churn"
    assert list(new.guests.columns) == list(fphlib.api.result.GUEST_COLUMNS)
    assert len(new.guests) == len(old.guests) and len(new.host) == len(old.host)
    assert new.summary["reports"] > 0 and new.summary["lost_writes"] == 0


@pytest.mark.parametrize("name", ["main_memhog_v2"])
def test_results_of_the_old_model_are_reproduced(name):
    """tests/data/main_*_v2 were saved by fphlib before result format 3 (format 2: no page cache or
    slab, memhog at 1 GiB/s holding 5 s). Loaded, their configs keep that meaning (the old
    defaults made explicit) and run again to the same series and metrics; only
    workload_runtime_s changed meaning (memhog: the touching, not the hold and the exit)."""
    old, new = _old_result(name)
    params = old.config.workload_params
    recorded = [c for c in old.guests.columns if c not in FORMAT4_COLUMNS]  # NaN before 4
    for col in recorded:
        assert new.guests[col].tolist() == old.guests[col].tolist(), col
    assert (new.guests.page_cache_bytes == 0).all() and (new.guests.slab_bytes == 0).all()
    assert new.host.equals(old.host)
    a = new.summary.drop(["wall_s", "workload_runtime_s", *FORMAT4_METRICS])
    b = old.summary.drop(["wall_s", "workload_runtime_s", *FORMAT4_METRICS])
    assert a.equals(b), (a[a != b], b[a != b])
    for col in old.guest_summary.columns.drop("workload_runtime_s"):
        assert new.guest_summary[col].tolist() == old.guest_summary[col].tolist(), col
    if old.config.workload == "memhog":
        hold = params["hold_s"]
        free_s = params["size"] / (8 << 30)
        rt_old = old.guest_summary.workload_runtime_s
        rt_new = new.guest_summary.workload_runtime_s
        assert np.allclose(rt_new, rt_old - hold - free_s, atol=2e-3), (rt_new, rt_old)


def test_debug_check_catches_a_hinted_page_cache_page():
    """Invariant 16: under a safe mechanism a page-cache page is never discarded nor in
    flight; under an unsafe variant the loss is a counted lost write instead."""
    from fphlib.guest.buddy import PG_IN_FLIGHT

    s, _ = mm_guest()
    pfns = _fill_cache(s, 0, np.array([False, True, False]))
    s.pi[L.PI.SAFE] = 1
    assert _check(s, 0) == (0, 0)
    s.flags[pfns[1]] |= PG_IN_FLIGHT
    assert _check(s, 0) == (16, pfns[1])
    s.flags[pfns[1]] &= ~PG_IN_FLIGHT
    s.flags[pfns[2]] &= ~PG_BACKED  # discarded by the host
    s.gi[0, L.GI.RSS] -= 1
    s.hi[L.HI.RSS] -= 1
    assert _check(s, 0) == (16, pfns[2])
    s.pi[L.PI.SAFE] = 0
    assert _check(s, 0) == (0, 0)
