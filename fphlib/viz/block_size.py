"""The block-size study (notebook 05): what the reporting order buys and costs.

A sweep of ``hint_order`` 0..10 over every registered mechanism that takes a block size
(:func:`fphlib.sweep.block_size_mechanisms`), with replicate seeds, plotted as one panel per
metric against the block size with confidence bands over the seeds. The summary has no
count of host THP splits, so the panels show refaults (what a split region costs the guest
later) but not the splits themselves.
"""

import os
from pathlib import Path

import ipywidgets as W

from ..experiments.scenarios import headline_config, profile_name, run_caption
from ..sweep import block_size_mechanisms
from ..sweep.run import sweep
from ..sweep.summary import seed_summary
from ..units import PAGE_SIZE, format_size
from ..workloads import WORKLOADS
from .figures import figure_png
from .tables import readable_seed_summary
from .widgets import (
    STALE_CSS,
    StaleMarker,
    computing,
    field_help,
    fit_layout,
    workload_params_for,
)

PAGEBLOCK_ORDER = 9  # the kernel's page_reporting_order default: pageblock_order, 2 MiB = THP

# Metric -> (panel title, scale of the y values, unit shown on the axis)
METRICS = {
    "returned_bytes": ("memory returned to the host (net, at the end)", 1 / 2**30, "GiB"),
    "reports": ("reports sent", 1.0, "count"),
    "vmexits": ("VM exits", 1.0, "count"),
    "zone_lock_hold_s": ("zone->lock hold time", 1e3, "ms"),
    "refault_pages": ("refaulted pages", 1.0, "pages"),
}
# Sizes per profile: the headline scenario's guests and run length; seeds by default.
SEEDS = {"smoke": 2, "demo": 3, "full": 5}


def default_cache():
    """Where the notebooks cache sweep runs, whatever the server's working directory:
    ``$FPHLIB_CACHE`` when set; else ``out/sweep_cache`` of the repository fphlib is
    imported from (a source checkout: the directory above the package holds
    ``pyproject.toml``); else ``~/.cache/fphlib/sweep_cache`` (an installed package)."""
    env = os.environ.get("FPHLIB_CACHE")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / "out" / "sweep_cache"
    return Path.home() / ".cache" / "fphlib" / "sweep_cache"


def block_size_base(profile=None, guests=3, workload="churn"):
    """The headline scenario of ``profile`` with ``workload``, as the sweep's base config."""

    base = headline_config(profile_name(profile), "page_reporting", guests=guests)
    if workload != base.workload:
        base = type(base).from_dict({**base.to_dict(), "workload": workload,
                                     "workload_params": workload_params_for(workload, base)})
    return base


def block_size_sweep(base, orders=range(11), mechanisms=None, seeds=2, cache=None,
                     executor=None, progress=True):
    """``fphlib.sweep`` of ``hint_order`` × ``mechanisms`` (default: all that take one)."""
    mechanisms = list(mechanisms) if mechanisms is not None else list(block_size_mechanisms())
    if not mechanisms:
        raise ValueError("mechanisms: empty; pick at least one of "
                         f"{', '.join(block_size_mechanisms())}")
    grid = {"hint_order": [int(o) for o in orders], "mechanism": mechanisms}
    return sweep(grid, base=base, seeds=seeds, executor=executor, cache=cache,
                        progress=progress)


def block_label(order):

    return format_size(PAGE_SIZE << int(order)).replace(".0 ", " ")


