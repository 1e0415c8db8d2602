"""Plots, tables and the widget app: what is drawn matches the data, redraws stay in place."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import fphlib  # noqa: E402
from fphlib.api.result import GUEST_COLUMNS, HOST_COLUMNS, SUMMARY_METRICS, SimResult  # noqa: E402
from fphlib.viz import plots  # noqa: E402

GIB = 1 << 30


def make_result(mechanism="none", n=21, guests=2, level=1.0, hint_order=9):
    """A SimResult holding hand-made frames (so plot tests know exactly what to expect)."""
    cfg = fphlib.SimConfig(host_mem="2GiB", guests=guests, guest_mem="512MiB",
                           mechanism=mechanism, hint_order=hint_order, duration_s=10.0,
                           sample_s=0.5)
    t = np.arange(n) * 0.5
    rss = level * GIB * t / t[-1]
    host = pd.DataFrame({"t_s": t, "rss_bytes": rss, "swap_bytes": 0.0,
                         "free_bytes": 2 * GIB - rss})
    rows = []
    for g in range(guests):
        for i, ti in enumerate(t):
            used = (g + 1) * (64 << 20) * i / n
            rows.append(dict(t_s=ti, guest=g, rss_bytes=used + (8 << 20),
                             free_bytes=(512 << 20) - used, reported_bytes=(32 << 20) * g,
                             isolated_bytes=0.0, used_bytes=used, pcp_bytes=0.0,
                             balloon_bytes=0.0, swap_bytes=0.0,
                             reported_free_bytes=(16 << 20) * g))
    gframe = pd.DataFrame(rows, columns=list(GUEST_COLUMNS))
    summary = pd.Series({m: float(i + 1) * (GIB if m.endswith("bytes") else 1)
                         for i, m in enumerate(SUMMARY_METRICS)})
    gsum = pd.DataFrame({"guest": range(guests), "workload_stall_s": 0.01 * np.arange(guests),
                         "workload_runtime_s": 1.0 + np.arange(guests),
                         "vmexits": 10 + np.arange(guests), "faults": 8 + np.arange(guests)})
    events = pd.DataFrame({"t_s": [], "guest": [], "kind": [], "value": []})
    return SimResult(summary=summary, guest_summary=gsum, host=host[list(HOST_COLUMNS)],
                     guests=gframe, events=events, config=cfg)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_summary_metrics_cover_the_api():
    assert tuple(plots.SUMMARY_METRICS) == SUMMARY_METRICS


def test_run_labels_and_host_frame():
    a, b = make_result("none"), make_result("page_reporting", hint_order=10)
    c = make_result("none", level=2.0)
    assert plots.run_label(b) == "page_reporting (order 10)"
    frame = plots.host_frame([a, b, c])
    assert list(frame["run"].unique()) == ["none", "page_reporting (order 10)", "none #2"]
    assert len(frame) == 3 * 21
    sub = frame[frame["run"] == "none #2"]
    np.testing.assert_allclose(sub["rss_bytes"].to_numpy(), c.host["rss_bytes"].to_numpy())
    frame = plots.host_frame({"x": a}, hue="mechanism")
    assert set(frame["mechanism"]) == {"x"}


def test_plot_host_rss_draws_each_run_in_gib_and_redraws_in_place():
    runs = {"none": make_result("none", level=1.5), "balloon": make_result("balloon", level=0.5)}
    ax = plots.plot_host_rss(runs, hue="mechanism")
    assert {"none", "balloon"} <= set(ax.get_legend_handles_labels()[1])
    # one data line per run: y is rss in GiB, x is time
    data_lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 21]
    assert len(data_lines) == 2
    tops = sorted(float(np.max(ln.get_ydata())) for ln in data_lines)
    assert tops == pytest.approx([0.5, 1.5])
    # host RAM (2 GiB) drawn as a horizontal line
    assert any(np.allclose(ln.get_ydata(), 2.0) for ln in ax.get_lines()
               if len(ln.get_xdata()) == 2)
    assert ax.get_ylabel() == "host RSS (GiB)"
    again = plots.plot_host_rss({"none": make_result("none", level=3.0)}, ax=ax)
    assert again is ax
    data_lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 21]
    assert len(data_lines) == 1  # cleared, not stacked
    assert float(np.max(data_lines[0].get_ydata())) == pytest.approx(3.0)
    assert ax.get_legend_handles_labels()[1] == ["none"]


def test_plot_host_rss_accepts_long_frames():
    frame = plots.host_frame([make_result("none"), make_result("balloon")])
    ax = plots.plot_host_rss(frame)
    assert sorted(ax.get_legend_handles_labels()[1]) == ["balloon", "none"]


def test_guest_frame_and_plot():
    r = make_result("page_reporting", guests=3)
    long = plots.guest_frame(r)
    # balloon_bytes is all zero here, so it is left out (no empty legend entry)
    assert set(long["series"]) == {"used by the guest", "free in the guest",
                                   "free, reported (host dropped it)", "backed by the host (RSS)"}
    g1 = long[(long["guest"] == 1) & (long["series"] == "free, reported (host dropped it)")]
    assert g1["gib"].tolist() == pytest.approx([16 / 1024] * 21)
    fig = plots.plot_guest_memory(r, max_guests=2)
    assert [ax.get_title() for ax in fig.axes] == ["guest 0", "guest 1"]
    fig2 = plots.plot_guest_memory(make_result("none", guests=1), fig=fig)
    assert fig2 is fig and [ax.get_title() for ax in fig.axes] == ["guest 0"]


def test_buddyinfo_bars_match_nr_free():
    nr_free = np.array([5, 0, 3, 0, 0, 0, 0, 0, 0, 1, 2])
    ax = plots.plot_buddyinfo(nr_free)
    heights = [p.get_height() for p in ax.patches]
    assert heights == nr_free.tolist()
    ax = plots.plot_buddyinfo(nr_free, ax=ax, unit="mib")
    heights = [p.get_height() for p in ax.patches]
    # order o holds 4 KiB << o per block: 5 × 4 KiB, 3 × 16 KiB, 1 × 2 MiB, 2 × 4 MiB
    want = [5 * 4 / 1024, 0, 3 * 16 / 1024, 0, 0, 0, 0, 0, 0, 2.0, 8.0]
    assert heights == pytest.approx(want)
    with pytest.raises(ValueError, match="unit: 'pages' is not one of"):
        plots.plot_buddyinfo(nr_free, unit="pages")


def test_summary_table_and_markdown():
    runs = {"none": make_result("none"), "balloon": make_result("balloon")}
    table = plots.summary_table(runs)
    assert list(table.columns) == ["none", "balloon"]
    assert table.loc["host_rss_peak_bytes", "none"] == GIB
    assert table.loc["reports", "balloon"] == 5.0
    md = plots.to_markdown(table.loc[["reports", "wall_s"]])
    assert md == ("| metric | none | balloon |\n|---|---:|---:|\n"
                  "| reports | 5.0 | 5.0 |\n| wall_s | 17.0 | 17.0 |\n")


def test_readable_summary_with_change_column_and_footnotes():
    from fphlib.viz.tables import readable

    runs = {"page_reporting (order 9)": make_result("page_reporting"),
            "none": make_result("none")}
    runs["none"].summary["workload_runtime_s"] = np.nan
    runs["none"].summary["reported_bytes"] = 0.0
    runs["page_reporting (order 9)"].summary["vmexits"] = 1234567.0
    t = readable(runs)
    f = t.frame
    assert list(f.columns) == ["page_reporting (order 9)", "none", "vs none"]
    # labels from the one home of labels and units, not raw names
    assert plots.SUMMARY_METRICS["host_rss_peak_bytes"].label in f.index
    assert not any("_bytes" in i for i in f.index)
    assert f.loc["VM exits", "page_reporting (order 9)"] == "1,234,567"
    rep_label = plots.SUMMARY_METRICS["reported_bytes"].label
    assert f.loc[rep_label].tolist() == ["4.00 GiB", "0 B", "+4.00 GiB"]  # no % of 0
    assert f.loc[plots.SUMMARY_METRICS["host_rss_peak_bytes"].label, "vs none"] == "same"
    runtime = plots.SUMMARY_METRICS["workload_runtime_s"]
    assert f.loc[runtime.label, "none"] == "–"
    assert any(n.startswith("– in workload runtime") and "never finished" in n
               for n in t.notes)
    assert any(n.startswith("vs none:") for n in t.notes)
    html = t.to_html()
    assert "fphlib-table" in html and "never finished" in html
    assert "vs none" in str(t) and "| host RSS, peak |" in t.to_markdown()


def test_readable_values_and_changes():
    from fphlib.viz.tables import format_change, format_value

    assert format_value(5 << 30, "bytes") == "5.00 GiB"
    assert format_value(1280 << 20, "bytes") == "1.25 GiB"
    assert format_value(3 << 20, "bytes") == "3.00 MiB"
    assert format_value(512, "bytes") == "512 B"
    assert format_value(-(2 << 30), "bytes") == "−2.00 GiB"
    assert format_value(12345678, "count") == "12,345,678"
    assert format_value(0.25, "count") == "0.25"
    assert format_value(0.0042, "seconds") == "4.2 ms"
    assert format_value(3.5e-6, "seconds") == "3.5 µs"
    assert format_value(float("nan"), "seconds") == "–"
    assert format_value("memhog", "text") == "memhog"
    assert format_change(1 << 30, 4 << 30, "bytes") == "−3.00 GiB (−75 %)"
    assert format_change(5, 4, "count") == "+1 (+25 %)"
    assert format_change(5, float("nan"), "count") == "–"


def test_readable_numbers_never_in_scientific_notation():
    from fphlib.viz.tables import format_value

    assert format_value(1e-5, "count") == "0.00001"
    assert format_value(2.5e-10, "seconds") == "0.00025 µs"
    assert format_value(8.38e8, "bytes") == "799 MiB"
    assert format_value(12.5, "ms") == "12.5 ms"  # already scaled: shown in its unit
    assert format_value(2.0, "gib") == "2.00 GiB"
    assert format_value(1.0, "ratio") == "1.00" and format_value(0.004, "ratio") == "0.004"
    assert format_value(float("inf"), "ratio") == "∞"
    assert format_value(True, "text") == "yes"
    for v in (1e-12, 3e-7, 1e21, 123456789.123):
        for unit in ("count", "seconds", "bytes", "ratio"):
            assert "e" not in format_value(v, unit).replace("µ", ""), (v, unit)


def test_readable_rows_labels_units_caption_and_dashes():
    from fphlib.viz.tables import readable_rows

    grid = pd.DataFrame({"guests": [1, 2], "policy": ["mom", "idle_tax"], "asks": [3, 40],
                         "host_rss_peak_bytes": [8.38e8, 2 * GIB],
                         "mean_slowdown": [1.0, np.nan], "guest_mem": [GIB, GIB]})
    t = readable_rows(grid, index=["guests", "policy"], caption="a caption")
    f = t.frame
    assert list(f.index.names) == ["guests", "policy"]
    assert f.columns.tolist() == [plots.metric_info(c).label for c in
                                  ("asks", "host_rss_peak_bytes", "mean_slowdown", "guest_mem")]
    assert f.iloc[:, 1].tolist() == ["799 MiB", "2.00 GiB"]
    assert f.iloc[:, 2].tolist() == ["1.00", "–"]
    assert f.iloc[:, 3].tolist() == ["1.00 GiB", "1.00 GiB"]
    assert any(n.startswith("– in mean slowdown") for n in t.notes)
    html = t.to_html()
    assert '<caption class="fphlib-caption">a caption</caption>' in html
    assert "nan" not in html.lower().replace("nans", "") and "e+" not in html
    assert str(t).startswith("a caption\n")
    with pytest.raises(ValueError, match="nope"):
        readable_rows(grid, columns=["nope"])


def test_registry_tables_are_plain_text():
    from fphlib.viz.mechanisms import mechanism_table
    from fphlib.viz.policies import policy_table
    from fphlib.viz.tables import plain_text, readable_rows

    assert plain_text("see :func:`fphlib.simulate` and ``x``, `docs <https://a>`_, *y*") == \
        "see fphlib.simulate and x, docs, y"
    mechs = readable_rows(mechanism_table(), index="mechanism")
    pols = readable_rows(policy_table().reset_index(), index="policy")
    for table in (mechs, pols):
        text = table.to_html()
        assert "``" not in text and ":func:" not in text and ":mod:" not in text
        assert "..." not in text and "…" not in text  # full descriptions, not truncated
        assert "e+0" not in text and "e-0" not in text  # no scientific notation
    assert set(mechs.frame.iloc[:, 0]) <= {"yes", "no"}
    from fphlib.hinting import mechanism_module
    from fphlib.state.params import describe

    assert "threshold: int 1..1048576 bits" in describe(
        mechanism_module("hinting_bitmap").PARAMS)[1]


def test_readable_per_guest_frame_and_runs_frame():
    from fphlib.viz.tables import readable

    gs = pd.DataFrame({"guest": [0, 1], "mem_bytes": [5 * GIB, 5 * GIB],
                       "workload": ["memhog", "churn"], "status": ["running", "oom_killed"],
                       "workload_runtime_s": [12.5, np.nan], "vmexits": [1000, 2000],
                       "faults": [3, 4]})
    t = readable(gs)
    assert list(t.frame.columns) == ["guest 0", "guest 1"]  # no baseline among guests
    assert t.frame.loc["guest memory"].tolist() == ["5.00 GiB", "5.00 GiB"]
    assert t.frame.loc["workload"].tolist() == ["memhog", "churn"]
    assert plots.GUEST_METRICS["faults"].label in t.frame.index
    assert any("OOM-killed guest never does" in n for n in t.notes)
    from fphlib.api.result import SUMMARY_METRICS

    runs = pd.DataFrame({"mechanism": ["none", "balloon", "page_reporting"],
                         "reported_bytes": [0, GIB, 2 * GIB], "vmexits": [0, 10, 20],
                         "migration_time_s": [np.nan] * 3})
    t = readable(runs)
    assert list(t.frame.columns) == ["none", "balloon", "page_reporting"]
    label = plots.SUMMARY_METRICS["reported_bytes"].label
    assert t.frame.loc[label, "balloon"] == "1.00 GiB (+1.00 GiB)"
    assert plots.SUMMARY_METRICS["migration_time_s"].label not in t.frame.index  # all –
    assert any(n.startswith("Not shown") for n in t.notes)
    assert set(SUMMARY_METRICS) == set(plots.SUMMARY_METRICS)
    with pytest.raises(ValueError, match="metrics"):
        readable(runs, metrics=["nope"])


def test_tracking_stats_table():
    from fphlib.viz.tables import TRACKING_LABELS, tracking_stats_table
    from fphlib.viz.tour import GuestTour

    tour = GuestTour("16MiB", track="page", seed=1)
    tour.churn(200)
    assert set(tour.buddy.tracking_stats) <= set(TRACKING_LABELS)  # every counter labelled
    t = tracking_stats_table(tour.buddy.tracking_stats)
    f = t.frame["value"]
    assert f["memory of the structure now"].endswith("B")
    assert f["leaf kmallocs (128 B each)"].replace(",", "").isdigit()
    stats = tour.buddy.tracking_stats
    zero = [TRACKING_LABELS[k] for k, v in stats.items() if v == 0 and k not in ("failed",
                                                                                 "nbytes")]
    assert zero and len(f) == len(stats) - len(zero)  # counters at 0 named, not listed
    assert not set(zero) & set(f.index) and all(z in t.notes[0] for z in zero)
    assert f[TRACKING_LABELS["failed"]] == "0"  # the one that must be 0 stays shown
    assert "fphlib-table" in t._repr_html_()


def test_bitmap_memory_plot():
    frame = pd.DataFrame({"used_fraction": [0.0, 0.5, 1.0] * 2,
                          "structure": ["flat bitmap"] * 3 + ["xbitmap"] * 3,
                          "bytes": [1024, 1024, 1024, 704, 1280, 0]})
    ax = plots.plot_bitmap_memory(frame, log=False)
    assert sorted(ax.get_legend_handles_labels()[1]) == ["flat bitmap", "xbitmap"]
    assert ax.get_ylim()[0] == 0
    # log axis (default): the 0-byte point is kept at the bottom, every legend entry has points
    same = pd.concat([frame, frame[frame.structure == "xbitmap"].assign(structure="xb head")])
    ax = plots.plot_bitmap_memory(same)
    assert ax.get_yscale() == "log"
    handles, labels = ax.get_legend_handles_labels()
    assert sorted(labels) == ["flat bitmap", "xbitmap = xb head"]  # equal lines drawn once
    assert all(len(h.get_xdata()) == 3 for h in handles)


# ---------------------------------------------------------------------------- widget app


class RecordingSimulate:
    """Stands in for fphlib.simulate in wiring tests: returns hand-made results, records calls."""

    def __init__(self, fail=False):
        self.configs = []
        self.fail = fail

    def __call__(self, cfg, progress=False):
        assert progress is True  # the app asks for the per-run bar
        self.configs.append(cfg)
        if self.fail:
            raise RuntimeError("engine exploded")
        level = {"none": 1.5, "balloon": 0.7, "page_reporting": 0.4}[cfg.mechanism]
        return make_result(cfg.mechanism, guests=cfg.guests, level=level,
                           hint_order=cfg.hint_order)


def test_app_controls_build_the_config():
    from fphlib.viz.widgets import SimulationApp

    app = SimulationApp(profile="smoke")
    assert app.block_label.value == "block size 2 MiB"
    app.hint_order.value = 10
    assert app.block_label.value == "block size 4 MiB"
    app.hint_order.value = 0
    assert app.block_label.value == "block size 4 KiB"
    app.guests.value = 2
    assert not app.hint_order.disabled
    app.mechanism.value = "balloon"
    # the balloon ignores the hint order: the slider is disabled, with a note
    assert app.hint_order.disabled and "does not use the hint order" in app.block_label.value
    cfg = app.config()
    assert (cfg.guests, cfg.hint_order, cfg.mechanism) == (2, 0, "balloon")
    assert cfg.balloon_target is not None and cfg.balloon_target < cfg.guest_mem
    # sizes: the scenario line says what will be simulated
    app.host_mem.value, app.guest_mem.value, app.duration.value = "2048MiB", "512MiB", 30
    cfg = app.config()
    assert (cfg.host_mem, cfg.guest_mem, cfg.duration_s) == (2 * GIB, GIB // 2, 30.0)
    assert "2 × 512 MiB guests on a 2 GiB host" in app.scenario.value
    assert cfg.workload_params["size"] < cfg.guest_mem  # memhog scaled with the guest
    app.preset.value = "full"  # a preset loads its sizes
    assert (app.host_mem.value, app.guest_mem.value, app.duration.value) == (
        "16384MiB", "5120MiB", 120)
    assert "16 GiB host" in app.scenario.value
    app.workload.value = "churn"
    cfg = app.config()
    assert cfg.workload == "churn" and "size" not in cfg.workload_params
    app.host_mem.value, app.guests.value = "2048MiB", 1
    app.reset_button.click()  # the preset already selected, loaded again
    assert (app.host_mem.value, app.guest_mem.value, app.guests.value,
            app.workload.value) == ("16384MiB", "5120MiB", 3, "memhog")
    app.workload.value = "churn"
    assert list(app.configs()) == ["balloon", "none"]
    # the controls beyond the scenario: enabled only where the mechanism uses them
    assert not app.balloon_target.disabled and app.capacity.disabled and app.delay.disabled
    app.balloon_target.value, app.host_swap.value = 0.5, "1024MiB"
    chosen, base = app.configs().values()
    assert chosen.balloon_target == chosen.guest_mem // 2 and chosen.host_swap == GIB
    assert "with 1 GiB swap" in app.scenario.value and base.balloon_target is None
    app.policy.value = "mom"  # mom sizes the balloon itself: the target does not apply
    assert app.balloon_target.disabled
    chosen, base = app.configs().values()
    assert chosen.policy == "mom" and chosen.balloon_target is None
    assert base.balloon_target is None and base.policy == "static"  # mom cannot drive none
    app.policy.value = "static"
    assert not app.balloon_target.disabled
    app.mechanism.value = "page_reporting"
    assert app.balloon_target.disabled and not app.capacity.disabled
    assert not app.delay.disabled
    app.capacity.value, app.delay.value = 64, 0.5
    chosen, base = app.configs().values()
    assert chosen.mechanism_params == {"capacity": 64, "delay_s": 0.5}
    assert base.mechanism_params == {}
    app.mechanism.value = "hinting_bitmap"  # a capacity, no delay
    assert not app.capacity.disabled and app.delay.disabled
    assert app.config().mechanism_params == {"capacity": 64}
    app.mechanism.value = "none"
    assert list(app.configs()) == ["none"]  # no duplicate baseline


def test_app_run_updates_progress_plots_and_table_in_place():
    from fphlib.viz.widgets import SimulationApp

    sim = RecordingSimulate()
    app = SimulationApp(profile="smoke", simulate=sim)
    assert app.rss_image.value == b"" and app.table.value == ""
    app.run_button.click()
    assert [c.mechanism for c in sim.configs] == ["page_reporting", "none"]
    assert (app.progress.value, app.progress.max, app.progress.bar_style) == (2, 2, "success")
    first_png = app.rss_image.value
    assert first_png[:8] == b"\x89PNG\r\n\x1a\n" and app.guest_image.value[:4] == b"\x89PNG"
    assert "page_reporting (order 9)" in app.table.value and "none" in app.table.value
    # readable: labels, units, a change column, the scenario named
    assert "host RSS, peak" in app.table.value and "host_rss_peak_bytes" not in app.table.value
    assert "vs none" in app.table.value and "GiB" in app.table.value
    scenario = "3 × 512 MiB guests on a 2 GiB host · idle · 10 s"  # make_result's config
    assert scenario in app.table.value
    assert scenario in app._rss_fig.axes[0].get_title()
    assert "p90 over the guests" in app.table.value and "virtqueue kicks" in app.table.value
    assert scenario in app._guest_fig.get_suptitle()
    assert not app.run_button.disabled and app.runs_done == 1
    children = list(app.widget.children)

    app.mechanism.value = "balloon"
    app.guests.value = 1
    app.run_button.click()
    assert [c.mechanism for c in sim.configs[2:]] == ["balloon", "none"]
    assert all(c.guests == 1 for c in sim.configs[2:])
    assert app.rss_image.value != first_png
    assert "balloon" in app.table.value and "page_reporting" not in app.table.value
    assert list(app.widget.children) == children  # same widgets, new content
    assert len(app._rss_fig.axes) == 1  # the figure is reused, not stacked
    assert app.runs_done == 2


def test_every_app_marks_its_results_stale_when_a_control_changes():
    import ipywidgets as W

    from fphlib.viz.block_size import BlockSizeApp
    from fphlib.viz.mechanisms import CompareApp
    from fphlib.viz.migration import MigrationApp
    from fphlib.viz.policies import PolicyApp
    from fphlib.viz.validation import ValidationApp
    from fphlib.viz.widgets import SimulationApp, value_controls

    apps = [(SimulationApp(profile="smoke"), "workload", "churn"),
            (CompareApp(profile="smoke"), "guests", 2),
            (MigrationApp(profile="smoke"), "free", 0.5),
            (PolicyApp(profile="smoke"), "policy", "watermark"),
            (BlockSizeApp(profile="smoke"), "seeds", 4),
            (ValidationApp(profile="smoke"), "quick", None)]
    for app, name, new in apps:
        marker, control = app.stale_marker, getattr(app, name)
        what = type(app).__name__
        # every control of the app is watched
        assert set(marker.controls) == {w for w in value_controls(app.widget)
                                        if not isinstance(w, W.Button)}, what
        assert marker.banner in app.widget.children, what
        old = control.value
        control.value = new if new is not None else not old
        assert marker.banner.value == "", f"{what}: stale before any run"
        control.value = old
        marker.shown("the run shown")
        assert marker.banner.value == "" and not marker.stale, what
        control.value = new if new is not None else not old
        assert marker.stale, what
        assert "results below are for <b>the run shown</b>" in marker.banner.value, what
        assert control.description in marker.banner.value, what
        assert all("fphlib-stale" in w._dom_classes for w in marker.stale_widgets), what
        control.value = old  # back to the run's settings: current again
        assert marker.banner.value == "", what
        assert not any("fphlib-stale" in w._dom_classes for w in marker.stale_widgets), what


def test_simulation_app_stale_banner_names_the_run_shown_until_run_again():
    from fphlib.viz.widgets import SimulationApp

    app = SimulationApp(profile="smoke", simulate=RecordingSimulate())
    app.run_button.click()
    assert app.stale_marker.banner.value == ""
    assert "page_reporting (order 9)" in app.caption and "policy static" in app.caption
    assert app.caption in app.table.value  # the table's caption names what it shows
    app.mechanism.value = "balloon"
    banner = app.stale_marker.banner.value
    assert "page_reporting (order 9)" in banner and "mechanism" in banner
    app.run_button.click()
    assert app.stale_marker.banner.value == "" and "balloon" in app.caption


def test_impossible_scenario_disables_run_with_the_reasons():
    from fphlib.viz.widgets import SimulationApp

    sim = RecordingSimulate()
    app = SimulationApp(profile="smoke", simulate=sim)
    assert app.problems == [] and not app.run_button.disabled
    with _no_warning():
        app.guests.value, app.guest_mem.value, app.host_mem.value = 6, "16384MiB", "512MiB"
    assert app.run_button.disabled
    assert "Run is disabled" in app.scenario.value and "guests 0-5" in app.scenario.value
    assert "larger than host RAM + swap (512 MiB)" in app.scenario.value
    app.run()  # from Python too: nothing runs
    assert sim.configs == [] and app.results == {}
    app.guests.value, app.guest_mem.value, app.host_mem.value = 1, "256MiB", "2048MiB"
    assert app.problems == [] and not app.run_button.disabled
    app.run_button.click()
    assert len(sim.configs) == 2 and not app.run_button.disabled


class _no_warning:
    """No UserWarning may escape (the app shows the problems itself)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", UserWarning)

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def test_guest_panels_mark_oom_kills_and_say_how_many_are_shown():
    res = make_result("none", guests=6)
    res.events = pd.DataFrame({"t_s": [2.5], "guest": [1], "kind": ["oom_kill"], "value": [0]})
    fig = plots.plot_guest_memory(res, title="run")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["guest 0", "guest 1: OOM-killed at 2.5 s", "guest 2", "guest 3"]
    assert [line.get_xdata()[0] for line in fig.axes[1].lines if line.get_color() == "tab:red"]\
        == [2.5]
    assert fig.get_suptitle() == "run (showing guests 0-3 of 6)"
    assert plots.plot_guest_memory(make_result("none", guests=2)).get_suptitle() == ""


