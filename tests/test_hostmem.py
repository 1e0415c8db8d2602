"""The host's own memory: reserve, watermarks, kswapd, direct reclaim stalls, the swap device,
THP swap-out, khugepaged and the OOM killer's badness (fphlib.host.backing, .daemons)."""

import numpy as np
import pytest

import fphlib
from fphlib import SimConfig
from fphlib.api.counters import guest_counters
from fphlib.costs import HOST_RESERVE, INDEX
from fphlib.engine.build import build_state, guest_zone, watermarks
from fphlib.host.backing import (
    HPAGE_PAGES,
    discard,
    oom_victim,
    page_table_pages,
    reclaim,
    region_count_ok,
    touch,
)
from fphlib.host.daemons import MAX_PTES_SWAP, collapse_ok, khugepaged_scan, kswapd
from fphlib.host.reclaim import reclaim_guest
from fphlib.state import layout as L
from fphlib.state.zone import PG_BACKED, PG_DATA

from naive import naive_collapse_ok, naive_oom_victim

MIB = 1 << 20


def _state(guests=1, **kw):
    """(state, zones) of running guests with every page free and nothing backed."""
    base = dict(guests=guests, guest_mem="64MiB", host_mem="256MiB", host_swap="64MiB",
                host_reserve=0, duration_s=60)
    base.update(kw)
    s, _ = build_state(SimConfig(**base))
    s.gi[:, L.GI.STATUS] = L.ST_RUNNING
    return s, [guest_zone(s, g) for g in range(guests)]


def _free(s):
    return int(s.hi[L.HI.RAM_PAGES] - s.hi[L.HI.RSS] - s.hi[L.HI.OVERHEAD_PAGES])


def _age(s):
    """Clear every accessed bit (as the clock's first pass would)."""
    s.flags[:] &= ~L.PG_REFERENCED


# ------------------------------------------------------------------ swap-in, swap device


def test_a_swapped_page_touched_again_costs_a_swap_in_stall_on_that_guest():
    s, (z0, z1) = _state(guests=2, host_thp=False, host_swap_bandwidth=0)
    touch(s, 0, z0, 0, 64, 0.0, s.cost, 0)
    touch(s, 1, z1, 0, 64, 0.0, s.cost, 0)
    _age(s)
    assert reclaim(s, 32, 0.0, s.cost, True) == 32  # the clock starts at guest 0's pages
    swapped = np.flatnonzero(z0.flags & L.PG_SWAPPED)
    assert len(swapped) == 32 and guest_counters(s, 0).swap == 32
    p = int(swapped[0])
    debt = guest_counters(s, 0).debt
    stall = touch(s, 0, z0, p, 1, 1.0, s.cost, 0)
    assert stall == pytest.approx(s.cost[INDEX["swap_in"]])
    assert z0.flags[p] & PG_BACKED and not z0.flags[p] & L.PG_SWAPPED
    assert guest_counters(s, 0).swapins == 1 and guest_counters(s, 0).swap == 31
    assert guest_counters(s, 0).swapin_stall == pytest.approx(stall)
    assert guest_counters(s, 0).debt == pytest.approx(debt + stall)  # the workload pays it
    assert guest_counters(s, 1).swapin_stall == 0.0 and guest_counters(s, 1).swapins == 0
    assert region_count_ok(s.flags, s.reg_cnt, s.reg_huge)


@pytest.mark.parametrize("thp", [False, True])
def test_reclaim_of_one_guest_takes_only_its_pages_with_its_own_clock(thp):
    """ESX's per-VM swapping: guest 1's pages only, the second chance as the global clock,
    the hand kept per guest; guest 0 and the global hand untouched."""
    s, (z0, z1) = _state(guests=2, host_thp=thp, host_swap_bandwidth=0)
    touch(s, 0, z0, 0, 4096, 0.0, s.cost, 0)
    touch(s, 1, z1, 0, 4096, 0.0, s.cost, 0)
    _age(s)
    touch(s, 1, z1, 0, 1024, 0.0, s.cost, 0)  # referenced again: a second chance
    clock, rss0 = int(s.hi[L.HI.CLOCK]), guest_counters(s, 0).rss
    freed = reclaim_guest(s, 1, 1024, 0.0, s.cost)
    assert freed >= 1024 and guest_counters(s, 1).swap == freed
    assert guest_counters(s, 0).swap == 0 and guest_counters(s, 0).rss == rss0
    assert s.hi[L.HI.CLOCK] == clock and s.hi[L.HI.SWAP] == freed
    swapped = np.flatnonzero(z1.flags & L.PG_SWAPPED)
    if not thp:  # 4 KiB: the referenced pages were passed over, the next 1024 taken
        assert swapped.tolist() == list(range(1024, 2048))
        assert s.gi[1, L.GI.HOST_CLOCK] == 2048
    again = reclaim_guest(s, 1, 512, 0.0, s.cost)  # the hand goes on from where it stopped
    later = np.flatnonzero(z1.flags & L.PG_SWAPPED)
    assert again >= 512 and len(later) == freed + again
    assert region_count_ok(s.flags, s.reg_cnt, s.reg_huge)


