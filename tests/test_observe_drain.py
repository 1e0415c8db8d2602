"""fphlib.observe.kpageflags / drain / first_touch: the kpageflags kernel against its naive
twin and against known buddy layouts, the parser on captured real bytes, recordings on the
live kernel (skipped, naming the missing piece, where the machine lacks one) and their files.
"""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fphlib.observe import _common
from fphlib.observe.drain import DrainRecording, buddyinfo_frame, record_drain
from fphlib.observe.kpageflags import (
    FREE,
    KPF_BUDDY,
    KPF_NOPAGE,
    KPF_UPTODATE,
    REPORTED,
    read_flags,
    scan,
    summarize,
)
from fphlib.observe.touch import FirstTouchRecording, first_touch

from naive import naive_kpageflags_summary

REAL = Path(__file__).parent / "data" / "real"
BUDDY = 1 << KPF_BUDDY
UPTODATE = 1 << KPF_UPTODATE


def _missing_live():
    from fphlib.observe.machine import probe

    return probe().missing(need=("root", "kpageflags", "balloon", "reporting", "zones"))


def _require_live():
    missing = _missing_live()
    if missing:
        pytest.skip("live kernel lacks " + "; ".join(missing))


def _children_left(pids_before):
    """Memory children (fphlib.observe.drain.CHILD) started since ``pids_before``."""
    from fphlib.observe.drain import CHILD

    left = []
    for p in set(os.listdir("/proc")) - pids_before:
        try:
            if p.isdigit() and CHILD.strip()[:40] in Path(f"/proc/{p}/cmdline").read_text():
                left.append(p)
        except OSError:
            pass
    return left


def _check_against_naive(flags, start, zones):
    s = summarize(np.array(flags, np.uint64), start, [(0, f"z{i}", lo, hi)
                                                       for i, (lo, hi) in enumerate(zones)])
    free, blocks, reported, stray = naive_kpageflags_summary(
        [int(x) for x in flags], start, zones)
    assert s.free_pages.tolist() == free
    assert s.nr_free.tolist() == blocks
    assert s.reported_blocks.tolist() == reported
    assert s.stray_reported_pages.tolist() == stray
    return s


# ------------------------------------------------------------------ kernel vs naive twin

_flag = st.sampled_from([0, BUDDY, BUDDY, BUDDY | UPTODATE, UPTODATE, 1 << 5, BUDDY | 1 << 12])


@given(flags=st.lists(_flag, min_size=0, max_size=3000), start=st.integers(0, 5000),
       cut=st.floats(0, 1))
def test_kernel_matches_naive_on_any_flags(flags, start, cut):
    n = len(flags)
    mid = start + int(cut * n)
    # two zones splitting the range, one reaching past it: blocks never cross a zone's bounds
    _check_against_naive(flags, start, [(start, mid), (mid, start + n + 100)])


def _layout(rng, n_top, max_order=10, p_split=0.6, p_free=0.5, p_reported=0.5):
    """A valid buddy layout of ``n_top`` order-max_order blocks: (flags, free blocks as
    {pfn: (order, reported)}). Every pair of free buddies is merged, as the kernel does."""
    blocks = {}

    def gen(pfn, order):
        if order > 0 and rng.random() < p_split:
            a = gen(pfn, order - 1)
            b = gen(pfn + (1 << (order - 1)), order - 1)
            if a and b:  # both halves wholly free: the kernel merges them
                blocks.pop(pfn)
                blocks.pop(pfn + (1 << (order - 1)))
                blocks[pfn] = (order, rng.random() < p_reported)
                return True
            return False
        if rng.random() < p_free:
            blocks[pfn] = (order, rng.random() < p_reported)
            return True
        return False

    for i in range(n_top):
        gen(i << max_order, max_order)
    flags = rng.integers(0, 1 << 20, n_top << max_order, dtype=np.uint64)
    flags &= ~np.uint64(BUDDY)  # allocated pages: any flags but KPF_BUDDY
    for pfn, (order, reported) in blocks.items():
        flags[pfn:pfn + (1 << order)] = BUDDY
        if reported:
            flags[pfn] |= np.uint64(UPTODATE)
    return flags, blocks


