"""Seaborn figures from SimResult frames and guest-side state.

Every function draws into the Axes (or Figure) it is given — clearing it first, so widgets can
redraw in place — or creates one with pyplot when none is given, and returns what it drew on.
Inputs are the public frames of :class:`fphlib.SimResult` (docs/design.md §3.7) or plain arrays, so
the same functions serve the notebooks, the widgets and the CLI's ``demo``.
"""

from typing import NamedTuple

import numpy as np
import pandas as pd
import seaborn as sns

from ..guest.fragmentation import fragmentation_index, unusable_index
from ..hinting import takes_hint_order
from ..sweep.summary import ci95
from ..units import PAGE_SIZE, parse_size
from .figures import new_axes, new_figure

GIB = float(1 << 30)
MIB = float(1 << 20)


class Metric(NamedTuple):
    """How to show a metric: ``unit`` ("bytes", "count", "seconds" or "text"), a ``label``
    for readers (without the unit), and what "–" (no value) means for it, if it can happen."""

    unit: str
    label: str
    missing: str = ""


_NO_MIGRATION = "no live migration in the run (SimConfig.migration), or it did not finish in time"

# The one home of metric labels and units. Summary metrics in docs/design.md §3.7 order (the
# keys are fphlib.api.result.SUMMARY_METRICS), then the metrics only guest_summary has.
SUMMARY_METRICS = {
    "host_rss_peak_bytes": Metric("bytes", "host RSS, peak"),
    "host_rss_mean_bytes": Metric("bytes", "host RSS, mean"),
    "host_rss_final_bytes": Metric("bytes", "host RSS at the end"),
    "reported_bytes": Metric("bytes", "discarded by the host, cumulative (re-hints count "
                             "again)"),
    "reports": Metric("count", "report requests / balloon messages"),
    "vmexits": Metric("count", "VM exits"),
    "refault_pages": Metric("count", "pages refaulted after a discard"),
    "alloc_failures": Metric("count", "failed guest allocations"),
    "lost_writes": Metric("count", "lost writes (data discarded by the host)"),
    "guest_cpu_overhead_s": Metric("seconds", "guest CPU spent on hinting"),
    "host_cpu_s": Metric("seconds", "host CPU"),
    "swap_out_bytes": Metric("bytes", "swapped out by the host"),
    "oom_kills": Metric("count", "guests OOM-killed by the host"),
    "workload_runtime_s": Metric(
        "seconds", "workload runtime (mean; memhog: time touching)",
        "the workload never finished: idle and churn run until the end, memhog may not finish "
        "in time"),
    "zone_lock_hold_s": Metric("seconds", "zone->lock hold time"),
    "events": Metric("count", "simulated events"),
    "wall_s": Metric("seconds", "wall-clock time of the run"),
    "migration_time_s": Metric("seconds", "live migration time", _NO_MIGRATION),
    "migration_bytes": Metric("bytes", "sent by the migration", _NO_MIGRATION),
    "migration_rounds": Metric("count", "migration passes", _NO_MIGRATION),
    "downtime_s": Metric("seconds", "migration downtime", _NO_MIGRATION),
    "migration_converged": Metric("count", "migration converged (1 = yes)", _NO_MIGRATION),
    "migration_hinted_bytes": Metric("bytes", "skipped by the migration (hinted free)",
                                     _NO_MIGRATION),
    "migration_unavailable_s": Metric("seconds", "guest memory held by the hint, time",
                                      _NO_MIGRATION),
    "migration_unavailable_peak_bytes": Metric("bytes", "guest memory held by the hint, peak",
                                               _NO_MIGRATION),
    "returned_bytes": Metric("bytes", "memory returned to the host at the end (net: "
                             "discarded, not touched since)"),
}
GUEST_METRICS = {
    "mem_bytes": Metric("bytes", "guest memory"),
    "workload": Metric("text", "workload"),
    "start_s": Metric("seconds", "started at"),
    "status": Metric("text", "guest at the end (running: the VM is up)"),
    "workload_runtime_s": Metric(
        "seconds", "workload runtime",
        "the workload never finished: idle and churn run until the end, memhog may not finish "
        "in time, an OOM-killed guest never does"),
    "workload_stall_s": Metric("seconds", "workload stalled (faults, reclaim)"),
    "refault_stall_s": Metric("seconds", "stalled refaulting discarded pages"),
    "swap_in_pages": Metric("count", "pages swapped back in by the host"),
    "swap_in_stall_s": Metric("seconds", "stalled on host swap-in"),
    "reclaim_stall_s": Metric("seconds", "stalled in host direct reclaim"),
    "workload_ops": Metric("count", "workload allocations and frees"),
    "faults": Metric("count", "EPT faults (first touch, refault, swap-in)"),
    "balloon_msgs": Metric("count", "balloon messages"),
    "oom_deflates": Metric("count", "deflates on guest memory pressure"),
    "thp_splits": Metric("count", "host THPs split (a discard of part of one, or a swap-out "
                         "per 4 KiB)"),
    "stale_hints": Metric("count", "stale hints (page reused before the scan)"),
    "asks_unanswered": Metric("count", "host asks for memory the guest left unanswered"),
    "lazyfree_bytes": Metric("bytes", "lazily freed by the host (MADV_FREE), still in RSS"),
    "lazyfreed_bytes": Metric("bytes", "lazily freed pages host reclaim took"),
    "early_discards": Metric("count", "discards forced early (queue full)"),
    "xbitmap_ops": Metric("count", "xbitmap operations under zone->lock"),
    "xbitmap_kmallocs": Metric("count", "xbitmap leaf/node allocations"),
    "page_cache_dropped_bytes": Metric("bytes", "page cache dropped by guest reclaim"),
    "writeback_bytes": Metric("bytes", "dirty page cache written back by guest reclaim"),
    "guest_swap_out_bytes": Metric("bytes", "swapped out by the guest"),
    "guest_swap_in_bytes": Metric("bytes", "swapped back in by the guest"),
    "kswapd_wakes": Metric("count", "guest kswapd runs"),
    "direct_reclaims": Metric("count", "guest direct reclaim passes"),
    "guest_reclaim_stall_s": Metric("seconds", "stalled in guest direct reclaim"),
    "kswapd_cpu_s": Metric("seconds", "guest CPU of kswapd"),
}

