"""Hardening at the edges: sizes counted before any work, files fphlib did not write left
alone, loads that check what they read and name the file, settings no policy reads refused.
No test here runs a simulation (the CLI's sweeps are stopped before their first run)."""

import io
import json
import math
import os
import pathlib
import re
import shutil
import time
import zipfile

import numpy as np
import pandas as pd
import pytest

import fphlib
from fphlib import SimConfig
from fphlib._atomic import owner, write_file
from fphlib.api import limits
from fphlib.api.result import _FILES_OF, RESULT_FORMAT, SUMMARY_METRICS, is_saved_result
from fphlib.cli import main
from fphlib.sweep.cache import RunCache, run_key
from fphlib.sweep.grid import (
    CHECK_BAR_FROM,
    count_combinations,
    count_runs,
    expand,
    replicate_seeds,
)
from fphlib.workloads.trace_file import generate_trace, load_trace, write_trace


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
    return err


# --- sizes before work ------------------------------------------------------------------------


@pytest.mark.parametrize("seeds", [1e9, 10**30, 2.0, True, 0, -1, "3", None, [2]])
def test_seeds_must_be_a_bounded_integer(seeds):
    for call in (lambda: fphlib.sweep({"guests": [1, 2]}, seeds=seeds, progress=False),
                 lambda: expand({"guests": [1, 2]}, seeds=seeds),
                 lambda: replicate_seeds(0, seeds)):
        with pytest.raises(ValueError, match=r"^seeds: .* is not allowed") as info:
            call()
        assert str(limits.MAX_SEEDS) in str(info.value)
    assert len(replicate_seeds(0, np.int64(3))) == 3


@pytest.mark.parametrize("grid", [
    {"guests": range(10**12)},
    {"guests": list(range(1, 101)), "vcpus": list(range(1, 51)),
     "hint_order": list(range(11)), "sample_s": [0.5, 1.0]},
])
def test_a_huge_sweep_is_counted_and_refused_before_it_is_expanded(grid):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="above the limit of 100,000 runs") as info:
        fphlib.sweep(grid, seeds=1, progress=False)
    assert time.perf_counter() - t0 < 1.0  # counted, not expanded
    n = count_combinations(grid, SimConfig().to_dict())
    assert f"{n:,} runs" in str(info.value)
    assert "max_runs=N" in str(info.value) and "--max-runs" in str(info.value)
    assert "MAX_SWEEP_RUNS" in str(info.value)


def test_max_runs_raises_or_lowers_the_bound():
    grid = {"guests": [1, 2, 3]}
    assert count_runs(grid, seeds=2) == 6
    with pytest.raises(ValueError, match=r"6 runs \(3 combinations x seeds=2\).*limit of 5"):
        expand(grid, seeds=2, max_runs=5)
    runs, _ = expand(grid, seeds=2, max_runs=6)
    assert len(runs) == 6
    for bad in (0, 2.5, True, "6", limits.MAX_SWEEP_RUNS_RAISED + 1, 10**30):
        with pytest.raises(ValueError, match="^max_runs: "):
            expand(grid, max_runs=bad)
    # found by the thorough fuzz profile: max_runs=10**30 let range(10**12) be expanded
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="^max_runs: "):
        expand({"guests": range(10**12)}, max_runs=10**30)
    assert time.perf_counter() - t0 < 1.0


def test_checking_a_large_grid_shows_progress(capsys):
    grid = {"guests": list(range(1, 41)), "vcpus": list(range(1, 26))}  # 1000 combinations
    assert count_runs(grid) == CHECK_BAR_FROM
    runs, _ = expand(grid, progress=True)
    assert len(runs) == CHECK_BAR_FROM
    err = capsys.readouterr().err
    assert "checking the grid" in err and f"{CHECK_BAR_FROM}/{CHECK_BAR_FROM}" in err
    expand({"guests": [1, 2]}, progress=True)  # a small grid: no bar
    assert "checking the grid" not in capsys.readouterr().err


@pytest.mark.parametrize("points", [10**12, 1, 2.0, True])
def test_series_points_is_bounded(points):
    with pytest.raises(ValueError, match="^series_points: "):
        fphlib.sweep({"guests": [1]}, series="host", series_points=points, progress=False)


def _sweep_file(tmp_path, text):
    f = tmp_path / "grid.toml"
    f.write_text(text)
    return f