def test_swap_device_is_one_queue_at_its_bandwidth():
    bw = 100 * MIB  # bytes/s
    s, (z,) = _state(host_thp=False, host_swap_bandwidth=bw)
    touch(s, 0, z, 0, 2048, 0.0, s.cost, 0)
    _age(s)
    n = reclaim(s, 1024, 0.0, s.cost, True)
    assert n == 1024
    # writing N bytes takes at least N / bandwidth
    assert s.hf[L.HF.SWAP_BUSY] >= n * 4096 / bw - 1e-12
    assert s.hf[L.HF.SWAP_BUSY] == pytest.approx(n * 4096 / bw)
    # a swap-in at t = 0 waits behind the writes, then its own read
    p = int(np.flatnonzero(z.flags & L.PG_SWAPPED)[0])
    s.gf[0, L.GF.DEBT] = 0.0
    stall = touch(s, 0, z, p, 1, 0.0, s.cost, 0)
    assert stall == pytest.approx((n + 1) * 4096 / bw)
    assert guest_counters(s, 0).swapin_stall == pytest.approx(stall)
    # once the device is idle again a swap-in costs its fault latency
    q = int(np.flatnonzero(z.flags & L.PG_SWAPPED)[0])
    stall = touch(s, 0, z, q, 1, 10.0, s.cost, 0)
    assert stall == pytest.approx(max(s.cost[INDEX["swap_in"]], 4096 / bw))


def test_direct_reclaim_stalls_the_faulting_guest_until_its_writes_are_done():
    bw = 50 * MIB
    s, (z0, z1) = _state(guests=2, host_thp=False, host_mem="100MiB", host_swap="64MiB",
                         host_swap_bandwidth=bw, host_kswapd=False)
    wmin = int(s.hi[L.HI.WMARK_MIN])
    touch(s, 0, z0, 0, 16384, 0.0, s.cost, 0)
    n1 = _free(s) - wmin - 100
    touch(s, 1, z1, 0, n1, 0.0, s.cost, 0)
    assert _free(s) == wmin + 100 and s.hi[L.HI.DIRECT_PAGES] == 0
    _age(s)
    before = guest_counters(s, 1).stall
    stall = touch(s, 1, z1, n1, 4096, 0.0, s.cost, 0)  # 16 MiB more
    out = int(s.hi[L.HI.DIRECT_PAGES])
    assert out >= 4096 - 100 and _free(s) >= wmin
    assert guest_counters(s, 0).swap == out  # the clock took guest 0's old pages
    assert guest_counters(s, 1).reclaim_stall >= out * 4096 / bw - 1e-9
    assert guest_counters(s, 1).stall - before == pytest.approx(stall)
    assert guest_counters(s, 0).reclaim_stall == 0.0  # the owner of the swapped pages does not wait


def test_host_swap_stalls_slow_the_faulting_guest_and_its_runtime():
    # one memhog larger than what the host has left: swapping happens in its faults
    base = dict(guests=1, guest_mem="256MiB", host_mem="160MiB", host_swap="256MiB",
                host_thp=False, workload="memhog", host_reserve=0,
                workload_params={"size": "200MiB", "boot": "8MiB", "hold_s": 0.0},
                duration_s=20, sample_s=0.1)
    fast = fphlib.simulate(SimConfig(host_swap_bandwidth=0, **base)).guest_summary.iloc[0]
    bw = 20 * MIB
    slow = fphlib.simulate(SimConfig(host_swap_bandwidth=bw, **base)).guest_summary.iloc[0]
    assert slow.swap_out_bytes > 32 * MIB
    assert slow.workload_runtime_s >= slow.swap_out_bytes / bw * 0.9  # device-bound
    assert slow.reclaim_stall_s > fast.reclaim_stall_s
    assert slow.workload_runtime_s - fast.workload_runtime_s == pytest.approx(
        slow.workload_stall_s - fast.workload_stall_s, rel=0.05, abs=0.01)


