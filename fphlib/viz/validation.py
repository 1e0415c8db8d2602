"""The validation table and figure (notebook 06): published results against the model.

- :func:`readable`: a :func:`fphlib.validation.table` frame for people (published, fphlib,
  accepted interval, verdict), as a :class:`fphlib.viz.tables.ReadableTable`.
- :func:`plot_validation`: every record on one log axis, as a ratio to its published value:
  the published range (black), the interval the tolerance rule accepts (shaded), fphlib's
  value (green when it passes, red when it fails, hollow when the run was not comparable).
- :class:`ValidationApp`: pick results, quick or full sizes, Run; table and figure redraw.
- :data:`PROFILE_CASES`: which cases each ``FPHLIB_PROFILE`` runs, at which size.
- :func:`show`: a (pyplot-free) Figure as a notebook image.

The live records (notebook 07, :mod:`fphlib.observe` recordings of this machine's kernel):

- :func:`plot_drain`: a drain's reported bytes over time, recorded against the model;
- :func:`plot_buddyinfo`: free memory per order over time, recorded against the replayed
  trace (:func:`fphlib.validation.fragmentation_frame`);
- :func:`plot_first_touch`: seconds per GiB of each touch case, with the model's refault
  costs;
- :func:`recordings`: the recordings in a directory (``data/real``) as a table;
- :class:`LiveApp`: pick a recording; its figure and its records redraw.
"""

import math

import numpy as np
import pandas as pd

from .. import validation as V
from ..costs import DEFAULTS
from ..experiments.scenarios import profile_name
from ..units import PAGE_SIZE
from ..validation import REAL_DIR, RULES
from .figures import app_figure, figure_png
from .policies import show  # noqa: F401  (a notebook-displayable PNG of a Figure)
from .tables import ReadableTable, format_value
from .widgets import STALE_CSS, StaleMarker, computing, fit_layout

PASS, FAIL = "#2a9d3f", "#c0392b"

# FPHLIB_PROFILE -> (case ids or prefixes, quick): smoke and demo run every case at small
# sizes (seconds, and within Binder's memory), full the published sizes (a minute or two;
# the 128 GiB guests need ~0.4 GB of simulator state, the admission runs ~0.6 GB)
PROFILE_CASES = {
    "smoke": (None, True),
    "demo": (None, True),
    "full": (None, False),
}


# a record's unit -> (unit of fphlib.viz.tables.format_value, scale to it, suffix): every
# value through the one formatter (no scientific notation); any other unit: a count and it
UNIT_FORMATS = {"guests": ("count", 1.0, ""), "%": ("count", 1.0, " %"),
                "pp": ("count", 1.0, " pp"), "‰": ("count", 1.0, " ‰"),
                "s": ("seconds", 1.0, ""), "ms": ("seconds", 1e-3, ""),
                "µs": ("seconds", 1e-6, ""), "MiB": ("mib", 1.0, "")}


def _num(value, unit):
    if value != value:
        return "–"
    kind, scale, suffix = UNIT_FORMATS.get(unit, ("count", 1.0, f" {unit}"))
    return format_value(value * scale, kind) + suffix


def _range(low, high, unit):
    if low != low or high != high:
        return "–"
    return _num(low, unit) if low == high else f"{_num(low, unit)} – {_num(high, unit)}"


def _shown_value(row):
    extra = row["extra"] if isinstance(row["extra"], dict) else {}
    text = ("≥ " if extra.get("capped") else "") + _num(row["value"], row["unit"])
    if "passes" in extra:
        text += f" ({extra['passes']} passes)"
    if extra.get("migration_converged") == 0:
        text += " (did not converge)"
    return text


