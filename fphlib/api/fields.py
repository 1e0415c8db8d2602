"""Help text of every ``SimConfig`` field: one home for the CLI's flags and the widgets'
tooltips.

A light module (no kernels, no heavy imports), so that ``python -m fphlib --help`` and the
notebook widgets read it without importing the model.
"""

# One entry per SimConfig field: (value kind, help text). Kinds: size, int, float, bool,
# choice, dict, list, json. Fields without an entry still get a flag (kind "json"), so the CLI
# never falls behind SimConfig; tests check that every field has a documented flag.
FIELD_HELP = {
    "host_mem": ("size", "host RAM, e.g. 16GiB"),
    "host_swap": ("size", "host swap capacity; 0 = no swap (the host OOM-kills a guest instead)"),
    "host_thp": ("bool", "back guest memory with 2 MiB transparent huge pages on the host"),
    "guests": ("int", "number of guests on the host"),
    "guest_mem": ("size", "RAM of each guest; a whole number of 4 MiB (order-10) blocks"),
    "vcpus": ("int", "vCPUs per guest (one per-CPU page list each)"),
    "workload": ("choice", "workload of every guest"),
    "workload_params": ("dict", "workload parameters as a JSON object, e.g. '{\"size\": \"4GiB\"}'"
                        "; --param KEY=VALUE sets one key"),
    "mechanism": ("choice", "free page hinting mechanism"),
    "mechanism_params": ("dict", "the mechanism's parameters as a JSON object (listed below)"),
    "policy": ("choice", "host policy: whom the host asks for memory, and when"),
    "policy_params": ("dict", "the host policy's parameters as a JSON object (listed below)"),
    "hint_order": ("int", "smallest order reported/hinted (9 = 2 MiB pageblock, 10 = 4 MiB)"),
    "report_capacity": ("int", "older name of page_reporting's capacity: blocks per report "
                        "(PAGE_REPORTING_CAPACITY)"),
    "report_delay_s": ("float", "older name of page_reporting's delay_s: delay before a "
                       "reporting pass (PAGE_REPORTING_DELAY), seconds"),
    "costs": ("dict", "cost overrides as a JSON object; --cost KEY=VALUE sets one key"),
    "duration_s": ("float", "simulated time, seconds"),
    "sample_s": ("float", "sampling period of the time series, seconds"),
    "seed": ("int", "root seed (same config + seed => identical results)"),
    "debug": ("bool", "check page conservation at every sample (slower)"),
    "guest_overrides": ("list", "per-guest overrides as a JSON list of objects with keys "
                        "mem, workload, workload_params, start_s, shares, min, max, "
                        "oom_score_adj"),
    "balloon_target": ("size", "older name of the static policy's target: memory each guest "
                       "keeps, e.g. 4.5GiB (balloon mechanism; 'none' = never inflate)"),
    "balloon_interval_s": ("float", "older name of the static policy's interval_s: how often "
                           "the host (re)sends the balloon target, seconds"),
    "deflate_on_oom": ("bool", "older name of the balloon's deflate_on_oom "
                       "(VIRTIO_BALLOON_F_DEFLATE_ON_OOM)"),
    "migration": ("dict", "live-migrate guest 0: a JSON object with at_s, bandwidth (bytes/s "
                  "or e.g. \"1.25GB\", \"100GiB\" per second), downtime_ms, optional "
                  "max_rounds"),
    "host_reserve": ("size", "host memory the host keeps for itself (kernel, services), in use "
                     "from the start; default 360 MiB, at most host_mem / 8"),
    "host_swap_bandwidth": ("json", "swap device bandwidth, bytes/s or e.g. \"200MiB\" per "
                            "second; 0 = no limit"),
    "host_kswapd": ("bool", "host kswapd: background reclaim from the low to the high watermark"),
    "host_khugepaged": ("bool", "host khugepaged: collapse split 2 MiB ranges back into THPs"),
    "guest_swap": ("size", "swap space of each guest; 0 = none (the guest reclaims page cache "
                   "only, then fails the allocation)"),
}
