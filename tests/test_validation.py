"""fphlib.validation: records well formed, deterministic, the tolerance rules applied as
documented; the cheap cases run (the reporting drain of a small guest, one migration pair at
a small size, the scaled admission without hinting)."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from fphlib import validation as V  # noqa: E402
from fphlib.viz import validation as vv  # noqa: E402

CHEAP = ["reporting_drain/8GiB", "migration/8GiB/idle"]


@pytest.fixture(scope="module")
def cheap():
    return V.table(CHEAP, quick=True)


def check_record(r):
    assert isinstance(r, V.Record)
    for name in ("name", "case", "result", "source", "unit", "rule", "note"):
        assert isinstance(getattr(r, name), str) and getattr(r, name), name
    assert r.rule in V.RULES
    assert r.unit in vv.UNIT_FORMATS  # shown with its own unit, never a guessed one
    assert r.published_low <= r.published_high
    assert math.isfinite(r.value)
    assert r.accept_low <= r.published_low and r.published_high <= r.accept_high
    assert r.passed == (r.accept_low <= r.value <= r.accept_high)
    assert isinstance(r.config, dict) and r.config
    assert isinstance(r.extra, dict)


def test_cheap_cases_give_well_formed_records(cheap):
    # CASES order, whatever order they were asked in
    assert list(cheap["id"]) == ["migration/8GiB/idle/hint", "migration/8GiB/idle/none",
                                 "reporting_drain/8GiB"]
    assert list(cheap.columns) == list(V.COLUMNS)
    for _, row in cheap.iterrows():
        r = V.Record(**{k: row[k] for k in V.Record.__dataclass_fields__})
        check_record(r)
        assert not r.comparable  # quick sizes are never held up as validation
    # the configs are the runs' own: a SimConfig can be rebuilt from each
    import fphlib

    for cfg in cheap["config"]:
        fphlib.SimConfig.from_dict(cfg)
    assert cheap.attrs["quick"] and cheap.attrs["wall_s"] > 0


def test_drain_counts_the_kernel_passes_of_a_small_guest(cheap):
    row = cheap.set_index("id").loc["reporting_drain/8GiB"]
    cfg = row["config"]
    assert cfg["guest_mem"] == 1 << 30 and cfg["workload"] == "idle"
    # 1 GiB - 256 MiB boot = 192 free order-10 blocks; budget ceil(192/512) + 1 = 2 reports
    # of 32 blocks per pass: 3 passes, 2 s apart, the first 2 s after boot.
    # (A heavier idle footprint shrinks the free part: never more passes than this.)
    passes = row["extra"]["passes"]
    assert 1 <= passes <= 3
    assert row["value"] == pytest.approx(2.0 * passes, abs=0.1)
    assert row["extra"]["reported_free_bytes"] > 0


def test_migration_pair_hint_is_faster_and_published_values_are_the_v37_ones(cheap):
    t = cheap.set_index("id")
    hint, legacy = t.loc["migration/8GiB/idle/hint"], t.loc["migration/8GiB/idle/none"]
    assert hint["value"] < legacy["value"]
    assert (hint["published_low"], legacy["published_low"]) == (620.0, 2970.0)
    assert hint["config"]["mechanism"] == "free_page_hint"
    assert legacy["config"]["mechanism"] == "none"
    assert hint["extra"]["lost_writes"] == 0


def test_deterministic(cheap):
    again = V.table(CHEAP, quick=True)
    cols = [c for c in V.COLUMNS if c != "wall_s"]
    pd.testing.assert_frame_equal(cheap[cols], again[cols])


@pytest.mark.parametrize("value, passed", [
    (620.0, True), (310.0, True), (1240.0, True), (309.9, False), (1240.1, False),
    (0.0, False), (math.nan, False), (math.inf, False),
])
def test_factor_rule(value, passed):
    r = V.make_record("migration", "x", "§8 #3", "src", 620.0, value, "ms", "factor2", True,
                      {"a": 1})
    assert (r.accept_low, r.accept_high) == (310.0, 1240.0)
    assert r.passed is passed


@pytest.mark.parametrize("value, passed", [(23.9, False), (24.0, True), (30.05, True),
                                           (32.0, True), (32.01, False)])
def test_one_pass_rule(value, passed):
    r = V.make_record("reporting_drain", "x", "§3.2", "src", (26.0, 30.0), value, "s",
                      "one_pass", True, {"a": 1})
    assert (r.accept_low, r.accept_high) == (24.0, 32.0)
    assert r.passed is passed


@pytest.mark.parametrize("value, passed", [(4, False), (5, True), (7, True), (8, False),
                                           (40, False)])
def test_exact_rule(value, passed):
    assert V.make_record("admission", "x", "§8 #1", "src", (5, 7), value, "guests", "exact",
                         True, {"a": 1}).passed is passed


def test_a_synthetic_value_outside_tolerance_fails_in_the_table(cheap):
    """The verdict comes from the rule, not from the run: move a value out and it fails."""
    row = cheap.iloc[0]
    rec = V.Record(**{k: row[k] for k in V.Record.__dataclass_fields__})
    for factor, ok in ((1.0, True), (2.0, True), (2.01, False), (0.499, False)):
        moved = V.make_record(rec.name, rec.case, rec.result, rec.source, rec.published_low,
                              rec.published_low * factor, rec.unit, rec.rule, True, rec.config)
        assert moved.passed is ok, factor
    far = [V.make_record(rec.name, rec.case, rec.result, rec.source, rec.published_low, 1e6,
                         rec.unit, rec.rule, comparable, rec.config)
           for comparable in (True, False)]
    assert [r.verdict for r in far] == ["FAIL", V.NA_QUICK]  # a quick size never FAILs
    assert "FAIL" in str(vv.readable(V.to_frame(far[:1])))
    assert "FAIL" not in str(vv.readable(V.to_frame(far[1:])))


def test_a_neighbouring_published_figure_gives_no_verdict():
    rec = V.make_record("admission", "page_reporting", "§8 #1", "src", (5, 7), 6, "guests",
                        "exact", True, {}, like_for_like=False)
    assert rec.passed and rec.verdict == V.NA_UNLIKE
    assert V.verdict_counts(V.to_frame([rec])) == f"1 {V.NA_UNLIKE}"


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="which"):
        V.select("nonsense")
    with pytest.raises(ValueError, match="rule"):
        V.make_record("a", "b", "c", "d", 1.0, 1.0, "s", "loose", True, {})
    with pytest.raises(ValueError, match="mechanism"):
        V.admission("balloon", quick=True)
    with pytest.raises(ValueError, match="max_guests"):
        V.admission("hinting_v8", quick=True, max_guests=7)
    with pytest.raises(ValueError, match="guest_mem/workload"):
        V.migration("16GiB", quick=True)


def test_every_case_runs_at_quick_size():
    df = V.table(quick=True)
    assert list(df["id"]) == list(V.CASES) + list(V.LIVE_CASES)
    live = df["id"].str.startswith("live/")  # tests/test_validation_live.py checks these
    for _, row in df[~live].iterrows():
        check_record(V.Record(**{k: row[k] for k in V.Record.__dataclass_fields__}))
    assert not df[~live]["comparable"].any()
    ad = df.set_index("id")
    # the scaled v8 scenario keeps the letter's ratios: 3 guests fit without hinting
    assert ad.loc["admission/none", "value"] == 3
    assert not ad.loc["admission/none", "extra"]["capped"]
    wis = ad.loc["will_it_scale"]
    assert wis["value"] >= 0 and len(wis["config"]["runs"]) == 2
    assert {r["mechanism"] for r in wis["config"]["runs"]} == {"none", "page_reporting"}


def test_every_case_is_named_and_selectable():
    assert V.select(None) == list(V.CASES) + list(V.LIVE_CASES)
    assert V.select("migration/8GiB") == [c for c in V.CASES if c.startswith("migration/8GiB/")]
    # §8 #1-#4 and the drain are all covered
    results = {V.CASES[c][0].__name__ for c in V.CASES}
    assert results == {"admission", "will_it_scale", "migration", "reporting_drain",
                       "esx_idle_tax"}


def test_drain_passes_from_a_synthetic_series():
    t = np.arange(0, 10.0, 0.5)
    cum = np.zeros_like(t)
    for k, at in enumerate((2.0, 4.0, 6.0)):  # three passes
        cum[t >= at] += 100 * (k + 1)
    guests = pd.DataFrame({"t_s": t, "reported_bytes": cum, "reported_free_bytes": cum})
    assert V.drain_passes(guests) == (6.0, 3)
    flat = guests.assign(reported_bytes=0.0, reported_free_bytes=0.0)
    t_last, passes = V.drain_passes(flat)
    assert math.isnan(t_last) and passes == 0


def test_figure_and_table_of_the_cheap_cases(cheap):
    ax = vv.plot_validation(cheap)
    assert len(ax.get_yticklabels()) == len(cheap)
    shown = vv.readable(cheap)
    assert list(shown.frame.columns) == ["published", "fphlib", "accepted", "rule", "verdict"]
    assert V.NA_QUICK in str(shown) and "FAIL" not in str(shown)  # quick: never FAIL


def test_cli_validate_prints_and_writes_the_table(tmp_path, capsys):
    from fphlib.cli import main

    out_dir = tmp_path / "val"
    code = main(["validate", "--quick", "--only", "reporting_drain/8GiB", "--out",
                 str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "reporting drain: 1 GiB idle" in out and "not comparable" in out
    assert f"1 {V.NA_QUICK} (quick sizes, not comparable)" in out
    df = pd.read_csv(out_dir / "validation.csv")
    assert list(df.columns) == list(V.COLUMNS) and len(df) == 1
    assert (out_dir / "validation.md").read_text().startswith("# fphlib validation")
    assert main(["validate", "--only", "nonsense"]) == 2
    assert "--only:" in capsys.readouterr().err


def test_differences_lists_what_fails_or_has_no_verdict():
    pub = dict(name="admission", result="§8 #1", source="src", published=(5, 7), unit="guests",
               rule="exact", config={})
    recs = [V.make_record(case="a", value=6, comparable=True, **pub),
            V.make_record(case="b", value=14, comparable=True, **pub),
            V.make_record(case="c", value=6, comparable=False, **pub)]
    shown = vv.differences(V.to_frame(recs))
    assert list(shown.frame["verdict"]) == ["FAIL", V.NA_QUICK]
    assert shown.frame["x published"].iloc[0] == f"{14 / math.sqrt(35):.3g}"
    assert vv.differences(V.to_frame(recs[:1])).notes == ["every record passes"]