def test_simulation_app_seeds_give_bands_and_intervals():
    from fphlib.viz.widgets import SimulationApp

    sim = RecordingSimulate()
    app = SimulationApp(profile="smoke", simulate=sim)
    app.seeds.value = 3
    app.run_button.click()
    assert [c.mechanism for c in sim.configs] == ["page_reporting"] * 3 + ["none"] * 3
    assert len({c.seed for c in sim.configs}) == 3  # replicate seeds, the same per mechanism
    assert [c.seed for c in sim.configs[:3]] == [c.seed for c in sim.configs[3:]]
    ax = app._rss_fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["page_reporting (order 9)", "none"]  # one line per mechanism
    assert ax.collections  # the 95 % band over the seeds
    assert "3 seeds" in ax.get_title() and "3 seeds" in app.caption
    assert " ± " in app.table.value and "(first seed)" in app.table.value


def test_every_app_control_has_a_tooltip():
    import ipywidgets as W

    from fphlib.viz.block_size import BlockSizeApp
    from fphlib.viz.mechanisms import CompareApp
    from fphlib.viz.migration import MigrationApp
    from fphlib.viz.tour import TourApp
    from fphlib.viz.widgets import SimulationApp

    def controls(w):
        if isinstance(w, W.Box):
            for c in w.children:
                yield from controls(c)
        elif isinstance(w, W.ValueWidget | W.Button) and not isinstance(
                w, W.HTML | W.Label | W.Image | W.IntProgress):
            yield w

    apps = [SimulationApp(profile="smoke"), CompareApp(profile="smoke"),
            MigrationApp(profile="smoke"), TourApp("16MiB"), BlockSizeApp(profile="smoke")]
    for app in apps:
        found = list(controls(app.widget))
        assert len(found) >= 3
        missing = [getattr(w, "description", type(w).__name__) for w in found if not w.tooltip]
        assert not missing, f"{type(app).__name__}: no tooltip on {missing}"


