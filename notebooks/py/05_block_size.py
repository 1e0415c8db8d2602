# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Block size: what the reporting order buys and what it costs
#
# Free page reporting only reports free blocks of at least `hint_order` pages
# (`page_reporting_order`). A small block size finds more free memory in a fragmented guest,
# but every report is a virtqueue kick (a VM exit), a walk of the free lists under
# `zone->lock`, and a host `madvise` — and memory handed back in small pieces is refaulted
# sooner. This notebook sweeps the block size from 4 KiB (order 0) to 4 MiB (order 10) for
# every mechanism that takes one, with several seeds per point, and plots against the block
# size: the memory returned to the host, the reports sent, VM exits, `zone->lock` hold time
# and refaulted pages, each with a 95 % confidence band over the seeds.
#
# The runs go through `fphlib.sweep`, cached under `out/sweep_cache` of the repository (or
# `$FPHLIB_CACHE`), wherever the server was started: reopening the notebook (or widening the
# range) computes only what is missing. `FPHLIB_PROFILE` sizes the runs: `smoke` (seconds),
# `demo` (the default of every notebook) or `full` (three 5 GiB guests, 16 GiB host).

# %% tags=["parameters"]
import os

PROFILE = os.environ.get("FPHLIB_PROFILE", "demo")
print(f"profile: {PROFILE}")

# %%
from fphlib.viz.block_size import BlockSizeApp

app = BlockSizeApp(profile=PROFILE)
app.run()  # the first sweep, so the page opens with results; change a control and re-run
app.widget

# %% [markdown]
# ## Why the kernel reports at order 9
#
# Linux sets `page_reporting_order` to `pageblock_order`: 9, i.e. 2 MiB on x86-64 — the size
# of a host transparent huge page. Reporting smaller blocks makes the host discard part of a
# THP that backs the guest, which splits it: the host loses the huge mapping (more TLB misses
# for the guest) and the guest refaults 4 KiB pieces that it soon reallocates. Reporting
# only 2 MiB blocks keeps each discard aligned with the host's backing, and keeps the number
# of reports — each a VM exit and a pass under `zone->lock` — small.
#
# Does the figure agree? With the churn workload (smoke and demo profiles, when this
# notebook was written): going from 4 KiB to 2 MiB blocks gives up only a few to ~20 % of
# the memory returned, while reports fall by an order of magnitude and VM exits by more
# (about 30× in smoke, 27× in demo); refaults fall too. Most of that drop comes by
# 64–128 KiB, and 2 MiB is the last step before the cliff: at 4 MiB (order 10) a churning
# guest rarely has whole free order-10 blocks, and reporting returns far less (nothing in the
# smoke profile). So order 9 sits just before the knee: nearly all the memory at a small
# fraction of the exits — the figure agrees with the kernel's choice. With `memhog` (large
# contiguous frees) the block size barely matters at all. The model's summary has no count
# of host THP splits, so the THP argument shows here only through refaults, not as a split
# count.

# %% [markdown] tags=["developer"]
# ## The same from Python
#
# The app is a thin layer over `fphlib.sweep`; `app.df` is the tidy frame it plotted (one row
# per run: the swept `hint_order` and `mechanism`, `seed`, `replicate`, every summary metric,
# `config_hash`, `error`). On a dask cluster, pass `executor=client` to
# `BlockSizeApp(...)` or `fphlib.sweep(...)`: the results are identical.

# %% tags=["developer"]
import fphlib
from fphlib.viz.block_size import block_size_base
from fphlib.viz.tables import readable

df = fphlib.sweep({"hint_order": [8, 9, 10]}, base=block_size_base(PROFILE), seeds=2,
                  cache=app.cache, progress=False)
runs = df.assign(run=[f"order {o}, seed #{r}" for o, r in zip(df.hint_order, df.replicate)])
readable(runs, metrics=["returned_bytes", "reported_bytes", "reports", "vmexits", "refault_pages",
                        "zone_lock_hold_s"])