# Columns of the experiments' frames (fphlib.experiments, fphlib.api.asking, the sweeps) that
# are not run metrics above: configuration, identities and derived costs. Units "ms", "gib"
# and "mib" are values already scaled (shown as seconds and bytes); "ratio" is a plain number.
FRAME_COLUMNS = {
    "guests": Metric("count", "guests"),
    "guest": Metric("count", "guest"),
    "policy": Metric("text", "policy"),
    "mechanism": Metric("text", "mechanism"),
    "workload": Metric("text", "workload"),
    "mode": Metric("text", "mode"),
    "role": Metric("text", "role"),
    "fate": Metric("text", "fate"),
    "migration": Metric("text", "migration"),
    "free_memory": Metric("text", "free memory"),
    "host_mem": Metric("bytes", "host memory"),
    "guest_mem": Metric("bytes", "guest memory"),
    "host_swap": Metric("bytes", "host swap"),
    "hint_order": Metric("count", "hint order"),
    "takes_hint_order": Metric("text", "takes the hint order"),
    "params": Metric("text", "parameters (default)"),
    "parameters": Metric("text", "parameters"),
    "mechanisms": Metric("text", "mechanisms it can drive"),
    "description": Metric("text", "description"),
    "summary": Metric("text", "description"),
    "seed": Metric("count", "seed"),
    "replicate": Metric("count", "seed #"),
    "asks": Metric("count", "asks from the host"),
    "asked_bytes": Metric("bytes", "asked for (largest ask)"),
    "hint_on_s": Metric("seconds", "time with hinting on"),
    "hinting_cpu_s": Metric("seconds", "guest CPU spent on hinting"),
    "stall_s": Metric("seconds", "workload stalled (faults, reclaim)"),
    "slowdown": Metric("ratio", "slowdown vs never asking",
                       "no baseline run, or the guest did no work in it"),
    "mean_slowdown": Metric("ratio", "mean slowdown", "no guest with a finite slowdown"),
    "worst_slowdown": Metric("ratio", "worst slowdown", "no guest with a finite slowdown"),
    "jain_slowdown": Metric("ratio", "fairness of the slowdowns (Jain: 1 = equal)",
                            "no guest with a finite slowdown"),
    "swap_peak_bytes": Metric("bytes", "host swap, peak"),
    "swap_bytes": Metric("bytes", "host swap of the guest"),
    "swap_start_bytes": Metric("bytes", "host swap when the guest started"),
    "host_swap_peak_bytes": Metric("bytes", "host swap, peak"),
    "host_swap_end_bytes": Metric("bytes", "host swap at the end of the memhog"),
    "host_swap_out_bytes": Metric("bytes", "swapped out by the host"),
    "host_rss_bytes": Metric("bytes", "host memory of the guest (RSS)"),
    "memory_bytes": Metric("bytes", "memory the guest keeps (outside the balloon)"),
    "balloon_bytes": Metric("bytes", "in the balloon"),
    "runtime_s": Metric("seconds", "memhog runtime", "the memhog did not finish"),
    "workload_end_s": Metric("seconds", "workload ended at", "did not end in the run"),
    "memhog_end_s": Metric("seconds", "memhog ended at", "did not end in the run"),
    "killed_s": Metric("seconds", "OOM-killed at", "not killed"),
    "admitted": Metric("count", "admitted (1 = yes)"),
    "tau": Metric("ratio", "idle memory tax (tau)"),
    "uncooperative": Metric("ratio", "share of uncooperative guests"),
    "oom_killed": Metric("count", "guests OOM-killed"),
    "free_fraction": Metric("ratio", "free share of guest memory"),
    "guest_gib": Metric("gib", "guest memory"),
    "migration_gib": Metric("gib", "sent by the migration", _NO_MIGRATION),
    "migration_time_ms": Metric("ms", "live migration time", _NO_MIGRATION),
    "published_ms": Metric("ms", "published migration time", "not published"),
    "downtime_ms": Metric("ms", "migration downtime", _NO_MIGRATION),
    "rounds": Metric("count", "migration passes", _NO_MIGRATION),
    "unavailable_s": Metric("seconds", "guest memory held by the hint, time", _NO_MIGRATION),
    # guest_spread (fphlib.viz.tables): the spread over the guests of a run, exits by cause
    **{f"workload_stall_{p}_s": Metric("seconds", f"workload stalled, {p} over the guests")
       for p in ("p50", "p90", "p99")},
    **{f"workload_runtime_{p}_s": Metric(
        "seconds", f"workload runtime, {p} over the guests that finished",
        "no guest's workload finished (idle and churn run until the end)")
       for p in ("p50", "p90", "p99")},
    "kick_exits": Metric("count", "VM exits: virtqueue kicks (reports, balloon messages)"),
    "fault_exits": Metric("count", "VM exits: EPT faults (first touch, refault, swap-in)"),
}

