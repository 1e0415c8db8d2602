# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own mechanism and host policy
#
# An idea about hinting is tried here in three cells: write the mechanism (and, if you like,
# a host policy) with `fphlib.extend`, register it, and it runs wherever the built-ins run:
# `fphlib.simulate`, the comparison plots, every widget, the CLI, and sweeps on worker
# processes (which receive the cells' code). The hook contract (what each hook gets, which
# counters it must update, what "safe" means) is `docs/plugins.md`.
#
# The idea tried: **hint every free block at once**. Free page reporting waits 2 s after a
# free and reports at most 1/16 of a free list per pass (mm/page_reporting.c); what if the
# guest reported each block of order >= `hint_order` as soon as it is freed?
#
# `FPHLIB_PROFILE` sizes the runs: `smoke` (seconds, the test suite), `demo` (the Binder
# default) or `full`.

# %% tags=["parameters"]
import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
import os
from types import SimpleNamespace

import numpy as np
from IPython.display import display

import fphlib
from fphlib import extend as fx
from fphlib.experiments.scenarios import headline_config
from fphlib.viz import block_size as vb
from fphlib.viz import mechanisms as vm
from fphlib.viz.tables import readable

PROFILE = os.environ.get("FPHLIB_PROFILE", "demo")
print(f"profile: {PROFILE}")

# %% [markdown]
# ## 1. The mechanism, in one cell
#
# Its own per-guest state is declared (`PrivateState`: two int columns, a wake-up time, a
# buffer of (pfn, order) pairs); its hooks are jitted functions. `on_free` wakes it when a
# block of order >= `hint_order` is freed; `tick` isolates unreported free blocks (so the
# guest cannot allocate them while the host discards them: safe), reports them in one kick,
# waits for the host's discard and ack, and puts them back flagged reported.

# %%
PHASE, N = fx.private_columns("PHASE N")
WAKE = fx.MECH_WAKE  # float column 0: when the engine runs tick next
IDLE, AT_HOST, ACK = 0, 1, 2
CAPACITY = 32  # blocks per report, as PAGE_REPORTING_CAPACITY


def init(params, n_pages, vcpus, ints, floats):
    floats[WAKE] = 0.0  # a first pass at boot


@fx.jit
def on_free(s, g, z, pfn, order, t, cost):
    s = fx.borrow_state(s)
    if s.mi[g, PHASE] == IDLE and t < s.mf[g, WAKE]:
        s.mf[g, WAKE] = t  # at once


@fx.jit
def tick(s, g, z, t_end, cost):
    s = fx.borrow_state(s)
    z = fx.borrow_zone(z)
    base = fx.buffer_start(s, g)
    while s.mf[g, WAKE] <= t_end:
        now = s.mf[g, WAKE]
        if s.mi[g, PHASE] == AT_HOST:  # the host discards, then acks
            spent = fx.discard_due(s, g, z, now, cost)
            s.mf[g, WAKE] = now + spent + cost[fx.C_ACK_IRQ]
            s.mi[g, PHASE] = ACK
        elif s.mi[g, PHASE] == ACK:  # back on the free lists, flagged reported
            fx.putback_blocks(s, g, z, base, s.mi[g, N], True, cost)
            s.mi[g, PHASE] = IDLE
        else:
            s.mf[g, WAKE] = np.inf  # idle until the next free
            if not fx.hint_asked(s, g):
                return
            n = 0
            wmin, _, _ = fx.watermarks(s, g)
            for order in range(fx.hint_order(s), fx.NR_ORDERS):
                pfn = fx.free_list_first(z, order)
                while pfn >= 0 and n < CAPACITY:
                    nxt = fx.free_list_next(z, pfn)
                    if not fx.is_reported(z, pfn) and fx.nr_free_pages(z) > wmin + (1 << order):
                        fx.isolate_into(s, g, z, pfn, order, base, n)
                        n += 1
                    pfn = nxt
            if n == 0:
                return
            fx.count_lock_ops(s, g, n, cost)
            s.mi[g, N] = n
            s.mf[g, WAKE] = fx.report_blocks(s, g, z, base, n, now, cost)
            s.mi[g, PHASE] = AT_HOST