def readable(df, caption=""):
    """The table of :func:`fphlib.validation.table` for people (``caption``: what it shows).

    One row per result (§ of docs/references.md, experiment, case): published
    value or range, fphlib's value (``≥ n`` when an admission run never failed), the interval
    the rule accepts, and the verdict (``not comparable`` for quick runs). Footnotes: the
    rules and the notes of each experiment.
    """

    rows = []
    for _, r in df.iterrows():
        verdict = r["verdict"]
        rows.append({
            "published": _range(r["published_low"], r["published_high"], r["unit"]),
            "fphlib": _shown_value(r),
            "accepted": f"{_range(r['accept_low'], r['accept_high'], r['unit'])}",
            "rule": r["rule"],
            "verdict": verdict,
        })
    labels = [f"{r} {n.replace('_', ' ')}: {c}"
              for r, n, c in zip(df["result"], df["name"], df["case"], strict=True)]
    frame = pd.DataFrame(rows, index=pd.Index(labels, name="result"))
    units = dict(zip(df["rule"], df["unit"], strict=True))
    notes = [f"{name}: {rule.text(units[name])} ({rule.why})." for name, rule in RULES.items()
             if name in units]
    for name in dict.fromkeys(df["name"]):
        cases = df[df["name"] == name]
        # the notes' distinct parts, in order (cases share most of theirs)
        shown = dict.fromkeys(part for n in cases["note"]
                              for part in n.split("; fails: ")[0].split("; "))
        notes.append(f"{name.replace('_', ' ')}: {'; '.join(shown)}.")
        for case, n in zip(cases["case"], cases["note"], strict=True):
            if "; fails: " in n:
                notes.append(f"{case}: fails: {n.split('; fails: ')[1]}.")
    return ReadableTable(frame, notes, caption)


def differences(df, caption=""):
    """Where the model and the published results part, measured now: the records of ``df``
    (:func:`fphlib.validation.table`) that fail or have no verdict, with fphlib's value as a
    multiple of the published one (geometric mean of a range); ``caption``: what ran."""
    rows = []
    for _, r in df.iterrows():
        if r["verdict"] == "pass":
            continue
        ref = _ref(r)
        times = r["value"] / ref if ref == ref and r["value"] == r["value"] else math.nan
        rows.append({
            "result": f"{r['result']} {r['name'].replace('_', ' ')}: {r['case']}",
            "verdict": r["verdict"],
            "published": _range(r["published_low"], r["published_high"], r["unit"]),
            "fphlib": _shown_value(r),
            "x published": format_value(times, "ratio"),
        })
    frame = pd.DataFrame(rows, columns=["result", "verdict", "published", "fphlib",
                                        "x published"]).set_index("result")
    notes = [] if rows else ["every record passes"]
    return ReadableTable(frame, notes, caption)


def _ref(row):
    """The published reference of a row: the geometric mean of its range (NaN unless > 0:
    a row without a positive reference has no place on the ratio axis)."""
    low, high = row["published_low"], row["published_high"]
    return math.sqrt(low * high) if low > 0 and high > 0 else math.nan


def plot_validation(df, ax=None, title="Published results vs fphlib"):
    """Each record as a ratio to its published value, on one log axis.

    Black bar or tick: the published range or value; shaded: what the rule accepts (axis
    from 1/16 to 16 of the published value); dot: fphlib (green pass,
    red fail; hollow when not comparable; an arrow when the value is a lower bound or off the
    axis). Labels name the result and case, and the values in their own units.

    Returns
    -------
    matplotlib.axes.Axes
    """
    n = len(df)
    if ax is None:
        ax = app_figure((10, 0.42 * n + 1.4)).subplots()
    else:
        ax.clear()
    lo_lim, hi_lim = 1 / 16, 16.0
    labels = []
    for i, (_, r) in enumerate(df.iterrows()):
        y = n - 1 - i
        ref = _ref(r)
        labels.append(f"{r['result']} {r['name'].replace('_', ' ')}: {r['case']}")
        published = _range(r["published_low"], r["published_high"], r["unit"])
        ax.text(hi_lim * 1.25, y, f"{_shown_value(r)} vs {published}", va="center",
                fontsize=8)
        if ref != ref:  # no positive published value (a missing recording, an index of 0)
            ax.text(lo_lim * 1.1, y, "no ratio: see the table", va="center", fontsize=8,
                    color=PASS if r["passed"] else FAIL)
            continue
        a_lo, a_hi = r["accept_low"] / ref, r["accept_high"] / ref
        ax.barh(y, max(a_hi, lo_lim) - max(a_lo, lo_lim), left=max(a_lo, lo_lim), height=0.6,
                color="#dfe7ef", edgecolor="#9fb3c8", linewidth=0.6, zorder=1)
        p_lo, p_hi = r["published_low"] / ref, r["published_high"] / ref
        if p_hi > p_lo:
            ax.plot([p_lo, p_hi], [y, y], color="black", linewidth=4, solid_capstyle="butt",
                    zorder=2)
        else:  # a published point: a tick
            ax.scatter([p_lo], [y], marker="|", s=260, color="black", linewidth=2.5, zorder=2)
        v = r["value"] / ref if r["value"] == r["value"] else math.nan
        color = PASS if r["passed"] else FAIL
        face = color if r["comparable"] else "white"
        extra = r["extra"] if isinstance(r["extra"], dict) else {}
        if v != v:
            ax.text(lo_lim * 1.1, y, "no value", va="center", fontsize=8, color=FAIL)
        else:
            x = min(max(v, lo_lim), hi_lim)
            marker = "o"
            if v < lo_lim:
                marker = "<"
            elif v > hi_lim or extra.get("capped"):
                marker = ">"
            ax.scatter([x], [y], s=60, marker=marker, facecolor=face, edgecolor=color,
                       linewidth=1.5, zorder=3)
    ax.set_xscale("log")
    ax.set_xlim(lo_lim, hi_lim)
    ax.set_yticks(range(n)[::-1] if n else [])
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.axvline(1.0, color="#888", linewidth=0.8, linestyle=":")
    ax.set_xticks([1 / 16, 1 / 4, 1 / 2, 1, 2, 4, 16])
    ax.set_xticklabels(["1/16", "1/4", "1/2", "1", "2", "4", "16"])
    ax.set_xlabel("fphlib / published (log); shaded: accepted by the rule; "
                  "filled: comparable run, hollow: quick size")
    ax.set_title(title)
    return ax


