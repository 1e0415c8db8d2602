"""What the running Linux guest offers for recording free page hinting: :func:`probe`.

Each fact is read from procfs/sysfs and stored as found; a piece that is absent or unreadable
is stored as ``None`` (or ``False``) with the reason in ``Probe.errors``, and
:meth:`Probe.missing` names what a recording would lack. :func:`probe` never raises for a
missing piece.

Sources:

- the virtio-balloon device and its negotiated feature bits (:mod:`fphlib._virtio`:
  include/uapi/linux/virtio_ids.h, virtio_balloon.h, drivers/virtio/virtio.c);
- ``page_reporting_order`` is the module parameter of mm/page_reporting.c
  (``/sys/module/page_reporting/parameters/page_reporting_order``);
- zones come from ``/proc/zoneinfo`` (mm/vmstat.c, ``zoneinfo_show_print``: ``spanned``,
  ``present``, ``managed``, ``start_pfn``);
- tracefs is usable when mounted at ``/sys/kernel/tracing`` (or ``/sys/kernel/debug/tracing``),
  mountable when ``/proc/filesystems`` lists it;
- ``/proc/kpageflags`` (Documentation/admin-guide/mm/pagemap.rst) is readable by root only.

Simplifications: one balloon device at most is described (the first found); a machine with
several NUMA nodes is described zone by zone, each with its node.
"""

import dataclasses
import os
import platform
import re
from pathlib import Path

from .. import _virtio
from .._virtio import BALLOON_FEATURES
from . import _common
from ._common import ObserveError

__all__ = ["BALLOON_FEATURES", "Probe", "Zone", "balloon_device", "parse_pcp", "parse_zoneinfo",
           "pcp_pages", "probe", "zones"]

THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
FILESYSTEMS = "/proc/filesystems"
TRACEFS_MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


@dataclasses.dataclass(frozen=True)
class Zone:
    """One zone of ``/proc/zoneinfo``: pfns ``start_pfn .. start_pfn + spanned``."""

    node: int
    name: str
    start_pfn: int
    spanned: int
    present: int
    managed: int

    @property
    def end_pfn(self):
        return self.start_pfn + self.spanned


_ZONE_HEAD = re.compile(r"Node\s+(\d+),\s+zone\s+(\S+)")


def parse_zoneinfo(text):
    """Zones of ``/proc/zoneinfo`` text as a list of :class:`Zone` (empty zones included).

    A zone without ``start_pfn`` (the kernel prints it only for populated zones) gets
    ``start_pfn = 0`` and ``spanned = 0``. Raises ValueError naming the line of a
    ``Node``/``zone`` header or a counter that does not parse.
    """
    if not isinstance(text, str):
        raise ValueError(f"zoneinfo text must be a str, got {type(text).__name__}")
    out = []
    cur = None

    def close():
        if cur is not None:
            out.append(Zone(cur["node"], cur["name"], cur.get("start_pfn", 0),
                            cur.get("spanned", 0) if "start_pfn" in cur else 0,
                            cur.get("present", 0), cur.get("managed", 0)))

    for lineno, line in enumerate(text.splitlines(), start=1):
        m = _ZONE_HEAD.match(line)
        if m:
            close()
            cur = {"node": int(m.group(1)), "name": m.group(2)}
            continue
        if cur is None:
            continue
        parts = line.replace(":", " ").split()
        if len(parts) == 2 and parts[0] in ("spanned", "present", "managed", "start_pfn"):
            if not parts[1].isdigit():
                raise ValueError(f"zoneinfo line {lineno}: {parts[0]} {parts[1]!r} is not a "
                                 "non-negative integer")
            cur.setdefault(parts[0], int(parts[1]))
    close()
    return out


