"""Every registered mechanism on the same configuration, side by side (notebook 02).

:func:`compare` runs one :class:`fphlib.SimConfig` under each mechanism of
``fphlib.hinting.REGISTRY`` (never a hand-made list: a newly registered mechanism shows up by
itself); :func:`plot_compare` draws host RSS over time and the cost/benefit metrics as bar
charts (with replicate seeds, ``{"MECH · seed #r": SimResult}``: the mean with a 95 % band
and error bars); :func:`plot_admission` draws the admission experiment
(:func:`fphlib.experiments.admission_table`) against the published numbers;
:class:`CompareApp` is the ipywidgets front end.

Colours are fixed per mechanism (its position in the registry), so a mechanism has the same
colour in every panel and every figure.
"""

import math

import numpy as np
import pandas as pd
import seaborn as sns

from ..api.config import SimConfig
from ..api.result import SUMMARY_METRICS
from ..experiments import PUBLISHED
from ..experiments.scenarios import (
    balloon_target_for,
    headline_config,
    profile_name,
    run_caption,
)
from ..hinting import mechanism_module, takes_hint_order
from ..workloads import COMMON
from . import plots
from .figures import app_figure, figure_png, new_axes, new_figure
from .tables import format_value, plain_text, readable_replicates
from .widgets import (
    STALE_CSS,
    StaleMarker,
    block_size_label,
    field_help,
    fit_layout,
    mechanism_names,
    replicate_configs,
    run_configs,
    seeds_slider,
    workload_names,
    workload_params_for,
)

GIB = float(1 << 30)

# Bar panels of plot_compare: metric -> (title, scale, unit label).
COMPARE_METRICS = {
    "returned_bytes": ("memory returned (net)", GIB, "GiB"),
    "reports": ("reports / balloon msgs", 1.0, "count"),
    "vmexits": ("VM exits", 1.0, "count"),
    "zone_lock_hold_s": ("zone->lock hold", 1e-3, "ms"),
    "guest_cpu_overhead_s": ("guest CPU overhead", 1.0, "s"),
}


def mechanism_palette(names=None):
    """{mechanism: colour}, stable across figures: indexed by the mechanism's registry slot."""
    reg = mechanism_names()
    names = reg if names is None else tuple(names)
    extra = [n for n in names if n not in reg]
    order = list(reg) + extra
    colours = sns.color_palette("tab10", max(len(order), 1))
    if len(order) > 10:
        colours = sns.color_palette("husl", len(order))
    return {n: colours[order.index(n)] for n in names}


def mechanism_table():
    """One row per registered mechanism: its name, whether it takes ``hint_order``, its
    parameters with defaults, and the first paragraph of its module docstring as plain text
    (:func:`fphlib.viz.tables.plain_text`)."""

    rows = []
    for name in mechanism_names():
        mod = mechanism_module(name)
        doc = plain_text((mod.__doc__ or "").strip().split("\n\n")[0])
        params = ", ".join(f"{k}={p.default!r}" for k, p in mod.PARAMS.items())
        rows.append({"mechanism": name, "takes_hint_order": bool(mod.TAKES_HINT_ORDER),
                     "params": params or "-", "description": doc})
    return pd.DataFrame(rows)


def _check_mechanisms(mechanisms):
    reg = mechanism_names()
    if mechanisms is None:
        return reg
    if isinstance(mechanisms, str):
        mechanisms = [mechanisms]
    names = tuple(mechanisms)
    if not names:
        raise ValueError("mechanisms: [] is not allowed; expected at least one of "
                         f"{', '.join(reg)}")
    for i, name in enumerate(names):
        if name not in reg:
            raise ValueError(f"mechanisms[{i}]: {name!r} is not allowed; known mechanisms: "
                             f"{', '.join(reg)}")
    if len(set(names)) != len(names):
        raise ValueError(f"mechanisms: {list(names)!r} is not allowed; a mechanism is listed "
                         "twice")
    return names


