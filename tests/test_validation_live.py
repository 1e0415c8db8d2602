"""fphlib.validation against live-kernel recordings (fphlib.observe): the model's drain,
fragmentation and first-touch records on synthetic recordings built from the model itself
(which must pass) and distorted ones (which must fail, saying what differs); the helpers
they stand on (a buddy allocator carved to a buddyinfo, a replay sampled over time)."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import fphlib  # noqa: E402
from fphlib import validation as V  # noqa: E402
from fphlib.costs import DEFAULTS  # noqa: E402
from fphlib.guest.fragmentation import allocator_from_nr_free, carve_plan  # noqa: E402
from fphlib.observe.drain import DrainRecording  # noqa: E402
from fphlib.observe.touch import FirstTouchRecording  # noqa: E402
from fphlib.observe.trace import TraceRecording  # noqa: E402
from fphlib.workloads.trace_file import generate_trace  # noqa: E402

MiB = 1 << 20


def make(cls, **given):
    """A recording of ``cls`` from the fields a test cares about; any other field of the
    class (fphlib.observe grows them) gets an empty value of its type."""
    import dataclasses

    empty = {int: 0, float: 0.0, bool: False, dict: {}, str: "", list: []}
    for f in dataclasses.fields(cls):
        if f.name in given or f.default is not dataclasses.MISSING \
                or f.default_factory is not dataclasses.MISSING:
            continue
        if f.name in cls.TABLES:
            given[f.name] = pd.DataFrame({c: pd.Series(dtype="int64")
                                          for c in cls.TABLES[f.name]})
        else:
            kind = f.type if isinstance(f.type, type) else eval(f.type)  # noqa: S307
            given[f.name] = empty[kind]
    return cls(**given)
PROV = {"kernel": "test", "date": "2026-01-01", "page_reporting_order": 9,
        "page_reporting_capacity": 32, "page_reporting_delay_s": 2.0,
        "mem_total_bytes": 1 << 30}


# ------------------------------------------------------------------ carving and replay


@pytest.mark.parametrize("seed", range(6))
def test_allocator_from_nr_free_holds_exactly_the_counts(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 40, 11)
    counts[rng.integers(0, 11)] = 0
    b = allocator_from_nr_free(counts)
    b.check()
    assert b.nr_free.tolist() == counts.tolist()
    pages, mixed, blocks = carve_plan(counts)
    assert b.n_pages == pages and [len(x) for x in blocks] == counts.tolist()
    # the fewest mixed chunks: one fewer cannot hold the free blocks below the top order
    if mixed:
        used = b.n_pages - b.free_pages
        assert used >= mixed  # every mixed chunk keeps an allocated page
    big = allocator_from_nr_free(counts, n_pages=pages + 5 * 1024 + 1)
    assert big.n_pages == pages + 6 * 1024 and big.nr_free.tolist() == counts.tolist()


def test_allocator_from_nr_free_edges():
    assert allocator_from_nr_free([0] * 11).free_pages == 0
    b = allocator_from_nr_free([1, 1, 1, 1])  # 4 orders: 8-page chunks
    assert b.nr_free.tolist() == [1, 1, 1, 1] and b.n_pages == 16
    with pytest.raises(ValueError, match="nr_free"):
        allocator_from_nr_free([1, -1])


def test_replay_sampled_matches_prefix_replays():
    tr = generate_trace(6000, seed=5, n_pages=1 << 14)
    ends = [0, 10, 2500, 2500, 6000]
    failed, sampled = fphlib.BuddyAllocator(1 << 14).replay(tr.kind, tr.order, tr.slot,
                                                            sample_at=ends)
    assert sampled.shape == (5, 11)
    for i, e in enumerate(ends):
        b = fphlib.BuddyAllocator(1 << 14)
        prefix_failed = b.replay(tr.kind[:e], tr.order[:e], tr.slot[:e])
        assert sampled[i].tolist() == b.nr_free.tolist()
    assert failed == prefix_failed
    for bad in ([3, 2], [-1], [7000]):
        with pytest.raises(ValueError, match="sample_at"):
            fphlib.BuddyAllocator(1 << 14).replay(tr.kind, tr.order, tr.slot, sample_at=bad)


# ------------------------------------------------------------------ rules and curves


def test_live_rules():
    assert V.judge(12.0, 10.0, 10.0, "pct20")[2] and not V.judge(12.1, 10.0, 10.0, "pct20")[2]
    assert V.judge(8.0, 10.0, 10.0, "pct20")[2] and not V.judge(7.9, 10.0, 10.0, "pct20")[2]
    lo, hi, ok = V.judge(110, 100, 100, "unusable10")
    assert (lo, hi, ok) == (90, 110, True)
    assert "±20 %" in V.RULES["pct20"].text()


def test_drain_stats_of_a_step_curve():
    t = np.arange(0, 12.01, 0.5)
    r = np.full(len(t), 1000 * MiB, np.int64)
    for at, add in ((2.5, 300), (4.5, 300), (6.5, 200), (8.5, 200)):
        r[t >= at] += add * MiB
    r[t >= 3.0] += MiB // 4  # noise under 1 % of the growth: not a step
    st = V.drain_stats(t, r)
    assert st["steps"] == 4 and st["step_t_s"] == [2.5, 4.5, 6.5, 8.5]
    assert st["first_pass_bytes"] == 300 * MiB
    assert st["t50_s"] == 4.5 and st["t90_s"] == 8.5 and st["step_gap_s_median"] == 2.0
    flat = V.drain_stats(t, np.full(len(t), 5, np.int64))
    assert flat["steps"] == 0 and math.isnan(flat["t50_s"])


# ------------------------------------------------------------------ the drain


def buddy_frame(zones):
    rows = [(0, z, o, int(n)) for z, c in zones.items() for o, n in enumerate(c)]
    return pd.DataFrame(rows, columns=["node", "zone", "order", "nr_free"])


def drain_recording(reported=None, t_s=None, capacity=4):
    """A 512 MiB drain on a two-zone machine: 256 MiB reported before, the child's 512 MiB
    freed as order-10 blocks into Normal."""
    before = {"DMA32": [3, 1, 0, 2, 0, 0, 1, 0, 1, 2, 40], "Normal": [9, 4, 2, 0, 1, 0, 0,
                                                                       0, 0, 3, 24]}
    after = {k: list(v) for k, v in before.items()}
    after["Normal"][10] += 128
    t = np.arange(0, 44.01, 0.5) if t_s is None else t_s
    reported0 = 64 * 4 * MiB
    rep = np.full(len(t), reported0, np.int64) if reported is None else reported
    frame = pd.DataFrame({"t_s": t, "reported_bytes": rep.astype(np.int64),
                          "free_bytes": np.full(len(t), 900 * MiB, np.int64)})
    prov = {**PROV, "page_reporting_capacity": capacity}
    return make(
        DrainRecording, free_bytes=512 * MiB, duration_s=float(t[-1]), interval_s=0.5,
        reported_before_bytes=reported0, free_before_bytes=400 * MiB,
        reported_touched_bytes=reported0, free_touched_bytes=100 * MiB, touch_s=0.1,
        nohugepage=True, scan_s_mean=0.0, scan_s_max=0.0, provenance=prov, notes="",
        frame=frame, buddyinfo=buddy_frame(after), buddyinfo_before=buddy_frame(before))


@pytest.fixture(scope="module")
def self_drain():
    """A recording whose curve is the model's own prediction."""
    rec = drain_recording()
    model, info = V.drain_model(rec)
    return drain_recording(reported=model["reported_bytes"].to_numpy()), model, info


