"""Fuzz test: configs, result directories and trace files from Hypothesis.

Every drawn config is either refused with a ``ValueError`` naming a field, or accepted; an
accepted config small enough for the time budget runs in a subprocess with a time limit, in
debug mode, and must finish without a crash (negative exit code), a hang, an invariant
violation or a lost write in a safe mechanism. Every mechanism and workload of the registries
runs at least once. Corrupt result directories and trace files must be refused naming the
file.

Profiles: the default one takes well under a minute; ``FPHLIB_FUZZ=thorough`` draws many more
inputs and runs many more configs (minutes to hours). The figures (inputs tried, refused, run,
crashes, hangs) are printed (``pytest -s``) and written to ``$FPHLIB_FUZZ_REPORT`` if set::

    FPHLIB_FUZZ=thorough FPHLIB_FUZZ_REPORT=fuzz.json pytest -s tests/test_fuzz.py
"""

import dataclasses
import itertools
import json
import math
import os
import pathlib
import queue
import shutil
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fphlib
from fphlib import SimConfig
from fphlib.api import limits
from fphlib.api.result import SUMMARY_METRICS
from fphlib.costs import NAMES as COST_NAMES
from fphlib.hinting import REGISTRY, mechanism_module
from fphlib.host.policy import REGISTRY as POLICY_REGISTRY
from fphlib.host.policy import policy_module
from fphlib.workloads import COMMON, WORKLOADS, workload_spec
from fphlib.workloads.trace_file import generate_trace, load_trace, write_trace

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROFILE = os.environ.get("FPHLIB_FUZZ", "default")
BUDGETS = {
    # examples drawn per kind, configs run, seconds one run may take before it is a hang
    "default": dict(configs=400, runs=30, results=40, traces=60, hang_s=120.0),
    "thorough": dict(configs=20_000, runs=400, results=2_000, traces=2_000, hang_s=600.0),
}[PROFILE]
# what an accepted config may cost to be run here (others are counted as "too big to run")
RUN_MAX_MEM = 512 << 20
RUN_MAX_EVENTS = 3e7 if PROFILE == "default" else 3e8
FIGURES = {"configs tried": 0, "refused": 0, "accepted": 0, "run": 0,
           "refused when built": 0, "crashes": 0,
           "hangs": 0, "invariant violations": 0, "lost writes": 0,
           "results tried": 0, "results refused": 0, "traces tried": 0, "traces refused": 0}
ACCEPTED = []  # configs small enough to run
FIELDS = {f.name for f in dataclasses.fields(SimConfig)}
MIB = 1 << 20

SIZES = [0, 1, -1, 4096, 3 * MIB, 4 * MIB, 8 * MIB, 64 * MIB, 256 * MIB, "128MiB", "64mb",
         "1.5GiB", "1GiB", "1TiB", "1028GiB", 2**50, 2**80, "junk", 1.5, True, None,
         np.int64(64 * MIB)]
SMALL_MEM = [4 * MIB, 8 * MIB, 32 * MIB, "64MiB", 128 * MIB, np.int64(16 * MIB)]
SECONDS = [0, 1e-300, 1e-3, 0.25, 1.0, 3.0, 1e9, -1.0, math.nan, math.inf, "1", None,
           np.float32(0.5)]
RATES = [0, 1e-300, 1.0, 4096, 1e5, 1e9, 1e18, math.inf, -5.0, 2**80, "1GiB", "64MiB"]
COUNTS = [0, 1, 2, 3, 10**12, -1, 1.5, np.int64(2)]
ORDERS = [-1, 0, 1, 9, 10, 11, 20, 2.0, True]
FRACTIONS = [0.0, 0.1, 0.5, 0.95, 1.0, -0.1, math.nan]


def edge(values):
    return st.sampled_from(values)


