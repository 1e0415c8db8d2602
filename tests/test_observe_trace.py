"""fphlib.observe trace recording: the tracepoint text parser, the event → slot conversion
(against the naive twin), and real recordings on this kernel (root + tracefs; skipped with the
missing piece named otherwise)."""

import mmap
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fphlib._atomic import OWNER
from fphlib.observe import ObserveError, load_recording
from fphlib.observe import trace as trace_mod
from fphlib.observe.trace_convert import (
    EVENT_NAMES,
    STAT_NAMES,
    convert_events,
    convert_text,
    parse_events,
)
from fphlib.observe.tracefs import KMEM_EVENTS, Terminated, TracingSession, snapshot
from fphlib.workloads.trace_file import check_trace, load_trace

from naive import naive_convert_events, naive_parse_kmem_line

REAL = Path(__file__).parent / "data" / "real"
FIXTURES = sorted(REAL.glob("kmem_*.txt"))


# ------------------------------------------------------------------------- helpers


def naive_parse(text):
    events, lost = [], 0
    for line in text.splitlines():
        r = naive_parse_kmem_line(line)
        if r is None:
            continue
        if r[0] == "lost":
            lost += r[1]
        else:
            events.append(r)
    return events, lost


def as_tuples(ev):
    return list(zip(ev.ts_ns.tolist(), ev.kind.tolist(), ev.pfn.tolist(), ev.order.tolist(),
                    strict=True))


def ops_of(trace):
    return list(zip(trace.t_us.tolist(), trace.kind.tolist(), trace.order.tolist(),
                    trace.slot.tolist(), strict=True))


def check_against_naive(ts, kind, pfn, order):
    trace, stats = convert_events(np.array(ts, np.int64), np.array(kind, np.int8),
                                  np.array(pfn, np.int64), np.array(order, np.int64))
    ops, nstats = naive_convert_events(ts, kind, pfn, order)
    assert ops_of(trace) == ops
    for name in STAT_NAMES:
        assert stats[name] == nstats.get(name, 0), name
    return trace, stats


def check_invariants(trace, stats, kind, order):
    check_trace(*trace)  # the slot discipline
    k, o = np.asarray(kind), np.asarray(order)
    alloc_pages = int((1 << trace.order[trace.kind == 0].astype(np.int64)).sum())
    free_pages = int((1 << trace.order[trace.kind == 1].astype(np.int64)).sum())
    # pages conserved: allocated = freed + live at the end
    assert alloc_pages == stats["alloc_pages"]
    assert free_pages == stats["free_pages"]
    assert alloc_pages == free_pages + stats["live_pages_at_end"]
    # no invented pages: every emitted alloc is an input alloc of the same order
    in_orders = np.bincount(o[(k == 0)].astype(np.int64), minlength=64)
    out_orders = np.bincount(trace.order[trace.kind == 0].astype(np.int64), minlength=64)
    assert (out_orders <= in_orders).all()
    assert stats["allocs"] == int((trace.kind == 0).sum())
    assert stats["frees"] == int((trace.kind == 1).sum())
    # every emitted free matches the emitted alloc that filled its slot (order and time)
    last = {}
    for t, kd, od, s in ops_of(trace):
        if kd == 0:
            last[s] = (t, od)
        else:
            assert s in last and last.pop(s)[1] == od and t >= 0
    assert len(last) == stats["live_at_end"]
    assert int(trace.slot.max(initial=-1)) + 1 == stats["slots"]


# ------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_parse_real_text_matches_naive(path):
    text = path.read_text()
    ev, info = parse_events(path)
    want, lost = naive_parse(text)
    assert as_tuples(ev) == want
    assert info["lost_events"] == lost
    for i, name in enumerate(EVENT_NAMES):
        n_lines = sum(f": {name}: " in line for line in text.splitlines())
        assert info[f"events_{name}"] == n_lines == int((ev.kind == i).sum())
    assert info["malformed"] == 0
    assert info["lines"] == len([ln for ln in text.splitlines() if ln.strip()])


