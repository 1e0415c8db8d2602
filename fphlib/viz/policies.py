"""Host policies and guest counts (notebook 04): heatmaps, who paid, the idle tax, memhog turns.

- :func:`plot_policy_heatmaps`: guest count x policy heatmaps of host RSS peak, swap, OOM
  kills and mean/worst slowdown (:func:`fphlib.experiments.policy_grid`).
- :func:`plot_who_paid`: per-guest bars of what the host asked, got back and what it cost.
- :func:`plot_overcommit`: the ESX idle-tax memory split (:func:`fphlib.experiments.overcommit`).
- :func:`plot_memhog_sequence`: runtimes and host swap of
  :func:`fphlib.experiments.memhog_sequence`.
- :func:`plot_cooperation`: who pays for uncooperative guests
  (:func:`fphlib.experiments.cooperation`).
- :class:`PolicyApp`: widgets for guest count (1-64), policy, mechanism, overcommit ratio and
  workload mix; Run runs the configuration and its never-asking twin and shows who paid.

Policies and mechanisms come from their registries (never hand-made lists).
"""

import numpy as np
import pandas as pd
import seaborn as sns

from ..api.asking import never_asking, per_guest, run_metrics
from ..api.config import SimConfig, policy_allows
from ..costs import SIZE_DEFAULTS
from ..experiments.scenarios import profile_name, run_caption
from ..hinting import REGISTRY as MECHS
from ..host.policy import REGISTRY, policy_module
from ..state.params import describe
from ..units import parse_size
from .figures import app_figure, figure_png
from .tables import plain_text, readable
from .widgets import STALE_CSS, StaleMarker, config_or_reason, run_configs

MIB = float(1 << 20)

# heatmap panels: run metric -> (title, scale, format)
HEATMAP_METRICS = {
    "host_rss_peak_bytes": ("host RSS peak (MiB)", MIB, ".0f"),
    "swap_peak_bytes": ("host swap peak (MiB)", MIB, ".0f"),
    "oom_kills": ("OOM kills", 1.0, ".0f"),
    "mean_slowdown": ("mean slowdown", 1.0, ".2f"),
    "worst_slowdown": ("worst slowdown", 1.0, ".2f"),
}

# per-profile sizes of the notebook's runs
GRID_SIZES = {
    "smoke": dict(guest_counts=(1, 2), guest_mem="64MiB", duration_s=6.0),
    "demo": dict(guest_counts=(1, 2, 4, 8), guest_mem="256MiB", duration_s=40.0),
    "full": dict(guest_counts=(1, 4, 16, 64), guest_mem="1GiB", duration_s=120.0),
}
APP_SIZES = {"smoke": ("64MiB", 6.0), "demo": ("256MiB", 40.0), "full": ("1GiB", 120.0)}
OVERCOMMIT_SIZES = {"smoke": dict(guest_mem="64MiB", duration_s=60.0,
                                   costs={"guest_overhead": 4 << 20}),
                    "demo": dict(guest_mem="256MiB", duration_s=120.0),
                    "full": dict(guest_mem="256MiB", duration_s=600.0)}
SEQUENCE_SCALES = {"smoke": 1 / 64, "demo": 1 / 8, "full": 1.0}
COOPERATION_SIZES = {"smoke": dict(scale=1 / 64, fractions=(0.0, 2 / 3)),
                     "demo": dict(scale=1 / 8), "full": dict(scale=1.0)}


def policies():
    """The registered host policies, in registry order."""

    return tuple(REGISTRY)


def policy_table():
    """One row per policy: its parameters and the mechanisms it can drive."""

    rows = []
    for name in policies():
        module = policy_module(name)
        rows.append(dict(policy=name, summary=plain_text((module.__doc__ or "").split("\n\n")[0]),
                         parameters="; ".join(describe(module.PARAMS)),
                         mechanisms=", ".join(m for m in MECHS if policy_allows(name, m))))
    return pd.DataFrame(rows).set_index("policy")


def plot_policy_heatmaps(grid, fig=None, metrics=tuple(HEATMAP_METRICS)):
    """Guest count x policy heatmaps of the run metrics in ``grid`` (policy_grid rows)."""
    fig = fig if fig is not None else app_figure((4 * len(metrics), 3.6))
    fig.clear()
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    order = [p for p in policies() if p in set(grid["policy"])]
    for ax, metric in zip(axes, metrics, strict=True):
        title, scale, fmt = HEATMAP_METRICS[metric]
        table = grid.pivot(index="guests", columns="policy", values=metric)[order] / scale
        table = table.replace([np.inf, -np.inf], np.nan)
        # colours from the metric's neutral value (0; 1 for a slowdown) up, so that noise
        # (slowdown 1.00 ± 0.01 everywhere) is not spread over the whole colour scale
        low = 1.0 if metric.endswith("slowdown") else 0.0
        high = max(float(np.nanmax(table.to_numpy())) if table.notna().any().any() else low,
                   low * 1.5 if low else 1.0)
        sns.heatmap(table, ax=ax, annot=True, fmt=fmt, cbar=False, cmap="rocket_r",
                    vmin=low, vmax=high, annot_kws={"size": 11})
        ax.set_title(title)
        ax.set_xlabel("")
        ax.tick_params(labelsize=10)
    return fig


