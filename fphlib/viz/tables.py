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
from dataclasses import dataclass, field

import pandas as pd

from . import plots

MINUS = "\u2212"
DASH = "–"
# id columns of per-guest / per-run frames, in order of preference: the table's column labels
ID_COLUMNS = ("guest", "run", "label", "mechanism")
_CSS = (
    "<style>.fphlib-table td{text-align:right;padding:1px 10px;font-variant-numeric:"
    "tabular-nums}.fphlib-table th{text-align:left;padding:1px 10px}"
    ".fphlib-notes{font-size:0.85em;color:#555;margin:2px 0 8px 0}</style>"
)


def _missing(value):
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_value(value, unit):
    """One value as text: bytes as GiB/MiB/KiB, seconds as s/ms/µs, counts with separators.

    Parameters
    ----------
    value : number, str or None
        NaN and None give "–".
    unit : {"bytes", "seconds", "count", "text"}
    """
    if _missing(value):
        return DASH
    if unit == "text" or isinstance(value, str):
        return str(value)
    v = float(value)
    sign = MINUS if v < 0 else ""
    a = abs(v)
    if unit == "bytes":
        for scale, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if a >= scale:
                x = a / scale
                digits = 2 if x < 10 else 1 if x < 100 else 0
                return f"{sign}{x:.{digits}f} {name}"
        return f"{sign}{a:.0f} B"
    if unit == "seconds":
        if a == 0:
            return "0 s"
        if a >= 100:
            return f"{sign}{a:,.0f} s"
        if a >= 1:
            return f"{sign}{a:.2f} s"
        if a >= 1e-3:
            return f"{sign}{a * 1e3:.3g} ms"
        return f"{sign}{a * 1e6:.3g} µs"
    if a == int(a) and a < 1e18:
        return f"{sign}{int(a):,}"
    return f"{sign}{a:,.3g}" if a < 1000 else f"{sign}{a:,.0f}"


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
    """A formatted table: ``frame`` (strings; metrics as rows) and its footnotes ``notes``.

    Displays as HTML in notebooks (``class="fphlib-table"``); ``str()`` gives plain text.
    """

    frame: pd.DataFrame
    notes: list = field(default_factory=list)

    def to_html(self, classes=()):
        """HTML of the table and its footnotes (for ``ipywidgets.HTML`` and notebooks);
        ``classes``: more CSS classes of the ``<table>``, besides ``fphlib-table``."""
        classes = ["fphlib-table", *([classes] if isinstance(classes, str) else classes)]
        table = self.frame.to_html(classes=classes, border=0, escape=True)
        notes = "".join(f"{html.escape(n)}<br>" for n in self.notes)
        return _CSS + table + (f'<p class="fphlib-notes">{notes}</p>' if notes else "")

    def _repr_html_(self):
        return self.to_html()

    def to_markdown(self):
        """GitHub-flavoured Markdown, footnotes below."""
        return plots.to_markdown(self.frame) + "".join(f"\n{n}\n" for n in self.notes)

    def __str__(self):
        return self.frame.to_string() + "".join(f"\n{n}" for n in self.notes)


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


def readable(data, baseline="none", metrics=None, index=None, drop_empty=True):
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
    if dashes:
        reasons = {}
        for m in dashes:
            reasons.setdefault(info[m].missing or "no value for this run", []).append(
                info[m].label)
        for reason, names in reasons.items():
            notes.append(f"{DASH} in {', '.join(names)}: {reason}.")
    return ReadableTable(table, notes)


def tracking_stats_table(stats):
    """``BuddyAllocator.tracking_stats`` (counters since the zone was made) as a small table."""
    rows = {}
    for key, value in stats.items():
        unit = "bytes" if key.endswith("bytes") else "count"
        label = TRACKING_LABELS.get(key, key.replace("_", " "))
        rows[label] = format_value(value, unit)
    frame = pd.DataFrame({"value": list(rows.values())}, index=pd.Index(list(rows), name=""))
    return ReadableTable(frame, [])


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