@pytest.mark.parametrize(("text", "flags", "fragments"), [
    ("seeds = 1e9\n[grid]\nguests = [1, 2]\n", [], ["seeds: 1000000000.0 is not allowed"]),
    ("seeds = 2\n[grid]\nguests = [1, 2, 3]\n", ["--max-runs", "5"],
     ["6 runs", "limit of 5 runs"]),
    ("[grid]\nguests = [1, 2]\n", ["--workers", "100000000"], ["--workers: 100000000"]),
    ("[grid]\nguests = [1, 2]\n", ["--max-runs", "0"], ["--max-runs: 0"]),
])
def test_cli_sweep_counts_are_one_line_errors_before_any_run(tmp_path, capsys, text, flags,
                                                               fragments):
    f = _sweep_file(tmp_path, text)
    out = tmp_path / "out"
    assert main(["sweep", str(f), "--out", str(out), "--no-progress", *flags]) == 2
    one_line_error(capsys, *fragments)
    assert not out.exists()


def test_cli_trace_refuses_too_many_ops_before_allocating(tmp_path, capsys):
    out = tmp_path / "t.npz"
    t0 = time.perf_counter()
    assert main(["trace", "--out", str(out), "--ops", str(10**11)]) == 2
    one_line_error(capsys, "--ops: 100000000000 is not allowed", f"{limits.MAX_TRACE_OPS}")
    assert main(["trace", "--out", str(out), "--ops", "1e11"]) == 2  # not an int
    one_line_error(capsys, "--ops")
    assert time.perf_counter() - t0 < 5 and not out.exists()


