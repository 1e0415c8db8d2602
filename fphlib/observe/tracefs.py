"""A tracing session on tracefs that leaves the machine's tracing state as it found it.

:class:`TracingSession` (a context manager) enables tracepoints in a private ftrace instance
(``/sys/kernel/tracing/instances/<unique name>``: ``mkdir`` creates a ring buffer and a copy
of the control files of its own, ``rmdir`` removes it; Documentation/trace/ftrace.rst,
"Instances"), optionally restricted to a set of pids and their descendants
(``set_event_pid`` with ``options/event-fork``; both are per instance), streams the
instance's ``trace_pipe`` into a file from a reader thread while it runs, so the ring buffer
never fills while the reader keeps up, and reads the per-CPU ``stats`` (``overrun``,
``commit overrun``, ``dropped events``) at the end: events the ring buffer lost make the
session ``complete = False``.

State handling:

- tracefs is mounted at ``/sys/kernel/tracing`` (``mount -t tracefs nodev ...``) when it is
  not, and unmounted on exit — only when this session mounted it;
- before touching anything the session records every file it may write (the global
  ``tracing_on``, ``set_event_pid``, ``set_event_notrace_pid``, ``options/event-fork``,
  ``buffer_size_kb``, ``trace_clock`` and the ``enable`` file of each event); with an
  instance none of those global files is written, and the instance is removed on exit;
  without instance support (``instance=False`` or no ``instances/`` directory) the global
  files are set and written back to the recorded values on exit;
- the one state a global session cannot restore exactly is a ring buffer never used since
  boot (``buffer_size_kb`` reads ``"7 (expanded: 1408)"``): enabling an event expands it, so
  it is left at the expanded size;
- restoration runs on normal exit, on any exception, on KeyboardInterrupt, and on SIGTERM
  (turned into a :class:`Terminated` exception while the session is open, from the main
  thread only).

Simplifications: the text ``trace_pipe`` is read (not the binary per-CPU buffers): the kernel
formats each event, which costs CPU time on a busy machine; a reader that falls behind loses
events, which the stats then report. ``trace_clock`` of the instance is ``mono``
(CLOCK_MONOTONIC, so the event times line up with :func:`time.monotonic_ns`).
"""

import errno
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

from ._common import TRACEFS, ObserveError, require_root

KMEM_EVENTS = ("kmem/mm_page_alloc", "kmem/mm_page_free", "kmem/mm_page_free_batched",
               "kmem/mm_page_pcpu_drain")

# global files a session may write (recorded before, restored after)
GLOBAL_FILES = ("tracing_on", "set_event_pid", "set_event_notrace_pid", "options/event-fork",
                "buffer_size_kb", "trace_clock")


class Terminated(BaseException):
    """SIGTERM arrived while a tracing session was open (raised to run the clean-up)."""


def _is_mounted(path):
    """True when ``path`` is a tracefs mount point (per /proc/self/mounts)."""
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "tracefs" and \
                        parts[1].replace("\\040", " ") == target:
                    return True
    except OSError:
        pass
    return False


def _read(path):
    return Path(path).read_text()


def _write(path, value):
    """Write ``value`` to a tracefs control file (one write, as ``echo`` does)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, value.encode() if isinstance(value, str) else value)
    finally:
        os.close(fd)


def _clock_value(text):
    """The selected clock of a ``trace_clock`` file (``"[local] global ..."`` -> local)."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.strip()


def _buffer_kb(text):
    """The size to write back to a global ``buffer_size_kb``.

    A ring buffer never used since boot reads ``"7 (expanded: 1408)"``: enabling any event
    expands it to the second number, and no write makes it unexpanded again; the expanded
    size is what the machine would have had after its next use of tracing.
    """
    words = text.replace("(", " ").replace(")", " ").split()
    if "expanded:" in words:
        return words[words.index("expanded:") + 1]
    return words[0]


def snapshot(root=TRACEFS, events=KMEM_EVENTS):
    """The tracing state a session may touch: ``{"mounted": bool, file: text}`` for
    :data:`GLOBAL_FILES`, the events' ``enable`` files and the list of instances.

    Files that do not exist are left out; nothing is mounted to read them. Compare a snapshot
    taken before a session with one taken after to check that it restored everything.
    """
    state = {"mounted": _is_mounted(root)}
    if not state["mounted"]:
        return state
    for name in GLOBAL_FILES + tuple(f"events/{e}/enable" for e in events):
        try:
            state[name] = _read(os.path.join(root, name))
        except OSError:
            continue
    try:
        state["instances"] = sorted(os.listdir(os.path.join(root, "instances")))
    except OSError:
        pass
    return state


