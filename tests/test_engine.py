"""The engine and its API: result shape, save/load, determinism, conservation, debug mode."""

import mmap
import weakref
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fphlib
from fphlib.api.counters import guest_counters
from fphlib.api.result import GUEST_COLUMNS, HOST_COLUMNS, SUMMARY_METRICS
from fphlib.engine.build import build_state, state_nbytes
from fphlib.engine.check import InvariantError, check_guest
from fphlib.engine.loop import run_chunk
from fphlib.hinting import REGISTRY, mechanism_is_safe
from fphlib.state import layout as L
from fphlib.state.zone import CFG_REPORTED, NOT_HEAD, PG_REPORTED

from engine_helpers import one_guest

DESIGN_METRICS = (
    "host_rss_peak_bytes host_rss_mean_bytes host_rss_final_bytes reported_bytes reports "
    "vmexits refault_pages alloc_failures lost_writes guest_cpu_overhead_s host_cpu_s "
    "swap_out_bytes oom_kills workload_runtime_s zone_lock_hold_s events wall_s"
).split()


def small(**kw):
    base = dict(
        host_mem="4GiB", guests=2, guest_mem="256MiB", workload="churn",
        workload_params={"boot": "16MiB", "target": 0.5, "ops_per_s": 20000},
        mechanism="page_reporting", duration_s=5, sample_s=0.25,
    )
    base.update(kw)
    return fphlib.SimConfig(**base)


def test_result_has_the_design_names():
    res = fphlib.simulate(small())
    # DESIGN §3.7, then the migration metrics of DESIGN §4 (and this model's additions)
    n = len(DESIGN_METRICS)
    assert list(res.summary.index) == list(SUMMARY_METRICS)
    assert list(SUMMARY_METRICS)[:n] == DESIGN_METRICS
    assert list(SUMMARY_METRICS)[n:n + 4] == [
        "migration_time_s", "migration_bytes", "migration_rounds", "downtime_s"]
    assert list(res.host.columns) == list(HOST_COLUMNS)
    assert list(res.guests.columns)[:7] == [
        "t_s", "guest", "rss_bytes", "free_bytes", "reported_bytes", "isolated_bytes",
        "used_bytes",
    ]
    assert list(res.guests.columns) == list(GUEST_COLUMNS)
    assert len(res.host) == 21 and len(res.guests) == 42
    assert list(res.guest_summary.guest) == [0, 1]
    assert set(res.events.columns) == {"t_s", "guest", "kind", "value"}
    assert (res.events.kind == "guest_start").sum() == 2
    assert res.config == small()
    assert res.summary["wall_s"] > 0


def test_save_load_round_trip(tmp_path):
    res = fphlib.simulate(small())
    path = tmp_path / "run"
    res.save(path)
    back = fphlib.SimResult.load(path)
    pd.testing.assert_series_equal(back.summary, res.summary)
    pd.testing.assert_frame_equal(back.host, res.host)
    pd.testing.assert_frame_equal(back.guests, res.guests)
    pd.testing.assert_frame_equal(back.guest_summary, res.guest_summary)
    pd.testing.assert_frame_equal(back.events, res.events)
    assert back.config == res.config
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        res.save(path)
    res.save(path, overwrite=True)  # overwrite is atomic too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(ValueError, match="not a saved SimResult"):
        fphlib.SimResult.load(tmp_path / "nothing")


def test_simulate_rejects_non_configs():
    with pytest.raises(ValueError, match="cfg: expected a SimConfig"):
        fphlib.simulate({"guests": 1})


def test_same_seed_identical_frames_different_seed_different_churn():
    a = fphlib.simulate(small(seed=7))
    b = fphlib.simulate(small(seed=7))
    c = fphlib.simulate(small(seed=8))
    pd.testing.assert_frame_equal(a.guests, b.guests)
    pd.testing.assert_frame_equal(a.host, b.host)
    assert a.summary.drop("wall_s").equals(b.summary.drop("wall_s"))
    assert not a.guests.free_bytes.equals(c.guests.free_bytes)


def test_progress_chunks_change_nothing():
    a = fphlib.simulate(small(seed=3), progress=False)
    b = fphlib.simulate(small(seed=3), progress=True)
    pd.testing.assert_frame_equal(a.guests, b.guests)
    assert a.summary.drop("wall_s").equals(b.summary.drop("wall_s"))