def test_fixtures_cover_every_event_and_lost_markers():
    counts = {name: 0 for name in EVENT_NAMES}
    lost = 0
    for path in FIXTURES:
        _, info = parse_events(path)
        for name in EVENT_NAMES:
            counts[name] += info[f"events_{name}"]
        lost += info["lost_lines"]
    assert all(v > 0 for v in counts.values()), counts
    assert lost > 0


def test_parse_inputs_agree():
    path = FIXTURES[0]
    text = path.read_text()
    ref, _ = parse_events(path)
    for data in (text, text.encode(), np.frombuffer(text.encode(), np.uint8)):
        ev, _ = parse_events(data)
        assert as_tuples(ev) == as_tuples(ref)


def test_parse_odd_lines():
    text = "\n".join([
        "# tracer: nop",
        "",
        # a task name with spaces, a colon and the marker itself
        "  a b: mm_page_x-12  [001] d..1.  10.000001: mm_page_alloc: page=0000000012345678 "
        "pfn=0xABCdef order=3 migratetype=1 gfp_flags=GFP_KERNEL",
        # nine decimals, CRLF
        "  t-1 [000] ..... 11.123456789: mm_page_free: page=00 pfn=0x10 order=0\r",
        # no decimals (a counter clock)
        "  t-1 [000] ..... 12345: mm_page_free_batched: page=00 pfn=0x11 order=0",
        "  t-1 [000] ..... 12.5: mm_page_pcpu_drain: page=00 pfn=0x12 order=2 migratetype=0",
        # other kmem events and a malformed line
        "  t-1 [000] ..... 13.000000: mm_page_alloc_zone_locked: page=00 pfn=0x13 order=0",
        "  t-1 [000] ..... 14.000000: mm_page_free: page=00 order=0",
        "CPU:1 [LOST 42 EVENTS]",
    ])
    ev, info = parse_events(text)
    assert as_tuples(ev) == [
        (10_000_001_000, 0, 0xABCDEF, 3),
        (11_123_456_789, 1, 0x10, 0),
        (12345 * 10**9, 2, 0x11, 0),
        (12_500_000_000, 3, 0x12, 2),
    ]
    assert info["lost_events"] == 42 and info["lost_lines"] == 1
    assert info["malformed"] == 1
    assert info["other_lines"] == 2  # the comment and the zone_locked event
    assert info["lines"] == 8
    assert as_tuples(ev) == naive_parse(text)[0]


_COMM = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="\n"),
                min_size=1, max_size=16)


@given(st.lists(st.tuples(_COMM, st.integers(0, 99999), st.integers(0, 999999),
                          st.integers(0, 3), st.integers(0, (1 << 40) - 1),
                          st.integers(0, 10)), max_size=30))
def test_parse_generated_lines(rows):
    lines = []
    for comm, sec, usec, kind, pfn, order in rows:
        tail = {0: f"order={order} migratetype=1 gfp_flags=GFP_KERNEL|__GFP_COMP",
                1: f"order={order}", 2: "order=0",
                3: f"order={order} migratetype=0"}[kind]
        lines.append(f"{comm:>16}-{len(comm):<7} [001] d..1. {sec:5d}.{usec:06d}: "
                     f"{EVENT_NAMES[kind]}: page=00000000deadbeef pfn=0x{pfn:x} {tail}")
    text = "\n".join(lines)
    ev, info = parse_events(text)
    want = [(sec * 10**9 + usec * 1000, kind, pfn, order if kind != 2 else 0)
            for _, sec, usec, kind, pfn, order in rows]
    assert as_tuples(ev) == want
    assert info["other_lines"] == info["malformed"] == 0


def test_parse_rejects_bad_input():
    with pytest.raises(ValueError, match="data"):
        parse_events(12)
    with pytest.raises(ValueError, match="uint8"):
        parse_events(np.zeros(3, np.int64))
    ev, info = parse_events("")
    assert len(ev.kind) == 0 and info["lines"] == 0


