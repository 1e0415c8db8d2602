"""Every time cost of the model, in seconds, in one place (docs/design.md §3.3,
docs/references.md §6).

Each default names its source. Where no published number exists (docs/references.md §6 lists the
gaps: virtqueue kick, MADV_DONTNEED per page or per 2 MiB, EPT violation handling) the default
is an explicit assumption, marked ``[assumption]``, chosen to be of the right order of
magnitude; override any of them with ``SimConfig(costs={"name": value})``.

The engine charges them three ways: guest CPU time (``guest_cpu_overhead_s``: work a guest
does for a hinting mechanism, plus the refaults that hinting causes), host CPU time
(``host_cpu_s``) and stalls of the workload that caused them (``workload_stall_s``, which
stretches ``workload_runtime_s``).
"""


import numpy as np

from .bounds import finite
from .units import PAGE_SIZE, parse_size

# name -> (default seconds, source)
DEFAULTS = {
    # One VM exit + entry: ~2,000 cycles direct (SplitX, Xeon X5570, KVM 2.6.34) and
    # ~2,528 cycles for a KVM_RUN round trip on AMD SVM (LKML Dec 2020): ~1 µs at 2-3 GHz.
    "vmexit": (1.0e-6, "docs/references.md §6: SplitX ~2000 cycles; LKML 2020 ~2528 cycles"),
    # Virtqueue kick: one exit plus waking the ioeventfd/iothread; no published number.
    "kick_wakeup": (4.0e-6, "[assumption] ioeventfd wakeup + QEMU thread scheduling "
                    "(docs/costs.md §2: not found; bound >= one 0.6 µs exit)"),
    # From a discard request (report, inflate, hint) to the host's madvise: the kick's exit
    # (vmexit above) plus the ioeventfd/QEMU thread wake-up (kick_wakeup above).
    "discard_latency": (5.0e-6, "[assumption] vmexit 1 us + kick_wakeup 4 us (both above)"),
    # Used-buffer interrupt that acks a request: an interrupt into a vCPU, IPI round trip
    # 3.3-4.2k cycles on SKX (Wanpeng Li 2020; docs/costs.md §2, recommended 1.5 µs).
    "ack_irq": (1.5e-6, "docs/costs.md §2: IPI sender->ack 3.3-4.2k cycles, SKX [measured]"),
    # One madvise()/fallocate() system call for a discard range (QEMU ram_block_discard_range).
    # docs/costs.md §3 has no figure for the call alone (its 0.43 µs per page is a whole one-page
    # call, madvise_4k below).
    "madvise_call": (0.5e-6, "[assumption] syscall entry/exit + vma lookup (docs/costs.md §3: "
                     "not found)"),
    # MADV_DONTNEED zap + free of one 4 KiB host page (PTE level): the legacy balloon's host
    # madvise, 19 % of 4126 ms for 7 GiB, one call per 4 KiB page (Wei Wang 2017).
    "madvise_4k": (0.45e-6, "docs/costs.md §3: balloon MADV_DONTNEED 0.43 µs per 4 KiB [derived]"),
    # MADV_DONTNEED of a whole THP-backed 2 MiB range: one PMD zap + freeing a 2 MiB page
    # (MADV_FREE of a PMD-mapped THP 5.5 µs, Lance Yang 2024; order-9 free 2.9 µs, Halbuer).
    "madvise_2m": (6.0e-6, "docs/costs.md §3: PMD THP MADV_FREE 5.5 µs [derived]; "
                   "recommended 6 µs"),
    # Splitting a host THP when a discard or reclaim covers part of it (split_huge_pmd +
    # split_huge_page); low confidence (16 KiB-folio split data).
    "thp_split": (40.0e-6, "docs/costs.md §4: ~37 µs per folio split, Lance Yang 2024 [derived, "
                  "low confidence]"),
    # First touch or refault of a 4 KiB page, host unbacked: EPT violation + host fault +
    # zeroing, per vCPU (KVM dirty_log_perf_test populate: 3.105 s / 262,144 pages).
    "fault_4k": (12.0e-6, "docs/costs.md §5: dirty_log_perf_test 11.8 µs per 4 KiB first touch "
                 "[derived]"),
    # First touch or refault of a 2 MiB THP: exit + zeroing 2 MiB, 89-178 µs (docs/references.md §6:
    # 97 µs at 21 GB/s, 89-178 µs on Genoa).
    "fault_2m": (100.0e-6, "docs/references.md §6: zeroing 2 MiB ~97 µs (Core i5), "
                 "89-178 µs (Genoa)"),
    # zone->lock hold per buddy operation (one __rmqueue or __free_one_page); docs/costs.md §6
    # found no hold time (only whole alloc+free pairs of ~100 ns, below).
    "zone_lock": (0.05e-6, "[assumption] spin_lock_irq + list ops, ~100-150 cycles "
                  "(docs/costs.md §6: not found)"),
    # Guest work to allocate or free one page outside the lock (balloon driver, pcp):
    # order-0 alloc_pages_node 118-122 ns, __free_pages 116-118 ns (Halbuer 2023, 1 core).
    "page_op": (0.12e-6, "docs/costs.md §6: pcp order-0 alloc/free 120 ns, Halbuer 2023 "
                "[measured]"),
    # Host CPU to swap out one 4 KiB page (kernel swap-out path 3.73 GB/s with 8 processes,
    # one CPU cannot saturate fast storage; Huang Ying 2017). The device's own time is the
    # swap device's bandwidth (SWAP_BANDWIDTH below).
    "swap_out": (9.0e-6, "docs/costs.md §7: swap-out 8.8 µs per page per CPU, Huang Ying 2017 "
                 "[derived]"),
    # A swap-in fault of one 4 KiB page (device read included): Google fleet p50 < 20 µs.
    "swap_in": (20.0e-6, "docs/costs.md §7: swap-in fault p50 20 µs, Chris Li 2023 [measured]"),
    # Allocating one order-10 (4 MiB) block through alloc_pages (free page hint, seed thread).
    "alloc_4m": (15.0e-6, "docs/references.md §4.2 [unverified]: ~15 µs per 4 MiB via alloc_pages"),
    # One xbitmap set/clear under zone->lock (for the xbitmap mechanisms, later).
    "xbitmap_op": (0.02e-6, "[assumption] radix walk + bit op, cache-hot (no published "
                   "figure)"),
    # khugepaged collapsing one 2 MiB range into a THP (collapse_huge_page): an order-9
    # allocation (~3 µs) and a 2 MiB copy at ~10 GB/s; a bound, not a measurement.
    "collapse": (250.0e-6, "docs/costs.md §4: collapse ~250 µs (order-9 alloc + 2 MiB copy) "
                 "[derived bound]"),
    # Live migration (fphlib.host.migration). One migration thread scans (reads, zero-checks)
    # and sends a mostly-zero guest at ~3.3 GB/s: 128 GiB legacy precopy of an idle guest
    # took 41.65 s (Wei Wang v37; docs/costs.md §10: 137.4e9 B / 41.65 s), i.e. 1.24 µs
    # per 4 KiB page; the same per-page time is assumed for a non-zero page (read + copy to
    # the socket) when the bandwidth is not the limit.
    "mig_page": (PAGE_SIZE / 3.3e9, "docs/costs.md §10: 3.3 GB/s per migration thread, "
                 "Wei Wang v37 128 GiB [derived]"),
    # One dirty-bitmap sync (KVM_GET/CLEAR_DIRTY_LOG + re-write-protection) per GiB of guest
    # RAM: 1.15-1.42 s per 96 GiB (Ben Gardon 2022), 0.143 s per 16 GiB (Keqian Zhu 2021).
    "mig_sync_gib": (12e-3, "docs/costs.md §10: clear dirty log ~12 ms per GiB, "
                     "Gardon 2022 [derived]"),
    # The guest's own reclaim (fphlib.guest.reclaim). Dropping one clean page-cache page
    # (isolate from the LRU, unmap, free): no published per-page figure; kswapd reclaims clean
    # page cache at GB/s, i.e. well under 1 µs per page.
    "guest_reclaim": (0.5e-6, "[assumption] LRU isolate + __remove_mapping + free, ~1000 cycles"),
    # Writing back one dirty 4 KiB page-cache page before it can be dropped: taken equal to
    # the kernel's swap-out CPU cost per page (the same bio submission path).
    "guest_writeback": (9e-6, "[assumption] = guest_swap_out: docs/costs.md §7, Huang Ying 2017, "
                        "9 µs per 4 KiB per CPU [derived]"),
    # The guest swapping one 4 KiB anonymous page out to its swap disk, and back in on a touch.
    "guest_swap_out": (9e-6, "docs/costs.md §7: swap-out CPU cost ~9 µs per 4 KiB per CPU, "
                       "Huang Ying 2017 [derived]"),
    "guest_swap_in": (20e-6, "docs/costs.md §7: NVMe swap-in fault p50 < 20 µs, Chris Li 2023 "
                      "[measured]"),
}

