"""Upper (and lower) bounds of every ``SimConfig`` value that becomes a size, a rate, an
interval, an index or a loop bound in the jitted engine: the one home of these limits.

The engine trusts what ``SimConfig`` lets through, so every number that sizes an array or
bounds a loop is bounded here, and the total work of a run is estimated up front
(:func:`estimate_events`) and refused above :data:`MAX_EVENTS`. The error messages name the
field and the allowed range.
"""

import math

from ..units import PAGE_SIZE, format_size

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
DAY_S = 86400.0

# sizes (bytes)
MIN_HOST_MEM = 4 * MIB  # one order-10 block: a host smaller than one guest block is a typo
MAX_HOST_MEM = 1 << 50  # 1 PiB of host RAM (and of swap): int64 page counts stay far from 2**63
MAX_HOST_SWAP = 1 << 50
MAX_GUEST_MEM = 1 * TIB  # per guest: 2**28 pages, within the allocator's int32 pfns
MAX_TOTAL_GUEST_MEM = 2 * TIB  # all guests: engine state ~12 bytes per page = 6 GiB
MAX_WORKLOAD_SIZE = 1 << 50  # memhog size, boot footprint (min'd with the guest's memory)
MAX_GUEST_OVERHEAD = 1 * TIB  # costs["guest_overhead"]: per-guest host memory besides RAM
# rates (per second)
MIN_RATE = PAGE_SIZE  # memhog rate / free_rate: at least one page per second (0 never finishes)
MAX_RATE = 1 * TIB  # bytes per second (about 50x a memset on one core)
MAX_OPS_PER_S = 1e9  # churn operations per second per guest
MIN_LIFETIME_S = 1e-3  # churn lifetime_s: one engine tick
MIN_SPEED, MAX_SPEED = 1e-6, 1e6  # trace replay time scale
# times (seconds)
MAX_DURATION_S = 30 * DAY_S  # duration_s, hold_s, gap_s, start_s
MIN_INTERVAL_S = 1e-3  # balloon_interval_s and every interval: one engine tick
MAX_INTERVAL_S = DAY_S
MAX_COST_S = 1.0  # each time cost of fphlib.host.costs (defaults are ~1e-7..1e-4 s)
MIN_SAMPLE_S, MAX_SAMPLE_S = 1e-3, 3600.0  # sampling period of the time series
MAX_REPORT_DELAY_S = 3600.0  # report_delay_s (page_reporting's delay_s has the same range)
# counts
MAX_GUESTS = 256
MAX_VCPUS = 64  # per guest; one pcp list each
MAX_SAMPLES = 10_000_000  # duration_s / sample_s
MAX_RECORD_BYTES = 1 << 30  # the per-guest time series in memory (8 float64 columns)
MAX_REPEAT = 1_000_000  # memhog rounds
MAX_ORDER_WEIGHT = 1e12  # churn order weights: finite, their sum stays finite
# work: simulated events (workload page operations, faults, ticks of every guest, policy and
# mechanism rounds), as estimated by estimate_events (about twice the events a run counts).
# The engine runs 2.5 (churn) to 25 (memhog) million counted events per second on one core
# (2-core test machine, Dec 2026), so the limit is at most ~7 minutes of work; split longer
# studies (shorter duration_s, lower rates, fewer or smaller guests).
MAX_EVENTS = 2_000_000_000


def bounded(name, value, lo, hi, what="a number", unit="", given=None):
    """``value`` if ``lo <= value <= hi``, else ``ValueError`` naming ``name`` and the range
    (quoting ``given``, the value as the user wrote it, when it differs)."""
    if not (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and lo <= value <= hi):
        shown = repr(value)
        if unit in ("bytes", "bytes/s"):
            rng = f"{format_size(lo)}{unit[5:]}..{format_size(hi)}{unit[5:]}"
            if isinstance(value, int):
                shown = f"{given if given is not None else value!r} ({format_size(value)})"
        else:
            rng = f"{lo:g}..{hi:g}{' ' + unit if unit else ''}"
        raise ValueError(f"{name}: {shown} is not allowed; expected {what} in {rng}")
    return value


