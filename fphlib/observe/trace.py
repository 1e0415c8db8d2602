"""Record a command's page allocations with the kmem tracepoints as an fphlib trace.

:func:`record_trace` runs a command with the tracepoints ``kmem:mm_page_alloc``,
``mm_page_free``, ``mm_page_free_batched`` and ``mm_page_pcpu_drain``
(``include/trace/events/kmem.h``) enabled in a private ftrace instance
(:class:`~fphlib.observe.tracefs.TracingSession`), samples ``/proc/buddyinfo`` while it runs,
converts the events into a trace file of the ``"trace"`` workload
(:mod:`fphlib.observe.trace_convert` lists the conversion rules) and returns a
:class:`TraceRecording`.

Scope:

- ``"tree"`` (default): only the command and every task it forks (``set_event_pid`` with
  ``options/event-fork``). The command starts under a tiny ``/bin/sh`` wrapper that waits on
  a pipe; the pid filter is set before the wrapper is released and ``exec``\\ s the command,
  so none of the command's events precede the filter. Pages the command's tasks free but
  others allocated (page cache, memory of the parent shell) and allocations made for it by
  kernel threads (kswapd, kworkers, softirqs in another task's context) are outside the tree:
  the conversion counts the first as unmatched frees and frees a page another task freed
  implicitly when the command allocates it again.
- ``"system"``: every CPU, every task, while the command runs — except this process and the
  thread that writes the text out (``set_event_notrace_pid``), whose page cache would
  otherwise feed back into the recording.

A recording whose ring buffer lost events (per-CPU ``stats`` of the instance, or
``[LOST n EVENTS]`` markers of ``trace_pipe``) is marked ``complete = False`` with
``lost_events > 0``; :func:`record_trace` then warns (:class:`IncompleteTraceWarning`), or
raises :class:`~fphlib.observe.ObserveError` with ``strict=True``.

Simplifications: the pid filter looks at the task on the CPU, so an event of an interrupt
(a network receive, a timer) that interrupts the command counts for the command; times come
from the instance's ``mono`` trace clock at the microsecond
resolution of the text output; the buddyinfo samples are taken by this process every
``buddyinfo_interval_s`` (``t_s`` from the command's release, the same origin as
``t0_offset_s``), not synchronised with the events.
"""

import dataclasses
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..guest.fragmentation import parse_buddyinfo
from ..units import PAGE_SIZE
from ..workloads.trace_file import Trace, load_trace, write_trace
from . import _common
from ._common import ObserveError, load_recording, provenance, recording_kind, save_recording
from .trace_convert import EVENT_NAMES, convert_text
from .tracefs import KMEM_EVENTS, TracingSession

TRACE_FILE = "trace.npz"
BUDDYINFO_COLUMNS = ("t_s", "node", "zone", "order", "nr_free")

# the held start: read one line from stdin (the parent's go), then exec the command with
# stdin from /dev/null
_WRAPPER = 'read -r _go || exit 125; exec "$@" </dev/null'


class IncompleteTraceWarning(UserWarning):
    """The ring buffer lost events during a recording: the trace misses some ops."""


