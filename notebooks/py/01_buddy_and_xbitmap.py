# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Inside the guest: the buddy allocator and the xbitmap
#
# Every hinting mechanism starts from the same place: the guest's buddy allocator, which
# keeps free memory as blocks of 2^order pages (order 0 = 4 KiB ... order 10 = 4 MiB) on one
# free list per order. What a mechanism can report depends on how free memory is split up:
# free page reporting only looks at blocks of at least `hint_order` (order 9 = 2 MiB by
# default), so a fragmented guest has plenty of free memory and nothing to report.
#
# This notebook drives one guest zone by hand:
#
# 1. allocate and free blocks, or churn around a target occupancy, and watch
#    `/proc/buddyinfo`, the kernel's fragmentation index and unusable free space index;
# 2. compare what it costs to *track* free pages: Wei Wang's xbitmap (a radix tree of
#    1024-bit leaves) against a flat bitmap and per-page flags, as the guest fills.
#
# `FPHLIB_PROFILE` sizes the zone: `smoke` (the test suite), `demo` (Binder), `full`.

# %% tags=["parameters"]
import os

PROFILE = os.environ.get("FPHLIB_PROFILE", "demo")
GUEST_MEM = {"smoke": "64MiB", "demo": "256MiB", "full": "1GiB"}[PROFILE]
CHURN_OPS = {"smoke": 500, "demo": 3000, "full": 20000}[PROFILE]
print(f"profile: {PROFILE}, guest zone {GUEST_MEM}")

# %% [markdown]
# ## 1. A guest zone you can poke
#
# `alloc` takes a block of the chosen order (the smallest free block that fits is split,
# upper halves go back on the free lists: `expand()`); `free a random block` returns one
# (it merges with its buddy `pfn ^ (1 << order)` while the buddy is free); `churn` runs a
# steady alloc/free mix with the kernel-like order mix of the `trace` workload.

# %%
from fphlib.viz.tour import TourApp

app = TourApp(GUEST_MEM, track="page", seed=0)
app.widget

# %% [markdown]
# The same object from Python. Fill the zone to 90 % with the kernel-like order mix, then
# churn down towards 60 %: the memory that comes back is scattered over many small blocks.
# Compare the buddyinfo line with the fresh zone's (all order-10 blocks).

# %%
import matplotlib.pyplot as plt

import fphlib
from fphlib.viz import plots

tour = app.tour
print("fresh:  ", tour.buddyinfo())
tour.fill_to(0.9)
tour.churn(CHURN_OPS, target=0.6)
print("churned:", tour.buddyinfo())
nr_free = tour.snapshot()["nr_free"]
unusable = fphlib.unusable_index(nr_free, 9) / 1000
print(f"{tour.used_fraction:.0%} used; {unusable:.0%} of the free memory is in blocks below "
      "order 9, which page reporting (hint_order=9) never reports")
app.redraw()  # the widgets above show the new state too

fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), layout="constrained")
plots.plot_buddyinfo(nr_free, ax=axes[0])
plots.plot_fragmentation(nr_free, ax=axes[1]);

# %% [markdown]
# The **unusable free space index** at order *o* is the share of free memory sitting in
# blocks smaller than 2^o pages: the part a reporting mechanism with `hint_order = o` can
# never hand back. The **fragmentation index** (shown only where an allocation of that order
# would fail) tends to 0 when failures are due to lack of memory and to 1 when they are due
# to fragmentation.

# %% [markdown]
# ## 2. What does it cost to track free pages?
#
# Wei Wang's proposal keeps an xbitmap of free pages (or of free block heads) under
# zone->lock, so the host's request can be answered without walking the free lists. The
# xbitmap allocates a 128-byte leaf for each 1024-page (4 MiB) region holding a set bit,
# plus 576-byte radix nodes; a flat bitmap always costs one bit per page, per-page flags one
# byte per page. Below, two zones go through the same fill-and-churn sequence, one tracking
# every free page, one tracking free block heads.

# %%
from fphlib.viz.tour import tracking_memory

fractions = (0.0, 0.25, 0.5, 0.75, 0.9, 0.97)
memory = tracking_memory(GUEST_MEM, fractions=fractions, churn_ops=CHURN_OPS, seed=1)
plots.plot_bitmap_memory(memory, title=f"Tracking memory of a {GUEST_MEM} guest (log scale)");

# %%
from fphlib.viz.tables import format_value

memory.pivot_table(index="target", columns="structure", values="bytes").map(
    lambda b: format_value(b, "bytes"))

# %% [markdown]
# Reading the plot (log scale: each power of two is one step): per-page flags cost 8 times a
# flat bitmap whatever the guest does. While most 4 MiB regions hold some free memory, the
# xbitmap costs about as much as a flat bitmap (a little more when the guest is nearly empty:
# full leaves plus the radix nodes); it only shrinks as whole regions fill up, and an empty
# xbitmap (0 bytes) sits on the bottom edge as an open marker. Tracking block heads instead
# of pages does not change the memory at all (any region with free memory holds a free head
# too, so the same leaves exist: the plot draws the two as one line); it changes the work per
# operation (one bit instead of 2^order). The leaves come and go as regions fill and empty:
# each allocation is a `kmalloc` under zone->lock that `xb_preload` must have prepared.

# %% [markdown]
# ## 3. The work under zone->lock
#
# Memory is one side; the other is what tracking adds to every free-list operation, which
# in Wei's proposal runs under zone->lock. Three zones (a flat bitmap, the xbitmap per page,
# the xbitmap per block head) are filled to 90 % and churned around it with the same seed:
# the allocator does exactly the same list operations in each, so the table shows only the
# tracking structure's own work per churn step: bitmap operations, and the `kmalloc`s /
# `kfree`s of leaves and radix nodes (each leaf `kmalloc` one that `xb_preload` made ahead).

# %%
from fphlib.viz.tables import readable
from fphlib.viz.tour import tracking_work

readable(tracking_work(GUEST_MEM, target=0.9, churn_ops=CHURN_OPS, seed=2))

# %% [markdown]
# The flat bitmap never allocates; both xbitmaps allocate and free the same leaves (a region
# with a free page always holds a free block head too). `benchmarks/tracking_overhead.py`
# measures the same comparison in simulator time on a 5-million-operation trace.

# %% [markdown]
# What the xbitmap of the zone above has done since it was created (`tour.buddy.tracking_stats`):

# %%
from fphlib.viz.tables import tracking_stats_table

tracking_stats_table(tour.buddy.tracking_stats)