# ------------------------------------------------------------------------- conversion

_EVENTS = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from([0, 0, 0, 1, 1, 1, 2, 3]),
              st.integers(0, 40), st.sampled_from([0, 0, 1, 2, 3, 11])),
    max_size=80)


@given(_EVENTS, st.booleans())
def test_convert_matches_naive(rows, reverse_time):
    ts, t = [], 0
    for dt, *_ in rows:
        t += dt * 1000  # dt 0: ties, kept in input order by the stable sort
        ts.append(t)
    if reverse_time:  # out-of-order input is sorted first
        ts = ts[::-1]
    kind = [r[1] for r in rows]
    pfn = [r[2] for r in rows]
    order = [r[3] for r in rows]
    trace, stats = check_against_naive(ts, kind, pfn, order)
    check_invariants(trace, stats, kind, order)
    if reverse_time and len(set(ts)) > 1:
        assert stats["reordered_events"] > 0


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 30), st.integers(0, 3)),
                max_size=120))
def test_convert_invariants_on_alloc_free_streams(rows):
    # only allocs and frees on a small pfn range: many splits, overlaps and lost frees
    kind = [0 if a else 1 for a, _, _ in rows]
    pfn = [p for _, p, _ in rows]
    order = [o for _, _, o in rows]
    ts = list(range(0, 1000 * len(rows), 1000))
    trace, stats = check_against_naive(ts, kind, pfn, order)
    check_invariants(trace, stats, kind, order)


def conv(events):
    ts, kind, pfn, order = (list(x) for x in zip(*events, strict=True))
    return check_against_naive(ts, kind, pfn, order)


def test_rule_a_free_without_alloc_is_dropped():
    trace, stats = conv([(1000, 1, 100, 0), (2000, 0, 200, 1), (3000, 1, 200, 1)])
    assert ops_of(trace) == [(1, 0, 1, 0), (2, 1, 1, 0)]
    assert stats["free_unmatched"] == 1 and stats["free_unmatched_pages"] == 1


def test_rule_b_batched_duplicates_free_and_drain_is_ignored():
    trace, stats = conv([(0, 0, 100, 0), (1000, 1, 100, 0), (1500, 2, 100, 0),
                         (2000, 3, 100, 0), (3000, 0, 100, 2), (4000, 2, 100, 0)])
    # the batched event after mm_page_free is dropped; one on a live block frees it whole
    assert ops_of(trace) == [(0, 0, 0, 0), (1, 1, 0, 0), (3, 0, 2, 0), (4, 1, 2, 0)]
    assert stats["batched_duplicate"] == 1 and stats["batched_as_free"] == 1
    assert stats["events_pcpu_drain"] == 1


def test_rule_c_split_block_freed_when_last_page_goes():
    events = [(0, 0, 64, 2)] + [(1000 * (i + 1), 1, 64 + i, 0) for i in (3, 1, 0, 2)]
    trace, stats = conv(events)
    assert ops_of(trace) == [(0, 0, 2, 0), (4, 1, 2, 0)]
    assert stats["split_free_events"] == 4 and stats["blocks_freed_piecewise"] == 1
    # a free of a bigger order covering two live blocks frees both
    trace, stats = conv([(0, 0, 64, 0), (1000, 0, 65, 0), (2000, 1, 64, 1)])
    assert ops_of(trace) == [(0, 0, 0, 0), (1, 0, 0, 1), (2, 1, 0, 0), (2, 1, 0, 1)]
    assert stats["blocks_freed_piecewise"] == 2 and stats["split_free_events"] == 1


def test_rule_d_alloc_of_live_pfn_frees_it_first():
    trace, stats = conv([(0, 0, 64, 1), (5000, 0, 65, 0)])
    assert ops_of(trace) == [(0, 0, 1, 0), (5, 1, 1, 0), (5, 0, 0, 0)]
    assert stats["implicit_frees"] == 1 and stats["implicit_free_pages"] == 2