@recording_kind
@dataclasses.dataclass(eq=False)
class TraceRecording:
    """A command run under the kmem tracepoints, and the trace made from it.

    Fields: the META names below (scalars stored in ``recording.json``), ``buddyinfo`` (a
    DataFrame with :data:`BUDDYINFO_COLUMNS`, one row per sample, node, zone and order) and
    ``trace`` (the :class:`~fphlib.workloads.trace_file.Trace`, saved as ``trace.npz``).
    """

    __repr__ = _common.recording_repr

    KIND = "trace"
    TABLES = {"buddyinfo": BUDDYINFO_COLUMNS}
    META = ("argv", "scope", "duration_s", "returncode", "events", "lost_events", "complete",
            "conversion", "ops", "n_pages", "trace_file", "t0_offset_s", "buffer_kb",
            "bytes_text", "provenance")

    argv: list
    scope: str
    duration_s: float
    returncode: int
    events: dict  # {tracepoint name: events seen}
    lost_events: int
    complete: bool
    conversion: dict  # parse counts and convert_events counters
    ops: int
    n_pages: int
    trace_file: str  # the name of the trace file record_trace wrote
    t0_offset_s: float  # trace time 0 (the first event) in seconds after the release
    buffer_kb: int
    bytes_text: int
    provenance: dict
    buddyinfo: pd.DataFrame
    trace: Trace | None = None

    def __post_init__(self):
        if self.scope not in ("tree", "system"):
            raise ValueError(f"scope: {self.scope!r} is not 'tree' or 'system'")
        if not isinstance(self.argv, list) or not self.argv:
            raise ValueError(f"argv: {self.argv!r} must be a non-empty list")
        for name in ("lost_events", "ops", "n_pages"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: {v!r} must be an int >= 0")
        if bool(self.complete) != (self.lost_events == 0):
            raise ValueError(f"complete: {self.complete!r} disagrees with lost_events "
                             f"{self.lost_events}")
        if not isinstance(self.buddyinfo, pd.DataFrame) or \
                list(self.buddyinfo.columns) != list(BUDDYINFO_COLUMNS):
            raise ValueError(f"buddyinfo: expected a DataFrame with columns "
                             f"{list(BUDDYINFO_COLUMNS)}")
        if self.trace is not None and len(self.trace.kind) != self.ops:
            raise ValueError(f"ops: {self.ops} but the trace holds {len(self.trace.kind)} ops")

    def write_extra_files(self, directory):
        """Called by ``save_recording``: the trace as ``trace.npz`` (compressed)."""
        if self.trace is None:
            raise ValueError("trace: this recording holds no trace to save")
        write_trace(Path(directory) / TRACE_FILE, *self.trace, n_pages=self.n_pages or None,
                    compress=True)

    def save(self, path, overwrite=False):
        """Write the recording directory (``recording.json``, ``buddyinfo.parquet``,
        ``trace.npz``) atomically; returns its path."""
        return save_recording(self, path, overwrite=overwrite)

    def read_extra_files(self, directory):
        """Called by ``load_recording``: read and check ``trace.npz``."""
        tpath = Path(directory) / TRACE_FILE
        if not tpath.is_file():
            raise ValueError(f"{directory}: is not a complete trace recording (missing "
                             f"{TRACE_FILE})")
        trace = load_trace(tpath)
        if len(trace.kind) != self.ops:
            raise ValueError(f"{tpath}: holds {len(trace.kind)} ops; recording.json says "
                             f"{self.ops}")
        self.trace = trace

    @classmethod
    def load(cls, path):
        """Read a recording saved by :meth:`save` (its trace checked by ``load_trace``)."""
        return load_recording(path, kind=cls.KIND)


def _buddyinfo_rows(t_s, text, rows):
    for (node, zone), counts in parse_buddyinfo(text).items():
        for order, nr in enumerate(counts):
            rows.append((t_s, node, zone, order, int(nr)))


def _kill_tree(proc):
    """SIGKILL the command's process group (it runs in a session of its own) and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def record_trace(argv, out, scope="tree", buffer_kb=65536, buddyinfo_interval_s=0.5,
                 strict=False, timeout_s=None, cwd=None, env=None, keep_text=None,
                 stdout=None, stderr=None):
    """Run ``argv`` under the kmem tracepoints; write its trace to ``out``.

    Parameters
    ----------
    argv : list of str
        The command (no shell: ``["sh", "-c", "..."]`` for one).
    out : str or os.PathLike
        The trace file to write (compressed ``.npz``, see data/README.md "Trace files").
    scope : {"tree", "system"}
        The command's process tree only (default), or every task of the machine.
    buffer_kb : int
        Ring buffer per CPU in KiB (the reader drains it while the command runs; a bigger
        buffer absorbs longer bursts).
    buddyinfo_interval_s : float
        Period of the ``/proc/buddyinfo`` samples (> 0).
    strict : bool
        Raise :class:`ObserveError` instead of warning when events were lost.
    timeout_s : float, optional
        Kill the command after this many seconds (the recording is kept; ``returncode`` is
        then -9).
    cwd, env, stdout, stderr :
        As for :class:`subprocess.Popen`.
    keep_text : str or os.PathLike, optional
        Also keep the raw ``trace_pipe`` text at this path.

    Returns
    -------
    TraceRecording

    Raises
    ------
    ObserveError
        Not root, no tracefs, a missing tracepoint, or (``strict``) lost events.
    ValueError
        For a bad argument (naming it), e.g. a command that is not found.
    """
    if isinstance(argv, str) or not isinstance(argv, list | tuple) or not argv or \
            not all(isinstance(a, str) for a in argv):
        raise ValueError(f"argv: {argv!r} must be a non-empty list of strings")
    argv = list(argv)
    if shutil.which(argv[0]) is None and not os.path.isfile(argv[0]):
        raise ValueError(f"argv[0]: command {argv[0]!r} not found")
    if scope not in ("tree", "system"):
        raise ValueError(f"scope: {scope!r} is not allowed; expected 'tree' or 'system'")
    if not isinstance(buddyinfo_interval_s, int | float) or isinstance(
            buddyinfo_interval_s, bool) or not buddyinfo_interval_s > 0:
        raise ValueError(f"buddyinfo_interval_s: {buddyinfo_interval_s!r} must be a number > 0")
    if timeout_s is not None and not (isinstance(timeout_s, int | float) and timeout_s > 0):
        raise ValueError(f"timeout_s: {timeout_s!r} must be a number > 0 (or None)")
    if not isinstance(out, str | os.PathLike) or not os.fspath(out):
        raise ValueError(f"out: {out!r} is not a file path")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"out: {out} is a directory; give the trace file's path (.npz)")
    if not out.parent.is_dir():
        raise ValueError(f"out: directory {out.parent} does not exist")
    _common.require_root("record_trace (tracefs)")
    if not os.path.exists("/bin/sh"):
        raise ObserveError("/bin/sh is missing (it holds the command until tracing is set up)")

    work = Path(tempfile.mkdtemp(prefix="fphlib-trace-"))
    text = work / "trace.txt"
    try:
        rows = []
        go_r, go_w = os.pipe()
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", _WRAPPER, "fphlib-trace", *argv],
                                    stdin=go_r, start_new_session=True, cwd=cwd, env=env,
                                    stdout=stdout, stderr=stderr)
        except BaseException:
            os.close(go_w)
            raise
        finally:
            os.close(go_r)
        returncode = None
        try:
            tree = scope == "tree"
            with TracingSession(KMEM_EVENTS, out=text, pids=[proc.pid] if tree else None,
                                notrace_pids=None if tree else [os.getpid()],
                                buffer_kb=buffer_kb) as sess:
                t_release = time.monotonic_ns()
                os.write(go_w, b"go\n")
                os.close(go_w)
                go_w = None
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                while True:
                    t = (time.monotonic_ns() - t_release) / 1e9
                    _buddyinfo_rows(t, _common.read_text(_common.BUDDYINFO), rows)
                    wait = buddyinfo_interval_s
                    if deadline is not None:
                        wait = min(wait, max(deadline - time.monotonic(), 0.0))
                    try:
                        returncode = proc.wait(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        if deadline is not None and time.monotonic() >= deadline:
                            _kill_tree(proc)
                            returncode = proc.returncode
                            break
                t_end = time.monotonic_ns()
                _buddyinfo_rows((t_end - t_release) / 1e9,
                                _common.read_text(_common.BUDDYINFO), rows)
        finally:
            if go_w is not None:
                os.close(go_w)  # the wrapper reads EOF and exits 125 without running argv
            _kill_tree(proc)
        trace, conv = convert_text(text, source=f"trace of {argv[0]}")
        if keep_text is not None:
            shutil.copyfile(text, keep_text)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lost = max(sess.lost_events, conv["lost_events"])
    events = {name: conv[f"events_{name}"] for name in EVENT_NAMES}
    if lost:
        msg = (f"the ring buffer lost {lost} events while recording {argv[0]!r}: the trace "
               f"misses ops (a bigger buffer_kb or a lighter load helps)")
        if strict:
            raise ObserveError(msg + "; nothing written (strict=True)")
        warnings.warn(msg, IncompleteTraceWarning, stacklevel=2)
    try:
        mem_pages = _common.meminfo()["MemTotal"] // PAGE_SIZE
    except (ObserveError, KeyError):
        mem_pages = 0
    n_pages = max(mem_pages, int(trace.slot.max()) + 1 if len(trace.slot) else 0)
    write_trace(out, *trace, n_pages=n_pages or None, compress=True)
    t0_offset = (conv["t0_ns"] - t_release) / 1e9 if conv["events"] else 0.0
    buddy = pd.DataFrame(rows, columns=list(BUDDYINFO_COLUMNS)).astype(
        {"t_s": np.float64, "node": np.int64, "zone": str, "order": np.int64,
         "nr_free": np.int64})
    rec = TraceRecording(
        argv=argv, scope=scope, duration_s=(t_end - t_release) / 1e9,
        returncode=int(returncode), events=events, lost_events=int(lost),
        complete=lost == 0, conversion=conv, ops=len(trace.kind), n_pages=int(n_pages),
        trace_file=out.name, t0_offset_s=t0_offset, buffer_kb=buffer_kb,
        bytes_text=sess.bytes_read, provenance=provenance(), buddyinfo=buddy, trace=trace)
    return rec


__all__ = ["BUDDYINFO_COLUMNS", "IncompleteTraceWarning", "TraceRecording", "record_trace"]