# Sizes (bytes), not times; kept here so that every model constant is overridable in one place.
SIZE_DEFAULTS = {
    # QEMU process, EPT tables, device state per guest, counted in host RSS: 62 MiB total
    # including a 29 MiB kernel image, i.e. ~30 MiB of VMM (vmm_memory, CH #1729). The
    # recommended ~3 MiB per vCPU (EVE) is left out [simplification].
    "guest_overhead": (30 << 20, "docs/costs.md §9: QEMU process overhead ~30 MiB, CH #1729 "
                       "[measured]"),
}

# The host's own memory and its swap device (SimConfig.host_reserve, .host_swap_bandwidth).
# Host reserve: what an idle Linux host keeps for itself that reclaim cannot take (kernel,
# slab, services): MemTotal - MemAvailable of an idle Ubuntu 20.04 system, 1987 - 1627 MiB
# (minikube #12186; docs/costs.md §9). Reclaimable host page cache is not counted (it would be
# dropped first, at no modelled cost).
HOST_RESERVE = 360 << 20
HOST_RESERVE_SOURCE = "docs/costs.md §9: idle Ubuntu 20.04 MemTotal-MemAvailable ~360 MiB [derived]"
# The default reserve is at most this fraction of host RAM: [assumption] scaled-down hosts (tests,
# experiments at scale < 1) keep a proportional share instead of a reserve larger than their RAM;
# 1/8 leaves the cited 360 MiB unchanged from 2.8 GiB of host RAM up.
HOST_RESERVE_MAX_FRACTION = 1 / 8
# Swap device bandwidth (bytes/s), shared by swap-out and swap-in: one 4 KiB request at a
# time at the swap-in fault's p50 of 20 µs (docs/costs.md §7, Chris Li 2023), i.e. ~205 MB/s; an
# NVMe device at queue depth 1, as synchronous swap-in faults use it. docs/costs.md §7 has no
# device MB/s figure: the derivation is the assumption.
SWAP_BANDWIDTH = PAGE_SIZE / 20e-6
SWAP_BANDWIDTH_SOURCE = "docs/costs.md §7: 4 KiB per 20 µs swap-in p50 [derived, queue depth 1]"