@pytest.mark.parametrize(("kw", "field"), [
    (dict(n_ops=limits.MAX_TRACE_OPS + 1), "n_ops"),
    (dict(n_ops=10**30), "n_ops"),
    (dict(n_ops=1.0e3), "n_ops"),
    (dict(n_ops=100, n_pages=2**60), "n_pages"),
    (dict(n_ops=100, ops_per_s=10**400), "ops_per_s"),
    (dict(n_ops=100, occupancy=True), "occupancy"),
])
def test_generate_trace_bounds_its_sizes(kw, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        generate_trace(**kw)


# --- ownership of files -----------------------------------------------------------------------

V010 = pathlib.Path(__file__).resolve().parent / "data" / "result_v0.1.0"


@pytest.fixture(scope="module")
def result():
    return fphlib.SimResult.load(V010)


def test_a_saved_result_is_marked_as_fphlibs(result, tmp_path):
    path = result.save(tmp_path / "r")
    assert owner(path) == "result"
    assert fphlib.SimResult.load(path).config == result.config
    result.save(path, overwrite=True)  # marked: replaced
    assert owner(path) == "result" and not [p for p in tmp_path.iterdir() if p.name != "r"]


def test_overwrite_refuses_a_look_alike_of_a_result(result, tmp_path):
    # a user's directory holding exactly the files of a saved result, but not one
    user = tmp_path / "mine"
    user.mkdir()
    for name in _FILES_OF[RESULT_FORMAT]:
        (user / name).write_text(f"my {name}")
    with pytest.raises(FileExistsError, match="not an fphlib result"):
        result.save(user, overwrite=True)
    assert all((user / n).read_text() == f"my {n}" for n in _FILES_OF[RESULT_FORMAT])
    assert not is_saved_result(user)


def test_overwrite_replaces_a_result_saved_before_the_marker_only_if_it_is_one(result,
                                                                              tmp_path):
    old = tmp_path / "old"
    shutil.copytree(V010, old)  # fphlib 0.1.0: no marker, loads
    assert owner(old) is None and is_saved_result(old)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        result.save(old)
    result.save(old, overwrite=True)
    assert owner(old) == "result"
    extra = tmp_path / "extra"  # the same files and one of the user's: not a result
    shutil.copytree(V010, extra)
    (extra / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not an fphlib result"):
        result.save(extra, overwrite=True)
    assert (extra / "notes.txt").read_text() == "precious"


def test_overwrite_refuses_a_directory_fphlib_made_for_something_else(result, tmp_path):
    other = tmp_path / "cache"
    RunCache(other)
    with pytest.raises(FileExistsError, match="is an fphlib sweep cache, not a result"):
        result.save(other, overwrite=True)
    assert owner(other) == "sweep cache"


def test_write_file_writes_in_a_marked_directory_and_leaves_nothing(tmp_path):
    seen = []

    def write(p):
        seen.append((p.parent.name, owner(p.parent)))
        p.write_text("data")

    write_file(tmp_path / "f.txt", write)
    (name, kind), = seen
    assert name.startswith(".f.txt.fphlib-tmp-") and kind == "file"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_cache_directory_rules(tmp_path):
    for bad in ("", 5, b"x"):
        with pytest.raises(ValueError, match="^cache: "):
            RunCache(bad)
    with pytest.raises(ValueError, match="^cache: "):
        fphlib.sweep({"guests": [1]}, cache="", progress=False)
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    (user / ".0123456789abcdef-x.tmp").write_text("{")
    os.utime(user / ".0123456789abcdef-x.tmp", (0, 0))
    with pytest.raises(ValueError, match="thesis.tex"):
        RunCache(user)
    assert sorted(p.name for p in user.iterdir()) == [".0123456789abcdef-x.tmp", "thesis.tex"]
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        RunCache(f)
    older = tmp_path / "older"  # an older fphlib's cache: entries and a stale temporary only
    older.mkdir()
    (older / ("a" * 64 + ".json")).write_text("{}")
    (older / ".0123456789abcdef-x.tmp").write_text("{")
    os.utime(older / ".0123456789abcdef-x.tmp", (0, 0))
    RunCache(older)
    assert owner(older) == "sweep cache"
    assert (older / ".0123456789abcdef-x.tmp").exists()  # not provably a killed write
    empty = tmp_path / "empty"
    empty.mkdir()
    assert owner(RunCache(empty).path) == "sweep cache"


def _entry(cache, summary=None, series=None):
    cfg = SimConfig().to_json()
    key = run_key(cfg)
    summary = {m: 1.0 for m in SUMMARY_METRICS} if summary is None else summary
    cache.put(key, cfg, {"summary": summary, "series": series})
    return key, cfg


@pytest.mark.parametrize(("edit", "why"), [
    (lambda s: s.update(lost_writes="0"), "lost_writes"),
    (lambda s: s.update(host_rss_peak_bytes=-1.0), "host_rss_peak_bytes"),
    (lambda s: s.update(reports=math.inf), "reports"),
    (lambda s: s.update(events=math.nan), "events"),
    (lambda s: s.pop("vmexits"), "vmexits"),
    (lambda s: s.update(bogus=1.0), "bogus"),
])
def test_cache_entry_with_absurd_values_is_a_named_miss(tmp_path, edit, why):
    cache = RunCache(tmp_path / "c")
    summary = {m: 1.0 for m in SUMMARY_METRICS}
    summary["workload_runtime_s"] = math.nan  # NaN where a run writes it: fine
    key, cfg = _entry(cache, summary)
    assert cache.get(key, cfg) is not None
    edit(summary)
    _entry(cache, summary)
    with pytest.warns(UserWarning, match=f"{key}.json is corrupt.*{why}"):
        assert cache.get(key, cfg) is None


def test_cache_series_of_strings_is_a_named_miss(tmp_path):
    cache = RunCache(tmp_path / "c")
    cfg = SimConfig().to_json()
    key = run_key(cfg)
    payload = {"summary": {m: 1.0 for m in SUMMARY_METRICS}, "series": {"t_s": ["0", "1"]}}
    cache.put(key, cfg, payload, series="host", points=2)
    with pytest.warns(UserWarning, match="series 'host' column 't_s'"):
        assert cache.get(key, cfg, series="host", points=2) is None


def test_a_directory_where_a_cache_entry_should_be_is_named(tmp_path, capsys):
    f = _sweep_file(tmp_path, "[base]\nduration_s = 1\n[grid]\nguests = [1]\n")
    out = tmp_path / "out"
    runs, _ = expand({"guests": [1]}, SimConfig(duration_s=1))
    key = run_key(runs[0].config_json, runs[0].config.plugins())
    (out / "cache" / f"{key}.json").mkdir(parents=True)
    RunCache(out / "cache")
    assert main(["sweep", str(f), "--out", str(out), "--no-progress", "--overwrite"]) == 2
    err = one_line_error(capsys, f"{key}.json is not a cache entry file")
    assert "scheduler" not in err
    assert (out / "cache" / f"{key}.json").is_dir()


def test_cli_sweep_cache_that_is_a_file_is_one_line(tmp_path, capsys):
    f = _sweep_file(tmp_path, "[grid]\nguests = [1]\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "cache").write_text("mine")
    assert main(["sweep", str(f), "--out", str(out), "--no-progress", "--overwrite"]) == 2
    one_line_error(capsys, "cache", "not a directory")
    assert (out / "cache").read_text() == "mine"


@pytest.mark.parametrize("argv", [
    ["demo", "--profile", "smoke", "--no-progress"],
    ["validate", "--quick", "--only", "reporting_drain/8GiB"],
    ["sweep", "GRID", "--no-progress"],
])
def test_cli_out_directories_need_overwrite_when_not_empty(tmp_path, capsys, argv):
    argv = [str(_sweep_file(tmp_path, "[grid]\nguests = [1]\n")) if a == "GRID" else a
            for a in argv]
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    assert main([*argv, "--out", str(out)]) == 2
    one_line_error(capsys, "--out", "not empty", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_cli_trace_out_needs_overwrite(tmp_path, capsys):
    path = tmp_path / "t.npz"
    path.write_bytes(b"mine")
    assert main(["trace", "--out", str(path), "--ops", "100"]) == 2
    one_line_error(capsys, "--out", "exists", "--overwrite")
    assert path.read_bytes() == b"mine"
    assert main(["trace", "--out", str(path), "--ops", "100", "--overwrite"]) == 0
    assert len(load_trace(path).kind) == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]


def test_cli_sweep_csv_is_checked_before_the_sweep_runs(tmp_path, capsys):
    grid = str(_sweep_file(tmp_path, "[grid]\nguests = [1]\n"))
    csv = tmp_path / "mine.csv"
    csv.write_text("precious")
    out = tmp_path / "out"
    assert main(["sweep", grid, "--out", str(out), "--csv", str(csv), "--no-progress"]) == 2
    one_line_error(capsys, "--csv", "exists", "--overwrite")
    assert csv.read_text() == "precious" and not out.exists()  # refused before any run
    missing = tmp_path / "no" / "such" / "dir" / "s.csv"
    assert main(["sweep", grid, "--out", str(out), "--csv", str(missing), "--no-progress"]) == 2
    one_line_error(capsys, "--csv", "does not exist")
    assert not out.exists()


# --- loads check what they read, naming the file ----------------------------------------------


def _trace_file(tmp_path, compress=False, n=1000):
    path = tmp_path / ("c.npz" if compress else "t.npz")
    write_trace(path, *generate_trace(n, n_pages=1 << 16), compress=compress)
    return path


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as zf, zipfile.ZipFile(dst, "w") as out:
        for name in zf.namelist():
            out.writestr(name, edit(name, zf.read(name)))


@pytest.mark.parametrize(("shape", "dtype", "message"), [
    ((10**13,), "<i8", "declares 10,000,000,000,000 ops, above the limit"),
    ((2000,), "<i8", "declares 2,000 entries (16,000 bytes) but holds 8,000 bytes"),
    ((10, 100), "<i8", "has shape (10, 100)"),
    ((1000,), "<f8", "has dtype float64"),
])
def test_a_forged_trace_header_is_refused_before_allocating(tmp_path, shape, dtype, message):
    src = _trace_file(tmp_path)
    forged = tmp_path / "forged.npz"

    def edit(name, data):
        if name != "t_us.npy":
            return data
        head_len = 10 + int.from_bytes(data[8:10], "little")
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            head, {"descr": dtype, "fortran_order": False, "shape": shape})
        return head.getvalue() + data[head_len:]

    _rewrite(src, forged, edit)
    with pytest.raises(ValueError, match=f"^{forged}: array 't_us' {re.escape(message)}"):
        load_trace(forged)


def test_a_bit_flipped_trace_is_a_value_error_naming_the_file(tmp_path):
    for compress in (False, True):
        data = _trace_file(tmp_path, compress).read_bytes()
        refused = 0
        rng = np.random.default_rng(0)
        for j in rng.integers(0, len(data), 150):
            flipped = bytearray(data)
            flipped[j] ^= 1 << int(rng.integers(8))
            path = tmp_path / "flipped.npz"
            path.write_bytes(bytes(flipped))
            try:
                load_trace(path)  # a flip in a field zip ignores (a time stamp) loads
            except ValueError as e:
                assert str(e).startswith(str(path)), e
                refused += 1
        assert refused > 100


@pytest.mark.parametrize(("table", "column", "value", "message"), [
    ("host.parquet", "rss_bytes", "lots", "has type"),
    ("host.parquet", "rss_bytes", -4096, "holds -4096.0 at row 0"),
    ("host.parquet", "free_bytes", math.nan, "holds NaN at row 0"),
    ("guests.parquet", "used_bytes", math.inf, "holds inf at row 0"),
    ("guests.parquet", "t_s", "0", "has type"),
    ("guest_summary.parquet", "host_rss_peak_bytes", -1, "holds -1.0 at row 0"),
    ("events.parquet", "t_s", -1.0, "holds -1.0 at row 0"),
])
def test_load_refuses_bad_values_in_tables_naming_the_file(tmp_path, table, column, value,
                                                          message):
    path = tmp_path / "r"
    shutil.copytree(V010, path)
    df = pd.read_parquet(path / table)
    if not len(df):
        df = pd.DataFrame({c: [0] if c != "kind" else ["x"] for c in df.columns})
    if isinstance(value, str):
        df[column] = df[column].astype(str)
    else:
        df[column] = df[column].astype("float64")
        df.loc[0, column] = value
    df.to_parquet(path / table, index=False)
    with pytest.raises(ValueError, match=f"{table}: column '{column}' {re.escape(message)}"):
        fphlib.SimResult.load(path)


# --- a setting no policy reads ---------------------------------------------------------------


@pytest.mark.parametrize("policy", [p for p in fphlib.host.policy.REGISTRY if p != "static"])
def test_balloon_target_with_a_policy_that_ignores_it_is_refused(policy):
    with pytest.raises(ValueError, match=r"^balloon_target: .*only policy 'static' reads it, "
                                         rf"and policy='{policy}' would ignore it"):
        SimConfig(mechanism="balloon", policy=policy, balloon_target="256MiB")
    with pytest.raises(ValueError, match="^balloon_target: "):  # 2**80 was accepted unbounded
        SimConfig(mechanism="balloon", policy=policy, balloon_target=2**80)
    assert SimConfig(mechanism="balloon", balloon_target="256MiB").balloon_target == 256 << 20


def test_the_headline_scenario_gives_a_target_only_to_the_static_policy():
    from fphlib.experiments.scenarios import headline_config

    assert headline_config("smoke", "balloon").balloon_target is not None
    assert headline_config("smoke", "balloon", policy="mom").balloon_target is None


def test_a_summary_metric_past_a_float_is_refused_naming_the_file(tmp_path):
    # found by tests/test_fuzz_inputs.py: math.isfinite(10**400) raised OverflowError
    path = tmp_path / "r"
    shutil.copytree(V010, path)
    summary = json.loads((path / "summary.json").read_text())
    summary["reports"] = 10**400
    (path / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"summary.json: metric 'reports' is 1000"):
        fphlib.SimResult.load(path)


@pytest.mark.parametrize("key", ["costs", "workload_params", "guest_overrides"])
def test_an_old_result_with_a_wrong_container_is_refused_naming_the_file(tmp_path, key):
    # found by tests/test_fuzz_inputs.py (thorough): the old model's defaults were merged
    # into a config.json value that was not a dict (TypeError)
    path = tmp_path / "r"
    shutil.copytree(V010, path)
    config = json.loads((path / "config.json").read_text())
    config[key] = 10**400
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"config.json: invalid config: {key}: "):
        fphlib.SimResult.load(path)


def test_a_cache_another_sweep_is_creating_is_adopted(tmp_path):
    # a concurrent sweep made the directory and is writing its marker: not a user's file
    d = tmp_path / "c"
    d.mkdir()
    (d / ".fphlib-owner.12345-abcd").write_text("fphlib-owned sweep cache\n")
    RunCache(d)
    assert owner(d) == "sweep cache"


@pytest.mark.parametrize(("value", "message"), [("lots", "has type"),
                                                (-4096, "holds -4096.0 at row 0")])
def test_load_recording_refuses_bad_values_naming_the_file(tmp_path, value, message):
    from fphlib.observe._common import load_recording

    path = tmp_path / "drain"
    shutil.copytree(pathlib.Path(__file__).resolve().parent.parent / "data" / "real" /
                    "drain_1GiB", path)
    df = pd.read_parquet(path / "frame.parquet")
    if isinstance(value, str):
        df["free_bytes"] = df["free_bytes"].astype(str)
    else:
        df.loc[0, "free_bytes"] = value
    df.to_parquet(path / "frame.parquet", index=False)
    with pytest.raises(ValueError, match=f"frame.parquet: column 'free_bytes' {message}"):
        load_recording(path)


def test_a_file_merely_named_like_the_marker_is_the_users(tmp_path, result):
    # found by the thorough fuzz profile: a cache adopted the directory and replaced it
    d = tmp_path / "mine"
    d.mkdir()
    (d / ".fphlib-owner").write_text("my notes")
    with pytest.raises(ValueError, match=r"\.fphlib-owner"):
        RunCache(d)
    with pytest.raises(FileExistsError, match="not an fphlib result"):
        result.save(d, overwrite=True)
    assert [p.name for p in d.iterdir()] == [".fphlib-owner"]
    assert (d / ".fphlib-owner").read_text() == "my notes"
