"""Readable tables of run metrics for people: labels, GiB/MiB, separators, change vs a baseline.

:func:`readable` turns a run summary (``SimResult.summary``, a ``{label: SimResult}`` dict,
:func:`fphlib.viz.plots.summary_table`) or a per-guest / per-run frame (``SimResult.guest_summary``,
a comparison or sweep frame: one row per guest or run, one column per metric) into a
:class:`ReadableTable`: one row per metric, labelled from :data:`fphlib.viz.plots.SUMMARY_METRICS`
and :data:`fphlib.viz.plots.GUEST_METRICS` (the one home of labels and units), one column per run
or guest, a "vs none" change column when the baseline run is there, and a footnote for every
"–" (no value). Every notebook shows its metrics through it.
"""

import html
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..api.result import SUMMARY_METRICS
from ..sweep.summary import seed_summary
from . import plots

MINUS = "\u2212"
DASH = "–"
# id columns of per-guest / per-run frames, in order of preference: the table's column labels
ID_COLUMNS = ("guest", "run", "label", "mechanism")
_CSS = (
    "<style>.fphlib-table td{text-align:right;padding:1px 10px;font-variant-numeric:"
    "tabular-nums}.fphlib-table th{text-align:left;padding:1px 10px}"
    ".fphlib-notes{font-size:0.85em;color:#555;margin:2px 0 8px 0}"
    ".fphlib-table caption{caption-side:top;text-align:left;font-weight:bold;padding:2px 10px}"
    "</style>"
)


def _missing(value):
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# values of these units are already scaled: shown as seconds and bytes
_SCALED = {"ms": ("seconds", 1e-3), "gib": ("bytes", float(1 << 30)),
           "mib": ("bytes", float(1 << 20))}


def _digits(a, significant=3):
    """``a`` (>= 0) with ``significant`` digits, never in scientific notation."""
    if a >= 1000:
        return f"{a:,.0f}"
    if a == 0:
        return "0"
    text = np.format_float_positional(a, precision=significant, unique=False,
                                      fractional=False, trim="-")
    return text.rstrip(".")


def format_value(value, unit):
    """One value as text: bytes as GiB/MiB/KiB, seconds as s/ms/µs, counts with separators;
    never in scientific notation.

    Parameters
    ----------
    value : number, str or None
        NaN and None give "–".
    unit : {"bytes", "seconds", "count", "ratio", "text", "ms", "gib", "mib"}
        ``ratio``: a plain number (3 significant digits); ``ms``, ``gib``, ``mib``: a value
        already scaled, shown as seconds or bytes.
    """
    if _missing(value):
        return DASH
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if unit == "text" or isinstance(value, str):
        return str(value)
    v = float(value)
    if unit in _SCALED:
        unit, scale = _SCALED[unit]
        v *= scale
    if math.isinf(v):
        return "∞" if v > 0 else f"{MINUS}∞"
    sign = MINUS if v < 0 else ""
    a = abs(v)
    if unit == "bytes":
        for scale, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if a >= scale:
                x = a / scale
                digits = 2 if x < 10 else 1 if x < 100 else 0
                return f"{sign}{x:,.{digits}f} {name}"
        return f"{sign}{a:.0f} B"
    if unit == "seconds":
        if a == 0:
            return "0 s"
        if a >= 100:
            return f"{sign}{a:,.0f} s"
        if a >= 1:
            return f"{sign}{a:.2f} s"
        if a >= 1e-3:
            return f"{sign}{_digits(a * 1e3)} ms"
        return f"{sign}{_digits(a * 1e6)} µs"
    if unit == "ratio":
        return f"{sign}{a:.2f}" if a >= 0.01 or a == 0 else f"{sign}{_digits(a)}"
    if a == int(a) and a < 1e18:
        return f"{sign}{int(a):,}"
    return f"{sign}{_digits(a)}"