def test_drain_model_follows_the_kernel_arithmetic(self_drain):
    rec, model, info = self_drain
    assert info["zones"] == ["node 0 DMA32", "node 0 Normal"]
    assert info["page_reporting_order"] == 9 and info["capacity"] == 4
    # 256 MiB reported at t = 0 (the blocks free before the child), nothing before 2 s
    rep = model["reported_bytes"].to_numpy()
    assert rep[0] == 256 * MiB and (rep[model["t_s"] < 2.0] == rep[0]).all()
    # everything of order >= 9 reported in the end: 40 + 152 order-10 and 5 order-9 blocks
    assert rep[-1] == (40 + 152) * 4 * MiB + 5 * 2 * MiB
    st = V.drain_stats(model["t_s"], rep)
    # first pass: Normal's 3 order-9 blocks fill 3 of the 4 sg entries, then order 10
    # (152 blocks, budget ceil(152 / (4 * 16)) = 3) completes that report and sends 3 more
    # before the budget runs out: 3 x 2 + 13 x 4 MiB; DMA32's 2 order-9 blocks go in its
    # leftover report (4 MiB). Then a pass every 2 s.
    assert st["first_pass_bytes"] == (6 + 52 + 4) * MiB
    assert st["steps"] >= 3 and st["step_gap_s_median"] == pytest.approx(2.0, abs=0.5)