def plot_block_size(df, metrics=METRICS, fig=None, title=None):
    """One panel per metric vs block size, a line per mechanism, 95 % CI band over seeds.

    ``df`` is a :func:`fphlib.sweep` frame with ``hint_order`` and ``mechanism`` columns. The
    dashed line marks pageblock_order (9: 2 MiB, the host THP size), the kernel's choice.
    """
    import seaborn as sns

    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(4.0 * min(3, len(metrics)), 3.2 * -(-len(metrics) // 3)),
                         layout="constrained")
    else:
        fig.clear()
    ok = df[df["error"].isna()].copy()
    orders = sorted(ok["hint_order"].unique())
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    many_seeds = ok.groupby(["hint_order", "mechanism"]).size().max() > 1 if len(ok) else False
    for i, (metric, (name, scale, unit)) in enumerate(metrics.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ok["_y"] = ok[metric] * scale
        sns.lineplot(data=ok, x="hint_order", y="_y", hue="mechanism", marker="o", ax=ax,
                     errorbar=("ci", 95) if many_seeds else None, legend=i == 0)
        ax.axvline(PAGEBLOCK_ORDER, color="0.5", ls="--", lw=1)
        ax.set_title(name)
        ax.set_ylabel(unit)
        ax.set_xlabel("block size (hint_order)")
        ax.set_xticks(orders, [block_label(o) for o in orders], rotation=60, fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def summary_by_order(df, metrics=METRICS, caption=""):
    """Mean and 95 % interval of each metric per (mechanism, hint order) over the seeds
    (:func:`fphlib.sweep.summary.seed_summary`), readable: one row per point."""
    summary = seed_summary(df, keys=["mechanism", "hint_order"], metrics=list(metrics))
    return readable_seed_summary(summary, caption=caption, points="rows")


class BlockSizeApp:
    """Widgets for the block-size study: order range, mechanisms, guests, workload, seeds.

    Parameters
    ----------
    profile : {"smoke", "demo", "full"}, optional
        Sizes of the runs (default ``$FPHLIB_PROFILE``, else ``"demo"``).
    cache : path, optional
        Sweep cache (default :func:`default_cache`): reopening the notebook is instant.
    executor : optional
        Passed to :func:`fphlib.sweep` (e.g. a ``dask.distributed.Client``).

    Attributes
    ----------
    df : pandas.DataFrame or None
        The last sweep (one row per run).
    """

    def __init__(self, profile=None, cache=None, executor=None):

        self._png = figure_png
        self.profile = profile_name(profile)
        self.cache = default_cache() if cache is None else cache
        self.executor = executor
        self.df = None
        self.shown_base = self.shown_seeds = None
        self.caption = ""
        mechs = block_size_mechanisms()

        self.orders = W.IntRangeSlider(value=(0, 10), min=0, max=10, description="orders",
                                       continuous_update=False,
                                       tooltip="hint orders to sweep: " + field_help("hint_order"))
        self.mechanisms = W.SelectMultiple(options=mechs, value=mechs, rows=min(4, len(mechs)),
                                           description="mechanisms",
                                           style={"description_width": "initial"},
                                           tooltip="mechanisms that work in blocks of the hint "
                                                   "order (ctrl/shift-click to pick several)")
        self.guests = W.IntSlider(value=3, min=1, max=6, description="guests",
                                  continuous_update=False, tooltip=field_help("guests"))
        self.workload = W.Dropdown(options=[w for w in WORKLOADS if w != "trace"],
                                   value="churn", description="workload",
                                   tooltip=field_help("workload"))
        self.seeds = W.IntSlider(value=SEEDS[self.profile], min=1, max=10, description="seeds",
                                 continuous_update=False,
                                 tooltip="replicate runs per point (confidence bands)")
        self.run_button = W.Button(description="Run sweep", button_style="primary",
                                   icon="play", tooltip="run the sweep (finished runs come "
                                                        "from the cache)")
        self.status = W.HTML(f"<i>{self.profile} profile: press Run sweep</i>")
        self.log = W.Output()  # the sweep's tqdm.auto bar shows here while it runs
        self.image = W.Image(format="png", layout=fit_layout())
        self.table = W.HTML()
        self.run_button.on_click(self.run)
        from matplotlib.figure import Figure

        self._fig = Figure(figsize=(12, 6.4), layout="constrained")
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        controls = W.VBox([W.HBox([self.orders, self.mechanisms], layout=wrap),
                           W.HBox([self.guests, self.workload, self.seeds], layout=wrap)])
        self.stale_marker = StaleMarker(controls, (self.image, self.table))
        self.widget = W.VBox([
            W.HTML(STALE_CSS), controls,
            W.HBox([self.run_button, self.status], layout=wrap),
            self.log, self.stale_marker.banner, self.image, self.table,
        ])

    def base(self):
        """The SimConfig the controls describe (before hint_order and mechanism)."""
        return block_size_base(self.profile, self.guests.value, self.workload.value)

    def run(self, _button=None):
        """Run (or load from the cache) the sweep the controls describe, then redraw."""
        lo, hi = self.orders.value
        self.status.value = "running …"
        with computing(self, (self.image, self.table)):
            base, seeds = self.base(), self.seeds.value
            ran_with = self.stale_marker.values()
            with self.log:
                self.log.clear_output()
                df = block_size_sweep(base, range(lo, hi + 1), self.mechanisms.value,
                                      seeds, cache=self.cache, executor=self.executor)
            self.df, self.shown_base, self.shown_seeds = df, base, seeds
            self.redraw()
            self.stale_marker.shown(self.caption, ran_with)
            a = df.attrs
            self.status.value = (f"{len(df)} runs: {a['computed']} computed, {a['cached']} "
                                 f"from the cache, {a['failed']} failed")
        return self.df

    def redraw(self):
        """Redraw the figure and the table of the last sweep (:attr:`df`, run on
        :attr:`shown_base` with :attr:`shown_seeds` seeds), whatever the controls say now."""
        base, seeds = self.shown_base, self.shown_seeds
        self.caption = (f"{run_caption(base, mechanism=False)} ({self.profile} profile), "
                        f"{seeds} seeds")
        plot_block_size(self.df, fig=self._fig, title=self.caption)
        self.image.value = self._png(self._fig)
        self.table.value = summary_by_order(self.df, caption=self.caption).to_html()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
