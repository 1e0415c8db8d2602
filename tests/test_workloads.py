"""Workloads: idle, memhog timing and phases, churn occupancy and order mix, trace replay."""

import numpy as np
import pytest

import fphlib
from fphlib.api.counters import guest_counters
from fphlib.costs import DEFAULTS, SIZE_DEFAULTS
from fphlib.engine.build import build_state
from fphlib.engine.loop import run_chunk
from fphlib.workloads import churn


def sim(**kw):
    base = dict(host_mem="8GiB", guests=1, guest_mem="1GiB", duration_s=10, sample_s=0.1)
    base.update(kw)
    return fphlib.simulate(fphlib.SimConfig(**base))


def test_idle_is_the_boot_footprint_only():
    res = sim(workload="idle", workload_params={"boot": "100MiB"}, host_thp=False)
    g = res.guests
    # anonymous memory + page cache + slab (fractions 0.22, 0.58, 0.20) make the footprint
    held = g.used_bytes + g.page_cache_bytes + g.slab_bytes
    assert (held.iloc[1:] == 100 << 20).all()
    assert g.page_cache_bytes.iloc[-1] == round(0.58 * 25600) * 4096
    assert g.slab_bytes.iloc[-1] == round(0.20 * 25600) * 4096
    # 4 KiB backing: RSS = boot + the VMM overhead exactly
    assert g.rss_bytes.iloc[-1] == (100 << 20) + SIZE_DEFAULTS["guest_overhead"][0]
    assert res.summary["refault_pages"] == 0


def test_the_default_idle_footprint_is_a_booted_distro_guest():
    """costs.md §9: an Ubuntu 20.04 guest holds ~330 MiB after boot (CH #1729)."""
    res = sim(workload="idle", host_thp=False, duration_s=1)
    g = res.guests.iloc[-1]
    assert g.used_bytes + g.page_cache_bytes + g.slab_bytes == 330 << 20
    assert g.page_cache_bytes > g.slab_bytes > 0 and g.used_bytes > 0


def test_old_style_boot_is_anonymous_only():
    res = sim(workload="idle", host_thp=False, duration_s=1,
              workload_params={"boot": "100MiB", "boot_cache": 0, "boot_slab": 0})
    g = res.guests.iloc[-1]
    assert g.used_bytes == 100 << 20 and g.page_cache_bytes == 0 and g.slab_bytes == 0


def test_memhog_touches_at_rate_holds_then_frees():
    # 256 MiB at 128 MiB/s from t=1 s: done at ~3 s, hold 2 s, free at 1 GiB/s, done at ~5.25 s
    res = sim(
        workload="memhog",
        workload_params={"boot": "0", "size": "256MiB", "rate": "128MiB", "hold_s": 2,
                         "free_rate": "1GiB", "start_s": 1},
        host_thp=False, costs={"fault_4k": 0.0},
    )
    g = res.guests.set_index("t_s").used_bytes
    assert g.loc[1.0] == 0
    assert g.loc[2.0] == pytest.approx(128 << 20, rel=0.02)
    assert g.loc[3.5] == 256 << 20 and g.loc[4.9] == 256 << 20
    assert g.loc[6.0] == 0
    end = res.events[res.events.kind == "workload_end"].t_s.iloc[0]
    assert res.guest_summary.workload_stall_s[0] == 0
    assert 5.24 <= end <= 5.26
    # the runtime is the touching (1 s to 3 s), not the hold nor the exit
    assert res.summary["workload_runtime_s"] == pytest.approx(2.0, abs=0.003)


def test_memhog_exits_after_touching_by_default():
    """numactl's memhog: touch, then exit; no hold unless asked."""
    res = sim(workload="memhog", host_thp=False, costs={"fault_4k": 0.0},
              workload_params={"boot": "0", "size": "64MiB", "rate": "128MiB"})
    end = res.events[res.events.kind == "workload_end"].t_s.iloc[0]
    # 0.5 s touching, then freeing 64 MiB at 8 GiB/s (8 ms)
    assert end == pytest.approx(0.508, abs=0.003)
    assert res.summary["workload_runtime_s"] == pytest.approx(0.5, abs=0.003)