def _stat_counts(text):
    """``per_cpu/cpuN/stats`` -> {name: int} for its integer lines."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        value = value.strip()
        if value.isdigit():
            out[name.strip()] = int(value)
    return out



def remove_stale_instances(root=TRACEFS):
    """Remove the ftrace instances ``fphlib-<pid>-<hex>`` of recorders that are gone (killed
    with SIGKILL, which no clean-up survives); returns their names. Instances of running
    processes and every other instance are left alone."""
    from .._atomic import pid_alive

    inst = os.path.join(root, "instances")
    removed = []
    try:
        names = os.listdir(inst)
    except OSError:
        return removed
    for name in names:
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != "fphlib" or not parts[1].isdigit():
            continue
        if pid_alive(int(parts[1])):
            continue
        try:
            os.rmdir(os.path.join(inst, name))
            removed.append(name)
        except OSError:
            pass
    return removed

class TracingSession:
    """Record tracepoints into a file while the ``with`` block runs.

    Parameters
    ----------
    events : sequence of str
        ``"system/event"`` names, e.g. ``"kmem/mm_page_alloc"``.
    out : str or os.PathLike
        File that receives the ``trace_pipe`` text (created or truncated).
    pids : sequence of int, optional
        Record only these pids and (``event_fork=True``) every task they fork afterwards;
        None records the whole system.
    notrace_pids : sequence of int, optional
        Never record these pids (``set_event_notrace_pid``); the session's reader thread is
        added to them, so that writing the text out does not trace itself. For system-wide
        recordings (give ``[os.getpid()]`` to leave out the recording process).
    buffer_kb : int
        Ring buffer size per CPU in KiB.
    instance : bool or None
        Use a private ftrace instance (None: when the kernel has ``instances/``).
    root : str
        Where tracefs is (or gets) mounted.

    Attributes (after the block)
    ----------------------------
    lost_events : int
        Events the ring buffer dropped or overwrote (per-CPU stats, and ``[LOST n EVENTS]``
        markers are counted by the parser), 0 for a complete recording.
    complete : bool
        ``lost_events == 0``.
    stats : dict
        ``{cpu: {stat name: int}}`` from ``per_cpu/cpuN/stats``.
    bytes_read : int
        Bytes of text written to ``out``.
    """

    def __init__(self, events=KMEM_EVENTS, out=None, pids=None, buffer_kb=65536,
                 instance=None, event_fork=True, root=TRACEFS, clock="mono",
                 notrace_pids=None):
        if out is None:
            raise ValueError("out: give the path of the file that receives the trace text")
        if isinstance(buffer_kb, bool) or not isinstance(buffer_kb, int) or buffer_kb <= 0:
            raise ValueError(f"buffer_kb: {buffer_kb!r} must be a positive int (KiB per CPU)")
        if pids is not None:
            pids = [int(p) for p in pids]
            if not pids or any(p <= 0 for p in pids):
                raise ValueError(f"pids: {pids!r} must be positive pids (or None: all)")
        if notrace_pids is not None:
            notrace_pids = [int(p) for p in notrace_pids]
            if any(p <= 0 for p in notrace_pids):
                raise ValueError(f"notrace_pids: {notrace_pids!r} must be positive pids")
        self.notrace_pids = notrace_pids
        self.events = tuple(events)
        for e in self.events:
            if e.count("/") != 1 or not all(e.split("/")):
                raise ValueError(f"events: {e!r} is not a 'system/event' name")
        self.out = os.fspath(out)
        self.pids = pids
        self.buffer_kb = buffer_kb
        self.instance = instance
        self.event_fork = event_fork
        self.root = root
        self.clock = clock
        self.lost_events = 0
        self.complete = None
        self.stats = {}
        self.bytes_read = 0
        self._mounted = False
        self._dir = None
        self._inst = None
        self._saved = {}
        self._thread = None
        self._stop = threading.Event()
        self._reader_tid = None
        self._started = threading.Event()
        self._error = None
        self._old_sigterm = None
        self._active = False
        self._pending_term = False

    # ---------------------------------------------------------------- set-up

    def _mount(self):
        if _is_mounted(self.root):
            return
        if not os.path.isdir(self.root):
            raise ObserveError(f"{self.root}: no such directory; the kernel has no tracefs "
                               "(CONFIG_TRACING)")
        r = subprocess.run(["mount", "-t", "tracefs", "nodev", self.root],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ObserveError(f"{self.root}: cannot mount tracefs (CONFIG_TRACING?): "
                               f"{r.stderr.strip() or 'mount exited ' + str(r.returncode)}")
        self._mounted = True

    def _check_events(self, base):
        for e in self.events:
            if not os.path.exists(os.path.join(base, "events", e, "enable")):
                raise ObserveError(f"tracepoint {e} is missing ({base}/events/{e}/enable "
                                   "does not exist): the kernel lacks this event")

    def _save(self, name):
        path = os.path.join(self.root, name)
        if name not in self._saved:
            self._saved[name] = _read(path)

    def _set(self, name, value):
        """Write a control file of the session's directory (instance or global)."""
        path = os.path.join(self._dir, name)
        if self._inst is None:
            self._save(name)
        try:
            _write(path, value)
        except OSError as e:
            raise ObserveError(f"{path}: cannot write {value.strip()!r}: "
                               f"{e.strerror or e}") from None

    def __enter__(self):
        require_root("tracing (tracefs)")
        self._active = True
        self._install_sigterm()
        try:
            self._setup()
        except BaseException:
            self._teardown()
            raise
        return self

    def _setup(self):
        self._mount()
        self._check_events(self.root)
        use_instance = self.instance
        if use_instance is None:
            use_instance = os.path.isdir(os.path.join(self.root, "instances"))
        if use_instance:
            remove_stale_instances(self.root)
            name = f"fphlib-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            path = os.path.join(self.root, "instances", name)
            try:
                os.mkdir(path)
            except OSError as e:
                raise ObserveError(f"{path}: cannot create an ftrace instance: "
                                   f"{e.strerror or e}") from None
            self._inst = path
            self._dir = path
        else:
            self._dir = self.root
            for name in GLOBAL_FILES:  # recorded before the first write
                if os.path.exists(os.path.join(self.root, name)):
                    self._save(name)
            for e in self.events:
                self._save(f"events/{e}/enable")
        self._set("tracing_on", "0\n")
        self._set("buffer_size_kb", f"{self.buffer_kb}\n")
        if self.clock and os.path.exists(os.path.join(self._dir, "trace_clock")):
            self._set("trace_clock", f"{self.clock}\n")
        if self.pids is not None:
            for name in ("set_event_pid", "options/event-fork"):
                if not os.path.exists(os.path.join(self._dir, name)):
                    raise ObserveError(f"{self._dir}/{name} is missing: this kernel cannot "
                                       "restrict events to a process tree (use "
                                       "scope='system')")
            self._set("options/event-fork", "1\n" if self.event_fork else "0\n")
            self._set("set_event_pid", " ".join(map(str, self.pids)) + "\n")
        for e in self.events:
            self._set(f"events/{e}/enable", "1\n")
        pipe = os.path.join(self._dir, "trace_pipe")
        try:
            self._fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            raise ObserveError(f"{pipe}: cannot open: {e.strerror or e}") from None
        self._outf = open(self.out, "wb")  # closed in _teardown
        self._thread = threading.Thread(target=self._reader, name="fphlib-trace-reader",
                                        daemon=True)
        self._thread.start()
        self._started.wait()
        if self.notrace_pids is not None:
            name = "set_event_notrace_pid"
            if not os.path.exists(os.path.join(self._dir, name)):
                raise ObserveError(f"{self._dir}/{name} is missing: this kernel cannot leave "
                                   "pids out of a recording")
            self._set(name, " ".join(map(str, self.notrace_pids + [self._reader_tid])) + "\n")
        self._set("tracing_on", "1\n")

    # ---------------------------------------------------------------- streaming

    def _reader(self):
        """Copy trace_pipe into the output file until stopped and drained."""
        self._reader_tid = threading.get_native_id()
        self._started.set()
        try:
            while True:
                try:
                    chunk = os.read(self._fd, 1 << 16)
                except BlockingIOError:
                    if self._stop.is_set():
                        return
                    time.sleep(0.01)
                    continue
                except InterruptedError:
                    continue
                if not chunk:
                    if self._stop.is_set():
                        return
                    time.sleep(0.01)
                    continue
                self._outf.write(chunk)
                self.bytes_read += len(chunk)
        except BaseException as e:  # reported by __exit__
            self._error = e

    @property
    def directory(self):
        """The tracefs directory the session uses (its instance, or the tracefs root)."""
        return self._dir

    # ---------------------------------------------------------------- tear-down

    def __exit__(self, exc_type, exc, tb):
        self._teardown()
        if self._error is not None and exc is None:
            raise ObserveError(f"reading {self._dir}/trace_pipe failed: {self._error}")
        return False

    def _teardown(self):
        self._active = False  # a SIGTERM now waits until everything is restored
        errors = []

        def attempt(what, fn, *args):
            try:
                fn(*args)
            except Exception as e:  # keep restoring the rest
                errors.append(f"{what}: {e}")

        try:
            if self._dir is not None and os.path.exists(os.path.join(self._dir, "tracing_on")):
                attempt("tracing_on", _write, os.path.join(self._dir, "tracing_on"), "0\n")
            if self._thread is not None:
                self._stop.set()
                self._thread.join()
                self._thread = None
            if getattr(self, "_outf", None) is not None:
                attempt("closing the output", self._outf.close)
                self._outf = None
            if self._dir is not None:
                self._read_stats()
            if getattr(self, "_fd", None) is not None:
                attempt("closing trace_pipe", os.close, self._fd)
                self._fd = None
            if self._inst is not None:
                for e in self.events:
                    p = os.path.join(self._inst, "events", e, "enable")
                    if os.path.exists(p):
                        attempt(f"disabling {e}", _write, p, "0\n")
                attempt(f"removing {self._inst}", self._rmdir, self._inst)
                self._inst = None
            # global files back to what they were (events first, tracing_on last)
            order = sorted(self._saved, key=lambda n: (n == "tracing_on", n))
            for name in order:
                attempt(f"restoring {name}", self._restore, name, self._saved[name])
            self._saved = {}
            if self._mounted:
                attempt(f"unmounting {self.root}", self._umount)
                self._mounted = False
            self._dir = None
        finally:
            self._restore_sigterm()
        if self._pending_term:
            self._pending_term = False
            raise Terminated("SIGTERM during a tracing session (state restored)")
        if errors:
            raise ObserveError("tracing state not fully restored: " + "; ".join(errors))

    def _restore(self, name, text):
        path = os.path.join(self.root, name)
        if name == "trace_clock":
            value = _clock_value(text)
        elif name in ("set_event_pid", "set_event_notrace_pid"):
            value = " ".join(text.split())
            if not value:  # O_TRUNC clears the list
                fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
                os.close(fd)
                return
        elif name == "buffer_size_kb":
            value = _buffer_kb(text)
        else:
            value = text.strip()
        _write(path, value + "\n")

    @staticmethod
    def _rmdir(path):
        for _ in range(50):
            try:
                os.rmdir(path)
                return
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.02)
        os.rmdir(path)

    def _umount(self):
        r = subprocess.run(["umount", self.root], capture_output=True, text=True)
        if r.returncode != 0:
            raise OSError(r.stderr.strip() or f"umount exited {r.returncode}")

    def _read_stats(self):
        lost = 0
        base = os.path.join(self._dir, "per_cpu")
        try:
            cpus = sorted(d for d in os.listdir(base) if d.startswith("cpu"))
        except OSError:
            cpus = []
        for d in cpus:
            try:
                counts = _stat_counts(_read(os.path.join(base, d, "stats")))
            except OSError:
                continue
            self.stats[int(d[3:])] = counts
            lost += sum(counts.get(k, 0) for k in ("overrun", "commit overrun",
                                                    "dropped events"))
        self.lost_events = lost
        self.complete = lost == 0

    # ---------------------------------------------------------------- SIGTERM

    def _install_sigterm(self):
        if threading.current_thread() is not threading.main_thread():
            return

        def on_term(signum, frame):
            if self._active:
                self._active = False
                raise Terminated("SIGTERM during a tracing session")
            self._pending_term = True  # during the clean-up: raised once it is done

        self._old_sigterm = signal.signal(signal.SIGTERM, on_term)

    def _restore_sigterm(self):
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
