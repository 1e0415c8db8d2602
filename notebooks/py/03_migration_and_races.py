# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Live migration with free page hints, and the race of read-only hints
#
# 1. **Migration** (`SimConfig(migration=...)`, `fphlib.host.migration`): QEMU's precopy of
#    guest 0 — a first pass over all of guest RAM (zero pages cost a 9-byte header), passes
#    over the pages written meanwhile, stop-and-copy when the rest fits the downtime limit.
#    `free_page_hint` (VIRTIO_BALLOON_F_FREE_PAGE_HINT, Linux 4.20 / QEMU 4.0) lets the guest
#    tell QEMU which pages are free so that they are not sent: `alloc` allocates 4 MiB blocks
#    and holds them until the migration is DONE (memory the guest cannot use meanwhile);
#    `xbitmap` reads them from the free-page xbitmap (Wei Wang's proposal in the seed thread).
# 2. **Wei Wang's v37 numbers** (idle guest, `migrate_set_speed 100G`, downtime 400 ms):
#    8 GB 620 ms with the hint vs 2970 ms without; 128 GB 5294 vs 41651 ms.
# 3. **The race** David Hildenbrand warned about: xbitmap hints that do not isolate the pages
#    lose the data of a page allocated and written before the host discards it. Lost writes
#    against the host's discard latency and the guest's churn rate, isolating vs read-only.
#
# `FPHLIB_PROFILE` sizes the runs: `smoke` (seconds), `demo` (default) or `full`.

# %% tags=["parameters"]
import os

from IPython.display import display

from fphlib.experiments import reproduce_v37
from fphlib.viz import migration as vmig
from fphlib.viz.tables import readable

PROFILE = os.environ.get("FPHLIB_PROFILE", "demo")
print(f"profile: {PROFILE}")

# %% [markdown]
# ## 1. Migration time and bytes vs guest size and free fraction
#
# A guest whose boot footprint leaves a given fraction free, migrated over 10 GbE
# (`bandwidth="1.25GB"`) with a 400 ms downtime limit. Solid lines: the free memory was never
# touched (zero pages); dashed: the guest wrote it once and freed it (non-zero garbage).

# %%
app = vmig.MigrationApp(profile=PROFILE)
app.run()  # one run so the page opens with results; press Run after changing a control
display(app.widget)

# %% [markdown]
# The same over a grid of sizes and free fractions:

# %%
grid = vmig.migration_grid(PROFILE)
fig = vmig.plot_migration(grid)

# %%
display(vmig.migration_table(grid, caption=f"Live migration of an idle guest ({PROFILE} profile)"))

# %% [markdown]
# Without hints every page is scanned (the migration thread's ~3.3 GB/s is the limit for
# zero pages) and every page the guest ever touched is sent in full, freed or not; with hints
# only the used part is, so the hint saves time in both cases and bytes when the free memory
# had been used. `xbitmap` skips the same pages as `alloc` without holding any memory:
# `unavailable_s` is the time the `alloc` mode kept the free memory away from the guest.
#
# ## 2. Wei Wang's v37 numbers
#
# The `full` profile runs the published sizes (8 and 128 GiB; the 128 GiB guest needs
# ~0.4 GB of simulator state); the other profiles run smaller guests with the same defaults.

# %%
sizes = {"smoke": ("1GiB", "2GiB"), "demo": ("2GiB", "8GiB"), "full": ("8GiB", "128GiB")}
v37 = reproduce_v37(sizes=sizes[PROFILE], modes=("alloc", "xbitmap"))
display(readable(v37, index=["guest_mem", "mechanism", "mode"], baseline=None))

# %% [markdown]
# ## 3. Read-only xbitmap hints race with allocations
#
# Each cell is one run of a churning guest with `xbitmap_hints`; rows: the host's discard
# latency (cost `discard_latency`), columns: the churn rate. Isolating hints never lose a
# write; read-only hints lose more as the window between hint and discard grows and as the
# guest reallocates faster.

# %%
race = vmig.race_grid(PROFILE)
fig = vmig.plot_race(race)
