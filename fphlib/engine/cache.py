"""Keep numba's on-disk cache of the engine in step with every source it compiles in.

Numba keys a cached function on its own file only, but the engine's loop inlines kernels from
other files (buddy, pcp, host, mechanisms, workloads). After an edit to any of them the loop
would load stale machine code. At import this module hashes those sources and, when the hash
changed since the last run, deletes the engine-side cache files so they are rebuilt.
"""

import hashlib
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent  # the fphlib package
_SOURCES = ("_jit.py", "guest", "engine", "host", "hinting", "workloads")
_CACHED = ("engine", "host", "hinting", "workloads")  # whole folders of engine kernels
_CACHED_FILES = ("guest/__pycache__/pcp.*",)


def sources_digest():
    """SHA-1 of every source the engine's compiled code depends on."""
    h = hashlib.sha1()
    for entry in _SOURCES:
        path = _ROOT / entry
        files = [path] if path.is_file() else sorted(path.glob("*.py"))
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def refresh():
    """Drop stale engine cache files; return True if something was dropped."""
    try:
        stamp = _ROOT / "engine" / "__pycache__" / "engine_sources.sha1"
        digest = sources_digest()
        if stamp.exists() and stamp.read_text() == digest:
            return False
        dropped = False
        patterns = [f"{d}/__pycache__/*.nb[ic]" for d in _CACHED]
        patterns += [p + ".nb[ic]" if not p.endswith("*") else p for p in _CACHED_FILES]
        for pattern in patterns:
            for f in _ROOT.glob(pattern):
                if f.suffix in (".nbi", ".nbc"):
                    f.unlink(missing_ok=True)
                    dropped = True
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
        return dropped
    except OSError:  # read-only install: numba cannot write a cache there either
        return False
