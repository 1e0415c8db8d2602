"""Live migration and hinting races (notebook 03).

- :func:`migration_grid` / :func:`plot_migration`: migration time and bytes sent against guest
  size and free fraction, for the legacy migration (``none``) and the free page hint in its
  two modes (``alloc``: the merged driver; ``xbitmap``: the seed thread's proposal).
- :func:`race_grid` / :func:`plot_race`: lost writes of Wei Wang's xbitmap hints, read-only
  (``isolate=False``, racy) against isolating, as the host's discard latency (cost
  ``discard_latency``) and the guest's churn rate grow, with the memory returned and the
  zone->lock hold time they cost.
- :class:`MigrationApp`: the ipywidgets front end of one migration, three ways.

Sizes per ``FPHLIB_PROFILE`` (:data:`MIGRATION_SIZES`, :data:`RACE_GRID`): ``smoke`` runs in
seconds for the test suite.
"""

import numpy as np
import pandas as pd
import seaborn as sns

from ..api.config import SimConfig
from ..api.simulate import simulate
from ..costs import DEFAULTS
from ..experiments.scenarios import profile_name, run_caption
from ..units import PAGE_SIZE
from . import plots
from .figures import app_figure, figure_png, new_figure
from .tables import ReadableTable, format_value, readable
from .widgets import STALE_CSS, StaleMarker, field_help, fit_layout, run_configs

MIB = 1 << 20
GIB = 1 << 30

# profile -> (guest sizes, free fractions)
MIGRATION_SIZES = {
    "smoke": ((256 * MIB, 512 * MIB), (0.5, 0.9)),
    "demo": ((1 * GIB, 2 * GIB, 4 * GIB), (0.25, 0.5, 0.9)),
    "full": ((2 * GIB, 8 * GIB, 32 * GIB), (0.25, 0.5, 0.75, 0.9)),
}
# profile -> (discard latencies s, churn ops/s, guest size, run length s)
RACE_GRID = {
    "smoke": ((5e-6, 1e-3), (2_000.0, 20_000.0), 128 * MIB, 2.0),
    "demo": ((5e-6, 1e-4, 1e-3, 1e-2), (1_000.0, 10_000.0, 50_000.0), 256 * MIB, 6.0),
    "full": ((5e-6, 5e-5, 5e-4, 5e-3, 5e-2), (1_000.0, 5_000.0, 20_000.0, 100_000.0),
             1 * GIB, 20.0),
}
# the three migrations compared: label -> (mechanism, mechanism_params)
MIGRATIONS = {
    "none (legacy)": ("none", {}),
    "free_page_hint alloc": ("free_page_hint", {"mode": "alloc"}),
    "free_page_hint xbitmap": ("free_page_hint", {"mode": "xbitmap"}),
}


def migration_config(guest_mem, free_fraction, mechanism="none", mechanism_params=None,
                     touched=True, bandwidth="1.25GB", downtime_ms=400):
    """A guest that leaves ``free_fraction`` of its memory free, migrated at ``bandwidth``
    (10 GbE by default) with the downtime limit ``downtime_ms``.

    The boot footprint holds the used part. With ``touched`` the free part was used before
    (a memhog wrote it once and freed it: backed, non-zero garbage the legacy migration sends
    in full); without, it was never touched (zero pages, a 9-byte header each).
    """

    block = 4 * MIB
    boot = int((1.0 - free_fraction) * guest_mem) // block * block
    params = {"boot": boot}
    at_s = 0.5
    if touched:
        size = int(0.95 * (guest_mem - boot)) // block * block
        params = {"boot": boot, "size": size, "rate": "4GiB", "hold_s": 0.0, "repeat": 1}
        at_s += size / (4 * GIB) + size / (8 * GIB)  # touch, then free (default free_rate)
    pages = guest_mem // PAGE_SIZE
    est = pages * max(DEFAULTS["mig_page"][0], 4104 / 1.0e9) + 4 * 12e-3 * guest_mem / GIB
    duration = at_s + 1.5 * est + 1.0
    return SimConfig(
        host_mem=guest_mem + 2 * GIB, guest_mem=guest_mem, vcpus=4,
        workload="memhog" if touched else "idle", workload_params=params,
        mechanism=mechanism, mechanism_params=mechanism_params or {}, duration_s=duration,
        sample_s=duration / 10,
        migration={"at_s": at_s, "bandwidth": bandwidth, "downtime_ms": downtime_ms},
    )


