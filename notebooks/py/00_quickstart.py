# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # fphlib quickstart: who gets the memory back?
#
# Guests share one host. Each runs `memhog`: it touches most of its memory, holds it, frees
# it, waits, and repeats. Freeing memory inside a guest does **not** give it back to the
# host: without hinting, the host keeps backing every page the guest ever touched.
#
# The app starts on the `demo` preset (three 1.25 GiB guests on a 4 GiB host, memhog over
# 1 GiB in three rounds, 60 simulated seconds: the README's headline scenario scaled down by
# four, as every notebook by default; `FPHLIB_PROFILE` changes it). The `full` preset is the
# headline itself: **three 5 GiB guests on a 16 GiB host**, memhog over 4 GiB, 120 s. Change
# the **host memory**, **guest memory**, number of **guests**, **workload** and **duration**,
# or load a **preset** (`smoke`: seconds, `demo`, `full`); the line above the Run button says
# what will be simulated, and why Run is disabled when the scenario cannot run (guests larger
# than the host, boot footprints that do not fit). Then pick a **mechanism** and press
# **Run**:
#
# - `none`: the baseline; host RSS only grows;
# - `balloon`: the host asks each guest to keep only a target amount of memory; the guest
#   allocates the rest into a balloon and the host discards it;
# - `page_reporting`: Linux 5.7+ free page reporting; the guest reports free blocks of at
#   least **hint order** (order 9 = 2 MiB) and the host discards them;
# - the other designs argued over on LKML (Nitesh Narayan Lal's `hinting_v8` and
#   `hinting_bitmap`, Wei Wang's `xbitmap_hints`, the migration `free_page_hint`).
#
# The host **policy**, **host swap**, the balloon's **target**, and the **report capacity**
# and **delay** of the reporting mechanisms are there too, each enabled only where the chosen
# mechanism uses it.
#
# The top plot compares the chosen mechanism with `none`; below it, each guest's memory over
# time (an OOM-killed guest is marked); then the run metrics, with the change against `none`,
# and the spread over the guests (p50/p90/p99 of stalls and runtimes) with the VM exits by
# cause. Change a control after a run and a banner says which run the results are for until
# you press Run again. Hover over a control for help.

# %% tags=["parameters"]
import os

# the preset the app starts from; the test suite sets FPHLIB_PROFILE=smoke
PROFILE = os.environ.get("FPHLIB_PROFILE", "demo")

# %%
from fphlib.viz.widgets import SimulationApp, warm_up

# the first run after installing or editing fphlib compiles the simulator (a progress bar
# shows it); afterwards this cell shows nothing
warm_up();

# %%
app = SimulationApp(profile=PROFILE)
app.run()  # one run so the page opens with results; press Run after changing a control
app.widget

# %% [markdown] tags=["developer"]
# ## The same from Python
#
# The widgets only build a `SimConfig` (`app.config()`); everything they show comes from
# `fphlib.simulate(cfg)`, kept in `app.results` keyed by run label. For example, the
# per-guest metrics of the chosen run (`res.guest_summary`, made readable by
# `fphlib.viz.tables.readable`). Cells tagged `developer` are hidden in the Voila app.

# %% tags=["developer"]
from fphlib.viz.tables import readable

label, res = next(iter(app.results.items()))
print(f"preset {PROFILE}: {label} - {res}")
readable(res.guest_summary)
