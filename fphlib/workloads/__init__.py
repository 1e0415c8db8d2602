"""Workloads, one module each, and the parameters each accepts (validated by SimConfig).

Every workload also takes ``boot`` (the boot footprint allocated when the guest starts: the
fractions ``boot_slab`` of it kernel slab and ``boot_cache`` page cache, the rest anonymous
memory), ``start_s`` (when
the workload begins, relative to the guest's start) and file I/O through the page cache
(``io_rate`` bytes/s, a fraction ``io_write`` of it written: dirty pages; fphlib.workloads.io).
Sizes accept ``parse_size`` strings; rates are bytes per second.

The idle footprint: an Ubuntu 20.04 cloud guest holds ~331 MiB of host RAM after boot
(242,048 + 96,556 kB, Cloud Hypervisor issue #1729; reference/costs.md §9 recommends 330 MiB).
Its split follows the /proc/meminfo of an idle 2 GB Linux server (thegeekdiary.com, "Understanding
/proc/meminfo file": used 505,684 kB = Cached + Buffers 294,412 kB (58 %), AnonPages 111,180 kB
(22 %), slab, kernel stacks, page tables and the rest 20 %) [derived]: 192 MiB page cache,
66 MiB kernel and slab, 72 MiB anonymous (fractions 0.58, 0.20). ``boot="256MiB",
boot_cache=0, boot_slab=0`` is the footprint of fphlib before these (anonymous only).
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
    "boot": ("size", 330 << 20),  # costs.md §9: Ubuntu focal guest after boot (CH #1729)
    "boot_cache": ("fraction", 0.58),  # of the boot footprint, page cache (docstring) [derived]
    "boot_slab": ("fraction", 0.20),  # ... kernel: slab, stacks, page tables [derived]
    "start_s": ("seconds", 0.0),
    "io_rate": ("size", 0),  # bytes/s of file I/O through the page cache (0: none)
    # fraction of the I/O that writes (dirty pages): [assumption] reads dominate, 1 in 4
    "io_write": ("fraction", 0.25),
}

# name -> {param: (kind, default)}
PARAMS = {
    "idle": {},
    "memhog": {
        "size": ("size", 1 << 30),  # bytes mapped and touched
        # bytes/s the guest writes when the host needn't fault: in-guest 4 KiB faults at
        # 361,855/s (will-it-scale page_fault2, Duyck v17; costs.md §5, §8) = 1.48 GB/s
        # [derived]. Host first-touch faults (fault_4k) come on top: with ~12 µs each
        # (costs.md §5, §8: 0.35 GB/s per vCPU) memhog writes ~0.3 GB/s, as published
        # memhog timings imply.
        "rate": ("size", 361_855 * 4096),
        "free_rate": ("size", 8 << 30),  # bytes/s freed at exit (unmapping is fast)
        "hold_s": ("seconds", 0.0),  # time holding the memory before exiting (the tool: 0)
        "repeat": ("count", 1),  # passes over the same memory (memhog -r)
        "runs": ("count", 1),  # times memhog is run, one after the other (a shell loop)
        "gap_s": ("seconds", 0.0),  # pause between runs
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
