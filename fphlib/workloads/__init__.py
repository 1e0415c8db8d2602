"""Workloads, one module each, and the parameters each accepts (validated by SimConfig).

Every workload also takes ``boot`` (the boot footprint allocated when the guest starts,
default 256 MiB) and ``start_s`` (when the workload begins, relative to the guest's start).
Sizes accept ``parse_size`` strings; rates are bytes per second.
"""

WL_IDLE = 0
WL_MEMHOG = 1
WL_CHURN = 2
WL_TRACE = 3

WORKLOADS = {"idle": WL_IDLE, "memhog": WL_MEMHOG, "churn": WL_CHURN, "trace": WL_TRACE}

# Kernel-like order mix for churn: mostly order-0 (anonymous and page-cache pages), some
# order 1-3 (slab, order-2 kernel stacks on x86-64), rare order-9 (guest THP).
DEFAULT_CHURN_ORDERS = {0: 0.95, 1: 0.02, 2: 0.015, 3: 0.01, 9: 0.005}

COMMON = {
    "boot": ("size", 256 << 20),
    "start_s": ("seconds", 0.0),
}

# name -> {param: (kind, default)}
PARAMS = {
    "idle": {},
    "memhog": {
        "size": ("size", 1 << 30),  # bytes touched per round
        "rate": ("size", 1 << 30),  # bytes/s touched (first-touch speed in a VM)
        "free_rate": ("size", 8 << 30),  # bytes/s freed at exit (unmapping is fast)
        "hold_s": ("seconds", 5.0),  # time holding the memory before exiting
        "repeat": ("count", 1),  # rounds
        "gap_s": ("seconds", 5.0),  # pause between rounds
        "order": ("order", 0),  # 0 = 4 KiB faults, 9 = guest THP
    },
    "churn": {
        "target": ("fraction", 0.5),  # fraction of guest memory held at steady state
        "ops_per_s": ("rate", 100_000.0),  # alloc + free operations per second
        "lifetime_s": ("seconds_or_none", None),  # mean lifetime; sets ops_per_s when given
        "orders": ("orders", DEFAULT_CHURN_ORDERS),  # order -> weight
    },
    "trace": {
        "path": ("path", None),  # file read by fphlib.workloads.trace_file.load_trace
        "speed": ("rate", 1.0),  # time scale: 2.0 replays twice as fast
    },
}
