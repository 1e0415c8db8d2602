"""ipywidgets apps for the notebooks (thin notebooks: all logic lives here).

:class:`SimulationApp` (notebook 00, the Binder landing page): controls for the scenario
(host memory and swap, guests, guest memory, workload, duration, a preset), the mechanism,
the hint order (block size), the host policy, the balloon target, report capacity and delay
(each enabled only where the mechanism uses it), a Run button (disabled, with the reasons,
for a scenario :func:`fphlib.api.config.scenario_problems` refuses), a progress bar while
runs compute, and plots plus the summary and spread tables that redraw in place.

:class:`StaleMarker`: every app's banner saying that the results shown are for another run
than the controls describe, until Run.

Figures are rendered to PNG and shown in ``ipywidgets.Image`` widgets whose value is replaced
on each run, so the page never grows, nothing flickers, and it works the same in JupyterLab,
Voila and a headless kernel (no ipympl needed).
"""

import contextlib
import dataclasses
import html
import warnings

import ipywidgets as W

from ..api import warmup as wu
from ..api.config import FIELD_HELP, policy_allows, scenario_problems
from ..experiments.scenarios import (
    PRESET_SIZES,
    PROFILES,
    headline_config,
    profile_name,
    run_caption,
    scenario_title,
)
from ..hinting import MECHANISMS, mechanism_module, takes_hint_order
from ..host.policy import POLICIES
from ..sweep import replicate_seeds
from ..units import PAGE_SIZE, format_size, parse_size
from ..workloads import WORKLOADS
from . import plots
from .figures import app_figure, figure_png
from .plots import SEED_MARK
from .tables import guest_spread, plain_text, readable, readable_replicates


def block_size_label(order):
    """Human size of a block of ``order``: 4 KiB × 2^order."""

    return format_size(PAGE_SIZE << int(order))


def mechanism_names():
    """The registered mechanisms (plug-ins included), the app's choices."""
    return tuple(MECHANISMS)


# Plots and tables of the previous run are greyed while a new one computes (class toggled by
# run_configs) and while the controls describe another run than the one shown (StaleMarker);
# every app puts this style into its widget.
STALE_CSS = ("<style>.fphlib-stale{opacity:0.35;filter:grayscale(1);transition:opacity .2s}"
             ".fphlib-stale-banner{background:#fff3cd;border-left:4px solid #e0a800;"
             "padding:4px 8px;margin:4px 0}</style>")


def value_controls(widget):
    """The controls inside ``widget`` (a box tree): value widgets and buttons that are not
    displays (HTML, labels, images, progress bars), in display order."""
    if isinstance(widget, W.Box):
        for child in widget.children:
            yield from value_controls(child)
    elif isinstance(widget, W.ValueWidget | W.Button) and not isinstance(
            widget, W.HTML | W.Label | W.Image | W.IntProgress | W.FloatProgress):
        yield widget


class StaleMarker:
    """Says, the moment a control differs from the run shown, that the results below are for
    another run: a banner naming the run shown (its caption) and asking for Run, and the
    result widgets greyed (class ``fphlib-stale``). Back to the run's values: cleared.

    Parameters
    ----------
    controls : ipywidgets.Box
        The app's controls (every value widget in it is watched: :func:`value_controls`).
    stale_widgets : sequence of ipywidgets.Widget
        The plots and tables that show the results.

    Attributes
    ----------
    banner : ipywidgets.HTML
        Empty while the results match the controls (or before the first run).
    """

    def __init__(self, controls, stale_widgets=()):
        self.controls = [w for w in value_controls(controls) if not isinstance(w, W.Button)]
        self.stale_widgets = tuple(stale_widgets)
        self.banner = W.HTML(value="")
        self.banner.add_class("fphlib-stale-note")
        self._shown = None
        self.caption = ""
        for w in self.controls:
            w.observe(self.check, names="value")

    def values(self):
        """The controls' values now."""
        return tuple(w.value for w in self.controls)

    def shown(self, caption, values=None):
        """The results now shown are of ``caption``, run with the controls at ``values``
        (default: their values now)."""
        self._shown = self.values() if values is None else tuple(values)
        self.caption = caption
        self.check()

    @property
    def stale(self):
        """Whether results are shown and the controls differ from their run."""
        return self._shown is not None and self.values() != self._shown

    def changed(self):
        """Descriptions of the controls that differ from the run shown."""
        if self._shown is None:
            return []
        return [w.description or type(w).__name__
                for w, was in zip(self.controls, self._shown, strict=True) if w.value != was]

    def check(self, _change=None):
        """Update the banner and the greying to what the controls say now."""
        if self.stale:
            what = html.escape(", ".join(self.changed()))
            self.banner.value = (
                f'<div class="fphlib-stale-banner">⚠ The results below are for '
                f"<b>{html.escape(self.caption)}</b>; the controls have changed ({what}): "
                "press <b>Run</b> to see the new settings.</div>")
            for w in self.stale_widgets:
                w.add_class("fphlib-stale")
        else:
            self.banner.value = ""
            for w in self.stale_widgets:
                w.remove_class("fphlib-stale")