def format_change(value, base, unit):
    """The change from ``base`` to ``value``: signed difference, and percent when base ≠ 0."""
    if unit == "text" or _missing(value) or _missing(base):
        return DASH if unit != "text" else ""
    d = float(value) - float(base)
    if d == 0:
        return "same"
    text = ("+" if d > 0 else "") + format_value(d, unit)
    if float(base) != 0:
        pct = d / abs(float(base))
        digits = 0 if abs(pct) >= 0.01 else 1 if abs(pct) >= 0.001 else 2
        text += f" ({'+' if pct > 0 else MINUS}{abs(pct):.{digits}%})".replace("%", " %")
    return text


@dataclass
class ReadableTable:
    """A formatted table: ``frame`` (strings), its ``caption`` (what the table shows: the
    scenario, mechanism and policy) and its footnotes ``notes``.

    Displays as HTML in notebooks (``class="fphlib-table"``); ``str()`` gives plain text.
    """

    frame: pd.DataFrame
    notes: list = field(default_factory=list)
    caption: str = ""

    def to_html(self, classes=()):
        """HTML of the caption, the table and its footnotes (for ``ipywidgets.HTML`` and
        notebooks); ``classes``: more CSS classes of the ``<table>``, besides ``fphlib-table``."""
        classes = ["fphlib-table", *([classes] if isinstance(classes, str) else classes)]
        table = self.frame.to_html(classes=classes, border=0, escape=True)
        if self.caption:
            table = table.replace(">", f'>\n  <caption class="fphlib-caption">'
                                       f"{html.escape(self.caption)}</caption>", 1)
        notes = "".join(f"{html.escape(n)}<br>" for n in self.notes)
        return _CSS + table + (f'<p class="fphlib-notes">{notes}</p>' if notes else "")

    def _repr_html_(self):
        return self.to_html()

    def to_markdown(self):
        """GitHub-flavoured Markdown, caption above, footnotes below."""
        head = f"**{self.caption}**\n\n" if self.caption else ""
        return head + plots.to_markdown(self.frame) + "".join(f"\n{n}\n" for n in self.notes)

    def __str__(self):
        head = f"{self.caption}\n" if self.caption else ""
        with pd.option_context("display.max_colwidth", None, "display.width", 200):
            body = self.frame.to_string()
        return head + body + "".join(f"\n{n}" for n in self.notes)


def _is_metric(name):
    return str(name) in plots.SUMMARY_METRICS or str(name) in plots.GUEST_METRICS


def metric_frame(data, index=None):
    """``data`` as a numeric frame with metric names as rows and runs/guests as columns.

    Returns ``(frame, per_guest)``. See :func:`readable` for the accepted inputs.
    """
    if isinstance(data, dict) or isinstance(data, list | tuple):
        return plots.summary_table(data), False
    if hasattr(data, "summary") and hasattr(data, "config"):  # a SimResult
        return data.summary.to_frame(plots.run_label(data)), False
    if isinstance(data, pd.Series):
        return data.to_frame(data.name if data.name is not None else "value"), False
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data: expected a SimResult, a dict of them, a Series or a DataFrame, "
                         f"got {type(data).__name__}")
    known_rows = sum(_is_metric(i) for i in data.index)
    if data.index.name == "metric" or known_rows > len(data.index) / 2:
        return data, False
    per_guest = "guest" in data.columns
    frame = data
    key = index or next((c for c in ID_COLUMNS if c in data.columns), None)
    if isinstance(key, list | tuple):  # several id columns: their values, formatted, joined
        labels = [", ".join(v for v in (format_value(row[c], plots.metric_info(c).unit)
                                        for c in key) if v and v != DASH)
                  for _, row in data.iterrows()]
        frame = data.drop(columns=list(key))
        frame.index = pd.Index(labels)
    elif key is not None:
        ids = data[key]
        labels = [f"guest {g}" for g in ids] if key == "guest" else [str(x) for x in ids]
        frame = data.drop(columns=[key])
        frame.index = pd.Index(labels)
    frame = frame.T
    frame.index.name = "metric"
    return frame, per_guest