# ------------------------------------------------------------------ kswapd, watermarks


def test_host_watermarks_follow_min_free_kbytes():
    s, _ = _state(host_mem="15GiB")
    wmin, wlow, whigh = watermarks(15 << 18)
    assert (s.hi[L.HI.WMARK_MIN], s.hi[L.HI.WMARK_LOW], s.hi[L.HI.WMARK_HIGH]) == (
        wmin, wlow, whigh)
    assert wmin == int(np.sqrt(15 * 2**20 * 16)) // 4  # int_sqrt(lowmem_kbytes * 16) kB


def test_kswapd_wakes_below_low_and_stops_at_the_high_watermark():
    s, (z0, z1) = _state(guests=2, host_thp=False, host_mem="96MiB", host_swap="64MiB",
                         host_swap_bandwidth=0)
    low, high = int(s.hi[L.HI.WMARK_LOW]), int(s.hi[L.HI.WMARK_HIGH])
    room = _free(s) - low
    touch(s, 0, z0, 0, 16384, 0.0, s.cost, 0)
    assert not s.hi[L.HI.KSWAPD]  # still above low
    touch(s, 1, z1, 0, room - 16384 + 8, 0.0, s.cost, 0)
    assert _free(s) < low and s.hi[L.HI.KSWAPD] == 1
    assert s.hf[L.HF.HOST_NEXT] <= 0.0  # runs at the end of this tick
    stalls = guest_counters(s, slice(None)).stall.copy()
    _age(s)
    kswapd(s, 0.0, 1.0, s.cost)
    assert high <= _free(s) < high + 64  # SWAP_CLUSTER_MAX-sized steps at most
    assert s.hi[L.HI.KSWAPD] == 0 and s.hi[L.HI.KSWAPD_PAGES] > 0
    assert s.hi[L.HI.DIRECT_PAGES] == 0
    assert np.array_equal(guest_counters(s, slice(None)).stall, stalls)  # background: nobody stalls
    assert s.hf[L.HF.KSWAPD_CPU] == pytest.approx(
        s.hi[L.HI.KSWAPD_PAGES] * s.cost[INDEX["swap_out"]])


def test_kswapd_is_bounded_by_the_swap_device():
    bw = 10 * MIB
    s, (z,) = _state(host_thp=False, host_mem="96MiB", host_swap_bandwidth=bw)
    touch(s, 0, z, 0, 16384, 0.0, s.cost, 0)
    s.hi[L.HI.OVERHEAD_PAGES] = _free(s) + s.hi[L.HI.OVERHEAD_PAGES] - 10  # nearly full
    _age(s)
    kswapd(s, 0.0, 1e-3, s.cost)  # one tick: 10 MiB/s * 1 ms = 2.5 pages
    assert s.hi[L.HI.KSWAPD_PAGES] <= 3
    assert s.hf[L.HF.SWAP_BUSY] <= 1e-3 + 1e-12


# ------------------------------------------------------------------ THP swap-out


def test_reclaim_swaps_a_thp_whole_when_512_slots_are_free_else_splits_it():
    s, (z,) = _state(host_thp=True)
    touch(s, 0, z, 0, 1, 0.0, s.cost, 0)
    assert s.reg_huge[0] == 1
    _age(s)
    assert reclaim(s, 32, 0.0, s.cost, True) == HPAGE_PAGES
    assert s.hi[L.HI.THP_SWAPS] == 1 and s.hi[L.HI.THP_SPLITS] == 0
    assert s.reg_huge[0] == 0 and guest_counters(s, 0).swap == HPAGE_PAGES
    assert region_count_ok(s.flags, s.reg_cnt, s.reg_huge)
    # little swap left: split_huge_page, then 4 KiB pages
    s, (z,) = _state(host_thp=True, host_swap="1MiB")
    touch(s, 0, z, 0, 1, 0.0, s.cost, 0)
    _age(s)
    assert reclaim(s, 32, 0.0, s.cost, True) == 32
    assert s.hi[L.HI.THP_SWAPS] == 0 and s.hi[L.HI.THP_SPLITS] == 1
    assert s.reg_huge[0] == 0 and guest_counters(s, 0).swap == 32
    assert region_count_ok(s.flags, s.reg_cnt, s.reg_huge)