def fit_layout():
    """Layout of a plot image: its natural width, scaled down to the page when narrower."""
    return W.Layout(max_width="100%", height="auto", align_self="flex-start")


def field_help(name):
    """Help text of SimConfig field ``name`` (tooltips), from ``FIELD_HELP``."""
    return FIELD_HELP[name][1]


def mechanism_help(name):
    """The first paragraph of mechanism ``name``'s module docstring as plain text (a tooltip
    and the note beside the dropdown): whole sentences, never cut at a line end."""

    doc = (mechanism_module(name).__doc__ or name).strip()
    return plain_text(doc.split("\n\n")[0])


def config_or_reason(app, where):
    """``app.config()``, or None when the controls make no valid SimConfig: then the reason
    is in ``app.problems`` and shown in the HTML widget ``where``, and Run is disabled."""
    try:
        return app.config()
    except ValueError as e:
        app.problems = [str(e)]
        where.value = f"<b>cannot run this:</b> {html.escape(str(e), quote=False)}"
        app.run_button.disabled = True
        return None


@contextlib.contextmanager
def computing(app, stale=()):
    """While a notebook app computes: its Run button disabled and the ``stale`` widgets (the
    previous plots and table) greyed; an error is shown in its status line (and its progress
    bar, if it has one, turns red) and propagates."""
    stale = tuple(stale)
    for w in stale:
        w.add_class("fphlib-stale")
    app.run_button.disabled = True
    try:
        yield
    except Exception as e:
        if getattr(app, "progress", None) is not None:
            app.progress.bar_style = "danger"
        app.status.value = f"<b>error:</b> {type(e).__name__}: {e}"
        raise
    finally:
        app.run_button.disabled = bool(getattr(app, "problems", None))
        for w in stale:
            w.remove_class("fphlib-stale")
        marker = getattr(app, "stale_marker", None)
        if marker is not None:  # a control changed while it ran: grey again
            marker.check()


def run_configs(app, configs, simulate=None, what="run(s)"):
    """Run ``{label: SimConfig}`` for a notebook app: its Run button is disabled meanwhile,
    its progress bar and status follow the runs, ``run_log`` holds each run's bar, and the
    widgets in ``app.stale_widgets`` (if any: the previous plots and table) are greyed; then
    ``app.results`` is set, ``app.redraw()`` called (it sets ``app.caption``: what the
    results are) and ``app.stale_marker`` (a :class:`StaleMarker`, if any) told that the
    results shown are of the controls' values when Run was pressed. Returns the results."""
    if simulate is None:  # the parameter shares the name
        from ..api.simulate import simulate
    marker = getattr(app, "stale_marker", None)
    ran_with = marker.values() if marker is not None else None
    with computing(app, getattr(app, "stale_widgets", ())):
        app.progress.max = len(configs)
        app.progress.value = 0
        app.progress.bar_style = "info"
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
        if marker is not None:
            marker.shown(app.caption, ran_with)
        app.progress.bar_style = "success"
        wall = sum(float(r.summary.get("wall_s", 0.0)) for r in results.values())
        app.status.value = f"done: {len(results)} {what}, {wall:.1f} s of compute"
    return app.results


def seeds_slider():
    """The apps' seeds control: 1..5 replicate runs of each configuration (default 1)."""
    return W.IntSlider(value=1, min=1, max=5, description="seeds", continuous_update=False,
                       tooltip="replicate runs of each mechanism with other seeds: host RSS "
                               "with a 95 % band, the summary as mean ± 95 % interval")


