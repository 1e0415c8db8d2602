"""Free memory and watch the running kernel report it to the host: :func:`record_drain`.

A child process maps ``free`` bytes of anonymous memory, writes one byte to every 4 KiB page
(as numactl's ``memhog`` does), then exits on the parent's word; ``t_s = 0`` is the moment
``waitpid`` returns, when the kernel has freed the child's memory (``do_exit`` frees the mm in
``exit_mm`` before ``exit_notify`` wakes the parent). From then on the parent reads
``/proc/kpageflags`` every ``interval_s`` (:mod:`fphlib.observe.kpageflags`): ``free_bytes``
counts ``KPF_BUDDY`` pages, ``reported_bytes`` the free blocks whose head carries
``PG_reported`` (``KPF_UPTODATE``). ``/proc/buddyinfo`` is read before the child allocates
(``buddyinfo_before``) and right after its exit (``buddyinfo``: the free lists reporting
starts from). Free and reported bytes are also read before the child allocates
(``*_before_bytes``) and while it holds its memory, just before its exit
(``*_touched_bytes``): the jump of ``free_bytes`` at ``t_s = 0`` is measured from there.
The recording starts once the reported bytes have stayed put for ``steady_s`` (an earlier
free still being reported would mix into the curve).

What the curve shows (mm/page_reporting.c, Linux 5.7+): freeing pages of order >=
``page_reporting_order`` requests a pass, which starts ``PAGE_REPORTING_DELAY`` (2 s) later;
a pass reports each free list of order >= ``page_reporting_order`` in batches of
``PAGE_REPORTING_CAPACITY`` (32) blocks, at most ``DIV_ROUND_UP(nr_free, 32 * 16) + 1``
batches per list (``budget``), then requests the next pass 2 s later: the reported bytes
rise in steps about 2 s apart (:meth:`DrainRecording.passes`). Measured on a 24 GiB guest
(Normal zone, 1333 order-10 and 255 order-9 free blocks after a 4 GiB exit): steps of
4 x 32 x 4 MiB + 2 x 32 x 2 MiB = 640 MiB.

The child maps its memory with ``MADV_NOHUGEPAGE``: it is faulted as 4 KiB pages and freed as
order-0 pages that the buddy allocator merges back into order-9/10 blocks; a THP-backed
region would be freed as order-9 blocks directly (``nohugepage=False``: THP per
``/sys/kernel/mm/transparent_hugepage/enabled``, recorded in the provenance).

The filler. A page is served from the CPU's per-CPU list first, then from the smallest free
block (``__rmqueue_smallest``, mm/page_alloc.c), and reported blocks wait at the tail of
their lists (``FPI_TO_TAIL``): on a guest whose free memory is fragmented (measured on a
busy 24 GiB guest: ~2.8 GiB free in blocks below order 9) the child gets small blocks that
were never reported, and freeing them gives back small blocks that are never reported
either: a 1 GiB drain then shows ~150 MiB reported. With ``fill=True`` (the default) a
second child, pinned to the same CPU, first maps and holds the free memory that is not
reported plus that CPU's per-CPU list (``filler_bytes``), so the drained memory comes from
reported order-9/10 blocks and goes back as such, as a memhog on a fresh guest's memory
does; the filler exits after the recording. ``fill=False`` records the allocator's choice.

Per-CPU lists: freed pages go first to the freeing CPU's per-CPU list (pcp), which is not
the buddy allocator: not ``KPF_BUDDY``, not in buddyinfo, never reported. Since Linux 6.7
the list's ``high`` is tuned up on a CPU that frees much, up to ``high_max`` (about 1/8 of
the zone split over the CPUs: 688 MiB per CPU measured on a 24 GiB guest), and decays by
itself (``decay_pcp_high``, mm/page_alloc.c), a few MiB per second: the memory of a child
that held less than that reaches the buddy allocator, and so reporting, only slowly. The
``pcp`` table (``t_s``, ``pcp_bytes``: pages on all per-CPU lists, ``/proc/zoneinfo``,
read at the start of each row's read) shows it.

Timing: one read of ``/proc/kpageflags`` over all zones takes ~0.4-0.6 s on a 24 GiB guest
(the kernel builds each entry in ``stable_page_flags``); each row's ``t_s`` is when its read
started, the read covers ``[t_s, t_s + scan_s]``. Reads are due every ``interval_s``; where
one takes longer, the next starts as soon as it ends (those rows are a read's time apart,
more than ``interval_s``): ``scan_s_mean``, ``scan_s_max`` and ``notes`` say so.

Simplifications: the whole machine is observed, so any other process allocating or freeing
during the recording shows in the curve (``loadavg`` in the provenance); pcp pages and blocks
being reported at the moment of a read are not ``KPF_BUDDY`` (see
:mod:`fphlib.observe.kpageflags`); sizes are rounded down to whole pages.

Sources: mm/page_reporting.c; fs/proc/page.c; include/linux/page-flags.h (``PG_reported``);
Documentation/admin-guide/mm/pagemap.rst; include/uapi/linux/kernel-page-flags.h;
numactl's memhog.c (touch every page).
"""