def parse_pcp(text):
    """The per-CPU page lists of ``/proc/zoneinfo`` text (``pagesets``, mm/vmstat.c):
    ``{(node, zone, cpu): {"count", "high", "high_min", "high_max", "batch"}}`` in pages.

    Pages on these lists are free but not in the buddy allocator: not ``KPF_BUDDY``, not in
    ``/proc/buddyinfo``, never reported. Since Linux 6.7 ``high`` is tuned between
    ``high_min`` and ``high_max`` (a CPU that frees much keeps up to ``high_max``: about
    1/8 of the zone split over its CPUs) and decays by itself (``decay_pcp_high``).
    """
    if not isinstance(text, str):
        raise ValueError(f"zoneinfo text must be a str, got {type(text).__name__}")
    out = {}
    zone = cpu = None
    for line in text.splitlines():
        m = _ZONE_HEAD.match(line)
        if m:
            zone, cpu = (int(m.group(1)), m.group(2)), None
            continue
        parts = line.split()
        if len(parts) == 2 and parts[0] == "cpu:" and parts[1].isdigit() and zone:
            cpu = int(parts[1])
            out[(*zone, cpu)] = {}
        elif len(parts) == 2 and cpu is not None and parts[1].isdigit() and parts[0] in (
                "count:", "high:", "batch:", "high_min:", "high_max:"):
            out[(*zone, cpu)][parts[0][:-1]] = int(parts[1])
        elif parts[:1] and parts[0] in ("vm", "node_unreclaimable:", "start_pfn:"):
            cpu = None
    return out


def pcp_pages(cpus=None, path=None):
    """Pages on the per-CPU lists now, over all zones (of ``cpus`` only, when given);
    :class:`ObserveError` where ``/proc/zoneinfo`` is unreadable."""
    pcp = parse_pcp(_common.read_text(path or _common.ZONEINFO, "per-CPU lists"))
    return sum(v.get("count", 0) for (_, _, cpu), v in pcp.items()
               if cpus is None or cpu in cpus)


def zones(path=None):
    """The zones of the running kernel (``/proc/zoneinfo``), or :class:`ObserveError`."""
    return parse_zoneinfo(_common.read_text(path or _common.ZONEINFO, "zones"))


def balloon_device(root=None):
    """The first virtio-balloon device under ``root`` (default the package's
    ``VIRTIO_DEVICES``): :func:`fphlib._virtio.balloon_device`."""
    return _virtio.balloon_device(root or _common.VIRTIO_DEVICES)


@dataclasses.dataclass
class Probe:
    """The facts :func:`probe` found (``None`` where absent; ``errors`` says why)."""

    root: bool
    tracefs_mounted: str | None  # the mount point, or None
    tracefs_mountable: bool
    kpageflags_readable: bool
    balloon: dict | None  # balloon_device()
    page_reporting_order: int | None
    kernel: str
    cpus: int | None
    mem_total_bytes: int | None
    thp_enabled: str | None  # the bracketed choice of transparent_hugepage/enabled
    zones: list  # of Zone
    errors: dict = dataclasses.field(default_factory=dict)  # piece -> why it is absent

    @property
    def reporting(self):
        """True when the balloon negotiated VIRTIO_BALLOON_F_REPORTING."""
        return bool(self.balloon) and "REPORTING" in self.balloon["features"]

    def missing(self, need=("root", "kpageflags", "balloon", "reporting",
                            "page_reporting_order", "tracefs")):
        """Names of the pieces in ``need`` this machine lacks, each with the reason."""
        have = {
            "root": self.root,
            "kpageflags": self.kpageflags_readable,
            "balloon": self.balloon is not None,
            "reporting": self.reporting,
            "page_reporting_order": self.page_reporting_order is not None,
            "tracefs": self.tracefs_mounted is not None or self.tracefs_mountable,
            "zones": bool(self.zones),
        }
        unknown = [n for n in need if n not in have]
        if unknown:
            raise ValueError(f"need: unknown piece(s) {unknown}; known: {sorted(have)}")
        out = []
        for n in need:
            if not have[n]:
                why = self.errors.get(n)
                if n == "reporting":
                    why = ("no virtio-balloon" if self.balloon is None else
                           "the virtio-balloon did not negotiate VIRTIO_BALLOON_F_REPORTING "
                           f"(features: {self.balloon['features']})")
                out.append(f"{n} ({why})" if why else n)
        return out

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["reporting"] = self.reporting
        return d

    def __repr__(self):
        b = self.balloon
        lines = [
            f"kernel {self.kernel}, {self.cpus} CPUs, "
            f"{(self.mem_total_bytes or 0) / 2**30:.2f} GiB RAM, THP {self.thp_enabled}",
            f"root: {self.root}; /proc/kpageflags readable: {self.kpageflags_readable}",
            "tracefs: " + (f"mounted at {self.tracefs_mounted}" if self.tracefs_mounted else
                           "not mounted" + (" (mountable)" if self.tracefs_mountable
                                            else " (not supported)")),
            "virtio-balloon: " + (f"{b['path']} features {', '.join(b['features']) or '-'}"
                                  if b else "none"),
            f"page_reporting_order: {self.page_reporting_order}",
        ]
        lines += [f"  node {z.node} zone {z.name:<8} start_pfn {z.start_pfn:>9} spanned "
                  f"{z.spanned:>9} managed {z.managed:>9}" for z in self.zones if z.spanned]
        missing = self.missing()
        lines.append("missing: " + ("; ".join(missing) if missing else "nothing"))
        return "Probe(\n  " + "\n  ".join(lines) + "\n)"