def replicate_configs(configs, seeds):
    """``{label: SimConfig}`` once per replicate seed: ``configs`` itself for one seed; else
    each config with the seeds of :func:`fphlib.sweep.replicate_seeds` (from its own seed:
    configs sharing a seed share the replicates), labelled ``"LABEL · seed #r"`` from the
    second (:data:`fphlib.viz.plots.SEED_MARK`)."""
    if seeds == 1:
        return dict(configs)
    return {label + (f"{SEED_MARK}{r}" if r else ""): dataclasses.replace(cfg, seed=seed)
            for label, cfg in configs.items()
            for r, seed in enumerate(replicate_seeds(cfg.seed, seeds))}


def workload_names():
    """The registered workloads the apps offer (not ``trace``, which needs a file)."""
    return tuple(w for w in WORKLOADS if w != "trace")


def _gib_options(lo_mib, hi_gib):
    """Sizes offered by the memory sliders: whole 4 MiB multiples, 256 MiB steps."""
    out, mib = [], lo_mib
    while mib <= hi_gib * 1024:
        out.append((f"{mib / 1024:g} GiB" if mib >= 1024 else f"{mib} MiB", f"{mib}MiB"))
        mib += 256 if mib < 8192 else 1024
    return out


class SimulationApp:
    """The quickstart: pick a scenario (host and guest memory, guests, workload, duration — or
    a preset) and a mechanism; run it and the baseline; see plots and a readable table.

    Parameters
    ----------
    profile : {"smoke", "demo", "full"}, optional
        The preset the controls start from (default: ``$FPHLIB_PROFILE``, else ``"demo"``,
        every notebook's default; ``"full"`` is the README's headline scenario); it also sets
        memhog's rhythm (hold, gap, rounds).
    baseline : bool
        Also run ``mechanism="none"`` with the same settings and plot it for comparison.
    simulate : callable, optional
        ``simulate(cfg, progress=...) -> SimResult``; defaults to :func:`fphlib.simulate`.

    Attributes
    ----------
    results : dict
        ``{label: SimResult}`` of the last run.
    problems : list of str
        Why the scenario the controls describe cannot run meaningfully
        (:func:`fphlib.api.config.scenario_problems`); Run is disabled while there are any.
    caption : str
        What the results shown are (scenario, mechanism, policy).
    """

    def __init__(self, profile=None, baseline=True, simulate=None):

        self.profile = profile_name(profile)
        self.baseline = baseline
        self._simulate = simulate
        self.results = {}
        self.runs_done = 0
        self.problems = []  # why the controls' scenario cannot run (Run disabled)
        wide = {"description_width": "initial"}
        self.preset = W.ToggleButtons(
            options=PROFILES, value=self.profile, description="preset",
            tooltips=[f"{p}: {s['host_mem']} host, {s['guest_mem']} guests, "
                      f"{s['duration_s']:g} s" for p, s in PRESET_SIZES.items()],
            style={**wide, "button_width": "70px"},
            tooltip="load a preset scenario: smoke (seconds), demo (Binder), full (headline)")
        self.reset_button = W.Button(
            description="reset", icon="undo", layout=W.Layout(width="80px"),
            tooltip="load the selected preset again: its sizes, guests and workload")
        self.host_mem = W.SelectionSlider(options=_gib_options(512, 64), description="host memory",
                                          tooltip=field_help("host_mem"), style=wide,
                                          continuous_update=False)
        self.guest_mem = W.SelectionSlider(options=_gib_options(256, 16),
                                           description="guest memory",
                                           tooltip=field_help("guest_mem"), style=wide,
                                           continuous_update=False)
        self.guests = W.IntSlider(value=3, min=1, max=6, description="guests",
                                  tooltip=field_help("guests"), continuous_update=False)
        self.duration = W.IntSlider(value=120, min=10, max=600, step=5, description="duration (s)",
                                    tooltip=field_help("duration_s"), style=wide,
                                    continuous_update=False)
        self.mechanism = W.Dropdown(options=mechanism_names(), value="page_reporting",
                                    description="mechanism",
                                    tooltip=field_help("mechanism"))
        self.mechanism_note = W.HTML()
        self.hint_order = W.IntSlider(value=9, min=0, max=10, description="hint order",
                                      tooltip=field_help("hint_order"), style=wide,
                                      continuous_update=False)
        self.block_label = W.HTML(self._block_text(9))
        self.workload = W.Dropdown(options=workload_names(), value="memhog", description="workload",
                                   tooltip=field_help("workload"))
        self.seeds = seeds_slider()
        self.host_swap = W.SelectionSlider(options=[("0", "0MiB"), *_gib_options(256, 64)],
                                           value="0MiB", description="host swap",
                                           tooltip=field_help("host_swap"), style=wide,
                                           continuous_update=False)
        self.policy = W.Dropdown(options=POLICY_NAMES, value="static", description="policy",
                                 tooltip=field_help("policy"))
        self.balloon_target = W.Dropdown(
            options=BALLOON_TARGETS, value=None, description="balloon target", style=wide,
            tooltip=field_help("balloon_target") + " (balloon with policy static only)")
        self.capacity = W.Dropdown(
            options=[("default", None), *((str(2 ** k), 2 ** k) for k in range(11))],
            value=None, description="report capacity", style=wide,
            tooltip="blocks per report (mechanism parameter 'capacity'; mechanisms that "
                    "report in batches only)")
        self.delay = W.Dropdown(
            options=[("default", None), ("0.1 s", 0.1), ("0.5 s", 0.5), ("2 s", 2.0),
                     ("10 s", 10.0)],
            value=None, description="report delay", style=wide,
            tooltip="work delay after a request (mechanism parameter 'delay_s': "
                    "PAGE_REPORTING_DELAY; page_reporting only)")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play",
                                   tooltip="run the simulation with these settings, and the "
                                           "same without hinting (none) to compare")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress",
                                      bar_style="", tooltip="runs done of this press of Run")
        self.status = W.HTML(value="<i>press Run</i>")
        self.scenario = W.HTML()
        # simulate(progress=True) draws a tqdm.auto bar over simulated time; displayed inside
        # this Output it shows up in the app (JupyterLab and Voila) while a run computes
        self.run_log = W.Output()
        self.rss_image = W.Image(format="png", layout=fit_layout())
        self.guest_image = W.Image(format="png", layout=fit_layout())
        self.table = W.HTML(value="")
        self.stale_widgets = (self.rss_image, self.guest_image, self.table)
        self.preset.observe(self._on_preset, names="value")
        self.hint_order.observe(self._on_order, names="value")
        self.mechanism.observe(self._enable_controls, names="value")
        self.policy.observe(self._enable_controls, names="value")
        for w in (self.host_mem, self.guest_mem, self.guests, self.duration, self.workload,
                  self.mechanism, self.hint_order, self.host_swap, self.policy,
                  self.balloon_target, self.capacity, self.delay):
            w.observe(self._on_change, names="value")
        self.run_button.on_click(self.run)
        self.reset_button.on_click(self.reset)
        self._rss_fig = app_figure((8, 3.8))
        self._guest_fig = app_figure((12, 3.6))
        self._on_preset({"new": self.profile})
        self._enable_controls()
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        controls = W.VBox([
            W.HBox([self.preset, self.reset_button, self.seeds], layout=wrap),
            W.HBox([self.host_mem, self.guest_mem, self.guests], layout=wrap),
            W.HBox([self.workload, self.duration, self.host_swap], layout=wrap),
            W.HBox([self.mechanism, self.mechanism_note], layout=wrap),
            W.HBox([self.hint_order, self.block_label], layout=wrap),
            W.HBox([self.policy, self.balloon_target, self.capacity, self.delay],
                   layout=wrap),
            self.scenario,
            W.HBox([self.run_button, self.progress, self.status], layout=wrap),
            self.run_log,
        ])
        self.caption = ""  # what the results shown are: scenario, mechanism, policy
        self.stale_marker = StaleMarker(controls, self.stale_widgets)
        self.widget = W.VBox([W.HTML(STALE_CSS), controls, self.stale_marker.banner,
                              self.rss_image, self.guest_image, self.table])
        self.widget.add_class("fphlib-app")

    def _block_text(self, order):
        return f"block size {block_size_label(order)}"

    def _on_order(self, change):
        self.block_label.value = self._block_text(change["new"])

    def _on_preset(self, change):

        sizes = PRESET_SIZES[change["new"]]
        self.profile = change["new"]
        self.host_mem.value = _as_mib(sizes["host_mem"])
        self.guest_mem.value = _as_mib(sizes["guest_mem"])
        self.duration.value = int(sizes["duration_s"])
        self._on_change()

    def reset(self, _button=None):
        """Load the selected preset again (a preset already selected cannot be clicked):
        its sizes and the headline scenario's guests and workload."""
        headline = headline_config(self.preset.value, "none")
        self.guests.value = headline.guests
        self.workload.value = headline.workload
        self._on_preset({"new": self.preset.value})

    def _enable_controls(self, _change=None):
        """Disable the controls the mechanism (and, for the balloon target, the policy)
        ignores, and say so."""

        mech = self.mechanism.value
        uses_order = takes_hint_order(mech)
        self.hint_order.disabled = not uses_order
        self.block_label.value = (self._block_text(self.hint_order.value) if uses_order else
                                  f"<i>{mech} does not use the hint order</i>")
        params = mechanism_module(mech).PARAMS
        # only policy "static" holds a balloon to a target (the others ask by their own rule)
        self.balloon_target.disabled = mech != "balloon" or self.policy.value != "static"
        self.capacity.disabled = "capacity" not in params
        self.delay.disabled = "delay_s" not in params
        self.mechanism.tooltip = f"{field_help('mechanism')}. {mech}: {mechanism_help(mech)}"
        self.mechanism_note.value = f"<small>{mechanism_help(mech)}</small>"

    def _on_change(self, _change=None):
        """Show the sizes being simulated; when the combination is invalid or cannot run
        meaningfully (:func:`fphlib.api.config.scenario_problems`), say why and disable Run."""

        with warnings.catch_warnings():  # the problems below say it, once
            warnings.simplefilter("ignore", UserWarning)
            cfg = config_or_reason(self, self.scenario)
        if cfg is None:
            return
        self.problems = scenario_problems(cfg)
        self.run_button.disabled = bool(self.problems)
        total = cfg.guests * parse_size(cfg.guest_mem, "guest_mem")
        host = parse_size(cfg.host_mem, "host_mem")
        self.scenario.value = (
            f"simulating <b>{scenario_title(cfg)}</b>: guests total {format_size(total)}, "
            f"{total / host:.2f}× the host's RAM")
        if self.problems:
            self.scenario.value += (
                "<br><b>Run is disabled: this cannot run meaningfully.</b><ul>"
                + "".join(f"<li>{html.escape(p, quote=False)}</li>" for p in self.problems)
                + "</ul>")

    def config(self, mechanism=None):
        """The SimConfig the controls describe (``mechanism`` overrides the dropdown: the
        baseline run, which keeps the policy when that policy can drive it, else ``static``,
        and none of the chosen mechanism's settings)."""
        mech = mechanism or self.mechanism.value
        overrides = dict(guests=self.guests.value, hint_order=self.hint_order.value,
                         host_mem=self.host_mem.value, guest_mem=self.guest_mem.value,
                         duration_s=float(self.duration.value), host_swap=self.host_swap.value)
        policy = self.policy.value
        overrides["policy"] = policy if mechanism is None or policy_allows(policy, mech) \
            else "static"
        if mechanism is None:  # the chosen mechanism's own settings, where they apply
            params = mechanism_module(mech).PARAMS
            if not self.balloon_target.disabled and self.balloon_target.value is not None:
                overrides["balloon_target"] = int(
                    parse_size(self.guest_mem.value, "guest_mem") * self.balloon_target.value)
            mparams = {k: w.value for k, w in (("capacity", self.capacity),
                                               ("delay_s", self.delay))
                       if k in params and w.value is not None}
            if mparams:
                overrides["mechanism_params"] = mparams
        base = headline_config(self.profile, mech, **overrides)
        if self.workload.value != base.workload:
            params = workload_params_for(self.workload.value, base)
            base = type(base).from_dict({**base.to_dict(), "workload": self.workload.value,
                                         "workload_params": params})
        return base

    def configs(self):
        """{label: SimConfig} of one press of Run: the chosen mechanism, plus the baseline;
        with ``seeds`` > 1 each of them once per replicate seed
        (:func:`fphlib.sweep.replicate_seeds`), labelled "LABEL · seed #r" from the second."""
        chosen = self.config()
        base = {plots.run_label(_Cfg(chosen)): chosen}
        if self.baseline and chosen.mechanism != "none":
            base["none"] = self.config("none")
        return replicate_configs(base, self.seeds.value)

    def run(self, _button=None):
        """Run the configured simulations, updating the progress bar, then redraw; nothing
        (the reasons stay shown) while :attr:`problems` says it cannot run meaningfully."""
        if self.problems:
            return self.results
        run_configs(self, self.configs(), self._simulate)
        self.runs_done += 1
        return self.results

    def redraw(self):
        """Redraw the plots and the table from :attr:`results` (in place)."""

        if not self.results:
            return
        chosen_label = next(iter(self.results))
        chosen = self.results[chosen_label].config
        scenario = scenario_title(chosen)
        groups = plots.seed_groups(self.results)  # run label -> its replicate runs
        n_seeds = len(groups[chosen_label])
        seeds_text = plots.seeds_text(n_seeds)
        self.caption = run_caption(chosen) + seeds_text
        ax = self._rss_fig.axes[0] if self._rss_fig.axes else self._rss_fig.add_subplot()
        rss_title = f"Host RSS over time\n{run_caption(chosen, mechanism=False)}{seeds_text}"
        plots.plot_host_rss(plots.host_frame(self.results, hue="run"), ax=ax, title=rss_title,
                            host_mem=parse_size(chosen.host_mem, "host_mem"))
        # the PNGs carry their figure's title as metadata too (the browser test reads it)
        self.rss_image.value = figure_png(self._rss_fig, title=rss_title.replace("\n", ": "))
        guest_title = f"Per-guest memory, {chosen_label}: {scenario} · policy {chosen.policy}"
        plots.plot_guest_memory(self.results[chosen_label], fig=self._guest_fig,
                                title=guest_title)
        self.guest_image.value = figure_png(self._guest_fig, title=guest_title)
        table = readable_replicates(self.results, caption=f"Summary: {self.caption}")
        firsts = {label: runs_[0] for label, runs_ in groups.items()}
        spread = readable(guest_spread(firsts),
                          caption=f"Over the {chosen.guests} guest(s), and VM exits by cause"
                                  + (" (first seed)" if n_seeds > 1 else ""))
        self.table.value = table.to_html(classes="fphlib-summary") + spread.to_html(
            classes="fphlib-spread")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