def test_compare_app_disables_the_hint_order_when_no_mechanism_takes_it():
    from fphlib.viz.mechanisms import CompareApp

    app = CompareApp(profile="smoke")
    assert not app.hint_order.disabled and "page_reporting" in app.block_label.value
    app.mechanisms.value = ("none", "balloon")
    assert app.hint_order.disabled and "no selected mechanism" in app.block_label.value


def test_stale_plots_are_greyed_while_a_run_computes():
    from fphlib.viz.widgets import SimulationApp

    seen = []

    def sim(cfg, progress=False):
        seen.append([("fphlib-stale" in w._dom_classes) for w in app.stale_widgets])
        return RecordingSimulate()(cfg, progress)

    app = SimulationApp(profile="smoke", simulate=sim)
    app.run()
    assert seen == [[True] * 3, [True] * 3]
    assert not any("fphlib-stale" in w._dom_classes for w in app.stale_widgets)


def test_warm_up_shows_a_progress_bar_only_when_cold(monkeypatch):
    from fphlib.api import warmup as wu
    from fphlib.viz.widgets import warm_up

    shown = []
    monkeypatch.setattr(wu, "is_warm", lambda: True)
    assert warm_up(show=shown.append) is None and shown == []
    calls = []

    def fake_warmup(progress=None):
        for k in range(3):
            progress(k, 3, f"step {k}")
            calls.append(k)
        progress(3, 3, "done")

    monkeypatch.setattr(wu, "is_warm", lambda: False)
    monkeypatch.setattr(wu, "warmup", fake_warmup)
    box = warm_up(show=shown.append)
    assert shown == [box] and calls == [0, 1, 2]
    label, bar = box.children
    assert (bar.value, bar.max) == (3, 3)
    assert "compiled" in label.value


