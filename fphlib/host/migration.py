"""Live migration of one guest: QEMU's precopy (migration/ram.c, QEMU 4.0) over the guest's RAM.

Started by ``SimConfig(migration={"at_s": 30.0, "bandwidth": 1.25e9, "downtime_ms": 400})``;
it migrates **guest 0** (the other guests keep running on the host). Sources: QEMU
migration/ram.c (``ram_save_setup``, ``ram_find_and_save_block``, ``save_zero_page``,
``migration_bitmap_sync_precopy``, ``qemu_guest_free_page_hint``), migration/migration.c
(``migration_iteration_run``, ``migration_update_counters``: ``threshold_size = bandwidth *
downtime_limit`` with the bandwidth *measured* over the last iteration), and the free page hint
hooks of hw/virtio/virtio-balloon.c (docs/references.md §4).

- Setup (``ram_save_setup``): every page of the guest is set in the migration bitmap
  (``rb->bmap``, :attr:`EngineState.mig_bmap`), then the first dirty-bitmap sync clears KVM's
  dirty log (the per-page bit ``PG_MIG_DIRTY`` that every guest write sets).
- After each sync the precopy notifier starts a free page hint round (a new cmd id in the
  balloon's config space, one config interrupt); before each sync it writes STOP; when the
  migration completes it writes DONE (``virtio_balloon_free_page_hint_notify``). A hint
  (:func:`mig_hint`, ``qemu_guest_free_page_hint``) clears the pages from the migration bitmap
  and from the dirty log: they are not sent in this pass; a later guest write sets their dirty
  bit again and the next sync re-sends them. Hints are accepted only while a round is on.
- A pass walks the bitmap from the start; each set page is cleared and sent: a page the host
  never backed (never touched or discarded) is a zero page, sent as a 9-byte header
  (``save_zero_page``: 8-byte offset|flags + one byte); any other page as 8 + 4096 bytes. Each
  sent page takes ``max(bytes / bandwidth, mig_page)`` of the migration thread: the cost
  ``mig_page`` is what one thread can scan and send (3.3 GB/s, fphlib.costs). Pages that
  are clear in the bitmap (hinted, or already sent) cost nothing (``find_next_bit``).
- At the end of a pass: STOP, a sync (``mig_sync_gib`` per GiB of guest RAM) that moves the
  dirty log into the bitmap. If the remainder fits the downtime at the bandwidth measured over
  the pass (bytes sent / pass time, QEMU's rule) the VM stops: one more sync and the remainder
  are the downtime, then DONE. Otherwise another pass, with a new hint round.
- Non-convergence: QEMU keeps iterating for ever (until the user raises the downtime limit or
  turns on auto-converge or postcopy). The model stops the VM anyway after ``max_rounds``
  passes (default 30 [assumption]), sending the remainder with whatever downtime it takes;
  ``migration_converged`` is then 0 in the summary.

Summary metrics (NaN without migration): ``migration_time_s`` (setup to the end of
stop-and-copy; NaN when the run ends first), ``migration_bytes``, ``migration_rounds`` (passes,
the stop-and-copy one included), ``downtime_s`` (final sync + remainder),
``migration_converged``, ``migration_hinted_bytes`` (pages skipped because of hints),
``migration_unavailable_s`` / ``migration_unavailable_peak_bytes`` (how long and how much guest
memory a hinting mechanism held allocated: ``free_page_hint`` in alloc mode, until DONE).

Simplifications: one migration thread, no multifd, compression or XBZRLE; the destination and
the network beyond the bandwidth are free; a pass is walked in page order and its work done at
1 ms tick granularity; the guest is not paused during stop-and-copy (its writes then are not
counted) and write-protection faults of dirty logging are not charged to the guest; the
threshold check runs at the end of each pass (QEMU checks it every iteration of
``migration_thread``); a page swapped out on the host is read back for free; the guest hints
and the host's ``qemu_guest_free_page_hint`` happen at the same instant (no window between the
guest reading a free page and the host clearing its dirty bit); a page the host backs counts as
non-zero (QEMU's ``buffer_is_zero`` would still find the never-written 4 KiB parts of a host
THP zero).
"""