# Valid values of each kind: a "tame" draw takes these (so that many configs are accepted and
# run), a "wild" draw the edges above (so that every refusal path is exercised).
TAME = {
    "size": [4096, "1MiB", "8MiB", "16MiB", 48 * MIB],
    "rate": ["16MiB", "256MiB", "1GiB", 1 << 32],
    "seconds": [0.0, 0.1, 0.5, 1.0],
    "ops": [1.0, 1e3, 5e4, 2e5],
    "count": [1, 2, 3],
    "order": [0, 1, 3, 9, 10],
    "fraction": [0.05, 0.3, 0.6, 0.95],
}


def _kind(key, p):
    """The kind of value to draw for workload parameter ``key`` (its ``Param``)."""
    if p.kind in ("size", "orders", "path"):
        return p.kind
    if p.kind == "float_or_none":
        return "seconds_or_none"
    if p.kind == "int":
        return "order" if key == "order" else "count"
    if key.endswith("_s"):
        return "seconds"
    return "fraction" if p.hi <= 1.0 else "rate"


@st.composite
def workload_params(draw, workload, trace_path, wild):
    spec = workload_spec(workload) if workload in WORKLOADS else dict(COMMON)
    out = {}
    for key, p in spec.items():
        if not draw(st.booleans()):
            continue
        kind = _kind(key, p)
        if kind == "size":
            rate = key.endswith("rate")
            pool = (RATES if rate else SIZES) if wild else TAME["rate" if rate else "size"]
        elif kind == "seconds_or_none":
            pool = SECONDS if wild else [None, 0.05, 0.5, 2.0]
        elif kind == "seconds":
            pool = SECONDS if wild else TAME["seconds"]
        elif kind == "rate":
            pool = RATES if wild else (TAME["ops"] if key == "ops_per_s" else [0.5, 1.0, 4.0])
        elif kind == "count":
            pool = COUNTS if wild else TAME["count"]
        elif kind == "order":
            pool = ORDERS if wild else TAME["order"]
        elif kind == "fraction":
            pool = FRACTIONS if wild else TAME["fraction"]
        elif kind == "orders":
            keys = ORDERS + ["3", "x"] if wild else TAME["order"] + ["2"]
            weights = [0.0, 1.0, 1e308, -1.0, math.nan, 5] if wild else [0.01, 1.0, 5]
            out[key] = draw(st.dictionaries(edge(keys), edge(weights), min_size=0 if wild else 1,
                                            max_size=4))
            continue
        elif kind == "path":
            pool = [trace_path, trace_path, "/nonexistent.npz", "", 5] if wild else [trace_path]
        out[key] = draw(edge(pool))
    if workload == "trace" and "path" not in out and (not wild or draw(st.booleans())):
        out["path"] = trace_path
    return out


@st.composite
def module_params(draw, module, wild):
    out = {}
    for key, p in module.PARAMS.items():
        if not draw(st.booleans()):
            continue
        if p.kind == "choice":
            out[key] = draw(edge([*p.choices, "bogus"] if wild else list(p.choices)))
        elif p.kind == "bool":
            out[key] = draw(edge([True, False, 1] if wild else [True, False]))
        elif p.kind in ("size", "size_or_none"):
            out[key] = draw(edge([None, 0, "64MiB", 2**80, -1] if wild else ["16MiB", "32MiB"]))
        elif wild:
            out[key] = draw(edge([p.default, p.lo, p.hi, p.lo - 1, p.hi * 10 + 1,
                                  (p.lo + p.hi) / 2, math.nan]))
        else:
            value = draw(edge([p.default, p.lo, p.hi, (p.lo + p.hi) / 2]))
            out[key] = int(value) if p.kind == "int" else value
    if wild and draw(st.integers(0, 9)) == 0:
        out["no_such_param"] = 1
    return out


