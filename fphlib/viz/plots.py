"""Seaborn figures from SimResult frames and guest-side state.

Every function draws into the Axes (or Figure) it is given — clearing it first, so widgets can
redraw in place — or creates one with pyplot when none is given, and returns what it drew on.
Inputs are the public frames of :class:`fphlib.SimResult` (DESIGN §3.7) or plain arrays, so
the same functions serve the notebooks, the widgets and the CLI's ``demo``.
"""

import numpy as np
import pandas as pd
import seaborn as sns

GIB = float(1 << 30)
MIB = float(1 << 20)
PAGE_SIZE = 4096
N_ORDERS = 11

# Metric rows of the summary table, in display order, with the unit used to format them.
SUMMARY_METRICS = {
    "host_rss_peak_bytes": "bytes",
    "host_rss_mean_bytes": "bytes",
    "host_rss_final_bytes": "bytes",
    "reported_bytes": "bytes",
    "reports": "count",
    "vmexits": "count",
    "refault_pages": "count",
    "alloc_failures": "count",
    "lost_writes": "count",
    "guest_cpu_overhead_s": "seconds",
    "host_cpu_s": "seconds",
    "swap_out_bytes": "bytes",
    "oom_kills": "count",
    "workload_runtime_s": "seconds",
    "zone_lock_hold_s": "seconds",
    "events": "count",
    "wall_s": "seconds",
    "migration_time_s": "seconds",
    "migration_bytes": "bytes",
    "migration_rounds": "count",
    "downtime_s": "seconds",
    "migration_converged": "count",
    "migration_hinted_bytes": "bytes",
    "migration_unavailable_s": "seconds",
    "migration_unavailable_peak_bytes": "bytes",
}


def _new_axes(ax, figsize=(7.5, 4.0)):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    else:
        ax.clear()
    return ax


def _new_figure(fig, figsize):
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize, layout="constrained")
    else:
        fig.clear()
    return fig


def run_label(result):
    """Short label of a run: its mechanism, plus the hint order when it reports free pages."""
    cfg = result.config
    label = str(cfg.mechanism)
    from ..hinting import takes_hint_order

    if takes_hint_order(cfg.mechanism):
        label += f" (order {cfg.hint_order})"
    return label


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
        Name of the label column.
    """
    frames = []
    for label, r in _labelled(results).items():
        f = r.host.copy()
        f[hue] = label
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def plot_host_rss(data, ax=None, hue="run", host_mem=None, title="Host RSS over time"):
    """Host RSS (GiB) against time, one line per run.

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

    Returns
    -------
    matplotlib.axes.Axes
    """
    if not isinstance(data, pd.DataFrame):
        runs = _labelled(data)
        if host_mem is None and runs:
            from ..units import parse_size

            host_mem = parse_size(next(iter(runs.values())).config.host_mem, "host_mem")
        data = host_frame(runs, hue=hue)
    ax = _new_axes(ax)
    frame = data.assign(rss_gib=data["rss_bytes"] / GIB)
    # style as well as colour: runs that coincide (e.g. none and balloon) stay visible
    sns.lineplot(frame, x="t_s", y="rss_gib", hue=hue, style=hue, ax=ax, linewidth=1.6)
    if host_mem:
        ax.axhline(host_mem / GIB, color="0.3", linestyle="--", linewidth=1)
        ax.annotate("host RAM", (0.01, host_mem / GIB), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8, color="0.3")
    ax.set(xlabel="time (s)", ylabel="host RSS (GiB)", title=title)
    ax.set_ylim(bottom=0)
    if ax.get_legend() is not None:  # outside the axes: it never hides a curve
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return ax


GUEST_SERIES = {
    "used_bytes": "used by the guest",
    "free_bytes": "free in the guest",
    "reported_bytes": "reported (discarded by host)",
    "rss_bytes": "backed by the host (RSS)",
    "balloon_bytes": "in the balloon",
}


def guest_frame(result):
    """Long-form per-guest memory: columns t_s, guest, series, gib."""
    g = result.guests if hasattr(result, "guests") else result
    cols = [c for c in GUEST_SERIES if c in g.columns]
    if "balloon_bytes" in cols and not g["balloon_bytes"].any():
        cols.remove("balloon_bytes")  # only balloon runs have a balloon
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
        Panels to draw (the first guests); a 64-guest host would be unreadable.

    Returns
    -------
    matplotlib.figure.Figure
    """
    long = guest_frame(result)
    guests = sorted(long["guest"].unique())[:max_guests]
    n = max(len(guests), 1)
    fig = _new_figure(fig, figsize=(3.6 * n + 1.5, 3.4))
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True, squeeze=False)[0])
    order = [s for s in GUEST_SERIES.values() if s in set(long["series"])]
    for i, (ax, guest) in enumerate(zip(axes, guests, strict=False)):
        sub = long[long["guest"] == guest]
        sns.lineplot(sub, x="t_s", y="gib", hue="series", hue_order=order, ax=ax,
                     legend=i == n - 1, linewidth=1.4)
        ax.set(title=f"guest {guest}", xlabel="time (s)", ylabel="GiB")
        ax.set_ylim(bottom=0)
    if n and axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), title=None,
                        frameon=False, fontsize=8)
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
    ax = _new_axes(ax, figsize=(6.5, 3.4))
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
    from ..guest.fragmentation import fragmentation_index, unusable_index

    nr_free = np.asarray(nr_free, dtype=np.int64)
    rows = []
    for order in range(len(nr_free)):
        frag = fragmentation_index(nr_free, order)
        rows.append((order, "fragmentation index", np.nan if frag < 0 else frag / 1000))
        rows.append((order, "unusable free space index", unusable_index(nr_free, order) / 1000))
    return pd.DataFrame(rows, columns=["order", "index", "value"])