def test_memhog_repeat_retouches_the_same_memory():
    """-r3: three passes over one mapping, back to back: it is allocated and faulted once,
    held through the passes and the hold, freed once; the runtime is the three passes."""
    res = sim(
        workload="memhog", duration_s=8, host_thp=False,
        workload_params={"boot": "0", "size": "64MiB", "rate": "64MiB", "hold_s": 1,
                         "repeat": 3},
    )
    used = res.guests.set_index("t_s").used_bytes
    rises = np.sum((used.to_numpy()[1:] > 0) & (used.to_numpy()[:-1] == 0))
    assert rises == 1
    # the first pass maps it all (1 s at 64 MiB/s plus the host's faults), the passes end at
    # ~3 s, then the 1 s hold: mapped all along
    full = used[used == 64 << 20]
    assert full.index[0] <= 1.5
    assert (used.loc[full.index[0]:4.0] == 64 << 20).all()
    gs = res.guest_summary.iloc[0]
    assert gs.faults == 16384  # first touch only
    assert gs.workload_ops == 2 * 16384  # one allocation and one free per page
    assert (res.events.kind == "workload_end").sum() == 1
    # 3 passes of 1 s each plus the first pass's fault stalls; not the hold or the exit
    assert gs.workload_stall_s == pytest.approx(16384 * DEFAULTS["fault_4k"][0])
    exited = 3.0 + gs.workload_stall_s + 1.0  # passes, stalls, hold
    assert used.loc[used.index >= exited + 0.2].eq(0).all()
    assert res.summary["workload_runtime_s"] == pytest.approx(3.0 + gs.workload_stall_s,
                                                              abs=0.004)


def test_memhog_runs_map_fresh_memory_each_time_with_a_gap():
    """runs=3 (a shell loop over memhog): touch, hold, exit, pause, three times; the runtime
    is the touching of all three runs."""
    res = sim(
        workload="memhog", duration_s=20, host_thp=False,
        workload_params={"boot": "0", "size": "64MiB", "rate": "64MiB", "hold_s": 1,
                         "runs": 3, "gap_s": 2},
    )
    used = res.guests.used_bytes.to_numpy()
    rises = np.sum((used[1:] > 0) & (used[:-1] == 0))
    assert rises == 3
    gs = res.guest_summary.iloc[0]
    assert gs.workload_ops == 3 * 2 * 16384  # each run allocates and frees every page
    assert (res.events.kind == "workload_end").sum() == 1
    assert res.summary["workload_runtime_s"] == pytest.approx(3.0 + gs.workload_stall_s,
                                                              abs=0.006)


def test_memhog_retouch_swaps_host_swapped_pages_back_in():
    """A second pass touches pages the host swapped out: each is a swap-in stall of this
    guest, and the stall shows in workload_runtime_s."""
    kw = dict(workload="memhog", host_mem="448MiB", host_swap="512MiB", host_thp=False,
              guest_mem="512MiB", duration_s=30,
              workload_params={"boot": "0", "size": "480MiB", "repeat": 2})
    res = sim(**kw)
    gs = res.guest_summary.iloc[0]
    assert gs.swap_out_bytes > 0 and gs.swap_in_pages > 0 and gs.swap_in_stall_s > 0
    once = sim(**{**kw, "workload_params": {**kw["workload_params"], "repeat": 1}})
    assert once.guest_summary.swap_in_pages[0] == 0  # a single pass never comes back
    assert res.summary["workload_runtime_s"] > 2 * once.summary["workload_runtime_s"]


def test_memhog_stalls_stretch_the_runtime():
    kw = dict(workload="memhog", host_thp=False,
              workload_params={"boot": "0", "size": "256MiB", "rate": "256MiB", "hold_s": 0})
    cheap = sim(costs={"fault_4k": 0.0}, **kw).summary["workload_runtime_s"]
    dear = sim(costs={"fault_4k": 10e-6}, **kw).summary["workload_runtime_s"]
    # 65536 faults * 10 µs = 0.66 s more
    assert dear - cheap == pytest.approx(0.655, abs=0.02)