def test_guest_count_does_not_recompile():
    fphlib.simulate(small(guests=1))
    n = len(run_chunk.signatures)
    fphlib.simulate(small(guests=5, host_mem="8GiB"))
    fphlib.simulate(small(guests=3, mechanism="balloon", balloon_target="128MiB"))
    assert len(run_chunk.signatures) == n


def test_state_is_at_most_16_bytes_per_guest_page():
    cfg = small(guests=4, guest_mem="1GiB", workload="churn",
                workload_params={"target": 0.95, "orders": {0: 1}})
    s, _ = build_state(cfg)
    pages = 4 * (1 << 30) // 4096
    fixed = s.rec_h.nbytes + s.rec_g.nbytes + s.ev.nbytes  # per run, not per page
    assert (state_nbytes(s) - fixed) / pages <= 16


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    mech=st.sampled_from(REGISTRY),
    hint_order=st.integers(0, 10),
    cap=st.sampled_from([1, 4, 32]),
    vcpus=st.integers(1, 4),
    target=st.floats(0.1, 0.9),
    thp=st.booleans(),
    tight=st.booleans(),
)
def test_conservation_in_debug_mode_over_random_runs(
    seed, mech, hint_order, cap, vcpus, target, thp, tight
):
    cfg = fphlib.SimConfig(
        host_mem="600MiB" if tight else "4GiB", host_swap="128MiB" if tight else 0,
        host_thp=thp, guests=3, guest_mem="128MiB", vcpus=vcpus, workload="churn",
        workload_params={"boot": "8MiB", "target": target, "ops_per_s": 50000,
                         "orders": {0: 0.8, 1: 0.05, 3: 0.05, 9: 0.05, 10: 0.05}},
        mechanism=mech, hint_order=hint_order, report_capacity=cap, report_delay_s=0.2,
        balloon_target="64MiB", balloon_interval_s=0.5,
        duration_s=3, sample_s=0.05, seed=seed, debug=True,
    )
    res = fphlib.simulate(cfg)  # raises InvariantError on the first violation
    if mechanism_is_safe(mech, cfg.mechanism_settings()):
        assert res.summary["lost_writes"] == 0
    g = res.guests
    assert (g.free_bytes + g.used_bytes + g.isolated_bytes + g.pcp_bytes + g.balloon_bytes
            + g.page_cache_bytes + g.slab_bytes == 128 << 20).all()


def test_debug_check_names_guest_and_invariant():
    s, z = one_guest(guest_mem="64MiB")
    assert check_guest(s, 0, z) == (0, 0)
    s.z_nr[0, 10] += 1
    assert check_guest(s, 0, z)[0] == 3
    s.z_nr[0, 10] -= 1
    s.gi[0, L.GI.USED] = 5
    assert check_guest(s, 0, z)[0] == 9
    s.gi[0, L.GI.USED] = 0
    assert check_guest(s, 0, z) == (0, 0)
    head = int(z.head[10])
    z.flags[head] |= PG_REPORTED  # flagged without being counted
    assert check_guest(s, 0, z) == (22, 1024)
    z.cfg[CFG_REPORTED] = 1024
    assert check_guest(s, 0, z) == (0, 0)


def test_debug_violation_raises_with_guest_time_and_invariant(monkeypatch):
    import fphlib.api.simulate as sim

    real = sim.build_state

    def corrupt(cfg, **kw):
        s, info = real(cfg, **kw)
        s.gi[1, L.GI.USED] = 12345  # allocated pages no longer add up
        return s, info

    monkeypatch.setattr(sim, "build_state", corrupt)
    with pytest.raises(InvariantError, match=r"guest 1 at t=0 s: invariant 9 violated"):
        fphlib.simulate(small(debug=True))
    res = fphlib.simulate(small(debug=False))  # not checked without debug
    assert np.isfinite(res.summary["host_rss_peak_bytes"])