import contextlib
import dataclasses
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from ..bounds import finite
from ..units import PAGE_SIZE, format_size, parse_size
from . import _common
from ._common import ObserveError, recording_kind

__all__ = ["DrainRecording", "record_drain"]

MAX_DURATION_S = 3600.0
MIN_INTERVAL_S = 0.05
CHILD_TIMEOUT_S = 600.0  # for one command of the child (touching many GiB)
FILL_SLACK = 128 << 20  # a filler maps this much more than the unreported free memory

# The child: commands on stdin, one per line; replies on stdout. ``touch`` maps ``size`` bytes
# and writes every page (replies "touched <seconds>"; with a pfn file, it then writes the pfn
# of each page there, from /proc/self/pagemap, as little-endian u64), ``free`` unmaps
# (replies "freed <seconds>"), ``fill N`` maps and touches N more bytes it holds until exit
# (replies "filled <seconds>"), ``exit`` (or end of input: the parent is gone) exits.
CHILD = r"""
import mmap, os, sys, time
import numpy as np
size, nohuge, page, pfn_file = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
m = None
held = []

def touch(n):
    t = time.perf_counter()
    r = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if nohuge:
        r.madvise(mmap.MADV_NOHUGEPAGE)
    a = np.frombuffer(r, np.uint8)
    a[::page] = 1
    dt = time.perf_counter() - t
    return r, a, dt

def write_pfns(a):
    first = a.ctypes.data // page
    ent = np.empty(a.size // page, "<u8")
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        os.preadv(fd, [ent], first * 8)
    finally:
        os.close(fd)
    ent[(ent >> np.uint64(63)) == 0] = np.uint64(1) << np.uint64(63)  # not present
    (ent & np.uint64((1 << 55) - 1)).tofile(pfn_file)

print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[:1] == ["touch"]:
        m, a, dt = touch(size)
        if pfn_file != "-":
            write_pfns(a)
        del a
        print("touched", repr(dt), flush=True)
    elif cmd[:1] == ["fill"]:
        r, a, dt = touch(int(cmd[1]))
        del a
        held.append(r)
        print("filled", repr(dt), flush=True)
    elif cmd[:1] == ["free"]:
        t = time.perf_counter()
        m.close()
        m = None
        print("freed", repr(time.perf_counter() - t), flush=True)
    elif cmd[:1] == ["exit"]:
        break
"""


class Child:
    """The memory-touching child process; a context manager that always reaps it."""

    def __init__(self, size, nohugepage=True, pfn_file=None):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(int(size)), "1" if nohugepage else "0",
             str(PAGE_SIZE), os.fspath(pfn_file) if pfn_file else "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.expect("ready")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass

    def expect(self, word, timeout_s=CHILD_TIMEOUT_S):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else ""
        parts = line.split()
        if not parts or parts[0] != word:
            self.kill()
            err = self.proc.stderr.read().strip() if not self.proc.stderr.closed else ""
            why = (f"no reply in {timeout_s:g} s" if not ready else
                   f"exited with status {self.proc.returncode}" if not line else
                   f"replied {line!r}")
            raise ObserveError(f"memory child: expected {word!r}, {why}"
                               + (f": {err[-500:]}" if err else ""))
        return float(parts[1]) if len(parts) > 1 else None

    def send(self, cmd, reply=None):
        try:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # expect() reports what happened
        return self.expect(reply) if reply else None

    def exit(self):
        """Tell the child to exit and wait for it: when this returns its memory is freed."""
        self.send("exit")
        rc = self.proc.wait(timeout=CHILD_TIMEOUT_S)
        if rc != 0:
            raise ObserveError(f"memory child exited with status {rc}: "
                               f"{self.proc.stderr.read().strip()[-500:]}")


def _number(name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) \
            or not finite(v) or not lo <= v <= hi:
        raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