SUFFIX_UNITS = (("_bytes", "bytes"), ("_ms", "ms"), ("_gib", "gib"), ("_mib", "mib"),
                ("_s", "seconds"))


def metric_info(name, per_guest=False):
    """The :class:`Metric` of ``name`` (:data:`SUMMARY_METRICS`, or :data:`GUEST_METRICS`
    first when ``per_guest``, then :data:`FRAME_COLUMNS`), else guessed from its suffix
    (:data:`SUFFIX_UNITS`: ``_bytes``, ``_ms``, ``_gib``, ``_mib``, ``_s``)."""
    name = str(name)
    homes = (GUEST_METRICS, SUMMARY_METRICS) if per_guest else (SUMMARY_METRICS, GUEST_METRICS)
    for home in (*homes, FRAME_COLUMNS):
        if name in home:
            return home[name]
    unit = next((u for suffix, u in SUFFIX_UNITS if name.endswith(suffix)), "count")
    return Metric(unit, name.replace("_", " "))


def run_label(result):
    """Short label of a run: its mechanism, plus the hint order when it reports free pages."""
    cfg = result.config
    label = str(cfg.mechanism)

    if takes_hint_order(cfg.mechanism):
        label += f" (order {cfg.hint_order})"
    return label


# Label of replicate r > 0 of a run: "page_reporting (order 9) · seed #1" (the apps of
# notebooks 00 and 02 with seeds > 1; replicate 0 keeps the run's own label).
SEED_MARK = " · seed #"


def run_name(label):
    """The run a label names, without its replicate mark: ``"none · seed #2"`` -> ``"none"``."""
    return str(label).split(SEED_MARK)[0]


def seed_groups(results):
    """``{run: [SimResult, ...]}``: the replicates of each run of ``{label: SimResult}``
    (labels :data:`SEED_MARK`-marked), in the order first seen."""
    groups = {}
    for label, res in results.items():
        groups.setdefault(run_name(label), []).append(res)
    return groups