def test_warmup_runs_every_mechanism_reports_progress_and_stamps(monkeypatch, tmp_path):
    from fphlib.api import warmup as w
    from fphlib.hinting import REGISTRY

    monkeypatch.setattr(w, "_stamp_path", lambda: tmp_path / "warm.stamp")
    assert not w.is_warm()
    calls = []
    assert fphlib.warmup(progress=lambda *a: calls.append(a)) >= 0
    runs = [c[2] for c in calls if c[2] != w.COMPILING]
    assert runs[: len(REGISTRY)] == [f"mechanism {m}" for m in REGISTRY]
    total = calls[-1][1]
    assert calls[-1] == (total, total, "done") and total > len(REGISTRY) + 1
    done = [c[0] for c in calls]
    assert done == sorted(done)  # a bar that never goes back
    # once the runs start, the total stays; the shared compile (if any) counts toward it
    first_run = next(k for k, c in enumerate(calls) if c[2] != w.COMPILING)
    assert {c[1] for c in calls[first_run:]} == {total}
    assert {c[1] for c in calls[:first_run]} <= {total}
    assert w.is_warm()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert not w.is_warm()  # another cache directory is not warm


def test_warmup_compiles_all_runs_units_in_one_pool_and_counts_it_in_its_progress(
        monkeypatch, tmp_path):
    """A cold warmup hands every unit its runs need to one shared compile (each once), and
    its progress bar counts that compile before the runs, never going back."""
    from fphlib.api import warmup as w
    from fphlib.engine import parallel_compile as pc
    from fphlib.engine.build import build_state, compile_items, unit_slots

    pooled = []

    def fake_precompile(items, jobs=None, progress=None):
        pooled.extend(items)
        for done in range(0, len(items) + 1, 10):
            progress(done, len(items))
        return 1

    monkeypatch.setattr(pc, "precompile", fake_precompile)
    monkeypatch.setattr(w, "_stamp_path", lambda: tmp_path / "warm.stamp")
    calls = []
    fphlib.warmup(progress=lambda *a: calls.append(a))
    keys = [(id(f), sig, python_facing) for f, sig, python_facing in pooled]
    assert len(keys) == len(set(keys))  # each unit once
    for _, cfg in w._configs(w._tiny_trace(tmp_path)):
        s, _ = build_state(cfg, bind=False)
        assert {(id(f), sig, p) for f, sig, p in compile_items(s, unit_slots(s, cfg))} <= set(keys)
    steps = len(list(w._configs(w._tiny_trace(tmp_path))))
    total = len(pooled) + steps + 1
    compiling = [c for c in calls if c[2] == w.COMPILING]
    assert compiling[0] == (0, total, w.COMPILING) and calls[: len(compiling)] == compiling
    assert calls[len(compiling)][:2] == (len(pooled), total)  # the first run follows on
    assert calls[-1] == (total, total, "done")
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_warmup_reaches_every_registered_unit(tmp_path):
    """A notebook's first Run after ``make lab`` must not compile: the warmup runs every
    registered mechanism, workload and host policy (each a compile unit of its own), the
    migration thread, guest swap and page-cache I/O."""
    from fphlib.api import warmup as w
    from fphlib.hinting import REGISTRY as MECHANISMS
    from fphlib.host.policy import REGISTRY as POLICIES
    from fphlib.workloads import REGISTRY as WORKLOADS

    cfgs = [cfg for _, cfg in w._configs(w._tiny_trace(tmp_path))]
    assert {c.mechanism for c in cfgs} == set(MECHANISMS)
    assert {c.workload for c in cfgs} == set(WORKLOADS)
    assert {c.policy for c in cfgs} == set(POLICIES)
    assert any(c.migration for c in cfgs)
    assert any(c.guest_swap > 0 and c.workload_params.get("io_rate", 0) > 0 for c in cfgs)


@pytest.mark.parametrize("mib", [4, 64, 128, 256, 512, 1024, 5120, 65536, 3 * 4096 + 4])
def test_pcp_batch_and_watermarks_match_the_naive_twins(mib):
    from fphlib.engine.build import watermarks
    from fphlib.guest.pcp import pcp_batch_high

    from naive import naive_pcp_batch_high, naive_watermarks

    pages = mib * 256
    assert pcp_batch_high(pages) == naive_pcp_batch_high(pages)
    assert watermarks(pages) == naive_watermarks(pages)


