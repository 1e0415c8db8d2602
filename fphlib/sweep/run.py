"""``sweep()``: run every combination of a grid × replicate seeds, in process or on workers.

Tasks are :func:`run_task` calls: module-level (picklable by reference), given only the
canonical config JSON, returning only the summary (and a downsampled series on request) as
plain Python values — never engine arrays — so results cross process and network boundaries
cheaply and exactly. Results are assembled in grid order, whatever order they complete in,
so the DataFrame does not depend on the executor, the batching or the completion order.
"""

import concurrent.futures as cf
import math

import numpy as np
import pandas as pd

from ..api import limits
from ..api.config import REGISTRIES, SimConfig, check_number
from ..api.result import SUMMARY_METRICS
from ..api.simulate import simulate
from ..api.warmup import warmup
from .cache import RunCache, run_key, version
from .grid import expand

SERIES = ("host", "guests")
METRICS = tuple(m for m in SUMMARY_METRICS if m != "wall_s")

_warm = False  # per process: has this worker loaded the jitted engine yet?


def plugins_to_ship(configs):
    """``((kind, name, digest, shipped), ...)`` of the plug-ins ``configs`` use, for workers
    to register (:meth:`fphlib.registry.Registry.shipping`); raises a ``PluginError`` saying
    how to package a plug-in that cannot be sent."""
    out = {}
    for cfg in configs:
        for key in cfg.plugins():
            kind, name = key.split()
            if key not in out:
                registry = REGISTRIES[kind]
                out[key] = (kind, name, registry.digest(name), registry.shipping(name))
    return tuple(out.values())


def ensure_plugins(plugins):
    """Register in this process the plug-ins a sweep shipped (no-op for those present)."""
    for kind, name, digest, shipped in plugins:
        REGISTRIES[kind].ensure(name, digest, shipped)


def _warm_up():
    """Load (or compile) the engine once per process, before the first task's clock starts."""
    global _warm
    if not _warm:

        warmup()
        _warm = True


def downsample(frame, points, by="t_s"):
    """Rows of ``frame`` at no more than ``points`` evenly spaced distinct values of ``by``."""
    times = np.unique(frame[by].to_numpy())
    if len(times) > points:
        idx = np.unique(np.linspace(0, len(times) - 1, points).round().astype(np.int64))
        frame = frame[frame[by].isin(times[idx])]
    return {c: frame[c].tolist() for c in frame.columns}


def run_task(config_json, series=None, points=200, plugins=()):
    """Run one configuration; return ``{"summary", "series", "error"}`` of plain values.

    Every exception of the run becomes the ``error`` string, so one failing combination
    never stops a sweep; the engine is warmed once per process first. ``plugins``
    (:func:`plugins_to_ship`) are registered first when this process lacks them.
    """

    try:
        ensure_plugins(plugins)
        _warm_up()
        res = simulate(SimConfig.from_json(config_json))
    except Exception as e:  # noqa: BLE001 - recorded in the sweep's error column
        return {"summary": None, "series": None, "error": f"{type(e).__name__}: {e}"}
    out = {"summary": {k: float(v) for k, v in res.summary.items()}, "series": None,
           "error": None}
    if series is not None:
        out["series"] = downsample(getattr(res, series), points)
    return out


def _is_dask_client(executor):
    # duck-typed: importing dask at module import would cost every user a second
    mod = type(executor).__module__ or ""
    return mod.split(".")[0] == "distributed" and hasattr(executor, "get_executor")


def _executor_of(executor):
    if executor is None or isinstance(executor, cf.Executor):
        return executor
    if _is_dask_client(executor):
        # the client's concurrent.futures view; pure=False: never reuse another sweep's task
        return executor.get_executor(pure=False)
    raise ValueError(
        f"executor: {type(executor).__name__} is not allowed; expected None (in process), a "
        "concurrent.futures.Executor or a dask.distributed.Client"
    )


def _compute(todo, executor, series, points, store, bar, plugins=()):
    """Run ``todo`` ({hash: (config_json, cache key)}); yield (hash, payload) as they finish.

    Each completed run is written to the cache at once, so an interrupted sweep keeps it.
    """

    def done(h, payload):
        if store is not None and payload["error"] is None:
            cfg_json, key = todo[h]
            store.put(key, cfg_json, payload, series, points)
        bar.update(1)
        return h, payload

    if executor is None:
        for h, (cfg_json, _) in todo.items():
            yield done(h, run_task(cfg_json, series, points))
        return
    futures = {executor.submit(run_task, cfg_json, series, points, plugins): h
               for h, (cfg_json, _) in todo.items()}
    try:
        for fut in cf.as_completed(futures):
            try:
                payload = fut.result()
            except Exception as e:  # noqa: BLE001 - a worker died or the task was lost
                payload = {"summary": None, "series": None,
                           "error": f"{type(e).__name__}: {e}"}
            yield done(futures[fut], payload)
    finally:
        for fut in futures:  # interrupted (Ctrl-C in a notebook): drop what has not started
            fut.cancel()


