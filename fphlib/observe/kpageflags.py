"""Free and reported memory from ``/proc/kpageflags``: which pages are free, which were reported.

``/proc/kpageflags`` holds one u64 of flags per pfn (Documentation/admin-guide/mm/pagemap.rst;
bit numbers in include/uapi/linux/kernel-page-flags.h). fs/proc/page.c
(``stable_page_flags``) sets ``KPF_BUDDY`` (bit 10) on the head of a free buddy block
(``PageBuddy``) and, since Linux 4.x, on every other page of it too (``page_count(page) == 0
&& is_free_buddy_page(page)``, mm/page_alloc.c). Free page reporting (mm/page_reporting.c,
``page_reporting_drain``) marks a block it reported with ``__SetPageReported`` on its head
page only, and ``PG_reported`` is an alias of ``PG_uptodate`` (include/linux/page-flags.h),
exported as ``KPF_UPTODATE`` (bit 3). The allocator clears it when the block leaves the free
list (``del_page_from_free_list``), and a free page's other flags were cleared when it was
freed, so on a ``KPF_BUDDY`` page ``KPF_UPTODATE`` means "head of a reported block".

The map says which pages are free, not how they are grouped into blocks. :func:`summarize`
rebuilds the grouping zone by zone, from the lowest pfn up: a free page starts a block whose
order is the largest ``o <= MAX_ORDER`` (10) such that the page is aligned to ``2**o`` pages
and all ``2**o`` pages are free and in the zone; the next block starts after it. This is the
buddy allocator's own grouping as long as it merged every pair of free buddies, which it does
on every free (``__free_one_page``) except across zones, above ``MAX_ORDER`` and next to an
isolated pageblock. A block is reported when its head has ``KPF_UPTODATE``; a ``KPF_UPTODATE``
free page that is not the head of a rebuilt block is counted as ``stray_reported_pages``
(zero on a consistent map).

Limits (what may differ from ``/proc/buddyinfo``'s ``nr_free``):

- pages on the per-CPU lists (pcp) have refcount 0 but are not in the buddy: not
  ``KPF_BUDDY``, so not counted free here, and not in ``nr_free`` either. Since Linux 6.7
  a CPU that frees much keeps up to ``high_max`` pages there (about 1/8 of the zone split
  over the CPUs: 688 MiB per CPU on a 24 GiB guest), draining them over tens of seconds
  (``fphlib.observe.machine.pcp_pages`` reads them from ``/proc/zoneinfo``);
- blocks the reporting worker has isolated while the host discards them
  (``__isolate_free_page``, up to ``PAGE_REPORTING_CAPACITY`` blocks) are not ``PageBuddy``
  for that time: free, but absent from this map and from ``nr_free``;
- the map is read in chunks while the allocator runs: a block split or merged between two
  chunks is seen half before, half after (a read of 24 GiB takes about half a second);
- two free buddies the kernel did not merge (an isolated pageblock during compaction or
  ``alloc_contig_range``) are rebuilt as one bigger block: counts per order shift up, the
  number of free pages does not;
- memory not yet handed to the buddy allocator (deferred struct page init) has no flags at
  all and is not counted free, although ``MemFree`` may count it.

Simplifications: 4 KiB pages (``PAGE_SIZE``) and ``MAX_ORDER`` 10 (x86_64's default,
``MAX_PAGE_ORDER``); zone ranges from ``/proc/zoneinfo`` (``start_pfn``, ``spanned``).
"""

import dataclasses
import os

import numpy as np

from .._jit import jit
from ..units import NR_ORDERS, PAGE_SIZE
from . import _common
from ._common import ObserveError

__all__ = ["FREE", "KPF_BUDDY", "KPF_NOPAGE", "KPF_UPTODATE", "MAX_ORDER", "NOT_FREE",
           "REPORTED", "Summary", "read_flags", "scan", "summarize"]

# include/uapi/linux/kernel-page-flags.h
KPF_UPTODATE = 3
KPF_BUDDY = 10
KPF_NOPAGE = 20
MAX_ORDER = NR_ORDERS - 1  # include/linux/mmzone.h: MAX_PAGE_ORDER (10 on x86_64)

CHUNK_PFNS = 1 << 16  # pfns per pread: 512 KiB of flags
NOT_FREE, FREE, REPORTED = 0, 1, 2  # Summary.state per pfn


