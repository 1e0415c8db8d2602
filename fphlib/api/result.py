"""``SimResult``: the summary metrics and time series of one run (docs/design.md §3.7).

What each summary metric counts (per guest in ``guest_summary``, summed in ``summary`` unless
noted):

- ``host_rss_peak_bytes`` / ``_mean_`` / ``_final_``: host memory used by guests (backed
  pages + per-guest overhead); peak tracked at every fault and tick, mean over the samples.
- ``reported_bytes``: bytes the host discarded because of page reports or balloon inflation,
  cumulative: a page hinted, touched again and hinted again counts twice.
  The per-guest series' ``reported_bytes`` has the same meaning, counted up to each sample
  (cumulative: its last sample per guest is the guest's ``reported_bytes``); what is reported
  *now* is ``reported_free_bytes`` (free pages still flagged reported, whose backing the host
  dropped) plus ``balloon_bytes`` (pages in the balloon).
- ``returned_bytes``: the memory returned to the host at the end of the run, net: pages the
  host discarded on a hint or balloon inflation that the guest has not touched since (never
  more than the guests' memory). The per-guest series of the same name is that at each sample.
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
- ``workload_runtime_s``: start to end of a finite workload (trace), or the time memhog spent
  touching its memory (every pass, not the hold or the exit); the summary holds
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from .._atomic import owner, save_dir
from .._cache import sources_digest
from ..bounds import finite
from ..engine.loop import TICK_S
from ..host.migration import SUMMARY as MIGRATION_METRICS
from .asking import per_guest
from .config import SimConfig

# Run metrics, in docs/design.md §3.7 order (names are part of the API).
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
    # additions beyond docs/design.md §3.7's list
    "returned_bytes",
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
    # additions beyond docs/design.md §3.7
    "pcp_bytes",
    "balloon_bytes",
    "swap_bytes",
    "reported_free_bytes",
    # guest memory beyond anonymous pages (fphlib.guest.reclaim)
    "page_cache_bytes",
    "slab_bytes",
    "guest_swap_bytes",
    "returned_bytes",
)
EVENT_COLUMNS = ("t_s", "guest", "kind", "value")


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

    def save(self, path, overwrite=False):
        """Write to directory ``path`` (parquet + JSON); atomic: all or nothing.

        Parameters
        ----------
        path : str or os.PathLike
            A new directory, an empty one, or (with ``overwrite=True``) an earlier result.
        overwrite : bool
            Replace an existing fphlib result at ``path`` (:func:`is_saved_result`: marked
            as one, or saved before the marker and holding exactly a result's files, which
            load). Anything else at ``path`` (a file, a directory with other files or files
            merely named like a result's) is never replaced (docs/design.md §6).

        Raises
        ------
        FileExistsError
            If ``path`` holds a result and ``overwrite`` is False, or holds anything else.
        OSError
            If the directory cannot be written; nothing is left behind.
        """
        return _save(self, path, overwrite)

    @classmethod
    def load(cls, path):
        """Read a directory written by ``save`` (any earlier format version too).

        Raises
        ------
        ValueError
            Naming the file, if ``path`` is not a result or any part of it is malformed or
            inconsistent with the others (config, summary keys and types, table columns and
            lengths); or if it was written by a newer fphlib.
        """
        return cls(**_load(path))

    @property
    def per_guest(self):
        """Tidy per-guest table of what the host asked and what it cost each guest
        (:func:`fphlib.api.asking.per_guest`; ``slowdown`` needs a baseline run:
        :func:`fphlib.api.simulate.with_baseline`)."""
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


# --- the saved format ------------------------------------------------------------------------
# Format 1: fphlib 0.1.0 (no META file; summary without the migration metrics).
# Format 2: adds META (format, fphlib version, model-source digest). Bump RESULT_FORMAT when
# the files change (a new summary metric or column) and teach _load the older format.
# Format 3: guest memory beyond anonymous pages (fphlib.guest.reclaim): the guests table adds
# page_cache_bytes, slab_bytes, guest_swap_bytes; memhog and the boot footprint got new
# defaults, so an older config is read with the old model's settings (OLD_MODEL_PARAMS).
# Format 4: returned_bytes (net memory returned: the summary metric and the guests' series).
RESULT_FORMAT = 4
FORMAT4_METRICS = ("returned_bytes",)
FORMAT4_COLUMNS = ("returned_bytes",)
FORMAT3_COLUMNS = ("page_cache_bytes", "slab_bytes", "guest_swap_bytes")
# what a workload parameter meant before format 3 when not given (fphlib <= 0.x: no page
# cache or slab, memhog at 1 GiB/s holding 5 s, 5 s between rounds; its repeat is now runs)
OLD_MODEL_PARAMS = {"boot": 256 << 20, "boot_cache": 0.0, "boot_slab": 0.0}
OLD_MEMHOG_PARAMS = {"rate": 1 << 30, "hold_s": 5.0, "gap_s": 5.0}
# ... and the old host: no memory of its own, no swap device limit, no daemons, the cost
# defaults before they were taken from docs/costs.md
OLD_HOST = {"host_reserve": 0, "host_swap_bandwidth": 0.0, "host_kswapd": False,
            "host_khugepaged": False}
OLD_COSTS = {"ack_irq": 1.0e-6, "madvise_4k": 0.2e-6, "madvise_2m": 3.0e-6, "thp_split": 10.0e-6,
             "fault_4k": 2.0e-6, "page_op": 0.1e-6, "swap_out": 10.0e-6, "swap_in": 80.0e-6,
             "guest_overhead": 32 << 20}
META = "fphlib.json"
_TABLES = {
    "host.parquet": "host",
    "guests.parquet": "guests",
    "events.parquet": "events",
    "guest_summary.parquet": "guest_summary",
}
_FILES_OF = {1: (*_TABLES, "summary.json", "config.json"),
             2: (*_TABLES, "summary.json", "config.json", META),
             3: (*_TABLES, "summary.json", "config.json", META),
             4: (*_TABLES, "summary.json", "config.json", META)}
# SimConfig keys every saved config has had since 0.1.0
_CONFIG_KEYS = (
    "host_mem host_swap host_thp guests guest_mem vcpus workload workload_params mechanism "
    "hint_order report_capacity report_delay_s costs duration_s sample_s seed debug "
    "guest_overrides balloon_target balloon_interval_s deflate_on_oom"
).split()


# null (NaN) only where a run writes it: no workload finished, no migration, or a metric an
# older format did not record (kept as null when such a result is saved again)
NULLABLE_METRICS = frozenset({"workload_runtime_s", *MIGRATION_METRICS, *FORMAT4_METRICS})


def summary_problem(summary):
    """Why ``summary`` (metric -> value, None for null) is not a run's summary, or None: an
    unknown metric, a value that is not a number, null where a run never writes NaN
    (:data:`NULLABLE_METRICS`), negative or infinite. The one check of a saved result's
    ``summary.json`` and of a sweep cache entry."""
    unknown = [k for k in summary if k not in SUMMARY_METRICS]
    if unknown:
        return f"unknown metric(s) {unknown}; known: {', '.join(SUMMARY_METRICS)}"
    for k, v in summary.items():
        if v is None:
            if k not in NULLABLE_METRICS:
                return (f"metric {k!r} is null; expected a number (only "
                        f"{', '.join(sorted(NULLABLE_METRICS))} may be null)")
        elif isinstance(v, bool) or not isinstance(v, int | float):
            return f"metric {k!r} is {v!r}; expected a number or null"
        elif not finite(v) or v < 0:
            return f"metric {k!r} is {v!r}; expected a finite number >= 0"
    return None


def is_saved_result(path):
    """True if ``path`` is a result fphlib saved, which ``save(overwrite=True)`` may replace.

    A result saved by this fphlib holds the ownership marker (``fphlib._atomic.OWNER``, kind
    ``result``). One saved before the marker existed is accepted when it holds exactly the
    files of one result format, nothing else, and loads (every file checked as by
    ``SimResult.load``): a user's directory that merely holds files of those names is not a
    result.
    """
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    kind = owner(path)
    if kind is not None:
        return kind == "result"
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    if not any(names == set(files) for files in _FILES_OF.values()):
        return False
    try:
        _load(path)
    except ValueError:
        return False
    return True


def _save(res, path, overwrite):
    def write(tmp):
        for fname, attr in _TABLES.items():
            getattr(res, attr).to_parquet(tmp / fname, index=False)
        summary = {k: _plain(v) for k, v in res.summary.items()}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
        (tmp / "config.json").write_text(json.dumps(res.config.to_dict(), indent=1))
        (tmp / META).write_text(json.dumps(_meta(res.config), indent=1))

    return save_dir(path, write, is_saved_result, overwrite, what="result")


def _meta(cfg):

    return {"format": RESULT_FORMAT, "fphlib_version": __version__,
            "sources_digest": sources_digest(), "plugins": cfg.plugins()}


def _bad(path, what):
    raise ValueError(f"{path}: {what}")


def _read_json(path):
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        _bad(path, f"cannot read ({getattr(e, 'strerror', None) or e})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        _bad(path, f"not valid JSON ({e})")


# byte columns that may hold NaN: a series older formats did not record (the loader fills
# it with NaN, and a result saved again keeps it)
NAN_BYTE_COLUMNS = ("reported_bytes", "returned_bytes")


def _read_table(path, columns, exact=True, nan_ok=()):
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many types for a corrupt file
        _bad(path, f"not a readable parquet table ({type(e).__name__}: {e})")
    cols = list(df.columns)
    if (cols != list(columns)) if exact else not set(columns) <= set(cols):
        _bad(path, f"has columns {cols}; expected {list(columns)}")
    check_values(path, df, nan_ok)
    return df


def check_values(path, df, nan_ok=(), signed=()):
    """Times and sizes as numbers: every ``t_s``, ``guest`` and ``*_bytes`` column of table
    ``df`` (read from ``path``, named in the ``ValueError``) numeric (not strings), finite and
    >= 0 (``guest`` >= -1: a host event; any sign in the columns ``signed``: a difference of
    two sizes), NaN only in the columns ``nan_ok``. The check of every table fphlib loads
    (results, recordings)."""
    for col in df.columns:
        if not (col in ("t_s", "guest") or col.endswith("_bytes")):
            continue
        values = df[col]
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            _bad(path, f"column {col!r} has type {values.dtype}; expected numbers")
        a = values.to_numpy(dtype="float64", na_value=np.nan)
        nan = np.isnan(a)
        if nan.any() and col not in nan_ok:
            _bad(path, f"column {col!r} holds NaN at row {int(np.argmax(nan))}; expected "
                       "numbers")
        lo = -np.inf if col in signed else -1 if col == "guest" else 0
        bad = ~nan & (~np.isfinite(a) | (a < lo))
        if bad.any():
            i = int(np.argmax(bad))
            _bad(path, f"column {col!r} holds {float(a[i])!r} at row {i}; expected a finite "
                       "number" + ("" if col in signed else f" >= {lo}"))


def _old_model(d):
    """A config saved before format 3, with the old model's defaults made explicit."""
    d = dict(d)

    def fill(workload, params):
        if not isinstance(params, dict | None):
            return params  # from_dict refuses it, naming the field
        params = dict(params or {})
        for k, v in OLD_MODEL_PARAMS.items():
            params.setdefault(k, v)
        if workload == "memhog":
            for k, v in OLD_MEMHOG_PARAMS.items():
                params.setdefault(k, v)
            if "repeat" in params:  # a round was a whole run: map, touch, hold, exit
                params["runs"] = params.pop("repeat")
        return params

    for k, v in OLD_HOST.items():
        d.setdefault(k, v)
    if isinstance(d.get("costs"), dict | None):  # anything else: refused by from_dict
        d["costs"] = {**OLD_COSTS, **(d.get("costs") or {})}
    workload = d.get("workload", "idle")
    d["workload_params"] = fill(workload, d.get("workload_params"))
    if not isinstance(d.get("guest_overrides"), list | tuple | None):
        return d  # from_dict refuses it, naming the field
    overrides = []
    for entry in d.get("guest_overrides") or ():
        entry = dict(entry) if isinstance(entry, dict) else entry
        if isinstance(entry, dict) and ("workload_params" in entry or "workload" in entry):
            entry["workload_params"] = fill(entry.get("workload", workload),
                                            entry.get("workload_params", d["workload_params"]))
        overrides.append(entry)
    d["guest_overrides"] = overrides
    return d


def _load(path):
    """The fields of a SimResult read from ``path``, each file checked (see ``load``)."""
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise ValueError(f"path: {path!r} is not allowed; expected a directory path")
    path = Path(path)
    if not path.is_dir():
        _bad(path, "is not a saved SimResult (" + ("not a directory)" if path.exists()
                                                   else "no such directory)"))
    fmt = 1
    if (path / META).exists():
        meta = _read_json(path / META)
        fmt = meta.get("format") if isinstance(meta, dict) else None
        if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 2:
            _bad(path / META, f"format {fmt!r} is not a result format "
                              f"(expected 2..{RESULT_FORMAT})")
        if fmt > RESULT_FORMAT:
            _bad(path / META, f"written by a newer fphlib ({meta.get('fphlib_version')!r}, "
                              f"format {fmt}); this fphlib reads formats 1..{RESULT_FORMAT}")
    missing = [f for f in _FILES_OF[fmt] if not (path / f).is_file()]
    if missing:
        _bad(path, f"is not a saved SimResult (missing {missing})")
    cfg_path = path / "config.json"
    d = _read_json(cfg_path)
    if not isinstance(d, dict):
        _bad(cfg_path, f"expected a JSON object of SimConfig fields, got {type(d).__name__}")
    absent = [k for k in _CONFIG_KEYS if k not in d]
    if absent:
        _bad(cfg_path, f"misses SimConfig field(s) {absent}")
    if fmt < 3:
        d = _old_model(d)
    try:
        config = SimConfig.from_dict(d)
    except (ValueError, TypeError) as e:
        _bad(cfg_path, f"invalid config: {e}")
    sum_path = path / "summary.json"
    summary = _read_json(sum_path)
    if not isinstance(summary, dict):
        _bad(sum_path, f"expected a JSON object metric -> number, got {type(summary).__name__}")
    optional = (set(MIGRATION_METRICS) if fmt == 1 else set()) | (
        set(FORMAT4_METRICS) if fmt < 4 else set())
    absent = [m for m in SUMMARY_METRICS if m not in summary and m not in optional]
    if absent:
        _bad(sum_path, f"misses metric(s) {absent}")
    why = summary_problem(summary)
    if why:
        _bad(sum_path, why)
    summary = pd.Series({m: summary.get(m) for m in SUMMARY_METRICS}, dtype="float64")
    host = _read_table(path / "host.parquet", HOST_COLUMNS)
    if fmt == 1:  # before format 2 the per-guest reported_bytes was what is reported now
        guests = _read_table(path / "guests.parquet", [
            c for c in GUEST_COLUMNS if c != "reported_free_bytes"
            and c not in FORMAT3_COLUMNS + FORMAT4_COLUMNS], nan_ok=NAN_BYTE_COLUMNS)
        guests["reported_free_bytes"] = guests["reported_bytes"]
        guests["reported_bytes"] = np.nan  # the cumulative series was not recorded
    elif fmt == 2:
        guests = _read_table(path / "guests.parquet", [
            c for c in GUEST_COLUMNS if c not in FORMAT3_COLUMNS + FORMAT4_COLUMNS],
            nan_ok=NAN_BYTE_COLUMNS)
    elif fmt == 3:
        guests = _read_table(path / "guests.parquet",
                             [c for c in GUEST_COLUMNS if c not in FORMAT4_COLUMNS],
                             nan_ok=NAN_BYTE_COLUMNS)
    else:
        guests = _read_table(path / "guests.parquet", GUEST_COLUMNS, nan_ok=NAN_BYTE_COLUMNS)
    for c in FORMAT3_COLUMNS:  # the old model had none of these
        if c not in guests:
            guests[c] = 0
    for c in FORMAT4_COLUMNS:  # not recorded before format 4
        if c not in guests:
            guests[c] = np.nan
    guests = guests[list(GUEST_COLUMNS)]
    events = _read_table(path / "events.parquet", EVENT_COLUMNS)
    gs = _read_table(path / "guest_summary.parquet", ("guest", "mem_bytes", "workload",
                                                      "status"), exact=False)
    _check_lengths(path, config, host, guests, events, gs)
    return dict(summary=summary, guest_summary=gs, host=host, guests=guests, events=events,
                config=config)


def _check_lengths(path, config, host, guests, events, gs):
    """Tables consistent with the config: samples, guests, guest numbers."""

    n_ticks = max(1, round(config.duration_s / TICK_S))
    every = max(1, round(config.sample_s / TICK_S))
    n_samples = n_ticks // every + 1
    G = config.guests
    if len(host) != n_samples:
        _bad(path / "host.parquet", f"has {len(host)} rows; the config's duration_s and "
                                    f"sample_s give {n_samples} samples")
    if len(guests) != n_samples * G:
        _bad(path / "guests.parquet", f"has {len(guests)} rows; expected {n_samples} samples "
                                      f"x {G} guests (config.json) = {n_samples * G}")
    want = np.tile(np.arange(G), n_samples)
    if not np.array_equal(guests["guest"].to_numpy(), want):
        _bad(path / "guests.parquet", f"column 'guest' does not hold guests 0..{G - 1} for "
                                      "every sample")
    if list(gs["guest"]) != list(range(G)):
        _bad(path / "guest_summary.parquet", f"has guests {list(gs['guest'])[:10]}; expected "
                                             f"0..{G - 1} (config.json guests={G})")
    ev_guest = events["guest"].to_numpy()
    if len(ev_guest) and ((ev_guest < -1) | (ev_guest >= G)).any():
        _bad(path / "events.parquet", f"column 'guest' has values outside -1..{G - 1}")