def readable(data, baseline="none", metrics=None, index=None, drop_empty=True, caption=""):
    """A readable table of run metrics: labels, units, a change column, footnotes.

    Parameters
    ----------
    data : SimResult, dict of label -> SimResult, pandas.Series or pandas.DataFrame
        A run (its summary), several runs (their summaries side by side), a summary-like frame
        (metric names as rows, e.g. :func:`fphlib.viz.plots.summary_table`), or a frame with one
        row per guest or run and metric names as columns (``SimResult.guest_summary``, a sweep).
    baseline : str or None
        Column to compare the others with (default ``"none"``, the run without hinting): with
        one other column a "vs none" column is added, with several each value gets the change
        in parentheses. ``None`` or a missing column: no change shown.
    metrics : sequence of str, optional
        Metric names to show, in this order (default: all).
    index : str or list of str, optional
        Column(s) of a per-guest/per-run frame naming the table's columns (default: the first
        of ``guest``, ``run``, ``label``, ``mechanism`` present; several: values joined).
    drop_empty : bool
        Leave out metrics without a value in any column (named in a footnote).
    caption : str
        What the table shows (the scenario, mechanism and policy), above it.

    Returns
    -------
    ReadableTable
    """
    frame, per_guest = metric_frame(data, index)
    if metrics is not None:
        unknown = [m for m in metrics if m not in frame.index]
        if unknown:
            raise ValueError(f"metrics: {unknown!r} not in the table; it has {list(frame.index)}")
        frame = frame.loc[list(metrics)]
    info = {m: plots.metric_info(m, per_guest=per_guest) for m in frame.index}
    notes = []
    if drop_empty:
        empty = [m for m in frame.index if all(_missing(v) for v in frame.loc[m])]
        if empty and len(empty) < len(frame.index):
            frame = frame.drop(index=empty)
            by_reason = {}
            for m in empty:
                by_reason.setdefault(info[m].missing, []).append(info[m].label)
            for reason, labels in by_reason.items():
                what = ", ".join(labels) if len(labels) <= 3 else f"{len(labels)} metrics"
                notes.append(f"Not shown, without a value in any column: {what}"
                             + (f" ({reason})." if reason else "."))
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    base = baseline if baseline in columns and len(columns) > 1 else None
    others = [c for c in columns if c != base]
    out = {}
    for c in columns:
        cells = [format_value(frame.at[m, c], info[m].unit) for m in frame.index]
        if base is not None and c != base and len(others) > 1:
            cells = [
                cell if info[m].unit == "text" or _missing(frame.at[m, c])
                else f"{cell} ({format_change(frame.at[m, c], frame.at[m, base], info[m].unit)})"
                for cell, m in zip(cells, frame.index, strict=True)
            ]
        out[c] = cells
    if base is not None and len(others) == 1:
        other = others[0]
        out[f"vs {base}"] = [format_change(frame.at[m, other], frame.at[m, base], info[m].unit)
                             for m in frame.index]
        what = "none, the run without hinting" if base == "none" else base
        notes.insert(0, f"vs {base}: {other} minus {what}; in parentheses the change in percent.")
    elif base is not None:
        notes.insert(0, f"In parentheses: the change from {base} (difference, percent).")
    labels = [info[m].label for m in frame.index]
    table = pd.DataFrame(out, index=pd.Index(labels))
    dashes = [m for m in frame.index
              if any(_missing(frame.at[m, c]) for c in columns) and info[m].unit != "text"]
    notes += _dash_notes(dashes, info, "no value for this run")
    return ReadableTable(table, notes, caption)


def _dash_notes(names, info, default):
    """Footnotes saying what "–" means in the metrics ``names`` (grouped by reason)."""
    reasons = {}
    for m in names:
        reasons.setdefault(info[m].missing or default, []).append(info[m].label)
    return [f"{DASH} in {', '.join(labels)}: {reason}." for reason, labels in reasons.items()]