def seeds_text(n_seeds):
    """What a title adds for ``n_seeds`` replicates: ``" · 3 seeds (mean, 95 % band)"``;
    nothing for one."""
    return f" · {n_seeds} seeds (mean, 95 % band)" if n_seeds > 1 else ""


def seed_band(values):
    """``(low, high)`` of the 95 % interval of the mean of ``values`` over the seeds: the
    Student's t interval of :func:`fphlib.sweep.summary.ci95`, the same as the tables' ±
    (seaborn's ``errorbar`` for bands and error bars; NaN, so nothing drawn, for one value)."""
    mean, half = ci95(values)
    return mean - half, mean + half


def _labelled(results):
    """Normalise one result, a list or a {label: result} dict to a {label: result} dict."""
    if isinstance(results, dict):
        return dict(results)
    if hasattr(results, "host"):
        results = [results]
    out = {}
    for r in results:
        label = run_label(r)
        n = 2
        base = label
        while label in out:  # two runs of one mechanism: keep both, numbered
            label = f"{base} #{n}"
            n += 1
        out[label] = r
    return out


def host_frame(results, hue="run"):
    """Long-form host time series of one or more runs, with a ``hue`` column naming the run.

    Parameters
    ----------
    results : SimResult, list of SimResult or dict of label -> SimResult
        Runs to stack; lists are labelled by :func:`run_label`.
    hue : str
        Name of the label column: the run's label without its replicate mark
        (:func:`run_name`), so the replicates of a run share it.
    """
    frames = []
    for label, r in _labelled(results).items():
        f = r.host.copy()
        f[hue] = run_name(label)
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def plot_host_rss(data, ax=None, hue="run", host_mem=None, title="Host RSS over time",
                  palette=None):
    """Host RSS (GiB) against time, one line per run; the replicates of a run (several rows
    per time and ``hue``) as their mean with a 95 % band (:func:`seed_band`).

    Parameters
    ----------
    data : SimResult, list, dict or pandas.DataFrame
        Runs (see :func:`host_frame`) or an already long-form frame with columns ``t_s``,
        ``rss_bytes`` and ``hue``.
    ax : matplotlib.axes.Axes, optional
        Axes to redraw into (cleared first); a new figure otherwise.
    hue : str
        Column distinguishing the runs.
    host_mem : int, optional
        Host RAM in bytes, drawn as a dashed line. Taken from the runs' config when omitted.
    title : str
    palette : dict, optional
        ``{hue value: colour}`` (default: seaborn's).

    Returns
    -------
    matplotlib.axes.Axes
    """
    if not isinstance(data, pd.DataFrame):
        runs = _labelled(data)
        if host_mem is None and runs:

            host_mem = parse_size(next(iter(runs.values())).config.host_mem, "host_mem")
        data = host_frame(runs, hue=hue)
    ax = new_axes(ax)
    frame = data.assign(rss_gib=data["rss_bytes"] / GIB)
    # style as well as colour: runs that coincide (e.g. none and balloon) stay visible
    sns.lineplot(frame, x="t_s", y="rss_gib", hue=hue, style=hue, ax=ax, linewidth=1.6,
                 palette=palette, errorbar=seed_band)
    if host_mem:
        ax.axhline(host_mem / GIB, color="0.3", linestyle="--", linewidth=1)
        ax.annotate("host RAM", (0.01, host_mem / GIB), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8, color="0.3")
    ax.set(xlabel="time (s)", ylabel="host RSS (GiB)", title=title)
    ax.set_ylim(bottom=0)
    if ax.get_legend() is not None:  # outside the axes: it never hides a curve
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return ax


# Memory levels of the per-guest panels (the cumulative ``reported_bytes`` is a total, shown in
# the summary table, not a level).
GUEST_SERIES = {
    "used_bytes": "used by the guest",
    "free_bytes": "free in the guest",
    "rss_bytes": "backed by the host (RSS)",
    "reported_free_bytes": "free, reported (host dropped it)",
    "balloon_bytes": "in the balloon (host dropped it)",
}
# series left out when zero for the whole run (no empty legend entries)
_OPTIONAL_SERIES = ("reported_free_bytes", "balloon_bytes")


