"""The bounds of every value that becomes a size, a rate, an interval, an index or a loop
bound in the jitted engine: the one home of these numbers (the bottom floor: configuration,
workloads, mechanisms and the engine all read them). :mod:`fphlib.api.limits` applies them to
a ``SimConfig``.
"""

import math

from .units import PAGE_SIZE


def finite(value):
    """``math.isfinite`` that answers False, not OverflowError, for an int too large for a
    float (``10**400``): such a number is out of every bound here, and the caller's error
    names the field and the range."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


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
MAX_COST_S = 1.0  # each time cost of fphlib.costs (defaults are ~1e-7..1e-4 s)
MIN_SAMPLE_S, MAX_SAMPLE_S = 1e-3, 3600.0  # sampling period of the time series
MAX_REPORT_DELAY_S = 3600.0  # report_delay_s (page_reporting's delay_s has the same range)
# counts
MAX_GUESTS = 256
MAX_ZONE_PAGES = (1 << 31) - 1  # BuddyAllocator(n_pages): int32 free-list links
MAX_VCPUS = 64  # per guest; one pcp list each
MAX_SAMPLES = 10_000_000  # duration_s / sample_s
MAX_RECORD_BYTES = 1 << 30  # the per-guest time series in memory (8 float64 columns)
MAX_REPEAT = 1_000_000  # memhog rounds
MAX_ORDER_WEIGHT = 1e12  # churn order weights: finite, their sum stays finite
MAX_TRACE_OPS = 100_000_000  # ops of a trace file, generated or loaded (~40 bytes each to
# generate: 4 GiB; churn5m, the benchmark's trace, has 5 million)
# work: simulated events (workload page operations, faults, ticks of every guest, policy and
# mechanism rounds), as estimated by estimate_events (about twice the events a run counts).
# The engine runs 2.5 (churn) to 25 (memhog) million counted events per second on one core
# (2-core test machine, Dec 2026), so the limit is at most ~7 minutes of work; split longer
# studies (shorter duration_s, lower rates, fewer or smaller guests).
MAX_EVENTS = 2_000_000_000