def test_failed_and_out_of_range_allocs_are_dropped():
    trace, stats = conv([(0, 0, 0, 0), (1000, 0, 64, 11), (2000, 1, 64, 11),
                         (3000, 0, 64, 0)])
    assert ops_of(trace) == [(3, 0, 0, 0)]
    assert stats["alloc_failed"] == 1 and stats["order_out_of_range"] == 2
    assert stats["live_at_end"] == 1


def test_slots_are_reused_last_freed_first():
    trace, stats = conv([(0, 0, 10, 0), (1, 0, 20, 0), (2, 0, 30, 0), (3, 1, 10, 0),
                         (4, 1, 30, 0), (5, 0, 40, 0), (6, 0, 50, 0)])
    assert trace.slot.tolist() == [0, 1, 2, 0, 2, 2, 0]
    assert stats["slots"] == 3


def test_convert_rejects_bad_events():
    with pytest.raises(ValueError, match=r"kind\[1\] = 4"):
        convert_events([0, 1], [0, 4], [1, 2], [0, 0])
    with pytest.raises(ValueError, match=r"pfn\[0\] = -1"):
        convert_events([0], [0], [-1], [0])
    with pytest.raises(ValueError, match="unequal lengths"):
        convert_events([0, 1], [0], [1], [0])
    with pytest.raises(ValueError, match="ts_ns must hold integers"):
        convert_events([0.5], [0], [1], [0])
    with pytest.raises(ValueError, match="spans"):
        convert_events([0, 1], [0, 0], [1, 1 << 40], [0, 0])
    trace, stats = convert_events([], [], [], [])
    assert len(trace.kind) == 0 and stats["events"] == 0


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_convert_real_text(path):
    ev, _ = parse_events(path)
    trace, stats = check_against_naive(*(a.tolist() for a in ev))
    check_invariants(trace, stats, ev.kind, ev.order)
    # Linux 6.x: mm_page_free_batched follows mm_page_free of the same pfn (free_unref_folios)
    last = {}
    for _, k, p, _ in as_tuples(ev):
        if k == 2 and p in last:
            assert last[p] == 1
        last[p] = k
    assert stats["batched_as_free"] == 0


def test_write_trace_compress(tmp_path):
    import zipfile

    from fphlib.workloads.trace_file import generate_trace, write_trace

    tr = generate_trace(5000, seed=3)
    write_trace(tmp_path / "plain.npz", *tr)
    write_trace(tmp_path / "packed.npz", *tr, compress=True)
    kinds = {}
    for name in ("plain", "packed"):
        with zipfile.ZipFile(tmp_path / f"{name}.npz") as z:
            kinds[name] = {i.compress_type for i in z.infolist()}
        assert ops_of(load_trace(tmp_path / f"{name}.npz")) == ops_of(tr)
    assert kinds == {"plain": {zipfile.ZIP_STORED}, "packed": {zipfile.ZIP_DEFLATED}}
    assert (tmp_path / "packed.npz").stat().st_size < (tmp_path / "plain.npz").stat().st_size
    with pytest.raises(ValueError, match="compress"):
        write_trace(tmp_path / "x.npz", *tr, compress="yes")


# ------------------------------------------------------------------------- live kernel


def _tracing_missing():
    """Why a recording cannot run here, or None."""
    if os.geteuid() != 0:
        return f"not root (euid {os.geteuid()}): tracefs recording needs root"
    if not os.path.isdir("/sys/kernel/tracing"):
        return "no tracefs: /sys/kernel/tracing does not exist (CONFIG_TRACING)"
    try:
        with TracingSession(KMEM_EVENTS, out=os.devnull, buffer_kb=64):
            pass
    except ObserveError as e:
        return f"tracefs unusable: {e}"
    return None


@pytest.fixture(scope="module")
def tracing():
    why = _tracing_missing()
    if why:
        pytest.skip(why)


