"""Fuzz of the inputs at the edges: every SimConfig field and ``from_dict``/JSON given huge
ints, floats, NaN and infinities, bools, strings and wrong containers; sweeps with wild
grids, seeds and bounds; forged result directories, trace files and sweep cache entries;
look-alike directories for ``save`` and ``sweep(cache=...)``; two writers of the same result
and of the same cache entry at once.

What must hold: every refusal is a ``ValueError`` (``FileExistsError`` for a save that would
replace what is not fphlib's) naming a field or the file, no other exception escapes, no
call hangs, and nothing of the user's is changed or deleted. Nothing here runs a simulation.

Profiles: the default one (``make test``) takes well under a minute; ``FPHLIB_FUZZ=thorough``
draws about 100 times more (a few minutes), to be run by hand. The figures (examples tried,
refusals, crashes, hangs, user files lost) are printed (``pytest -s``) and written to
``$FPHLIB_FUZZ_INPUTS_REPORT`` if set::

    FPHLIB_FUZZ=thorough FPHLIB_FUZZ_INPUTS_REPORT=fuzz_inputs.json \\
        pytest -s -p no:cacheprovider tests/test_fuzz_inputs.py
"""

import dataclasses
import io
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fphlib
import fphlib.cli
from fphlib import SimConfig
from fphlib._atomic import owner
from fphlib.api.result import _FILES_OF, NULLABLE_METRICS, RESULT_FORMAT, SUMMARY_METRICS
from fphlib.sweep.cache import RunCache, run_key
from fphlib.sweep.grid import count_runs, expand
from fphlib.workloads.trace_file import generate_trace, load_trace, write_trace

ROOT = pathlib.Path(__file__).resolve().parent.parent
V010 = ROOT / "tests" / "data" / "result_v0.1.0"
PROFILE = os.environ.get("FPHLIB_FUZZ", "default")
BUDGETS = {
    # examples per class; rounds of the concurrent writers; seconds a call may take
    "default": dict(fields=300, dicts=100, sweeps=60, results=40, traces=60, caches=80,
                    lookalikes=30, cli=60, rounds=3, hang_s=10.0),
    "thorough": dict(fields=30_000, dicts=10_000, sweeps=5_000, results=3_000, traces=6_000,
                     caches=6_000, lookalikes=3_000, cli=3_000, rounds=60, hang_s=30.0),
}[PROFILE]
FIGURES = {"examples": 0, "refused": 0, "accepted": 0, "crashes": 0, "hangs": 0,
           "user files lost": 0}
FIELDS = [f.name for f in dataclasses.fields(SimConfig)]


def fuzz(kind):
    """Hypothesis settings of one class: the profile's budget; the default profile draws the
    same examples every time (``make test`` does not flake), the thorough one new ones."""
    return settings(max_examples=BUDGETS[kind], deadline=None, database=None,
                    derandomize=PROFILE == "default",
                    suppress_health_check=list(HealthCheck))

# the classes of wrong input seen in the wild: huge ints, floats past every bound, NaN and
# infinities, bools, strings, containers of the wrong kind, None, numpy scalars
WILD = [10**400, -10**400, 2**63, 2**64, 10**30, 1e308, -1e308, 5e-324, math.nan, math.inf,
        -math.inf, 0, -1, 1, 2, 0.5, 3.0, True, False, "", "x", "1e9", "4GiB", "-4GiB",
        "nan", "inf", "static", "balloon", [], [1], [None], {}, {"a": 1}, {"size": 10**400},
        (1,), None, b"x", np.int64(3), np.int64(-1), np.float64("nan"), np.bool_(True),
        object()]
JSONABLE = [v for v in WILD if isinstance(v, int | float | str | list | dict | None)
            and not isinstance(v, np.generic | tuple)]


def wild(pool=WILD):
    return st.sampled_from(pool)


def _names_a_field(message):
    head = message.split(":", 1)[0].split("[", 1)[0].strip()
    return head in FIELDS