def buddyinfo_frame(text=None):
    """``/proc/buddyinfo`` as a long table (node, zone, order, nr_free)."""
    from ..guest.fragmentation import parse_buddyinfo

    text = _common.read_text(_common.BUDDYINFO) if text is None else text
    rows = [(node, zone, order, int(n)) for (node, zone), counts in parse_buddyinfo(text).items()
            for order, n in enumerate(counts)]
    return pd.DataFrame(rows, columns=list(DrainRecording.TABLES["buddyinfo"])).astype(
        {"node": "int64", "order": "int64", "nr_free": "int64"})


def require_reporting(what):
    """Root, a readable /proc/kpageflags and a balloon with free page reporting, or an
    :class:`ObserveError` naming each missing piece."""
    from .machine import probe

    p = probe()
    missing = p.missing(need=("root", "kpageflags", "balloon", "reporting", "zones"))
    if missing:
        raise ObserveError(f"{what} needs " + "; ".join(missing))
    return p


def begin(what, steady_s, steady_max_s):
    """The start of a recording that watches reporting (``what`` names it in errors): the
    machine must offer reporting (:func:`require_reporting`); wait until the reported bytes
    are steady (:func:`wait_steady`, skipped when ``steady_s`` is 0); then the provenance.
    Returns ``(zones, waited_s, steady, provenance)``."""
    from .kpageflags import live_zones

    p = require_reporting(what)
    zones = live_zones()
    waited, steady = wait_steady(zones, steady_s, steady_max_s) if steady_s else (0.0, None)
    prov = _common.provenance()
    prov.update(loadavg_start=list(os.getloadavg()), thp_enabled=p.thp_enabled,
                balloon_features=p.balloon["features"],
                zones=[[z.node, z.name, z.start_pfn, z.spanned] for z in zones])
    return zones, waited, steady, prov


def check_free(name, size):
    """``size`` (bytes) must leave a margin (:func:`margin`) of MemAvailable; ValueError
    naming ``name`` otherwise."""
    info = _common.meminfo()
    avail = info.get("MemAvailable")
    margin_bytes = margin(info.get("MemTotal"))
    if avail is not None and size > avail - margin_bytes:
        raise ValueError(
            f"{name}: {format_size(size)} is more than MemAvailable ({format_size(avail)}) "
            f"minus a margin of {format_size(margin_bytes)}; ask for at most "
            f"{format_size(max(avail - margin_bytes, 0))}")


def filler_size(summary, cpu, size):
    """Bytes a filler should hold so that ``size`` more bytes touched on ``cpu`` come from
    reported blocks: the free memory not reported in the highest zone that has free memory
    (user pages come from there first: ``ZONE_NORMAL`` before ``ZONE_DMA32``), plus ``cpu``'s
    per-CPU lists, plus ``FILL_SLACK``, as far as MemAvailable allows: ``(bytes, wanted
    bytes)``."""
    from .machine import pcp_pages

    info = _common.meminfo()
    room = info["MemAvailable"] - margin(info.get("MemTotal")) - size
    orders = np.int64(1) << np.arange(summary.reported_blocks.shape[1], dtype=np.int64)
    unreported = summary.free_pages - (summary.reported_blocks * orders).sum(axis=1)
    used = np.flatnonzero(summary.free_pages > 0)
    top = int(unreported[used[-1]]) * PAGE_SIZE if used.size else 0
    want = top + pcp_pages({cpu}) * PAGE_SIZE + FILL_SLACK
    return max(0, min(want, room)) // PAGE_SIZE * PAGE_SIZE, want


def margin(mem_total):
    """Memory :func:`record_drain` leaves free: 1 GiB plus 5 % of RAM."""
    return (1 << 30) + (mem_total or 0) // 20


def curve_time_to_fraction(t_s, reported_bytes, fraction):
    """First ``t_s`` at which a reported-bytes curve grew (from its first sample) by
    ``fraction`` of its growth at the last sample, or NaN when it never grew. Shared, like
    :func:`curve_steps`, by recordings and the model's curve."""
    r = np.asarray(reported_bytes, np.int64)
    added = r - r[0]
    if added[-1] <= 0:
        return float("nan")
    return float(np.asarray(t_s, float)[int(np.argmax(added >= fraction * added[-1]))])