@st.composite
def configs(draw, trace_path):
    kw = {}
    wild = draw(st.integers(0, 2)) == 0  # a third of the draws take edge values
    workload = draw(st.sampled_from([*WORKLOADS, "bogus", []] if wild else list(WORKLOADS)))
    mechanism = draw(st.sampled_from([*REGISTRY, "bogus"] if wild else list(REGISTRY)))
    policy = draw(st.sampled_from([*POLICY_REGISTRY, None]))
    kw["workload"] = workload
    kw["mechanism"] = mechanism
    if policy is not None:
        kw["policy"] = policy
        if draw(st.booleans()):
            kw["policy_params"] = draw(module_params(policy_module(policy), wild))
    if isinstance(workload, str) and draw(st.booleans()):
        kw["workload_params"] = draw(workload_params(workload, trace_path, wild))
    if mechanism in REGISTRY and draw(st.booleans()):
        kw["mechanism_params"] = draw(module_params(mechanism_module(mechanism), wild))
    kw["guest_mem"] = draw(edge(SIZES if wild else SMALL_MEM))
    kw["host_mem"] = draw(edge(SIZES if wild else ["128MiB", "256MiB", "1GiB", "4GiB"]))
    kw["duration_s"] = draw(edge(SECONDS if wild else [0.5, 1.0, 2.0, 3.0]))
    tame_overrides = st.lists(st.fixed_dictionaries({}, optional={
        "start_s": edge([0.0, 0.2, 0.4]), "mem": edge(SMALL_MEM),
        "workload": st.sampled_from(list(WORKLOADS)[:3])}), max_size=3)
    optional = {
        "guests": edge([0, 1, 2, 256, 257, -1, 1.5, np.int64(2)] if wild else [1, 2, 3]),
        "host_swap": edge([0, "64MiB", "1GiB", 2**80, -1] if wild else [0, "16MiB", "1GiB"]),
        "host_thp": edge([True, False, 1] if wild else [True, False]),
        "vcpus": edge([1, 2, 4, 0, 65] if wild else [1, 2, 4]),
        "hint_order": edge(ORDERS if wild else TAME["order"]),
        "sample_s": edge([0.1, 0.25, 0.5, 0, 1e-4, 100.0] if wild else [0.1, 0.25, 0.5]),
        "seed": edge([0, 1, 2**63 - 1, 2**64, -1] if wild else [0, 1, 2**63 - 1]),
        "costs": st.dictionaries(
            st.sampled_from([*COST_NAMES, "bogus"] if wild else list(COST_NAMES)),
            edge([0, 1e-6, 1e-3, 1.0, 2.0, -1, math.nan, 2**63, "1MiB"] if wild
                 else [0, 1e-7, 1e-5]), max_size=3),
        "balloon_target": edge([None, 0, "16MiB", "64MiB", 2**80] if wild
                               else [None, "16MiB", "32MiB"]),
        "balloon_interval_s": edge([1e-300, 1e-3, 0.5, 1.0, 10.0, 1e9] if wild
                                   else [0.05, 0.5, 1.0]),
        "report_capacity": edge([1, 16, 32, 33, 0, 2048] if wild else [1, 16, 32]),
        "report_delay_s": edge([1e-300, 0.1, 2.0, 1e5] if wild else [0.1, 2.0]),
        "deflate_on_oom": edge([True, False]),
        "guest_overrides": st.lists(
            st.fixed_dictionaries({}, optional={
                "start_s": edge([0.0, 0.2, 1.0, 1e9, -1.0]),
                "mem": edge(SMALL_MEM + [0, 3 * MIB]),
                "workload": st.sampled_from([*WORKLOADS, "bogus"]),
            }), max_size=3) if wild else tame_overrides,
        "migration": edge([None, {"at_s": 0.2, "bandwidth": "1GiB", "downtime_ms": 300},
                           {"at_s": 0.2, "bandwidth": 0, "downtime_ms": 300},
                           {"at_s": -1.0, "bandwidth": "1GiB", "downtime_ms": 300},
                           {"at_s": 0.1}] if wild else
                          [None, {"at_s": 0.2, "bandwidth": "1GiB", "downtime_ms": 300}]),
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 3)) == 0:
            kw[key] = draw(strategy)
    return kw