def _call(fn, allowed=(ValueError,), quiet=True):
    """Run ``fn``; return ("ok", value) or ("refused", exception); count a crash (another
    exception type) or a hang (over the profile's time) and fail on it. ``quiet``: ignore
    warnings (a guest larger than the host); else they reach the caller."""
    FIGURES["examples"] += 1
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            out = ("ok", fn())
    except allowed as e:
        out = ("refused", e)
    except Exception as e:  # noqa: BLE001 - the point: no other type may escape
        FIGURES["crashes"] += 1
        raise AssertionError(f"{type(e).__name__} escaped: {e}") from e
    finally:
        if time.perf_counter() - t0 > BUDGETS["hang_s"]:
            FIGURES["hangs"] += 1
    assert time.perf_counter() - t0 <= BUDGETS["hang_s"], "a call hung"
    FIGURES["refused" if out[0] == "refused" else "accepted"] += 1
    return out


def snapshot(directory):
    """{relative path: bytes or None (a directory)} of everything under ``directory``."""
    out = {}
    for p in sorted(pathlib.Path(directory).rglob("*")):
        out[str(p.relative_to(directory))] = None if p.is_dir() else p.read_bytes()
    return out


def _intact(before, directory):
    after = snapshot(directory)
    lost = [k for k, v in before.items() if after.get(k, "gone") != v]
    FIGURES["user files lost"] += len(lost)
    assert not lost, f"changed or deleted: {lost}"


MEMORY_CAP = 4 << 30  # bytes of address space the draws may add: an input that would
# allocate more (a list of 10**12 runs) is a MemoryError, a crash here, not an OOM kill


@pytest.fixture(scope="module", autouse=True)
def memory_cap():
    """Cap this process's address space to what it uses now plus :data:`MEMORY_CAP` while
    the module runs (the soft limit, put back afterwards)."""
    import resource

    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm + MEMORY_CAP
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    line = ", ".join(f"{k} {v}" for k, v in FIGURES.items())
    print(f"\nfuzz inputs ({PROFILE} profile): {line}")
    if os.environ.get("FPHLIB_FUZZ_INPUTS_REPORT"):
        pathlib.Path(os.environ["FPHLIB_FUZZ_INPUTS_REPORT"]).write_text(
            json.dumps({"profile": PROFILE, **FIGURES}, indent=1))


# --- configs ----------------------------------------------------------------------------------


@fuzz("fields")
@given(values=st.dictionaries(st.sampled_from(FIELDS), wild(), min_size=1, max_size=3))
def test_every_field_refuses_wild_values_naming_a_field(values):
    kind, out = _call(lambda: SimConfig(**values))
    if kind == "refused":
        assert _names_a_field(str(out)), f"names no field: {out} ({values!r})"
    else:
        assert SimConfig.from_json(out.to_json()) == out


@fuzz("dicts")
@given(values=st.dictionaries(st.sampled_from(FIELDS), wild(JSONABLE), min_size=1, max_size=3),
       top=st.sampled_from(["dict", "json", "list", "string", "number"]))
def test_from_dict_and_json_refuse_wild_values_naming_a_field(values, top):
    if top == "dict":
        kind, out = _call(lambda: SimConfig.from_dict(values))
    else:
        doc = {"json": values, "list": [values], "string": "cfg", "number": 5}[top]
        text = json.dumps(doc, default=str)
        kind, out = _call(lambda: SimConfig.from_json(text))
    if kind == "refused" and top in ("dict", "json"):
        assert _names_a_field(str(out)), f"names no field: {out} ({values!r})"
    if kind == "refused" and top not in ("dict", "json"):
        assert str(out)  # a message, whatever the top level was


