"""Parallel compile of a cold run's units (fphlib.engine.parallel_compile): helpers compile
into numba's cache, this process loads their work, nothing depends on a helper."""

import os
import textwrap

import pytest
from fresh_process import run_fresh

import fphlib
from fphlib.engine import parallel_compile as pc
from fphlib.engine.loop import run_chunk

_MODULE = textwrap.dedent("""
    from fphlib._jit import jit

    @jit
    def square(x):
        return x * x

    @jit
    def cube(x):
        return x * x * x

    @jit
    def twice(x):
        return 2 * x
""")

# in a fresh process with an empty cache: this process claims nothing, so the one helper
# compiles every item; then each item is in the cache and calling it loads it (a cache hit)
_HELPER_ONLY = textwrap.dedent("""
    import json, sys
    from numba import types
    import kernels
    from fphlib.engine import parallel_compile as pc
    items = [(f, (types.int64,), True) for f in (kernels.square, kernels.cube, kernels.twice)]
    missing_before = [pc._missing(*item) for item in items]
    if sys.argv[1] == "helper_only":
        pc._work_through = lambda items, claims, after=None: None
    progress = []
    helpers = pc.precompile(items, jobs=2, progress=lambda *a: progress.append(a))
    missing_after = [pc._missing(*item) for item in items]
    results = [kernels.square(3), kernels.cube(3), kernels.twice(3)]
    hits = [sum(f._cache_hits.values()) for f in (kernels.square, kernels.cube, kernels.twice)]
    print(json.dumps({"helpers": helpers, "before": missing_before, "after": missing_after,
                      "results": results, "hits": hits, "progress": progress}))
""")


def test_a_helper_compiles_into_the_cache_and_this_process_loads_its_work(tmp_path):
    (tmp_path / "kernels.py").write_text(_MODULE)
    got = run_fresh(tmp_path, _HELPER_ONLY, "helper_only")
    assert got["helpers"] == 1
    assert got["before"] == [True, True, True]
    assert got["after"] == [False, False, False]  # the helper left all three in the cache
    assert got["results"] == [9, 27, 6]
    assert got["hits"] == [1, 1, 1]  # loaded, not compiled here
    # reported from nothing done to all three in the cache, each report further on
    assert got["progress"][0] == [0, 3] and got["progress"][-1] == [3, 3]
    done = [d for d, _ in got["progress"]]
    assert done == sorted(set(done))
    # a second process finds everything cached: no helper starts, nothing to report
    again = run_fresh(tmp_path, _HELPER_ONLY, "shared")
    assert again["helpers"] == 0 and again["before"] == [False, False, False]
    assert again["progress"] == []


def test_this_process_and_a_helper_share_the_items_and_leave_no_claims(tmp_path):
    (tmp_path / "kernels.py").write_text(_MODULE)
    (tmp_path / "tmp").mkdir()
    got = run_fresh(tmp_path, _HELPER_ONLY, "shared", env={"TMPDIR": str(tmp_path / "tmp")})
    assert got["helpers"] == 1 and got["progress"][-1] == [3, 3]
    assert got["after"] == [False, False, False]
    assert got["results"] == [9, 27, 6]
    assert list((tmp_path / "tmp").iterdir()) == []  # the claim files are gone


def test_a_function_a_helper_cannot_import_is_compiled_here():
    ns = {}
    exec(textwrap.dedent("""
        from fphlib._jit import jit

        @jit
        def add_one(x):
            return x + 1

        @jit
        def add_two(x):
            return x + 2
    """), ns)  # a plug-in defined in a notebook cell: no module a helper could import
    assert pc._importable(ns["add_one"]) is None
    from numba import types

    assert pc.precompile([(ns["add_one"], (types.int64,), True),
                          (ns["add_two"], (types.int64,), True)], jobs=4) == 0
    assert ns["add_one"](1) == 2 and ns["add_two"](1) == 3
    assert pc._importable(run_chunk) == ("fphlib.engine.loop", "run_chunk")