@given(seed=st.integers(0, 2**32 - 1), n_top=st.integers(1, 6),
       p_split=st.floats(0.3, 0.95), p_free=st.floats(0.1, 0.9))
def test_summarize_rebuilds_a_valid_buddy_layout(seed, n_top, p_split, p_free):
    rng = np.random.default_rng(seed)
    flags, blocks = _layout(rng, n_top, p_split=p_split, p_free=p_free)
    s = summarize(flags, 0)
    want = np.zeros(11, np.int64)
    want_rep = np.zeros(11, np.int64)
    for order, reported in blocks.values():
        want[order] += 1
        want_rep[order] += reported
    assert s.nr_free[0].tolist() == want.tolist()
    assert s.reported_blocks[0].tolist() == want_rep.tolist()
    assert s.free_pages[0] == sum(1 << o for o, _ in blocks.values())
    assert s.reported_pages == sum(1 << o for o, r in blocks.values() if r)
    assert s.stray_reported_pages.tolist() == [0]
    st_ = summarize(flags, 0, states=True).state
    want_state = np.zeros(flags.size, np.uint8)
    for pfn, (order, reported) in blocks.items():
        want_state[pfn:pfn + (1 << order)] = REPORTED if reported else FREE
    assert np.array_equal(st_, want_state)
    # the twin agrees on the same layout (a slice of it: the twin is slow)
    _check_against_naive(flags[:2048].tolist(), 0, [(0, 2048)])


def test_summarize_zone_bounds_stop_a_block():
    # 2048 free pages from pfn 0; a zone boundary at 1024 + 512 splits the second order-10
    flags = np.full(2048, BUDDY, np.uint64)
    flags[1024 + 512] |= np.uint64(UPTODATE)
    s = summarize(flags, 0, [(0, "A", 0, 1536), (0, "B", 1536, 2048)])
    assert s.nr_free[0].tolist() == [0] * 9 + [1, 1]
    assert s.nr_free[1].tolist() == [0] * 9 + [1, 0]
    assert s.reported_blocks[1].tolist() == [0] * 9 + [1, 0]
    assert s.reported_blocks[0].sum() == 0
    # without the boundary the marked page sits inside an order-10 block: a stray mark
    s = summarize(flags, 0)
    assert s.nr_free[0, 10] == 2 and s.reported_blocks.sum() == 0
    assert s.stray_reported_pages.tolist() == [1]


def test_summarize_rejects_bad_input():
    with pytest.raises(ValueError, match="flags must be a 1-D uint64"):
        summarize(np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="start_pfn"):
        summarize(np.zeros(4, np.uint64), -1)
    with pytest.raises(ValueError, match=r"zones\[0\]"):
        summarize(np.zeros(4, np.uint64), 0, [(0, "x", 5, 2)])
    with pytest.raises(ValueError, match=r"zones\[0\]"):
        summarize(np.zeros(4, np.uint64), 0, ["nonsense"])


# ------------------------------------------------------------------ reader and real bytes

def _real_files():
    meta = json.loads((REAL / "kpageflags.json").read_text())
    return [(REAL / name, info) for name, info in sorted(meta["files"].items())]


@pytest.mark.parametrize("path,info", _real_files(), ids=lambda v: getattr(v, "name", ""))
def test_reader_and_kernel_on_captured_kpageflags(path, info):
    raw = np.fromfile(path, dtype="<u8").astype(np.uint64)
    n = raw.size
    start = info["start_pfn"]
    # the captured file holds pfns start..start+n at offset 0: read it through the reader
    for chunk in (1, 1000, 4096, 1 << 16):
        got = read_flags(0, n, chunk_pfns=chunk, path=path)
        assert np.array_equal(got, raw)
    zones = [(lo, hi) for _, _, lo, hi in info["zones"]]
    s = _check_against_naive(raw.tolist(), start, zones)
    in_zones = np.zeros(n, bool)
    for lo, hi in zones:
        in_zones[max(lo - start, 0):max(hi - start, 0)] = True
    assert s.free_pages.sum() == int(((raw & np.uint64(BUDDY)) != 0)[in_zones].sum())
    # a real map is consistent: every KPF_UPTODATE free page heads a rebuilt block
    assert s.stray_reported_pages.sum() == 0
    # every KPF_BUDDY|KPF_UPTODATE page in the zones is counted as a reported head
    marked = (raw & np.uint64(BUDDY | UPTODATE)) == BUDDY | UPTODATE
    assert s.reported_blocks.sum() == int(marked[in_zones].sum())