def test_a_referenced_thp_gets_a_second_chance_as_one_folio():
    s, (z,) = _state(host_thp=True)
    touch(s, 0, z, 0, 1, 0.0, s.cost, 0)
    touch(s, 0, z, 512, 1, 0.0, s.cost, 0)
    _age(s)
    z.flags[100] |= L.PG_REFERENCED  # one young page: the whole first THP is young
    assert reclaim(s, 1, 0.0, s.cost, True) == HPAGE_PAGES
    assert s.reg_huge[0] == 1 and s.reg_huge[1] == 0
    assert not (z.flags[:HPAGE_PAGES] & L.PG_REFERENCED).any()  # its bit was cleared


# ------------------------------------------------------------------ khugepaged


def _split_region(s, z, keep):
    """Back region 0 as a THP, then discard all but its first ``keep`` pages."""
    touch(s, 0, z, 0, 1, 0.0, s.cost, 0)
    if keep < HPAGE_PAGES:
        discard(s, 0, z, keep, HPAGE_PAGES - keep, s.cost)


@pytest.mark.parametrize("keep", [1, 100, 512])
def test_khugepaged_collapses_a_split_range_with_at_most_511_none(keep):
    s, (z,) = _state(host_thp=True)
    _split_region(s, z, keep)
    if keep == HPAGE_PAGES:  # split by a 4 KiB discard, then all backed again
        discard(s, 0, z, 0, 1, s.cost)
        touch(s, 0, z, 0, 1, 0.0, s.cost, 0)
    assert s.reg_huge[0] == 0 and s.reg_cnt[0] == keep
    assert collapse_ok(s, 0)
    cpu = s.hf[L.HF.CPU]
    assert khugepaged_scan(s, 10.0, s.cost) == 1
    assert s.reg_huge[0] == 1 and s.reg_cnt[0] == HPAGE_PAGES
    assert guest_counters(s, 0).rss == HPAGE_PAGES  # the none PTEs are backed (zero-filled)
    assert not (z.flags[:HPAGE_PAGES] & L.PG_DISCARDED).any()
    assert s.hf[L.HF.CPU] - cpu == pytest.approx(s.cost[INDEX["collapse"]])
    assert region_count_ok(s.flags, s.reg_cnt, s.reg_huge)
    # the guest's next touch of the range is no fault
    assert touch(s, 0, z, 300, 1, 11.0, s.cost, 0) == 0.0


def test_khugepaged_leaves_empty_huge_old_and_swapped_ranges():
    s, (z,) = _state(host_thp=True)
    touch(s, 0, z, 0, 1, 0.0, s.cost, 0)  # region 0: a THP (already huge)
    _split_region_at(s, z, 1, keep=10)  # region 1: split, 10 present
    _age(s)  # region 1 has no young page
    touch(s, 0, z, 2 * HPAGE_PAGES, 1, 0.0, s.cost, 0)
    discard(s, 0, z, 2 * HPAGE_PAGES, HPAGE_PAGES, s.cost)  # region 2: empty (512 none)
    assert not collapse_ok(s, 0) and not collapse_ok(s, 1) and not collapse_ok(s, 2)
    assert khugepaged_scan(s, 10.0, s.cost) == 0
    # swapped PTEs: at most max_ptes_swap = 64
    for n_swap, ok in ((MAX_PTES_SWAP, True), (MAX_PTES_SWAP + 1, False)):
        s, (z,) = _state(host_thp=False)
        touch(s, 0, z, 0, HPAGE_PAGES, 0.0, s.cost, 0)
        _age(s)
        assert reclaim(s, n_swap, 0.0, s.cost, True) == n_swap
        region = z.flags[:HPAGE_PAGES]
        region[(region & PG_BACKED) != 0] |= L.PG_REFERENCED
        assert collapse_ok(s, 0) == ok
        if ok:
            assert khugepaged_scan(s, 10.0, s.cost) == 1
            assert guest_counters(s, 0).swap == 0 and guest_counters(s, 0).rss == HPAGE_PAGES
            assert s.hf[L.HF.SWAP_BUSY] > 0.0  # the swap-ins went through the device