def _names_a_field(message):
    head = message.split(":", 1)[0].split("[", 1)[0].strip()
    return head in FIELDS


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "churn.npz"
    write_trace(path, *generate_trace(2_000, seed=3, n_pages=4096, ops_per_s=2_000.0))
    return str(path)


def _draw_configs(trace_path):
    @settings(max_examples=BUDGETS["configs"], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(kw=configs(trace_path))
    def check(kw):
        FIGURES["configs tried"] += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cfg = SimConfig(**kw)
        except ValueError as e:
            FIGURES["refused"] += 1
            assert _names_a_field(str(e)), f"refusal names no field: {e} (config {kw!r})"
            return
        FIGURES["accepted"] += 1
        mem = sum(cfg.guest_spec(g)["mem"] for g in range(cfg.guests))
        if mem <= RUN_MAX_MEM and limits.estimate_events(cfg) <= RUN_MAX_EVENTS:
            ACCEPTED.append(cfg)

    check()


@pytest.fixture(scope="module", autouse=True)
def report():
    """Print (and record) the figures when the module's tests are done."""
    yield
    _report()


def test_fuzz_configs_are_refused_naming_a_field_or_run_cleanly(trace_path, tmp_path):
    _draw_configs(trace_path)
    assert FIGURES["refused"] and FIGURES["accepted"]
    runs = _pick_runs(trace_path)
    fphlib.warmup()  # the workers load every kernel from the cache: no compile is timed
    outcomes = _run_in_subprocesses(runs, tmp_path)
    FIGURES["run"] = sum(1 for o in outcomes if o[0] in ("ok", "lost"))
    FIGURES["refused when built"] = sum(1 for o in outcomes if o[0] == "refused")
    problems = [o for o in outcomes if o[0] not in ("ok", "refused")]
    assert not problems, problems[:5]


def _pick_runs(trace_path):
    """The drawn configs to run (spread over mechanisms and workloads) plus one small config
    for each mechanism and workload of the registries not covered yet."""
    rng = np.random.default_rng(0)
    drawn = [ACCEPTED[i] for i in rng.permutation(len(ACCEPTED))[:BUDGETS["runs"]]]
    covered_m = {c.mechanism for c in drawn}
    covered_w = {c.guest_spec(g)["workload"] for c in drawn for g in range(c.guests)}
    extra = []
    for mech, wl in itertools.zip_longest(REGISTRY, WORKLOADS):
        mech = mech or REGISTRY[0]
        wl = wl or "churn"
        if mech in covered_m and wl in covered_w:
            continue
        params = {"path": trace_path} if wl == "trace" else {}
        extra.append(SimConfig(guests=2, guest_mem="64MiB", host_mem="96MiB", host_swap="32MiB",
                               duration_s=2.0, workload=wl, workload_params=params,
                               mechanism=mech, sample_s=0.25))
    return [dataclasses.replace(c, debug=True) for c in drawn + extra]


WORKER = """
import json, sys
import fphlib
from fphlib.engine.check import InvariantError
from fphlib.hinting import mechanism_is_safe
for line in open(sys.argv[1]):
    i, text = json.loads(line)
    cfg = fphlib.SimConfig.from_json(text)
    print("start", i, flush=True)
    try:
        res = fphlib.simulate(cfg)
    except InvariantError as e:
        print("invariant", i, str(e).replace("\\n", " "), flush=True)
        continue
    except ValueError as e:  # refused when the run is built (a trace file)
        print("refused", i, str(e).replace("\\n", " "), flush=True)
        continue
    lost = res.summary["lost_writes"]
    safe = mechanism_is_safe(cfg.mechanism, cfg.mechanism_settings())
    print("lost" if safe and lost else "ok", i, lost, flush=True)
"""


def _pump(stream, lines):
    for line in stream:
        lines.put(line)
    lines.put(None)


def _run_in_subprocesses(cfgs, tmp_path):
    """Run each config in a worker process; a run that exceeds the time limit is a hang, a
    worker that dies by a signal a crash (the next worker continues after it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    todo = list(enumerate(cfgs))
    outcomes = []
    while todo:
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_text("".join(json.dumps([i, c.to_json()]) + "\n" for i, c in todo))
        errors = open(tmp_path / "worker.err", "w+")  # noqa: SIM115 (read after the worker)
        p = subprocess.Popen([sys.executable, "-c", WORKER, str(jobs)], stdout=subprocess.PIPE,
                             stderr=errors, text=True, env=env)
        lines = queue.Queue()
        pump = threading.Thread(target=_pump, args=(p.stdout, lines), daemon=True)
        pump.start()
        current = None
        deadline = time.monotonic() + BUDGETS["hang_s"]  # import and cache loading included
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                p.kill()
                p.wait()
                outcomes.append(("hang", current, todo[0][1].to_json()))
                FIGURES["hangs"] += 1
                break
            if line is None:
                rc = p.wait()
                if rc != 0:
                    errors.seek(0)
                    err = errors.read()[-2000:]
                    outcomes.append(("crash" if rc < 0 else "error", current, rc, err))
                    FIGURES["crashes"] += rc < 0
                elif todo:  # a clean exit with configs left: the protocol broke
                    outcomes.append(("error", current, "worker ended early"))
                    todo = []
                break
            kind, i, *rest = line.split(" ", 2)
            i = int(i)
            if kind == "start":
                current = i
                deadline = time.monotonic() + BUDGETS["hang_s"]
                continue
            todo = [t for t in todo if t[0] != i]
            outcomes.append((kind, i, *rest))
            if kind == "invariant":
                FIGURES["invariant violations"] += 1
            if kind == "lost":
                FIGURES["lost writes"] += 1
        p.wait()
        pump.join(10)
        p.stdout.close()
        errors.close()
        todo = [t for t in todo if t[0] != current]  # after a crash or hang: skip that one
    return outcomes


def _report():
    line = ", ".join(f"{k} {v}" for k, v in FIGURES.items())
    print(f"\nfuzz ({PROFILE} profile): {line}")
    if os.environ.get("FPHLIB_FUZZ_REPORT"):
        pathlib.Path(os.environ["FPHLIB_FUZZ_REPORT"]).write_text(
            json.dumps({"profile": PROFILE, **FIGURES}, indent=1))


# --- corrupt result directories -----------------------------------------------------------

RESULT_FILES = ("config.json", "summary.json", "fphlib.json", "host.parquet", "guests.parquet",
                "events.parquet", "guest_summary.parquet")


def _json_damage(d, how, data):
    if how == "drop" and isinstance(d, dict) and d:
        d.pop(sorted(d)[data % len(d)])
        return d
    if how == "retype" and isinstance(d, dict) and d:
        key = sorted(d)[data % len(d)]
        d[key] = ["x", {}, "many", -1.5e300][data % 4]
        return d
    if how == "list":
        return list(d) if isinstance(d, dict) else {}
    return d


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    res = fphlib.SimResult.load(ROOT / "tests" / "data" / "result_v0.1.0")
    path = tmp_path_factory.mktemp("fuzz-res") / "good"
    res.save(path)
    return path


DAMAGE = ("truncate", "garbage", "delete", "drop", "retype", "list", "swap", "empty")


@settings(max_examples=BUDGETS["results"], deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(file=st.sampled_from(RESULT_FILES), how=st.sampled_from(DAMAGE),
       data=st.integers(0, 2**16), junk=st.binary(min_size=0, max_size=64))
def test_fuzz_corrupt_results_are_refused_naming_the_file(saved, tmp_path_factory, file, how,
                                                           data, junk):
    FIGURES["results tried"] += 1
    path = tmp_path_factory.mktemp("bad") / "r"
    shutil.copytree(saved, path)
    target = path / file
    raw = target.read_bytes()
    if how == "truncate":
        target.write_bytes(raw[: data % max(len(raw) - 1, 1)])
    elif how == "garbage":
        target.write_bytes(junk + b"\xff{")
    elif how == "delete":
        target.unlink()
    elif how == "empty":
        target.write_bytes(b"")
    elif how == "swap":
        other = path / RESULT_FILES[(RESULT_FILES.index(file) + 1 + data % 6) % 7]
        shutil.copy(other, target)
    elif file.endswith(".json"):
        target.write_text(json.dumps(_json_damage(json.loads(raw), how, data)))
    else:
        target.write_bytes(raw[:8] + junk + raw[8 + len(junk):])
    try:
        fphlib.SimResult.load(path)
    except ValueError as e:
        FIGURES["results refused"] += 1
        assert str(path) in str(e), e
        return
    # loaded: the damage left a valid, self-consistent result (a dropped optional key, an
    # edit to another valid config value, bytes in parquet padding)
    back = fphlib.SimResult.load(path)
    assert isinstance(back.config, SimConfig)
    assert len(back.guests) == len(back.host) * back.config.guests
    assert list(back.guest_summary["guest"]) == list(range(back.config.guests))
    assert list(back.summary.index) == list(SUMMARY_METRICS)


# --- corrupt trace files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz-tr") / "good.npz"
    write_trace(path, *generate_trace(200, seed=1, n_pages=4096), n_pages=4096)
    return path


def _rewrite(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


TRACE_DAMAGE = ("truncate", "garbage", "dtype", "slot", "time", "kind", "order", "drop",
                "shape", "double_free", "fifo", "dir", "empty")


@settings(max_examples=BUDGETS["traces"], deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(how=st.sampled_from(TRACE_DAMAGE), data=st.integers(0, 2**20),
       junk=st.binary(min_size=1, max_size=64))
def test_fuzz_corrupt_traces_are_refused_naming_the_file(good_trace, tmp_path_factory, how,
                                                         data, junk):
    FIGURES["traces tried"] += 1
    d = tmp_path_factory.mktemp("badtr")
    path = d / "t.npz"
    raw = good_trace.read_bytes()
    with np.load(good_trace) as npz:
        arrays = {k: npz[k].copy() for k in ("t_us", "kind", "order", "slot")}
    n = len(arrays["kind"])
    i = data % n
    if how == "truncate":
        path.write_bytes(raw[: data % (len(raw) - 1)])
    elif how == "garbage":
        path.write_bytes(junk)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "dir":
        path.mkdir()
    else:
        if how == "dtype":
            arrays["slot"] = arrays["slot"].astype(np.int64)
        elif how == "slot":
            arrays["slot"][i] = 4096 + data
        elif how == "time":
            arrays["t_us"][i] = -1 if i == 0 else arrays["t_us"][i - 1] - 1 - data
        elif how == "kind":
            arrays["kind"][i] = 2 + data % 100
        elif how == "order":
            arrays["order"][i] = 11 + data % 100
        elif how == "drop":
            arrays.pop(sorted(arrays)[data % 4])
        elif how == "shape":
            arrays["order"] = arrays["order"][:-1]
        elif how == "double_free":
            frees = np.flatnonzero(arrays["kind"] == 1)
            j = frees[data % len(frees)]
            arrays = {k: np.insert(v, j + 1, v[j]) for k, v in arrays.items()}
        _rewrite(path, arrays)
    with pytest.raises(ValueError) as info:
        load_trace(path, n_pages=4096)
    FIGURES["traces refused"] += 1
    assert str(path) in str(info.value)