def compare_configs(cfg, mechanisms=None, mechanism_params=None):
    """{mechanism: SimConfig}: ``cfg`` with only the mechanism (and its parameters) changed.

    Parameters
    ----------
    cfg : fphlib.SimConfig
    mechanisms : iterable of str, optional
        Default: every registered mechanism.
    mechanism_params : dict, optional
        ``{mechanism: params}``. ``cfg.mechanism_params`` is kept for ``cfg.mechanism``
        itself; every other mechanism runs with its defaults unless given here.

    Notes
    -----
    The balloon needs a target. ``cfg.balloon_target`` (or the static policy's ``target``) is
    used as given; when it is None, the balloon run gets the headline target
    (:func:`fphlib.experiments.scenarios.balloon_target_for`: the guest's boot footprint
    + 20 % of its memory, where an oVirt MOM-style policy leaves an idle guest). Without any
    target a balloon never inflates and its run would duplicate ``none``. Other mechanisms keep
    ``cfg.balloon_target`` unchanged.
    """

    if not isinstance(cfg, SimConfig):
        raise ValueError(f"cfg: expected a SimConfig, got {type(cfg).__name__}")
    names = _check_mechanisms(mechanisms)
    params = mechanism_params or {}
    if not isinstance(params, dict):
        raise ValueError(f"mechanism_params: {params!r} is not allowed; expected a dict "
                         "{mechanism: params}")
    for key in params:
        if key not in names:
            raise ValueError(f"mechanism_params[{key!r}]: not one of the compared mechanisms "
                             f"({', '.join(names)})")
    base = cfg.to_dict()
    out = {}
    for name in names:
        d = dict(base, mechanism=name)
        d["mechanism_params"] = params.get(
            name, cfg.mechanism_params if name == cfg.mechanism else {})
        if (name == "balloon" and cfg.balloon_target is None and cfg.policy == "static"
                and cfg.policy_params.get("target") is None):
            boot = cfg.workload_params.get("boot", COMMON["boot"].default)
            d["balloon_target"] = balloon_target_for(cfg.guest_mem, boot)
        out[name] = SimConfig.from_dict(d)
    return out


def summary_frame(results):
    """Tidy run metrics: one row per run, columns ``mechanism``, ``hint_order`` and the
    names of ``fphlib.api.result.SUMMARY_METRICS``; the replicates of a mechanism
    (``"MECH · seed #r"``, :func:`fphlib.viz.plots.run_name`) are rows of ``MECH``."""

    rows = []
    for label, r in results.items():
        row = {"mechanism": plots.run_name(label), "hint_order": int(r.config.hint_order)}
        row.update({m: float(r.summary.get(m, np.nan)) for m in SUMMARY_METRICS})
        rows.append(row)
    return pd.DataFrame(rows, columns=["mechanism", "hint_order", *SUMMARY_METRICS])


def compare(cfg, mechanisms=None, progress=False, mechanism_params=None, simulate=None):
    """Run ``cfg`` under every registered mechanism (or ``mechanisms``).

    Parameters
    ----------
    cfg : fphlib.SimConfig
        The scenario; only ``mechanism`` (and its parameters) change between runs. See
        :func:`compare_configs` for the balloon's target when ``cfg.balloon_target`` is None.
    mechanisms : iterable of str, optional
        Default: ``fphlib.hinting.REGISTRY``, in registry order.
    progress : bool
        Show a progress bar per run.
    mechanism_params : dict, optional
        ``{mechanism: params}`` (see :func:`compare_configs`).
    simulate : callable, optional
        ``simulate(cfg, progress=...) -> SimResult``; default :func:`fphlib.simulate`.

    Returns
    -------
    results : dict
        ``{mechanism: SimResult}`` in the order run.
    summary : pandas.DataFrame
        :func:`summary_frame` of ``results``.
    """
    if simulate is None:  # the parameter shares the name
        from ..api.simulate import simulate
    results = {}
    for name, c in compare_configs(cfg, mechanisms, mechanism_params).items():
        results[name] = simulate(c, progress=progress)
    return results, summary_frame(results)