def read_flags(start_pfn, stop_pfn, chunk_pfns=CHUNK_PFNS, path=None):
    """The kpageflags entries of pfns ``start_pfn .. stop_pfn - 1`` as a uint64 array.

    Read with ``os.preadv`` in chunks of ``chunk_pfns`` entries straight into the array
    (``/proc/kpageflags`` accepts only reads at multiples of 8 bytes). Entries past the end of
    the file (the kernel stops at the last memory section) are ``1 << KPF_NOPAGE``. ``path``
    defaults to ``/proc/kpageflags``; a regular file of the same format works too.
    """
    for name, v in (("start_pfn", start_pfn), ("stop_pfn", stop_pfn),
                    ("chunk_pfns", chunk_pfns)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if stop_pfn < start_pfn:
        raise ValueError(f"stop_pfn ({stop_pfn}) must be >= start_pfn ({start_pfn})")
    if chunk_pfns == 0:
        raise ValueError("chunk_pfns must be >= 1, got 0")
    path = path or _common.KPAGEFLAGS
    out = np.full(int(stop_pfn - start_pfn), 1 << KPF_NOPAGE, np.uint64)
    raw = out.view(np.uint8)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise ObserveError(f"{path}: cannot open ({e.strerror or e}); "
                           "/proc/kpageflags needs root") from None
    try:
        done = 0
        total = raw.size
        while done < total:
            want = min(chunk_pfns * 8, total - done)
            n = os.preadv(fd, [raw[done:done + want]], start_pfn * 8 + done)
            if n == 0:
                break  # end of file: the rest stays KPF_NOPAGE
            if n % 8:
                raise ObserveError(f"{path}: short read of {n} bytes at byte "
                                   f"{start_pfn * 8 + done} (not a multiple of 8)")
            done += n
    except OSError as e:
        raise ObserveError(f"{path}: read failed ({e.strerror or e})") from None
    finally:
        os.close(fd)
    return out


@jit
def _kernel(flags, base_pfn, zone_lo, zone_hi, max_order, state):
    """Rebuild free blocks zone by zone (see the module docstring).

    Returns (free pages per zone, blocks per zone and order, reported blocks per zone and
    order, stray reported pages per zone). Where ``state`` has one entry per pfn it is set to
    ``FREE`` / ``REPORTED`` over each rebuilt block (left as is elsewhere).
    """
    fill = state.size == flags.size
    nz = zone_lo.size
    n = flags.size
    buddy = np.uint64(1 << 10)
    uptodate = np.uint64(1 << 3)
    free = np.zeros(nz, np.int64)
    blocks = np.zeros((nz, max_order + 1), np.int64)
    reported = np.zeros((nz, max_order + 1), np.int64)
    stray = np.zeros(nz, np.int64)
    for z in range(nz):
        lo = max(zone_lo[z], base_pfn)
        hi = min(zone_hi[z], base_pfn + n)
        p = lo
        while p < hi:
            f = flags[p - base_pfn]
            if f & buddy == 0:
                p += 1
                continue
            o = 0
            while o < max_order:
                size = np.int64(1) << (o + 1)
                if p % size != 0 or p + size > hi:
                    break
                ok = True
                for q in range(p + (size >> 1), p + size):
                    if flags[q - base_pfn] & buddy == 0:
                        ok = False
                        break
                if not ok:
                    break
                o += 1
            size = np.int64(1) << o
            blocks[z, o] += 1
            free[z] += size
            if f & uptodate:
                reported[z, o] += 1
            if fill:
                mark = np.uint8(2) if f & uptodate else np.uint8(1)
                for q in range(p - base_pfn, p - base_pfn + size):
                    state[q] = mark
            for q in range(p + 1, p + size):
                if flags[q - base_pfn] & uptodate:
                    stray[z] += 1
            p += size
    return free, blocks, reported, stray


@dataclasses.dataclass
class Summary:
    """Free and reported memory of a kpageflags map, per zone (rows of ``zones``)."""

    zones: list  # [(node, name)] one per row
    free_pages: np.ndarray  # (zones,) KPF_BUDDY pages
    nr_free: np.ndarray  # (zones, MAX_ORDER + 1) rebuilt free blocks per order
    reported_blocks: np.ndarray  # (zones, MAX_ORDER + 1) of them reported
    stray_reported_pages: np.ndarray  # (zones,) see the module docstring
    state: np.ndarray | None = None  # per pfn: NOT_FREE, FREE or REPORTED (``states=True``)
    start_pfn: int = 0  # the pfn of state[0]

    @property
    def free_bytes(self):
        return int(self.free_pages.sum()) * PAGE_SIZE

    @property
    def reported_pages(self):
        orders = np.int64(1) << np.arange(self.reported_blocks.shape[1], dtype=np.int64)
        return int((self.reported_blocks * orders).sum())

    @property
    def reported_bytes(self):
        return self.reported_pages * PAGE_SIZE

    def share(self, pfns, state=REPORTED):
        """Share of ``pfns`` (an array; pfns outside the map count as not in ``state``)
        whose page was in ``state`` (needs ``states=True``)."""
        if self.state is None:
            raise ValueError("share needs a summary made with states=True")
        pfns = np.asarray(pfns, np.int64)
        if pfns.size == 0:
            return float("nan")
        i = pfns - self.start_pfn
        ok = (i >= 0) & (i < self.state.size)
        return float((self.state[i[ok]] == state).sum() / pfns.size)

    def buddyinfo(self):
        """``{(node, zone): nr_free per order}``, as fphlib.guest.fragmentation's
        ``parse_buddyinfo`` returns /proc/buddyinfo."""
        return {z: self.nr_free[i].copy() for i, z in enumerate(self.zones)}


def _int_array(name, v):
    a = np.asarray(v)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D sequence of integers, got {a!r}")
    return a.astype(np.int64)


def summarize(flags, start_pfn=0, zones=None, max_order=MAX_ORDER, states=False):
    """A :class:`Summary` of the kpageflags entries ``flags`` of pfns ``start_pfn ...``.

    ``zones`` is a list of :class:`fphlib.observe.machine.Zone` (or ``(node, name, lo, hi)``
    tuples of pfns); blocks never cross a zone's bounds. Default: one zone covering ``flags``.
    With ``states=True`` the summary holds ``state``: per pfn ``NOT_FREE`` (0), ``FREE`` (1,
    in a free block not reported) or ``REPORTED`` (2, in a reported free block).
    """
    flags = np.asarray(flags)
    if flags.ndim != 1 or flags.dtype != np.uint64:
        raise ValueError(f"flags must be a 1-D uint64 array (kpageflags entries), got "
                         f"{flags.dtype} of shape {flags.shape}")
    if isinstance(start_pfn, bool) or not isinstance(start_pfn, int | np.integer) \
            or start_pfn < 0:
        raise ValueError(f"start_pfn must be a non-negative integer, got {start_pfn!r}")
    if isinstance(max_order, bool) or not isinstance(max_order, int) \
            or not 0 <= max_order <= 20:
        raise ValueError(f"max_order must be an integer in 0..20, got {max_order!r}")
    if zones is None:
        zones = [(0, "all", int(start_pfn), int(start_pfn) + flags.size)]
    names, lo, hi = [], [], []
    for i, z in enumerate(zones):
        if hasattr(z, "start_pfn"):
            z = (z.node, z.name, z.start_pfn, z.end_pfn)
        try:
            node, name, a, b = z
            a, b = int(a), int(b)
        except (TypeError, ValueError):
            raise ValueError(f"zones[{i}] must be a Zone or (node, name, lo, hi), "
                             f"got {z!r}") from None
        if not 0 <= a <= b:
            raise ValueError(f"zones[{i}]: pfn range {a}..{b} is not 0 <= lo <= hi")
        names.append((node, name))
        lo.append(a)
        hi.append(b)
    state = np.zeros(flags.size if states else 0, np.uint8)
    free, blocks, reported, stray = _kernel(
        np.ascontiguousarray(flags), np.int64(start_pfn), _int_array("zones", lo),
        _int_array("zones", hi), np.int64(max_order), state)
    return Summary(names, free, blocks, reported, stray, state if states else None,
                   int(start_pfn))


def live_zones():
    """The populated zones of the running kernel (``/proc/zoneinfo``)."""
    from .machine import zones as _zones

    return [z for z in _zones() if z.spanned]


def scan(zones=None, chunk_pfns=CHUNK_PFNS, path=None, states=False):
    """Read kpageflags over the zones' pfns and summarize it: ``(Summary, seconds to read)``
    (``states``: see :func:`summarize`).

    Needs root; raises :class:`ObserveError` naming what is missing.
    """
    import time

    if path is None:
        _common.require_root("reading /proc/kpageflags")
    zones = zones if zones is not None else live_zones()
    if not zones:
        raise ObserveError(f"{_common.ZONEINFO}: no populated zone")
    lo = min(z.start_pfn for z in zones)
    hi = max(z.end_pfn for z in zones)
    t = time.perf_counter()
    flags = read_flags(lo, hi, chunk_pfns, path)
    dt = time.perf_counter() - t
    return summarize(flags, lo, zones, states=states), dt
