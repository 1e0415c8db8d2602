"""``fphlib.warmup()``: compile (or load from numba's cache) every engine kernel on tiny inputs."""

import time


def warmup(verbose=False):
    """Run one tiny simulation so that the jitted loop and all it calls are ready.

    The loop's types do not depend on the configuration, so one run compiles everything
    (every mechanism and workload is a branch of the same loop). With a warm on-disk cache
    this takes seconds; the first call after installing or editing fphlib takes minutes.
    Returns the seconds it took.
    """
    from .config import SimConfig
    from .simulate import simulate

    t0 = time.perf_counter()
    cfg = SimConfig(
        host_mem="64MiB",
        guests=2,
        guest_mem="16MiB",
        workload="churn",
        workload_params={"boot": "1MiB", "target": 0.3},
        mechanism="page_reporting",
        duration_s=0.02,
        sample_s=0.01,
        debug=True,
    )
    simulate(cfg)
    try:  # the BuddyAllocator front end, if present
        from ..guest.buddy import BuddyAllocator

        b = BuddyAllocator(1024)
        b.free(b.alloc(0), 0)
    except Exception:  # noqa: BLE001 - warming is best effort for other modules
        pass
    took = time.perf_counter() - t0
    if verbose:
        print(f"fphlib.warmup: {took:.1f} s")
    return took