def test_a_recording_made_by_the_model_passes_against_itself(self_drain, tmp_path):
    rec, _, _ = self_drain
    path = rec.save(tmp_path / "drain_512MiB")
    records = V.against_drain(path)
    assert [r.case for r in records] == ["drain 512MiB: t50", "drain 512MiB: t90",
                                         "drain 512MiB: first pass"]
    for r in records:
        assert r.passed and r.value == r.published_low, r.note
        assert r.rule == "pct20" and r.comparable and "fails" not in r.note
        assert str(path) in r.config["recording"] and r.source.startswith("live recording")
    assert [r.unit for r in records] == ["s", "s", "MiB"]


def test_a_slower_recorded_drain_fails_and_says_what_differs(self_drain):
    rec, model, _ = self_drain
    t = model["t_s"].to_numpy()
    rep = model["reported_bytes"].to_numpy()
    slow = np.interp(t / 2, t, rep).astype(np.int64)  # the same curve at half the speed
    slow_rec = drain_recording(reported=slow)
    t50, t90, first = V.against_drain(slow_rec)
    assert not t50.passed and not t90.passed
    assert t50.published_low > 1.5 * t50.value
    assert "fails: t50" in t50.note and "in the model vs" in t50.note
    assert "passes" in t50.note and "real steps" in t50.note
    # halving each pass: the first step is half the model's first pass
    halved = drain_recording(reported=rep[0] + (rep - rep[0]) // 2)
    first = V.against_drain(halved)[2]
    assert not first.passed and "first pass reports" in first.note


def test_bad_drain_recordings_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="never grew"):
        V.against_drain(drain_recording())  # reported bytes flat
    with pytest.raises(FileNotFoundError, match="recording not found"):
        V.against_drain(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="junk"):
        V.against_drain(tmp_path / "junk")
    rec = drain_recording(reported=np.arange(89, dtype=np.int64) * MiB)
    rec.provenance = {**PROV, "page_reporting_order": None}
    with pytest.raises(ValueError, match="page_reporting_order"):
        V.against_drain(rec)
    rec = drain_recording(reported=np.arange(89, dtype=np.int64) * MiB)
    rec.buddyinfo = rec.buddyinfo.assign(nr_free=0)
    with pytest.raises(ValueError, match="nothing to report"):
        V.against_drain(rec)
    r = V.live_drain(tmp_path / "drain_4GiB", "t90")
    assert not r.passed and "recording not found" in r.note and math.isnan(r.value)


def test_live_cases_pick_up_recordings_in_the_table(self_drain, tmp_path):
    rec, _, _ = self_drain
    rec.save(tmp_path / "drain_512MiB")
    cases = V.live_cases(tmp_path)
    ids = [c for c in cases if c.startswith("live/drain/512MiB/")]
    assert ids == ["live/drain/512MiB/t50", "live/drain/512MiB/t90",
                   "live/drain/512MiB/first_pass"]
    # the shipped names are cases whether or not their recordings exist here
    assert "live/drain/4GiB/t50" in cases and "live/first_touch/2GiB/fault_2m" in cases
    records = [cases[c][0](**cases[c][1]) for c in ids]
    assert all(r.passed for r in records)
    df = V.to_frame(records, ids)
    assert list(df["id"]) == ids and df["comparable"].all()
    assert set(V.select("live")) == set(V.LIVE_CASES)


# ------------------------------------------------------------------ fragmentation


