"""Live migration with and without the free page hint: Wei Wang's v37 numbers.

The experiment of the v37 cover letter (https://lkml.org/lkml/2018/8/27/29;
docs/references.md §4.1 and §8 #3): an idle guest with 4 vCPUs on an E5-2699 v4,
``migrate_set_speed 100G`` (100 GiB/s, i.e. the network is not the limit), downtime limit
400 ms, 4 MiB hint blocks. Published total migration time: **8 GB: 620 ms with the hint vs
2970 ms without; 128 GB: 5294 ms vs 41651 ms** (:data:`PUBLISHED`).

:func:`reproduce_v37` runs ``none`` and ``free_page_hint`` (``mode="alloc"``, the merged
driver; ``"xbitmap"`` on request) with one set of defaults for every size: the idle
workload's default boot footprint (256 MiB), the cost defaults of :mod:`fphlib.costs`
(``mig_page``: 3.3 GB/s per migration thread; ``mig_sync_gib``: 12 ms per GiB per dirty-bitmap
sync; ``alloc_4m``: 15 µs per hint block). No per-result tuning.

Caveat: ``mig_page`` is derived from the legacy 128 GiB run itself (137.4e9 B / 41.65 s), so
that number is a calibration, not a prediction; the other three are predictions.
"""

import pandas as pd

from ..api.config import SimConfig
from ..api.simulate import simulate
from ..costs import DEFAULTS
from ..units import PAGE_SIZE, parse_size

# size -> (with hint ms, legacy ms); "8 GB" / "128 GB" guests read as GiB (QEMU -m 8G)
PUBLISHED = {8 << 30: (620.0, 2970.0), 128 << 30: (5294.0, 41651.0)}
PUBLISHED_SOURCE = "Wei Wang, v37 cover letter, https://lkml.org/lkml/2018/8/27/29"

COLUMNS = (
    "guest_mem",
    "mechanism",
    "mode",
    "migration_time_ms",
    "published_ms",
    "downtime_ms",
    "migration_bytes",
    "migration_rounds",
    "migration_hinted_bytes",
    "migration_unavailable_s",
    "lost_writes",
)


def v37_config(guest_mem, mechanism="none", mode="alloc", bandwidth="100GiB", downtime_ms=400,
               at_s=1.0, **overrides):
    """The ``SimConfig`` of one v37 run: an idle guest of ``guest_mem`` with 4 vCPUs, migrated
    at ``at_s`` (after boot) at ``bandwidth`` with the downtime limit ``downtime_ms``."""

    mem = parse_size(guest_mem, "guest_mem")
    # long enough for a legacy precopy at the thread's rate plus four syncs, and a margin
    pages = mem // PAGE_SIZE
    est = pages * DEFAULTS["mig_page"][0] + 4 * DEFAULTS["mig_sync_gib"][0] * mem / 2**30
    duration = at_s + 1.5 * est + 1.0
    kw = dict(
        host_mem=mem + (4 << 30), guests=1, guest_mem=mem, vcpus=4, workload="idle",
        mechanism=mechanism, mechanism_params={"mode": mode} if mechanism == "free_page_hint"
        else {}, duration_s=duration, sample_s=duration / 20,
        migration={"at_s": at_s, "bandwidth": bandwidth, "downtime_ms": downtime_ms},
    )
    kw.update(overrides)
    return SimConfig(**kw)


def reproduce_v37(sizes=("8GiB", "128GiB"), modes=("alloc",), **overrides):
    """Migration time of an idle guest, legacy vs free page hint, for each size.

    Parameters
    ----------
    sizes : sequence of int or str
        Guest sizes (``"8GiB"``, ``"128GiB"`` as in v37; smaller ones for quick checks).
    modes : sequence of str
        ``free_page_hint`` modes to run besides the legacy migration.
    **overrides
        ``SimConfig`` fields or :func:`v37_config` arguments applied to every run (e.g.
        ``costs``).

    Returns
    -------
    pandas.DataFrame
        One row per (size, mechanism, mode), :data:`COLUMNS`, plus ``ratio`` (hinted time /
        legacy time of that size) and ``published_ratio`` where v37 has the size.
    """

    rows = []
    for size in sizes:
        mem = parse_size(size, "sizes")
        runs = [("none", "")] + [("free_page_hint", m) for m in modes]
        for mech, mode in runs:
            res = simulate(v37_config(mem, mech, mode or "alloc", **overrides))
            s = res.summary
            pub = PUBLISHED.get(mem)
            rows.append({
                "guest_mem": mem,
                "mechanism": mech,
                "mode": mode,
                "migration_time_ms": s["migration_time_s"] * 1e3,
                "published_ms": (pub[1] if mech == "none" else pub[0]) if pub else float("nan"),
                "downtime_ms": s["downtime_s"] * 1e3,
                "migration_bytes": s["migration_bytes"],
                "migration_rounds": s["migration_rounds"],
                "migration_hinted_bytes": s["migration_hinted_bytes"],
                "migration_unavailable_s": s["migration_unavailable_s"],
                "lost_writes": s["lost_writes"],
            })
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    legacy = df[df.mechanism == "none"].set_index("guest_mem")["migration_time_ms"]
    df["ratio"] = df.migration_time_ms / df.guest_mem.map(legacy)
    df["published_ratio"] = df.guest_mem.map(
        {m: h / leg for m, (h, leg) in PUBLISHED.items()}).where(df.mechanism != "none", 1.0)
    return df
