"""fphlib.sweep on a real dask.distributed cluster: a scheduler and two worker processes.

The cluster is started with the ``dask`` command line on 127.0.0.1 (free ports, one thread
per worker, no dashboard), each process in its own process group so teardown ends the
nannies and the workers they spawned.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import fphlib
from fphlib.cli import main

from servers import free_port, stop_process_group

distributed = pytest.importorskip("distributed")

DASK = Path(sys.executable).parent / "dask"
BASE = fphlib.SimConfig(host_mem="1GiB", guest_mem="256MiB", workload="churn",
                        workload_params={"target": 0.4, "boot": "16MiB"},
                        mechanism="page_reporting", duration_s=3.0, sample_s=0.25, seed=7)
GRID = {"hint_order": [8, 10], "mechanism": ["none", "page_reporting"]}


def same(a, b):
    pd.testing.assert_frame_equal(a.drop(columns="wall_s"), b.drop(columns="wall_s"),
                                  check_exact=True)


def _start(args, log):
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([str(DASK), *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(address, {worker name: Popen})`` of a scheduler and two one-thread workers."""
    logs = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"], logs / "scheduler.log")]
    workers = {}
    try:
        for name in ("w0", "w1"):
            workers[name] = _start(
                ["worker", address, "--name", name, "--nthreads", "1", "--nworkers", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "120"],
                logs / f"{name}.log")
            procs.append(workers[name])
        yield address, workers
    finally:
        for proc in reversed(procs):
            stop_process_group(proc)


@pytest.fixture(scope="module")
def client(cluster):
    address, _ = cluster
    with distributed.Client(address, timeout=60) as c:
        c.wait_for_workers(2, timeout=120)
        yield c


@pytest.fixture(scope="module")
def serial():
    return fphlib.sweep(GRID, base=BASE, seeds=2, progress=False)


def test_dask_cluster_gives_the_in_process_frame(client, serial):
    df = fphlib.sweep(GRID, base=BASE, seeds=2, executor=client, progress=False)
    same(serial, df)
    # both workers took part (the runs really left this process)
    assert len(client.scheduler_info()["workers"]) == 2


def test_cli_sweep_on_the_cluster(cluster, tmp_path, capsys, serial):
    address, _ = cluster
    grid = tmp_path / "grid.toml"
    grid.write_text(
        "seeds = 2\n[base]\n" + "".join(
            f"{k} = {v!r}\n".replace("'", '"') for k, v in BASE.to_dict().items()
            if k in ("host_mem", "guest_mem", "workload", "mechanism", "duration_s",
                     "sample_s", "seed"))
        + '[base.workload_params]\ntarget = 0.4\nboot = "16MiB"\n'
        + '[grid]\nhint_order = [8, 10]\nmechanism = ["none", "page_reporting"]\n')
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--out", str(out), "--scheduler", address,
                 "--no-progress"]) == 0
    assert "8 runs (8 computed" in capsys.readouterr().out
    same(serial, pd.read_parquet(out / "results.parquet"))


PLUGIN_GRID = [{"mechanism": "eager", "policy": "static"},
               {"mechanism": "eager", "policy": "toggle"},
               {"mechanism": "page_reporting", "policy": "toggle"}]


def test_an_installed_plugin_runs_on_the_cluster(client):
    """examples/fphlib-eager, installed with entry points: each worker registers it when it
    imports fphlib, and the runs match this process's."""
    assert all(client.run(lambda: "eager" in fphlib.hinting.REGISTRY).values())
    df = fphlib.sweep(PLUGIN_GRID, base=BASE, executor=client, progress=False)
    assert df["error"].isna().all(), list(df["error"])
    same(fphlib.sweep(PLUGIN_GRID, base=BASE, progress=False), df)


def test_a_notebook_plugin_is_shipped_to_the_cluster(client):
    """A mechanism defined in a notebook cell reaches the workers with the sweep itself."""
    from test_plugins import cell

    from fphlib.hinting import REGISTRY

    name = fphlib.register_mechanism(cell(capacity=8))
    try:
        grid = {"mechanism": [name, "none"], "hint_order": [7, 9]}
        df = fphlib.sweep(grid, base=BASE, executor=client, progress=False)
        assert df["error"].isna().all(), list(df["error"])
        same(fphlib.sweep(grid, base=BASE, progress=False), df)
        assert (df.loc[df.mechanism == name, "reported_bytes"] > 0).all()
    finally:
        REGISTRY.unregister(name)


def test_sweep_survives_a_worker_killed_midway(client, cluster, tmp_path):
    """Runs lost with the worker are rescheduled; every run appears exactly once."""
    _, workers = cluster
    slow = fphlib.SimConfig.from_dict({**BASE.to_dict(), "duration_s": 60.0})  # ~0.2 s a run
    grid = {"hint_order": list(range(11))}
    cache = tmp_path / "cache"
    result = {}

    def go():
        try:
            result["df"] = fphlib.sweep(grid, base=slow, seeds=2, executor=client, cache=cache,
                                        progress=False)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
            result["error"] = e

    thread = threading.Thread(target=go)
    thread.start()
    deadline = time.monotonic() + 300
    while len(list(cache.glob("*.json"))) < 4:
        assert thread.is_alive(), result
        assert time.monotonic() < deadline
        time.sleep(0.01)
    victim = workers["w1"]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    done_at_kill = len(list(cache.glob("*.json")))
    thread.join(300)
    assert not thread.is_alive() and "error" not in result, result
    df = result["df"]
    assert done_at_kill < 22, "the sweep finished before the worker was killed"
    assert len(df) == 22 and df["config_hash"].is_unique and df["error"].isna().all()
    assert sorted(zip(df["hint_order"], df["replicate"], strict=True)) == [
        (o, r) for o in range(11) for r in range(2)]
    assert len(client.scheduler_info()["workers"]) == 1
    same(fphlib.sweep(grid, base=slow, seeds=2, progress=False), df)