def test_churn_hovers_around_the_target_with_the_order_mix():
    res = sim(
        workload="churn", duration_s=6,
        workload_params={"boot": "0", "target": 0.4, "ops_per_s": 200000,
                         "orders": {0: 0.5, 3: 0.5}},
        seed=5,
    )
    used = res.guests.set_index("t_s").used_bytes
    tail = used.loc[3.0:] / (1 << 30)
    assert tail.mean() == pytest.approx(0.4, abs=0.02)
    assert tail.std() < 0.02
    assert res.summary["alloc_failures"] == 0


def test_churn_lifetime_sets_the_op_rate():
    cfg = fphlib.SimConfig(guests=1, guest_mem="1GiB", workload="churn",
                           workload_params={"target": 0.5, "lifetime_s": 10.0,
                                            "orders": {0: 1}})
    s, _ = build_state(cfg)
    # 131072 target blocks of one page, mean lifetime 10 s: 2 * 131072 / 10 ops/s
    assert s.wl_f[0, churn.CH_OPS] == pytest.approx(2 * 131072 / 10)


def test_churn_uses_every_vcpu_pcp_list():
    cfg = fphlib.SimConfig(guests=1, guest_mem="512MiB", vcpus=4, workload="churn",
                           workload_params={"target": 0.3, "ops_per_s": 50000}, duration_s=1)
    s, info = build_state(cfg)
    run_chunk(s, 0, info["n_ticks"])
    assert (s.pcp_cnt[0] > 0).all()
    assert (s.pcp_cnt[0] < guest_counters(s, 0).pcp_high).all()


def test_trace_replay(tmp_path):
    from fphlib.workloads.trace_file import generate_trace, write_trace

    n_pages = (64 << 20) // 4096
    tr = generate_trace(20000, seed=2, occupancy=0.5, ops_per_s=10000, n_pages=n_pages)
    path = tmp_path / "t.npz"
    write_trace(path, tr.t_us, tr.kind, tr.order, tr.slot)
    res = sim(guest_mem="128MiB", workload="trace",
              workload_params={"path": str(path), "boot": "0"}, duration_s=3, debug=True)
    end = res.events[res.events.kind == "workload_end"]
    assert len(end) == 1
    assert end.t_s.iloc[0] == pytest.approx(tr.t_us[-1] * 1e-6, abs=0.002)
    live = {}
    for k, o, sl in zip(tr.kind, tr.order, tr.slot, strict=True):
        if k == 0:
            live[int(sl)] = int(o)
        else:
            live.pop(int(sl))
    assert res.guests.used_bytes.iloc[-1] == sum(4096 << o for o in live.values())
    fast = sim(guest_mem="128MiB", workload="trace", duration_s=3,
               workload_params={"path": str(path), "boot": "0", "speed": 2.0})
    t_fast = fast.events[fast.events.kind == "workload_end"].t_s.iloc[0]
    assert t_fast == pytest.approx(tr.t_us[-1] * 0.5e-6, abs=0.002)


def test_a_pool_starts_at_minus_one_unless_its_workload_writes_before_it_reads(tmp_path):
    """trace reads slots it may never have written (a free before its alloc): -1, no block;
    churn reads only slots below POOL_N, so its slots start at 0, memory left untouched."""
    from fphlib.state.layout import GI
    from fphlib.workloads.trace_file import generate_trace, write_trace

    tr = generate_trace(500, seed=3, occupancy=0.3, n_pages=(16 << 20) // 4096)
    path = tmp_path / "t.npz"
    write_trace(path, tr.t_us, tr.kind, tr.order, tr.slot)
    cfg = fphlib.SimConfig(guests=2, guest_mem="16MiB", host_mem="64MiB", workload="churn",
                           workload_params={"target": 0.3},
                           guest_overrides=[{}, {"workload": "trace",
                                                 "workload_params": {"path": str(path)}}])
    s, _ = build_state(cfg)
    churn_slots, trace_slots = (s.pool[s.gi[g, GI.POOL_OFF]:][:s.gi[g, GI.POOL_CAP]]
                                for g in range(2))
    assert len(churn_slots) > 0 and (churn_slots == 0).all()
    assert len(trace_slots) > 0 and (trace_slots == -1).all()
    assert len(s.pool) == len(churn_slots) + len(trace_slots)