@fuzz("sweeps")
@given(grid=st.one_of(
           st.dictionaries(st.sampled_from([*FIELDS, "workload_params.size", "costs.vmexit",
                                            "nosuch", ""]),
                           st.one_of(st.lists(wild(), max_size=3), wild(),
                                     st.just(range(10**12))), max_size=3),
           st.lists(st.dictionaries(st.sampled_from(FIELDS), wild(), max_size=2), max_size=3),
           wild()),
       seeds=wild(), max_runs=st.one_of(st.none(), wild()))
def test_sweeps_are_counted_and_checked_before_anything_runs(grid, seeds, max_runs):
    kind, out = _call(lambda: (count_runs(grid, seeds=seeds, max_runs=max_runs),
                               expand(grid, seeds=seeds, max_runs=max_runs)))
    if kind == "refused":
        msg = str(out)
        assert msg.startswith(("grid", "seeds:", "max_runs:", "base:")), msg
    else:
        n, (runs, _) = out
        assert n == len(runs)


# --- the command line: every bad input one line, exit code 2, before any run ------------------

FLAGS = ["--" + f.replace("_", "-") for f in FIELDS if f not in ("debug",)]
CLI_WORDS = ["1e9", "-1", "0", "nan", "inf", "1" * 400, "true", "[]", "{}", '{"a": 1}', "",
             "x", "4GiB", "-4GiB", "static", "none", "null"]


@fuzz("cli")
@given(command=st.sampled_from(["simulate", "sweep"]),
       flags=st.lists(st.tuples(st.sampled_from(FLAGS), st.sampled_from(CLI_WORDS)),
                      max_size=3),
       base=st.dictionaries(st.sampled_from(FIELDS), wild(JSONABLE), max_size=2),
       grid=st.one_of(st.dictionaries(st.sampled_from(FIELDS), st.lists(wild(JSONABLE),
                                                                        max_size=2),
                                      max_size=2), wild(JSONABLE)),
       seeds=wild(JSONABLE))
def test_cli_bad_inputs_are_one_line_errors(capsys, command, flags, base, grid, seeds):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        out = tmp / "out"  # the user's: every command stops at it, before any run
        out.mkdir()
        (out / "notes.txt").write_bytes(b"precious")
        before = snapshot(tmp)
        if command == "simulate":
            argv = ["simulate", "--out", str(out)] + [x for pair in flags for x in pair]
        else:
            f = tmp / "grid.json"
            f.write_text(json.dumps({"base": base, "grid": grid, "seeds": seeds}, default=str))
            argv = ["sweep", str(f), "--out", str(out), "--no-progress"]
        kind, code = _call(lambda: fphlib.cli.main(argv))  # main returns the exit code
        assert kind == "ok" and code == 2, (argv, capsys.readouterr().err)
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err and err, (argv, err)
        _intact(before, tmp)


# --- forged files -----------------------------------------------------------------------------


RESULT_FILES = sorted(p.name for p in V010.iterdir())


@fuzz("results")
@given(file=st.sampled_from(RESULT_FILES), how=st.sampled_from(
           ["bytes", "truncate", "empty", "directory", "delete", "json_value", "json_type"]),
       value=wild(JSONABLE), data=st.binary(max_size=64), key=st.integers(0, 40))