def _split_region_at(s, z, r, keep):
    base = r * HPAGE_PAGES
    touch(s, 0, z, base, 1, 0.0, s.cost, 0)
    discard(s, 0, z, base + keep, HPAGE_PAGES - keep, s.cost)


def test_collapse_ok_matches_its_naive_twin():
    rng = np.random.default_rng(7)
    s, (z,) = _state(host_thp=True)
    n_reg = 16
    for trial in range(200):
        kinds = rng.choice(["none", "swap", "young", "old"], size=HPAGE_PAGES,
                           p=rng.dirichlet(np.ones(4)))
        if trial % 5 == 0:
            kinds[:] = "none"
            kinds[rng.integers(HPAGE_PAGES)] = rng.choice(["young", "old"])
        r = trial % n_reg
        seg = slice(r * HPAGE_PAGES, (r + 1) * HPAGE_PAGES)
        f = np.zeros(HPAGE_PAGES, np.uint8)
        f[kinds == "swap"] = L.PG_SWAPPED
        f[kinds == "young"] = PG_BACKED | L.PG_REFERENCED
        f[kinds == "old"] = PG_BACKED
        z.flags[seg] = f
        s.reg_cnt[r] = int((kinds != "none").sum())
        huge = bool(trial % 7 == 0 and (kinds != "none").all() and not (kinds == "swap").any())
        s.reg_huge[r] = huge
        assert collapse_ok(s, r) == naive_collapse_ok(list(kinds), huge), trial


# ------------------------------------------------------------------ OOM killer


def test_oom_victim_matches_its_naive_twin():
    rng = np.random.default_rng(3)
    G = 5
    s, _ = _state(guests=G, host_thp=True)
    total = int(s.hi[L.HI.RAM_PAGES] + s.hi[L.HI.SWAP_CAP])
    ovh = 7
    for trial in range(300):
        procs = []
        for g in range(G):
            running = bool(rng.random() < 0.8)
            s.gi[g, L.GI.STATUS] = L.ST_RUNNING if running else L.ST_KILLED
            s.gi[g, L.GI.RSS] = rng.integers(0, 4) * 1000
            s.gi[g, L.GI.SWAP] = rng.integers(0, 3) * 500
            s.gi[g, L.GI.OOM_ADJ] = rng.choice([-1000, -500, 0, 0, 0, 300, 1000])
            lo = int(guest_counters(s, g).off) // HPAGE_PAGES
            s.reg_cnt[lo : lo + 32] = 0
            s.reg_cnt[lo : lo + rng.integers(0, 32)] = 1
            c = guest_counters(s, g)
            procs.append(dict(running=running, rss=int(c.rss) + ovh, swap=int(c.swap),
                              adj=int(c.oom_adj),
                              pgtables=int(page_table_pages(s, g))))
        got = oom_victim(s, ovh)
        assert got == naive_oom_victim(procs, total), (trial, procs)
        if got >= 0:
            assert guest_counters(s, got).oom_adj != -1000


def test_oom_picks_by_badness_and_never_an_unkillable_guest():
    # three guests fill a host without swap; guest 2 (the largest) is unkillable, guest 1
    # has oom_score_adj 500: guest 1 is killed although guest 0 holds as much
    hog = {"workload": "memhog", "workload_params": {"size": "200MiB", "boot": "8MiB",
                                                      "hold_s": 30.0}}
    cfg = SimConfig(host_mem="600MiB", host_swap=0, guests=3, guest_mem="256MiB",
                    host_reserve=0, duration_s=6, debug=True, guest_overrides=(
                        {**hog, "start_s": 0.0},
                        {**hog, "start_s": 1.0, "oom_score_adj": 500},
                        {**hog, "start_s": 2.0, "oom_score_adj": -1000}))
    res = fphlib.simulate(cfg)
    kills = res.events[res.events.kind == "oom_kill"]
    assert len(kills) >= 1
    assert int(kills.iloc[0].guest) == 1
    assert 2 not in set(kills.guest) and res.guest_summary.loc[2, "status"] == "running"