def plot_fragmentation(nr_free, ax=None, title="Fragmentation per order"):
    """Fragmentation index and unusable free space index per order (kernel arithmetic)."""
    ax = _new_axes(ax, figsize=(6.5, 3.4))
    frame = fragmentation_frame(nr_free)
    sns.lineplot(frame, x="order", y="value", hue="index", marker="o", ax=ax)
    ax.set(xlabel="order", ylabel="index (0..1)", title=title, ylim=(-0.05, 1.05),
           xticks=range(len(np.asarray(nr_free))))
    sns.move_legend(ax, "upper left", title=None, fontsize=8)
    return ax


def plot_bitmap_memory(frame, ax=None, x="used_fraction", title="Tracking memory"):
    """Bytes each structure needs to track free pages, as the guest fills.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long-form with columns ``x``, ``structure`` and ``bytes`` (see
        :func:`fphlib.viz.tour.tracking_memory`).
    """
    ax = _new_axes(ax, figsize=(6.5, 3.6))
    data = frame.assign(kib=frame["bytes"] / 1024)
    sns.lineplot(data, x=x, y="kib", hue="structure", style="structure", markers=True, ax=ax)
    ax.set(xlabel="fraction of guest memory allocated" if x == "used_fraction" else x,
           ylabel="KiB", title=title)
    ax.set_ylim(bottom=0)
    sns.move_legend(ax, "best", title=None, fontsize=8)
    return ax


def summary_table(results):
    """Metrics (rows) by run (columns), raw numbers: the table of ``demo`` and the widgets."""
    runs = _labelled(results)
    cols = {}
    for label, r in runs.items():
        s = r.summary
        cols[label] = [s.get(m, np.nan) for m in SUMMARY_METRICS]
    return pd.DataFrame(cols, index=pd.Index(list(SUMMARY_METRICS), name="metric"))


def _fmt(value, unit):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if unit == "bytes":
        return f"{value / GIB:.3f} GiB" if abs(value) >= MIB else f"{int(value)} B"
    if unit == "seconds":
        return f"{value:.4g} s"
    return f"{int(value):,}"


def format_summary(table):
    """A copy of :func:`summary_table` with units (GiB, s, thousands separators) as strings."""
    out = table.astype(object).copy()
    for metric in table.index:
        unit = SUMMARY_METRICS.get(metric, "count")
        out.loc[metric] = [_fmt(v, unit) for v in table.loc[metric]]
    return out


def to_markdown(table):
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    header = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(
        table.columns)) + "|"]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [str(v) for v in row]) + " |")
    return "\n".join(lines) + "\n"