def migration_grid(profile=None, **kwargs):
    """Migration time and bytes for every (size, free fraction, free memory touched before or
    not, migration): a tidy frame."""

    sizes, fractions = MIGRATION_SIZES[profile_name(profile)]
    rows = []
    for mem in sizes:
        for free in fractions:
            for touched in (False, True):
                for label, (mech, params) in MIGRATIONS.items():
                    cfg = migration_config(mem, free, mech, params, touched=touched, **kwargs)
                    s = simulate(cfg).summary
                    rows.append({
                        "guest_gib": mem / GIB, "free_fraction": free,
                        "free_memory": "used before" if touched else "never touched",
                        "migration": label, "migration_time_s": s["migration_time_s"],
                        "migration_gib": s["migration_bytes"] / GIB,
                        "downtime_ms": s["downtime_s"] * 1e3, "rounds": s["migration_rounds"],
                        "unavailable_s": s["migration_unavailable_s"],
                        "lost_writes": s["lost_writes"]})
    return pd.DataFrame(rows)


def migration_table(frame, caption=""):
    """The :func:`migration_grid` for people: one row per (guest size, free share, free memory
    used or not), one column per migration for its time and for the bytes it sent."""
    keys = ["guest_gib", "free_fraction", "free_memory"]
    wide = frame.pivot_table(index=keys, columns="migration", sort=False,
                             values=["migration_time_s", "migration_gib"], aggfunc="first")
    cells = {}
    for metric, what in (("migration_time_s", "time"), ("migration_gib", "sent")):
        unit = plots.metric_info(metric).unit
        for label in frame["migration"].unique():
            cells[f"{what}: {label}"] = [format_value(v, unit) for v in wide[(metric, label)]]
    out = pd.DataFrame(cells)
    info = [plots.metric_info(k) for k in keys]
    out.index = pd.MultiIndex.from_arrays(
        [[format_value(v, i.unit) for v in wide.index.get_level_values(k)]
         for k, i in zip(keys, info, strict=True)], names=[i.label for i in info])
    return ReadableTable(out, [], caption)