def test_captured_windows_hold_what_their_names_say():
    by_name = {p.name: (np.fromfile(p, "<u8").astype(np.uint64), i) for p, i in _real_files()}
    for name, (raw, info) in by_name.items():
        s = summarize(raw, info["start_pfn"], [tuple(z) for z in info["zones"]])
        if "reported" in name or "mixed" in name:
            assert s.reported_pages > 0, name
        if "mixed" in name:
            unreported = s.nr_free - s.reported_blocks
            assert unreported[:, 9:].sum() > 0, name  # free >= order 9, not reported yet
            assert (raw & np.uint64(BUDDY) == 0).sum() > 0, name  # allocated pages


def test_read_flags_past_the_end_and_errors(tmp_path):
    p = tmp_path / "flags"
    np.arange(10, dtype="<u8").tofile(p)
    got = read_flags(8, 14, chunk_pfns=3, path=p)
    assert got.tolist() == [8, 9] + [1 << KPF_NOPAGE] * 4
    with pytest.raises(ValueError, match="stop_pfn"):
        read_flags(5, 4, path=p)
    with pytest.raises(ValueError, match="chunk_pfns"):
        read_flags(0, 4, chunk_pfns=0, path=p)
    with pytest.raises(_common.ObserveError, match="cannot open"):
        read_flags(0, 4, path=tmp_path / "absent")
    (tmp_path / "odd").write_bytes(b"\0" * 12)
    with pytest.raises(_common.ObserveError, match="short read"):
        read_flags(0, 2, path=tmp_path / "odd")