def _kernels_without_processes(monkeypatch, tmp_path, name, error):
    """A fresh module of _MODULE's three kernels, its items, and Popen raising ``error``."""
    import importlib

    from numba import types

    (tmp_path / f"{name}.py").write_text(_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    k = importlib.import_module(name)

    def no_process(*args, **kwargs):
        raise error

    monkeypatch.setattr(pc.subprocess, "Popen", no_process)
    return k, [(f, (types.int64,), True) for f in (k.square, k.cube, k.twice)]


def test_no_helper_can_start_so_this_process_compiles_everything(monkeypatch, tmp_path):
    k, items = _kernels_without_processes(monkeypatch, tmp_path, "kernels_nohelper",
                                          OSError("no interpreter"))
    assert pc.precompile(items, jobs=3) == 0
    assert [k.square(2), k.cube(2), k.twice(2)] == [4, 8, 4]


def test_one_job_starts_nothing_and_leaves_the_compiles_to_the_caller(monkeypatch, tmp_path):
    _, items = _kernels_without_processes(monkeypatch, tmp_path, "kernels_onejob",
                                          AssertionError("one job starts no helper"))
    assert pc.precompile(items, jobs=1) == 0
    assert [pc._missing(*item) for item in items] == [True, True, True]  # nothing compiled


@pytest.mark.parametrize("given, want", [("1", 1), ("3", 3), (" 2 ", 2)])
def test_compile_jobs_reads_the_environment(monkeypatch, given, want):
    monkeypatch.setenv(pc.ENV_JOBS, given)
    assert pc.compile_jobs() == want


@pytest.mark.parametrize("given", ["0", "-1", "two", "1.5"])
def test_a_bad_compile_jobs_names_the_variable(monkeypatch, given):
    monkeypatch.setenv(pc.ENV_JOBS, given)
    with pytest.raises(ValueError, match=f"{pc.ENV_JOBS}.*>= 1"):
        pc.compile_jobs()


def test_compile_jobs_default_is_the_usable_cpus_at_most_four(monkeypatch):
    monkeypatch.delenv(pc.ENV_JOBS, raising=False)
    monkeypatch.setattr(pc, "_cgroup_cpus", lambda: 1 << 16)
    assert pc.compile_jobs() == max(1, min(len(os.sched_getaffinity(0)), pc.MAX_DEFAULT_JOBS))
    monkeypatch.setattr(pc, "_cgroup_cpus", lambda: 1)  # a container's quota of one CPU
    assert pc.compile_jobs() == 1


@pytest.mark.parametrize("text, want", [("max 100000\n", 1 << 16), ("100000 100000\n", 1),
                                        ("150000 100000\n", 2), ("400000 100000\n", 4),
                                        ("garbage\n", 1 << 16)])
def test_a_container_quota_bounds_the_default(tmp_path, text, want):
    (tmp_path / "cpu.max").write_text(text)
    assert pc._cgroup_cpus(str(tmp_path / "cpu.max")) == want
    assert pc._cgroup_cpus(str(tmp_path / "missing")) == 1 << 16


_CFG = dict(host_mem="1GiB", guests=2, guest_mem="256MiB", workload="churn",
            workload_params={"ops_per_s": 2000, "boot": "16MiB"}, mechanism="page_reporting",
            duration_s=2, seed=5)

_COLD_RUN = textwrap.dedent(f"""
    import json, warnings
    warnings.simplefilter("ignore")
    import fphlib
    import fphlib.engine.build as build
    started = []
    real = build.precompile
    build.precompile = lambda items: started.append(real(items)) or started[-1]
    res = fphlib.simulate(fphlib.SimConfig(**{_CFG!r}))
    from fphlib.hinting.page_reporting import page_reporting_step
    hits = sum(sum(f._cache_hits.values()) for f in (
        fphlib.engine.loop.run_chunk, fphlib.workloads.churn.step.callee,
        fphlib.workloads.common.boot.callee, fphlib.host.backing.ensure_ram.callee,
        fphlib.guest.mm.alloc_pages.callee, page_reporting_step.callee))
    summary = {{k: repr(v) for k, v in res.summary.items() if k != "wall_s"}}
    print(json.dumps({{"helpers": started, "hits": hits, "summary": summary}}))
""")


def test_a_cold_first_simulate_compiles_in_parallel_and_gives_the_same_results(tmp_path):
    got = run_fresh(tmp_path, _COLD_RUN, env={pc.ENV_JOBS: "2"})
    assert got["helpers"] == [1]  # one run, one helper (two jobs)
    assert got["hits"] >= 1  # this process loaded units the helper compiled
    here = fphlib.simulate(fphlib.SimConfig(**_CFG))  # this process's cache, compiled serially
    assert got["summary"] == {k: repr(v) for k, v in here.summary.items() if k != "wall_s"}
