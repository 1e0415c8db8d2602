"""Keep numba's on-disk caches in step with every source they compile in.

Numba keys a cached function on its own file only, but fphlib's kernels inline code from
other files: the engine loop from buddy, pcp, host, mechanisms and workloads; the buddy
kernels from the xbitmap; everything from ``_jit.borrowed``. After an edit to any of them a
kernel would load stale machine code. ``fphlib._jit`` calls :func:`refresh` at import: it
hashes every kernel source and, when the hash changed since the last run, deletes all of
fphlib's cache files so they are rebuilt (a minute or two of compiling, once per edit).
"""

import hashlib
from pathlib import Path

_ROOT = Path(__file__).resolve().parent  # the fphlib package
_KERNEL_DIRS = ("state", "guest", "engine", "host", "host/policy", "hinting", "workloads")
# modules of the bottom floor whose constants the kernels compile in
_SOURCES = ("_jit.py", "units.py", "bounds.py", "costs.py", *_KERNEL_DIRS)


def sources_digest():
    """SHA-1 of every source that fphlib's compiled code depends on."""
    h = hashlib.sha1()
    for entry in _SOURCES:
        path = _ROOT / entry
        files = [path] if path.is_file() else sorted(path.glob("*.py"))
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def refresh():
    """Drop stale cache files; return True if something was dropped."""
    try:
        stamp = _ROOT / "__pycache__" / "kernel_sources.sha1"
        digest = sources_digest()
        if stamp.exists() and stamp.read_text() == digest:
            return False
        dropped = False
        patterns = [f"{d}/__pycache__/*.nb[ic]" for d in _KERNEL_DIRS]
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