def _tracefs_mount():
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    points = {line.split()[1] for line in mounts if len(line.split()) > 2
              and line.split()[2] == "tracefs"}
    for p in TRACEFS_MOUNTS:
        if p in points:
            return p
    return min(points) if points else None


def probe():
    """Describe this machine (a :class:`Probe`); never raises for a missing piece."""
    errors = {}
    root = os.geteuid() == 0
    if not root:
        errors["root"] = f"euid {os.geteuid()}"

    mounted = _tracefs_mount()
    try:
        mountable = any(line.split()[-1] == "tracefs"
                        for line in Path(FILESYSTEMS).read_text().splitlines() if line.split())
    except OSError as e:
        mountable = False
        errors["tracefs"] = f"{FILESYSTEMS}: {e.strerror or e}"
    if mounted is None and not mountable:
        errors.setdefault("tracefs", "the kernel lists no tracefs in " + FILESYSTEMS)

    try:
        fd = os.open(_common.KPAGEFLAGS, os.O_RDONLY)
        try:
            kpf = len(os.pread(fd, 8, 0)) == 8
        finally:
            os.close(fd)
        if not kpf:
            errors["kpageflags"] = f"{_common.KPAGEFLAGS}: read returned no entry"
    except OSError as e:
        kpf = False
        errors["kpageflags"] = f"{_common.KPAGEFLAGS}: {e.strerror or e}"

    balloon = balloon_device()
    if balloon is None:
        errors["balloon"] = f"no virtio device of id 0x0005 under {_common.VIRTIO_DEVICES}"

    order = _common.reporting_order()
    if order is None:
        errors["page_reporting_order"] = f"{_common.REPORTING_ORDER} absent or unreadable"

    try:
        mem = _common.meminfo().get("MemTotal")
    except ObserveError as e:
        mem = None
        errors["mem_total"] = str(e)

    try:
        m = re.search(r"\[(\w+)\]", Path(THP_ENABLED).read_text())
        thp = m.group(1) if m else None
    except OSError as e:
        thp = None
        errors["thp"] = f"{THP_ENABLED}: {e.strerror or e}"

    try:
        zs = zones()
    except (ObserveError, ValueError) as e:
        zs = []
        errors["zones"] = str(e)

    return Probe(root=root, tracefs_mounted=mounted, tracefs_mountable=mountable,
                 kpageflags_readable=kpf, balloon=balloon, page_reporting_order=order,
                 kernel=platform.release(), cpus=os.cpu_count(), mem_total_bytes=mem,
                 thp_enabled=thp, zones=zs, errors=errors)