def test_live_scan_agrees_with_buddyinfo():
    _require_live()
    from fphlib.guest.fragmentation import parse_buddyinfo

    # the map races with the allocator: take the closest of three tries
    best = None
    for _ in range(3):
        before = parse_buddyinfo(Path(_common.BUDDYINFO).read_text())
        s, _ = scan()
        after = parse_buddyinfo(Path(_common.BUDDYINFO).read_text())
        for i, z in enumerate(s.zones):
            if z not in before:
                continue
            orders = np.int64(1) << np.arange(11)
            bi = (before[z] * orders).sum(), (after[z] * orders).sum()
            diff = abs(int(s.free_pages[i]) - (bi[0] + bi[1]) // 2)
            best = diff if best is None else min(best, diff)
            # the high orders, where reporting works, are nearly exact
            assert abs(int(s.nr_free[i, 10]) - int(before[z][10])) <= \
                max(8, abs(int(after[z][10]) - int(before[z][10])) + 4)
        tot = sum(int((before[z] * (np.int64(1) << np.arange(11))).sum()) for z in s.zones)
        if abs(int(s.free_pages.sum()) - tot) <= max(0.03 * tot, 4096):
            break
    else:
        pytest.fail(f"kpageflags free pages {s.free_pages.sum()} vs buddyinfo {tot}")


# ------------------------------------------------------------------ drain recordings

def _fake_drain(**kw):
    t = np.arange(0, 10.5, 0.5)
    rep = np.full(t.size, 100 << 20, np.int64)
    for at, add in ((2.0, 64 << 20), (4.0, 32 << 20), (4.5, 32 << 20), (8.0, 16 << 20)):
        rep[t >= at] += add
    frame = pd.DataFrame({"t_s": t, "reported_bytes": rep,
                          "free_bytes": np.full(t.size, 1 << 30, np.int64)})
    bi = buddyinfo_frame("Node 0, zone   Normal      1      2      3      4      5      6"
                         "      7      8      9     10     11\n")
    args = dict(free_bytes=256 << 20, filler_bytes=0, duration_s=10.0, interval_s=0.5,
                reported_before_bytes=100 << 20, free_before_bytes=900 << 20,
                reported_touched_bytes=90 << 20, free_touched_bytes=700 << 20,
                pcp_before_bytes=1 << 20, pcp_touched_bytes=2 << 20, touch_s=0.2,
                nohugepage=True, scan_s_mean=0.4, scan_s_max=0.45,
                provenance={"kernel": "x"}, notes="synthetic", frame=frame,
                buddyinfo=bi, buddyinfo_before=bi.copy(),
                pcp=pd.DataFrame({"t_s": t, "pcp_bytes": np.full(t.size, 3 << 20, np.int64)}))
    args.update(kw)
    return DrainRecording(**args)


def test_drain_passes_and_fractions():
    r = _fake_drain()
    p = r.passes()
    assert p["t_s"].tolist() == [2.0, 4.0, 8.0]  # 4.0 and 4.5 are one step
    assert p["added_bytes"].tolist() == [64 << 20, 64 << 20, 16 << 20]
    assert p["gap_s"].tolist()[1:] == [2.0, 4.0]
    assert r.reported_added[-1] == 144 << 20
    assert r.time_to_fraction(0.5) == 4.0  # 64 MiB < 72 MiB at 2 s; 96 MiB at 4 s
    assert r.time_to_fraction(0.9) == 8.0
    assert r.summary()["free_jump_bytes"] == (1 << 30) - (700 << 20)
    assert r.summary()["pcp_jump_bytes"] == 1 << 20
    flat = _fake_drain(frame=r.frame.assign(reported_bytes=np.int64(5)))
    assert np.isnan(flat.time_to_fraction(0.5)) and len(flat.passes()) == 0


def test_drain_recording_validates_fields():
    with pytest.raises(ValueError, match="free_bytes"):
        _fake_drain(free_bytes=-1)
    with pytest.raises(ValueError, match="interval_s"):
        _fake_drain(interval_s=0)
    with pytest.raises(ValueError, match="frame"):
        _fake_drain(frame=pd.DataFrame({"t": [0.0]}))
    f = _fake_drain().frame
    with pytest.raises(ValueError, match="t_s"):
        _fake_drain(frame=f.assign(t_s=f["t_s"].to_numpy()[::-1]))


def test_drain_save_load_round_trip(tmp_path):
    r = _fake_drain()
    r.save(tmp_path / "rec")
    back = DrainRecording.load(tmp_path / "rec")
    for name in DrainRecording.META:
        assert getattr(back, name) == getattr(r, name), name
    for name in DrainRecording.TABLES:
        pd.testing.assert_frame_equal(getattr(back, name), getattr(r, name))
    with pytest.raises(FileExistsError):
        r.save(tmp_path / "rec")
    r.save(tmp_path / "rec", overwrite=True)
    with pytest.raises(ValueError, match="is a 'drain' recording; expected 'first_touch'"):
        FirstTouchRecording.load(tmp_path / "rec")


def test_drain_load_rejects_corrupt_files(tmp_path):
    _fake_drain().save(tmp_path / "rec")
    (tmp_path / "rec" / "frame.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"frame\.parquet: not a readable parquet table"):
        DrainRecording.load(tmp_path / "rec")
    _fake_drain().save(tmp_path / "r2")
    meta = tmp_path / "r2" / "recording.json"
    doc = json.loads(meta.read_text())
    del doc["meta"]["touch_s"]
    meta.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"recording\.json: meta misses field\(s\) \['touch_s'\]"):
        DrainRecording.load(tmp_path / "r2")
    doc["meta"]["touch_s"] = -3
    meta.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"r2: invalid drain recording: touch_s"):
        DrainRecording.load(tmp_path / "r2")
    meta.write_text("{")
    with pytest.raises(ValueError, match=r"recording\.json: cannot read"):
        DrainRecording.load(tmp_path / "r2")
    with pytest.raises(ValueError, match="no such directory"):
        DrainRecording.load(tmp_path / "absent")