def sweep(grid, base=None, seeds=1, executor=None, cache=None, progress=True, series=None,
          series_points=200, max_runs=None):
    """Run ``base`` with every combination of ``grid``, ``seeds`` replicates each.

    Parameters
    ----------
    grid : dict or list of dict
        ``{key: [values]}`` for the cartesian product, or ``[{key: value}, ...]`` for zipped
        combinations. Keys are SimConfig fields or dotted keys into dict fields
        (``"workload_params.size"``). Every combination is validated before anything runs.
    base : SimConfig, optional
        What the grid changes (default ``SimConfig()``).
    seeds : int
        Replicates per combination, 1..``fphlib.api.limits.MAX_SEEDS``; replicate ``r`` runs
        with the seed of child ``r`` of ``numpy.random.SeedSequence(base.seed)`` (the same
        for every combination).
    executor : None, concurrent.futures.Executor or dask.distributed.Client
        None runs in this process. Results are identical whichever is used.
    cache : str or os.PathLike, optional
        Directory with one file per completed run; a rerun computes only what is missing.
        A new or empty directory, or one an earlier sweep made (:class:`RunCache`); ``""`` is
        refused (None: no cache).
    progress : bool
        A ``tqdm.auto`` bar over the runs to compute (and over the check of the grid, from
        ``fphlib.sweep.grid.CHECK_BAR_FROM`` combinations on).
    series : {None, "host", "guests"}
        Also return that time series of every run, at most ``series_points`` sample times
        (2..``fphlib.api.limits.MAX_SERIES_POINTS``).
    max_runs : int, optional
        The most runs (combinations x ``seeds``) this sweep may have, counted before the grid
        is expanded; default ``fphlib.api.limits.MAX_SWEEP_RUNS`` (100,000), at most
        ``MAX_SWEEP_RUNS_RAISED`` (1,000,000: every run's config is held in memory).

    Returns
    -------
    pandas.DataFrame
        One row per run in grid order: the grid keys (the value the SimConfig holds, e.g.
        sizes in bytes), ``seed``, ``replicate``, every ``SimResult.summary`` metric,
        ``fphlib_version``, ``config_hash``, ``wall_s`` (of ``simulate`` when the run was
        computed, also for rows read from the cache) and ``error`` (None, or why the run
        failed; its metrics are NaN; failures are not cached). ``df.attrs`` holds
        ``computed``, ``cached`` and ``failed`` counts of distinct configs (a combination
        listed twice runs once) and ``keys``, the grid keys (the columns before ``seed``).
        With ``series``, a pair ``(runs, series_frame)``: the long series frame has a
        ``run`` column (the row of ``runs``), the grid keys, ``seed`` and ``replicate``, then
        the ``SimResult.host``/``.guests`` columns (no rows for a failed run).
    """
    if series is not None and series not in SERIES:
        raise ValueError(f"series: {series!r} is not allowed; expected None, 'host' or 'guests'")
    if isinstance(series_points, bool) or not isinstance(series_points, int):
        raise ValueError(f"series_points: {series_points!r} is not allowed; expected an "
                         f"integer in 2..{limits.MAX_SERIES_POINTS}")
    check_number("series_points", series_points, lo=2, hi=limits.MAX_SERIES_POINTS,
                 integer=True)
    runs, keys = expand(grid, base, seeds, max_runs=max_runs, progress=progress)
    pool = _executor_of(executor)
    store = RunCache(cache) if cache is not None else None
    points = series_points if series is not None else None

    unique = {}  # config_hash -> (config_json, cache key); duplicate combinations run once
    for run in runs:
        unique.setdefault(run.config_hash, (run.config_json,
                                            run_key(run.config_json, run.config.plugins())))
    payloads = {}
    if store is not None:
        for h, (cfg_json, key) in unique.items():
            entry = store.get(key, cfg_json, series, points)
            if entry is not None:
                cols = entry["series"][series]["columns"] if series is not None else None
                payloads[h] = {"summary": entry["summary"], "series": cols, "error": None}
    n_cached = len(payloads)
    todo = {h: v for h, v in unique.items() if h not in payloads}
    # workers in other processes register the run's plug-ins from what the sweep sends
    ship = pool is not None and not isinstance(pool, cf.ThreadPoolExecutor) and todo
    plugins = plugins_to_ship(run.config for run in runs) if ship else ()

    from tqdm.auto import tqdm

    desc = f"sweep ({n_cached} cached)" if n_cached else "sweep"
    with tqdm(total=len(todo), desc=desc, unit="run", disable=not progress) as bar:
        for h, payload in _compute(todo, pool, series, points, store, bar, plugins):
            payloads[h] = payload

    nan = math.nan
    rows = []
    for run in runs:
        p = payloads[run.config_hash]
        summary = p["summary"] or {}
        rows.append({
            **run.params,
            "seed": run.config.seed,
            "replicate": run.replicate,
            **{m: summary.get(m, nan) for m in METRICS},
            "fphlib_version": version(),
            "config_hash": run.config_hash,
            "wall_s": summary.get("wall_s", nan),
            "error": p["error"],
        })
    columns = [*keys, "seed", "replicate", *METRICS, "fphlib_version", "config_hash", "wall_s",
               "error"]
    df = pd.DataFrame(rows, columns=columns)
    df[list(METRICS) + ["wall_s"]] = df[list(METRICS) + ["wall_s"]].astype("float64")
    # object dtype keeps None for "no error" (a string dtype would turn it into NaN)
    df["error"] = pd.Series([row["error"] for row in rows], dtype=object)
    df.attrs.update(computed=len(todo), cached=n_cached,
                    failed=int(df["error"].notna().sum()), keys=list(keys))
    if series is None:
        return df
    return df, _series_frame(df, runs, keys, payloads)


def _series_frame(df, runs, keys, payloads):
    parts = []
    for i, run in enumerate(runs):
        cols = payloads[run.config_hash]["series"]
        if not cols:
            continue
        part = pd.DataFrame(cols)
        ident = {"run": i, **{k: df.at[i, k] for k in keys}, "seed": run.config.seed,
                 "replicate": run.replicate}
        for j, (k, v) in enumerate(ident.items()):
            part.insert(j, k, [v] * len(part))
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["run", *keys, "seed", "replicate"])
    return pd.concat(parts, ignore_index=True)