def trace_recording(distort=False):
    """A churn trace on a 64 MiB machine with buddyinfo samples made by the model itself
    (one zone), optionally with the last sample's free memory moved to order 0."""
    n_pages = 1 << 14
    tr = generate_trace(8000, seed=2, occupancy=0.5, ops_per_s=1000, n_pages=n_pages)
    start = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16], np.int64)
    b = allocator_from_nr_free(start, n_pages=n_pages)
    times = np.arange(0, 8.01, 0.5)
    ends = np.searchsorted(tr.t_us / 1e6, times, side="right")
    ends[0] = 0
    _, sampled = b.replay(tr.kind, tr.order, tr.slot, sample_at=ends)
    if distort:
        last = sampled[-1]
        pages = int((last << np.arange(11)).sum())
        sampled[-1] = 0
        sampled[-1, 0] = pages
    rows = [(t, 0, "Normal", o, int(n)) for t, c in zip(times, sampled, strict=True)
            for o, n in enumerate(c)]
    bi = pd.DataFrame(rows, columns=["t_s", "node", "zone", "order", "nr_free"])
    return make(
        TraceRecording, argv=["churn"], scope="tree", duration_s=8.0, returncode=0, events={},
        lost_events=0,
        complete=True, conversion={}, ops=len(tr.kind), n_pages=n_pages,
        trace_file="trace.npz", t0_offset_s=0.0, buffer_kb=1024, bytes_text=0,
        provenance={**PROV, "mem_total_bytes": n_pages * 4096}, buddyinfo=bi, trace=tr)


def test_fragmentation_of_a_model_made_recording_passes(tmp_path):
    rec = trace_recording()
    path = rec.save(tmp_path / "churn")
    frame = V.fragmentation_frame(path)
    assert set(frame["source"]) == {"real", "model"}
    assert list(frame.columns) == ["t_s", "order", "nr_free", "source"]
    real = frame[frame["source"] == "real"].reset_index(drop=True)
    model = frame[frame["source"] == "model"].reset_index(drop=True)
    assert (real[["t_s", "order", "nr_free"]] == model[["t_s", "order", "nr_free"]]).all().all()
    r = V.against_trace_fragmentation(path)
    assert r.passed and r.value == r.published_low and r.unit == "‰"
    assert r.extra["max_index_gap"] == 0 and r.extra["failed_allocs"] == 0


def test_fragmentation_that_differs_fails_with_the_orders():
    r = V.against_trace_fragmentation(trace_recording(distort=True))
    assert r.published_low == 1000 and not r.passed
    assert "fails: at the end the model holds" in r.note and "order 0" in r.note


# ------------------------------------------------------------------ first touch


def touch_recording(extra_s_per_gib, cases=("backed", "discarded"), reported=1.0):
    """Touch timings where a discarded touch costs ``extra_s_per_gib`` more per GiB of
    discarded memory, ``reported`` of its pages having been reported."""
    rows = []
    for case in cases:
        for rep in range(3):
            disc = case == "discarded"
            s = 0.25 + (extra_s_per_gib * reported if disc else 0.0) + 0.001 * rep
            rows.append({"case": case, "repeat": rep, "bytes": 1 << 30, "seconds": s,
                         "s_per_gib": s, "reported_share": reported if disc else math.nan,
                         "reported_grew_bytes": float(1 << 30) * reported if disc
                         else math.nan})
    df = pd.DataFrame(rows).reindex(columns=list(FirstTouchRecording.TABLES["touches"]))
    return make(FirstTouchRecording, size_bytes=1 << 30, repeats=3, wait_s=30.0,
                waited_s=[5.0, 5.0, 5.0], nohugepage=True, provenance=PROV, notes="",
                touches=df)


def test_first_touch_against_the_fault_costs():
    thp = DEFAULTS["fault_2m"][0] * 512  # the model's s/GiB with host THP
    r2m, r4k = V.against_first_touch(touch_recording(thp))
    assert r2m.passed and r2m.value == pytest.approx(100.0)
    assert r2m.published_low == pytest.approx(100.0, rel=1e-6)
    assert not r4k.passed and "this machine pays" in r4k.note
    small = DEFAULTS["fault_4k"][0] * 262144  # 4 KiB host pages
    r2m, r4k = V.against_first_touch(touch_recording(small))
    assert r4k.passed and not r2m.passed and "fault_2m" in r2m.note
    # 60 % reported: the difference is scaled to wholly discarded memory
    r2m, _ = V.against_first_touch(touch_recording(thp, reported=0.6))
    assert r2m.passed and r2m.published_low == pytest.approx(100.0, rel=1e-6)
    assert "reported share, 60 %" in r2m.note
    # discarded touches that met little reported memory measure nothing: both fail
    for r in V.against_first_touch(touch_recording(thp, reported=0.1)):
        assert not r.passed and "does not measure" in r.note and "only 10 %" in r.note
    with pytest.raises(ValueError, match="no discarded"):
        V.against_first_touch(touch_recording(thp, cases=("backed", "first")))


