"""``fphlib.warmup()``: compile (or load from numba's cache) every engine kernel on tiny inputs.

``is_warm()`` says, without compiling anything, whether a warmup has completed for the
current sources, numba version and cache directory (a stamp written by :func:`warmup`;
``fphlib._cache`` drops both the caches and the stamp's validity when a kernel source changes).
Entry points use it to tell a user that the first run will compile (``make lab``, the quickstart).
"""

import os
import time
from pathlib import Path

# What a cold warmup takes on a 2-core machine (benchmarks/startup.py); shown to users before
# they wait. Update it with the benchmark's figure when the engine changes.
COLD_WARMUP_S = 120  # 118 s wall measured 2026-12-02 (benchmarks/startup.py --warmup)


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


def _configs():
    """One tiny configuration per registered mechanism (each run compiles what it reaches)."""
    from ..hinting import REGISTRY
    from .config import SimConfig

    for mechanism in REGISTRY:
        yield mechanism, SimConfig(
            host_mem="64MiB",
            guests=2,
            guest_mem="16MiB",
            workload="churn",
            workload_params={"boot": "1MiB", "target": 0.3},
            mechanism=mechanism,
            duration_s=0.02,
            sample_s=0.01,
            debug=True,
        )


def warmup(verbose=False, progress=None):
    """Run tiny simulations so that the jitted engine and all it calls are ready.

    Parameters
    ----------
    verbose : bool
        Print the time taken.
    progress : callable, optional
        Called as ``progress(done, total, label)`` before each step and once at the end
        (``done == total``); a notebook drives a progress bar with it.

    Returns
    -------
    float
        Seconds taken: seconds with a warm on-disk cache, minutes on the first call after
        installing or editing fphlib (``COLD_WARMUP_S``).
    """
    from ..guest.buddy import BuddyAllocator
    from .simulate import simulate

    t0 = time.perf_counter()
    steps = list(_configs())
    total = len(steps) + 1
    for k, (label, cfg) in enumerate(steps):
        if progress is not None:
            progress(k, total, f"mechanism {label}")
        simulate(cfg)
    if progress is not None:
        progress(len(steps), total, "BuddyAllocator")
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


def main():
    """``python -m fphlib.api.warmup``: warm the cache with a progress line (``make lab``)."""
    if is_warm():
        print("fphlib: simulator already compiled (numba cache is warm)")
        return
    print(f"fphlib: compiling the simulator once (first run only, ~{COLD_WARMUP_S // 60} min "
          "on 2 cores); later starts take seconds", flush=True)

    def show(done, total, label):
        bar = "#" * done + "." * (total - done)
        print(f"  [{bar}] {label}", flush=True)

    print(f"fphlib: ready in {warmup(progress=show):.0f} s", flush=True)


if __name__ == "__main__":
    main()