@pytest.fixture(params=["as found", "premounted"])
def restored(request, tracing):
    """The tracing state before the test, checked to be identical after it.

    "as found": tracefs as the machine has it (unmounted here: the session mounts and
    unmounts it); "premounted": mounted by the test, so the snapshot holds every file a
    session may touch and the list of instances.
    """
    root = "/sys/kernel/tracing"
    mounted_here = False
    if request.param == "premounted" and not snapshot()["mounted"]:
        subprocess.run(["mount", "-t", "tracefs", "nodev", root], check=True)
        mounted_here = True
    try:
        before = snapshot()
        if request.param == "premounted":
            assert {"tracing_on", "set_event_pid", "instances"} <= set(before)
        yield before
        assert snapshot() == before
    finally:
        if mounted_here:
            subprocess.run(["umount", root], check=True)


PY_ALLOC = [sys.executable, "-c",
            "x = bytearray(32 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1\ndel x"]


def test_record_short_command(tmp_path, restored):
    out = tmp_path / "t.npz"
    rec = trace_mod.record_trace(PY_ALLOC, out, buddyinfo_interval_s=0.05)
    assert rec.returncode == 0 and rec.complete and rec.lost_events == 0
    # 32 MiB touched page by page: at least 8192 pages allocated and freed by the tree
    assert rec.events["mm_page_alloc"] >= 8192
    assert rec.conversion["alloc_pages"] >= 8192
    assert rec.conversion["free_pages"] >= 8192 - rec.conversion["implicit_free_pages"] - 64
    trace = load_trace(out)
    assert len(trace.kind) == rec.ops > 0 and rec.trace_file == "t.npz"
    assert (trace.t_us >= 0).all() and rec.t0_offset_s >= 0
    assert rec.t0_offset_s <= rec.duration_s
    assert int(trace.t_us[-1]) <= rec.duration_s * 1e6
    with np.load(out) as npz:  # compressed: deflate members
        assert int(npz["n_pages"]) == rec.n_pages
    import zipfile

    with zipfile.ZipFile(out) as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    b = rec.buddyinfo
    assert list(b.columns) == ["t_s", "node", "zone", "order", "nr_free"]
    assert b["t_s"].nunique() >= 2 and (b["order"].max() >= 10)
    assert rec.provenance["kernel"] == os.uname().release
    saved = rec.save(tmp_path / "rec")
    assert sorted(p.name for p in saved.iterdir()) == [
        OWNER, "buddyinfo.parquet", "recording.json", "trace.npz"]  # OWNER: fphlib made it
    back = trace_mod.TraceRecording.load(saved)
    assert back.ops == rec.ops and back.conversion == rec.conversion
    generic = load_recording(saved)  # the package's loader reads the trace as well
    assert isinstance(generic, trace_mod.TraceRecording) and generic.trace is not None
    assert ops_of(generic.trace) == ops_of(rec.trace)
    assert ops_of(back.trace) == ops_of(rec.trace)
    assert back.buddyinfo.equals(rec.buddyinfo)


def test_record_sees_a_tiny_command_from_its_start(tmp_path, restored):
    # /bin/true runs for a millisecond: only a held start records its exec
    for i in range(3):
        rec = trace_mod.record_trace(["true"], tmp_path / f"t{i}.npz")
        assert rec.returncode == 0
        assert rec.events["mm_page_alloc"] > 10


def test_tree_scope_excludes_other_processes(tmp_path, restored):
    # a process outside the tree mapping, touching and unmapping 8 MiB over and over
    hog = subprocess.Popen([sys.executable, "-c",
                            "import mmap, time\nt = time.time()\nwhile time.time() - t < 4:\n"
                            "    m = mmap.mmap(-1, 8 << 20)\n"
                            "    for i in range(0, 8 << 20, 4096): m[i] = 1\n"
                            "    m.close()"])
    try:
        time.sleep(0.3)
        tree = trace_mod.record_trace(["sleep", "0.5"], tmp_path / "tree.npz")
        system = trace_mod.record_trace(["sleep", "0.5"], tmp_path / "sys.npz",
                                        scope="system")
    finally:
        hog.kill()
        hog.wait()
    assert system.events["mm_page_alloc"] > 2000  # the hog's 2048 pages per round
    assert tree.events["mm_page_alloc"] < system.events["mm_page_alloc"] / 10
    assert tree.scope == "tree" and system.scope == "system"