# ------------------------------------------------------------------ the table, make, figures


def test_make_source_picks_the_recorded_build_when_shipped():
    assert V.resolve_make_source("churn") == "churn"
    with pytest.raises(ValueError, match="make_source"):
        V.resolve_make_source("gcc")
    cfg = V.migration_config("1GiB", workload="make", make_source="churn")
    assert cfg.workload == "churn"
    if V.make_trace_path() is None:
        assert V.resolve_make_source(None) == "churn"
        with pytest.raises(ValueError, match="recording not found"):
            V.resolve_make_source("trace")
    else:
        assert V.resolve_make_source(None) == "trace"
        cfg = V.migration_config("1GiB", workload="make", make_source="trace")
        assert cfg.workload == "trace"
        assert cfg.workload_params["path"] == str(V.make_trace_path())


@pytest.mark.skipif(not V.REAL_DIR.is_dir(), reason="no shipped recordings (data/real)")
def test_shipped_live_records_are_well_formed():
    df = V.table("live")
    assert list(df["id"]) == list(V.LIVE_CASES)
    for _, r in df.iterrows():
        assert r["rule"] in V.RULES and r["note"] and r["result"] == "live"
        if "error" in r["extra"]:  # not found, or a recording this fphlib cannot read
            assert not r["passed"] and not r["comparable"] and "fails: " in r["note"]
            continue
        assert math.isfinite(r["value"]) and math.isfinite(r["published_low"]), r["id"]
        assert r["comparable"]
        assert r["accept_low"] <= r["published_low"] <= r["published_high"] <= r["accept_high"]
        assert r["passed"] == (r["accept_low"] <= r["value"] <= r["accept_high"])
        assert r["passed"] or "fails:" in r["note"], r["id"]
        assert r["source"].startswith("live recording data/real/")


def test_live_figures_and_app(self_drain, tmp_path):
    from fphlib.viz import validation as vv

    rec, _, _ = self_drain
    rec.save(tmp_path / "drain_512MiB")
    trace_recording().save(tmp_path / "churn")
    touch_recording(DEFAULTS["fault_2m"][0] * 512).save(tmp_path / "first_touch_1GiB")
    listed = vv.recordings(tmp_path)
    assert list(listed["name"]) == ["churn", "drain_512MiB", "first_touch_1GiB"]
    assert list(listed["kind"]) == ["trace", "drain", "first_touch"]
    assert vv.recordings(tmp_path / "absent").empty
    ax = vv.plot_drain(tmp_path / "drain_512MiB")
    assert len(ax.get_lines()) >= 2 and "t50" in ax.get_legend().get_texts()[0].get_text()
    fig = vv.plot_buddyinfo(V.fragmentation_frame(tmp_path / "churn"))
    assert sum(a.get_visible() for a in fig.axes) == 11
    ax = vv.plot_first_touch(tmp_path / "first_touch_1GiB")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["backed", "discarded"]
    app = vv.LiveApp(tmp_path)
    assert app.df is None  # nothing drawn before redraw() or a pick
    app.redraw()
    for name in listed["name"]:
        app.pick.value = name  # a change redraws
        assert app.df is not None and len(app.df) >= 1
        assert (" pass" in app.status.value or "FAIL" in app.status.value) and app.image.value
    # the validation figure takes rows without a positive reference (index 0, not found)
    df = V.to_frame([V.live_drain(tmp_path / "drain_8GiB", "t50"),
                     V.against_trace_fragmentation(tmp_path / "churn")])
    vv.plot_validation(df)
    assert "–" in str(vv.readable(df))