def test_oom_score_adj_is_validated():
    with pytest.raises(ValueError, match=r"guest_overrides\[0\]\['oom_score_adj'\].*-1000"):
        SimConfig(guest_overrides=[{"oom_score_adj": 1001}])
    with pytest.raises(ValueError, match=r"oom_score_adj"):
        SimConfig(guest_overrides=[{"oom_score_adj": 0.5}])
    assert SimConfig(guest_overrides=[{"oom_score_adj": -1000}]).guest_spec(0)[
        "oom_score_adj"] == -1000


def test_host_fields_are_validated():
    with pytest.raises(ValueError, match="^host_reserve: "):
        SimConfig(host_mem="1GiB", host_reserve="2GiB")
    with pytest.raises(ValueError, match="^host_swap_bandwidth: "):
        SimConfig(host_swap_bandwidth=-1)
    with pytest.raises(ValueError, match="^host_kswapd: "):
        SimConfig(host_kswapd="yes")
    assert SimConfig(host_swap_bandwidth="200MiB").host_swap_bandwidth == 200 << 20
    cfg = SimConfig(host_mem="15GiB")
    assert cfg.host_reserve_bytes() == HOST_RESERVE
    assert SimConfig.from_json(cfg.to_json()) == cfg


# ------------------------------------------------------------------ whole runs


def test_host_reserve_is_counted_in_host_memory():
    cfg = SimConfig(host_mem="2GiB", guests=2, guest_mem="256MiB", workload="idle",
                    duration_s=2, host_reserve="100MiB")
    res = fphlib.simulate(cfg)
    per_t = res.guests.groupby("t_s").rss_bytes.sum().to_numpy()
    assert np.array_equal(res.host.rss_bytes.to_numpy(), per_t + (100 << 20))
    assert ((res.host.rss_bytes + res.host.free_bytes) == 2 << 30).all()


def test_debug_conservation_holds_with_swap_kswapd_and_khugepaged():
    hog = {"workload": "memhog", "workload_params": {
        "size": "100MiB", "boot": "8MiB", "hold_s": 0.5, "repeat": 20, "gap_s": 0.5}}
    cfg = SimConfig(host_mem="320MiB", host_swap="256MiB", guests=3, guest_mem="128MiB",
                    host_reserve="16MiB", workload="churn", mechanism="balloon",
                    workload_params={"target": 0.7, "ops_per_s": 20000.0},
                    guest_overrides=(hog,), balloon_target="64MiB", balloon_interval_s=1.0,
                    host_swap_bandwidth=64 * MIB, duration_s=25, sample_s=0.25, debug=True)
    res = fphlib.simulate(cfg)  # raises InvariantError on a violation
    assert res.summary["swap_out_bytes"] > 0
    assert res.guest_summary.swap_in_pages.sum() > 0


def test_without_memory_pressure_the_new_host_model_changes_nothing():
    base = dict(host_mem="4GiB", guests=2, guest_mem="512MiB", workload="memhog",
                workload_params={"size": "300MiB", "hold_s": 1.0, "repeat": 2, "gap_s": 3.0},
                mechanism="page_reporting", duration_s=30, sample_s=0.5)
    off = fphlib.simulate(SimConfig(host_reserve=0, host_swap_bandwidth=0, host_kswapd=False,
                                    host_khugepaged=False, **base))
    on = fphlib.simulate(SimConfig(host_reserve="200MiB", **base))
    drop = ["wall_s"]
    a, b = off.guest_summary, on.guest_summary
    assert a.equals(b)
    assert off.guests.equals(on.guests)
    assert np.array_equal(on.host.rss_bytes - off.host.rss_bytes,
                          np.full(len(on.host), 200 << 20))
    sa, sb = off.summary.drop(drop), on.summary.drop(drop)
    for m in ("host_rss_peak_bytes", "host_rss_mean_bytes", "host_rss_final_bytes"):
        assert sb[m] - sa[m] == 200 << 20
        sa, sb = sa.drop(m), sb.drop(m)
    assert sa.equals(sb)


