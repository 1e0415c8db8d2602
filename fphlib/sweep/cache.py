"""One file per run in a cache directory, written atomically, checked when read.

The directory is fphlib's: created and marked (``fphlib._atomic.OWNER``, kind ``sweep
cache``) by the first sweep, or an empty one (then marked), or one of an older fphlib that
holds nothing but cache entries (adopted: marked). Any other directory is refused, so a
sweep never writes among a user's files. Entries are written through the marked temporary
directory ``.fphlib-tmp`` inside it, and only files there are ever removed as stale (a killed
sweep's half-written entry, an hour old); hidden ``*.tmp`` files an older fphlib left in the
directory itself are left alone.

The key is the SHA-256 of the canonical config JSON, the fphlib version and
``fphlib._cache.sources_digest()`` (the model's kernel sources, plus ``fphlib/api`` and
``sweep/run.py`` where the summary is computed): editing the model or upgrading
fphlib makes old entries misses instead of silently mixing results of two models. A file is
written to a temporary name in the same directory and renamed over its final name
(``os.replace`` is atomic), so a sweep killed at any moment leaves complete entries or none.
"""

import functools
import hashlib
import json
import math
import os
import re
import tempfile
import time
import warnings
from pathlib import Path

from .. import __version__
from .._atomic import OWNER, make_owned_dir, mark, owner
from .._cache import _ROOT, sources_digest
from ..api.result import SUMMARY_METRICS, summary_problem

FORMAT = 1
KIND = "sweep cache"  # what the directory's ownership marker says
TMP_DIR = ".fphlib-tmp"  # entries are written here, then renamed into the directory
STALE_S = 3600  # a temporary this old is a killed sweep's (no writer holds one that long)
_ENTRY = re.compile(r"[0-9a-f]{64}\.json")
_OLD_TMP = re.compile(r"\.[0-9a-f]{16}-.*\.tmp")  # temporaries of fphlib before the marker


@functools.cache
def model_digest():
    """``sources_digest()`` plus the sources that turn engine state into the summary.

    ``sources_digest`` covers the jitted kernels only; the summary metrics are computed in
    ``fphlib/api`` (``simulate._result``) and shaped in ``sweep/run.py``, so an edit there
    must invalidate cached summaries too. Once per process (it reads every source).
    """

    h = hashlib.sha1(sources_digest().encode())
    for f in [*sorted((_ROOT / "api").glob("*.py")), _ROOT / "sweep" / "run.py"]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def version():

    return __version__


