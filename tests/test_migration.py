"""Live migration model (fphlib.host.migration) and the free page hint (free_page_hint)."""

import math

import numpy as np
import pytest

import fphlib
from fphlib.costs import SIZE_DEFAULTS
from fphlib.host.migration import parse_bandwidth, validate_migration

MIB = 1 << 20
OVH = SIZE_DEFAULTS["guest_overhead"][0]  # the VMM overhead in a guest's host RSS


def cfg(mech="none", mode=None, workload="idle", wparams=None, migration=None, **kw):
    params = {"boot": "32MiB", **(wparams or {})}
    mig = {"at_s": 0.5, "bandwidth": "1GiB", "downtime_ms": 50}
    mig.update(migration or {})
    base = dict(host_mem="2GiB", guest_mem="256MiB", vcpus=2, workload=workload,
                workload_params=params, mechanism=mech,
                mechanism_params={"mode": mode} if mode else {}, duration_s=2.0,
                sample_s=0.05, migration=mig)
    base.update(kw)
    return fphlib.SimConfig(**base)


def run(*a, **kw):
    return fphlib.simulate(cfg(*a, **kw))


HOGGING = dict(workload="memhog", wparams={"size": "96MiB", "rate": "256MiB", "start_s": 0.4,
                                            "hold_s": 0.2, "runs": 3, "gap_s": 0.05})


def test_no_migration_gives_nan():
    c = fphlib.SimConfig(guest_mem="256MiB", host_mem="1GiB", duration_s=0.5, sample_s=0.1)
    s = fphlib.simulate(c).summary
    for m in ("migration_time_s", "migration_bytes", "migration_rounds", "downtime_s"):
        assert math.isnan(s[m])


def test_idle_bytes_are_backed_pages_plus_zero_headers():
    r = run()
    s = r.summary
    n = 256 * MIB // 4096
    backed = (r.guest_summary.host_rss_final_bytes[0] - OVH) // 4096
    assert 0 < backed < n
    assert s.migration_bytes == backed * (4096 + 8) + (n - backed) * 9
    assert s.migration_rounds == 2  # one pass, then stop-and-copy of nothing
    assert s.migration_converged == 1
    assert 0 < s.migration_time_s < 1.0
    assert s.downtime_s <= 0.05


def test_dirtying_means_more_rounds_and_bytes():
    idle = run().summary
    busy = run(**HOGGING).summary
    assert busy.migration_rounds > idle.migration_rounds
    assert busy.migration_bytes > idle.migration_bytes
    assert busy.lost_writes == 0
    assert busy.downtime_s <= 0.05 and busy.migration_converged == 1


@pytest.mark.parametrize("mode", ["alloc", "xbitmap"])
def test_hinting_reduces_bytes_and_time(mode):
    legacy = run().summary
    hint = run("free_page_hint", mode).summary
    assert hint.migration_hinted_bytes > 128 * MIB
    assert hint.migration_bytes < legacy.migration_bytes
    assert hint.migration_time_s < legacy.migration_time_s
    assert hint.lost_writes == 0


def test_non_convergence_stops_after_max_rounds():
    s = run(workload="memhog", wparams={"size": "160MiB", "rate": "1GiB", "start_s": 0.3,
                                        "hold_s": 0.01, "runs": 50, "gap_s": 0.01},
            migration={"bandwidth": "100MiB", "max_rounds": 3}, duration_s=10.0).summary
    assert s.migration_converged == 0
    assert s.migration_rounds == 4  # three passes, then stop-and-copy anyway
    assert s.downtime_s > 0.05  # the limit is exceeded: QEMU would have kept iterating


