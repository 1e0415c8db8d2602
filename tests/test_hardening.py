"""Hardening: every reproducer of "no crash, no hang, no lost file" gives a clear error or a
correct result. Probes that could crash the interpreter run in subprocesses."""

import dataclasses
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fphlib
from fphlib import SimConfig
from fphlib._atomic import mark
from fphlib.api import limits
from fphlib.api.result import META, RESULT_FORMAT
from fphlib.bounds import MAX_DURATION_S
from fphlib.cli import main
from fphlib.units import SIZE_RULE
from fphlib.workloads.trace_file import load_trace, write_trace

ROOT = pathlib.Path(__file__).resolve().parent.parent
V010 = ROOT / "tests" / "data" / "result_v0.1.0"
MEMHOG = dict(workload="memhog", guest_mem="512MiB", host_mem="4GiB", duration_s=5)


def probe(code, timeout=120):
    """Run ``code`` in a fresh interpreter; return (returncode, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=timeout, env=env, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


# --- 1. a config that cannot be changed after validation ----------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c.workload_params.__setitem__("order", -1),
        lambda c: c.workload_params.update(order=20),
        lambda c: c.workload_params.pop("size"),
        lambda c: c.costs.__setitem__("vmexit", 1.0),
        lambda c: c.mechanism_params.__setitem__("capacity", 0),
        lambda c: c.policy_params.clear(),
        lambda c: c.guest_overrides[0].__setitem__("mem", 0),
        lambda c: c.guest_overrides[0]["workload_params"].__setitem__("size", 0),
        lambda c: c.migration.__setitem__("at_s", -1.0),
    ],
)
def test_nested_values_cannot_be_edited(edit):
    cfg = SimConfig(**{**MEMHOG, "workload_params": {"size": "64MiB"}, "guests": 2,
                       "mechanism": "page_reporting",
                       "guest_overrides": [{"mem": "256MiB", "workload": "memhog",
                                            "workload_params": {"size": "8MiB"}}],
                       "migration": {"at_s": 1.0, "bandwidth": "1GiB", "downtime_ms": 300}})
    before = (hash(cfg), cfg.to_json())
    with pytest.raises(TypeError, match="dataclasses.replace"):
        edit(cfg)
    assert (hash(cfg), cfg.to_json()) == before


def test_the_segfault_reproducer_is_refused():
    # regression: cfg.workload_params["order"] = -1; simulate(cfg) exited 139
    code, out, err = probe("""
        import fphlib
        cfg = fphlib.SimConfig(workload="memhog", guest_mem="512MiB", host_mem="4GiB",
                               duration_s=5)
        try:
            cfg.workload_params["order"] = -1
        except TypeError as e:
            print("refused:", e)
        print(fphlib.simulate(cfg).summary["lost_writes"])
    """, timeout=900)
    assert code == 0, err
    assert out.splitlines() == [out.splitlines()[0], "0.0"] and "refused" in out


def test_simulate_refuses_a_config_changed_behind_its_back():
    cfg = SimConfig(**MEMHOG)
    object.__setattr__(cfg, "guests", 0)
    with pytest.raises(ValueError, match="guests: 0 is not allowed"):
        fphlib.simulate(cfg)
    cfg = SimConfig(**MEMHOG)
    object.__setattr__(cfg, "workload_params", {"order": 20})
    with pytest.raises(ValueError, match=r"workload_params\['order'\]: 20"):
        fphlib.simulate(cfg)


def test_hash_is_stable_and_replace_revalidates():
    cfg = SimConfig(**MEMHOG, workload_params={"size": "64MiB"})
    twin = SimConfig.from_dict(json.loads(cfg.to_json()))
    assert twin == cfg and hash(twin) == hash(cfg)
    assert {cfg: 1}[twin] == 1
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert dataclasses.replace(cfg, guests=3).guests == 3
    with pytest.raises(ValueError, match="guests: 0"):
        dataclasses.replace(cfg, guests=0)
    with pytest.raises(ValueError, match=r"workload_params\['order'\]: 20"):
        dataclasses.replace(cfg, workload_params={**cfg.workload_params, "order": 20})
    assert json.loads(cfg.to_json())["workload_params"]["size"] == 64 << 20


def test_numpy_scalars_are_accepted():
    cfg = SimConfig(host_mem=np.int64(4 << 30), guests=np.int64(4), guest_mem=np.int64(64 << 20),
                    vcpus=np.int32(2), duration_s=np.float32(5.0), seed=np.uint64(7),
                    host_thp=np.bool_(False), workload="churn",
                    workload_params={"target": np.float64(0.3), "orders": {np.int64(0): 1.0}})
    plain = SimConfig(host_mem=4 << 30, guests=4, guest_mem=64 << 20, vcpus=2, duration_s=5.0,
                      seed=7, host_thp=False, workload="churn",
                      workload_params={"target": 0.3, "orders": {0: 1.0}})
    assert cfg == plain and type(cfg.guests) is int and cfg.to_json() == plain.to_json()
    assert fphlib.parse_size(np.int64(4096)) == 4096


# --- bounds: every reproducer of "hangs" and "nonsense accepted" ---------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        (dict(workload="churn", workload_params={"ops_per_s": 1e18}), r"\['ops_per_s'\]"),
        (dict(workload="churn", workload_params={"lifetime_s": 1e-300}), r"\['lifetime_s'\]"),
        (dict(balloon_interval_s=1e-300), "balloon_interval_s"),
        (dict(mechanism="balloon", balloon_interval_s=1e-300), "balloon_interval_s"),
        (dict(workload="memhog", workload_params={"rate": 0}), r"\['rate'\]"),
        (dict(workload="memhog", workload_params={"free_rate": 0}), r"\['free_rate'\]"),
        (dict(costs={"guest_overhead": 2**63}), r"costs\['guest_overhead'\]"),
        (dict(costs={"vmexit": 1e6}), r"costs\['vmexit'\]"),
        (dict(workload="churn", workload_params={"orders": {0: 1e308, 9: 1e308}}),
         r"\['orders'\]"),
        (dict(workload="churn", workload_params={"orders": {0: float("nan")}}), r"\['orders'\]"),
        (dict(host_mem=1), "host_mem"),
        (dict(host_mem=2**80), "host_mem"),
        (dict(host_swap=2**80), "host_swap"),
        (dict(guest_mem=2**80), "guest_mem"),
        (dict(guest_mem="8TiB"), "guest_mem"),
        (dict(guests=256, guest_mem="16GiB", host_mem="1TiB"), "guest_mem"),
        (dict(workload="memhog", workload_params={"size": 2**80}), r"\['size'\]"),
        (dict(workload="memhog", workload_params={"boot": 2**80}), r"\['boot'\]"),
        (dict(workload="memhog", workload_params={"repeat": 10**12}), r"\['repeat'\]"),
        (dict(balloon_target=2**80, mechanism="balloon"), "balloon_target"),
        (dict(workload=[]), "workload"),
        (dict(workload={}), "workload"),
        (dict(mechanism=[]), "mechanism"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_field(kw, field):
    with pytest.raises(ValueError, match=field) as info:
        SimConfig(**kw)
    assert "not allowed" in str(info.value) or "limit" in str(info.value)


def test_work_estimate_refuses_runs_over_the_limit():
    heavy = dict(guests=64, guest_mem="4GiB", host_mem="1TiB", workload="churn",
                 workload_params={"ops_per_s": 1e9}, duration_s=3600)
    with pytest.raises(ValueError, match=r"about [\d.e+]+ events, above the limit") as info:
        SimConfig(**heavy)
    assert "duration_s" in str(info.value)
    ok = SimConfig(**{**heavy, "guests": 1, "duration_s": 1.0,
                      "workload_params": {"ops_per_s": 1e8}})
    assert limits.estimate_events(ok) < limits.MAX_EVENTS
    with pytest.raises(ValueError, match="limit"):
        SimConfig(duration_s=MAX_DURATION_S, guests=256, guest_mem="4MiB",
                  sample_s=3600)


def test_a_memhog_of_1e300_bytes_per_second_is_refused_not_run():
    with pytest.raises(ValueError, match=r"workload_params\['rate'\]"):
        SimConfig(workload="memhog", workload_params={"rate": 10**300})


# --- 2. no segfault from Python -----------------------------------------------------------


def test_wrapper_arrays_are_read_only():
    b = fphlib.BuddyAllocator(4096)
    with pytest.raises(ValueError, match="read-only"):
        b.zone.head[10] = 10**9
    x = fphlib.XBitmap()
    x.set_bit(5)
    with pytest.raises(ValueError, match="read-only"):
        x.arrays[2][0] = 10**9
    assert x.test_bit(5)
    assert b.zone.nr_free[10] == 4  # still live views


@pytest.mark.parametrize(
    "code",
    [
        "b = fphlib.BuddyAllocator(4096)\ntry:\n    b.zone.head[10] = 10**9\nexcept ValueError:"
        "\n    pass\nprint(b.alloc(10))",
        "x = fphlib.XBitmap(); x.set_bit(5)\ntry:\n    x.arrays[2][0] = 10**9\n"
        "except ValueError:\n    pass\nprint(x.test_bit(5))",
        f"r = fphlib.SimResult.load({str(V010)!r})\nr.host.iloc[0, 0] = -1\nprint(len(r.host))",
    ],
)
def test_probes_do_not_crash_the_interpreter(code):
    rc, out, err = probe("import fphlib\n" + code)
    assert rc == 0, err
    assert out.strip()


# --- 4. results never destroy user data ---------------------------------------------------


@pytest.fixture(scope="module")
def result():
    return fphlib.SimResult.load(V010)


def test_save_refuses_what_is_not_a_result(result, tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not an fphlib result"):
        result.save(user, overwrite=True)
    assert (user / "thesis.tex").read_text() == "precious"
    f = tmp_path / "notes.txt"
    f.write_text("precious")
    with pytest.raises(FileExistsError, match="not a directory"):
        result.save(f, overwrite=True)
    assert f.read_text() == "precious"
    with pytest.raises(ValueError, match="path: ''"):
        result.save("")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.txt"]


def test_save_overwrites_only_with_overwrite(result, tmp_path):
    path = tmp_path / "res"
    result.save(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        result.save(path)
    result.save(path, overwrite=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    result.save(empty)  # an empty directory is not data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "res"]


def test_save_writes_version_and_digest(result, tmp_path):
    from fphlib._cache import sources_digest

    result.save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / META).read_text())
    assert meta == {"format": RESULT_FORMAT, "fphlib_version": fphlib.__version__,
                    "sources_digest": sources_digest(), "plugins": {}}


def test_save_cleans_stale_temporaries_of_killed_saves(result, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".r.fphlib-tmp-{dead.pid}-abcd"
    stale.mkdir()
    mark(stale, "result")  # what make_dir writes first
    (stale / "host.parquet").write_bytes(b"half")
    live = tmp_path / f".r.fphlib-tmp-{os.getpid()}-beef"  # a save in progress: kept
    live.mkdir()
    mark(live, "result")
    lookalike = tmp_path / f".r.fphlib-tmp-{dead.pid}-cafe"  # not fphlib's: no marker
    lookalike.mkdir()
    (lookalike / "thesis.tex").write_text("precious")
    result.save(tmp_path / "r")
    assert not stale.exists() and live.exists()
    assert (lookalike / "thesis.tex").read_text() == "precious"


def test_killed_save_leaves_the_old_result_or_the_new(result, tmp_path):
    path = tmp_path / "r"
    result.save(path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = tmp_path / f".r.fphlib-old-{dead.pid}-abcd"
    old.mkdir()
    mark(old, "result")
    os.replace(path, old / "x")  # killed between swapping the old out and the new in
    with pytest.raises(FileExistsError, match="overwrite=True"):
        result.save(path)  # the next save puts the old result back, then keeps it
    assert not old.exists()
    assert fphlib.SimResult.load(path).config == result.config


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_save_respects_the_umask(result, tmp_path, umask):
    old = os.umask(umask)
    try:
        result.save(tmp_path / "r")
    finally:
        os.umask(old)
    assert (tmp_path / "r").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "r" / "summary.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_v0_1_0_result_still_loads():
    res = fphlib.SimResult.load(V010)
    assert res.config.mechanism == "balloon" and res.config.guests == 2
    assert np.isnan(res.summary["migration_time_s"])


def _saved(result, tmp_path):
    path = tmp_path / "r"
    result.save(path)
    return path


def _edit_json(path, edit):
    d = json.loads(path.read_text())
    d = edit(d)
    path.write_text(json.dumps(d))


@pytest.mark.parametrize(
    ("damage", "file", "message"),
    [
        (lambda p: _edit_json(p / "config.json", lambda d: {**d, "guests": 3}),
         "guests.parquet", "3 guests"),
        (lambda p: _edit_json(p / "config.json",
                              lambda d: {k: v for k, v in d.items() if k != "mechanism"}),
         "config.json", "mechanism"),
        (lambda p: _edit_json(p / "config.json", lambda d: {**d, "guests": -1}),
         "config.json", "guests"),
        (lambda p: _edit_json(p / "summary.json", lambda d: list(d)), "summary.json", "list"),
        (lambda p: _edit_json(p / "summary.json",
                              lambda d: {k: v for k, v in d.items() if k != "vmexits"}),
         "summary.json", "vmexits"),
        (lambda p: _edit_json(p / "summary.json", lambda d: {**d, "vmexits": "many"}),
         "summary.json", "vmexits"),
        (lambda p: _edit_json(p / "summary.json", lambda d: {**d, "lost_writes": None}),
         "summary.json", "'lost_writes' is null"),
        (lambda p: _edit_json(p / "summary.json", lambda d: {**d, "oom_kills": -1}),
         "summary.json", "'oom_kills' is -1; expected a finite number >= 0"),
        (lambda p: shutil.copy(p / "guests.parquet", p / "host.parquet"), "host.parquet",
         "columns"),
        (lambda p: (p / "config.json").write_text("{broken"), "config.json", "not valid JSON"),
        (lambda p: (p / "events.parquet").write_bytes(b"PAR1garbage"), "events.parquet",
         "parquet"),
        (lambda p: (p / "guests.parquet").unlink(), "", "missing"),
        (lambda p: _edit_json(p / META, lambda d: {**d, "format": 99}), META, "newer fphlib"),
        (lambda p: _edit_json(p / "config.json", lambda d: {**d, "duration_s": 30.0}),
         "host.parquet", "rows"),
    ],
)
def test_load_refuses_damaged_results_naming_the_file(result, tmp_path, damage, file, message):
    path = _saved(result, tmp_path)
    damage(path)
    with pytest.raises(ValueError, match=message) as info:
        fphlib.SimResult.load(path)
    assert str(path / file).rstrip("/") in str(info.value)


def test_load_of_a_file_or_nothing_names_it(tmp_path):
    f = tmp_path / "x"
    f.write_text("")
    for p in (f, tmp_path / "nothing"):
        with pytest.raises(ValueError, match=str(p)):
            fphlib.SimResult.load(p)


# --- 5. traces ----------------------------------------------------------------------------


def _trace(tmp_path, slot=(0, 0, 1, 1), name="t.npz"):
    path = tmp_path / name
    write_trace(path, [0, 1, 2, 3], [0, 1, 0, 1], [0, 0, 0, 0], list(slot))
    return path


def test_trace_slots_are_bounded_by_guest_pages(tmp_path, capsys):
    path = _trace(tmp_path, slot=(0, 0, 2**31 - 1, 2**31 - 1))
    with pytest.raises(ValueError, match=r"slot\[2\] = 2147483647 is outside 0..1048575"):
        load_trace(path, n_pages=1 << 20)
    code, _, err = run(capsys, "trace", "--check", str(path))
    assert code == 1 and "outside 0..1048575" in err and "--guest-mem 4GiB" in err
    cfg = SimConfig(workload="trace", workload_params={"path": str(path)},
                    guest_mem="64MiB", host_mem="1GiB", duration_s=1)
    with pytest.raises(ValueError, match=r"slot\[2\] = 2147483647 is outside 0..16383"):
        fphlib.simulate(cfg)
    b = fphlib.BuddyAllocator(1024)
    with pytest.raises(ValueError, match=r"slot\[0\] = 2147483647 is outside 0..1023"):
        b.replay([0], [0], [2**31 - 1])
    with pytest.raises(ValueError, match="outside 0..7"):
        write_trace(tmp_path / "w.npz", [0, 1], [0, 1], [0, 0], [8, 8], n_pages=8)


def test_special_files_are_refused_before_opening(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="not a regular file"):
        load_trace(fifo)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(ValueError, match="is a directory"):
        load_trace(tmp_path)
    with pytest.raises(ValueError, match="no such file"):
        load_trace(tmp_path / "missing.npz")


def test_replay_refuses_a_free_through_a_slot_whose_block_is_another_slots():
    b = fphlib.BuddyAllocator(1024)
    with pytest.raises(ValueError, match="trace op 3 .*already freed through it"):
        b.replay([0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0])
    assert b.free_pages == 1024
    assert b.replay([0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 1, 1]) == 0  # the correct trace


# --- 6. CLI -------------------------------------------------------------------------------


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].endswith("(see --help)")
    return lines[0]


def test_cli_out_errors_are_one_line_before_any_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "file"
    f.write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("x")
    for out, words in ((str(f / "res"), "not a directory"), (".", "not an fphlib result"),
                       ("", "''"), (str(f), "not a directory"),
                       (str(tmp_path / "d"), "not an fphlib result")):
        (tmp_path / "keep").write_text("x")
        code, _, err = run(capsys, "simulate", "--duration-s", "1", "--out", out)
        line = one_line_error(code, err)
        assert "--out" in line and words in line
    assert f.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == [
        "d", "file", "keep"]


def test_cli_out_on_a_read_only_file_system_is_refused_before_the_run(capsys):
    code, _, err = run(capsys, "simulate", "--out", "/proc/fphlib-res")
    line = one_line_error(code, err)
    assert "--out" in line and "cannot write in /proc" in line


def test_cli_existing_result_needs_overwrite(result, tmp_path, capsys):
    result.save(tmp_path / "r")
    code, _, err = run(capsys, "simulate", "--out", str(tmp_path / "r"))
    assert "--overwrite" in one_line_error(code, err)


def test_cli_io_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "trace", "--out", str(tmp_path), "--ops", "10")
    assert "is a directory" in one_line_error(code, err)
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run(capsys, "demo", "--profile", "smoke", "--out", str(f))
    assert "not a directory" in one_line_error(code, err)
    code, _, err = run(capsys, "trace", "--out", str(f / "t.npz"), "--ops", "10")
    assert str(f) in one_line_error(code, err)
    code, _, err = run(capsys, "trace", "--out", "/proc/fphlib-test.npz", "--ops", "10")
    assert "/proc" in one_line_error(code, err)  # a read-only file system


def test_cli_usage_errors_are_one_line(capsys):
    code, _, err = run(capsys, "simulate", "--guests", "many")
    assert "--guests" in one_line_error(code, err)
    code, _, err = run(capsys, "simulate", "--guests", "0")
    assert "guests: 0" in one_line_error(code, err)
    code, _, err = run(capsys, "simulate", "--workload", "churn", "--param", "ops_per_s=1e18")
    assert "ops_per_s" in one_line_error(code, err)
    code, _, err = run(capsys, "nonsense")
    one_line_error(code, err)


def test_demo_adapts_to_duration(capsys):
    from fphlib.cli import _demo_for_duration
    from fphlib.experiments.scenarios import headline_configs

    for profile in ("smoke", "demo", "full"):
        configs = _demo_for_duration(headline_configs(profile), 1.0, profile)
        for cfg in configs.values():
            assert cfg.duration_s == 1.0
            assert all(o["start_s"] < 1.0 for o in cfg.guest_overrides)
    code, _, err = run(capsys, "demo", "--duration-s", "0.0001", "--out", "unused")
    assert "--duration-s" in one_line_error(code, err)
    code, _, err = run(capsys, "demo", "--duration-s", "-1", "--out", "unused")
    assert "--duration-s" in one_line_error(code, err)


def test_help_states_the_size_unit_rule(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert SIZE_RULE in out
    assert fphlib.parse_size("4GB") == fphlib.parse_size("4gb") == fphlib.parse_size("4GiB")


# --- 3. no hang: Ctrl-C -------------------------------------------------------------------


def test_ctrl_c_stops_simulate_quickly_and_the_cli_exits_130(tmp_path):
    out = tmp_path / "res"
    code = f"""
        import os, signal, sys, threading, time
        import fphlib
        from fphlib.cli import main
        small = fphlib.SimConfig(guest_mem="64MiB", host_mem="1GiB", duration_s=1,
                                 workload="churn")  # the workload timed below
        fphlib.simulate(small)  # compiled or loaded from the cache: not timed
        t = {{}}
        def interrupt():
            time.sleep(2.0)
            t["sent"] = time.perf_counter()
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=interrupt, daemon=True).start()
        rc = main(["simulate", "--guest-mem", "64MiB", "--host-mem", "1GiB", "--workload",
                   "churn", "--duration-s", "3600", "--out", {str(out)!r}])
        print(rc, round(time.perf_counter() - t["sent"], 2))
    """
    rc, stdout, stderr = probe(code, timeout=900)
    assert rc == 0, stderr
    assert len(stdout.split()) == 2, (stdout[-2000:], stderr[-2000:])
    exit_code, delay = stdout.split()
    assert exit_code == "130"
    assert float(delay) < 2.0
    assert stderr.strip().splitlines()[-1].endswith("interrupted")
    assert not out.exists()


def test_cli_config_that_is_a_fifo_is_refused(tmp_path, capsys):
    fifo = tmp_path / "run.toml"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "simulate", "--config", str(fifo))
    assert "not a regular file" in one_line_error(code, err)


def test_absurdly_long_sizes_name_the_field():
    with pytest.raises(ValueError, match="^host_mem: "):
        SimConfig(host_mem="9" * 5000)


def test_chunking_for_ctrl_c_does_not_change_results(monkeypatch):
    import fphlib.api.simulate as sim

    cfg = SimConfig(guests=2, guest_mem="64MiB", host_mem="96MiB", workload="churn",
                    workload_params={"boot": "8MiB"}, mechanism="page_reporting", duration_s=3)
    a = fphlib.simulate(cfg)
    monkeypatch.setattr(sim, "CHUNK_WALL_S", 1e-5)  # many tiny chunks
    b = fphlib.simulate(cfg)
    for name in ("host", "guests", "guest_summary", "events"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert a.summary.drop("wall_s").equals(b.summary.drop("wall_s"))


# --- huge numbers and wrong containers: one-line errors naming the field --------------------


@pytest.mark.parametrize("kw, field", [
    (dict(duration_s=10**400), "duration_s"),
    (dict(guests=10**400), "guests"),
    (dict(seed=10**400), "seed"),
    (dict(guest_mem=10**400), "guest_mem"),
    (dict(host_mem=-10**400), "host_mem"),
    (dict(costs={"vmexit": 10**400}), "costs['vmexit']"),
    (dict(policy_params={"interval_s": 10**400}), "policy_params['interval_s']"),
    (dict(workload_params={"size": 10**400}), "workload_params['size']"),
    (dict(guest_overrides=[{"start_s": 10**400}]), "guest_overrides[0]['start_s']"),
    (dict(guest_overrides=[{"mem": 10**400}]), "guest_overrides[0]['mem']"),
    (dict(migration={"at_s": 10**400, "bandwidth": 1e9, "downtime_ms": 300}),
     "migration['at_s']"),
    (dict(migration={"at_s": 1, "bandwidth": 10**400, "downtime_ms": 300}),
     "migration['bandwidth']"),
    (dict(migration={"at_s": 1, "bandwidth": 5e-324, "downtime_ms": 300}),
     "migration['bandwidth']"),
])
def test_numbers_past_a_float_or_a_bound_are_a_value_error_naming_the_field(kw, field):
    with pytest.raises(ValueError) as e:
        fphlib.SimConfig(**kw)
    assert str(e.value).startswith(field), str(e.value)[:200]
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value", [5, "x", {"mem": "1GiB"}, 2.5])
def test_guest_overrides_of_the_wrong_type_from_json(value):
    with pytest.raises(ValueError, match="^guest_overrides: .* expected a list of per-guest"):
        fphlib.SimConfig.from_dict({"guest_overrides": value})


def test_format_size_of_an_int_past_a_float():
    assert fphlib.units.format_size(10**400) == "~2**1328 B"
    assert fphlib.units.format_size(3 << 30) == "3 GiB"


@pytest.mark.parametrize("call, field", [
    (lambda: fphlib.experiments.sequence_config(interval_s=-1), "interval_s"),
    (lambda: fphlib.experiments.memhog_sequence(interval_s=float("nan")), "interval_s"),
    (lambda: fphlib.experiments.sequence_config(scale=10**400), "scale"),
    (lambda: fphlib.experiments.overcommit_config(guests=0), "guests"),
    (lambda: fphlib.experiments.cooperation_config(fraction=2), "fraction"),
    (lambda: fphlib.experiments.cooperation(fractions=(True,)), "fractions"),
    (lambda: fphlib.experiments.admission(interval_s=-1), "interval_s"),
])
def test_experiment_arguments_are_checked_by_name(call, field):
    """The argument the caller gave is named, not a SimConfig field derived from it
    (memhog_sequence(interval_s=-1) used to report 'duration_s: -3')."""
    with pytest.raises(ValueError) as e:
        call()
    assert str(e.value).startswith(f"{field}: ")