def run_key(config_json, plugins=None):
    """Cache key of one run: config, fphlib version, model sources and the source digests
    of the plug-ins it uses (``SimConfig.plugins()``)."""
    h = hashlib.sha256()
    for part in (config_json, version(), model_digest(),
                 json.dumps(plugins or {}, sort_keys=True)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


class RunCache:
    """A directory of ``<key>.json`` files, one per completed run.

    Parameters
    ----------
    path : str or os.PathLike
        Created (and marked as fphlib's) if missing; an existing directory must be empty,
        an earlier sweep's cache, or an older fphlib's (only entries in it).

    Raises
    ------
    ValueError
        Naming ``cache`` for ``""``, a path that is not a directory, a directory that holds
        other files or that cannot be created.
    """

    def __init__(self, path):
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise ValueError(f"cache: {path!r} is not allowed; expected a directory path "
                             "(None: no cache)")
        self.path = Path(path)
        shown = repr(str(self.path))
        if os.path.lexists(self.path) and (self.path.is_symlink() or not self.path.is_dir()):
            raise ValueError(f"cache: {shown} exists and is not a directory")
        try:
            if not self.path.exists():
                make_owned_dir(self.path, KIND)
            elif owner(self.path) is None:
                self._adopt()
        except OSError as e:
            raise ValueError(f"cache: cannot create directory {shown} "
                             f"({e.strerror or e})") from None
        kind = owner(self.path)
        if kind != KIND:
            raise ValueError(f"cache: {shown} is an fphlib {kind}, not a sweep cache; choose "
                             "a new or empty directory")
        self.tmp = self.path / TMP_DIR
        self._drop_stale_temps()

    def _adopt(self):
        """Mark an existing unmarked directory if it is empty or an older fphlib's cache
        (nothing in it but entries and their temporaries); refuse anything else."""
        names = sorted(p.name for p in self.path.iterdir())
        if owner(self.path) is not None:
            return  # another sweep creating the same directory marked it meanwhile
        # ... or is marking it: the marker's temporary and the temporary directory may be
        # there already (a file named like the marker that is not one is the user's)
        other = [n for n in names if not (_ENTRY.fullmatch(n) or _OLD_TMP.fullmatch(n)
                                          or n == TMP_DIR or n.startswith(OWNER + "."))]
        if other:
            raise ValueError(
                f"cache: {str(self.path)!r} holds files that are not fphlib sweep cache "
                f"entries (e.g. {other[0]!r}); a sweep writes only into a new or empty "
                "directory or an earlier sweep's cache: choose another"
            )
        mark(self.path, KIND)

    def _drop_stale_temps(self, age_s=STALE_S):
        """Remove temporary files a killed sweep left mid-write: only in the marked
        temporary directory, and an hour old (a concurrent sweep's files are safe)."""
        if self.tmp.is_symlink() or not self.tmp.is_dir() or owner(self.tmp) is None:
            return
        now = time.time()
        for f in self.tmp.iterdir():
            try:
                if f.name != OWNER and not f.is_symlink() and f.is_file() and \
                        now - f.stat().st_mtime > age_s:
                    f.unlink()
            except OSError:
                pass

    def file(self, key):
        return self.path / f"{key}.json"

    def get(self, key, config_json, series=None, points=None):
        """The stored payload, or None when absent, incomplete for ``series``, or corrupt.

        A corrupt file (not JSON, wrong fields, another run's content, a summary metric that
        is not a number, missing, negative, infinite or NaN where a run never writes NaN, a
        series that is not columns of numbers) is reported with a warning naming it and
        treated as missing, so it is recomputed and overwritten. Something other than a
        file where the entry should be (a directory) is not fphlib's to replace: a
        ``ValueError`` names it.
        """
        f = self.file(key)
        if os.path.lexists(f) and (f.is_symlink() or not f.is_file()):
            raise ValueError(f"sweep cache: {f} is not a cache entry file (a directory or "
                             "another kind of file is in its place); remove it or choose "
                             "another cache directory")
        try:
            text = f.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            return self._corrupt(f, f"unreadable: {e}")
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as e:
            return self._corrupt(f, f"not valid JSON: {e}")
        if not isinstance(entry, dict) or entry.get("format") != FORMAT:
            return self._corrupt(f, "not an fphlib sweep cache entry")
        if entry.get("key") != key or entry.get("config") != config_json:
            return self._corrupt(f, "holds another run than its name says")
        if not isinstance(entry.get("summary"), dict) or not isinstance(
            entry.get("series"), dict
        ):
            return self._corrupt(f, "missing summary or series")
        summary = entry["summary"]
        absent = [m for m in SUMMARY_METRICS if m not in summary]
        if absent:
            return self._corrupt(f, f"summary misses metric(s) {absent}")
        why = summary_problem({m: (None if isinstance(v, float) and math.isnan(v) else v)
                               for m, v in summary.items()})
        if why:
            return self._corrupt(f, f"summary {why}")
        if series is not None:
            got = entry["series"].get(series)
            if not isinstance(got, dict) or got.get("points") != points:
                return None  # complete, but without the series asked for: recompute, overwrite
            why = _columns_problem(got.get("columns"))
            if why:
                return self._corrupt(f, f"series {series!r} {why}")
        return entry

    def _corrupt(self, f, why):
        warnings.warn(f"sweep cache: {f} is corrupt ({why}); recomputing it", stacklevel=3)
        return None

    def put(self, key, config_json, payload, series=None, points=None):
        """Write one run atomically (temporary file in the same directory + ``os.replace``)."""
        entry = {
            "format": FORMAT,
            "key": key,
            "config": config_json,
            "fphlib_version": version(),
            "sources_digest": model_digest(),
            "summary": payload["summary"],
            "series": {} if series is None else {series: {"points": points,
                                                          "columns": payload["series"]}},
        }
        text = json.dumps(entry)
        f = self.file(key)
        if os.path.lexists(f) and (f.is_symlink() or not f.is_file()):
            raise ValueError(f"sweep cache: {f} is not a cache entry file (a directory or "
                             "another kind of file is in its place); remove it or choose "
                             "another cache directory")
        make_owned_dir(self.tmp, "temporary directory")
        # in fphlib's own temporary directory, not *.json: a file torn by a kill mid-write
        # is never taken for an entry, and only such files are ever removed as stale
        fd, tmp = tempfile.mkstemp(prefix=f"{key[:16]}-", suffix=".tmp", dir=self.tmp)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())  # the rename must not land before the data
            os.replace(tmp, f)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def _columns_problem(columns):
    """Why ``columns`` is not a series of a cache entry (None if it is one): a dict of
    equally long lists of numbers (NaN allowed: a series may lack a value)."""
    if not isinstance(columns, dict) or not columns:
        return "is not a table of columns"
    lengths = set()
    for name, values in columns.items():
        if not isinstance(values, list):
            return f"column {name!r} is not a list"
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            return f"column {name!r} holds a value that is not a number"
        lengths.add(len(values))
    if len(lengths) > 1:
        return f"has columns of unequal lengths {sorted(lengths)}"
    return None
