"""Upper (and lower) bounds of every ``SimConfig`` value that becomes a size, a rate, an
interval, an index or a loop bound in the jitted engine: the one home of these limits.

The engine trusts what ``SimConfig`` lets through, so every number that sizes an array or
bounds a loop is bounded here, and the total work of a run is estimated up front
(:func:`estimate_events`) and refused above :data:`MAX_EVENTS`. The error messages name the
field and the allowed range.

The counts of the layers above a run (a sweep's runs and replicates, worker processes, the
ops of a generated trace) are bounded here too, so that nothing is expanded, allocated or
started before its size is known to be sane.
"""


from ..bounds import (  # the bounds themselves live on the bottom floor
    MAX_COST_S,
    MAX_EVENTS,
    MAX_GUEST_OVERHEAD,
    MAX_TRACE_OPS,  # noqa: F401 - documented here with the other counts (trace --ops)
    MAX_ZONE_PAGES,  # noqa: F401 - BuddyAllocator(n_pages), the guest floor's own front end
    finite,
)
from ..engine.loop import TICK_S
from ..units import PAGE_SIZE, format_size
from ..workloads import workload_module, workload_settings

# --- counts above one run --------------------------------------------------------------------
# Runs of one sweep (grid combinations x seeds), counted before the grid is expanded: each
# combination is checked as a SimConfig (about a millisecond) before anything runs, and even
# the shortest run takes a tenth of a second, so 100,000 runs are hours of work. A bigger
# sweep is allowed when asked for: ``sweep(..., max_runs=N)`` or ``fphlib sweep --max-runs N``.
MAX_SWEEP_RUNS = 100_000
# ... and the most max_runs may raise it to: a sweep holds every run's config in memory (a few
# KiB each: 1,000,000 runs are gigabytes, and about a quarter of an hour to check)
MAX_SWEEP_RUNS_RAISED = 1_000_000
MAX_SEEDS = 10_000  # replicates per combination (seeds=N)
MAX_SERIES_POINTS = 100_000  # sweep(series_points=N): sample times kept per run
MAX_WORKERS = 1024  # fphlib sweep --workers N: local worker processes


def bounded(name, value, lo, hi, what="a number", unit="", given=None):
    """``value`` if ``lo <= value <= hi``, else ``ValueError`` naming ``name`` and the range
    (quoting ``given``, the value as the user wrote it, when it differs)."""
    if not (isinstance(value, int | float) and not isinstance(value, bool)
            and finite(value) and lo <= value <= hi):
        shown = repr(value)
        if unit in ("bytes", "bytes/s"):
            rng = f"{format_size(lo)}{unit[5:]}..{format_size(hi)}{unit[5:]}"
            if isinstance(value, int):
                shown = f"{given if given is not None else value!r} ({format_size(value)})"
        else:
            rng = f"{lo:g}..{hi:g}{' ' + unit if unit else ''}"
        raise ValueError(f"{name}: {shown} is not allowed; expected {what} in {rng}")
    return value


def check_costs(costs):
    """Bound the cost overrides (already canonical: seconds, ``guest_overhead`` bytes)."""
    for key, value in costs.items():
        if key == "guest_overhead":
            bounded(f"costs[{key!r}]", value, 0, MAX_GUEST_OVERHEAD, "a size", "bytes")
        else:
            bounded(f"costs[{key!r}]", value, 0.0, MAX_COST_S, "a time", "s")


def _workload_events(spec, duration_s):
    """Page operations the workload of one guest can do in ``duration_s`` (an upper estimate):
    the boot footprint and page-cache I/O, plus the workload's own ``estimate_events``."""
    mem_pages = spec["mem"] // PAGE_SIZE
    wl = spec["workload"]
    p = workload_settings(wl, spec["workload_params"])
    active = max(0.0, duration_s - spec["start_s"] - p["start_s"])
    # page-cache I/O: a page in, one slab page per 64, and each reclaimed again at most
    boot = min(p["boot"], spec["mem"]) // PAGE_SIZE + 3 * p["io_rate"] / PAGE_SIZE * active
    own = getattr(workload_module(wl), "estimate_events", None)
    # idle: nothing more; trace: bounded by its file (checked when loaded)
    return boot + (own(p, mem_pages, active) if own is not None else 0)


def estimate_events(cfg, intervals=()):
    """Upper estimate of the events of a run of ``cfg``: ticks of every guest, workload page
    operations and faults, and rounds of every interval in ``intervals`` (seconds)."""

    ticks = cfg.duration_s / TICK_S
    total = ticks * cfg.guests
    for iv in intervals:
        total += cfg.duration_s / iv * cfg.guests
    for g in range(cfg.guests):
        total += 2 * _workload_events(cfg.guest_spec(g), cfg.duration_s)  # op + its fault
    return total


def check_work(cfg, intervals=()):
    """Refuse a config whose :func:`estimate_events` exceeds :data:`MAX_EVENTS`."""
    n = estimate_events(cfg, intervals)
    if n > MAX_EVENTS:
        raise ValueError(
            f"duration_s: {cfg.duration_s:g} s of this run would take about {n:.4g} events, "
            f"above the limit of {MAX_EVENTS:.3g} (fphlib.bounds.MAX_EVENTS: minutes of "
            "work); shorten duration_s or lower the workload's rates (ops_per_s, rate, "
            "lifetime_s), the guests or their memory"
        )
    return n