def test_app_reports_errors_and_recovers():
    from fphlib.viz.widgets import SimulationApp

    app = SimulationApp(profile="smoke", simulate=RecordingSimulate(fail=True))
    with pytest.raises(RuntimeError, match="engine exploded"):
        app.run()
    assert app.progress.bar_style == "danger"
    assert "engine exploded" in app.status.value
    assert not app.run_button.disabled and app.results == {}


def test_app_profile_comes_from_environment(monkeypatch):
    from fphlib.viz.widgets import SimulationApp

    monkeypatch.setenv("FPHLIB_PROFILE", "full")  # the README's headline scenario
    cfg = SimulationApp().config()
    assert (cfg.host_mem, cfg.guests, cfg.guest_mem) == (16 * GIB, 3, 5 * GIB)
    monkeypatch.delenv("FPHLIB_PROFILE")  # default: demo, as every notebook
    assert SimulationApp().config().guest_mem == 1280 << 20
    monkeypatch.setenv("FPHLIB_PROFILE", "huge")
    with pytest.raises(ValueError, match="FPHLIB_PROFILE/profile: 'huge' is not one of smoke"):
        SimulationApp()


# ---------------------------------------------------------------------------- guest side


def test_fragmentation_frame_by_hand():
    # 8 free order-0 pages and 4 free order-1 blocks: 16 free pages in 12 blocks.
    nr_free = [8, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    f = plots.fragmentation_frame(nr_free).set_index(["order", "index"])["value"]
    # order 3 (8 pages) fails: fragmentation 1000 - (1000 + 16*1000/8) / 12 = 750
    assert f[(3, "fragmentation index")] == 0.75
    assert f[(3, "unusable free space index")] == 1.0  # nothing usable at order 3
    # order 1 succeeds (kernel: -1000) -> a gap, and half the free pages are in order-0 blocks
    assert np.isnan(f[(1, "fragmentation index")])
    assert f[(1, "unusable free space index")] == 0.5
    assert f[(0, "unusable free space index")] == 0.0
    ax = plots.plot_fragmentation(nr_free)
    assert ax.get_ylabel() == "index (0..1)"


def test_guest_tour_alloc_free_fill_churn():
    from fphlib.viz.tour import GuestTour

    tour = GuestTour("16MiB", track="page", seed=5)
    assert tour.n_pages == 4096 and tour.used_pages == 0
    pfn = tour.alloc(3)
    assert pfn >= 0 and tour.used_pages == 8 and tour.live == [(pfn, 3)]
    assert tour.free() == (pfn, 3) and tour.used_pages == 0
    with pytest.raises(ValueError, match="nothing is allocated"):
        tour.free()
    tour.fill_to(0.5)
    assert 0.5 <= tour.used_fraction < 0.5 + 1024 / 4096
    assert sum(1 << o for _, o in tour.live) == tour.used_pages
    tour.churn(3000, target=0.7)
    assert abs(tour.used_fraction - 0.7) < 0.15
    tour.buddy.check()
    snap = tour.snapshot()
    assert snap["free_pages"] == tour.n_pages - tour.used_pages
    assert snap["xbitmap_bytes"] == tour.buddy.tracking_stats["nbytes"] > 0
    assert tour.buddyinfo().split()[4:] == [str(n) for n in snap["nr_free"]]
    tour.free_all()
    assert tour.buddy.nr_free.tolist() == [0] * 10 + [4]  # merged back into 4 MiB blocks
    with pytest.raises(ValueError, match="target"):
        tour.churn(10, target=1.5)


def test_tracking_memory_by_hand():
    from fphlib.viz.tour import STRUCTURES, tracking_memory

    m = tracking_memory("64MiB", fractions=(0.0, 0.5, 0.9), churn_ops=300, seed=2)
    by = m.pivot_table(index="target", columns="structure", values="bytes")
    assert (by[STRUCTURES["flat"]] == 16384 // 8).all()
    assert (by[STRUCTURES["flags"]] == 16384).all()
    # empty guest: 16 full leaves (128 B) under one radix node (576 B)
    assert by.loc[0.0, STRUCTURES["page"]] == 16 * 128 + 576
    # a 4 MiB region holds a free head iff it holds a free page: same leaves either way
    assert (by[STRUCTURES["page"]] == by[STRUCTURES["head"]]).all()
    assert by.loc[0.9, STRUCTURES["page"]] <= by.loc[0.0, STRUCTURES["page"]]
    with pytest.raises(ValueError, match="ascending"):
        tracking_memory("16MiB", fractions=(0.5, 0.1))


def test_tracking_work_by_hand():
    from fphlib.viz.tour import STRUCTURES, tracking_work

    w = tracking_work("32MiB", target=0.9, churn_ops=400, seed=3)
    flat, page, head = (w.loc[STRUCTURES[k]] for k in ("flat", "page", "head"))
    # tracking never changes the allocator: the same list operations in all three zones
    assert flat["list_ops"] == page["list_ops"] == head["list_ops"] > 400
    # the flat bitmap allocates nothing; per page or per head, a leaf exists exactly when its
    # 4 MiB region holds free memory, so the two xbitmaps allocate and free the same leaves
    assert flat["leaf_kmallocs_per_step"] == flat["node_kmallocs_per_step"] == 0
    assert flat["bytes"] == 32 * 256 // 8
    assert page["leaf_kmallocs_per_step"] == head["leaf_kmallocs_per_step"] > 0
    assert page["bytes"] == head["bytes"]
    assert page["preload_kmallocs_per_step"] >= page["leaf_kmallocs_per_step"] - 1 / 400
    with pytest.raises(ValueError, match="target"):
        tracking_work("16MiB", target=1.0)
    with pytest.raises(ValueError, match="churn_ops"):
        tracking_work("16MiB", churn_ops=0)


def test_tour_app_buttons_redraw():
    from fphlib.viz.tour import TourApp

    app = TourApp("16MiB", seed=1)
    first = app.images[0].value
    assert first[:4] == b"\x89PNG" and "used 0.0%" in app.status.value
    app.order.value = 9
    app.alloc_button.click()
    assert app.tour.used_pages == 512 and "used 12.5%" in app.status.value
    assert app.images[0].value != first
    app.churn_button.click()
    assert app.tour.used_pages > 512 or len(app.tour.live) > 1
    app.reset_button.click()
    assert app.tour.used_pages == 0 and "Normal" in app.buddyinfo_text.value
    app.free_button.click()  # nothing to free: no error, nothing changes
    assert app.tour.used_pages == 0


def test_app_with_the_real_engine():
    from fphlib.viz.widgets import SimulationApp

    app = SimulationApp(profile="smoke")
    app.guests.value = 2
    results = app.run()
    assert list(results) == ["page_reporting (order 9)", "none"]
    rep, base = results["page_reporting (order 9)"], results["none"]
    assert rep.config.guests == 2 and base.config.mechanism == "none"
    # the smoke scenario gives memory back with reporting and not without
    assert rep.summary["reported_bytes"] > 0 and base.summary["reported_bytes"] == 0
    assert rep.summary["host_rss_final_bytes"] < base.summary["host_rss_final_bytes"]
    assert app.rss_image.value[:4] == b"\x89PNG"
    # every per-guest metric has a label and unit in the one home (no raw names shown)
    unlabeled = [c for c in rep.guest_summary.columns
                 if c != "guest" and c not in plots.GUEST_METRICS
                 and c not in plots.SUMMARY_METRICS]
    assert not unlabeled


def test_headline_scenario_sizes():
    from fphlib.experiments.scenarios import balloon_target_for, headline_config, headline_configs

    cfgs = headline_configs("full")
    assert list(cfgs) == ["none", "balloon", "page_reporting"]
    c = cfgs["balloon"]
    assert (c.host_mem, c.guests, c.guest_mem) == (16 * GIB, 3, 5 * GIB)
    assert c.workload == "memhog" and c.workload_params["size"] == 4 * GIB
    # idle footprint 256 MiB + 20 % of 5 GiB = 1280 MiB
    assert c.balloon_target == 1280 << 20
    assert cfgs["none"].balloon_target is None
    assert [o["start_s"] for o in c.guest_overrides] == [0.0, 10.0, 20.0]
    # 20 % of 100 MiB = 20 MiB (+ 1 MiB boot) rounds up to whole 4 MiB blocks: 24 MiB
    assert balloon_target_for(100 << 20, 1 << 20) == 24 << 20
    assert headline_config("smoke", "none", guests=1).guest_overrides == ({"start_s": 0.0},)


def test_guest_spread_percentiles_and_exits_by_cause_by_hand():
    from fphlib.viz.tables import guest_spread, readable

    res = make_result("page_reporting", guests=5)
    res.guest_summary["workload_stall_s"] = [0.0, 1.0, 2.0, 3.0, 4.0]
    res.guest_summary["workload_runtime_s"] = [10.0, np.nan, 30.0, np.nan, 20.0]
    res.guest_summary["vmexits"] = [10, 10, 10, 10, 10]
    res.guest_summary["faults"] = [7, 7, 7, 7, 8]
    spread = guest_spread({"page_reporting": res})["page_reporting"]
    assert spread["workload_stall_p50_s"] == 2.0
    assert spread["workload_stall_p90_s"] == pytest.approx(3.6)  # linear between 3 and 4
    assert spread["workload_runtime_p50_s"] == 20.0  # over the three that finished
    assert spread["kick_exits"] == 50 - 36 and spread["fault_exits"] == 36
    res.guest_summary["thp_splits"] = [0, 1, 2, 0, 0]
    assert guest_spread({"page_reporting": res})["page_reporting"]["thp_splits"] == 3
    old = res.guest_summary.drop(columns="thp_splits")  # a result saved before the counter
    res.guest_summary = old
    assert np.isnan(guest_spread({"page_reporting": res})["page_reporting"]["thp_splits"])
    res.guest_summary["workload_runtime_s"] = np.nan  # none finished: "–", and why
    t = readable(guest_spread({"page_reporting": res}))
    label = plots.metric_info("workload_runtime_p50_s").label
    assert label not in t.frame.index  # not shown, and the footnote says why
    assert any("no guest's workload finished" in n for n in t.notes)


def test_migration_figures_and_table_by_hand():
    from fphlib.viz.migration import migration_table, plot_migration, plot_race

    rows = []
    for mem in (1.0, 2.0):
        for touched in ("never touched", "used before"):
            for mig in ("none (legacy)", "free_page_hint alloc", "free_page_hint xbitmap"):
                hinted = mig != "none (legacy)"
                rows.append(dict(guest_gib=mem, free_fraction=0.5, free_memory=touched,
                                 migration=mig, migration_time_s=mem * (0.5 if hinted else 1),
                                 migration_gib=mem * (0.5 if hinted else 1)))
    grid = pd.DataFrame(rows)
    fig = plot_migration(grid)
    lines = fig.axes[0].get_lines()
    alloc = [ln for ln in lines if ln.get_label().startswith("free_page_hint alloc")]
    xbitmap = [ln for ln in lines if ln.get_label().startswith("free_page_hint xbitmap")]
    # equal values: the line drawn first is wider and marked differently, so it shows
    assert alloc[0].get_linewidth() > xbitmap[0].get_linewidth()
    assert alloc[0].get_marker() != xbitmap[0].get_marker()
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    table = migration_table(grid, caption="c")
    assert table.frame.shape == (4, 6)  # (size, free, touched) x (time, sent) per migration
    assert table.frame.loc[("1.00 GiB", "0.50", "used before"), "sent: none (legacy)"] \
        == "1.00 GiB"
    race = pd.DataFrame([dict(variant=v, discard_latency_ms=lat, churn_ops_per_s=ops,
                              lost_writes=0, returned_mib=1.0, zone_lock_hold_ms=0.1)
                         for v in ("read-only (racy)", "isolating") for lat in (0.1, 1000.0)
                         for ops in (1000.0, 20000.0)])
    fig = plot_race(race)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == ["0.1", "1000"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1,000", "20,000"]


def test_fragmentation_legend_lists_only_drawn_indices():
    ax = plots.plot_fragmentation([1] * 11)  # a free block of every order
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["unusable free space index"]
    assert any("fragmentation index: no value" in t.get_text() for t in ax.texts)
    ax = plots.plot_fragmentation([8, 4] + [0] * 9)
    assert set(ax.get_legend_handles_labels()[1]) == {"fragmentation index",
                                                      "unusable free space index"}


def test_compare_bar_labels_never_in_scientific_notation():
    from fphlib.viz.mechanisms import plot_compare

    runs = {"none": make_result("none"), "balloon": make_result("balloon")}
    runs["balloon"].summary["guest_cpu_overhead_s"] = 4.83e-05
    fig = plot_compare(runs, metrics=("guest_cpu_overhead_s",))
    texts = [t.get_text() for t in fig.axes[-1].texts]
    assert "0.0000483" in texts and not any("e-" in t for t in texts)


class SeededSimulate(RecordingSimulate):
    """RecordingSimulate whose runs differ by seed: host RSS level and report count."""

    def __call__(self, cfg, progress=False):
        super().__call__(cfg, progress)  # records the config
        level = 0.4 + (cfg.seed % 7) / 10
        res = make_result(cfg.mechanism, guests=cfg.guests, level=level,
                          hint_order=cfg.hint_order)
        res.config = cfg
        res.summary["reports"] = float(cfg.seed % 97)
        return res


COMPARED = ("none", "balloon", "page_reporting")


def test_compare_app_with_one_seed_runs_and_draws_as_before():
    from fphlib.viz.mechanisms import CompareApp, compare_configs, summary_frame
    from fphlib.viz.tables import readable

    sim = SeededSimulate()
    app = CompareApp(profile="smoke", simulate=sim)
    app.mechanisms.value = COMPARED
    assert app.seeds.value == 1 and (app.seeds.min, app.seeds.max) == (1, 5)
    assert app.configs() == compare_configs(app.config(), COMPARED)
    app.run_button.click()
    assert list(app.results) == list(COMPARED) and len(sim.configs) == 3
    plain = {c.mechanism: SeededSimulate()(c, progress=True) for c in sim.configs}
    pd.testing.assert_frame_equal(app.summary, summary_frame(plain))
    pd.testing.assert_frame_equal(plots.host_frame(app.results, hue="mechanism"),
                                  plots.host_frame(plain, hue="mechanism"))
    assert "seeds" not in app.caption and " ± " not in app.table.value
    expected = readable(plain, caption=f"Summary: {app.caption}").to_html(
        classes="fphlib-summary")
    assert app.table.value == expected  # the change against none, as before
    rss, bars = app._fig.axes[0], app._fig.axes[2]
    assert rss.get_title() == "Host RSS over time (× = host OOM kill)"
    assert not any(np.isfinite(line.get_ydata()).any() for line in bars.lines)  # no error bars
    assert [p.get_height() for p in bars.patches] == list(app.summary["reports"])


def test_compare_app_seeds_give_bands_error_bars_and_intervals():
    from fphlib.sweep import replicate_seeds
    from fphlib.viz.mechanisms import CompareApp
    from fphlib.viz.tables import format_value

    sim = SeededSimulate()
    app = CompareApp(profile="smoke", simulate=sim)
    app.mechanisms.value = COMPARED
    app.seeds.value = 3
    app.run_button.click()
    # 3 runs per mechanism, the same replicate seeds for each
    assert [c.mechanism for c in sim.configs] == [m for m in COMPARED for _ in range(3)]
    seeds = replicate_seeds(app.config().seed, 3)
    assert [c.seed for c in sim.configs] == seeds * 3
    assert list(app.results)[:3] == ["none", "none · seed #1", "none · seed #2"]
    assert list(app.summary["mechanism"]) == [m for m in COMPARED for _ in range(3)]
    # the 95 % interval of the reports of none, by hand: Student's t, 2 degrees of freedom
    reports = np.array([s % 97 for s in seeds], dtype=float)
    mean = reports.mean()
    half = 4.302653 * reports.std(ddof=1) / np.sqrt(3)  # scipy.stats.t.ppf(0.975, 2)
    assert half > 0
    bars = app._fig.axes[2]
    assert bars.get_title() == "reports / balloon msgs"
    assert bars.patches[0].get_height() == pytest.approx(mean)
    low, high = np.nanmin(bars.lines[0].get_ydata()), np.nanmax(bars.lines[0].get_ydata())
    assert (low, high) == pytest.approx((mean - half, mean + half), rel=1e-3)
    assert f"{format_value(mean, 'count')} ± {format_value(half, 'count')}" in app.table.value
    # host RSS: one line per mechanism, the band of none ends at its mean + half-width
    rss = app._fig.axes[0]
    assert rss.get_legend_handles_labels()[1] == list(COMPARED)
    levels = np.array([0.4 + (s % 7) / 10 for s in seeds])
    top = rss.collections[0].get_paths()[0].vertices[:, 1].max()
    upper = levels.mean() + 4.302653 * levels.std(ddof=1) / np.sqrt(3)
    assert top == pytest.approx(upper, rel=1e-3)
    # the titles and captions name the seed count
    assert "3 seeds (mean, 95 % band)" in rss.get_title()
    assert "3 seeds (mean, 95 % band)" in app._fig.get_suptitle()
    assert "3 seeds" in app.caption and app.caption in app.table.value
    assert "done: 9 runs (3 mechanism(s) × 3 seeds)" in app.status.value
    # the stale banner watches the seeds
    assert app.seeds in app.stale_marker.controls
    app.seeds.value = 2
    assert app.stale_marker.stale and "seeds" in app.stale_marker.banner.value