import numpy as np

from .._jit import borrowed, jit
from ..bounds import MAX_RATE, MIN_RATE, finite
from ..costs import C_MIG_PAGE, C_MIG_SYNC_GIB
from ..state.borrow import borrow_state
from ..state.layout import GF, GI, MF, MI, NMF, NMI, PG_MIG_DIRTY, PG_SWAPPED, ST_KILLED, ST_RUNNING
from ..state.zone import PG_BACKED, PG_DATA
from ..units import PAGE_SIZE, parse_size

# free page hint commands (include/uapi/linux/virtio_balloon.h; QEMU starts ids at 0x80000000)
CMD_ID_STOP = 0  # VIRTIO_BALLOON_CMD_ID_STOP
CMD_ID_DONE = 1  # VIRTIO_BALLOON_CMD_ID_DONE
CMD_ID_FIRST = 0x80000000  # QEMU's VIRTIO_BALLOON_FREE_PAGE_HINT_CMD_ID_MIN

ZERO_PAGE_BYTES = 9  # save_zero_page: save_page_header (8 B: offset | RAM_SAVE_FLAG_ZERO) + 1 B
PAGE_HEADER = 8  # save_normal_page: save_page_header, then the 4096-byte page
MAX_ROUNDS = 30  # [assumption] QEMU iterates for ever; the model stops the VM after 30 passes

# phases
P_WAIT = 0  # before at_s (or the guest has not booted yet)
P_PASS = 1  # a precopy pass is walking the bitmap
P_DONE = 2  # finished (or aborted: the guest was killed)

NOT_DIRTY = ~PG_MIG_DIRTY
PRESENT = PG_BACKED | PG_SWAPPED

KEYS = ("at_s", "bandwidth", "downtime_ms", "max_rounds")


# ------------------------------------------------------------------ configuration (Python)


def parse_bandwidth(value, name="migration['bandwidth']"):
    """Bytes per second from a number or a size string per second.

    ``"1.25GB"``, ``"100GiB"``, ``"100G/s"`` and ``"100GiB/s"`` are all binary units (as
    QEMU's ``migrate_set_speed 100G``, which means 100 GiB/s); a number is bytes/s.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower().endswith("/s"):
            text = text[:-2]
        try:
            bw = float(parse_size(text, name))
        except ValueError:
            raise ValueError(
                f"{name}: {value!r} is not allowed; expected bytes/s as a number or a size "
                "per second such as '1.25GB', '100GiB' or '100G/s'"
            ) from None
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"{name}: {value!r} is not allowed; expected bytes/s as a number or a size per "
            "second such as '1.25GB', '100GiB' or '100G/s'"
        )
    else:
        bw = float(value) if finite(value) else float("inf")  # 10**400: no float holds it
    if not finite(bw) or not MIN_RATE <= bw <= MAX_RATE:
        raise ValueError(f"{name}: {value!r} is not allowed; expected a bandwidth in "
                         f"{MIN_RATE}..{MAX_RATE} bytes/s (a page per second to 1 TiB/s)")
    return bw


def validate_migration(value, duration_s=None):
    """Canonical migration dict (``at_s``, ``bandwidth`` bytes/s, ``downtime_ms``,
    ``max_rounds``) or None; ``ValueError`` names the key."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(
            f"migration: {value!r} is not allowed; expected None or a dict with keys "
            f"{', '.join(KEYS)}"
        )
    for key in value:
        if key not in KEYS:
            raise ValueError(
                f"migration[{key!r}]: unknown key; allowed keys: {', '.join(KEYS)}"
            )
    for key in ("at_s", "bandwidth", "downtime_ms"):
        if key not in value:
            raise ValueError(f"migration[{key!r}]: missing; a migration needs {KEYS[:3]}")

    def number(key, lo, hi, integer=False):
        v = value[key]
        ok = not isinstance(v, bool) and isinstance(v, int | float) and finite(v)
        ok = ok and lo <= v <= hi and (not integer or float(v).is_integer())
        if not ok:
            kind = "an integer" if integer else "a number"
            raise ValueError(f"migration[{key!r}]: {v!r} is not allowed; expected {kind} in "
                             f"{lo:g}..{hi:g}")
        return int(v) if integer else float(v)

    hi_t = duration_s if duration_s is not None else 30 * 86400
    out = {
        "at_s": number("at_s", 0.0, hi_t),
        "bandwidth": parse_bandwidth(value["bandwidth"]),
        "downtime_ms": number("downtime_ms", 1e-3, 3.6e6),
        "max_rounds": MAX_ROUNDS,
    }
    if "max_rounds" in value:
        out["max_rounds"] = number("max_rounds", 1, 100_000, integer=True)
    return out


