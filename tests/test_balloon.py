"""Classic virtio balloon: inflate in 256-PFN messages, host discards, deflate, deflate-on-OOM."""

import fphlib
from fphlib.api.counters import guest_counters
from fphlib.costs import SIZE_DEFAULTS
from fphlib.engine.build import build_state


def run(**kw):
    base = dict(
        host_mem="8GiB", guests=1, guest_mem="1GiB", workload="idle",
        workload_params={"boot": "64MiB"}, mechanism="balloon", balloon_target="256MiB",
        balloon_interval_s=1.0, duration_s=5, sample_s=0.5, debug=True,
    )
    base.update(kw)
    return fphlib.simulate(fphlib.SimConfig(**base))


def test_inflate_to_the_target_in_256_pfn_messages():
    res = run()
    g = res.guests
    want = (1 << 30) - (256 << 20)
    assert g.balloon_bytes.iloc[0] == 0
    assert g.balloon_bytes.iloc[-1] == want
    msgs = want // 4096 // 256
    assert res.guest_summary.balloon_msgs[0] == msgs
    assert res.summary["reports"] == msgs
    assert res.summary["reported_bytes"] == want
    # the boot footprint (anonymous + page cache + slab) is untouched by the balloon
    assert (g.used_bytes + g.page_cache_bytes + g.slab_bytes).iloc[-1] == 64 << 20
    assert res.summary["lost_writes"] == 0


def test_the_host_discards_touched_pages_it_gets_back():
    # memhog touches 768 MiB and exits; the balloon then takes the freed memory back
    res = run(workload="memhog", workload_params={"boot": "64MiB", "size": "768MiB",
                                                   "hold_s": 0}, duration_s=10)
    h = res.host
    assert h.rss_bytes.max() > 800 << 20
    # VMM overhead (costs SIZE_DEFAULTS) and the host's own memory (host_reserve)
    overhead = SIZE_DEFAULTS["guest_overhead"][0] + res.config.host_reserve_bytes()
    assert h.rss_bytes.iloc[-1] <= (64 << 20) + overhead + (2 << 20) * 64
    assert res.summary["lost_writes"] == 0


def test_no_target_no_inflation():
    res = run(balloon_target=None)
    assert res.guests.balloon_bytes.max() == 0 and res.summary["reports"] == 0


def test_deflate_when_the_target_grows():
    cfg = fphlib.SimConfig(
        guests=1, guest_mem="1GiB", workload="idle", mechanism="balloon",
        workload_params={"boot": "64MiB"},
        balloon_target="256MiB", balloon_interval_s=1.0, duration_s=4,
    )
    from fphlib.engine.loop import run_chunk
    from fphlib.host.policy import static

    s, info = build_state(cfg)
    run_chunk(s, 0, 2000)
    assert guest_counters(s, 0).balloon == (768 << 20) // 4096
    s.pol_i[0, static.KEEP_PAGES] = (512 << 20) // 4096  # host now wants the guest at 512 MiB
    run_chunk(s, 2000, 4001)
    assert guest_counters(s, 0).balloon == (512 << 20) // 4096


def test_deflate_on_oom_lets_the_workload_allocate():
    kw = dict(workload="memhog", balloon_interval_s=0.5,
              workload_params={"boot": "64MiB", "boot_cache": 0, "boot_slab": 0,
                               "size": "900MiB", "start_s": 2, "hold_s": 30},
              duration_s=6)
    res = run(deflate_on_oom=True, **kw)
    assert res.guest_summary.oom_deflates[0] > 0
    assert res.summary["alloc_failures"] == 0
    assert res.guests.used_bytes.iloc[-1] == (64 + 900) << 20
    off = run(deflate_on_oom=False, **kw)
    assert off.summary["alloc_failures"] >= 1
    assert (off.events.kind == "guest_alloc_failure").any()


def _agrees_with_summary(res):
    """The per-guest series ``reported_bytes`` counts up to the guest's and the run's total."""
    g = res.guests
    for guest, series in g.groupby("guest")["reported_bytes"]:
        assert series.is_monotonic_increasing, f"guest {guest}: reported_bytes is cumulative"
        assert series.iloc[-1] == res.guest_summary.reported_bytes[guest]
    finals = g.groupby("guest")["reported_bytes"].last()
    assert finals.sum() == res.summary["reported_bytes"] > 0


def test_reported_bytes_one_meaning_in_summary_and_series():
    # the balloon inflates, memhog makes it deflate, the balloon re-inflates: the summary
    # counts every inflated page, and so does the series (it used to stay at 0)
    res = run(workload="memhog", workload_params={"boot": "64MiB", "size": "768MiB",
                                                   "hold_s": 0, "runs": 2, "gap_s": 2},
              duration_s=12)
    _agrees_with_summary(res)
    assert (res.guests.reported_free_bytes == 0).all()  # the balloon reports no free pages
    assert res.guests.balloon_bytes.iloc[-1] > 0
    rep = run(mechanism="page_reporting", balloon_target=None, workload="memhog",
              workload_params={"boot": "64MiB", "size": "768MiB", "hold_s": 0},
              duration_s=10)
    _agrees_with_summary(rep)
    # what is reported now never exceeds what was reported so far, nor what is free
    g = rep.guests
    assert (g.reported_free_bytes <= g.reported_bytes).all()
    assert (g.reported_free_bytes <= g.free_bytes).all()
    assert g.reported_free_bytes.max() > 0