def curve_steps(t_s, reported_bytes, min_bytes=0):
    """The steps of a reported-bytes curve: ``[(t_s, added_bytes), ...]``, one per run of
    consecutive samples in which the bytes rose by more than ``min_bytes`` (a reporting pass
    may show over two reads); ``t_s`` is the first sample that shows the step. One home for
    reading a curve's steps: a recording's :meth:`DrainRecording.passes` and the model's
    curve in :func:`fphlib.validation.drain_stats` use it alike."""
    t = np.asarray(t_s, float)
    r = np.asarray(reported_bytes, np.int64)
    rises = np.diff(r) > min_bytes
    rows = []
    i = 0
    while i < rises.size:
        if not rises[i]:
            i += 1
            continue
        j = i
        while j + 1 < rises.size and rises[j + 1]:
            j += 1
        rows.append((float(t[i + 1]), int(r[j + 1] - r[i])))
        i = j + 1
    return rows


@recording_kind
@dataclasses.dataclass
class DrainRecording:
    """A drain recorded by :func:`record_drain` (see the module docstring)."""

    __repr__ = _common.recording_repr

    KIND = "drain"
    TABLES = {
        "frame": ("t_s", "reported_bytes", "free_bytes"),
        "buddyinfo": ("node", "zone", "order", "nr_free"),
        "buddyinfo_before": ("node", "zone", "order", "nr_free"),
        "pcp": ("t_s", "pcp_bytes"),
    }
    META = ("free_bytes", "filler_bytes", "duration_s", "interval_s", "reported_before_bytes",
            "free_before_bytes", "reported_touched_bytes", "free_touched_bytes",
            "pcp_before_bytes", "pcp_touched_bytes", "touch_s",
            "nohugepage", "scan_s_mean", "scan_s_max", "provenance", "notes")

    free_bytes: int
    filler_bytes: int
    duration_s: float
    interval_s: float
    reported_before_bytes: int
    free_before_bytes: int
    reported_touched_bytes: int
    free_touched_bytes: int
    pcp_before_bytes: int
    pcp_touched_bytes: int
    touch_s: float
    nohugepage: bool
    scan_s_mean: float
    scan_s_max: float
    provenance: dict
    notes: str
    frame: pd.DataFrame
    buddyinfo: pd.DataFrame
    buddyinfo_before: pd.DataFrame
    pcp: pd.DataFrame

    def __post_init__(self):
        for name in ("free_bytes", "filler_bytes", "reported_before_bytes", "free_before_bytes",
                     "reported_touched_bytes", "free_touched_bytes", "pcp_before_bytes",
                     "pcp_touched_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        _number("duration_s", self.duration_s, 0, MAX_DURATION_S)
        _number("interval_s", self.interval_s, MIN_INTERVAL_S, MAX_DURATION_S)
        for name in ("touch_s", "scan_s_mean", "scan_s_max"):
            _number(name, getattr(self, name), 0, 1e6)
        _common.check_common_fields(self)
        for name, cols in self.TABLES.items():
            df = getattr(self, name)
            if not isinstance(df, pd.DataFrame) or list(df.columns) != list(cols):
                got = list(df.columns) if isinstance(df, pd.DataFrame) else type(df).__name__
                raise ValueError(f"{name} must be a DataFrame with columns {list(cols)}, "
                                 f"got {got}")
        f = self.frame
        if len(f) == 0:
            raise ValueError("frame must have at least one row")
        t = f["t_s"].to_numpy(float)
        if not np.isfinite(t).all() or (t < 0).any() or (np.diff(t) < 0).any():
            raise ValueError("frame.t_s must be finite, >= 0 and non-decreasing")
        for c in ("reported_bytes", "free_bytes"):
            v = f[c].to_numpy()
            if not np.issubdtype(v.dtype, np.integer) or (v < 0).any():
                raise ValueError(f"frame.{c} must hold non-negative integers")

    # ------------------------------------------------------------ what validation needs

    @property
    def reported_added(self):
        """Reported bytes at each row minus those at the first row (t = 0)."""
        r = self.frame["reported_bytes"].to_numpy(np.int64)
        return r - r[0]

    def time_to_fraction(self, fraction):
        """First ``t_s`` at which the reported bytes grew by ``fraction`` of their final
        growth (0 < fraction <= 1), or NaN when they never grew."""
        fraction = _number("fraction", fraction, 0, 1)
        return curve_time_to_fraction(self.frame["t_s"], self.frame["reported_bytes"],
                                      fraction)

    def passes(self, min_bytes=0):
        """The steps of the reported-bytes curve: one row per run of consecutive rows in
        which the reported bytes rose by more than ``min_bytes`` (a reporting pass may span
        two reads): ``t_s`` (the read where it shows first), ``added_bytes``, ``gap_s``
        (from the previous step; NaN for the first)."""
        rows = curve_steps(self.frame["t_s"], self.frame["reported_bytes"], min_bytes)
        df = pd.DataFrame(rows, columns=["t_s", "added_bytes"]).astype(
            {"t_s": float, "added_bytes": "int64"})
        df["gap_s"] = df["t_s"].diff()
        return df

    def summary(self):
        """Headline numbers: growth of reported bytes, times to 50 % / 90 %, steps."""
        p = self.passes()
        return {
            "free_bytes": self.free_bytes,
            "reported_added_bytes": int(self.reported_added[-1]),
            "free_jump_bytes": int(self.frame["free_bytes"].iloc[0] - self.free_touched_bytes),
            "pcp_jump_bytes": int(self.pcp["pcp_bytes"].iloc[0] - self.pcp_touched_bytes)
            if len(self.pcp) else None,
            "t50_s": self.time_to_fraction(0.5),
            "t90_s": self.time_to_fraction(0.9),
            "steps": len(p),
            "step_bytes_median": float(p["added_bytes"].median()) if len(p) else float("nan"),
            "step_gap_s_median": float(p["gap_s"].median()) if len(p) > 1 else float("nan"),
            "scan_s_mean": self.scan_s_mean,
        }

    # ------------------------------------------------------------ files

    def save(self, path, overwrite=False):
        """Write to directory ``path`` (atomically; ``overwrite`` replaces a recording)."""
        return _common.save_recording(self, path, overwrite)

    @classmethod
    def load(cls, path):
        """Read a drain recording written by :meth:`save` (ValueError naming the path)."""
        return _common.load_recording(path, kind=cls.KIND)


class _Interrupts:
    """SIGTERM raises KeyboardInterrupt while recording (Ctrl-C already does), so the child
    is always reaped; restored on exit. A no-op outside the main thread."""

    def __enter__(self):
        self.old = None
        try:
            self.old = signal.signal(signal.SIGTERM, self._raise)
        except ValueError:
            pass
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        return False


def wait_steady(zones, steady_s, max_s, tolerance_bytes=8 << 20):
    """Wait until the reported bytes have stayed within ``tolerance_bytes`` for ``steady_s``
    (reporting idle), at most ``max_s``: ``(seconds waited, steady?)``."""
    from .kpageflags import scan

    t = time.perf_counter()
    ref, ref_t = scan(zones)[0].reported_bytes, t
    while True:
        now = time.perf_counter()
        if now - ref_t >= steady_s:
            return now - t, True
        if now - t >= max_s:
            return now - t, False
        time.sleep(1.0)
        r = scan(zones)[0].reported_bytes
        if abs(r - ref) > tolerance_bytes:
            ref, ref_t = r, time.perf_counter()


def record_drain(free="4GiB", duration_s=60, interval_s=0.5, *, fill=True, nohugepage=True,
                 steady_s=10.0, steady_max_s=180.0):
    """Touch ``free`` bytes in a child, let it exit, and record the kernel reporting them.

    Parameters
    ----------
    free : int or str
        Bytes the child maps and touches (``"4GiB"``); at most MemAvailable minus a margin
        (1 GiB + 5 % of RAM).
    duration_s : float
        Seconds to watch after the child's exit (rows from ``t_s = 0`` to ``duration_s``).
    interval_s : float
        Seconds between reads of ``/proc/kpageflags`` (a read that takes longer delays the
        next; see the module docstring).
    fill : bool
        Hold the free memory that is not reported in a second child (the filler) while the
        first one touches, so that its pages come from reported blocks (see the module
        docstring); the filler exits after the recording.
    nohugepage : bool
        ``MADV_NOHUGEPAGE`` on the child's mapping (4 KiB pages, freed as order 0).
    steady_s, steady_max_s : float
        Before the child starts, wait until the reported bytes have not moved for
        ``steady_s`` (an earlier free is still being reported otherwise), at most
        ``steady_max_s`` (then the notes say so); 0 skips the wait.

    Returns a :class:`DrainRecording`. Needs root, ``/proc/kpageflags`` and a virtio-balloon
    with free page reporting (:class:`ObserveError` naming what is missing).
    """
    from .kpageflags import scan
    from .machine import pcp_pages

    size = parse_size(free, "free") // PAGE_SIZE * PAGE_SIZE
    if size < PAGE_SIZE:
        raise ValueError(f"free: {free!r} is less than one page ({PAGE_SIZE} bytes)")
    duration_s = _number("duration_s", duration_s, 0, MAX_DURATION_S)
    interval_s = _number("interval_s", interval_s, MIN_INTERVAL_S, MAX_DURATION_S)
    for name, v in (("fill", fill), ("nohugepage", nohugepage)):
        if not isinstance(v, bool):
            raise ValueError(f"{name} must be a bool, got {v!r}")
    steady_s = _number("steady_s", steady_s, 0, MAX_DURATION_S)
    steady_max_s = _number("steady_max_s", steady_max_s, 0, MAX_DURATION_S)
    check_free("free", size)
    zones, waited, steady, prov = begin("record_drain", steady_s, steady_max_s)
    before_bi = buddyinfo_frame()
    s_before, _ = scan(zones)
    pcp_before = pcp_pages() * PAGE_SIZE

    rows, scans, pcp_rows = [], [], []
    cpu = max(os.sched_getaffinity(0))  # both children run there (its per-CPU lists)
    prov["child_cpu"] = cpu
    filler, fill_note = 0, ""
    with _Interrupts(), contextlib.ExitStack() as stack:
        if fill:
            filler, want = filler_size(s_before, cpu, size)
            if filler < want:
                fill_note = (f"the filler was cut to {format_size(filler)} of "
                             f"{format_size(want)} by MemAvailable")
            if filler:
                holder = stack.enter_context(Child(PAGE_SIZE, nohugepage))
                os.sched_setaffinity(holder.proc.pid, {cpu})
                holder.send(f"fill {filler}", "filled")
        child = stack.enter_context(Child(size, nohugepage))
        os.sched_setaffinity(child.proc.pid, {cpu})
        touch_s = child.send("touch", "touched")
        s_touched, _ = scan(zones)
        pcp_touched = pcp_pages() * PAGE_SIZE
        child.exit()
        t0 = time.perf_counter()
        after_bi = buddyinfo_frame()
        target = 0.0
        while target <= duration_s:
            now = time.perf_counter() - t0
            if now < target:
                time.sleep(target - now)
            t_s = time.perf_counter() - t0
            pcp_rows.append((t_s, pcp_pages() * PAGE_SIZE))
            s, dt = scan(zones)
            rows.append((t_s, s.reported_bytes, s.free_bytes))
            scans.append(dt)
            # the next read is due interval_s after this one was; a late one starts at once
            target = max(target + interval_s, time.perf_counter() - t0)
    prov["loadavg_end"] = list(os.getloadavg())

    scans = np.array(scans)
    notes = [f"filler {format_size(filler)}" + (f" ({fill_note})" if fill_note else ""),
             f"child touched {format_size(size)} in {touch_s:.3f} s "
             f"({'MADV_NOHUGEPAGE' if nohugepage else 'THP as configured'}); "
             f"t_s = 0 when waitpid returned; one kpageflags read over "
             f"{sum(z.spanned for z in zones)} pfns took {scans.mean():.3f} s on average "
             f"(max {scans.max():.3f} s)"]
    if steady is not None:
        notes.append(f"started after the reported bytes had been steady for {steady_s:g} s "
                     f"(waited {waited:.1f} s)" if steady else
                     f"the reported bytes were still moving after {waited:.1f} s: an "
                     "earlier free was being reported when the child started")
    late = int((scans > interval_s).sum())
    if late:
        notes.append(f"{late} of {scans.size} reads took longer than interval_s = "
                     f"{interval_s:g} s: rows are further apart than the interval there")
    frame = pd.DataFrame(rows, columns=list(DrainRecording.TABLES["frame"])).astype(
        {"t_s": float, "reported_bytes": "int64", "free_bytes": "int64"})
    return DrainRecording(
        free_bytes=size, filler_bytes=int(filler), duration_s=duration_s, interval_s=interval_s,
        reported_before_bytes=s_before.reported_bytes, free_before_bytes=s_before.free_bytes,
        reported_touched_bytes=s_touched.reported_bytes,
        free_touched_bytes=s_touched.free_bytes, pcp_before_bytes=pcp_before,
        pcp_touched_bytes=pcp_touched,
        touch_s=float(touch_s), nohugepage=nohugepage, scan_s_mean=float(scans.mean()),
        scan_s_max=float(scans.max()), provenance=prov, notes="; ".join(notes), frame=frame,
        buddyinfo=after_bi, buddyinfo_before=before_bi,
        pcp=pd.DataFrame(pcp_rows, columns=list(DrainRecording.TABLES["pcp"])).astype(
            {"t_s": float, "pcp_bytes": "int64"}))
