"""Shared pieces of :mod:`fphlib.observe`: errors, the machine's facts, saved recordings.

A saved recording is a directory written atomically (:func:`fphlib._atomic.save_dir`):

- ``recording.json``: ``{"format": RECORDING_FORMAT, "kind": "drain" | "trace" |
  "first_touch", "fphlib_version": ..., "meta": {...}}`` where ``meta`` holds the
  recording's scalar fields and its provenance (:func:`provenance`);
- one zstd-compressed parquet file per table (``NAME.parquet``), named in
  ``recording.json``'s ``"tables"`` list;
- optionally ``.npz`` files a recording class writes itself (a trace recording's trace).

Each recording class (``DrainRecording``, ``FirstTouchRecording``, ...) declares its kind,
its tables and their columns; :func:`load_recording` checks every file against that
declaration and raises a ``ValueError`` that starts with the offending path.
"""

import datetime
import json
import os
import platform
from pathlib import Path

import pandas as pd

from .. import _virtio
from .._atomic import owner, save_dir
from ..api.result import check_values
from ..units import PAGE_SIZE

RECORDING_FORMAT = 1
META_FILE = "recording.json"

# sysfs/procfs paths read by the package (one home; tests point them at fake trees)
KPAGEFLAGS = "/proc/kpageflags"
BUDDYINFO = "/proc/buddyinfo"
MEMINFO = "/proc/meminfo"
ZONEINFO = "/proc/zoneinfo"
VIRTIO_DEVICES = _virtio.VIRTIO_DEVICES
REPORTING_ORDER = "/sys/module/page_reporting/parameters/page_reporting_order"
TRACEFS = "/sys/kernel/tracing"

# Compile-time constants of mm/page_reporting.h / mm/page_reporting.c (Linux 5.7+); a
# running kernel does not expose them, so a recording states them as the source's values.
PAGE_REPORTING_CAPACITY = 32  # mm/page_reporting.h: PAGE_REPORTING_CAPACITY
PAGE_REPORTING_DELAY_S = 2.0  # mm/page_reporting.c: PAGE_REPORTING_DELAY (2 * HZ)


class ObserveError(RuntimeError):
    """The live kernel lacks something a recording needs (the message names it)."""


def require_root(what):
    """Raise :class:`ObserveError` unless running as root (``what`` needs it)."""
    if os.geteuid() != 0:
        raise ObserveError(f"{what} needs root (euid {os.geteuid()}): run as root")


def read_text(path, what=None):
    """The text of a procfs/sysfs file, or :class:`ObserveError` naming it."""
    try:
        return Path(path).read_text()
    except OSError as e:
        raise ObserveError(f"{path}: cannot read{f' ({what})' if what else ''}: "
                           f"{e.strerror or e}") from None


def meminfo():
    """``/proc/meminfo`` as ``{name: bytes}`` (kB fields converted; counts kept as is)."""
    out = {}
    for line in read_text(MEMINFO).splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        v = int(parts[0])
        out[name.strip()] = v * 1024 if len(parts) > 1 and parts[1] == "kB" else v
    return out


def reporting_order():
    """``page_reporting_order`` of the running kernel, or None where the module parameter is
    absent (no free page reporting built in)."""
    try:
        return int(Path(REPORTING_ORDER).read_text().strip())
    except (OSError, ValueError):
        return None


def provenance():
    """Facts about this machine stored with every recording."""
    from .. import __version__

    try:
        mem = meminfo().get("MemTotal")
    except ObserveError:
        mem = None
    functions = reporting_functions()  # one read of /proc/kallsyms (megabytes of text)
    return {
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "machine": platform.machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mem_total_bytes": mem,
        "cpus": os.cpu_count(),
        "page_size": PAGE_SIZE,
        "page_reporting_order": reporting_order(),
        "page_reporting_capacity": PAGE_REPORTING_CAPACITY,
        "page_reporting_delay_s": PAGE_REPORTING_DELAY_S,
        "reporting_constants_source": (
            "page_reporting_order read from " + REPORTING_ORDER + "; capacity and delay are "
            "compile-time constants of mm/page_reporting.h and mm/page_reporting.c"),
        "cmdline": _cmdline(),
        "reporting_functions": functions,
        "reporting_functions_beyond_mainline": sorted(
            set(functions) - MAINLINE_REPORTING_FUNCTIONS),
        "fphlib_version": __version__,
    }


