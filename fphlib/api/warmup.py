"""``fphlib.warmup()``: compile (or load from numba's cache) every engine kernel on tiny inputs.

``is_warm()`` says, without compiling anything, whether a warmup has completed for the
current sources, numba version and cache directory (a stamp written by :func:`warmup`;
``fphlib._cache`` drops both the caches and the stamp's validity when a kernel source changes).
Entry points use it to tell a user that the first run will compile (``make lab``, the quickstart).
"""

import os
import tempfile
import time
from pathlib import Path

# What a cold warmup takes on a 2-core machine (benchmarks/startup.py); shown to users before
# they wait. Update it with the benchmark's figure when the engine changes.
# 29 s wall measured 2026-12-07 (every mechanism, workload, policy), the units of all runs
# compiled in one pool by two processes (fphlib.engine.parallel_compile)
COLD_WARMUP_S = 30
# the progress label while the runs' units compile together (parallel_compile)
COMPILING = "compiling in parallel"


def _stamp_path():
    return Path(__file__).resolve().parent.parent / "__pycache__" / "warm.stamp"


def _stamp_text():
    import numba

    from .._cache import sources_digest

    return "\n".join(
        [
            sources_digest(),
            numba.__version__,
            os.environ.get("NUMBA_CACHE_DIR", ""),
            os.environ.get("NUMBA_CPU_NAME", ""),
        ]
    )


def is_warm():
    """True if :func:`warmup` completed for these sources, numba version and cache directory."""
    try:
        return _stamp_path().read_text() == _stamp_text()
    except OSError:
        return False


def _configs(trace_path):
    """(label, config): tiny runs that together reach every compile unit a run can bind
    (fphlib.state.units): each registered mechanism's hooks, each workload's step (the trace
    workload replays the file ``trace_path``), each host policy's step (with the first
    mechanism it can drive), the live migration thread, guest swap and page-cache I/O.
    Units are compiled one by one, so one run per unit suffices, not one per combination."""
    from ..hinting import REGISTRY as MECHANISMS
    from ..host.policy import REGISTRY as POLICIES
    from ..workloads import REGISTRY as WORKLOADS
    from .config import SimConfig

    tiny = dict(host_mem="64MiB", guests=2, guest_mem="16MiB", duration_s=0.02, sample_s=0.01,
                debug=True)
    churn = dict(workload="churn", workload_params={"boot": "1MiB", "target": 0.3})
    for mechanism in MECHANISMS:
        yield f"mechanism {mechanism}", SimConfig(**tiny, **churn, mechanism=mechanism)
    params = {"memhog": {"size": "2MiB"}, "trace": {"path": str(trace_path), "boot": "1MiB"}}
    for workload in WORKLOADS:
        if workload != "churn":
            yield f"workload {workload}", SimConfig(
                **tiny, workload=workload, workload_params=params.get(workload, {}))
    default = SimConfig(**tiny, **churn).policy  # the mechanisms' runs above
    for policy in POLICIES:
        if policy == default:
            continue
        for mechanism in MECHANISMS:
            try:
                cfg = SimConfig(**tiny, **churn, mechanism=mechanism, policy=policy)
            except ValueError:  # a mechanism this policy cannot drive
                continue
            yield f"policy {policy}", cfg
            break
    yield "migration", SimConfig(**tiny, workload="memhog", workload_params={"size": "2MiB"},
                                 migration={"at_s": 0.0, "bandwidth": "1GiB", "downtime_ms": 300})
    yield "guest swap and I/O", SimConfig(
        **{**tiny, "duration_s": 0.05}, workload="memhog", guest_swap="8MiB",
        workload_params={"size": "12MiB", "io_rate": "64MiB"})


def _tiny_trace(directory):
    """A short churn trace for the trace workload's warmup run."""
    from ..units import PAGE_SIZE
    from ..workloads.trace_file import generate_trace, write_trace

    path = Path(directory) / "warmup.npz"
    tr = generate_trace(2000, seed=1, occupancy=0.3, n_pages=(16 << 20) // PAGE_SIZE)
    write_trace(path, tr.t_us, tr.kind, tr.order, tr.slot)
    return path


def warmup(verbose=False, progress=None):
    """Run tiny simulations so that the jitted engine and all it calls are ready.

    Parameters
    ----------
    verbose : bool
        Print the time taken.
    progress : callable, optional
        Called as ``progress(done, total, label)`` as the shared compile advances (label
        ``COMPILING``), before each step and once at the end (``done == total``); ``done``
        never decreases and ``total`` stays the same once a step has run. A notebook drives
        a progress bar with it.

    Returns
    -------
    float
        Seconds taken: seconds with a warm on-disk cache, minutes on the first call after
        installing or editing fphlib (``COLD_WARMUP_S``).
    """
    from ..guest.buddy import BuddyAllocator
    from .simulate import simulate

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fphlib-warmup-") as tmp:
        steps = list(_configs(_tiny_trace(tmp)))
        shared = _compile_together([cfg for _, cfg in steps], progress, len(steps) + 1)
        total = shared + len(steps) + 1
        for k, (label, cfg) in enumerate(steps):
            if progress is not None:
                progress(shared + k, total, label)
            simulate(cfg)
    if progress is not None:
        progress(total - 1, total, "BuddyAllocator")
    b = BuddyAllocator(1024)
    b.free(b.alloc(0), 0)
    if progress is not None:
        progress(total, total, "done")
    try:
        path = _stamp_path()
        path.parent.mkdir(exist_ok=True)
        path.write_text(_stamp_text())
    except OSError:  # read-only install: nothing to remember
        pass
    took = time.perf_counter() - t0
    if verbose:
        print(f"fphlib.warmup: {took:.1f} s")
    return took


def _compile_together(cfgs, progress, runs):
    """Compile the units that the runs of ``cfgs`` miss in one pool shared with helper
    processes (:func:`fphlib.engine.parallel_compile.precompile`), rather than run by run,
    where a run with one or two missing units leaves the other processes idle. Returns the
    number of items compiled so (0 when no helper started), reported through
    ``progress(done, total + runs, COMPILING)``."""
    from ..engine.build import build_state, compile_items, unit_slots
    from ..engine.parallel_compile import precompile

    items, seen = [], set()
    for cfg in cfgs:
        s, _ = build_state(cfg, bind=False)
        for item in compile_items(s, unit_slots(s, cfg)):
            key = (id(item[0]), item[1], item[2])
            if key not in seen:
                seen.add(key)
                items.append(item)
    pooled = [0]

    def report(done, total):
        pooled[0] = total
        if progress is not None:
            progress(done, total + runs, COMPILING)

    precompile(items, progress=report)
    return pooled[0]


def main():
    """``python -m fphlib.api.warmup``: warm the cache with a progress line (``make lab``)."""
    if is_warm():
        print("fphlib: simulator already compiled (numba cache is warm)")
        return
    about = f"{COLD_WARMUP_S} s" if COLD_WARMUP_S < 90 else f"{COLD_WARMUP_S // 60} min"
    print(f"fphlib: compiling the simulator once (first run only, ~{about} on 2 cores); "
          "later starts take seconds", flush=True)

    def show(done, total, label):
        bar = "#" * done + "." * (total - done)
        print(f"  [{bar}] {label}", flush=True)

    print(f"fphlib: ready in {warmup(progress=show):.0f} s", flush=True)


if __name__ == "__main__":
    main()