def plot_who_paid(table, fig=None, title=None):
    """Per-guest bars: memory asked and returned (MiB), stall (s) and slowdown."""
    fig = fig if fig is not None else app_figure((14, 3.6))
    fig.clear()
    axes = fig.subplots(1, 3)
    g = table["guest"].astype(str)
    width = 0.4
    x = np.arange(len(table))
    axes[0].bar(x - width / 2, table["asked_bytes"] / MIB, width, label="asked")
    axes[0].bar(x + width / 2, table["returned_bytes"] / MIB, width, label="returned")
    axes[0].set_title("memory asked / returned (MiB)")
    axes[0].legend()
    axes[1].bar(x - width / 2, table["refault_stall_s"], width, label="refault stall")
    axes[1].bar(x + width / 2, table["swap_in_stall_s"], width, label="swap-in stall")
    axes[1].set_title("stall (s)")
    axes[1].legend()
    slow = table["slowdown"].replace([np.inf], np.nan)
    axes[2].bar(x, slow, color=["C3" if s > 1.05 else "C2" for s in slow.fillna(0)])
    axes[2].axhline(1.0, color="k", lw=0.8)
    axes[2].set_title("slowdown vs never asking")
    step = max(1, int(np.ceil(len(table) / 16)))  # at most 16 guest labels per panel
    for ax in axes:
        ax.set_xticks(x[::step], g[::step])
        ax.set_xlabel("guest" if step == 1 else f"guest (every {step}th labelled)")
    if title:
        fig.suptitle(title)
    return fig


def show(fig):
    """A notebook-displayable PNG of a (pyplot-free) Figure."""
    from IPython.display import Image

    return Image(data=figure_png(fig))


def plot_overcommit(frame, ax=None):
    """The idle-tax split: each guest's host memory (RSS: ESX's allocation, the balloon's
    and the host's swapping both taken out) per tau, busy vs idle."""
    if ax is None:
        ax = app_figure((6, 3.6)).subplots()
    d = frame.assign(memory_mib=frame["host_rss_bytes"] / MIB,
                     who=frame["role"] + " " + frame["guest"].astype(str))
    sns.barplot(d, x="tau", y="memory_mib", hue="who", ax=ax)
    ax.set_ylabel("host memory of the guest (MiB)")
    ax.set_title("ESX idle memory tax: memory split")
    return ax


def plot_memhog_sequence(frame, fig=None):
    """Runtime of each guest's memhog and the host swap, per mechanism."""
    fig = fig if fig is not None else app_figure((11, 3.6))
    fig.clear()
    a, b = fig.subplots(1, 2)
    sns.barplot(frame, x="guest", y="runtime_s", hue="mechanism", ax=a)
    a.set_title("memhog runtime (s)")
    d = frame.assign(swap_mib=frame["host_swap_end_bytes"] / MIB)
    sns.barplot(d, x="guest", y="swap_mib", hue="mechanism", ax=b)
    b.set_title("host swap at the end of each memhog (MiB)")
    return fig


def plot_cooperation(frame, fig=None):
    """Slowdown of the cooperative and the uncooperative guests, and the host's swap, against
    the share of uncooperative guests, per policy."""
    fig = fig if fig is not None else app_figure((11, 3.6))
    fig.clear()
    a, b = fig.subplots(1, 2)
    d = frame.assign(who=frame["policy"] + " (" + frame["asks"] + "), " + frame["role"],
                     swap_mib=frame["host_swap_out_bytes"] / MIB)
    sns.lineplot(d, x="uncooperative", y="slowdown", hue="who", marker="o", ax=a)
    a.set_xlabel("share of uncooperative guests")
    a.set_title("memhog slowdown vs all cooperating")
    runs = d.drop_duplicates(["mechanism", "policy", "uncooperative"])
    sns.lineplot(runs, x="uncooperative", y="swap_mib", hue="policy", marker="o", ax=b)
    b.set_xlabel("share of uncooperative guests")
    b.set_title("host swap-out (MiB)")
    return fig