# workload parameter -> (lo, hi, unit) on top of the kinds' checks in SimConfig
WORKLOAD_BOUNDS = {
    "size": (0, MAX_WORKLOAD_SIZE, "bytes"),
    "boot": (0, MAX_WORKLOAD_SIZE, "bytes"),
    "io_rate": (0, MAX_RATE, "bytes/s"),
    "rate": (MIN_RATE, MAX_RATE, "bytes/s"),
    "free_rate": (MIN_RATE, MAX_RATE, "bytes/s"),
    "hold_s": (0.0, MAX_DURATION_S, "s"),
    "gap_s": (0.0, MAX_DURATION_S, "s"),
    "start_s": (0.0, MAX_DURATION_S, "s"),
    "repeat": (1, MAX_REPEAT, ""),
    "ops_per_s": (0.0, MAX_OPS_PER_S, "ops/s"),
    "lifetime_s": (MIN_LIFETIME_S, MAX_DURATION_S, "s"),
    "speed": (MIN_SPEED, MAX_SPEED, ""),
}


def check_workload_value(name, key, value):
    """Bound one canonical workload parameter (``name`` is its field name for messages)."""
    if key in WORKLOAD_BOUNDS and value is not None:
        lo, hi, unit = WORKLOAD_BOUNDS[key]
        what = {"bytes": "a size", "bytes/s": "a rate"}.get(unit, "a number")
        bounded(name, value, lo, hi, what, unit)
    if key == "orders":
        for order, weight in value.items():
            bounded(f"{name}[{order!r}]", weight, 0.0, MAX_ORDER_WEIGHT, "a weight")
    return value


def check_costs(costs):
    """Bound the cost overrides (already canonical: seconds, ``guest_overhead`` bytes)."""
    for key, value in costs.items():
        if key == "guest_overhead":
            bounded(f"costs[{key!r}]", value, 0, MAX_GUEST_OVERHEAD, "a size", "bytes")
        else:
            bounded(f"costs[{key!r}]", value, 0.0, MAX_COST_S, "a time", "s")


def _workload_events(spec, duration_s):
    """Page operations the workload of one guest can do in ``duration_s`` (an upper estimate)."""
    from ..workloads import COMMON, PARAMS

    mem_pages = spec["mem"] // PAGE_SIZE
    wl = spec["workload"]
    p = {k: v for k, (_, v) in {**COMMON, **PARAMS[wl]}.items()} | dict(spec["workload_params"])
    active = max(0.0, duration_s - spec["start_s"] - p["start_s"])
    # page-cache I/O: a page in, one slab page per 64, and each reclaimed again at most
    boot = min(p["boot"], spec["mem"]) // PAGE_SIZE + 3 * p["io_rate"] / PAGE_SIZE * active
    if wl == "memhog":
        size = min(p["size"], spec["mem"]) / PAGE_SIZE
        rate = p["rate"] / PAGE_SIZE
        free_rate = p["free_rate"] / PAGE_SIZE
        # touch every page each pass (a guest swap-in is an allocation, a swap-out a free),
        # free every page at exit
        per_run = 2 * size * p["repeat"] + size
        by_time = (2 * rate + free_rate) * active
        return boot + min(per_run * p["runs"], by_time)
    if wl == "churn":
        weights = spec["workload_params"].get("orders") or {0: 1.0}
        total = sum(weights.values())
        mean_pages = sum(w * (1 << int(o)) for o, w in weights.items()) / total
        if p.get("lifetime_s") is not None:
            target_blocks = p["target"] * mem_pages / mean_pages
            ops = 2.0 * target_blocks / p["lifetime_s"]
        else:
            ops = p["ops_per_s"]
        return boot + ops * active * mean_pages
    return boot  # idle; trace: bounded by its file (checked when loaded)


def estimate_events(cfg, intervals=()):
    """Upper estimate of the events of a run of ``cfg``: ticks of every guest, workload page
    operations and faults, and rounds of every interval in ``intervals`` (seconds)."""
    from ..engine.loop import TICK_S

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
            f"above the limit of {MAX_EVENTS:.3g} (fphlib.api.limits.MAX_EVENTS: minutes of "
            "work); shorten duration_s or lower the workload's rates (ops_per_s, rate, "
            "lifetime_s), the guests or their memory"
        )
    return n