class ValidationApp:
    """Pick published results, quick or full sizes; Run; see the table and the figure.

    Parameters
    ----------
    profile : {"smoke", "demo", "full"}, optional
        Which results are preselected and at which size (:data:`PROFILE_CASES`).

    Attributes
    ----------
    df : pandas.DataFrame
        :func:`fphlib.validation.table` of the last run.
    """

    def __init__(self, profile=None):
        import ipywidgets as W

        self.profile = profile_name(profile)
        which, quick = PROFILE_CASES[self.profile]
        ids = V.select(None)
        self.df = V.to_frame([])
        self.cases = W.SelectMultiple(options=ids, value=tuple(V.select(which)),
                                      rows=min(len(ids), 8), description="results",
                                      layout=W.Layout(width="420px"),
                                      tooltip="published results to run (ctrl/shift-click)")
        self.quick = W.Checkbox(value=quick, description="quick (small sizes, not comparable)",
                                indent=False)
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress")
        self.status = W.HTML(value=f"<i>{self.profile} profile: press Run</i>")
        self.image = W.Image(format="png", layout=fit_layout())
        self.table = W.HTML(value="")
        self.parts = W.HTML(value="")  # differences(df): where model and published part
        self.run_button.on_click(self.run)
        self._fig = app_figure((10, 5))
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        controls = W.HBox([self.cases, W.VBox([self.quick, self.run_button])], layout=wrap)
        self.caption = ""
        self.stale_marker = StaleMarker(controls, (self.image, self.table, self.parts))
        self.widget = W.VBox([
            W.HTML(STALE_CSS), controls,
            W.HBox([self.progress, self.status], layout=wrap),
            self.stale_marker.banner, self.table, self.image, self.parts,
        ])
        self.widget.add_class("fphlib-app")

    def run(self, _button=None):
        """Run the selected results one by one, then redraw."""

        ids = list(self.cases.value)
        if not ids:
            self.status.value = "<b>select at least one result</b>"
            return self.df
        ran_with = self.stale_marker.values()
        with computing(self, (self.image, self.table)):
            self.progress.max, self.progress.value = len(ids), 0
            self.progress.bar_style = "info"
            records = []
            for c in ids:
                self.status.value = f"running <b>{c}</b> …"
                records.append(V.run(c, quick=self.quick.value))
                self.progress.value += 1
            self.df = V.to_frame(records, ids)
            size = "quick sizes" if self.quick.value else "published sizes"
            self.caption = f"{len(ids)} published result(s), {size} ({self.profile} profile)"
            self.redraw()
            self.stale_marker.shown(self.caption, ran_with)
            self.progress.bar_style = "success"
            wall = float(self.df["wall_s"].sum())
            self.status.value = (f"done ({self.profile} profile, {size}): "
                                 f"{V.verdict_counts(self.df)}, {wall:.1f} s of compute")
        return self.df

    def redraw(self):
        """Redraw the table and the figure from :attr:`df` (in place)."""
        if self.df.empty:
            return
        self._fig.clear()
        self._fig.set_size_inches(10, 0.42 * len(self.df) + 1.4)
        plot_validation(self.df, ax=self._fig.subplots(),
                        title=f"Published results vs fphlib: {self.caption}")
        self.image.value = figure_png(self._fig)
        self.table.value = readable(self.df, caption=self.caption).to_html()
        self.parts.value = differences(
            self.df, caption=f"Where the model and the published results part: "
                             f"{self.caption}").to_html()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def summary_counts(df):
    """Verdict counts by experiment (pass, FAIL, n/a)."""
    return df.groupby(["name", "verdict"]).size().unstack(fill_value=0)