def test_kernel_pcp_constants_worked_by_hand():
    from fphlib.guest.pcp import pcp_batch_high

    assert pcp_batch_high(1 << 18) == (63, 378)  # 1 GiB (reference §1.6)
    assert pcp_batch_high(1 << 17) == (31, 186)  # 512 MiB
    assert pcp_batch_high(1 << 16) == (15, 90)  # 256 MiB
    assert pcp_batch_high(1 << 15) == (7, 42)  # 128 MiB


def test_long_random_churn_conserves_pages():
    cfg = small(guests=3, duration_s=60, sample_s=1.0, debug=True, seed=11,
                host_mem="700MiB", host_swap="64MiB",
                workload_params={"boot": "16MiB", "target": 0.7, "ops_per_s": 30000,
                                 "orders": {0: 0.9, 2: 0.05, 9: 0.05}})
    res = fphlib.simulate(cfg)
    assert res.summary["lost_writes"] == 0


@pytest.mark.parametrize(("seed", "mib"), [(0, 16), (1, 64), (2, 64), (3, 256)])
def test_pcp_lists_match_the_naive_twin(seed, mib):
    import random

    from fphlib.guest.pcp import drain_all_pages, pcp_alloc, pcp_free

    from engine_helpers import free_list
    from naive import NaivePcp

    rnd = random.Random(seed)
    vcpus = 3
    s, z = one_guest(guest_mem=f"{mib}MiB", vcpus=vcpus, mechanism="none")
    batch, high = int(guest_counters(s, 0).pcp_batch), int(guest_counters(s, 0).pcp_high)
    twin = NaivePcp(mib * 256, vcpus, batch, high)
    held = []
    for _ in range(4000):
        cpu = rnd.randrange(vcpus)
        if held and rnd.random() < 0.45:
            pfn = held.pop(rnd.randrange(len(held)))
            pcp_free(s, 0, z, cpu, pfn, 0.0)
            twin.free(cpu, pfn)
        else:
            pfn = pcp_alloc(s, 0, z, cpu)
            assert pfn == twin.alloc(cpu)
            if pfn >= 0:
                held.append(pfn)
        for c in range(vcpus):
            walk, p = [], int(s.pcp_head[0, c])
            while p >= 0:
                walk.append(p)
                p = int(z.next[p])
            assert walk == twin.lists[c]
    for o in range(11):
        assert free_list(z, o) == twin.buddy.lists[o]
    drain_all_pages(s, 0, z, 0.0)
    twin.drain()
    assert [free_list(z, o) for o in range(11)] == twin.buddy.lists
    assert check_guest(s, 0, z)[0] in (0, 9)  # 9: these pages bypassed the workload counters


def test_per_guest_overrides_size_workload_and_start():
    cfg = fphlib.SimConfig(
        host_mem="8GiB", guests=3, guest_mem="1GiB", workload="idle",
        workload_params={"boot": "32MiB"}, duration_s=8, sample_s=0.5,
        guest_overrides=[
            {},
            {"mem": "2GiB", "workload": "memhog",
             "workload_params": {"boot": "32MiB", "size": "1GiB", "hold_s": 60}},
            {"start_s": 5},
        ],
    )
    res = fphlib.simulate(cfg)
    gs = res.guest_summary
    assert list(gs.mem_bytes) == [1 << 30, 2 << 30, 1 << 30]
    assert list(gs.workload) == ["idle", "memhog", "idle"]
    gg = res.guests.set_index(["t_s", "guest"])
    g = gg.used_bytes + gg.page_cache_bytes + gg.slab_bytes  # the boot footprint and memhog
    assert g[(8.0, 0)] == 32 << 20 and g[(8.0, 1)] == (32 << 20) + (1 << 30)
    assert g[(4.5, 2)] == 0 and g[(5.5, 2)] == 32 << 20
    starts = res.events[res.events.kind == "guest_start"].set_index("guest").t_s
    assert starts[2] == pytest.approx(5.0)


def test_guest_summary_rss_columns_agree_with_the_series():
    res = fphlib.simulate(small())
    g = res.guests.groupby("guest").rss_bytes
    gs = res.guest_summary.set_index("guest")
    assert (gs.host_rss_peak_bytes == g.max()).all()
    assert np.allclose(gs.host_rss_mean_bytes, g.mean())
    assert (gs.host_rss_final_bytes == g.last()).all()
    assert res.summary["host_rss_peak_bytes"] >= gs.host_rss_peak_bytes.max()
    assert res.summary["host_rss_peak_bytes"] >= res.host.rss_bytes.max()