def readable_rows(frame, columns=None, index=None, caption="", notes=()):
    """A readable table with one row per run, guest or grid point and one column per metric
    (long tables: a grid, a sequence); headers and units from the metric home
    (:func:`fphlib.viz.plots.metric_info`).

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per item, metric names (or frame columns of
        :data:`fphlib.viz.plots.FRAME_COLUMNS`) as columns.
    columns : sequence of str, optional
        Columns to show, in this order (default: all but ``index``).
    index : str or list of str, optional
        Column(s) naming the rows (shown as the row labels, formatted in their units).
    caption : str
        What the table shows (the scenario, mechanism and policy), above it.
    notes : sequence of str
        Footnotes before the generated ones (what "–" means).

    Returns
    -------
    ReadableTable
    """
    keys = [] if index is None else [index] if isinstance(index, str) else list(index)
    shown = [c for c in (frame.columns if columns is None else columns) if c not in keys]
    unknown = [c for c in [*keys, *shown] if c not in frame.columns]
    if unknown:
        raise ValueError(f"columns: {unknown!r} not in the frame; it has {list(frame.columns)}")
    info = {c: plots.metric_info(c, per_guest="guest" in frame.columns)
            for c in [*keys, *shown]}
    out = pd.DataFrame({info[c].label: [format_value(v, info[c].unit) for v in frame[c]]
                        for c in shown})
    if keys:
        rows = [[format_value(v, info[k].unit) for v in frame[k]] for k in keys]
        if len(keys) == 1:
            out.index = pd.Index(rows[0], name=info[keys[0]].label)
        else:
            out.index = pd.MultiIndex.from_arrays(rows, names=[info[k].label for k in keys])
    dashes = [c for c in shown if info[c].unit != "text" and frame[c].map(_missing).any()]
    return ReadableTable(out, [*notes, *_dash_notes(dashes, info, "no value")], caption)


def readable_seed_summary(summary, caption="", points="columns"):
    """A :func:`fphlib.sweep.summary.seed_summary` frame for people: one column per grid
    point (named by its keys), one row per metric, "mean ± half-width of the 95 % interval"
    in the metric's unit; ``points="rows"``: one row per grid point instead (many points)."""
    metrics = [c for c in summary.columns if f"{c}_ci95" in summary.columns]
    keys = [c for c in summary.columns
            if c not in metrics and not c.endswith("_ci95") and c != "seeds"]
    info = {c: plots.metric_info(c) for c in [*keys, *metrics]}
    points_as = points
    points = [", ".join(f"{info[k].label} {format_value(row[k], info[k].unit)}" for k in keys)
              or "all runs" for _, row in summary.iterrows()]
    rows = {"seeds": [str(int(n)) for n in summary["seeds"]]}
    for m in metrics:
        unit = info[m].unit
        rows[info[m].label] = [
            format_value(v, unit) + ("" if _missing(ci) or _missing(v)
                                     else f" ± {format_value(ci, unit)}")
            for v, ci in zip(summary[m], summary[f"{m}_ci95"], strict=True)]
    out = pd.DataFrame(rows, index=pd.Index(points))
    if points_as == "columns":
        out = out.T
    notes = ["mean over the seeds ± half-width of its 95 % confidence interval (Student's t); "
             "no ± with one seed."]
    dashes = [m for m in metrics if summary[m].map(_missing).any()]
    return ReadableTable(out, notes + _dash_notes(dashes, info, "no value"), caption)


def readable_replicates(results, caption="", metrics=None, key="run"):
    """The summary of ``{label: SimResult}`` whose labels may mark replicate seeds
    (:data:`fphlib.viz.plots.SEED_MARK`): one seed per run gives :func:`readable` (the change
    against ``none``); several give, per run, the mean ± half-width of the 95 % interval over
    its seeds (:func:`fphlib.sweep.summary.seed_summary`, :func:`readable_seed_summary`).

    Parameters
    ----------
    results : dict
        ``{label: SimResult}``; replicate r > 0 of run ``L`` is labelled ``L · seed #r``.
    caption : str
    metrics : sequence of str, optional
        Summary metrics to show, in this order (default: all of
        ``fphlib.api.result.SUMMARY_METRICS``).
    key : str
        What the runs are (``"run"``, ``"mechanism"``): the name of the table's point labels.

    Returns
    -------
    ReadableTable
    """
    if all(len(runs) == 1 for runs in plots.seed_groups(results).values()):
        return readable(results, metrics=metrics, caption=caption)
    runs = pd.DataFrame([{key: plots.run_name(label), **res.summary}
                         for label, res in results.items()])
    summary = seed_summary(runs, keys=[key],
                           metrics=list(SUMMARY_METRICS if metrics is None else metrics))
    return readable_seed_summary(summary, caption=caption)


