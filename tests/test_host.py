"""Host model: lazy backing, RSS accounting, THP, discards, swap, OOM kills, lost writes."""

import numpy as np

import fphlib
from fphlib.api.counters import guest_counters
from fphlib.guest.buddy import rmqueue_smallest
from fphlib.host.backing import HPAGE_PAGES, count_data_pages, discard, region_count_ok, touch
from fphlib.host.reclaim import _swap_out
from fphlib.state import layout as L
from fphlib.state.zone import PG_BACKED, PG_DATA

from engine_helpers import one_guest
from naive import naive_dontneed, naive_swap_clock


def _touch(s, z, pfn, n):
    return touch(s, 0, z, pfn, n, 0.0, s.cost, 0)


def test_lazy_backing_4k_and_thp():
    s, z = one_guest(host_thp=False)
    assert guest_counters(s, 0).rss == 0
    pfn = rmqueue_smallest(z, 0)
    stall = _touch(s, z, pfn, 1)
    assert guest_counters(s, 0).rss == 1 and s.hi[L.HI.RSS] == 1
    assert stall == s.cost[fphlib.costs.INDEX["fault_4k"]]
    assert _touch(s, z, pfn, 1) == 0.0  # already backed: no fault
    s, z = one_guest(host_thp=True)
    pfn = rmqueue_smallest(z, 0)
    stall = _touch(s, z, pfn, 1)
    assert guest_counters(s, 0).rss == HPAGE_PAGES  # the whole 2 MiB region
    assert stall == s.cost[fphlib.costs.INDEX["fault_2m"]]
    assert z.flags[pfn] & PG_DATA and not z.flags[pfn + 1] & PG_DATA
    assert region_count_ok(s.flags, s.reg_cnt, s.reg_huge)


def test_partial_discard_splits_a_thp_and_whole_discard_zaps_it():
    s, z = one_guest(host_thp=True)
    _touch(s, z, 0, 1)
    _touch(s, z, 512, 1)
    assert s.reg_huge[0] == 1 and s.reg_huge[1] == 1
    discard(s, 0, z, 100, 8, s.cost)  # part of region 0: split, 8 pages go
    assert s.reg_huge[0] == 0 and s.reg_cnt[0] == HPAGE_PAGES - 8
    assert s.gi[0, L.GI.THP_SPLITS] == 1
    discard(s, 0, z, 512, 512, s.cost)  # all of region 1: zapped whole, not split
    assert s.reg_cnt[1] == 0 and s.gi[0, L.GI.THP_SPLITS] == 1
    assert guest_counters(s, 0).rss == HPAGE_PAGES - 8
    assert region_count_ok(s.flags, s.reg_cnt, s.reg_huge)
    # a refault of a discarded page counts; a never-backed page does not
    _touch(s, z, 100, 1)
    assert guest_counters(s, 0).refaults == 1
    _touch(s, z, 4096, 1)
    assert guest_counters(s, 0).refaults == 1


def test_discarding_data_the_guest_still_needs_is_a_lost_write():
    s, z = one_guest(host_thp=False)
    pfn = rmqueue_smallest(z, 0)
    _touch(s, z, pfn, 1)
    assert z.flags[pfn] & PG_DATA
    discard(s, 0, z, pfn, 1, s.cost)
    assert guest_counters(s, 0).lost == 1
    assert not z.flags[pfn] & PG_BACKED


def test_discard_matches_the_naive_twin_on_random_flags():
    """Random per-page host states over a few 2 MiB regions, some with nothing backed or
    swapped (the fast path for regions discarded before), some with guest data left on such
    pages: lost writes, returned pages, flags and counters as page-by-page DONTNEED."""
    rng = np.random.default_rng(7)
    for _ in range(30):
        s, z = one_guest(host_thp=False, guest_mem="16MiB")
        n = 4 * HPAGE_PAGES
        for r in range(4):
            kind = rng.integers(3)  # 0: nothing present, 1: mixed, 2: data left, none present
            for q in range(r * HPAGE_PAGES, (r + 1) * HPAGE_PAGES):
                f = 0
                if kind == 1:
                    f = int(rng.choice([0, PG_BACKED, L.PG_SWAPPED])) | int(
                        rng.choice([0, PG_DATA]))
                elif kind == 2 and rng.random() < 0.1:
                    f = PG_DATA | L.PG_DISCARDED
                z.flags[q] = f
        present = ((z.flags[:n] & (PG_BACKED | L.PG_SWAPPED)) != 0).reshape(-1, HPAGE_PAGES)
        s.reg_cnt[:4] = present.sum(axis=1)
        backed = int((z.flags[:n] & PG_BACKED).astype(bool).sum())
        swapped = int((z.flags[:n] & L.PG_SWAPPED).astype(bool).sum())
        s.gi[0, L.GI.RSS] = s.hi[L.HI.RSS] = backed
        s.gi[0, L.GI.SWAP] = s.hi[L.HI.SWAP] = swapped
        want = [int(f) for f in z.flags[:n]]
        pfn = int(rng.integers(0, n - 1))
        npages = int(rng.integers(1, n - pfn + 1))
        lost, returned = naive_dontneed(want, pfn, npages)
        discard(s, 0, z, pfn, npages, s.cost)
        assert z.flags[:n].tolist() == want
        assert guest_counters(s, 0).lost == lost
        assert s.gi[0, L.GI.RETURNED] == returned
        assert s.gi[0, L.GI.RSS] + s.gi[0, L.GI.SWAP] == backed + swapped - returned
        assert region_count_ok(s.flags, s.reg_cnt, s.reg_huge)