def plot_migration(frame, fig=None):
    """Migration time (top) and bytes sent (bottom) against guest size, one column per free
    fraction; colour and marker: the migration (the hinted ones are drawn thinner over the
    legacy one, offset a little so equal values stay visible), line style: whether the free
    memory was used before; the legend right of the panels, never over the data."""
    fractions = sorted(frame.free_fraction.unique())
    fig = new_figure(fig, (4.0 * len(fractions) + 2.6, 6.5))
    axes = fig.subplots(2, len(fractions), squeeze=False, sharex=True)
    labels = list(dict.fromkeys(frame.migration))
    markers = dict(zip(labels, ("o", "s", "^", "D", "v"), strict=False))
    widths = {m: 3.2 - 1.1 * k for k, m in enumerate(labels)}
    for j, free in enumerate(fractions):
        part = frame[frame.free_fraction == free]
        for i, (metric, label) in enumerate((("migration_time_s", "migration time (s)"),
                                             ("migration_gib", "sent (GiB)"))):
            ax = axes[i, j]
            for mig, touched in ((m, t) for m in labels
                                 for t in ("never touched", "used before")):
                sub = part[(part.migration == mig) & (part.free_memory == touched)]
                if sub.empty:
                    continue
                color = f"C{labels.index(mig)}"
                ax.plot(sub.guest_gib * (1 + 0.015 * labels.index(mig)), sub[metric],
                        color=color, marker=markers[mig], markersize=5,
                        linewidth=widths[mig], alpha=0.85,
                        linestyle="-" if touched == "used before" else "--",
                        label=f"{mig}, free memory {touched}")
            ax.set_xlabel("guest memory (GiB)")
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            if i == 0:
                ax.set_title(f"{free:.0%} of the guest free")
    handles, names = axes[0, -1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside right upper", frameon=False, fontsize=8)
    return fig


def race_config(isolate, discard_latency, ops_per_s, guest_mem, duration_s):
    """Churning guest with Wei Wang's xbitmap hints, isolating or read-only."""

    return SimConfig(
        host_mem=guest_mem + GIB, guest_mem=guest_mem, vcpus=2, workload="churn",
        workload_params={"boot": "16MiB", "target": 0.5, "ops_per_s": ops_per_s},
        mechanism="xbitmap_hints",
        mechanism_params={"isolate": isolate, "interval_s": 0.2},
        hint_order=0, costs={"discard_latency": discard_latency}, duration_s=duration_s,
        sample_s=duration_s / 10,
    )


def race_grid(profile=None):
    """Lost writes, memory returned and zone->lock hold of xbitmap hints over the grid."""

    lats, rates, mem, duration = RACE_GRID[profile_name(profile)]
    rows = []
    for isolate in (False, True):
        for lat in lats:
            for ops in rates:
                s = simulate(race_config(isolate, lat, ops, mem, duration)).summary
                rows.append({"variant": "isolating" if isolate else "read-only (racy)",
                             "discard_latency_ms": lat * 1e3, "churn_ops_per_s": ops,
                             "lost_writes": s["lost_writes"],
                             "returned_mib": s["reported_bytes"] / MIB,
                             "zone_lock_hold_ms": s["zone_lock_hold_s"] * 1e3})
    return pd.DataFrame(rows)


def plot_race(frame, fig=None):
    """Heatmaps (discard latency x churn rate) of each metric, one row per variant."""
    metrics = (("lost_writes", "lost writes", ".0f"),
               ("returned_mib", "discarded (MiB, total)", ".0f"),
               ("zone_lock_hold_ms", "zone->lock hold (ms)", ".2f"))
    variants = list(dict.fromkeys(frame.variant))
    fig = new_figure(fig, (4.2 * len(metrics), 3.2 * len(variants)))
    axes = fig.subplots(len(variants), len(metrics), squeeze=False)
    for i, variant in enumerate(variants):
        part = frame[frame.variant == variant]
        for j, (metric, label, fmt) in enumerate(metrics):
            grid = part.pivot_table(index="discard_latency_ms", columns="churn_ops_per_s",
                                    values=metric, aggfunc="mean")
            grid.index = [f"{v:g}" for v in grid.index]  # 1000, not "1000.0"
            grid.columns = [f"{v:,.0f}" for v in grid.columns]
            sns.heatmap(grid, annot=True, fmt=fmt, cbar=False, ax=axes[i, j],
                        cmap="rocket_r" if metric == "lost_writes" else "mako_r",
                        mask=np.isnan(grid.values))
            axes[i, j].set_title(f"{variant}: {label}")
            axes[i, j].set_xlabel("churn (ops/s)")
            axes[i, j].set_ylabel("discard latency (ms)")
    return fig


class MigrationApp:
    """ipywidgets front end: one guest migrated three ways (legacy, ``alloc``, ``xbitmap``).

    Controls: guest memory, free fraction, whether the free memory was used before, bandwidth
    and downtime limit; **Run** runs :func:`migration_config` for each migration and draws
    migration time, bytes sent and the time guest memory was unavailable, plus a table.

    Parameters
    ----------
    profile : {"smoke", "demo", "full"}, optional
        Offered guest sizes (default: ``$FPHLIB_PROFILE``, else ``"demo"``).
    """

    BANDWIDTHS = {"10 GbE (1.25GB/s)": "1.25GB", "migrate_set_speed 100G": "100GiB"}

    def __init__(self, profile=None):
        import ipywidgets as W

        self.profile = profile_name(profile)
        sizes, fractions = MIGRATION_SIZES[self.profile]

        self.guest_mem = W.Dropdown(options=[(f"{m / GIB:g} GiB", m) for m in sizes],
                                    value=sizes[-1], description="guest",
                                    tooltip=field_help("guest_mem") + " (the migrated guest)")
        self.free = W.FloatSlider(value=fractions[-1], min=0.05, max=0.95, step=0.05,
                                  description="free", readout_format=".0%",
                                  tooltip="share of the guest's memory free when the "
                                          "migration starts")
        self.touched = W.Checkbox(value=True, description="free memory used before",
                                  style={"description_width": "initial"},
                                  tooltip="the free memory was written before (so it is "
                                          "backed and not zero pages the migration could skip)")
        self.bandwidth = W.Dropdown(options=list(self.BANDWIDTHS.items()), value="1.25GB",
                                    description="bandwidth",
                                    tooltip="migration bandwidth (bytes per second)")
        self.downtime = W.IntSlider(value=400, min=10, max=2000, step=10,
                                    description="downtime ms", style={"description_width":
                                                                      "initial"},
                                    tooltip="downtime limit: the migration stops and copies "
                                            "the rest once it fits in this time")
        self.run_button = W.Button(description="Run", button_style="primary",
                                   tooltip="migrate the guest without a hint and with the "
                                           "free page hint (alloc and xbitmap modes)")
        self.progress = W.IntProgress(value=0, max=len(MIGRATIONS),
                                      tooltip="migrations done of this press of Run")
        self.status = W.HTML(value=f"<i>{self.profile} profile: press Run</i>")
        self.run_log = W.Output()
        self.image = W.Image(format="png", layout=fit_layout())
        self.table = W.HTML()
        self.stale_widgets = (self.image, self.table)
        self.results = {}
        self.caption = ""  # what the results shown are
        self.run_button.on_click(lambda _: self.run())
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        controls = W.VBox([W.HBox([self.guest_mem, self.free, self.touched], layout=wrap),
                           W.HBox([self.bandwidth, self.downtime, self.run_button], layout=wrap),
                           W.HBox([self.progress, self.status], layout=wrap)])
        self.stale_marker = StaleMarker(controls, self.stale_widgets)
        self.widget = W.VBox([W.HTML(STALE_CSS), controls, self.run_log,
                              self.stale_marker.banner, self.image, self.table])

    def configs(self):
        """``{label: SimConfig}`` of the current controls."""
        return {label: migration_config(self.guest_mem.value, self.free.value, mech, params,
                                        touched=self.touched.value,
                                        bandwidth=self.bandwidth.value,
                                        downtime_ms=self.downtime.value)
                for label, (mech, params) in MIGRATIONS.items()}

    def run(self):
        """Run the three migrations and redraw."""

        return run_configs(self, self.configs(), what="migration(s)")

    def frame(self):
        """One row per migration of the last run."""
        rows = []
        for label, res in self.results.items():
            s = res.summary
            rows.append({"migration": label, "time (s)": s["migration_time_s"],
                         "sent (MiB)": s["migration_bytes"] / MIB,
                         "downtime (ms)": s["downtime_s"] * 1e3,
                         "rounds": s["migration_rounds"],
                         "unavailable (s)": s["migration_unavailable_s"],
                         "lost writes": s["lost_writes"]})
        return pd.DataFrame(rows)

    def redraw(self):
        """Bars of time, bytes and unavailable time; the table below."""

        df = self.frame()
        fig = app_figure((10.5, 3.0))
        axes = fig.subplots(1, 3)
        for ax, col in zip(axes, ("time (s)", "sent (MiB)", "unavailable (s)"), strict=True):
            sns.barplot(df, x="migration", y=col, hue="migration", ax=ax, legend=False)
            ax.set_xlabel("")
            ax.tick_params(axis="x", labelrotation=20)
        self.image.value = figure_png(fig)

        metrics = ("migration_time_s", "migration_bytes", "downtime_s", "migration_rounds",
                   "migration_hinted_bytes", "migration_unavailable_s", "lost_writes")
        cfg = next(iter(self.results.values())).config
        self.caption = f"Live migration of guest 0: {run_caption(cfg, mechanism=False)}"
        self.table.value = readable(self.results, baseline="none (legacy)", metrics=metrics,
                                    caption=self.caption).to_html()
