# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The real kernel: this machine against the model
#
# The machine fphlib runs on is itself a KVM guest, and its virtio-balloon may report free
# pages to the host (Linux's free page reporting, mm/page_reporting.c). `fphlib.observe`
# records that live kernel; `fphlib.validation` holds the model against the recordings:
#
# - **drain**: a child touches memory and exits; `/proc/kpageflags` shows how fast the
#   kernel reports the freed memory (PG_reported). The model runs fphlib's page_reporting
#   from the recorded free lists (`/proc/buddyinfo` right after the exit) with the
#   machine's reporting order, capacity and delay, and predicts the same curve: time to
#   50 % and 90 % of the growth and the bytes of the first pass, each within ±20 % of the
#   recorded value (rule `pct20`, fixed before any recording was looked at).
# - **fragmentation**: a real command's page allocations, recorded with the kmem
#   tracepoints, replayed in fphlib's buddy allocator from the first buddyinfo sample, against
#   the buddyinfo sampled while it ran: the unusable free space index for order 9 at the end
#   within ±10 thousandths (rule `unusable10`).
# - **first touch**: touching memory the host discarded after reporting, against memory it
#   still backs: the difference per 2 MiB / per 4 KiB against the model's `fault_2m` /
#   `fault_4k` costs (rule `factor2`).
#
# A failing record is a finding, not a bug to tune away: its note says what differs.

# %% tags=["parameters"]
import os

from IPython.display import display

from fphlib import observe
from fphlib import validation as V
from fphlib.viz import validation as vv

PROFILE = os.environ.get("FPHLIB_PROFILE", "demo")
print(f"profile: {PROFILE}")

# %% [markdown]
# ## What this machine offers
#
# Root, `/proc/kpageflags`, tracefs, the balloon's negotiated features and the reporting
# order (`fphlib.observe.probe()`; nothing here needs root).

# %%
machine = observe.probe()
machine

# %% [markdown]
# ## The shipped recordings
#
# Each recording is a directory under `data/real/` (`fphlib.observe.load_recording`), with
# its provenance: kernel, RAM, CPUs, reporting order, date.

# %%
shipped = vv.recordings()
shipped

# %% [markdown]
# ## Real vs model, recording by recording
#
# Pick a recording: its figure and its records against the model redraw.

# %%
app = vv.LiveApp()
app.redraw()
display(app.widget)

# %% [markdown]
# ## The drain curve
#
# Reported bytes since the child exited, recorded (black) against fphlib (blue); dotted
# lines mark each curve's t50 and t90. The kernel reports in passes 2 s apart, each at
# most `DIV_ROUND_UP(nr_free, 32 * 16)` + 1 reports of 32 blocks per free list.

# %%
drains = list(shipped.query("kind == 'drain'")["name"]) if len(shipped) else []
for name in drains[-1:]:  # the largest shipped drain
    try:
        display(vv.show(vv.plot_drain(name).figure))
        display(vv.readable(V.to_frame(V.against_drain(name))))
    except ValueError as e:  # a recording this fphlib cannot read or use
        print(e)

# %% [markdown]
# ## Buddyinfo over time
#
# Free memory in blocks of each order while a recorded command ran (all zones summed):
# `/proc/buddyinfo` (solid) against the command's trace replayed in fphlib's buddy
# allocator from the first sample (dashed). The trace holds only what the command's own
# tasks allocated and freed; the kernel's per-CPU lists hold pages buddyinfo does not count.

# %%
traces = list(shipped.query("kind == 'trace'")["name"]) if len(shipped) else []
for name in traces[:1]:
    try:
        display(vv.show(vv.plot_buddyinfo(V.fragmentation_frame(name))))
        display(vv.readable(V.to_frame([V.against_trace_fragmentation(name)])))
    except ValueError as e:
        print(e)

# %% [markdown]
# ## First touch
#
# Seconds per GiB touched: at once after a free (the host still backs the pages), after the
# kernel reported them (the host discarded them), and the first touch; the dotted and
# dashed lines are the backed touch plus what the model charges for a discarded page.

# %%
touches = list(shipped.query("kind == 'first_touch'")["name"]) if len(shipped) else []
for name in touches[:1]:
    try:
        display(vv.show(vv.plot_first_touch(name).figure))
        display(vv.readable(V.to_frame(V.against_first_touch(name))))
    except ValueError as e:
        print(e)

# %% [markdown]
# ## The live records in the validation table
#
# The same records as rows of `fphlib.validation.table("live")` (and of
# `python -m fphlib validate --only live`); a shipped recording missing from `data/real`
# gives a failing row that says "recording not found".

# %%
live = V.table("live")
vv.readable(live)

# %% [markdown]
# ## Record your own
#
# Recording needs root (`/proc/kpageflags`, tracefs) and a balloon with free page
# reporting. As root this cell records a short drain (2 GiB freed, watched for 8 s: more than
# a CPU's per-CPU list holds back from reporting in Linux 6.7+) and
# holds the model against it; otherwise it says what is missing. The same from the shell:
# `python -m fphlib record drain --free 4GiB --out data/real/drain_mine`.

# %%
missing = machine.missing(need=("root", "kpageflags", "balloon", "reporting"))
if missing:
    print("not recording here: this machine lacks " + "; ".join(missing))
else:
    mine = observe.record_drain("2GiB", duration_s=8, interval_s=0.5, steady_max_s=30)
    print(mine.summary())
    try:
        display(vv.readable(V.to_frame(V.against_drain(mine, label="drain_2GiB (yours)"))))
    except ValueError as e:  # e.g. nothing reported within 6 s
        print(f"no comparison: {e}")