def test_count_data_pages_matches_a_page_by_page_count():
    """The discard's count of pages with guest data, 8 flag bytes per load, against a sum
    page by page: any alignment and length, every flag byte value (other bits set too)."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(1, 1200))
        flags = rng.integers(0, 256, n).astype(np.uint8)
        if rng.random() < 0.3:  # mostly without data, as a free block's pages are
            flags &= np.uint8(~PG_DATA & 0xFF)
            flags[rng.integers(0, n, 3)] |= PG_DATA
        start = int(rng.integers(0, n))
        end = int(rng.integers(start, n + 1))
        want = int(((flags[start:end] & PG_DATA) != 0).sum())
        assert count_data_pages(flags, start, end) == want


def test_swap_clock_matches_the_naive_twin_on_random_flags():
    """Host reclaim's clock (which passes 8 unbacked pages per load and clears a THP's accessed
    bits 8 pages at a time) against the page-by-page clock: long unbacked stretches, sparse and
    dense backing, referenced, lazily freed and whole-THP regions, hands at any alignment,
    ranges that are not whole regions, little or much swap room."""
    rng = np.random.default_rng(11)
    n_regions = 16
    n = n_regions * HPAGE_PAGES
    for _ in range(40):
        s, z = one_guest(host_thp=True, guest_mem="32MiB")
        flags = np.zeros(n, np.uint8)
        q = 0
        while q < n:  # runs of pages alike, some long
            run = int(rng.choice([1, 3, 8, 40, 300, 2000]))
            backed = rng.random() < rng.choice([0.0, 0.2, 0.9])
            for p in range(q, min(q + run, n)):
                f = 0
                if backed or rng.random() < 0.02:
                    f = PG_BACKED | int(rng.choice([0, L.PG_REFERENCED, L.PG_DISCARDED, 0]))
                flags[p] = f
            q += run
        huge = np.zeros(n_regions, np.uint8)
        for r in range(n_regions):
            region = flags[r * HPAGE_PAGES:(r + 1) * HPAGE_PAGES]
            if rng.random() < 0.4:  # a THP: all backed, maybe referenced
                region[:] = PG_BACKED
                if rng.random() < 0.5:
                    region[rng.integers(0, HPAGE_PAGES, 3)] |= L.PG_REFERENCED
                huge[r] = 1
        z.flags[:n] = flags
        s.reg_huge[:n_regions] = huge
        lo = int(rng.integers(0, n // 2))
        hi = int(rng.integers(lo + 1, n + 1))
        hand = int(rng.integers(lo, hi))
        want = int(rng.choice([1, 32, 600, 5000]))
        room = int(rng.choice([10, 700, 100_000]))
        s.hi[L.HI.SWAP] = 0
        s.hi[L.HI.SWAP_CAP] = room
        before = {k: int(s.hi[getattr(L.HI, k)]) for k in ("THP_SWAPS", "THP_SPLITS")}
        lazy_before = int(s.gi[0, L.GI.LAZYFREED])
        want_flags, want_huge = [int(f) for f in flags], [int(h) for h in huge]
        expect = naive_swap_clock(want_flags, want_huge, lo, hi, hand, want, room)
        freed, end = _swap_out(s, lo, hi, hand, want, 0.0, s.cost, False)
        got = (freed, end, int(s.hi[L.HI.SWAP]),
               int(s.hi[L.HI.THP_SWAPS]) - before["THP_SWAPS"],
               int(s.hi[L.HI.THP_SPLITS]) - before["THP_SPLITS"],
               int(s.gi[0, L.GI.LAZYFREED]) - lazy_before)
        assert got == expect
        assert z.flags[:n].tolist() == want_flags
        assert s.reg_huge[:n_regions].tolist() == want_huge


def test_hints_below_the_thp_order_split_host_thps():
    """Page reporting at order 5 discards 128 KiB of a host THP at a time (a split per THP it
    first touches); at order 9 it discards whole THPs (none split); without host THPs there
    is nothing to split."""

    def splits(hint_order, thp=True):
        cfg = fphlib.SimConfig(host_mem="2GiB", host_thp=thp, guests=1, guest_mem="512MiB",
                               workload="memhog", workload_params={"size": "256MiB"},
                               mechanism="page_reporting", hint_order=hint_order,
                               report_delay_s=0.5, duration_s=10)
        res = fphlib.simulate(cfg)
        assert res.summary["reported_bytes"] > 0
        return int(res.guest_summary.thp_splits.sum())

    assert splits(5) > 0
    assert splits(9) == 0
    assert splits(5, thp=False) == 0


def _series_ok(res, host_mem):
    h = res.host
    assert (h.rss_bytes >= 0).all() and (h.swap_bytes >= 0).all()
    assert (h.rss_bytes <= host_mem).all()
    assert (res.guests.rss_bytes >= 0).all()
    assert (h.rss_bytes + h.free_bytes == host_mem).all()


def test_swap_instead_of_oom_when_swap_is_there():
    cfg = fphlib.SimConfig(
        host_mem="8GiB", host_swap="8GiB", guests=3, guest_mem="4GiB", workload="memhog",
        workload_params={"size": "3GiB", "hold_s": 30}, duration_s=30, debug=True,
    )
    res = fphlib.simulate(cfg)
    _series_ok(res, 8 << 30)
    assert res.summary["oom_kills"] == 0
    assert res.summary["swap_out_bytes"] > 0
    assert res.host.swap_bytes.max() > 0
    assert res.summary["host_rss_peak_bytes"] <= 8 << 30


def test_oom_kills_the_largest_guest_and_the_run_goes_on():
    # Nitesh v8's admission test: 5 GB guests touching 4 GB, launched one after another on a
    # 15837 MB host without swap: the fourth launch OOM-kills a guest without hinting.
    base = dict(
        host_mem="15837MiB", guests=5, guest_mem="5GiB", workload="memhog",
        workload_params={"size": "4GiB", "hold_s": 2},
        guest_overrides=[{"start_s": 30 * i} for i in range(5)], duration_s=150,
    )
    res = fphlib.simulate(fphlib.SimConfig(mechanism="none", **base))
    _series_ok(res, 15837 << 20)
    kills = res.events[res.events.kind == "oom_kill"]
    assert len(kills) >= 1 and res.summary["oom_kills"] == len(kills)
    first = kills.iloc[0]
    assert first.t_s >= 90  # not before the fourth guest starts
    victim = int(first.guest)
    # all old guests are equal: on a tie oom_evaluate_task keeps the later one (>=)
    assert victim == 2
    g = res.guests
    after = g[(g.guest == victim) & (g.t_s > first.t_s)]
    assert (after.rss_bytes == 0).all()
    assert res.guest_summary.loc[victim, "status"] == "oom_killed"
    assert g[g.t_s == g.t_s.max()].rss_bytes.sum() > 0  # the others still run
    rep = fphlib.simulate(fphlib.SimConfig(mechanism="page_reporting", **base))
    assert rep.summary["oom_kills"] == 0


def test_host_rss_is_never_negative_and_matches_guest_sum():
    cfg = fphlib.SimConfig(
        host_mem="4GiB", guests=3, guest_mem="1GiB", workload="churn",
        workload_params={"target": 0.6, "ops_per_s": 20000}, mechanism="page_reporting",
        duration_s=10, debug=True,
    )
    res = fphlib.simulate(cfg)
    _series_ok(res, 4 << 30)
    per_t = res.guests.groupby("t_s").rss_bytes.sum().to_numpy()
    # the host's own memory (host_reserve) on top of the guests'
    assert np.array_equal(per_t + cfg.host_reserve_bytes(), res.host.rss_bytes.to_numpy())


def test_conservation_holds_when_the_host_kills_a_guest_mid_touch():
    # found by fuzzing: a kill inside touch() used to leave the block uncounted
    cfg = fphlib.SimConfig.from_json(
        '{"balloon_interval_s": 2.0, "balloon_target": 67108864, "deflate_on_oom": true,'
        ' "duration_s": 2.0, "guest_mem": 268435456, "guests": 4, "hint_order": 0,'
        ' "guest_overrides": [{"start_s": 0.94}, {"start_s": 0.70}, {"start_s": 0.007},'
        ' {"start_s": 0.097}], "host_mem": 314572800, "host_swap": 67108864,'
        ' "host_thp": false, "mechanism": "balloon", "report_capacity": 1, "seed": 243010,'
        ' "sample_s": 0.05, "vcpus": 2, "workload": "memhog", "debug": true,'
        ' "workload_params": {"boot": 67108864, "gap_s": 0.0, "hold_s": 0.5, "order": 0,'
        ' "rate": 536870912, "runs": 3, "size": 209715200}}'
    )
    res = fphlib.simulate(cfg)
    assert res.summary["oom_kills"] >= 1
    _series_ok(res, 314572800)


def test_backing_reexports_memory_oom_and_reclaim_which_never_import_it():
    """host/memory, oom and reclaim sit below backing (imports run one way); backing still
    offers their names, the same objects, to callers that import them from it."""
    import ast
    import importlib
    from pathlib import Path

    from fphlib.host import backing

    below = {"memory": set(), "oom": {"memory"}, "reclaim": {"memory", "oom"}}
    for name, allowed in below.items():
        module = importlib.import_module(f"fphlib.host.{name}")
        tree = ast.parse(Path(module.__file__).read_text())
        local = {n.module for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}
        assert local - {"costs"} <= allowed, (name, local)
        for attr, value in vars(module).items():
            if attr in backing.__all__:
                assert getattr(backing, attr) is value, attr
    assert {"ensure_ram", "oom_victim", "reclaim", "record_event", "WRITTEN"} <= set(
        backing.__all__)