POLICY_NAMES = tuple(POLICIES)
# the balloon target offered by the quickstart, as a share of the guest's memory (None: the
# headline's, fphlib.experiments.scenarios.balloon_target_for)
BALLOON_TARGETS = [("boot + 20 % (default)", None), ("25 % of the guest", 0.25),
                   ("50 % of the guest", 0.5), ("75 % of the guest", 0.75)]


def _as_mib(size):
    """``size`` as the "<n>MiB" string the memory sliders use."""

    return f"{parse_size(size, 'size') >> 20}MiB"


def warm_up(show=None):
    """Compile the simulator now if it is not warm, with a progress bar; nothing when warm.

    Shows "compiling the simulator (first run only, ~N s)" and a bar driven by
    :func:`fphlib.warmup`'s ``progress`` callback (the quickstart's first cell).

    Parameters
    ----------
    show : callable, optional
        Displays the widget before the compile starts (default ``IPython.display.display``).

    Returns
    -------
    ipywidgets.VBox or None
        The widget shown, or None when the numba cache was already warm.
    """

    if wu.is_warm():
        return None
    if show is None:
        from IPython.display import display as show
    bar = W.IntProgress(value=0, min=0, max=1, bar_style="info",
                        layout=W.Layout(width="320px"))
    label = W.HTML(f"compiling the simulator (first run only, ~{wu.COLD_WARMUP_S} s) …")
    box = W.VBox([label, bar])
    show(box)

    def step(done, total, what):
        bar.max = max(total, 1)
        bar.value = done
        label.value = (f"compiling the simulator (first run only, ~{wu.COLD_WARMUP_S} s): "
                       f"{what} ({done}/{total})")

    wu.warmup(progress=step)
    bar.bar_style = "success"
    label.value = "the simulator is compiled (cached on disk for the next runs)"
    return box


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
