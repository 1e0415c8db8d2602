# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Every mechanism on the same workload
#
# The hinting designs argued over on LKML, run on one scenario so that only the mechanism
# changes: the guests, their workload, the host and the costs stay the same. The list below
# is whatever `fphlib.hinting.REGISTRY` holds; a newly registered mechanism appears here (and
# in every plot) by itself.
#
# 1. **Side by side**: host RSS over time, how much memory came back to the host, and what
#    it cost (report requests, VM exits, zone->lock hold time, guest CPU).
# 2. **Admission** (Nitesh Narayan Lal's v8 cover letter): launch 5 GiB guests one after
#    another, each mallocs and memsets 4 GiB then exits, until the host (15837 MiB, no
#    swap) OOM-kills one. Published: **3 guests without hinting, 5 to 7 with hinting**.
#
# `FPHLIB_PROFILE` sizes the runs: `smoke` (seconds, the test suite), `demo` (the Binder
# default) or `full` (the cover letter's sizes).

# %% tags=["parameters"]
import os

from IPython.display import display

from fphlib.experiments import admission, admission_table, v8_admission_kwargs
from fphlib.viz import mechanisms as vm
from fphlib.viz.tables import readable_replicates, readable_rows

PROFILE = os.environ.get("FPHLIB_PROFILE", "demo")
print(f"profile: {PROFILE}")

# %%
readable_rows(vm.mechanism_table(), index="mechanism")

# %% [markdown]
# ## 1. Side by side
#
# Pick the **mechanisms** to compare (ctrl/shift-click), the **hint order** (the block size
# the reporting mechanisms work in; `none`, `balloon` and `hinting_v8` ignore it), the number
# of **guests**, the **workload** and the **seeds**, then press **Run**. The scenario is the
# headline one (guests start staggered; memhog touches most of each guest, holds, frees,
# repeats); a balloon without a target would never inflate, so it gets the headline target
# (boot footprint + 20 % of the guest). With **seeds** above 1 every mechanism runs once per
# replicate seed (the same seeds for each): host RSS is its mean with a 95 % band, each bar
# its mean with the 95 % interval as an error bar, and the table mean ± interval.

# %%
app = vm.CompareApp(profile=PROFILE)
app.run()  # one run so the page opens with results; press Run after changing a control
display(app.widget)

# %% [markdown] tags=["developer"]
# The same from Python: `vm.compare(cfg)` runs any `SimConfig` under every registered
# mechanism and returns `{mechanism: SimResult}` plus one tidy row of metrics per mechanism
# (`app.summary`: one row per run, seeds included); `fphlib.viz.tables.readable_replicates`
# makes the app's runs readable (one seed: change vs `none` in parentheses; several: mean ±
# 95 % interval).

# %% tags=["developer"]
readable_replicates(app.results, metrics=[
    "host_rss_peak_bytes", "host_rss_final_bytes", "returned_bytes", "reported_bytes", "reports",
    "vmexits", "refault_pages", "zone_lock_hold_s", "guest_cpu_overhead_s", "lost_writes", "oom_kills"],
    caption=app.caption, key="mechanism")

# %% [markdown]
# ## 2. Admission: how many guests fit? (v8 cover letter)
#
# Guest *i* boots at *i* × 30 s and runs memhog once (touch, hold 1 s, free, idle). Counting
# stops at the first host OOM kill (or the first page of host swap); the guest whose launch
# caused it is not admitted. 30 s is one interval for every mechanism: enough for the memhog
# and for free page reporting to drain (2 s delay, then a budget of reports per pass). A
# count marked `≥` hit `max_guests` without any failure: the mechanism would admit more.
#
# The published numbers are from the cover letter (`fphlib.experiments.PUBLISHED`): 3 guests
# without hinting and 5 to 7 with v8 hinting. `smoke` and `demo` scale every size down by 16
# and 4 (same ratios).

# %%
sizes = v8_admission_kwargs(PROFILE)
print(f"{PROFILE} profile:", {k: v for k, v in sizes.items()})
table = admission_table(**sizes)
vm.format_admission(table)

# %%
ax = vm.plot_admission(table, title=f"Guests admitted ({PROFILE} profile)")

# %% [markdown]
# Per guest (`admission_table(..., return_guests=True)` or `fphlib.experiments.admission`):
# when each guest started, whether its memhog finished, who the host's OOM killer picked
# (the guest with the largest RSS, usually an older one, not the newest), and the host RSS
# just before the next launch.

# %%
readable_rows(admission("none", **sizes), index="guest",
              caption=f"Guests launched without hinting ({PROFILE} profile)")