def test_forged_results_are_refused_naming_the_file(file, how, value, data, key):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "r"
        shutil.copytree(V010, path)
        f = path / file
        raw = f.read_bytes()
        if how == "bytes":
            f.write_bytes(data)
        elif how == "truncate":
            f.write_bytes(raw[: len(raw) * key // 41])
        elif how == "empty":
            f.write_bytes(b"")
        elif how == "directory":
            f.unlink()
            f.mkdir()
        elif how == "delete":
            f.unlink()
        elif file.endswith(".json"):
            doc = json.loads(raw)
            keys = sorted(doc)
            if how == "json_value" and keys:
                doc[keys[key % len(keys)]] = value
            else:
                doc = value
            f.write_text(json.dumps(doc, default=str))
        else:
            f.write_bytes(raw[::-1])
        kind, out = _call(lambda: fphlib.SimResult.load(path))
        if kind == "refused":
            assert str(path) in str(out), out
        else:
            repr(out)  # a result that loads can be shown


@pytest.fixture(scope="module")
def trace_bytes(tmp_path_factory):
    out = {}
    for compress in (False, True):
        p = tmp_path_factory.mktemp("trace") / "t.npz"
        write_trace(p, *generate_trace(500, n_pages=1 << 14), compress=compress)
        out[compress] = p.read_bytes()
    return out


def _forge_header(raw, member, shape, descr):
    src = zipfile.ZipFile(io.BytesIO(raw))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == member:
                head_len = 10 + int.from_bytes(data[8:10], "little")
                head = io.BytesIO()
                np.lib.format.write_array_header_1_0(
                    head, {"descr": descr, "fortran_order": False, "shape": shape})
                data = head.getvalue() + data[head_len:]
            dst.writestr(name, data)
    return buf.getvalue()


@fuzz("traces")
@given(compress=st.booleans(), how=st.sampled_from(["flip", "truncate", "header", "bytes"]),
       where=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
       shape=st.sampled_from([(10**13,), (2**62,), (0,), (499,), (501,), (1, 500), ()]),
       descr=st.sampled_from(["<i8", "<f8", ">i8", "|i1", "<i4", "|O"]),
       member=st.sampled_from(["t_us.npy", "kind.npy", "order.npy", "slot.npy"]),
       data=st.binary(max_size=200))
def test_forged_traces_are_refused_naming_the_file(trace_bytes, compress, how, where, shape,
                                                    descr, member, data):
    raw = bytearray(trace_bytes[compress])
    if how == "flip":
        for w in where:
            raw[w % len(raw)] ^= 1 << (w % 8)
    elif how == "truncate":
        raw = raw[: where[0] % len(raw)]
    elif how == "header" and not compress:
        raw = bytearray(_forge_header(bytes(raw), member, shape, descr))
    else:
        raw = bytearray(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "t.npz"
        path.write_bytes(bytes(raw))
        kind, out = _call(lambda: load_trace(path))
        if kind == "refused":
            assert str(out).startswith(str(path)), out


def _valid_entry():
    cfg = SimConfig().to_json()
    summary = {m: 1.0 for m in SUMMARY_METRICS}
    return cfg, run_key(cfg), summary


@fuzz("caches")
@given(how=st.sampled_from(["metric", "drop", "summary", "series", "top", "bytes",
                            "directory", "key"]),
       metric=st.sampled_from(SUMMARY_METRICS), value=wild(JSONABLE),
       data=st.binary(max_size=100))
def test_forged_cache_entries_are_a_named_miss_or_refused(how, metric, value, data):
    cfg, key, summary = _valid_entry()
    with tempfile.TemporaryDirectory() as tmp:
        cache = RunCache(pathlib.Path(tmp) / "c")
        cache.put(key, cfg, {"summary": summary, "series": None})
        f = cache.file(key)
        entry = json.loads(f.read_text())
        if how == "metric":
            entry["summary"][metric] = value
        elif how == "drop":
            entry["summary"].pop(metric)
        elif how == "summary":
            entry["summary"] = value
        elif how == "series":
            entry["series"] = {"host": {"points": 2, "columns": value}}
        elif how == "top":
            entry = value
        elif how == "key":
            entry["key"] = value
        if how == "bytes":
            f.write_bytes(data)
        elif how == "directory":
            f.unlink()
            f.mkdir()
        else:
            f.write_text(json.dumps(entry, default=str))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kind, out = _call(lambda: cache.get(key, cfg,
                                                **({"series": "host", "points": 2}
                                                   if how == "series" else {})),
                              quiet=False)
        if kind == "refused":
            assert how == "directory" and str(f) in str(out), out
            return
        if out is None and how != "series":
            assert any(str(f) in str(w.message) for w in caught), (how, value)
        if out is not None:  # accepted: every metric a finite number >= 0, or NaN (null)
            assert all(isinstance(v, int | float) and not isinstance(v, bool)
                       or v is None and m in NULLABLE_METRICS
                       for m, v in out["summary"].items())
        cache.put(key, cfg, {"summary": summary, "series": None})  # recomputed: rewritten
        assert cache.get(key, cfg)["summary"] == summary


# --- look-alike directories -------------------------------------------------------------------


@pytest.fixture(scope="module")
def result():
    return fphlib.SimResult.load(V010)


NAMES = sorted({*_FILES_OF[RESULT_FORMAT], *RESULT_FILES, "notes.txt", ".fphlib-owner",
                "a" * 64 + ".json", ".0123456789abcdef-x.tmp", ".fphlib-tmp"})


@fuzz("lookalikes")
@given(names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True),
       contents=st.lists(st.sampled_from([b"", b"precious", b"fphlib-owned result\n",
                                          b"fphlib-owned sweep cache\n", b"{}"]),
                         min_size=6, max_size=6),
       sibling=st.booleans())
def test_look_alike_directories_are_never_replaced(result, names, contents, sibling):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        user = tmp / "r"
        user.mkdir()
        for name, content in zip(names, contents, strict=False):
            (user / name).write_bytes(content)
        if sibling:  # a directory merely named like a killed save's temporary
            dead = tmp / ".r.fphlib-tmp-999999999-abcd"
            dead.mkdir()
            (dead / "thesis.tex").write_bytes(b"precious")
        before = snapshot(tmp)
        owned = owner(user) == "result"  # the marker of a result: fphlib's by the rule
        kind, out = _call(lambda: result.save(user, overwrite=True),
                          allowed=(FileExistsError,))
        if kind == "ok":
            assert owned, "replaced a directory that was not fphlib's"
            before = {k: v for k, v in before.items() if not k.startswith("r/") and k != "r"}
        _intact(before, tmp)
        before = snapshot(tmp)
        kind, out = _call(lambda: RunCache(user))
        if kind == "refused":
            assert "cache" in str(out)
        _intact(before, tmp)  # adopting an older cache adds its marker, changes nothing


# --- two writers at once ----------------------------------------------------------------------

WRITER = """
import sys, warnings
import fphlib
from fphlib import SimConfig
from fphlib.api.result import SUMMARY_METRICS
from fphlib.sweep.cache import RunCache, run_key
what, path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
if what == "result":
    res = fphlib.SimResult.load(sys.argv[4])
    for _ in range(rounds):
        try:
            res.save(path, overwrite=True)
        except FileExistsError as e:  # the other writer's save was in the way: refused
            print("refused:", e)
else:
    cfg = SimConfig().to_json()
    key = run_key(cfg)
    cache = RunCache(path)
    for i in range(rounds):
        cache.put(key, cfg, {"summary": {m: float(i) for m in SUMMARY_METRICS},
                             "series": None})
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a torn entry would be a corrupt-file warning
            assert cache.get(key, cfg) is not None
print("done")
"""


@pytest.mark.parametrize("what", ["result", "cache"])
def test_two_writers_at_once_leave_one_whole_artefact(tmp_path, what):
    path = tmp_path / "target"
    rounds = BUDGETS["rounds"] * (10 if what == "cache" else 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", textwrap.dedent(WRITER), what, str(path), str(rounds),
            str(V010)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        FIGURES["examples"] += rounds
        if p.returncode:
            FIGURES["crashes"] += 1
        assert p.returncode == 0, err
        assert out.strip().endswith("done")
    if what == "result":
        assert fphlib.SimResult.load(path).config == fphlib.SimResult.load(V010).config
        assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # no temporaries
    else:
        cfg, key, _ = _valid_entry()
        assert RunCache(path).get(key, cfg) is not None
        assert [p.name for p in (path / ".fphlib-tmp").iterdir()] == [".fphlib-owner"]