def test_record_drain_validates_arguments():
    with pytest.raises(ValueError, match="free"):
        record_drain(free="lots")
    with pytest.raises(ValueError, match="free"):
        record_drain(free=1 << 50)
    with pytest.raises(ValueError, match="duration_s"):
        record_drain(free="1MiB", duration_s=-1)
    with pytest.raises(ValueError, match="interval_s"):
        record_drain(free="1MiB", interval_s=float("nan"))
    with pytest.raises(ValueError, match="nohugepage"):
        record_drain(free="1MiB", nohugepage="yes")
    with pytest.raises(ValueError, match="steady_s"):
        record_drain(free="1MiB", steady_s=-1)


@pytest.mark.slow
def test_record_drain_live_short():
    _require_live()
    pids = set(os.listdir("/proc"))
    # more than a CPU's per-CPU list can hold back (high_max, ~700 MiB on a 24 GiB guest,
    # Linux 6.7+): the rest reaches the buddy allocator at once and is reported within 6 s
    r = record_drain(free="2GiB", duration_s=6, interval_s=0.5, steady_s=6, steady_max_s=30)
    f = r.frame
    assert f["t_s"].iloc[0] < 0.5 and f["t_s"].iloc[-1] <= 6 + r.scan_s_max + 0.6
    # due every 0.5 s from t_s = 0, never early; the first read starts after the buddyinfo
    # read, so it may be late and the gap after it short; a late read delays the next by
    # its overrun
    t_s = f["t_s"].to_numpy()
    assert (t_s >= np.arange(t_s.size) * 0.5 - 1e-3).all()
    gaps = np.diff(t_s)
    assert (gaps[1:] >= 0.45).all() and (gaps <= max(0.5, r.scan_s_max) + 0.1).all()
    # free memory (buddy + per-CPU lists) jumps at the exit by about what the child held
    # (other processes allocate and free meanwhile)
    jump = f["free_bytes"].iloc[0] + r.pcp["pcp_bytes"].iloc[0] \
        - r.free_touched_bytes - r.pcp_touched_bytes
    assert jump >= 0.6 * r.free_bytes
    assert len(r.pcp) == len(f) and (r.pcp["t_s"] == f["t_s"]).all()
    assert r.filler_bytes > 0 and r.provenance["child_cpu"] in os.sched_getaffinity(0)
    # the kernel reports (part of) the freed memory within the 6 s: the curve rises
    assert r.reported_added[f["t_s"] >= 1.5].max() > 0
    assert len(r.passes()) >= 1
    assert set(r.buddyinfo["zone"]) == set(r.buddyinfo_before["zone"])
    assert "loadavg_start" in r.provenance and r.provenance["page_reporting_order"] is not None
    # the child is gone
    assert not _children_left(pids)


def test_record_drain_skips_or_names_missing_piece(monkeypatch):
    """Without /proc/kpageflags the recording refuses, naming it."""
    monkeypatch.setattr(_common, "KPAGEFLAGS", "/nonexistent/kpageflags")
    with pytest.raises(_common.ObserveError, match="kpageflags"):
        record_drain(free="1MiB", duration_s=1)


# ------------------------------------------------------------------ first touch

def _fake_touches(**kw):
    rows = [("first", 0, 1 << 30, 3.0, 3.0, 1.0, np.nan, np.nan, 1e8),
            ("backed", 0, 1 << 30, 0.5, 0.5, np.nan, 1.0, np.nan, np.nan),
            ("discarded", 0, 1 << 30, 1.75, 1.75, 0.5, np.nan, 5e8, 2e8)]
    args = dict(size_bytes=1 << 30, repeats=1, wait_s=10.0, waited_s=[4.0], filler_bytes=0,
                nohugepage=True, provenance={}, notes="",
                touches=pd.DataFrame(rows, columns=list(FirstTouchRecording.TABLES["touches"])))
    args.update(kw)
    return FirstTouchRecording(**args)


