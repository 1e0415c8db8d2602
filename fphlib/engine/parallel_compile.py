"""Compile the missing compile units of a run in helper processes, alongside this one.

A cold first ``simulate()`` (empty numba cache) compiles each unit of its run
(:mod:`fphlib.state.units`: the mechanism's hooks, the workload's step, the host's reclaim,
the guest's boot and allocator slow path, ...) and the loop that calls them, one after the
other: numba compiles on one thread, under a lock per process. The units are compile units
of their own (they call one another by native address and never link one another's code),
so other processes can compile some of them meanwhile. A helper compiles into numba's
on-disk cache, which numba writes through a temporary file and a rename (concurrent writers
are safe: numba's developer docs, "Caching"); this process then loads the helpers' units
from the cache, as a warm run does.

Work is shared by claiming: this process and each helper go through the items in the same
order and compile those they claim first (a claim is a file created with ``O_EXCL``), so
the load balances itself without knowing compile times in advance.

Helpers start only when two or more items are missing from the cache and
``FPHLIB_COMPILE_JOBS`` (processes compiling, this one included; default the CPUs this
process may run on and its container's quota allows, at most 4) is above 1;
``FPHLIB_COMPILE_JOBS=1`` compiles everything here. Nothing depends on a helper: whatever a
helper did not leave in the cache (it failed, was killed, or lost a cache index entry to
another writer) is compiled here, and functions a helper cannot import (a plug-in defined in
a notebook cell) are compiled here from the start.

A callee that units of two processes share (``alloc_pages`` inside several units) is
compiled by each process that needs it before the other has cached it; measured on the
default run on two CPUs, the CPU time in all stayed the same (48 s, against 52 s in one
process) and the wall time halved (25 s against 50 s: ``benchmarks/startup.py``).
"""

import os
import pickle
import shutil
import subprocess
import sys
import tempfile

from .._jit import native_address

__all__ = ["compile_jobs", "precompile"]

ENV_JOBS = "FPHLIB_COMPILE_JOBS"
MAX_DEFAULT_JOBS = 4

# A helper: the parent's sys.path first (the next pickle names fphlib's classes), then the work.
_HELPER = (
    "import pickle, sys\n"
    "sys.path[:] = pickle.load(sys.stdin.buffer)\n"
    "from fphlib.engine.parallel_compile import _helper\n"
    "_helper(pickle.load(sys.stdin.buffer))\n"
)


def compile_jobs():
    """Processes that compile a cold run's units, this one included (``FPHLIB_COMPILE_JOBS``)."""
    given = os.environ.get(ENV_JOBS, "").strip()
    if given:
        try:
            jobs = int(given)
        except ValueError:
            jobs = 0
        if jobs < 1:
            raise ValueError(f"{ENV_JOBS}: a whole number >= 1 (processes compiling, this one "
                             f"included), not {given!r}")
        return jobs
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _cgroup_cpus(), MAX_DEFAULT_JOBS))


def _cgroup_cpus(path="/sys/fs/cgroup/cpu.max"):
    """The CPUs a container's quota allows (cgroup v2 ``cpu.max``: "quota period", or "max"),
    rounded up; a large number when there is no quota. A Binder or CI container sees the
    host's CPUs in its affinity mask but may run on one."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
        return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):  # no cgroup v2 file, or "max": no quota
        return 1 << 16


def _dispatcher(function, python_facing):
    """The dispatcher whose compile the item is: a unit's wrapper-less twin (as
    :func:`fphlib._jit.native_address` compiles), or the function itself for a Python call."""
    return function if python_facing else (function.callee or function)


def _missing(function, sig, python_facing):
    """True if this process has not compiled the item and numba's cache does not hold it."""
    fn = _dispatcher(function, python_facing)
    try:
        args = sig if isinstance(sig, tuple) else tuple(sig.args)
        if args in fn.overloads:
            return False
        cache = fn._cache  # numba's FunctionCache: the index the dispatcher loads from
        return cache._index_key(sig, fn.targetctx.codegen()) not in cache._cache_file._load_index()
    except Exception:  # no cache, or numba's private API changed: compile here as numba would
        return False


