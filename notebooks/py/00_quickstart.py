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
# Three guests share one host. Each runs `memhog`: it touches most of its memory, holds it,
# frees it, waits, and repeats. Freeing memory inside a guest does **not** give it back to
# the host: without hinting, the host keeps backing every page the guest ever touched.
#
# Pick a **mechanism** and press **Run**:
#
# - `none`: the baseline; host RSS only grows;
# - `balloon`: the host asks each guest to keep only a target amount of memory; the guest
#   allocates the rest into a balloon and the host discards it;
# - `page_reporting`: Linux 5.7+ free page reporting; the guest reports free blocks of at
#   least **hint order** (order 9 = 2 MiB) and the host discards them.
#
# The top plot compares the chosen mechanism with `none`; below it, each guest's memory
# over time; then the run metrics. `FPHLIB_PROFILE` sizes the runs: `smoke` (seconds),
# `demo` (the Binder default) or `full` (three 5 GiB guests on a 16 GiB host).

# %% tags=["parameters"]
import os

PROFILE = os.environ.get("FPHLIB_PROFILE", "demo")
print(f"profile: {PROFILE}")

# %%
from fphlib.viz.widgets import SimulationApp

app = SimulationApp(profile=PROFILE)
app.run()  # one run so the page opens with results; press Run after changing a control
app.widget

# %% [markdown]
# ## The same from Python
#
# The widgets only build a `SimConfig` (`app.config()`); everything they show comes from
# `fphlib.simulate(cfg)`, kept in `app.results` keyed by run label. For example, the
# per-guest metrics of the chosen run:

# %%
label, res = next(iter(app.results.items()))
print(label, "-", res)
res.guest_summary
