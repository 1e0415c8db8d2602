"""fphlib.sweep: grid expansion and validation, seeds, executors, cache, resume, CLI."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fphlib
from fphlib.api.result import SUMMARY_METRICS
from fphlib.cli import main
from fphlib.sweep import block_size_mechanisms, expand, replicate_seeds
from fphlib.sweep import run as sweep_run

# a small boot footprint leaves free memory to report within 3 s (the default boot is 256 MiB)
BASE = fphlib.SimConfig(host_mem="1GiB", guest_mem="256MiB", workload="churn",
                        workload_params={"target": 0.4, "boot": "16MiB"},
                        mechanism="page_reporting", duration_s=3.0, sample_s=0.25, seed=7)


def same(a, b):
    """Equal frames apart from the wall-clock column, NaN == NaN."""
    pd.testing.assert_frame_equal(a.drop(columns="wall_s"), b.drop(columns="wall_s"),
                                  check_exact=True)


# --- grid expansion and validation (no simulation) ---------------------------------------

def test_product_grid_in_key_order_with_replicates():
    runs, keys = expand({"hint_order": [8, 9], "mechanism": ["none", "page_reporting"]},
                        BASE, seeds=2)
    assert keys == ["hint_order", "mechanism"]
    got = [(r.params["hint_order"], r.params["mechanism"], r.replicate) for r in runs]
    assert got == [(8, "none", 0), (8, "none", 1), (8, "page_reporting", 0),
                   (8, "page_reporting", 1), (9, "none", 0), (9, "none", 1),
                   (9, "page_reporting", 0), (9, "page_reporting", 1)]
    assert all(r.config.hint_order == r.params["hint_order"] for r in runs)


def test_zipped_grid_is_not_a_product():
    runs, keys = expand([{"mechanism": "none"}, {"mechanism": "page_reporting", "hint_order": 7}],
                        BASE)
    assert keys == ["mechanism", "hint_order"]
    assert [(r.config.mechanism, r.config.hint_order) for r in runs] == [
        ("none", 9), ("page_reporting", 7)]
    # a key a combination leaves out shows the base's value, not a hole
    assert runs[0].params["hint_order"] == 9


def test_dotted_keys_reach_into_any_dict_field():
    runs, keys = expand({"workload_params.target": [0.2, 0.5], "costs.vmexit": [2e-6],
                         "host_mem": ["2GiB"]}, BASE)
    assert [r.config.workload_params["target"] for r in runs] == [0.2, 0.5]
    assert all(r.config.costs["vmexit"] == 2e-6 for r in runs)
    # the other workload parameters of the base are kept
    assert all(r.config.workload == "churn" for r in runs)
    # columns hold what the SimConfig holds: sizes in bytes
    assert runs[0].params["host_mem"] == 2 << 30
    assert BASE.workload_params["target"] == 0.4  # the base is untouched


@pytest.mark.parametrize("grid, match", [
    ({"nosuch": [1]}, "grid key 'nosuch': unknown SimConfig field 'nosuch'"),
    ({"hint_order": 9}, r"grid\['hint_order'\]: 9 is not a list"),
    ({"hint_order": "9"}, r"grid\['hint_order'\]: '9' is not a list"),
    ({"hint_order": []}, r"grid\['hint_order'\]: empty list"),
    ({"host_mem.size": [1]}, "grid key 'host_mem.size': 'host_mem' is not a dict field"),
    ({"workload_params.": [1]}, "grid key 'workload_params.': empty part"),
    ({"seed": [1, 2]}, "grid key 'seed'"),
    ({}, "grid: empty dict"),
    ([], "grid: empty list"),
    ([{"hint_order": 8}, "x"], r"grid\[1\]: 'x' is not allowed"),
    ("hint_order", "grid: str is not allowed"),
])
def test_malformed_grids_are_refused_naming_the_key(grid, match):
    with pytest.raises(ValueError, match=match):
        expand(grid, BASE)


def test_every_bad_combination_is_listed_before_any_run(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a run started although the grid was invalid")

    monkeypatch.setattr(sweep_run, "run_task", boom)
    grid = {"hint_order": [9, 11], "workload_params.target": [0.5, 2.0]}
    with pytest.raises(ValueError) as e:
        fphlib.sweep(grid, base=BASE, progress=False)
    msg = str(e.value)
    assert "3 of 4 combinations" in msg
    assert "hint_order=11" in msg and "workload_params.target=2.0" in msg
    assert "combination 0 " not in msg  # the valid one is not blamed


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="seeds: 0"):
        expand({"hint_order": [9]}, BASE, seeds=0)
    with pytest.raises(ValueError, match="base: expected a SimConfig"):
        expand({"hint_order": [9]}, {"hint_order": 9})
    with pytest.raises(ValueError, match="series: 'rss'"):
        fphlib.sweep({"hint_order": [9]}, base=BASE, series="rss")
    with pytest.raises(ValueError, match="executor: int"):
        fphlib.sweep({"hint_order": [9]}, base=BASE, executor=3, progress=False)


def test_replicate_seeds_come_from_seed_sequence_spawn():
    children = np.random.SeedSequence(7).spawn(3)
    want = [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]
    assert replicate_seeds(7, 3) == want
    assert replicate_seeds(7, 2) == want[:2]  # raising seeds keeps the earlier replicates
    assert len(set(want)) == 3
    # the same replicate seeds whatever the order of the grid
    a, _ = expand({"hint_order": [8, 9]}, BASE, seeds=2)
    b, _ = expand({"hint_order": [9, 8]}, BASE, seeds=2)

    def key(runs):
        return sorted((r.config.hint_order, r.replicate, r.config.seed) for r in runs)

    assert key(a) == key(b)


def test_sweep_is_a_callable_package():
    import fphlib.sweep as pkg

    assert callable(fphlib.sweep) and callable(pkg)
    assert pkg.expand is expand
    assert "page_reporting" in block_size_mechanisms()
    assert "none" not in block_size_mechanisms() and "balloon" not in block_size_mechanisms()


# --- running ------------------------------------------------------------------------------

GRID = {"hint_order": [8, 10], "mechanism": ["none", "page_reporting"]}


@pytest.fixture(scope="module")
def serial():
    """The reference: GRID × 2 seeds in process."""
    return fphlib.sweep(GRID, base=BASE, seeds=2, progress=False)


def test_tidy_frame_one_row_per_run(serial):
    df = serial
    assert len(df) == 8 and df.attrs["computed"] == 8 and df.attrs["failed"] == 0
    expected = ["hint_order", "mechanism", "seed", "replicate",
                *[m for m in SUMMARY_METRICS if m != "wall_s"],
                "fphlib_version", "config_hash", "wall_s", "error"]
    assert list(df.columns) == expected
    assert df["error"].isna().all() and (df["wall_s"] > 0).all()
    assert (df["fphlib_version"] == fphlib.__version__).all()
    assert df["config_hash"].nunique() == 8
    assert set(df["seed"]) == set(replicate_seeds(BASE.seed, 2))
    # the sweep runs what simulate runs
    row = df.iloc[7]
    cfg = fphlib.SimConfig.from_dict({**BASE.to_dict(), "hint_order": int(row["hint_order"]),
                                      "mechanism": row["mechanism"], "seed": int(row["seed"])})
    res = fphlib.simulate(cfg)
    for m in ("reported_bytes", "reports", "vmexits", "host_rss_final_bytes", "events"):
        assert row[m] == res.summary[m], m
    assert row["reported_bytes"] > 0  # the sweep measured something that can differ


def test_order_of_grid_does_not_change_results(serial):
    rev = fphlib.sweep({"hint_order": [10, 8], "mechanism": ["page_reporting", "none"]},
                       base=BASE, seeds=2, progress=False)
    by = ["hint_order", "mechanism", "replicate"]
    same(serial.sort_values(by).reset_index(drop=True), rev.sort_values(by).reset_index(drop=True))


def test_process_pool_gives_identical_frame(serial):
    with ProcessPoolExecutor(2) as ex:
        df = fphlib.sweep(GRID, base=BASE, seeds=2, executor=ex, progress=False)
    same(serial, df)


def test_a_combination_listed_twice_runs_once():
    df = fphlib.sweep([{"hint_order": 8}, {"hint_order": 9}, {"hint_order": 8}], base=BASE,
                      progress=False)
    assert df.attrs["computed"] == 2 and len(df) == 3
    same(df.iloc[[0]].reset_index(drop=True), df.iloc[[2]].reset_index(drop=True))


def test_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    grid = [{"workload": "churn"},
            {"workload": "trace", "workload_params": {"path": str(tmp_path / "missing.npz")}}]
    df = fphlib.sweep(grid, base=BASE, cache=tmp_path / "c", progress=False)
    assert df["error"].iloc[0] is None and df["reports"].iloc[0] >= 0
    assert "missing.npz" in df["error"].iloc[1] and np.isnan(df["reports"].iloc[1])
    assert df.attrs["failed"] == 1
    assert len(list((tmp_path / "c").glob("*.json"))) == 1  # failures are not cached


def test_cache_resumes_and_reports_corrupt_files(tmp_path, serial):
    cache = tmp_path / "cache"
    first = fphlib.sweep(GRID, base=BASE, seeds=2, cache=cache, progress=False)
    same(serial, first)
    files = sorted(cache.glob("*.json"))
    assert len(files) == 8 and not list(cache.glob(".*.tmp"))
    again = fphlib.sweep(GRID, base=BASE, seeds=2, cache=cache, progress=False)
    assert again.attrs["computed"] == 0 and again.attrs["cached"] == 8
    pd.testing.assert_frame_equal(first, again, check_exact=True)  # wall_s too: it is stored
    files[3].write_text(files[3].read_text()[:100])  # a torn file
    with pytest.warns(UserWarning, match=files[3].name):
        third = fphlib.sweep(GRID, base=BASE, seeds=2, cache=cache, progress=False)
    assert third.attrs["computed"] == 1 and third.attrs["cached"] == 7
    same(serial, third)
    json.loads(files[3].read_text())  # rewritten whole
    # a temporary file left by a kill mid-write (in the cache's own marked temporary
    # directory) is never read, and dropped once stale; a file merely named like an older
    # fphlib's temporary, in the cache directory itself, is left alone
    torn = cache / ".fphlib-tmp" / "0123456789abcdef-x.tmp"
    torn.write_text("{")
    lookalike = cache / ".0123456789abcdef-x.tmp"
    lookalike.write_text("{")
    assert fphlib.sweep(GRID, base=BASE, seeds=2, cache=cache,
                        progress=False).attrs["computed"] == 0
    for f in (torn, lookalike):
        os.utime(f, (time.time() - 7200, time.time() - 7200))
    fphlib.sweep(GRID, base=BASE, seeds=2, cache=cache, progress=False)
    assert not torn.exists() and lookalike.exists()
    # another run's content under this name is not used either
    files[0].write_text(files[1].read_text())
    with pytest.warns(UserWarning, match="another run"):
        assert fphlib.sweep(GRID, base=BASE, seeds=2, cache=cache,
                            progress=False).attrs["computed"] == 1
    # raising seeds reuses the replicates already computed
    more = fphlib.sweep(GRID, base=BASE, seeds=3, cache=cache, progress=False)
    assert more.attrs["computed"] == 4 and more.attrs["cached"] == 8


def test_series_downsampled_and_cached(tmp_path):
    cache = tmp_path / "c"
    df, s = fphlib.sweep({"hint_order": [8, 9]}, base=BASE, cache=cache, series="guests",
                         series_points=5, progress=False)
    assert list(s.columns[:4]) == ["run", "hint_order", "seed", "replicate"]
    assert s.groupby("run")["t_s"].nunique().tolist() == [5, 5]
    assert s["t_s"].max() == BASE.duration_s  # the last sample is kept
    assert {"rss_bytes", "reported_bytes", "guest"} <= set(s.columns)
    df2, s2 = fphlib.sweep({"hint_order": [8, 9]}, base=BASE, cache=cache, series="guests",
                           series_points=5, progress=False)
    assert df2.attrs["computed"] == 0
    pd.testing.assert_frame_equal(s, s2, check_exact=True)
    # asking for another series recomputes (the cached entries do not hold it)
    _, h = fphlib.sweep({"hint_order": [8, 9]}, base=BASE, cache=cache, series="host",
                        series_points=5, progress=False)
    assert list(h.columns) == ["run", "hint_order", "seed", "replicate", "t_s", "rss_bytes",
                               "swap_bytes", "free_bytes"]


# --- a sweep killed midway resumes ---------------------------------------------------------

KILL_SCRIPT = textwrap.dedent("""
    import sys
    import fphlib
    from fphlib.sweep import run

    calls = []
    task = run.run_task
    def counted(*a, **k):
        print("run", flush=True)
        return task(*a, **k)
    run.run_task = counted
    base = fphlib.SimConfig.from_json(sys.argv[2])
    fphlib.sweep({"hint_order": list(range(11))}, base=base, seeds=2, cache=sys.argv[1],
                 progress=False)
    print("done", flush=True)