def migration_arrays(migration, npages):
    """``(mig_i, mig_f, mig_bmap)`` of a run; ``npages``: pages of guest 0."""
    mi = np.zeros(NMI, np.int64)
    mf = np.zeros(NMF, np.float64)
    mf[MF.NEXT] = np.inf
    mf[MF.T_END] = np.nan
    mf[MF.DOWNTIME_S] = np.nan
    mf[MF.HOLD_START] = np.nan
    if migration is None:
        return mi, mf, np.zeros(1, np.uint64)
    mi[MI.ON] = 1
    mi[MI.G] = 0
    mi[MI.MAX_ROUNDS] = migration["max_rounds"]
    mf[MF.AT] = migration["at_s"]
    mf[MF.NEXT] = migration["at_s"]
    mf[MF.BW] = migration["bandwidth"]
    mf[MF.DOWNTIME] = migration["downtime_ms"] * 1e-3
    return mi, mf, np.zeros((npages + 63) // 64, np.uint64)


SUMMARY = (
    "migration_time_s",
    "migration_bytes",
    "migration_rounds",
    "downtime_s",
    "migration_converged",
    "migration_hinted_bytes",
    "migration_unavailable_s",
    "migration_unavailable_peak_bytes",
)


def migration_summary(s):
    """The migration's summary metrics (all NaN without a migration)."""
    mi, mf = s.mig_i, s.mig_f
    if not mi[MI.ON]:
        return dict.fromkeys(SUMMARY, float("nan"))
    done = mi[MI.PHASE] == P_DONE and not np.isnan(mf[MF.T_END])
    hold = mf[MF.HOLD_S]
    return {
        "migration_time_s": float(mf[MF.T_END] - mf[MF.AT]) if done else float("nan"),
        "migration_bytes": float(mi[MI.BYTES]),
        "migration_rounds": float(mi[MI.ROUND]),
        "downtime_s": float(mf[MF.DOWNTIME_S]),
        "migration_converged": float(mi[MI.CONVERGED]) if done else float("nan"),
        "migration_hinted_bytes": float(mi[MI.HINTED] * PAGE_SIZE),
        "migration_unavailable_s": float(hold),
        "migration_unavailable_peak_bytes": float(mi[MI.HELD_PEAK] * PAGE_SIZE),
    }


# ------------------------------------------------------------------ kernels


@jit
def _notify(s, g, cmd, now):
    """The host writes ``free_page_hint_cmd_id`` and raises a config interrupt."""
    s = borrow_state(s)
    s.gi[g, GI.FPH_CMD] = cmd
    s.gi[g, GI.ASK_SEQ] += 1
    s.gf[g, GF.ASK_T] = now


@jit
def _hint_start(s, g, now):
    """PRECOPY_NOTIFY_AFTER_BITMAP_SYNC: a new hint round (cmd id)."""
    s = borrow_state(s)
    cmd = CMD_ID_FIRST + s.mig_i[MI.CMD]
    s.mig_i[MI.CMD] += 1
    s.mig_i[MI.HINT_ON] = 1
    _notify(s, g, cmd, now)


@jit
def _hint_stop(s, g, now, cmd):
    """PRECOPY_NOTIFY_BEFORE_BITMAP_SYNC (STOP) or COMPLETE (DONE)."""
    s = borrow_state(s)
    s.mig_i[MI.HINT_ON] = 0
    _notify(s, g, cmd, now)


@jit
def _sync(s, g):
    """``migration_bitmap_sync``: move KVM's dirty log into the migration bitmap; return the
    number of pages now set in the bitmap (``migration_dirty_pages``)."""
    s = borrow_state(s)
    off = s.gi[g, GI.OFF]
    n = s.gi[g, GI.NPAGES]
    flags = s.flags
    bmap = s.mig_bmap
    for p in range(n):
        f = flags[off + p]
        if f & PG_MIG_DIRTY:
            flags[off + p] = f & NOT_DIRTY
            bmap[p >> 6] |= np.uint64(1) << np.uint64(p & 63)
    count = 0
    for w in range(bmap.shape[0]):
        x = bmap[w]
        while x:
            x &= x - np.uint64(1)
            count += 1
    s.mig_i[MI.SYNCS] += 1
    return count


@jit
def mig_hint(s, g, pfn, npages):
    """``qemu_guest_free_page_hint``: guest g hints pages [pfn, pfn+npages) free; while a hint
    round of its migration is on, clear them from the migration bitmap and the dirty log.

    Returns the number of pages cleared from the bitmap. A hinted page that still holds guest
    data would be lost at the destination unless written again: counted as a lost write.
    """
    s = borrow_state(s)
    if not s.mig_i[MI.HINT_ON] or s.mig_i[MI.G] != g or s.mig_i[MI.PHASE] != P_PASS:
        return 0
    off = s.gi[g, GI.OFF]
    bmap = s.mig_bmap
    cleared = 0
    lost = 0
    for p in range(pfn, pfn + npages):
        f = s.flags[off + p]
        if f & PG_DATA:
            lost += 1
        s.flags[off + p] = f & NOT_DIRTY
        w = p >> 6
        bit = np.uint64(1) << np.uint64(p & 63)
        if bmap[w] & bit:
            bmap[w] &= ~bit
            cleared += 1
    s.mig_i[MI.HINTED] += cleared
    if lost:
        s.gi[g, GI.LOST] += lost
    return cleared


@jit
def mig_note_held(s, g, now):
    """A hinting mechanism changed the pages it holds allocated (``GI.BALLOON``) during the
    migration of guest g: track how long and how much guest memory was unavailable."""
    s = borrow_state(s)
    if not s.mig_i[MI.ON] or s.mig_i[MI.G] != g:
        return
    held = s.gi[g, GI.BALLOON]
    if held > s.mig_i[MI.HELD_PEAK]:
        s.mig_i[MI.HELD_PEAK] = held
    if held > 0 and np.isnan(s.mig_f[MF.HOLD_START]):
        s.mig_f[MF.HOLD_START] = now
    elif held == 0 and not np.isnan(s.mig_f[MF.HOLD_START]):
        s.mig_f[MF.HOLD_S] += now - s.mig_f[MF.HOLD_START]
        s.mig_f[MF.HOLD_START] = np.nan


@jit(inline="always")
def _page_time(s, zero, cost):
    bw = s.mig_f[MF.BW]
    nbytes = ZERO_PAGE_BYTES if zero else PAGE_SIZE + PAGE_HEADER
    return max(nbytes / bw, cost[C_MIG_PAGE]), nbytes


@jit
def _send(s, g, now, t_end, cost):
    """Walk the bitmap from the cursor, sending pages until ``t_end`` (or the end with
    ``t_end`` = inf); return the thread's time after the last page sent."""
    s = borrow_state(s)
    cost = borrowed(cost)
    off = s.gi[g, GI.OFF]
    n = s.gi[g, GI.NPAGES]
    flags = s.flags
    bmap = s.mig_bmap
    p = s.mig_i[MI.CURSOR]
    zero_t, zero_b = _page_time(s, True, cost)
    full_t, full_b = _page_time(s, False, cost)
    sent = 0
    zeros = 0
    nbytes = 0
    while p < n and now <= t_end:
        w = p >> 6
        word = bmap[w] >> np.uint64(p & 63)
        if word == 0:
            p = (w + 1) << 6
            continue
        bit = np.uint64(1) << np.uint64(p & 63)
        if bmap[w] & bit:
            bmap[w] &= ~bit
            sent += 1
            if flags[off + p] & PRESENT:
                now += full_t
                nbytes += full_b
            else:
                zeros += 1
                now += zero_t
                nbytes += zero_b
        p += 1
    s.mig_i[MI.CURSOR] = p
    s.mig_i[MI.SENT_PAGES] += sent
    s.mig_i[MI.ZERO_PAGES] += zeros
    s.mig_i[MI.BYTES] += nbytes
    s.mig_i[MI.PASS_BYTES] += nbytes
    return now


@jit
def migration_step(s, t_end, cost):
    """Run the migration thread up to ``t_end`` (the engine calls it when ``MF.NEXT`` falls in
    the tick)."""
    s = borrow_state(s)
    cost = borrowed(cost)
    g = s.mig_i[MI.G]
    now = s.mig_f[MF.NEXT]
    phase = s.mig_i[MI.PHASE]
    if s.gi[g, GI.STATUS] == ST_KILLED:  # the host OOM-killed the guest: migration aborted
        s.mig_i[MI.PHASE] = P_DONE
        s.mig_f[MF.NEXT] = np.inf
        return
    sync_t = cost[C_MIG_SYNC_GIB] * s.gi[g, GI.NPAGES] * PAGE_SIZE / 2.0**30
    if phase == P_WAIT:
        if s.gi[g, GI.STATUS] != ST_RUNNING:  # not booted yet: start when it runs
            s.mig_f[MF.NEXT] = t_end
            return
        # ram_save_setup: every page dirty in the bitmap, the first sync, hinting starts
        s.mig_f[MF.AT] = now
        n = s.gi[g, GI.NPAGES]
        for w in range(s.mig_bmap.shape[0]):
            s.mig_bmap[w] = ~np.uint64(0)
        if n & 63:
            s.mig_bmap[n >> 6] = (np.uint64(1) << np.uint64(n & 63)) - np.uint64(1)
        _sync(s, g)
        now += sync_t
        s.mig_i[MI.PHASE] = P_PASS
        s.mig_i[MI.ROUND] = 1
        s.mig_i[MI.CURSOR] = 0
        s.mig_i[MI.PASS_BYTES] = 0
        s.mig_f[MF.PASS_T0] = s.mig_f[MF.AT]
        _hint_start(s, g, now)
    while s.mig_i[MI.PHASE] == P_PASS and now <= t_end:
        now = _send(s, g, now, t_end, cost)
        if s.mig_i[MI.CURSOR] < s.gi[g, GI.NPAGES]:
            break  # the tick is over
        # end of the pass: STOP, sync, and QEMU's threshold test on the measured bandwidth
        _hint_stop(s, g, now, CMD_ID_STOP)
        now += sync_t
        remain = _sync(s, g)
        elapsed = now - s.mig_f[MF.PASS_T0]
        rate = s.mig_i[MI.PASS_BYTES] / elapsed if elapsed > 0 else s.mig_f[MF.BW]
        expected = remain * (PAGE_SIZE + PAGE_HEADER) / rate if rate > 0 else np.inf
        converged = expected <= s.mig_f[MF.DOWNTIME]
        if converged or s.mig_i[MI.ROUND] >= s.mig_i[MI.MAX_ROUNDS]:
            # migration_completion: stop the VM, final sync, send the remainder, DONE
            t_stop = now
            now += sync_t
            _sync(s, g)
            s.mig_i[MI.CURSOR] = 0
            s.mig_i[MI.ROUND] += 1
            now = _send(s, g, now, np.inf, cost)
            s.mig_i[MI.CONVERGED] = converged
            s.mig_f[MF.DOWNTIME_S] = now - t_stop
            s.mig_f[MF.T_END] = now
            s.mig_i[MI.PHASE] = P_DONE
            _hint_stop(s, g, now, CMD_ID_DONE)
            s.mig_f[MF.NEXT] = np.inf
            return
        s.mig_i[MI.ROUND] += 1
        s.mig_i[MI.CURSOR] = 0
        s.mig_i[MI.PASS_BYTES] = 0
        s.mig_f[MF.PASS_T0] = now
        _hint_start(s, g, now)
    s.mig_f[MF.NEXT] = now