def test_first_touch_recording_fit_and_validation(tmp_path):
    r = _fake_touches()
    fit = r.host_cost_fit()  # points (1, 3), (0, 0.5), (0.5, 1.75) lie on 0.5 + 2.5 x
    assert fit["backed_s_per_gib"] == pytest.approx(0.5)
    assert fit["extra_s_per_gib"] == pytest.approx(2.5)
    assert r.by_case().attrs["extra_s_per_gib"] == pytest.approx(1.25)
    r.save(tmp_path / "ft")
    pd.testing.assert_frame_equal(FirstTouchRecording.load(tmp_path / "ft").touches, r.touches)
    with pytest.raises(ValueError, match="waited_s"):
        _fake_touches(waited_s=[])
    with pytest.raises(ValueError, match="touches.case"):
        _fake_touches(touches=r.touches.assign(case="warm"))
    with pytest.raises(ValueError, match="reported_share"):
        _fake_touches(touches=r.touches.assign(reported_share=2.0))
    # differences of two readings may be negative (the reported memory shrank meanwhile) and
    # load; an infinite one is refused naming the file
    shrank = r.touches.copy()
    shrank.loc[2, "reported_grew_bytes"] = -2547712.0
    shrank.loc[0, "unreported_free_bytes"] = -4096.0
    _fake_touches(touches=shrank).save(tmp_path / "shrank")
    back = FirstTouchRecording.load(tmp_path / "shrank").touches
    assert back.loc[2, "reported_grew_bytes"] == -2547712.0
    bad = r.touches.copy()
    bad.loc[2, "reported_grew_bytes"] = -np.inf
    _fake_touches(touches=bad).save(tmp_path / "bad")
    with pytest.raises(ValueError, match=r"touches.parquet: column 'reported_grew_bytes' "
                                         r"holds -inf at row 2; expected a finite number$"):
        FirstTouchRecording.load(tmp_path / "bad")


def test_first_touch_validates_arguments():
    with pytest.raises(ValueError, match="size"):
        first_touch(size="huge")
    with pytest.raises(ValueError, match="size"):
        first_touch(size=1 << 50)
    with pytest.raises(ValueError, match="repeats"):
        first_touch(size="1MiB", repeats=0)
    with pytest.raises(ValueError, match="wait_s"):
        first_touch(size="1MiB", wait_s=-1)
    with pytest.raises(ValueError, match="steady_max_s"):
        first_touch(size="1MiB", steady_max_s=-1)


@pytest.mark.slow
def test_first_touch_live_small(tmp_path):
    _require_live()
    pids = set(os.listdir("/proc"))
    r = first_touch(size="256MiB", repeats=1, wait_s=15, steady_s=6, steady_max_s=60)
    assert not _children_left(pids)
    t = r.touches
    assert t["case"].tolist() == ["first", "backed", "discarded"]
    assert (t["bytes"] == 256 << 20).all()
    assert np.allclose(t["s_per_gib"], t["seconds"] / (256 / 1024))
    assert (t["seconds"] > 0).all() and (t["seconds"] < 60).all()
    assert len(r.waited_s) == 1 and 0 <= r.waited_s[0] <= 15 + 5
    assert t.loc[t["case"] == "discarded", "reported_grew_bytes"].notna().all()
    # the pfns read back from pagemap: backed reuses the pages just freed; with the filler
    # holding the unreported free memory, the first touch gets reported blocks
    why = f"{r.notes}\n{t.to_string()}"
    assert t.loc[t["case"] == "backed", "reused_share"].iloc[0] >= 0.5, why
    assert t.loc[t["case"] == "first", "reported_share"].iloc[0] >= 0.5, why
    assert r.filler_bytes > 0
    r.save(tmp_path / "ft")
    back = FirstTouchRecording.load(tmp_path / "ft")
    pd.testing.assert_frame_equal(back.touches, r.touches)
    assert back.waited_s == r.waited_s
    g = back.by_case()
    assert list(g.index) == ["first", "backed", "discarded"]
    assert "extra_s_per_gib" in g.attrs
