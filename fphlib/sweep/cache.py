"""One file per run in a cache directory, written atomically, checked when read.

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
import os
import tempfile
import time
import warnings
from pathlib import Path

from .. import __version__
from .._cache import _ROOT, sources_digest

FORMAT = 1


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
        Created if missing.
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cache: cannot create directory {str(self.path)!r} "
                             f"({e.strerror})") from None
        if not self.path.is_dir():
            raise ValueError(f"cache: {str(self.path)!r} is not a directory")
        self._drop_stale_temps()

    def _drop_stale_temps(self, age_s=3600):
        """Remove temporary files a killed sweep left mid-write (an hour old: no writer
        holds one that long, so a concurrent sweep's files are safe)."""
        now = time.time()
        for f in self.path.glob(".*.tmp"):
            try:
                if now - f.stat().st_mtime > age_s:
                    f.unlink()
            except OSError:
                pass

    def file(self, key):
        return self.path / f"{key}.json"

    def get(self, key, config_json, series=None, points=None):
        """The stored payload, or None when absent, incomplete for ``series``, or corrupt.

        A corrupt file (not JSON, wrong fields, another run's content) is reported with a
        warning naming it and treated as missing, so it is recomputed and overwritten.
        """
        f = self.file(key)
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
        if series is not None:
            got = entry["series"].get(series)
            if not isinstance(got, dict) or got.get("points") != points:
                return None  # complete, but without the series asked for: recompute, overwrite
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
        # not *.json: a file torn by a kill mid-write is never taken for an entry
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}-", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())  # the rename must not land before the data
            os.replace(tmp, self.file(key))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
