"""Wei Wang's xbitmap hints: the race of read-only hints is modelled (lost writes under churn
once the host's discard lags), isolation prevents it, and the xbitmap's work shows in
zone_lock_hold_s."""

import pytest

import fphlib
from fphlib.engine.build import build_state, guest_zone
from fphlib.engine.loop import run_chunk
from fphlib.guest.xbitmap import tracking_mismatch


def churn(isolate, latency=2e-3, track="head", **kw):
    base = dict(host_mem="2GiB", guests=2, guest_mem="256MiB", vcpus=2, workload="churn",
                workload_params={"boot": "16MiB", "target": 0.5, "ops_per_s": 50000,
                                 "orders": {0: 0.5, 3: 0.2, 9: 0.3}},
                mechanism="xbitmap_hints", hint_order=3,
                mechanism_params={"isolate": isolate, "track": track, "interval_s": 0.2},
                costs={"discard_latency": latency}, duration_s=4, sample_s=0.1, seed=7)
    base.update(kw)
    return fphlib.SimConfig(**base)


@pytest.mark.parametrize("track", ["head", "page"])
def test_read_only_hints_lose_writes_when_the_discard_lags(track):
    racy = fphlib.simulate(churn(False, track=track))
    assert racy.summary["reported_bytes"] > 0
    assert racy.summary["lost_writes"] > 0  # would be 0 if the race were not modelled
    safe = fphlib.simulate(churn(True, track=track, debug=True))
    assert safe.summary["reported_bytes"] > 0
    assert safe.summary["lost_writes"] == 0


def test_no_race_without_a_window():
    """With the discard inside the mechanism's own instant nothing can run in between."""
    res = fphlib.simulate(churn(False, latency=0.0))
    assert res.summary["reported_bytes"] > 0 and res.summary["lost_writes"] == 0


@pytest.mark.parametrize("isolate", [True, False])
def test_the_xbitmap_tells_the_truth_after_the_hints(isolate):
    """After every ack the bits equal the free lists again (put_free_page_hints)."""
    cfg = churn(isolate, latency=1e-5, duration_s=1.0,
                mechanism_params={"isolate": isolate, "interval_s": 0.05})
    s, info = build_state(cfg)
    run_chunk(s, 0, info["n_ticks"] + 1)
    for g in range(cfg.guests):
        # quiesce: the last report may still be in flight at the end of the run
        if s.mi[g, 0] == 0:
            assert tracking_mismatch(guest_zone(s, g), 2) is None


def test_tracking_work_shows_in_zone_lock_time():
    hints = fphlib.simulate(churn(True))
    plain = fphlib.simulate(churn(True, mechanism="page_reporting", mechanism_params={}))
    gs = hints.guest_summary
    assert (gs.xbitmap_ops > 0).all() and (gs.xbitmap_kmallocs > 0).all()
    lock = fphlib.costs.INDEX
    expected = (gs.xbitmap_ops * fphlib.costs.cost_array()[lock["xbitmap_op"]]).sum()
    assert hints.summary["zone_lock_hold_s"] >= expected > 0
    assert plain.guest_summary.xbitmap_ops.sum() == 0