def test_alloc_mode_holds_memory_until_done():
    r = run("free_page_hint", "alloc", migration={"bandwidth": "64MiB"})
    s = r.summary
    assert s.migration_unavailable_peak_bytes >= 128 * MIB
    assert 0 < s.migration_unavailable_s <= s.migration_time_s + 1e-3
    g = r.guests
    end = 0.5 + s.migration_time_s
    during = g[(g.t_s > 0.55) & (g.t_s < end)]
    assert len(during) >= 3 and (during.balloon_bytes > 0).all()
    assert r.guests.balloon_bytes.iloc[-1] == 0  # DONE gave every block back
    x = run("free_page_hint", "xbitmap").summary
    assert x.migration_unavailable_peak_bytes == 0


def test_alloc_mode_shrinker_gives_blocks_back_under_pressure():
    r = run("free_page_hint", "alloc", workload="memhog",
            wparams={"size": "200MiB", "rate": "512MiB", "start_s": 0.45, "hold_s": 0.5},
            migration={"bandwidth": "64MiB"}, duration_s=4.0)
    assert r.guest_summary.oom_deflates[0] > 0  # the shrinker gave blocks back
    s = r.summary
    assert s.alloc_failures == 0
    assert s.lost_writes == 0


@pytest.mark.parametrize("mode", ["alloc", "xbitmap"])
def test_stale_hints_are_resent_not_lost(mode):
    s = run("free_page_hint", mode, debug=True, **HOGGING).summary
    legacy = run(debug=True, **HOGGING).summary
    assert s.lost_writes == 0
    assert s.migration_rounds >= 2
    assert s.migration_bytes < legacy.migration_bytes


def test_every_mechanism_migrates():
    for mech in fphlib.hinting.REGISTRY:
        s = run(mech).summary
        assert s.migration_converged == 1, mech


def test_bandwidth_forms():
    assert parse_bandwidth("100G") == 100 * 2**30  # migrate_set_speed 100G
    assert parse_bandwidth("100GiB/s") == 100 * 2**30
    assert parse_bandwidth(1.25e9) == 1.25e9
    assert parse_bandwidth("1.25GB") == 1.25 * 2**30


@pytest.mark.parametrize("bad, field", [
    ({"at_s": 1, "bandwidth": "fast", "downtime_ms": 400}, "migration['bandwidth']"),
    ({"at_s": 1, "bandwidth": 0, "downtime_ms": 400}, "migration['bandwidth']"),
    ({"at_s": -1, "bandwidth": 1e9, "downtime_ms": 400}, "migration['at_s']"),
    ({"at_s": 1, "bandwidth": 1e9}, "migration['downtime_ms']"),
    ({"at_s": 1, "bandwidth": 1e9, "downtime_ms": 4, "speed": 3}, "migration['speed']"),
    ({"at_s": 1, "bandwidth": 1e9, "downtime_ms": 4, "max_rounds": 0}, "migration['max_rounds']"),
    ([1, 2], "migration"),
])
def test_bad_migration_names_the_field(bad, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        validate_migration(bad)


def test_config_roundtrip_keeps_migration():
    c = cfg()
    assert fphlib.SimConfig.from_json(c.to_json()) == c
    assert c.migration["bandwidth"] == 2**30


def test_deterministic():
    a = run("free_page_hint", "xbitmap", **HOGGING).summary
    b = run("free_page_hint", "xbitmap", **HOGGING).summary
    assert np.array_equal(a.drop("wall_s").values, b.drop("wall_s").values, equal_nan=True)


def test_reproduce_v37_scaled_down():
    from fphlib.experiments import reproduce_v37

    df = reproduce_v37(sizes=("1GiB", "4GiB"), modes=("alloc", "xbitmap"))
    assert len(df) == 6
    assert (df.lost_writes == 0).all()
    hinted = df[df.mechanism == "free_page_hint"]
    assert (hinted.ratio < 0.6).all()
    # the gap between sizes: the hint's time grows slower than the legacy time
    legacy = df[df.mechanism == "none"].set_index("guest_mem").migration_time_ms
    assert legacy[4 << 30] > 3 * legacy[1 << 30]