def test_kswapd_in_a_run_restores_the_high_watermark_in_the_background():
    base = dict(guests=1, guest_mem="256MiB", host_mem="160MiB", host_swap="256MiB",
                host_thp=False, workload="memhog", host_reserve=0, host_swap_bandwidth=20 * MIB,
                workload_params={"size": "200MiB", "boot": "8MiB", "hold_s": 8.0},
                duration_s=20, sample_s=0.1)
    on = fphlib.simulate(SimConfig(**base))
    off = fphlib.simulate(SimConfig(host_kswapd=False, **base))
    wmin, wlow, whigh = (w * 4096 for w in watermarks((160 * MIB) // 4096))
    assert on.host.free_bytes.iloc[-1] >= whigh  # kswapd went on to the high watermark
    assert wmin <= off.host.free_bytes.iloc[-1] < wlow  # direct reclaim stops near min
    # what kswapd wrote in the background, the guest did not wait for in its faults
    a, b = on.guest_summary.iloc[0], off.guest_summary.iloc[0]
    assert a.reclaim_stall_s < b.reclaim_stall_s
    assert a.workload_runtime_s <= b.workload_runtime_s


def test_kswapd_is_one_cpu_even_when_a_thp_goes_out_whole():
    s, (z,) = _state(host_thp=True, host_mem="96MiB", host_swap_bandwidth=0)
    touch(s, 0, z, 0, 1, 0.0, s.cost, 0)
    touch(s, 0, z, HPAGE_PAGES, 1, 0.0, s.cost, 0)
    s.hi[L.HI.OVERHEAD_PAGES] += _free(s) - int(s.hi[L.HI.WMARK_LOW]) + 1  # just below low
    _age(s)
    s.hi[L.HI.KSWAPD] = 1
    kswapd(s, 0.0, 1e-3, s.cost)  # one THP: 512 x swap_out of CPU, more than the tick
    spent = HPAGE_PAGES * s.cost[INDEX["swap_out"]]
    assert s.hi[L.HI.KSWAPD_PAGES] == HPAGE_PAGES and spent > 1e-3
    assert s.hf[L.HF.KSWAPD_UNTIL] == pytest.approx(spent)
    s.hi[L.HI.OVERHEAD_PAGES] += _free(s) - int(s.hi[L.HI.WMARK_LOW]) + 1  # low again
    s.hi[L.HI.KSWAPD] = 1
    kswapd(s, 1e-3, 2e-3, s.cost)  # still busy with the first THP: nothing more
    assert s.hi[L.HI.KSWAPD_PAGES] == HPAGE_PAGES and s.hi[L.HI.KSWAPD] == 1


# ------------------------------------------------------------------ MADV_FREE


def _lazy(s, g):
    return int(s.gi[g, L.GI.LAZYFREE])


def test_madv_free_keeps_pages_backed_until_reclaim_and_a_write_keeps_them():
    s, (z,) = _state(host_thp=False, host_madvise="free")
    assert s.pi[L.PI.MADV_FREE] == 1
    touch(s, 0, z, 0, 64, 0.0, s.cost, 0)
    z.flags[10] |= PG_DATA  # a page whose guest data the hint raced with
    lost = guest_counters(s, 0).lost
    discard(s, 0, z, 0, 32, s.cost)
    # lazily freed: still backed and in RSS, returned nothing yet, nothing lost yet
    assert guest_counters(s, 0).rss == 64 and int(s.gi[0, L.GI.RETURNED]) == 0
    assert _lazy(s, 0) == 32 == int(s.hi[L.HI.LAZYFREE])
    assert (z.flags[:32] & PG_BACKED).all() and (z.flags[:32] & L.PG_DISCARDED).all()
    assert not (z.flags[:32] & L.PG_REFERENCED).any()  # madvise_free_pte_range: pte_mkold
    assert guest_counters(s, 0).lost == lost
    discard(s, 0, z, 0, 32, s.cost)  # hinted again: counted once
    assert _lazy(s, 0) == 32
    # a guest write before reclaim keeps the page: no fault, no refault
    faults = int(s.gi[0, L.GI.FAULTS])
    assert touch(s, 0, z, 0, 4, 1.0, s.cost, 0) == 0.0
    assert int(s.gi[0, L.GI.FAULTS]) == faults and int(s.gi[0, L.GI.REFAULTS]) == 0
    assert _lazy(s, 0) == 28 and not (z.flags[:4] & L.PG_DISCARDED).any()


def test_host_reclaim_takes_lazily_freed_pages_first_without_swap_io():
    s, (z0, z1) = _state(guests=2, host_thp=False, host_madvise="free",
                         host_swap_bandwidth=0)
    touch(s, 0, z0, 0, 256, 0.0, s.cost, 0)
    touch(s, 1, z1, 0, 256, 0.0, s.cost, 0)
    _age(s)  # guest 0's old anon pages come first on the clock, and are not referenced
    z1.flags[128:256] &= ~PG_DATA  # freed by the guest (free_pages_prepare) ...
    z1.flags[200] |= PG_DATA  # ... but one reused and written before the hint was made
    discard(s, 1, z1, 128, 128, s.cost)  # guest 1's upper half lazily freed
    assert reclaim(s, 100, 0.0, s.cost, False) == 100
    assert s.hi[L.HI.SWAP] == 0 and guest_counters(s, 0).rss == 256  # no anon page swapped
    assert guest_counters(s, 1).rss == 156 and _lazy(s, 1) == 28
    assert int(s.gi[1, L.GI.LAZYFREED]) == 100 and int(s.gi[1, L.GI.RETURNED]) == 100
    # 28 lazy pages left, then the clock swaps anonymous pages
    assert reclaim(s, 60, 0.0, s.cost, False) == 60
    assert _lazy(s, 1) == 0 and s.hi[L.HI.SWAP] == 32 and s.hi[L.HI.LAZYFREE] == 0
    assert guest_counters(s, 1).lost == 1  # page 200 held data: lost when taken, not before
    # a taken page refaults like a discarded one
    assert touch(s, 1, z1, 130, 1, 1.0, s.cost, 0) > 0
    assert int(s.gi[1, L.GI.REFAULTS]) == 1 and int(s.gi[1, L.GI.RETURNED]) == 127
    assert region_count_ok(s.flags, s.reg_cnt, s.reg_huge)


def test_one_guest_reclaim_and_collapse_handle_lazily_freed_pages():
    s, (z,) = _state(host_thp=True, host_madvise="free", host_swap_bandwidth=0)
    touch(s, 0, z, 0, 1, 0.0, s.cost, 0)  # a THP
    discard(s, 0, z, 0, 256, s.cost)  # part of it: split, 256 pages lazily freed
    assert s.reg_huge[0] == 0 and _lazy(s, 0) == 256
    assert reclaim_guest(s, 0, 16, 0.0, s.cost) == 16  # lazily freed ones: no swap I/O
    assert s.hi[L.HI.SWAP] == 0 and _lazy(s, 0) == 240
    touch(s, 0, z, 300, 1, 0.0, s.cost, 0)  # referenced: khugepaged will collapse
    assert khugepaged_scan(s, 10.0, s.cost) == 1
    assert _lazy(s, 0) == 0 == int(s.hi[L.HI.LAZYFREE])  # copied into the new THP
    assert not (z.flags[:HPAGE_PAGES] & L.PG_DISCARDED).any()
    assert region_count_ok(s.flags, s.reg_cnt, s.reg_huge)


def test_madvise_defaults_per_mechanism_and_bad_values():
    assert SimConfig(mechanism="hinting_bitmap").madvise() == "free"  # RFC v10/v11
    assert SimConfig(mechanism="page_reporting").madvise() == "dontneed"
    assert SimConfig(mechanism="hinting_bitmap", host_madvise="dontneed").madvise() == "dontneed"
    with pytest.raises(ValueError, match="^host_madvise: 'lazy' is not allowed; expected one"):
        SimConfig(host_madvise="lazy")


def test_memhog_sequence_with_madv_free_reclaims_lazily_freed_memory_not_swap():
    """v11's claim: with MADV_FREE the host keeps what a finished memhog freed in RSS until
    it needs it, then takes it back without swapping; debug checks every invariant."""
    from fphlib.experiments import sequence_config

    free = fphlib.simulate(sequence_config("hinting_bitmap", scale=1 / 16, debug=True))
    dont = fphlib.simulate(sequence_config("hinting_bitmap", scale=1 / 16, debug=True,
                                           host_madvise="dontneed"))
    gf, gd = free.guest_summary, dont.guest_summary
    assert gf.lazyfreed_bytes.sum() > 0 and gd.lazyfree_bytes.sum() == 0
    assert free.summary["swap_out_bytes"] == dont.summary["swap_out_bytes"] == 0
    # memory stays in the host's RSS longer with MADV_FREE
    assert free.summary["host_rss_mean_bytes"] > dont.summary["host_rss_mean_bytes"]
    assert np.allclose(gf.workload_runtime_s, gd.workload_runtime_s, rtol=0.05)