_RST = (
    (re.compile(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`"), r"\1"),  # :func:`x`, :mod:`x <y>`
    (re.compile(r"``([^`]*)``"), r"\1"),  # ``literal``
    (re.compile(r"`([^`<]*?)(?:\s*<[^>]*>)?`_{0,2}"), r"\1"),  # `link <url>`_ and `x`
    (re.compile(r"\*\*([^*]+)\*\*"), r"\1"),  # **strong**
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"\1"),  # *emphasis*
)


def plain_text(text):
    """reStructuredText of a docstring as plain text for a table cell: roles, literals, links
    and emphasis without their markup, whitespace on one line."""
    text = " ".join(str(text).split())
    for pattern, repl in _RST:
        text = pattern.sub(repl, text)
    return text


PERCENTILES = (50, 90, 99)


def guest_spread(results):
    """The spread over the guests of each run and its exits by cause: the p50/p90/p99 of the
    guests' workload stall and runtime (runtime over the guests that finished; with a few
    guests p99 is close to the worst), and VM exits split into virtqueue kicks and EPT faults
    (the two causes the model counts: ``vmexits`` = kicks + ``faults``), and the host THPs
    split (``thp_splits``: a discard of part of a THP, hints below order 9, or a swap-out
    per 4 KiB).

    Parameters
    ----------
    results : dict of label -> SimResult

    Returns
    -------
    pandas.DataFrame
        Metric names (:data:`fphlib.viz.plots.FRAME_COLUMNS`) as rows, one column per run;
        give it to :func:`readable`.
    """
    out = {}
    for label, res in results.items():
        gs = res.guest_summary
        col = {}
        for name, series in (("workload_stall", gs["workload_stall_s"]),
                             ("workload_runtime", gs["workload_runtime_s"])):
            values = series.to_numpy(dtype=float)
            values = values[~np.isnan(values)]
            for p in PERCENTILES:
                col[f"{name}_p{p}_s"] = (float(np.percentile(values, p)) if len(values)
                                         else np.nan)
        col["kick_exits"] = float(gs["vmexits"].sum() - gs["faults"].sum())
        col["fault_exits"] = float(gs["faults"].sum())
        # results saved before the counter have no column (NaN: not recorded)
        col["thp_splits"] = float(gs["thp_splits"].sum()) if "thp_splits" in gs else np.nan
        out[label] = col
    frame = pd.DataFrame(out)
    frame.index.name = "metric"
    return frame


def tracking_stats_table(stats):
    """``BuddyAllocator.tracking_stats`` (counters since the zone was made) as a small table:
    the counters that moved (the ones at 0 named in a footnote)."""
    rows, zero = {}, []
    for key, value in stats.items():
        unit = "bytes" if key.endswith("bytes") else "count"
        label = TRACKING_LABELS.get(key, key.replace("_", " "))
        if value == 0 and key not in ("failed", "nbytes"):
            zero.append(label)
            continue
        rows[label] = format_value(value, unit)
    frame = pd.DataFrame({"value": list(rows.values())}, index=pd.Index(list(rows), name=""))
    notes = [f"At 0, not shown: {', '.join(zero)}."] if zero else []
    return ReadableTable(frame, notes)


# BuddyAllocator.tracking_stats keys (fphlib.guest.xbitmap.COUNTERS, "ops", "nbytes")
TRACKING_LABELS = {
    "nbytes": "memory of the structure now",
    "ops": "bitmap operations (blocks entering or leaving a free list)",
    "set_bit": "set_bit",
    "clear_bit": "clear_bit",
    "test_bit": "test_bit",
    "find": "find_set / find_zero",
    "zero": "zero (range)",
    "fill": "fill (range)",
    "leaf_allocs": "leaf kmallocs (128 B each)",
    "leaf_frees": "leaf kfrees",
    "node_allocs": "radix node kmallocs (576 B each)",
    "node_frees": "radix node kfrees",
    "preload_calls": "xb_preload calls",
    "preload_allocs": "xb_preload kmallocs",
    "nomem": "sets without a preloaded leaf (-ENOMEM)",
    "failed": "tracking updates lost (pool exhausted; must be 0)",
}
