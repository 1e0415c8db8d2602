"""ipywidgets apps for the notebooks (thin notebooks: all logic lives here).

:class:`SimulationApp` (notebook 00, the Binder landing page): controls for the mechanism,
the hint order (block size), the number of guests and the workload, a Run button, a progress
bar while runs compute, and plots plus a summary table that redraw in place.

Figures are rendered to PNG and shown in ``ipywidgets.Image`` widgets whose value is replaced
on each run, so the page never grows, nothing flickers, and it works the same in JupyterLab,
Voila and a headless kernel (no ipympl needed).
"""

import io

import ipywidgets as W

from . import plots
from .scenarios import headline_config, profile_name

PAGE_SIZE = 4096


def block_size_label(order):
    """Human size of a block of ``order``: 4 KiB × 2^order."""
    from ..units import format_size

    return format_size(PAGE_SIZE << int(order))


def figure_png(fig, dpi=96):
    """PNG bytes of a matplotlib Figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _figure(figsize):
    # A pyplot-free Figure: not registered with pyplot, so it is never auto-displayed as a
    # second copy below the app and is garbage-collected like any object.
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _mechanisms():
    from ..hinting import MECHANISMS

    return tuple(MECHANISMS)


def run_configs(app, configs, simulate=None, what="run(s)"):
    """Run ``{label: SimConfig}`` for a notebook app: its Run button is disabled meanwhile,
    its progress bar and status follow the runs, ``run_log`` holds each run's bar; then
    ``app.results`` is set and ``app.redraw()`` called. Returns the results."""
    if simulate is None:
        from ..api.simulate import simulate
    app.run_button.disabled = True
    app.progress.max = len(configs)
    app.progress.value = 0
    app.progress.bar_style = "info"
    try:
        results = {}
        for label, cfg in configs.items():
            app.status.value = f"running <b>{label}</b> …"
            with app.run_log:
                app.run_log.clear_output()
                results[label] = simulate(cfg, progress=True)
            app.progress.value += 1
        app.run_log.clear_output()
        app.results = results
        app.redraw()
        app.progress.bar_style = "success"
        wall = sum(float(r.summary.get("wall_s", 0.0)) for r in results.values())
        app.status.value = f"done: {len(results)} {what}, {wall:.1f} s of compute"
    except Exception as e:
        app.progress.bar_style = "danger"
        app.status.value = f"<b>error:</b> {type(e).__name__}: {e}"
        raise
    finally:
        app.run_button.disabled = False
    return app.results


def _workloads():
    from ..workloads import WORKLOADS

    # "trace" needs a file; the app offers the synthetic workloads.
    return tuple(w for w in WORKLOADS if w != "trace")


class SimulationApp:
    """Pick a mechanism, hint order, number of guests and workload; run; see plots + table.

    Parameters
    ----------
    profile : {"smoke", "demo", "full"}, optional
        Sizes of the runs (default: ``$FPHLIB_PROFILE``, else ``"demo"``).
    baseline : bool
        Also run ``mechanism="none"`` with the same settings and plot it for comparison.
    simulate : callable, optional
        ``simulate(cfg, progress=...) -> SimResult``; defaults to :func:`fphlib.simulate`.

    Attributes
    ----------
    results : dict
        ``{label: SimResult}`` of the last run.
    """

    def __init__(self, profile=None, baseline=True, simulate=None):
        self.profile = profile_name(profile)
        self.baseline = baseline
        self._simulate = simulate
        self.results = {}
        self.runs_done = 0
        self.mechanism = W.Dropdown(options=_mechanisms(), value="page_reporting",
                                    description="mechanism")
        self.hint_order = W.IntSlider(value=9, min=0, max=10, description="hint order",
                                      continuous_update=False)
        self.block_label = W.Label(self._block_text(9))
        self.guests = W.IntSlider(value=3, min=1, max=6, description="guests",
                                  continuous_update=False)
        self.workload = W.Dropdown(options=_workloads(), value="memhog", description="workload")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play",
                                   tooltip="run the simulation with these settings")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress",
                                      bar_style="")
        self.status = W.HTML(value=f"<i>{self.profile} profile: press Run</i>")
        # simulate(progress=True) draws a tqdm.auto bar over simulated time; displayed inside
        # this Output it shows up in the app (JupyterLab and Voila) while a run computes
        self.run_log = W.Output()
        self.rss_image = W.Image(format="png", layout=W.Layout(max_width="900px"))
        self.guest_image = W.Image(format="png", layout=W.Layout(max_width="1100px"))
        self.table = W.HTML(value="")
        self.hint_order.observe(self._on_order, names="value")
        self.run_button.on_click(self.run)
        self._rss_fig = _figure((8, 3.8))
        self._guest_fig = _figure((12, 3.4))
        controls = W.VBox([
            W.HBox([self.mechanism, self.workload]),
            W.HBox([self.hint_order, self.block_label]),
            W.HBox([self.guests, self.run_button]),
            W.HBox([self.progress, self.status]),
            self.run_log,
        ])
        self.widget = W.VBox([controls, self.rss_image, self.guest_image, self.table])
        self.widget.add_class("fphlib-app")

    def _block_text(self, order):
        return f"block size {block_size_label(order)}"

    def _on_order(self, change):
        self.block_label.value = self._block_text(change["new"])

    def config(self, mechanism=None):
        """The SimConfig the controls describe (``mechanism`` overrides the dropdown)."""
        mech = mechanism or self.mechanism.value
        overrides = dict(guests=self.guests.value, hint_order=self.hint_order.value)
        base = headline_config(self.profile, mech, **overrides)
        if self.workload.value != base.workload:
            params = workload_params_for(self.workload.value, base)
            base = type(base).from_dict({**base.to_dict(), "workload": self.workload.value,
                                         "workload_params": params})
        return base

    def configs(self):
        """{label: SimConfig} of one press of Run: the chosen mechanism, plus the baseline."""
        chosen = self.config()
        out = {plots.run_label(_Cfg(chosen)): chosen}
        if self.baseline and chosen.mechanism != "none":
            out["none"] = self.config("none")
        return out

    def run(self, _button=None):
        """Run the configured simulations, updating the progress bar, then redraw."""
        run_configs(self, self.configs(), self._simulate)
        self.runs_done += 1
        return self.results

    def redraw(self):
        """Redraw the plots and the table from :attr:`results` (in place)."""
        if not self.results:
            return
        chosen_label = next(iter(self.results))
        ax = self._rss_fig.axes[0] if self._rss_fig.axes else self._rss_fig.add_subplot()
        plots.plot_host_rss(self.results, ax=ax)
        self.rss_image.value = figure_png(self._rss_fig)
        plots.plot_guest_memory(self.results[chosen_label], fig=self._guest_fig,
                                title=f"per-guest memory: {chosen_label}")
        self.guest_image.value = figure_png(self._guest_fig)
        table = plots.format_summary(plots.summary_table(self.results))
        self.table.value = table.to_html(classes="fphlib-summary", border=0)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class _Cfg:
    """Adapter so :func:`plots.run_label` can label a config before it has run."""

    def __init__(self, config):
        self.config = config


def workload_params_for(workload, base):
    """Workload parameters sized like ``base`` (a headline config) for another workload."""
    params = dict(base.workload_params)
    keep = {k: params[k] for k in ("boot",) if k in params}
    if workload == "memhog":
        return params
    if workload == "churn":
        return {**keep, "target": 0.6}
    return keep