NAMES = tuple(DEFAULTS) + tuple(SIZE_DEFAULTS)
# index of each cost in the float64 array the engine receives
INDEX = {name: i for i, name in enumerate(NAMES)}


def validate_costs(overrides):
    """Return a plain dict of validated overrides; ValueError names the bad key or value."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise ValueError(f"costs: {overrides!r} is not a dict of name -> seconds")
    out = {}
    for key, value in overrides.items():
        if key not in INDEX:
            raise ValueError(f"costs: unknown cost {key!r}; known costs: {', '.join(NAMES)}")
        if key in SIZE_DEFAULTS:
            out[key] = parse_size(value, f"costs[{key!r}]")
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not finite(value)
            or value < 0
        ):
            raise ValueError(
                f"costs[{key!r}]: {value!r} is not a finite number of seconds >= 0"
            )
        out[key] = float(value)
    return out


def cost_array(overrides=None):
    """The engine's float64 cost vector: defaults with ``overrides`` applied."""
    overrides = validate_costs(overrides)
    arr = np.empty(len(NAMES), np.float64)
    for name, i in INDEX.items():
        default = DEFAULTS[name][0] if name in DEFAULTS else SIZE_DEFAULTS[name][0]
        arr[i] = overrides.get(name, default)
    return arr

# C_VMEXIT, C_FAULT_4K, ...: column of each cost in the engine's cost vector
for _name, _i in INDEX.items():
    globals()["C_" + _name.upper()] = _i