# The functions of mm/page_reporting.c in mainline Linux 6.x (static ones may be inlined
# away): a kernel with others has a patched free page reporting, whose behaviour may differ
# from the mainline one fphlib models; provenance() lists them.
MAINLINE_REPORTING_FUNCTIONS = frozenset({
    "page_reporting_register", "page_reporting_unregister", "__page_reporting_notify",
    "__page_reporting_request", "page_reporting_process", "page_reporting_cycle",
    "page_reporting_drain", "page_reporting_process_zone", "page_reporting_order_param",
    "page_reporting_order", "page_reporting_dev", "page_reporting_mutex",
})


def _cmdline():
    try:
        return Path("/proc/cmdline").read_text().strip()
    except OSError:
        return None


def reporting_functions():
    """Names of the running kernel's ``page_reporting*`` symbols (``/proc/kallsyms``; as
    root, or with kptr_restrict off, the names are listed whatever the addresses show)."""
    names = set()
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and "page_reporting" in parts[2]:
                    name = parts[2].split(".")[0]  # page_reporting_drain.isra.0
                    if not name.startswith("__pfx_"):
                        names.add(name)
    except OSError:
        return []
    return sorted(names)


# ------------------------------------------------------------------ saved recordings

_KINDS = {}  # kind -> recording class (registered by each module's class definition)


def recording_kind(cls):
    """Class decorator: register a recording class under ``cls.KIND``.

    The class declares ``KIND`` (str), ``TABLES`` (``{name: tuple of columns}``) and
    ``META`` (names of its scalar fields), and is constructible as
    ``cls(**meta, **tables)``. Optional methods ``write_extra_files(dir)`` and
    ``read_extra_files(dir)`` save and load the ``.npz`` files it keeps besides its tables.
    """
    _KINDS[cls.KIND] = cls
    return cls


def recording_repr(rec):
    """A short description of a recording (its scalar fields, table sizes, where and when it
    was recorded): the ``__repr__`` of every recording class; long fields are summarised."""
    import textwrap

    cls = type(rec)
    parts = []
    for k in cls.META:
        if k in ("provenance", "notes"):
            continue
        v = getattr(rec, k)
        text = repr(v)
        if len(text) > 70:
            text = f"<{len(v)} items>" if hasattr(v, "__len__") else text[:67] + "..."
        parts.append(f"{k}={text}")
    parts += [f"{n}: {len(getattr(rec, n))} rows" for n in cls.TABLES]
    prov = getattr(rec, "provenance", None) or {}
    parts.append(f"recorded on {prov.get('kernel')} at {prov.get('date')}")
    body = textwrap.fill(", ".join(parts), 96, initial_indent="  ", subsequent_indent="  ")
    return f"{cls.__name__}(\n{body}\n)"


def check_common_fields(rec):
    """The fields every recording of :mod:`fphlib.observe.drain` and ``touch`` has:
    ``nohugepage`` a bool, ``provenance`` a dict, ``notes`` a str (ValueError naming the
    field otherwise)."""
    if not isinstance(rec.nohugepage, bool):
        raise ValueError(f"nohugepage must be a bool, got {rec.nohugepage!r}")
    if not isinstance(rec.provenance, dict):
        raise ValueError(f"provenance must be a dict, got {type(rec.provenance).__name__}")
    if not isinstance(rec.notes, str):
        raise ValueError(f"notes must be a str, got {type(rec.notes).__name__}")


def _is_recording(path):
    """A recording fphlib saved: marked as one (``fphlib._atomic.owner``), or saved before
    the marker existed, holding only its files, and loading."""
    kind = owner(path)
    if kind is not None:
        return kind == "recording"
    try:
        if not ((path / META_FILE).is_file() and all(
                p.name == META_FILE or p.suffix in (".parquet", ".npz")
                for p in path.iterdir())):
            return False
        load_recording(path)
    except (OSError, ValueError):
        return False
    return True


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        return v.item()  # numpy scalars
    if isinstance(v, float) and v != v:
        return None
    return v