def guest_frame(result):
    """Long-form per-guest memory: columns t_s, guest, series, gib."""
    g = result.guests if hasattr(result, "guests") else result
    cols = [c for c in GUEST_SERIES if c in g.columns]
    cols = [c for c in cols if c not in _OPTIONAL_SERIES or g[c].any()]
    long = g.melt(id_vars=["t_s", "guest"], value_vars=cols, var_name="series", value_name="b")
    long["series"] = long["series"].map(GUEST_SERIES)
    long["gib"] = long["b"] / GIB
    return long.drop(columns="b")


def plot_guest_memory(result, fig=None, max_guests=4, title=None):
    """Each guest's used, free, reported and host-backed memory over time, one panel per guest.

    Parameters
    ----------
    result : SimResult or pandas.DataFrame
        A run, or its ``guests`` frame.
    fig : matplotlib.figure.Figure, optional
        Figure to redraw into (cleared first); a new one otherwise.
    max_guests : int
        Panels to draw (the first guests); a 64-guest host would be unreadable. When there
        are more guests the title says "showing guests 0-3 of N".
    title : str, optional
        Figure title.

    Notes
    -----
    A guest the host OOM-killed (a ``oom_kill`` event of a SimResult) has a red line at the
    kill and "OOM-killed at t s" in its panel's title: what it shows after that is not
    memory it holds.

    Returns
    -------
    matplotlib.figure.Figure
    """
    long = guest_frame(result)
    every = sorted(long["guest"].unique())
    guests = every[:max_guests]
    n = max(len(guests), 1)
    kills = {}
    if hasattr(result, "events"):
        ev = result.events[result.events["kind"] == "oom_kill"]
        kills = {int(g): float(t) for g, t in zip(ev["guest"], ev["t_s"], strict=True)}
    fig = new_figure(fig, figsize=(3.6 * n + 1.5, 3.4))
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True, squeeze=False)[0])
    order = [s for s in GUEST_SERIES.values() if s in set(long["series"])]
    for i, (ax, guest) in enumerate(zip(axes, guests, strict=False)):
        sub = long[long["guest"] == guest]
        sns.lineplot(sub, x="t_s", y="gib", hue="series", hue_order=order, ax=ax,
                     legend=i == n - 1, linewidth=1.4)
        ax.set(title=f"guest {guest}", xlabel="time (s)", ylabel="GiB")
        if int(guest) in kills:
            t = kills[int(guest)]
            ax.axvline(t, color="tab:red", linewidth=1.5)
            ax.set_title(f"guest {guest}: OOM-killed at {t:.3g} s", color="tab:red")
        ax.set_ylim(bottom=0)
    if n and axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), title=None,
                        frameon=False, fontsize=8)
    if len(every) > len(guests):
        shown = f"showing guests {guests[0]}-{guests[-1]} of {len(every)}"
        title = f"{title} ({shown})" if title else shown.capitalize()
    if title:
        fig.suptitle(title)
    return fig


def buddyinfo_frame(nr_free):
    """nr_free per order as a frame: order, blocks, bytes, mib."""
    nr_free = np.asarray(nr_free, dtype=np.int64)
    orders = np.arange(len(nr_free))
    b = nr_free * (PAGE_SIZE << orders)
    return pd.DataFrame({"order": orders, "blocks": nr_free, "bytes": b, "mib": b / MIB})


def plot_buddyinfo(nr_free, ax=None, unit="blocks", title="Free blocks per order (buddyinfo)"):
    """Bar chart of ``/proc/buddyinfo``: free blocks (or free MiB) per order.

    Parameters
    ----------
    nr_free : array_like of int
        Free blocks per order, as ``BuddyAllocator.nr_free``.
    unit : {"blocks", "mib"}
        Count blocks (what buddyinfo prints) or the memory they hold.
    """
    if unit not in ("blocks", "mib"):
        raise ValueError(f"unit: {unit!r} is not one of 'blocks', 'mib'")
    ax = new_axes(ax, figsize=(6.5, 3.4))
    frame = buddyinfo_frame(nr_free)
    sns.barplot(frame, x="order", y=unit, ax=ax, color="tab:blue")
    ax.set(xlabel="order (block = 4 KiB × 2^order)",
           ylabel="free blocks" if unit == "blocks" else "free MiB", title=title)
    return ax


def fragmentation_frame(nr_free):
    """Kernel fragmentation and unusable free space indices per order (thousandths → 0..1).

    The fragmentation index is -1 (the kernel's "would succeed") when a block of that order
    is free; it is kept as NaN here so that the plot leaves a gap rather than a fake value.
    """

    nr_free = np.asarray(nr_free, dtype=np.int64)
    rows = []
    for order in range(len(nr_free)):
        frag = fragmentation_index(nr_free, order)
        rows.append((order, "fragmentation index", np.nan if frag < 0 else frag / 1000))
        rows.append((order, "unusable free space index", unusable_index(nr_free, order) / 1000))
    return pd.DataFrame(rows, columns=["order", "index", "value"])