eager = SimpleNamespace(
    NAME="notebook_eager", PARAMS={}, TAKES_HINT_ORDER=True, ASKS=("hint",), REPORTS_PAGES=True,
    STATE=fx.PrivateState(ints=("PHASE", "N"), floats=("WAKE",), init=init,
                          buffer=lambda params, n_pages, vcpus: 2 * CAPACITY,
                          discard_slots=lambda params: CAPACITY),
    on_free=on_free, free_hook_order=lambda params, hint_order: hint_order, tick=tick)
fphlib.register_mechanism(eager, replace=True)  # replace: this cell can be run again

# %% [markdown]
# ## 2. A host policy, in one cell
#
# Every guest hints only while the host is short of memory: below `low` of host RAM free the
# host switches hinting on everywhere, above `high` off again.

# %%
LOW, HIGH = 0, 1


def toggle_init(params, n_pages, vcpus, ints, floats):
    floats[LOW], floats[HIGH] = params["low"], params["high"]


@fx.jit
def toggle_step(s, now, cost):
    s = fx.borrow_state(s)
    free = fx.host_free_fraction(s)
    for g in range(fx.n_guests(s)):
        if fx.guest_running(s, g):
            on = fx.hint_asked(s, g)
            if free < s.pol_f[g, LOW] and not on:
                fx.ask(s, g, now, 0, 1)
            elif free > s.pol_f[g, HIGH] and on:
                fx.ask(s, g, now, 0, 0)


toggle = SimpleNamespace(
    NAME="notebook_toggle",
    PARAMS={"low": fx.Param("float", 0.10, 0.0, 1.0, "", "hint below this fraction free"),
            "high": fx.Param("float", 0.30, 0.0, 1.0, "", "stop above this fraction free"),
            "interval_s": fx.POLICY_INTERVAL},
    STATE=fx.PrivateState(floats=("LOW", "HIGH"), init=toggle_init),
    check=lambda mechanism, mode, params: fx.check_drivable(
        "notebook_toggle", mechanism, mode, modes=("hint",)),
    step=toggle_step)
fphlib.register_policy(toggle, replace=True)

# %% [markdown]
# ## 3. Against free page reporting, on the headline scenario
#
# Three guests start 10 s apart; memhog touches most of each, holds it, frees it, and does it
# again. The same runs with `none` (nothing given back) and `page_reporting` (Linux 5.7+).

# %%
cfg = headline_config(PROFILE, "page_reporting")
results, _ = vm.compare(cfg, mechanisms=["none", "page_reporting", "notebook_eager"])
display(readable(results))
vm.plot_compare(results, title="Hinting at once vs free page reporting");

# %% [markdown]
# With the host policy: guests hint only while the host is short (`notebook_toggle`, policy
# interval 1 s). Fewer reports, and memory comes back only when the host needs it.

# %%
eager_cfg = dataclasses.replace(cfg, mechanism="notebook_eager")
with_policy = {
    "always on": results["notebook_eager"],
    "toggle": fphlib.simulate(dataclasses.replace(eager_cfg, policy="notebook_toggle",
                                                  policy_params={"interval_s": 1.0})),
}
display(readable(with_policy, baseline="always on"))

# %% [markdown]
# ## 4. A block-size sweep on two worker processes
#
# The sweep sends the cells' code to the workers (pickled by value); results are the same as
# in this process. To share the mechanism with colleagues, put it in a package with an entry
# point (`examples/fphlib-eager`): then every `import fphlib` registers it.

# %%
base = vb.block_size_base(PROFILE, guests=2)
orders = [0, 5, 9] if PROFILE == "smoke" else range(0, 11)
with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
    df = vb.block_size_sweep(base, orders=orders, seeds=1, executor=pool,
                             mechanisms=["page_reporting", "notebook_eager"])
assert df["error"].isna().all(), df["error"].dropna().tolist()
vb.plot_block_size(df, title="Block size: at once vs free page reporting");