def save_recording(rec, path, overwrite=False):
    """Write recording ``rec`` (a registered recording class) to directory ``path``."""
    from .. import __version__

    cls = type(rec)

    def write(tmp):
        for name in cls.TABLES:
            getattr(rec, name).to_parquet(tmp / f"{name}.parquet", index=False,
                                          compression="zstd")
        meta = {k: _jsonable(getattr(rec, k)) for k in cls.META}
        doc = {"format": RECORDING_FORMAT, "kind": cls.KIND, "fphlib_version": __version__,
               "tables": list(cls.TABLES), "meta": meta}
        (tmp / META_FILE).write_text(json.dumps(doc, indent=1))
        extra = getattr(rec, "write_extra_files", None)  # e.g. a trace recording's trace.npz
        if extra is not None:
            extra(tmp)

    return save_dir(path, write, _is_recording, overwrite, what="recording")


def _bad(path, what):
    raise ValueError(f"{path}: {what}")


def load_recording(path, kind=None):
    """Read a recording saved by its ``save`` method; ``kind`` (optional) must match.

    Raises ``ValueError`` starting with the offending path for a missing or unreadable
    file, a newer or unknown format, an unknown kind, or a table with other columns.
    """
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise ValueError(f"path: {path!r} is not allowed; expected a directory path")
    path = Path(path)
    if not path.is_dir():
        _bad(path, "is not a saved recording (" + ("not a directory)" if path.exists()
                                                   else "no such directory)"))
    mpath = path / META_FILE
    try:
        doc = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        _bad(path, f"is not a saved recording (missing {META_FILE})")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        _bad(mpath, f"cannot read ({e})")
    if not isinstance(doc, dict):
        _bad(mpath, f"expected a JSON object, got {type(doc).__name__}")
    fmt = doc.get("format")
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        _bad(mpath, f"format {fmt!r} is not a recording format (expected 1..{RECORDING_FORMAT})")
    if fmt > RECORDING_FORMAT:
        _bad(mpath, f"written by a newer fphlib ({doc.get('fphlib_version')!r}, format {fmt}); "
                    f"this fphlib reads formats 1..{RECORDING_FORMAT}")
    k = doc.get("kind")
    if k not in _KINDS:
        _import_kinds()
    if k not in _KINDS:
        _bad(mpath, f"kind {k!r} is not one of {', '.join(sorted(_KINDS))}")
    if kind is not None and k != kind:
        _bad(mpath, f"is a {k!r} recording; expected {kind!r}")
    cls = _KINDS[k]
    meta = doc.get("meta")
    if not isinstance(meta, dict):
        _bad(mpath, "misses the 'meta' object")
    absent = [m for m in cls.META if m not in meta]
    if absent:
        _bad(mpath, f"meta misses field(s) {absent}")
    tables = {}
    for name, columns in cls.TABLES.items():
        tpath = path / f"{name}.parquet"
        if not tpath.is_file():
            _bad(path, f"is not a complete {k} recording (missing {tpath.name})")
        try:
            df = pd.read_parquet(tpath)
        except Exception as e:  # pyarrow raises many types for a corrupt file
            _bad(tpath, f"not a readable parquet table ({type(e).__name__}: {e})")
        if list(df.columns) != list(columns):
            _bad(tpath, f"has columns {list(df.columns)}; expected {list(columns)}")
        # a recording may lack a value (NaN: a read that did not happen), never hold a string
        # or a negative size (a difference of two readings, in cls.SIGNED, has either sign)
        check_values(tpath, df, nan_ok=tuple(df.columns), signed=getattr(cls, "SIGNED", ()))
        tables[name] = df
    try:
        rec = cls(**{m: meta[m] for m in cls.META}, **tables)
    except (TypeError, ValueError) as e:
        _bad(path, f"invalid {k} recording: {e}")
    extra = getattr(rec, "read_extra_files", None)  # e.g. a trace recording's trace.npz
    if extra is not None:
        extra(path)
    return rec


def _import_kinds():
    import importlib

    for mod in ("drain", "trace", "touch"):
        try:
            importlib.import_module(f"fphlib.observe.{mod}")
        except ImportError:
            pass
