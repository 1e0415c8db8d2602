"""The real price of touching memory the host discarded after free page reporting.

:func:`first_touch` has a child process map ``size`` bytes of anonymous memory and write one
byte per 4 KiB page, timed, in three cases:

- ``first``: the child's first touch, once, before the repeats;
- ``backed``: the child unmaps its touched region and at once maps and touches ``size``
  again, well inside ``PAGE_REPORTING_DELAY`` (2 s, mm/page_reporting.c): the allocator
  hands back the pages just freed (at the head of the free lists and on the per-CPU lists),
  which the host still backs;
- ``discarded``: the child unmaps, the parent waits until ``/proc/kpageflags`` shows the
  reported bytes grown by 90 % of ``size``, or not grown for three reporting delays (6 s),
  or ``wait_s`` passed (the growth is in ``reported_grew_bytes``, a short one in
  ``notes``), then the child maps and touches ``size`` again.

Which pages a touch gets is the allocator's choice, so each touch is checked: the child
reads the pfn of every page it touched from ``/proc/self/pagemap``
(Documentation/admin-guide/mm/pagemap.rst), and the parent looks them up in the kpageflags
map read just before the touch: ``reported_share`` is the share of the touched pages that
were in a reported free block then (``first``, ``discarded``); for ``backed``,
``reused_share`` is the share that the previous touch held (freed milliseconds before).

The filler. A page is served from the CPU's per-CPU list (pcp) first, then from the
smallest free block (``__rmqueue_smallest``); only blocks of order >=
``page_reporting_order`` are ever reported, and they go back to the *tail* of their list
(``__putback_isolated_page`` with ``FPI_TO_TAIL``, mm/page_alloc.c). A guest whose free
memory is fragmented hands out its never-reported small blocks first, and freed pages wait
on the per-CPU list (up to ``high_max``, 688 MiB per CPU measured on a 24 GiB guest, Linux
6.7+) before they reach the buddy allocator and can be reported. Measured without a filler
on a busy 24 GiB guest: a 2 GiB touch got none of its pages from reported blocks. So the
child is pinned to one CPU, and before the first touch and before each discarded touch it
maps and touches, untimed, as much memory as the free memory that is not reported plus its
CPU's per-CPU list (plus ``FILL_SLACK``), and holds it: the timed touches then get reported
blocks. ``filler_bytes`` (the total held at the end) is stored; ``fill=False`` skips it (the
touches then measure the allocator's choice).

What the difference measures: the guest's own costs, a guest page fault, the allocation and
``clear_page`` of each 4 KiB page, are in every case. What ``discarded`` adds over
``backed`` is the host's side of a page the host dropped (``MADV_DONTNEED``/``MADV_REMOVE``
of the reported range by the VMM): an EPT violation exit, the host's page fault and its
zero-fill of a fresh host page, per 4 KiB page or per host huge page where the host backs
guest memory with THP. ``s_per_gib(discarded) - s_per_gib(backed)``, read with
``reported_share``, is that price per GiB.

Simplifications: the whole machine is observed (other processes allocate and free meanwhile;
``loadavg`` is in the provenance); the filler is sized from one read of the map and the
free memory moves on; the timed touch includes the ``mmap`` call (microseconds);
``reported_share`` is read up to one kpageflags read (~0.5 s) before the touch.

Sources: mm/page_reporting.c; mm/page_alloc.c (``__rmqueue_smallest``,
``__putback_isolated_page``, ``FPI_TO_TAIL``); fs/proc/page.c;
include/uapi/linux/kernel-page-flags.h; Documentation/admin-guide/mm/pagemap.rst;
include/uapi/linux/virtio_balloon.h.
"""

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..units import PAGE_SIZE, format_size, parse_size
from . import _common
from ._common import recording_kind
from .drain import (
    FILL_SLACK,
    Child,
    _Interrupts,
    _number,
    begin,
    check_free,
    filler_size,
)

__all__ = ["FirstTouchRecording", "first_touch"]