def _compile(function, sig, python_facing):
    if python_facing:
        function.compile(sig)
    else:
        native_address(function, sig)


def _importable(function):
    """(module, qualified name) by which a helper finds ``function``, or None."""
    py_func = function.py_func
    module = sys.modules.get(py_func.__module__)
    if module is None or py_func.__module__ == "__main__" or not getattr(module, "__file__", None):
        return None
    if getattr(module, py_func.__name__, None) is not function:
        return None
    return py_func.__module__, py_func.__name__


def _work_through(items, claims, after=None):
    """Compile, in order, each item still missing that this process claims first; call
    ``after()`` after each compile."""
    for i, (function, sig, python_facing) in enumerate(items):
        if not _missing(function, sig, python_facing):
            continue
        try:
            os.close(os.open(os.path.join(claims, str(i)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        _compile(function, sig, python_facing)
        if after is not None:
            after()


def _helper(work):
    """A helper process: resolve the items by name, then claim and compile (`_HELPER`)."""
    import importlib

    items = []
    for (module, name), sig, python_facing in work["items"]:
        items.append((getattr(importlib.import_module(module), name), sig, python_facing))
    _work_through(items, work["claims"])


# seconds between two looks at the cache while this process waits for its helpers
POLL_S = 0.2


def precompile(items, jobs=None, progress=None):
    """Compile the ``items`` missing from numba's cache, in this process and helper processes.

    Parameters
    ----------
    items : list of (dispatcher, signature, bool)
        A unit function and its :func:`fphlib.state.units.signature` (False), or a function
        Python calls and its argument types as a tuple (True); heaviest first, ideally.
    jobs : int, optional
        Processes compiling, this one included (default :func:`compile_jobs`).
    progress : callable, optional
        Called as ``progress(done, total)`` when helpers start (``done == 0``) and each time
        more of the ``total`` items they share with this process are in the cache; never
        when no helper starts.

    Returns
    -------
    int
        The helper processes started (0: everything was cached, or one job).
    """
    jobs = compile_jobs() if jobs is None else jobs
    if jobs < 2:  # no helper to start: the caller compiles, no need to read the cache here
        return 0
    missing = [item for item in items if _missing(*item)]
    names = [_importable(item[0]) for item in missing]
    shared = [i for i, name in enumerate(names) if name is not None]
    n_helpers = min(jobs - 1, len(shared) - 1)
    if n_helpers < 1:
        return 0
    claims = tempfile.mkdtemp(prefix="fphlib-compile-")
    work = {"claims": claims,
            "items": [(names[i], missing[i][1], missing[i][2]) for i in shared]}
    try:
        path = pickle.dumps(list(sys.path))
        payload = pickle.dumps(work)
    except Exception:  # a signature that does not pickle (a plug-in's type): compile here
        shutil.rmtree(claims, ignore_errors=True)
        return 0
    helpers = []
    try:
        for _ in range(n_helpers):
            try:
                p = subprocess.Popen([sys.executable, "-c", _HELPER], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except OSError:  # no interpreter to start (an embedded Python): compile here
                break
            helpers.append(p)
            try:
                p.stdin.write(path + payload)
                p.stdin.close()
            except OSError:  # it died at once: what it leaves undone is compiled here
                pass
        # this process claims with the same numbering as the helpers (the shareable items,
        # in order); what no helper can import, the caller compiles afterwards (units.bind)
        pool = [missing[i] for i in shared]
        report = _Progress(pool, progress)
        _work_through(pool, claims, after=report)
        for p in helpers:
            while True:
                try:  # returns as soon as the helper exits
                    p.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    report()
        report()
    finally:
        for p in helpers:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(claims, ignore_errors=True)
    return len(helpers)


class _Progress:
    """Calls ``progress(done, total)`` when more of ``pool``'s items are compiled or cached."""

    def __init__(self, pool, progress):
        self.pool, self.progress, self.done = pool, progress, 0
        if progress is not None:
            progress(0, len(pool))

    def __call__(self):
        if self.progress is None:
            return
        done = sum(not _missing(*item) for item in self.pool)
        if done > self.done:
            self.done = done
            self.progress(done, len(self.pool))