def plot_fragmentation(nr_free, ax=None, title="Fragmentation per order"):
    """Fragmentation index and unusable free space index per order (kernel arithmetic).

    An index without a value at any order (the fragmentation index when a block of every
    order is free) gets no legend entry but a note on the axes saying why."""
    ax = new_axes(ax, figsize=(6.5, 3.4))
    frame = fragmentation_frame(nr_free)
    empty = [i for i, sub in frame.groupby("index", sort=False) if sub["value"].isna().all()]
    frame = frame[~frame["index"].isin(empty)]
    sns.lineplot(frame, x="order", y="value", hue="index", marker="o", ax=ax)
    if empty:
        ax.text(0.99, 0.02, f"{', '.join(empty)}: no value at any order (a free block of "
                "each order: every allocation would succeed)", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="0.35")
    ax.set(xlabel="order", ylabel="index (0..1)", title=title, ylim=(-0.05, 1.05),
           xticks=range(len(np.asarray(nr_free))))
    sns.move_legend(ax, "upper left", title=None, fontsize=8)
    return ax


def plot_bitmap_memory(frame, ax=None, x="used_fraction", title="Tracking memory", log=True):
    """Bytes each structure needs to track free pages, as the guest fills.

    Structures whose bytes are equal at every point are drawn once, their names joined (the
    xbitmap per free page and per free block head hold the same leaves). On the default log
    axis the per-page flags, the flat bitmap and the xbitmap stay apart; a structure at 0 bytes
    (an empty xbitmap of a full guest) is drawn at the bottom edge with an open marker.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long-form with columns ``x``, ``structure`` and ``bytes`` (see
        :func:`fphlib.viz.tour.tracking_memory`).
    log : bool
        Logarithmic y axis (bytes); linear from 0 otherwise.
    """
    ax = new_axes(ax, figsize=(6.5, 3.6))
    series = {}
    for name, sub in frame.groupby("structure", sort=False):
        sub = sub.sort_values(x)
        key = tuple(sub["bytes"].astype(float))
        for other, (names, _) in series.items():
            if other == key and list(series[other][1][x]) == list(sub[x]):
                names.append(str(name))
                break
        else:
            series[key] = ([str(name)], sub)
    markers = "osD^vP*X"
    floor = None
    if log:
        positive = frame.loc[frame["bytes"] > 0, "bytes"]
        floor = float(positive.min()) / 2 if len(positive) else 1.0
    for i, (names, sub) in enumerate(series.values()):
        y = sub["bytes"].astype(float).to_numpy()
        label = " = ".join(names) if len(names) < 3 else f"{names[0]} (and {len(names) - 1} more)"
        if log:
            zero = y <= 0
            y = np.where(zero, floor, y)
        line, = ax.plot(sub[x], y, marker=markers[i % len(markers)], label=label, linewidth=1.5)
        if log and zero.any():
            ax.plot(sub[x][zero], y[zero], linestyle="none", marker=markers[i % len(markers)],
                    markerfacecolor="white", color=line.get_color())
    ax.set(xlabel="fraction of guest memory allocated" if x == "used_fraction" else x,
           ylabel="bytes", title=title)
    if log:
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(_bytes_formatter())
    else:
        ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=8, frameon=False)
    return ax


def _bytes_formatter():
    from matplotlib.ticker import FuncFormatter

    def fmt(v, _pos):
        for scale, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if v >= scale:
                return f"{v / scale:g} {name}"
        return f"{v:g} B"

    return FuncFormatter(fmt)


def summary_table(results):
    """Metrics (rows) by run (columns), raw numbers: the table of ``demo`` and the widgets."""
    runs = _labelled(results)
    cols = {}
    for label, r in runs.items():
        s = r.summary
        cols[label] = [s.get(m, np.nan) for m in SUMMARY_METRICS]
    return pd.DataFrame(cols, index=pd.Index(list(SUMMARY_METRICS), name="metric"))


def to_markdown(table):
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    header = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(
        table.columns)) + "|"]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [str(v) for v in row]) + " |")
    return "\n".join(lines) + "\n"