# ------------------------------------------------------------------ live recordings

REAL, MODEL = "#222222", "#2a7ab0"


def recordings(root=None):
    """The recordings saved under ``root`` (default ``data/real``) as a table: name, kind,
    what was recorded, kernel and date (from each ``recording.json``; an unreadable one is
    listed with its error). An absent directory gives an empty table."""
    import json
    from pathlib import Path

    root = REAL_DIR if root is None else Path(root)
    rows = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        f = d / "recording.json"
        if not f.is_file():
            continue
        try:
            doc = json.loads(f.read_text())
            meta, kind = doc["meta"], doc["kind"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            rows.append({"name": d.name, "kind": "?", "what": f"unreadable: {e}",
                         "kernel": "", "date": ""})
            continue
        prov = meta.get("provenance") or {}
        if kind == "drain":
            what = (f"{meta.get('free_bytes', 0) / 2**30:g} GiB freed, watched "
                    f"{meta.get('duration_s', 0):g} s")
        elif kind == "trace":
            what = (f"`{' '.join(meta.get('argv') or [])}` ({meta.get('scope')}, "
                    f"{meta.get('ops', 0):,} ops, {meta.get('duration_s', 0):.0f} s)")
        elif kind == "first_touch":
            what = (f"{meta.get('size_bytes', 0) / 2**30:g} GiB touched, "
                    f"{meta.get('repeats')} repeats")
        else:
            what = ""
        rows.append({"name": d.name, "kind": kind, "what": what,
                     "kernel": prov.get("kernel", ""), "date": prov.get("date", "")})
    return pd.DataFrame(rows, columns=["name", "kind", "what", "kernel", "date"])


def plot_drain(recording, ax=None, title=None):
    """A drain's reported bytes over time: recorded (black) against fphlib's page_reporting
    started from the recording's free lists (blue), as growth since the exit (GiB), with
    each curve's t50 and t90 marked. ``recording``: a DrainRecording, its directory or its
    name under ``data/real``.

    Returns
    -------
    matplotlib.axes.Axes
    """

    rec, _, name = V._load(recording, "drain")
    model, info = V.drain_model(rec)
    if ax is None:
        ax = app_figure((8, 4)).subplots()
    else:
        ax.clear()
    curves = {"recorded": (rec.frame["t_s"], rec.frame["reported_bytes"], REAL, "-"),
              "fphlib": (model["t_s"], model["reported_bytes"], MODEL, "--")}
    for label, (t, r, color, style) in curves.items():
        r = np.asarray(r, np.int64)
        st = V.drain_stats(t, r)
        ax.step(t, (r - r[0]) / 2**30, where="post", color=color, linestyle=style,
                label=f"{label}: t50 {st['t50_s']:.1f} s, t90 {st['t90_s']:.1f} s, "
                      f"{st['steps']} steps")
        for key in ("t50_s", "t90_s"):
            if st[key] == st[key]:
                ax.axvline(st[key], color=color, linestyle=":", linewidth=0.8)
    ax.set_xlabel("seconds since the child exited")
    ax.set_ylabel("reported since the exit (GiB)")
    size = V._size_label(getattr(rec, "free_bytes", 0))
    ax.set_title(title or f"{name}: {size} freed, reported over time "
                          f"(order {info['page_reporting_order']}, capacity "
                          f"{info['capacity']}, delay {info['delay_s']:g} s)")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_buddyinfo(frame, fig=None, title=None, orders=None):
    """Free memory per order over time: recorded buddyinfo (solid) against the replayed
    trace (dashed), one panel per order (MiB in free blocks of that order).

    ``frame``: :func:`fphlib.validation.fragmentation_frame` (or a recording to build it
    from); ``orders``: the panels (default every order).

    Returns
    -------
    matplotlib.figure.Figure
    """

    if not isinstance(frame, pd.DataFrame):
        frame = V.fragmentation_frame(frame)
    orders = sorted(frame["order"].unique()) if orders is None else list(orders)
    cols = 4
    rows = -(-len(orders) // cols)
    if fig is None:
        fig = app_figure((11, 2.2 * rows + 0.6))
    else:
        fig.clear()
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True)).ravel()
    for ax, o in zip(axes, orders, strict=False):
        for src, color, style in (("real", REAL, "-"), ("model", MODEL, "--")):
            d = frame[(frame["source"] == src) & (frame["order"] == o)].sort_values("t_s")
            ax.plot(d["t_s"], d["nr_free"] * (PAGE_SIZE << int(o)) / 2**20, color=color,
                    linestyle=style, label="recorded" if src == "real" else "fphlib")
        ax.set_title(f"order {o}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(orders):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.supxlabel("seconds", fontsize=9)
    fig.supylabel("MiB free in blocks of the order", fontsize=9)
    fig.suptitle(title or "buddyinfo over time: recorded vs the trace replayed in fphlib "
                          "(all zones summed)", fontsize=10)
    return fig


def plot_first_touch(recording, ax=None, title=None):
    """Seconds per GiB of each touch case (bars: mean; whiskers: min to max), and what the
    model adds to the backed touch for discarded memory: ``fault_2m`` per 2 MiB (host THP)
    and ``fault_4k`` per 4 KiB (dotted lines).

    Returns
    -------
    matplotlib.axes.Axes
    """

    rec, _, name = V._load(recording, "first_touch")
    g = rec.touches.groupby("case")["s_per_gib"].agg(["mean", "min", "max"])
    g = g.reindex([c for c in ("first", "backed", "discarded") if c in g.index])
    if ax is None:
        ax = app_figure((7, 4)).subplots()
    else:
        ax.clear()
    x = np.arange(len(g))
    ax.bar(x, g["mean"], color=["#bbbbbb" if c == "backed" else "#e07b39" for c in g.index],
           yerr=[g["mean"] - g["min"], g["max"] - g["mean"]], capsize=4)
    ax.set_xticks(x)
    ax.set_xticklabels(g.index)
    if "backed" in g.index:
        base = float(g.loc["backed", "mean"])
        for cost, per_gib, style in (("fault_2m", 512, ":"), ("fault_4k", 262144, "--")):
            y = base + DEFAULTS[cost][0] * per_gib
            ax.axhline(y, color=MODEL, linestyle=style, linewidth=1)
            ax.text(len(g) - 0.5, y, f" backed + model {cost}", va="bottom", ha="right",
                    fontsize=8, color=MODEL)
    ax.set_ylabel("seconds per GiB touched")
    ax.set_title(title or f"{name}: touching memory, backed vs discarded by the host")
    return ax


class LiveApp:
    """Pick a recording of ``data/real``; its figure (drain, buddyinfo or first touch)
    and its records against the model redraw.

    Parameters
    ----------
    root : path, optional
        Where the recordings are (default ``data/real``).
    """

    def __init__(self, root=None):
        import ipywidgets as W

        self.table = recordings(root)
        self.root = root
        names = list(self.table["name"])
        self.pick = W.Dropdown(options=names, value=names[0] if names else None,
                               description="recording", layout=W.Layout(width="420px"))
        self.status = W.HTML(value="" if names else "<i>no recordings found</i>")
        self.image = W.Image(format="png", layout=fit_layout())
        self.records = W.HTML(value="")
        self.pick.observe(lambda change: self.redraw(), names="value")
        self.widget = W.VBox([self.pick, self.status, self.image, self.records])
        self.widget.add_class("fphlib-app")
        self.df = None

    def _path(self, name):
        from pathlib import Path

        return (REAL_DIR if self.root is None else Path(self.root)) / name

    def redraw(self):
        """Draw the picked recording's figure and its records."""

        name = self.pick.value
        if name is None:
            return None
        kind = self.table.set_index("name").loc[name, "kind"]
        path = self._path(name)
        fig = app_figure((9, 4))
        try:
            if kind == "drain":
                plot_drain(path, ax=fig.subplots())
                records = V.against_drain(path)
            elif kind == "trace":
                frame = V.fragmentation_frame(path)
                fig.set_size_inches(11, 7)
                plot_buddyinfo(frame, fig=fig)
                records = [V.against_trace_fragmentation(path)]
            elif kind == "first_touch":
                plot_first_touch(path, ax=fig.subplots())
                records = V.against_first_touch(path)
            else:
                self.status.value = f"<b>{name}</b>: kind {kind!r} has no view"
                return None
        except (ValueError, FileNotFoundError) as e:
            self.status.value = f"<b>{name}</b>: {e}"
            return None
        self.df = V.to_frame(records)
        self.image.value = figure_png(fig)
        self.records.value = readable(self.df).to_html()
        self.status.value = f"<b>{name}</b> ({kind}): {V.verdict_counts(self.df)}"
        return self.df

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
