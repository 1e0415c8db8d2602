"""``SimResult``: the summary metrics and time series of one run (DESIGN §3.7).

What each summary metric counts (per guest in ``guest_summary``, summed in ``summary`` unless
noted):

- ``host_rss_peak_bytes`` / ``_mean_`` / ``_final_``: host memory used by guests (backed
  pages + per-guest overhead); peak tracked at every fault and tick, mean over the samples.
- ``reported_bytes``: bytes the host discarded because of page reports or balloon inflation.
- ``reports``: report requests sent (page reporting ``report()`` calls + balloon messages).
- ``vmexits``: exits counted by the model: virtqueue kicks and EPT faults (first touches,
  refaults, swap-ins).
- ``refault_pages``: pages backed again after the host discarded them.
- ``alloc_failures``: guest allocations that failed even after draining pcp lists (and
  deflating the balloon with DEFLATE_ON_OOM).
- ``lost_writes``: pages discarded by the host while holding data the guest still needed;
  0 for every safe mechanism.
- ``guest_cpu_overhead_s``: guest CPU spent on the mechanism (lock holds of isolation and
  putback, kick exits, acks, balloon page operations) plus the refaults it caused.
- ``host_cpu_s``: all host work (faults and zeroing, discards, swap, kick wakeups).
- ``swap_out_bytes``, ``oom_kills``: host swap-outs and OOM-killed guests.
- ``workload_runtime_s``: start to end of a finite workload (memhog, trace); the summary holds
  the mean over guests that finished (NaN if none did: idle and churn never finish).
- ``zone_lock_hold_s``: zone->lock hold time of every buddy operation (``zone_lock`` cost).
- ``events``: simulated events (workload allocations and frees, faults, reports, messages,
  logged events): the unit of the engine benchmark.
- ``wall_s``: wall-clock seconds of ``simulate``.
- ``migration_time_s``, ``migration_bytes``, ``migration_rounds``, ``downtime_s``,
  ``migration_converged``, ``migration_hinted_bytes``, ``migration_unavailable_s``,
  ``migration_unavailable_peak_bytes``: the live migration of guest 0
  (``SimConfig.migration``, :mod:`fphlib.host.migration`); NaN without one.
"""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..host.migration import SUMMARY as MIGRATION_METRICS
from .config import SimConfig

# Run metrics, in DESIGN §3.7 order (names are part of the API).
SUMMARY_METRICS = (
    "host_rss_peak_bytes",
    "host_rss_mean_bytes",
    "host_rss_final_bytes",
    "reported_bytes",
    "reports",
    "vmexits",
    "refault_pages",
    "alloc_failures",
    "lost_writes",
    "guest_cpu_overhead_s",
    "host_cpu_s",
    "swap_out_bytes",
    "oom_kills",
    "workload_runtime_s",
    "zone_lock_hold_s",
    "events",
    "wall_s",
    # live migration of guest 0 (NaN without SimConfig.migration): named where computed
    *MIGRATION_METRICS,
)
HOST_COLUMNS = ("t_s", "rss_bytes", "swap_bytes", "free_bytes")
GUEST_COLUMNS = (
    "t_s",
    "guest",
    "rss_bytes",
    "free_bytes",
    "reported_bytes",
    "isolated_bytes",
    "used_bytes",
    # additions beyond DESIGN §3.7
    "pcp_bytes",
    "balloon_bytes",
    "swap_bytes",
)
EVENT_COLUMNS = ("t_s", "guest", "kind", "value")

_FILES = ("host.parquet", "guests.parquet", "events.parquet", "guest_summary.parquet")


@dataclass
class SimResult:
    """What ``simulate`` returns.

    Attributes
    ----------
    summary : pandas.Series
        One value per name in ``SUMMARY_METRICS`` (``workload_runtime_s`` is the mean over
        guests that finished, NaN if none did).
    guest_summary : pandas.DataFrame
        One row per guest (column ``guest``), the per-guest metrics.
    host, guests : pandas.DataFrame
        Time series sampled every ``config.sample_s`` (``HOST_COLUMNS``, ``GUEST_COLUMNS``).
    events : pandas.DataFrame
        Discrete events (``t_s``, ``guest``, ``kind``, ``value``), e.g. ``oom_kill``.
    config : SimConfig
    """

    summary: pd.Series
    guest_summary: pd.DataFrame
    host: pd.DataFrame
    guests: pd.DataFrame
    events: pd.DataFrame
    config: SimConfig

    def save(self, path):
        """Write to directory ``path`` (parquet + JSON); atomic: all or nothing."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self.host.to_parquet(tmp / "host.parquet", index=False)
            self.guests.to_parquet(tmp / "guests.parquet", index=False)
            self.events.to_parquet(tmp / "events.parquet", index=False)
            self.guest_summary.to_parquet(tmp / "guest_summary.parquet", index=False)
            summary = {k: _plain(v) for k, v in self.summary.items()}
            (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
            (tmp / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1))
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
                os.replace(path, old / "x")
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path):
        """Read a directory written by ``save``."""
        path = Path(path)
        missing = [f for f in (*_FILES, "summary.json", "config.json") if not (path / f).exists()]
        if missing:
            raise ValueError(f"path: {str(path)!r} is not a saved SimResult (missing {missing})")
        summary = json.loads((path / "summary.json").read_text())
        return cls(
            summary=pd.Series(summary, dtype="float64"),
            guest_summary=pd.read_parquet(path / "guest_summary.parquet"),
            host=pd.read_parquet(path / "host.parquet"),
            guests=pd.read_parquet(path / "guests.parquet"),
            events=pd.read_parquet(path / "events.parquet"),
            config=SimConfig.from_dict(json.loads((path / "config.json").read_text())),
        )

    @property
    def per_guest(self):
        """Tidy per-guest table of what the host asked and what it cost each guest
        (:func:`fphlib.api.asking.per_guest`; ``slowdown`` needs a baseline run:
        :func:`fphlib.api.asking.with_baseline`)."""
        from .asking import per_guest

        return per_guest(self)

    def __repr__(self):
        s = self.summary
        return (
            f"SimResult({self.config.guests} guests, {self.config.mechanism}, "
            f"{self.config.duration_s:g} s: peak RSS {s['host_rss_peak_bytes'] / 2**30:.2f} GiB, "
            f"final {s['host_rss_final_bytes'] / 2**30:.2f} GiB, "
            f"lost_writes {int(s['lost_writes'])}, oom_kills {int(s['oom_kills'])})"
        )


def _plain(v):
    v = float(v)
    return None if v != v else v  # NaN -> null in JSON