def test_failing_command_restores_state(tmp_path, restored):
    rec = trace_mod.record_trace(["sh", "-c", "exit 3"], tmp_path / "t.npz")
    assert rec.returncode == 3
    assert load_trace(tmp_path / "t.npz") is not None


def test_unknown_command_is_refused(tmp_path, restored):
    with pytest.raises(ValueError, match="no-such-command-x"):
        trace_mod.record_trace(["no-such-command-x"], tmp_path / "t.npz")
    with pytest.raises(ValueError, match="argv"):
        trace_mod.record_trace("ls -l", tmp_path / "t.npz")
    with pytest.raises(ValueError, match="scope"):
        trace_mod.record_trace(["true"], tmp_path / "t.npz", scope="cpu")


def _fail_after_first(exc_factory, monkeypatch):
    real = trace_mod._buddyinfo_rows
    calls = []

    def rows(*args):
        calls.append(1)
        if len(calls) == 2:
            exc_factory()
        return real(*args)

    monkeypatch.setattr(trace_mod, "_buddyinfo_rows", rows)


def _pid_gone(pid_file):
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("how", ["exception", "keyboard", "sigterm"])
def test_interrupted_recording_restores_state(tmp_path, restored, monkeypatch, how):
    def boom():
        if how == "exception":
            raise RuntimeError("injected")
        if how == "keyboard":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)

    _fail_after_first(boom, monkeypatch)
    handler = signal.getsignal(signal.SIGTERM)
    pid_file = tmp_path / "pid"
    exc = {"exception": RuntimeError, "keyboard": KeyboardInterrupt, "sigterm": Terminated}
    with pytest.raises(exc[how]):
        trace_mod.record_trace(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"],
                               tmp_path / "t.npz", buddyinfo_interval_s=0.2)
    assert not (tmp_path / "t.npz").exists()
    assert _pid_gone(pid_file)  # the command was killed, not left running
    assert signal.getsignal(signal.SIGTERM) == handler


def test_lost_events_mark_the_recording_incomplete(tmp_path, restored):
    hog = [sys.executable, "-c", "x = [bytearray(1 << 16) for _ in range(2000)]"]
    with pytest.warns(trace_mod.IncompleteTraceWarning, match="lost"):
        rec = trace_mod.record_trace(hog, tmp_path / "t.npz", buffer_kb=4)
    assert rec.lost_events > 0 and not rec.complete
    load_trace(tmp_path / "t.npz")  # still a valid trace of what was seen
    with pytest.raises(ObserveError, match="lost"):
        trace_mod.record_trace(hog, tmp_path / "strict.npz", buffer_kb=4, strict=True)
    assert not (tmp_path / "strict.npz").exists()


def test_session_errors_name_the_missing_piece(tmp_path, restored, monkeypatch):
    with pytest.raises(ObserveError, match="kmem/no_such_event"):
        with TracingSession(["kmem/no_such_event"], out=tmp_path / "x"):
            pass
    with pytest.raises(ObserveError, match="/nonexistent/tracing"):
        with TracingSession(out=tmp_path / "x", root="/nonexistent/tracing"):
            pass
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ObserveError, match="needs root"):
        with TracingSession(out=tmp_path / "x"):
            pass


def test_global_session_restores_global_files(tmp_path, tracing):
    # without an instance the global files are written, then put back
    root = "/sys/kernel/tracing"
    mounted = snapshot()["mounted"]
    if not mounted:  # mounted here so that the snapshots see the global files
        subprocess.run(["mount", "-t", "tracefs", "nodev", root], check=True)
    try:
        _global_session(tmp_path, root)
    finally:
        if not mounted:
            subprocess.run(["umount", root], check=True)
    assert snapshot()["mounted"] == mounted