CASES = ("first", "backed", "discarded")
MAX_REPEATS = 100
MAX_WAIT_S = 3600.0
REPORTED_ENOUGH = 0.9  # the wait ends when reported bytes grew by this share of the size
POLL_S = 0.5
# ... or when they stopped growing for three reporting delays (the rest of the freed region
# lies in blocks below page_reporting_order, which are never reported)
SETTLE_S = 3 * _common.PAGE_REPORTING_DELAY_S
TOP_UPS = 4  # at most this many filler mappings before one touch


@recording_kind
@dataclasses.dataclass
class FirstTouchRecording:
    """Touch timings recorded by :func:`first_touch` (see the module docstring).

    ``touches``: one row per timed touch: ``case`` (first/backed/discarded), ``repeat``,
    ``bytes``, ``seconds``, ``s_per_gib``, ``reported_share`` (share of the touched pages in
    reported free blocks just before the touch; NaN for backed), ``reused_share`` (backed:
    share of the pages the previous touch held; NaN otherwise), ``reported_grew_bytes``
    (discarded: growth of the reported bytes from the unmap to the touch; NaN otherwise)
    and ``unreported_free_bytes`` (free minus reported bytes before the touch; NaN for
    backed).
    """

    __repr__ = _common.recording_repr

    KIND = "first_touch"
    TABLES = {"touches": ("case", "repeat", "bytes", "seconds", "s_per_gib", "reported_share",
                          "reused_share", "reported_grew_bytes", "unreported_free_bytes")}
    # differences of two readings: the reported memory can shrink between the unmap and the
    # touch, and free and reported memory are read one after the other
    SIGNED = ("reported_grew_bytes", "unreported_free_bytes")
    META = ("size_bytes", "repeats", "wait_s", "waited_s", "filler_bytes", "nohugepage",
            "provenance", "notes")

    size_bytes: int
    repeats: int
    wait_s: float
    waited_s: list  # per repeat: seconds waited for the reports before the discarded touch
    filler_bytes: int
    nohugepage: bool
    provenance: dict
    notes: str
    touches: pd.DataFrame

    def __post_init__(self):
        for name in ("size_bytes", "repeats", "filler_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) \
                    or v < (0 if name == "filler_bytes" else 1):
                kind = "non-negative" if name == "filler_bytes" else "positive"
                raise ValueError(f"{name} must be a {kind} integer, got {v!r}")
        _number("wait_s", self.wait_s, 0, MAX_WAIT_S)
        if not isinstance(self.waited_s, list) or len(self.waited_s) != self.repeats:
            raise ValueError(f"waited_s must be a list of {self.repeats} numbers (one per "
                             f"repeat), got {self.waited_s!r}")
        _common.check_common_fields(self)
        df = self.touches
        cols = list(self.TABLES["touches"])
        if not isinstance(df, pd.DataFrame) or list(df.columns) != cols:
            got = list(df.columns) if isinstance(df, pd.DataFrame) else type(df).__name__
            raise ValueError(f"touches must be a DataFrame with columns {cols}, got {got}")
        bad = sorted(set(df["case"]) - set(CASES))
        if bad:
            raise ValueError(f"touches.case holds {bad}; expected one of {list(CASES)}")
        s = df["seconds"].to_numpy(float)
        if not np.isfinite(s).all() or (s <= 0).any():
            raise ValueError("touches.seconds must be finite and > 0")
        for c in ("reported_share", "reused_share"):
            v = df[c].to_numpy(float)
            if ((v < 0) | (v > 1)).any():
                raise ValueError(f"touches.{c} must be in [0, 1] (or NaN)")

    def host_cost_fit(self):
        """Least-squares line ``s_per_gib = backed + extra * reported_share`` over every
        touch (backed touches at share 0): ``{"backed_s_per_gib", "extra_s_per_gib"}``, the
        second being the host's price per GiB of memory that was all discarded; NaNs when
        the shares do not vary."""
        t = self.touches
        x = t["reported_share"].fillna(0.0).to_numpy(float)
        y = t["s_per_gib"].to_numpy(float)
        if x.size < 2 or np.ptp(x) < 0.05:
            return {"backed_s_per_gib": float("nan"), "extra_s_per_gib": float("nan")}
        slope, intercept = np.polyfit(x, y, 1)
        return {"backed_s_per_gib": float(intercept), "extra_s_per_gib": float(slope)}

    def by_case(self):
        """Mean, min and max ``s_per_gib`` and the mean ``reported_share`` per case; the
        discarded - backed difference of the means is in ``.attrs["extra_s_per_gib"]``
        (read it with the discarded touches' ``reported_share``; :meth:`host_cost_fit`
        scales it to wholly discarded memory)."""
        g = self.touches.groupby("case").agg(
            mean=("s_per_gib", "mean"), min=("s_per_gib", "min"), max=("s_per_gib", "max"),
            count=("s_per_gib", "count"), reported_share=("reported_share", "mean"))
        g = g.reindex([c for c in CASES if c in g.index])
        if {"backed", "discarded"} <= set(g.index):
            g.attrs["extra_s_per_gib"] = float(g.loc["discarded", "mean"]
                                               - g.loc["backed", "mean"])
        return g

    def save(self, path, overwrite=False):
        """Write to directory ``path`` (atomically; ``overwrite`` replaces a recording)."""
        return _common.save_recording(self, path, overwrite)

    @classmethod
    def load(cls, path):
        """Read a first-touch recording written by :meth:`save` (ValueError naming the
        path)."""
        return _common.load_recording(path, kind=cls.KIND)


def first_touch(size="2GiB", repeats=3, wait_s=60.0, *, fill=True, nohugepage=True,
                steady_s=10.0, steady_max_s=180.0):
    """Time writing ``size`` bytes of fresh anonymous memory: discarded vs still backed.

    Parameters
    ----------
    size : int or str
        Bytes per touch (``"2GiB"``); at most MemAvailable minus a margin (1 GiB + 5 % of
        RAM).
    repeats : int
        Number of (backed, discarded) pairs after the ``first`` touch.
    wait_s : float
        Longest wait for the freed region to be reported before a discarded touch (the
        touch happens anyway; ``notes`` say so).
    fill : bool
        Map and hold the unreported free memory first (see the module docstring), as far as
        MemAvailable allows.
    nohugepage : bool
        ``MADV_NOHUGEPAGE`` on the child's mappings (4 KiB guest pages).
    steady_s, steady_max_s : float
        Before the child starts, wait until the reported bytes have not moved for
        ``steady_s`` (an earlier free still being reported would race the filler), at most
        ``steady_max_s`` (then the notes say so); 0 skips the wait.

    Returns a :class:`FirstTouchRecording`. Needs root, ``/proc/kpageflags`` and a
    virtio-balloon with free page reporting (:class:`ObserveError` naming what is missing).
    """
    from .kpageflags import FREE, REPORTED, scan

    size = parse_size(size, "size") // PAGE_SIZE * PAGE_SIZE
    if size < PAGE_SIZE:
        raise ValueError(f"size: less than one page ({PAGE_SIZE} bytes)")
    if isinstance(repeats, bool) or not isinstance(repeats, int) \
            or not 1 <= repeats <= MAX_REPEATS:
        raise ValueError(f"repeats must be an integer in 1..{MAX_REPEATS}, got {repeats!r}")
    wait_s = _number("wait_s", wait_s, 0, MAX_WAIT_S)
    steady_s = _number("steady_s", steady_s, 0, MAX_WAIT_S)
    steady_max_s = _number("steady_max_s", steady_max_s, 0, MAX_WAIT_S)
    for name, v in (("fill", fill), ("nohugepage", nohugepage)):
        if not isinstance(v, bool):
            raise ValueError(f"{name} must be a bool, got {v!r}")
    check_free("size", size)
    zones, waited0, steady, prov = begin("first_touch", steady_s, steady_max_s)
    gib = size / (1 << 30)
    cpu = max(os.sched_getaffinity(0))  # the child runs there: its frees fill that pcp list
    prov["child_cpu"] = cpu
    rows, waited, notes = [], [], []
    nan = float("nan")
    filler = 0

    with tempfile.TemporaryDirectory(prefix="fphlib-first-touch-") as tmp:
        pfn_file = Path(tmp) / "pfns"

        def pfns():
            a = np.fromfile(pfn_file, "<u8")
            return a[a < (1 << 55)].astype(np.int64)  # present pages (root sees pfns)

        def row(case, r, sec, reported=nan, reused=nan, grew=nan, unrep=nan):
            rows.append((case, r, size, sec, sec / gib, reported, reused, float(grew),
                         float(unrep)))

        with _Interrupts(), Child(size, nohugepage, pfn_file) as child:
            os.sched_setaffinity(child.proc.pid, {cpu})

            def top_up(s, what):
                """Fill the unreported free memory and the child CPU's per-CPU list; again
                while more turned up meanwhile (per-CPU lists drain into the buddy)."""
                nonlocal filler
                for _ in range(TOP_UPS):
                    add, want = filler_size(s, cpu, size)
                    if filler and want - FILL_SLACK < FILL_SLACK // 4:
                        break  # what is left unreported is within the slack
                    if add < want:
                        notes.append(f"{what}: the filler was cut to {format_size(add)} of "
                                     f"{format_size(want)} by MemAvailable")
                    if not add:
                        break
                    child.send(f"fill {add}", "filled")
                    filler += add
                    s, _ = scan(zones, states=True)
                    if add < want:
                        break
                return s

            s, _ = scan(zones, states=True)
            if fill:
                s = top_up(s, "first")
            sec = child.send("touch", "touched")
            prev = pfns()
            row("first", 0, sec, reported=s.share(prev, REPORTED),
                unrep=s.free_bytes - s.reported_bytes)
            for r in range(repeats):
                child.send("free", "freed")
                sec = child.send("touch", "touched")
                cur = pfns()
                row("backed", r, sec, reused=float(np.isin(cur, prev).mean()) if cur.size
                    else nan)
                child.send("free", "freed")
                start, _ = scan(zones)
                t = time.perf_counter()
                best, best_t = 0, t
                while True:
                    s, _ = scan(zones, states=True)
                    now = time.perf_counter()
                    grew = s.reported_bytes - start.reported_bytes
                    if grew > best:
                        best, best_t = grew, now
                    w = now - t
                    if grew >= REPORTED_ENOUGH * size or w >= wait_s \
                            or (best > 0 and now - best_t >= SETTLE_S):
                        break
                    time.sleep(POLL_S)
                waited.append(w)
                if grew < REPORTED_ENOUGH * size:
                    why = f"waited {wait_s:g} s" if w >= wait_s else \
                        f"no growth for {SETTLE_S:g} s"
                    notes.append(f"repeat {r}: the reported bytes grew by {format_size(grew)}"
                                 f" of {format_size(size)} in {w:.1f} s ({why})")
                if fill:
                    s = top_up(s, f"repeat {r}")
                sec = child.send("touch", "touched")
                prev = pfns()
                row("discarded", r, sec, reported=s.share(prev, REPORTED), grew=grew,
                    unrep=s.free_bytes - s.reported_bytes)
                unrep_share = s.share(prev, FREE)
                if unrep_share > 0.05:
                    notes.append(f"repeat {r}: {unrep_share:.0%} of the discarded touch came "
                                 "from free blocks not reported")
            child.send("free", "freed")
            child.exit()
    prov["loadavg_end"] = list(os.getloadavg())
    if steady is False:
        notes.insert(0, f"the reported bytes were still moving after {waited0:.1f} s: an "
                        "earlier free was being reported when the child started")
    notes.insert(0, f"{repeats} repeats of {format_size(size)} "
                    f"({'MADV_NOHUGEPAGE' if nohugepage else 'THP as configured'}), filler "
                    f"{format_size(filler)}; the wait for reports ends at "
                    f"{REPORTED_ENOUGH:.0%} of the size, after {SETTLE_S:g} s without growth "
                    f"or at {wait_s:g} s")
    touches = pd.DataFrame(rows, columns=list(FirstTouchRecording.TABLES["touches"])).astype(
        {"repeat": "int64", "bytes": "int64"})
    return FirstTouchRecording(size_bytes=size, repeats=repeats, wait_s=wait_s,
                               waited_s=[float(w) for w in waited], filler_bytes=int(filler),
                               nohugepage=nohugepage, provenance=prov, notes="; ".join(notes),
                               touches=touches)