def _bars(ax, frame, metric, palette):
    """One bar per mechanism: its value, or with several rows (seeds) per mechanism their
    mean with the 95 % interval as an error bar (:func:`fphlib.viz.plots.seed_band`)."""
    title, scale, unit = COMPARE_METRICS.get(metric, (metric, 1.0, ""))
    data = frame.assign(value=frame[metric] / scale)
    sns.barplot(data, x="mechanism", y="value", hue="mechanism", palette=palette,
                legend=False, ax=ax, errorbar=plots.seed_band, capsize=0.3, err_kws={
                    "linewidth": 1.2, "color": "0.2"})
    ax.set(xlabel="", ylabel=unit)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=35)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    by_mechanism = data.groupby("mechanism", sort=False)["value"]
    for patch, (mean, (_, high)) in zip(ax.patches, zip(
            by_mechanism.mean(), by_mechanism.agg(plots.seed_band), strict=True), strict=False):
        text = format_value(mean, "count")  # 3 significant digits, never 4.83e-05
        top = patch.get_height() if np.isnan(high) else max(high, patch.get_height())
        ax.annotate(text, (patch.get_x() + patch.get_width() / 2, top),
                    ha="center", va="bottom", fontsize=7)
    ax.set_ylim(bottom=0)


def plot_compare(results, fig=None, metrics=tuple(COMPARE_METRICS), title=None):
    """Host RSS over time per mechanism (top) and one bar chart per metric (bottom).

    Parameters
    ----------
    results : dict
        ``{mechanism: SimResult}`` (from :func:`compare`); replicate seeds of a mechanism
        labelled ``"MECH · seed #r"`` (:func:`fphlib.viz.widgets.replicate_configs`) are drawn
        as its mean, with a 95 % band over time and an error bar on each bar
        (:func:`fphlib.viz.plots.seed_band`), and the host RSS title says how many seeds.
    fig : matplotlib.figure.Figure, optional
        Figure to redraw into (cleared first); a new one otherwise.
    metrics : sequence of str
        Summary metrics for the bar charts (default :data:`COMPARE_METRICS`: memory returned
        ``reported_bytes``, ``reports``, ``vmexits``, ``zone_lock_hold_s``,
        ``guest_cpu_overhead_s``).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(results, dict) or not results:
        raise ValueError("results: expected a non-empty dict {mechanism: SimResult} "
                         "(from compare())")
    metrics = tuple(metrics)
    n = max(len(metrics), 1)
    fig = new_figure(fig, figsize=(max(3.0 * n, 9.0), 7.5))
    grid = fig.add_gridspec(2, n, height_ratios=(1.15, 1.0))
    groups = plots.seed_groups(results)
    palette = mechanism_palette(groups)
    ax = fig.add_subplot(grid[0, :])
    n_seeds = max(len(runs) for runs in groups.values())
    plots.plot_host_rss(results, ax=ax, hue="mechanism", palette=palette,
                        title=f"Host RSS over time (× = host OOM kill){plots.seeds_text(n_seeds)}")
    for label, r in results.items():  # host OOM kills: one cross each (every seed's)
        kills = r.events[r.events["kind"] == "oom_kill"]
        if len(kills):
            t = r.host["t_s"].to_numpy()
            rss = r.host["rss_bytes"].to_numpy() / GIB
            idx = np.clip(np.searchsorted(t, kills["t_s"].to_numpy()), 0, len(t) - 1)
            ax.scatter(kills["t_s"], rss[idx], marker="x", s=60,
                       color=palette[plots.run_name(label)], zorder=5)
    frame = summary_frame(results)
    for i, metric in enumerate(metrics):
        _bars(fig.add_subplot(grid[1, i]), frame, metric, palette)
    if title:
        fig.suptitle(title)
    return fig


def _published(name, published):
    low, high = published.get(name, (math.nan, math.nan))
    if math.isnan(low):
        return "–"
    return f"{low:g}" if low == high else f"{low:g}–{high:g}"


def format_admission(table, published=None):
    """The admission table for display: ``admitted`` as text (``≥ n`` when capped), the
    published count next to it, and the first failure.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`fphlib.experiments.admission_table`.
    published : dict, optional
        ``{mechanism: (low, high)}``; default :data:`fphlib.experiments.PUBLISHED`.
    """

    published = PUBLISHED if published is None else published
    out = pd.DataFrame({"mechanism": table["mechanism"]})
    out["admitted (model)"] = [f"≥ {n}" if c else str(n)
                               for n, c in zip(table["admitted"], table["capped"], strict=True)]
    out["published (v8 letter)"] = [_published(m, published) for m in table["mechanism"]]
    out["first failure"] = [
        "none within max_guests" if f is None or f != f else f"{f} at {t:.1f} s"
        for f, t in zip(table["failure"], table["first_failure_s"], strict=True)]
    out["host OOM kills"] = table["oom_kills"].astype(int)
    return out.set_index("mechanism")


def plot_admission(table, ax=None, published=None, title=None):
    """Guests admitted per mechanism (bars) with the published counts (black ranges).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`fphlib.experiments.admission_table` (columns ``mechanism``, ``admitted``,
        ``capped``, ``max_guests``).
    ax : matplotlib.axes.Axes, optional
        Axes to redraw into (cleared first); a new figure otherwise.
    published : dict, optional
        ``{mechanism: (low, high)}``; default :data:`fphlib.experiments.PUBLISHED` (3 without
        hinting, 5–7 with v8 hinting). Drawn only for mechanisms in ``table``.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """

    for col in ("mechanism", "admitted", "capped", "max_guests"):
        if col not in table.columns:
            raise ValueError(f"table: missing column {col!r}; pass admission_table()'s result")
    published = PUBLISHED if published is None else published
    ax = new_axes(ax, figsize=(7.5, 4.0))
    names = list(table["mechanism"])
    palette = mechanism_palette(names)
    sns.barplot(table, x="mechanism", y="admitted", hue="mechanism", palette=palette,
                legend=False, ax=ax, order=names)
    for i, (n, capped) in enumerate(zip(table["admitted"], table["capped"], strict=True)):
        ax.annotate(f"≥{n}" if capped else f"{n}", (i, n), ha="center", va="bottom",
                    fontsize=9, xytext=(0, 2), textcoords="offset points")
    shown = False
    for i, name in enumerate(names):
        if name in published:
            low, high = published[name]
            mid = (low + high) / 2
            ax.errorbar([i + 0.28], [mid], yerr=[[mid - low], [high - mid]], fmt="D",
                        color="black", markersize=6, capsize=5, elinewidth=2,
                        label=None if shown else "published (v8 letter)")
            text = f"{low:g}" if low == high else f"{low:g}–{high:g}"
            ax.annotate(text, (i + 0.28, high), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 4), textcoords="offset points")
            shown = True
    cap = int(table["max_guests"].max())
    ax.axhline(cap, color="0.4", linestyle=":", linewidth=1, label=f"max_guests = {cap}")
    ax.set(xlabel="", ylabel="guests admitted",
           title=title or "Guests admitted before a host OOM kill or swap")
    ax.set_ylim(0, cap + 1.5)
    ax.tick_params(axis="x", labelrotation=20)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return ax


class CompareApp:
    """Pick mechanisms, hint order, guests, workload and seeds; Run; see every mechanism side
    by side (with seeds > 1: each mechanism's mean over its seeds with a 95 % band, error
    bars and mean ± interval in the table).

    Parameters
    ----------
    profile : {"smoke", "demo", "full"}, optional
        Sizes of the runs (default: ``$FPHLIB_PROFILE``, else ``"demo"``): the headline
        scenario of :func:`fphlib.experiments.scenarios.headline_config`.
    simulate : callable, optional
        ``simulate(cfg, progress=...) -> SimResult``; defaults to :func:`fphlib.simulate`.

    Attributes
    ----------
    results : dict
        ``{mechanism: SimResult}`` of the last run; with seeds > 1, replicate r > 0 of a
        mechanism is ``"MECH · seed #r"`` (:func:`fphlib.viz.widgets.replicate_configs`).
    summary : pandas.DataFrame
        :func:`summary_frame` of the last run (one row per run, seeds included).
    """

    def __init__(self, profile=None, simulate=None):
        import ipywidgets as W

        self.profile = profile_name(profile)
        self._simulate = simulate
        self.results = {}
        self.caption = ""  # what the results shown are: scenario, hint order, policy
        self.summary = summary_frame({})
        reg = mechanism_names()

        self.mechanisms = W.SelectMultiple(
            options=reg, value=reg, rows=min(len(reg), 7), description="mechanisms",
            style={"description_width": "initial"},
            tooltip="mechanisms to compare (ctrl/shift-click to pick several); "
                    + field_help("mechanism"))
        self.hint_order = W.IntSlider(value=9, min=0, max=10, description="hint order",
                                      continuous_update=False, style={"description_width":
                                                                      "initial"},
                                      tooltip=field_help("hint_order"))
        self.block_label = W.HTML(f"block size {block_size_label(9)}")
        self.guests = W.IntSlider(value=3, min=1, max=6, description="guests",
                                  continuous_update=False, tooltip=field_help("guests"))
        self.workload = W.Dropdown(options=workload_names(), value="memhog", description="workload",
                                   tooltip=field_help("workload"))
        self.seeds = seeds_slider()
        self.run_button = W.Button(description="Run", button_style="primary", icon="play",
                                   tooltip="run the scenario under every selected mechanism")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress",
                                      tooltip="mechanisms done of this press of Run")
        self.status = W.HTML(value=f"<i>{self.profile} profile: press Run</i>")
        self.run_log = W.Output()
        self.image = W.Image(format="png", layout=fit_layout())
        self.table = W.HTML(value="")
        self.stale_widgets = (self.image, self.table)
        self.hint_order.observe(self._on_order, names="value")
        self.mechanisms.observe(self._on_order, names="value")
        self.run_button.on_click(self.run)
        self._fig = app_figure((15, 7.5))
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        controls = W.VBox([
            W.HBox([self.mechanisms, W.VBox([self.workload, self.guests, self.seeds])],
                   layout=wrap),
            W.HBox([self.hint_order, self.block_label], layout=wrap),
            W.HBox([self.run_button, self.progress, self.status], layout=wrap),
            self.run_log,
        ])
        self.stale_marker = StaleMarker(controls, self.stale_widgets)
        self.widget = W.VBox([W.HTML(STALE_CSS), controls, self.stale_marker.banner,
                              self.image, self.table])
        self.widget.add_class("fphlib-app")
        self._on_order()

    def _on_order(self, _change=None):
        """Block size of the hint order; disabled (with a note) when no selected mechanism
        takes a hint order."""

        users = [m for m in self.mechanisms.value if takes_hint_order(m)]
        self.hint_order.disabled = not users
        self.block_label.value = (
            f"block size {block_size_label(self.hint_order.value)} (used by "
            f"{', '.join(users)})" if users else
            "<i>no selected mechanism uses the hint order</i>")

    def config(self):
        """The base SimConfig the controls describe (mechanism ``none``)."""

        base = headline_config(self.profile, "none", guests=self.guests.value,
                               hint_order=self.hint_order.value)
        if self.workload.value != base.workload:
            params = workload_params_for(self.workload.value, base)
            base = type(base).from_dict({**base.to_dict(), "workload": self.workload.value,
                                         "workload_params": params})
        return base

    def configs(self):
        """{mechanism: SimConfig} of one press of Run (:func:`compare_configs`); with seeds
        > 1 each once per replicate seed (:func:`fphlib.viz.widgets.replicate_configs`: the
        same seeds for every mechanism), labelled "MECH · seed #r" from the second."""
        return replicate_configs(compare_configs(self.config(), self.mechanisms.value),
                                 self.seeds.value)

    def run(self, _button=None):
        """Run the selected mechanisms, updating the progress bar, then redraw."""
        if not self.mechanisms.value:
            self.status.value = "<b>select at least one mechanism</b>"
            return self.results
        seeds = self.seeds.value
        what = (f"mechanism(s), {self.profile} profile" if seeds == 1 else
                f"runs ({len(self.mechanisms.value)} mechanism(s) × {seeds} seeds), "
                f"{self.profile} profile")
        return run_configs(self, self.configs(), self._simulate, what=what)

    def redraw(self):
        """Redraw the figure and the table from :attr:`results` (in place)."""
        if not self.results:
            return
        self.summary = summary_frame(self.results)

        cfg = next(iter(self.results.values())).config
        n_seeds = max(len(runs) for runs in plots.seed_groups(self.results).values())
        self.caption = (f"{run_caption(cfg, mechanism=False)} · hint order {cfg.hint_order} "
                        f"({self.profile} profile){plots.seeds_text(n_seeds)}")
        plot_compare(self.results, fig=self._fig, title=self.caption)
        self.image.value = figure_png(self._fig)
        self.table.value = readable_replicates(
            self.results, caption=f"Summary: {self.caption}", key="mechanism").to_html(
            classes="fphlib-summary")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