def _global_session(tmp_path, root):
    before = snapshot()
    assert before["mounted"] and "set_event_pid" in before
    with TracingSession(out=tmp_path / "x", pids=[os.getpid()], instance=False,
                        buffer_kb=256) as s:
        assert s.directory == root
        # this process, and by event-fork its reader thread
        assert str(os.getpid()) in Path(root, "set_event_pid").read_text().split()
        assert Path(root, "options/event-fork").read_text().strip() == "1"
        assert Path(root, "events/kmem/mm_page_free/enable").read_text().strip() == "1"
        # the kernel rounds to whole sub-buffers (4080 data bytes each)
        assert 256 <= int(Path(root, "buffer_size_kb").read_text()) <= 260
        _touch(8 << 20)
    after = snapshot()
    assert s.complete
    # a never-used buffer ("7 (expanded: 1408)") stays at its expanded size; sizes are
    # rounded to whole sub-buffers
    kb = before.pop("buffer_size_kb")
    want = int(kb.split("expanded: ")[1].rstrip(")\n") if "expanded" in kb else kb)
    assert 0 <= int(after.pop("buffer_size_kb")) - want <= 4
    assert after == before


def test_session_streams_text_and_counts(tmp_path, restored):
    out = tmp_path / "x.txt"
    with TracingSession(out=out, pids=[os.getpid()], buffer_kb=1024) as s:
        assert str(os.getpid()) in Path(s.directory, "set_event_pid").read_text().split()
        _touch(32 << 20)
    trace, stats = convert_text(out)
    # the ring buffer's own counts say whether events were written but not read
    assert s.bytes_read == out.stat().st_size > 0, s.stats
    assert stats["alloc_pages"] >= 8192 and s.complete


def _touch(n_bytes):
    """Fault in ``n_bytes`` of new anonymous memory in this process.

    A fresh mapping, not ``np.ones``: after earlier tests free large arrays glibc raises its
    mmap threshold and may serve the array from heap pages it already holds, so no page is
    allocated and the recording is empty.
    """
    m = mmap.mmap(-1, n_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        view = np.frombuffer(m, np.uint8)
        view[::4096] = 1  # one write per page
        del view
    finally:
        m.close()


def test_system_session_leaves_out_the_recorder(tmp_path, restored):
    # 256 MiB touched by this process: 65536 pages, in well under a second
    with TracingSession(out=tmp_path / "all.txt", buffer_kb=16384) as s:
        _touch(256 << 20)
    _, seen = convert_text(tmp_path / "all.txt")
    with TracingSession(out=tmp_path / "notrace.txt", buffer_kb=16384,
                        notrace_pids=[os.getpid()]) as s:
        listed = Path(s.directory, "set_event_notrace_pid").read_text().split()
        assert sorted(listed) == sorted([str(os.getpid()), str(s._reader_tid)])
        _touch(256 << 20)
    _, left_out = convert_text(tmp_path / "notrace.txt")
    assert seen["alloc_pages"] >= 65536
    assert left_out["alloc_pages"] < 65536 // 2


def test_stale_instances_of_dead_recorders_are_removed(tmp_path):
    """An instance left by a SIGKILLed recorder is removed at the next session's start; a
    running recorder's instance and everybody else's stay."""


    from fphlib.observe.tracefs import remove_stale_instances

    gone = subprocess.Popen(["true"])
    gone.wait()
    inst = tmp_path / "instances"
    names = [f"fphlib-{gone.pid}-0123abcd", f"fphlib-{os.getpid()}-89abcdef", "perf-42",
             "fphlib-notapid-1"]
    for n in names:
        (inst / n).mkdir(parents=True)
    assert remove_stale_instances(str(tmp_path)) == [names[0]]
    assert sorted(p.name for p in inst.iterdir()) == sorted(names[1:])
    assert remove_stale_instances(str(tmp_path / "missing")) == []