def test_a_run_reuses_the_per_page_arrays_of_the_last_run_of_its_size():
    from fphlib.engine import build

    build.release_page_arrays()
    a = small(seed=11)
    first = fphlib.simulate(a)
    (kept,) = build._SPARE
    again = fphlib.simulate(a)
    (kept_again,) = build._SPARE
    assert all(x is y for x, y in zip(kept, kept_again, strict=True))  # taken, given back
    assert first.guests.equals(again.guests)
    # taken out while a run holds them: a second run at once gets arrays of its own
    n_pages, n_slots = len(kept[0]), len(kept[4])
    mine = build.page_arrays(n_pages, n_slots, reuse=True)
    other = build.page_arrays(n_pages, n_slots, reuse=True)
    assert mine[0] is kept[0] and mine[4] is kept[4] and build._SPARE == []
    assert other[0] is not kept[0] and other[4] is not kept[4]
    assert (mine[2] == NOT_HEAD).all() and (mine[3] == 0).all()
    # a pool of another size is mapped afresh (zeros), the per-page arrays still reused
    build.give_back_page_arrays(SimpleNamespace(**dict(zip(("nxt", "prv", "state", "flags",
                                                            "pool"), mine, strict=True))))
    again_pages = build.page_arrays(n_pages, n_slots + 1, reuse=True)
    assert again_pages[0] is kept[0] and again_pages[4] is not kept[4]
    assert len(again_pages[4]) == n_slots + 1 and (again_pages[4] == 0).all()
    # another size allocates, and is kept in place of the last; a run of another size drops
    # the kept set before it allocates its own (a sweep over sizes peaks at one run's arrays)
    fphlib.simulate(small(guests=1))
    (other_size,) = build._SPARE
    assert len(other_size[0]) == n_pages // 2
    dropped = weakref.ref(other_size[0])
    del other_size
    build.page_arrays(n_pages, n_slots, reuse=True)
    assert dropped() is None and build._SPARE == []
    fphlib.simulate(small(guests=1))
    build.release_page_arrays()
    assert build._SPARE == []


def _vm_flags(address):
    """The VmFlags of the mapping of /proc/self/smaps that holds ``address``."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(not hasattr(mmap, "MADV_NOHUGEPAGE"),
                    reason="MADV_NOHUGEPAGE is Linux's")
def test_big_per_page_arrays_are_mapped_in_small_pages_where_free_pages_are_reported(
        monkeypatch):
    from numba import typeof

    from fphlib.engine import build

    monkeypatch.setattr(build, "_SMALL_PAGES_FROM", 1 << 20)  # the rule, at a test's size
    monkeypatch.setattr(build, "_small_pages", lambda: True)  # a guest with REPORTING
    big = build._SMALL_PAGES_FROM
    for dtype in (np.int32, np.int8, np.uint8):
        a = build._fresh_zeros(big // np.dtype(dtype).itemsize + 7, dtype)
        assert "nh" in _vm_flags(a.ctypes.data)  # madvise(MADV_NOHUGEPAGE)
        assert a.dtype == dtype and not a.any()
        assert typeof(a) == typeof(np.zeros(3, dtype))  # no new specialization
        a[-1] = 5
        assert a[-1] == 5
    small_one = build._fresh_zeros(100, np.int32)
    assert not small_one.any() and small_one.flags.owndata  # plain np.zeros below the size
    n_pages = big  # 1 Mi pages: every array above the size
    nxt, prv, state, flags, pool = build.page_arrays(n_pages, n_pages)
    assert (state == NOT_HEAD).all() and not flags.any() and not pool.any()
    assert all("nh" in _vm_flags(x.ctypes.data) for x in (nxt, prv, state, flags, pool))
    # elsewhere numpy's own arrays, whatever their size
    monkeypatch.setattr(build, "_small_pages", lambda: False)
    arrays = build.page_arrays(n_pages, n_pages)
    assert all(x.flags.owndata and "nh" not in _vm_flags(x.ctypes.data) for x in arrays)
    assert (arrays[2] == NOT_HEAD).all() and not arrays[3].any() and not arrays[4].any()

