"""The admission experiment and the side-by-side mechanism comparison (notebook 02).

A scaled-down v8 scenario: a 2 GiB host, 512 MiB guests with a 32 MiB boot footprint, each
running memhog over 400 MiB once. Without hinting every guest keeps ~464 MiB backed on the
host (boot + memhog + 32 MiB per-guest overhead), so four fit and the fifth launch gets one
killed; free page reporting returns the memhog's memory and admits more.
"""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fphlib  # noqa: E402
from fphlib.experiments import (  # noqa: E402
    FATES,
    PUBLISHED,
    V8_HOST_MEM,
    admission,
    admission_table,
)
from fphlib.hinting import REGISTRY  # noqa: E402

SMALL = dict(host_mem="2GiB", guest_mem="512MiB", size="400MiB", boot="32MiB", max_guests=8)


@pytest.fixture(scope="module")
def table_and_guests():
    return admission_table(["none", "page_reporting"], return_guests=True, **SMALL)


@pytest.fixture(scope="module")
def none_run():
    return admission("none", return_result=True, **SMALL)


def first_failing_launch(res):
    """Independent of the code under test: the launch the first kill or swap belongs to."""
    kills = res.events.loc[res.events["kind"] == "oom_kill", "t_s"]
    swaps = res.host.loc[res.host["swap_bytes"] > 0, "t_s"]
    t = min([*kills, *swaps], default=math.inf)
    starts = [res.config.guest_spec(g)["start_s"] for g in range(res.config.guests)]
    if t == math.inf:
        return res.config.guests
    return sum(s <= t for s in starts) - 1


def test_reporting_admits_more_guests_than_no_hinting(table_and_guests):
    table, _ = table_and_guests
    row = table.set_index("mechanism")
    assert row.loc["none", "failure"] == "oom_kill"
    assert not row.loc["none", "capped"]
    assert row.loc["none", "admitted"] < row.loc["page_reporting", "admitted"]
    # each unhinted guest keeps boot + memhog + overhead backed, next to the host's own
    # memory (host_reserve: 1/8 of a 2 GiB host): (2 GiB - 256 MiB) / 462 MiB -> 3 fit
    assert row.loc["none", "admitted"] == 3
    assert row.loc["none", "published_low"] == PUBLISHED["none"][0]
    assert np.isnan(row.loc["page_reporting", "published_low"])


def test_every_fate_is_allowed_and_guests_are_tidy(table_and_guests):
    table, guests = table_and_guests
    assert set(guests["fate"]) <= set(FATES)
    assert list(guests.groupby("mechanism").size()) == [SMALL["max_guests"]] * 2
    none = guests[guests["mechanism"] == "none"]
    assert (none["fate"] == "oom_killed").any()
    assert np.diff(none["start_s"]).min() > 0  # launched one after another
    for name, sub in guests.groupby("mechanism"):
        assert sub["admitted"].sum() == table.set_index("mechanism").loc[name, "admitted"]


def test_admitted_counts_the_guests_launched_before_the_failing_launch(none_run):
    df, res = none_run
    k = first_failing_launch(res)
    assert 0 < k < res.config.guests
    assert df.attrs["admitted"] == k == int(df["admitted"].sum())
    assert list(df["admitted"]) == [g < k for g in range(res.config.guests)]
    # nothing failed while only the admitted guests were running
    t_fail = df.attrs["first_failure_s"]
    assert df.loc[k, "start_s"] <= t_fail
    assert (df.loc[: k - 1, "swap_bytes"] == 0).all()
    # the host backs every admitted guest's memhog: RSS before launch k grows by >= size
    rss = df.loc[: k - 1, "host_rss_bytes"].to_numpy()
    assert (np.diff(rss) >= fphlib.parse_size("400MiB")).all()
    # the fate column agrees with the run's per-guest status
    killed = set(res.guest_summary.loc[res.guest_summary["status"] == "oom_killed", "guest"])
    assert set(df.loc[df["fate"] == "oom_killed", "guest"]) == killed
    assert df.attrs["oom_kills"] == len(killed) > 0


def test_swap_stops_the_count_before_any_kill():
    df, res = admission("none", host_swap="4GiB", return_result=True, **SMALL)
    assert df.attrs["failure"] == "swap"
    k = first_failing_launch(res)
    assert df.attrs["admitted"] == k == int(df["admitted"].sum())
    assert k < SMALL["max_guests"]
    assert df.loc[k, "swap_bytes"] > 0 and df.loc[k, "swap_start_bytes"] == 0
    assert set(df["fate"]) <= set(FATES)


def test_without_failure_the_count_is_capped():
    df = admission("page_reporting", **{**SMALL, "max_guests": 3})
    assert df.attrs["capped"] and df.attrs["failure"] is None
    assert df.attrs["admitted"] == 3 and df["admitted"].all()
    assert (df["fate"] == "done").all()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(mechanism="nope"), "mechanism"),
        (dict(max_guests=0), "max_guests"),
        (dict(interval_s=-1.0), "interval_s"),
        (dict(size="lots"), "size"),
        (dict(guests=3), "guests"),
        (dict(duration_s=10.0), "duration_s"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}"):
        admission(**{**SMALL, **kwargs})


def test_v8_host_reads_mb_as_mib():
    # the letter's "15837 MB" is read as free -m / meminfo print it: MiB
    assert V8_HOST_MEM == fphlib.parse_size("15837MB") == 15837 * 2**20


def test_admission_table_rejects_unknown_mechanisms():
    with pytest.raises(ValueError, match=r"mechanisms\[1\]"):
        admission_table(["none", "nope"], **SMALL)


def test_compare_runs_every_registered_mechanism():
    from fphlib.experiments.scenarios import headline_config
    from fphlib.viz import mechanisms as vm

    cfg = headline_config("smoke", "none", guests=2)
    results, summary = vm.compare(cfg)
    assert tuple(results) == tuple(REGISTRY)
    assert list(summary["mechanism"]) == list(REGISTRY)
    for name, r in results.items():
        assert r.config.mechanism == name
        assert r.config.guests == cfg.guests and r.config.workload == cfg.workload
    assert results["balloon"].config.balloon_target is not None  # given a target
    assert results["none"].config.balloon_target is None  # the others keep cfg's
    assert summary.set_index("mechanism").loc["none", "reported_bytes"] == 0
    assert summary.set_index("mechanism").loc["page_reporting", "reported_bytes"] > 0
    fig = vm.plot_compare(results)
    assert len(fig.axes) == 1 + len(vm.COMPARE_METRICS)


def test_compare_rejects_unknown_mechanisms():
    from fphlib.viz import mechanisms as vm

    with pytest.raises(ValueError, match=r"mechanisms\[0\]"):
        vm.compare_configs(fphlib.SimConfig(), ["nope"])


def test_plot_admission_draws_one_bar_per_mechanism(table_and_guests):
    from fphlib.viz import mechanisms as vm

    table, _ = table_and_guests
    ax = vm.plot_admission(table)
    heights = [p.get_height() for p in ax.patches]
    assert heights == list(table["admitted"])
    shown = vm.format_admission(table)
    assert shown.loc["none", "published (v8 letter)"] == "3"