""")


def test_killed_sweep_resumes_computing_only_the_missing_runs(tmp_path):
    cache = tmp_path / "cache"
    slow = fphlib.SimConfig.from_dict({**BASE.to_dict(), "duration_s": 30.0})  # ~0.1 s a run
    base = slow.to_json()
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(cache), base],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(list(cache.glob("*.json"))) < 3:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()  # reaps it and closes the pipe
    assert "done" not in out and "run" in out
    kept = len(list(cache.glob("*.json")))
    assert 3 <= kept < 22
    df = fphlib.sweep({"hint_order": list(range(11))}, base=slow, seeds=2, cache=cache,
                      progress=False)
    assert df.attrs["cached"] == kept and df.attrs["computed"] == 22 - kept
    assert df["error"].isna().all() and len(df) == 22
    assert len(list(cache.glob("*.json"))) == 22
    # what the killed sweep left is exactly what an uninterrupted sweep computes
    fresh = fphlib.sweep({"hint_order": list(range(11))}, base=slow, seeds=2, progress=False)
    same(fresh, df)


# --- command line ---------------------------------------------------------------------------

SWEEP_TOML = """
seeds = 2
[base]
host_mem = "1GiB"
guest_mem = "256MiB"
workload = "churn"
mechanism = "page_reporting"
duration_s = 3.0
sample_s = 0.25
seed = 7
[base.workload_params]
target = 0.4
boot = "16MiB"
[grid]
hint_order = [8, 10]
workload_params.target = [0.4]
"""


def test_cli_sweep_end_to_end(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(SWEEP_TOML)
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--out", str(out), "--no-progress"]) == 0
    assert "4 runs (4 computed, 0 cached, 0 failed)" in capsys.readouterr().out
    df = pd.read_parquet(out / "results.parquet")
    assert list(df.columns[:4]) == ["hint_order", "workload_params.target", "seed", "replicate"]
    py = fphlib.sweep({"hint_order": [8, 10], "workload_params.target": [0.4]}, base=BASE,
                      seeds=2, progress=False)
    same(py, df)
    assert (out / "sweep.toml").read_text() == SWEEP_TOML
    ran = json.loads((out / "sweep.json").read_text())
    assert ran["seeds"] == 2 and fphlib.SimConfig.from_dict(ran["base"]) == BASE
    assert len(list((out / "cache").glob("*.json"))) == 4
    # a rerun into the same directory asks for --overwrite, then resumes from the cache
    assert main(["sweep", str(grid), "--out", str(out), "--no-progress", "--workers", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    csv = tmp_path / "summary.csv"
    assert main(["sweep", str(grid), "--out", str(out), "--no-progress", "--workers", "2",
                 "--overwrite", "--csv", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert "4 runs (0 computed, 4 cached" in printed
    # after the parquet path: one column per grid point, mean ± interval over the 2 seeds
    from fphlib.viz.plots import metric_info
    from fphlib.viz.tables import format_value

    summary = printed.split("results.parquet", 1)[1]
    assert "hint order 8, workload params.target 0.4" in summary
    assert metric_info("host_rss_peak_bytes").label in summary and "e+" not in summary
    peak8 = df.loc[df.hint_order == 8, "host_rss_peak_bytes"].mean()
    assert format_value(peak8, "bytes") in summary
    written = pd.read_csv(csv)
    assert written["hint_order"].tolist() == [8, 10] and written["seeds"].tolist() == [2, 2]
    assert written.loc[0, "host_rss_peak_bytes"] == pytest.approx(peak8)
    assert "host_rss_peak_bytes_ci95" in written.columns


def test_cli_zipped_grid_tables(tmp_path, capsys):
    grid = tmp_path / "zip.toml"
    base = SWEEP_TOML.split("[grid]")[0].replace("seeds = 2", "seeds = 1")
    grid.write_text(base + '[[grid]]\nmechanism = "none"\n'
                           '[[grid]]\nmechanism = "page_reporting"\nhint_order = 10\n')
    assert main(["sweep", str(grid), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    df = pd.read_parquet(tmp_path / "o" / "results.parquet")
    assert df[["mechanism", "hint_order"]].values.tolist() == [["none", 9],
                                                               ["page_reporting", 10]]


@pytest.mark.parametrize("text, match", [
    ("[grid]\nhint_order = 9\n", r"grid\['hint_order'\]: 9 is not a list"),
    ("[grid]\nnosuch = [1]\n", "unknown SimConfig field 'nosuch'"),
    ("[base]\nhint_order = 12\n[grid]\nguests = [1]\n", "hint_order: 12"),
    ("[grid]\nhint_order = [11]\n", "combination 0"),
    ("[base]\n[grids]\nhint_order = [1]\n", "unknown key 'grids'"),
    ("[base]\nguests = 1\n", "no \\[grid\\] table"),
    ("[grid\n", "not valid TOML"),
])
def test_cli_sweep_bad_input_exits_2(tmp_path, capsys, text, match):
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    assert main(["sweep", str(grid), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert err.count("\n") == 1 and err.rstrip().endswith("(see --help)")  # one line
    assert not (tmp_path / "out").exists()  # nothing written for a bad grid


# --- the block-size study (notebook 05) -----------------------------------------------------

def test_block_size_study_plots_every_metric_with_bands(serial):
    from matplotlib.figure import Figure

    from fphlib.viz.block_size import METRICS, block_size_sweep, plot_block_size, summary_by_order

    with pytest.raises(ValueError, match="mechanisms: empty"):
        block_size_sweep(BASE, mechanisms=[], progress=False)
    fig = plot_block_size(serial, fig=Figure())
    assert [ax.get_title() for ax in fig.axes] == [v[0] for v in METRICS.values()]
    # two seeds per point: each panel draws a confidence band (a filled polygon)
    assert all(ax.collections for ax in fig.axes)
    table = summary_by_order(serial)
    # readable: one row per (mechanism, order), mean ± 95 % interval over the two seeds
    assert {i.split(", ")[1] for i in table.frame.index} == {"hint order 8", "hint order 10"}
    assert len(table.frame) == serial.groupby(["mechanism", "hint_order"]).ngroups
    assert any(" ± " in c for c in table.frame.iloc[:, 1])


def test_seed_summary_mean_and_t_interval_by_hand():
    from fphlib.sweep.summary import ci95, seed_summary, t975

    assert t975(2) == 4.303 and t975(1000) == 1.96
    mean, half = ci95([1.0, 2.0, 3.0, float("nan")])  # NaN left out: n = 3, s = 1
    assert mean == 2.0 and half == pytest.approx(4.303 / 3 ** 0.5)
    assert np.isnan(ci95([5.0])[1])
    df = pd.DataFrame({"hint_order": [8, 8, 8, 10], "seed": [1, 2, 3, 1],
                       "vmexits": [1.0, 2.0, 3.0, 7.0], "error": [None, None, "boom", None]})
    out = seed_summary(df, metrics=["vmexits"])
    assert out["hint_order"].tolist() == [8, 10] and out["seeds"].tolist() == [2, 1]
    assert out["vmexits"].tolist() == [1.5, 7.0]  # the failed run is left out
    assert out.loc[0, "vmexits_ci95"] == pytest.approx(12.706 * (0.5 ** 0.5) / 2 ** 0.5)
    assert np.isnan(out.loc[1, "vmexits_ci95"])


def test_cache_key_follows_config_version_and_model_sources(monkeypatch):
    from fphlib.sweep import cache as sweep_cache

    cfg = BASE.to_json()
    key = sweep_cache.run_key(cfg)
    assert key == sweep_cache.run_key(cfg)
    assert key != sweep_cache.run_key(fphlib.SimConfig.from_dict(
        {**BASE.to_dict(), "hint_order": 8}).to_json())
    monkeypatch.setattr(sweep_cache, "version", lambda: "9.9.9")
    assert sweep_cache.run_key(cfg) != key
    monkeypatch.undo()
    monkeypatch.setattr(sweep_cache, "model_digest", lambda: "edited")
    assert sweep_cache.run_key(cfg) != key


def test_notebook_cache_is_anchored_to_the_repository(monkeypatch, tmp_path):
    from fphlib.viz.block_size import default_cache

    repo = Path(fphlib.__file__).resolve().parent.parent
    monkeypatch.delenv("FPHLIB_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)  # the server's working directory does not matter
    assert default_cache() == repo / "out" / "sweep_cache"
    monkeypatch.setenv("FPHLIB_CACHE", str(tmp_path / "c"))
    assert default_cache() == tmp_path / "c"
