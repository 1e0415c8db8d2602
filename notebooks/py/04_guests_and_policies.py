# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Guests and host policies: whom the host asks, and what asking costs
#
# The host decides which guest to ask for memory first, and when hinting is worth it at all
# ("I have plenty of free space, don't worry"); and "offering free pages will cause the
# guest some performance drop". The policies below are whatever
# `fphlib.host.policy.REGISTRY` holds (always-on, watermark with hysteresis, round robin,
# most free first, ESX proportional share and idle memory tax, oVirt MOM's balloon rules).
#
# 1. **Try one**: guest count, policy, mechanism, overcommit ratio and workload mix; see who
#    paid (memory asked and returned, stalls, slowdown against the same run with the host
#    never asking).
# 2. **Guest count x policy**: heatmaps of host RSS peak, swap, OOM kills, mean and worst
#    slowdown.
# 3. **The ESX idle memory tax** (Waldspurger, OSDI 2002, Fig. 7): a busy and an idle guest,
#    tau = 0 vs 0.75.
# 4. **A memhog sequence** (Nitesh Narayan Lal's v10/v11 letters): guests run memhog in turn
#    on a host with swap; runtimes and swap without hinting, with page reporting, with
#    Nitesh's bitmap.
# 5. **Can the host rely on a guest?** The same sequence with some guests that never answer
#    the host: who pays.
#
# `FPHLIB_PROFILE` sizes the runs: `smoke` (seconds, the test suite), `demo` or `full`.

# %% tags=["parameters"]
import os

from IPython.display import display

from fphlib.experiments import cooperation, memhog_sequence, overcommit, policy_grid
from fphlib.viz import policies as vp
from fphlib.viz.tables import readable_rows

PROFILE = os.environ.get("FPHLIB_PROFILE", "demo")
print(f"profile: {PROFILE}")

# %%
readable_rows(vp.policy_table().reset_index(), index="policy")

# %% [markdown]
# ## 1. Try one policy
#
# A share of the guests churn (busy), the others touch most of their memory once and go
# idle; the host has `1 / overcommit` of their memory (plus the per-guest overhead) and half
# of it again as swap. A policy that cannot drive the chosen mechanism (e.g. `mom` sets
# balloon sizes, `page_reporting` has none) says so in the status line. Slowdown is the
# workload's runtime (or, for workloads that never end, its work done) against the same run
# with the host never asking (`fphlib.api.asking`).

# %%
app = vp.PolicyApp(profile=PROFILE)
app.run()
display(app.widget)

# %%
readable_rows(app.table, index="guest", caption=app.caption)

# %% [markdown]
# ## 2. Guest count x policy
#
# The same mix (half busy, half idle) and overcommit (1.5) with the balloon, every policy
# that can drive it, each against the never-asking run of the same guests.

# %%
grid, tables = policy_grid(**vp.GRID_SIZES[PROFILE], mechanism="balloon")
vp.show(vp.plot_policy_heatmaps(grid))

# %%
readable_rows(grid, index=["guests", "policy"],
              columns=["asks", "returned_bytes", "host_rss_peak_bytes", "swap_peak_bytes",
                       "oom_kills", "mean_slowdown", "worst_slowdown", "jain_slowdown"],
              caption="Guest count × policy, balloon, overcommit 1.5, half busy")

# %% [markdown]
# ## 3. The ESX idle memory tax
#
# Two guests with equal shares on an overcommitted host: guest 0 churns (dbench in the
# paper), guest 1 touched its memory once and is idle (the idle Windows VM). With tau = 0
# (pure shares) the host takes from whichever holds more; with tau = 0.75 idle pages cost
# four times as many shares and memory moves to the busy guest.

# %%
split = overcommit(**vp.OVERCOMMIT_SIZES[PROFILE])
display(vp.show(vp.plot_overcommit(split).figure))
readable_rows(split, index=["tau", "guest"], caption="ESX idle memory tax: a busy and an idle guest")

# %% [markdown]
# ## 4. A memhog sequence on a host with swap
#
# Three guests run memhog one after another (60 s apart); without hinting the host keeps
# backing what each one freed, so later guests push it into swap.

# %%
seq = memhog_sequence(scale=vp.SEQUENCE_SCALES[PROFILE])
display(vp.show(vp.plot_memhog_sequence(seq)))
readable_rows(seq, index=["mechanism", "guest"],
              columns=["start_s", "runtime_s", "memhog_end_s", "swap_out_bytes",
                       "host_swap_peak_bytes", "host_swap_end_bytes"],
              caption="memhog sequence on a host with swap")

# %% [markdown]
# ## 5. Can the host rely on a guest?
#
# > "Relying on a guest to free up memory when you really need it is not going to work."
# > — David Hildenbrand
#
# > "Host can ask at any time (including when not urgently need it) depending on the admin's
# > configuration… host can decide whom to offer the free pages first." — Wei Wang
#
# The memhog sequence of section 4 with page reporting, where the first guests never answer
# an ask (`guest_overrides[g]["cooperation"] = {"answers": 0}`; `delay_s` and `cap` make a
# late or a stingy guest instead). Under `always_on` the host asks at any time (hinting on
# from boot); under `watermark` only when it runs short. The first guests' memhogs finish
# first, so what they freed is what the host needs when the later ones run. Slowdown is each
# guest's memhog runtime against the run in which every guest cooperates.

# %%
coop = cooperation(**vp.COOPERATION_SIZES[PROFILE])
display(vp.show(vp.plot_cooperation(coop)))
readable_rows(coop, index=["policy", "uncooperative", "role"],
              columns=["asks", "slowdown", "returned_bytes", "asks_unanswered",
                       "host_swap_out_bytes", "oom_kills"],
              caption="memhog sequence with page reporting, some guests never answering")

# %% [markdown]
# Read it as the answer the model gives: asking early does not help when the guest does not
# answer. The host still has a fallback (it swaps, and OOM-kills when swap runs out), and the
# uncooperative guests' own idle pages are the ones it swaps; but the guest that pays in time
# is the cooperative one whose memhog runs while the host is short.