def app_config(guests, policy, mechanism, ratio, active_fraction, guest_mem="256MiB",
               duration_s=40.0, seed=0):
    """The SimConfig of one :class:`PolicyApp` run: ``guests`` guests, a share
    ``active_fraction`` of them churning and the rest idle after one memhog pass, on a host
    with ``1 / ratio`` of their memory (plus overhead) and half of it as swap."""

    mem = parse_size(guest_mem, "guest_mem")
    active = int(round(guests * active_fraction))
    overrides = tuple(
        {"workload": "churn", "workload_params": {"target": 0.7, "ops_per_s": 20_000.0,
                                                  "boot": "16MiB"}} if g < active else
        {"workload": "memhog", "workload_params": {"size": int(mem * 0.7), "hold_s": 0.0,
                                                   "boot": "16MiB"}}
        for g in range(guests))
    ovh = SIZE_DEFAULTS["guest_overhead"][0]
    return SimConfig(host_mem=int(guests * mem / ratio) + guests * ovh,
                     host_swap=guests * mem // 2, guests=guests, guest_mem=mem,
                     guest_overrides=overrides, mechanism=mechanism, policy=policy,
                     policy_params={"interval_s": 2.0}, duration_s=duration_s,
                     sample_s=0.5, seed=seed)


class PolicyApp:
    """Pick guest count, policy, mechanism, overcommit ratio and workload mix; Run; see who
    paid (the run and its never-asking twin, fphlib.api.simulate.with_baseline)."""

    def __init__(self, profile=None, simulate=None):
        import ipywidgets as W

        self.profile = profile_name(profile)
        self._simulate = simulate
        self.results = {}
        self.table = None
        self.metrics = {}
        self.caption = ""  # what the results shown are: scenario, mechanism, policy
        self.guests = W.IntSlider(value=4, min=1, max=64, description="guests",
                                  continuous_update=False)
        self.policy = W.Dropdown(options=policies(), value="idle_tax", description="policy")
        self.mechanism = W.Dropdown(options=MECHS, value="balloon", description="mechanism")
        self.ratio = W.FloatSlider(value=1.5, min=1.0, max=3.0, step=0.1,
                                   description="overcommit", continuous_update=False)
        self.active = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.25,
                                    description="busy share", continuous_update=False)
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress")
        self.status = W.HTML(value=f"<i>{self.profile} profile: press Run</i>")
        self.run_log = W.Output()
        self.image = W.Image(format="png", layout=W.Layout(max_width="1200px"))
        self.html = W.HTML(value="")
        self.run_button.on_click(self.run)
        self._fig = app_figure((14, 3.6))
        self.stale_widgets = (self.image, self.html)
        controls = W.HBox([W.VBox([self.guests, self.ratio, self.active]),
                           W.VBox([self.policy, self.mechanism])])
        self.stale_marker = StaleMarker(controls, self.stale_widgets)
        self.problems = []  # why the controls' run cannot be made (Run disabled)
        for w in (self.policy, self.mechanism, self.guests):
            w.observe(self._on_change, names="value")
        self.widget = W.VBox([
            W.HTML(STALE_CSS), controls,
            W.HBox([self.run_button, self.progress, self.status]),
            self.run_log, self.stale_marker.banner, self.image, self.html])
        self.widget.add_class("fphlib-app")

    def _on_change(self, _change=None):
        """Say at once (status line, Run disabled) when the policy cannot drive the
        mechanism, or the run cannot be made."""
        if config_or_reason(self, self.status) is None:
            return
        if self.problems:  # it could not before: clear the reason
            self.status.value = f"<i>{self.profile} profile: press Run</i>"
        self.problems = []
        self.run_button.disabled = False

    def config(self):
        mem, duration = APP_SIZES[self.profile]
        return app_config(self.guests.value, self.policy.value, self.mechanism.value,
                          self.ratio.value, self.active.value, mem, duration)

    def run(self, _button=None):
        """Run the configuration and its never-asking twin, then redraw."""

        try:
            cfg = self.config()
        except ValueError:  # a policy that cannot drive the mechanism: say why
            self._on_change()
            return self.results
        return run_configs(self, {"policy": cfg, "never asking": never_asking(cfg)},
                           self._simulate, what=f"run(s), {self.profile} profile")

    def redraw(self):

        if not self.results:
            return
        res, base = self.results["policy"], self.results["never asking"]
        self.table = per_guest(res, base)
        self.metrics = run_metrics(res, self.table)
        cfg = res.config
        self.caption = f"Per guest: {run_caption(cfg)}"
        plot_who_paid(self.table, fig=self._fig,
                      title=f"Who paid: {run_caption(cfg)} ({self.profile} profile)")
        self.image.value = figure_png(self._fig)
        self.html.value = readable(pd.Series(self.metrics, name=cfg.policy), baseline=None,
                                   caption=f"Run metrics: {run_caption(cfg)}").to_html()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
