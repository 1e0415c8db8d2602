"""The trace file format: round trips, every rejection, and the churn generator."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fphlib.workloads.trace_file import (
    KERNEL_ORDER_MIX,
    Trace,
    check_trace,
    generate_trace,
    load_trace,
    write_trace,
)


def naive_gen(n_ops, n_pages=1 << 20, occupancy=0.6, seed=1, p=KERNEL_ORDER_MIX):
    """shared/bench/gen_trace.py's loop, verbatim in spirit: lists and dicts."""
    rng = np.random.default_rng(seed)
    orders = np.arange(11)
    p = np.array(p) / np.sum(p)
    mean_pages = float((p * (1 << orders)).sum())
    target_live = int(occupancy * n_pages / mean_pages)
    n_slots = target_live * 2 + 16
    free_slots = list(range(n_slots - 1, -1, -1))
    live, live_order = [], {}
    draws = rng.choice(orders, size=n_ops, p=p)
    u = rng.random(n_ops)
    pick = rng.integers(0, 1 << 62, n_ops)
    kind, order, slot = [], [], []
    for i in range(n_ops):
        if len(live) < target_live * (0.5 + u[i]) or not live:
            s = free_slots.pop()
            kind.append(0), order.append(int(draws[i])), slot.append(s)
            live.append(s)
            live_order[s] = int(draws[i])
        else:
            j = int(pick[i]) % len(live)
            s = live[j]
            live[j] = live[-1]
            live.pop()
            kind.append(1), order.append(live_order.pop(s)), slot.append(s)
            free_slots.append(s)
    return kind, order, slot


def naive_check(kind, order, slot):
    """Return the index of the first op breaking the handle discipline, or None."""
    held = {}
    for i, (k, o, s) in enumerate(zip(kind, order, slot, strict=True)):
        if k == 0:
            if s in held:
                return i
            held[s] = o
        else:
            if held.get(s) != o:
                return i
            del held[s]
    return None


def arrays(t=(0, 1, 2, 3), kind=(0, 0, 1, 1), order=(0, 3, 0, 3), slot=(0, 1, 0, 1)):
    return dict(
        t_us=np.array(t, np.int64),
        kind=np.array(kind, np.int8),
        order=np.array(order, np.int8),
        slot=np.array(slot, np.int32),
    )


def save_raw(path, **arrs):
    with open(path, "wb") as f:
        np.savez(f, **arrs)
    return path


def test_round_trip(tmp_path):
    a = arrays()
    p = tmp_path / "t.npz"
    write_trace(p, n_pages=1024, **a)
    tr = load_trace(p)
    assert isinstance(tr, Trace)
    for name in ("t_us", "kind", "order", "slot"):
        np.testing.assert_array_equal(getattr(tr, name), a[name])
        assert getattr(tr, name).dtype == a[name].dtype
    with np.load(p) as npz:
        assert int(npz["n_pages"]) == 1024
    assert [f.name for f in tmp_path.iterdir()] == ["t.npz"]  # no temp file left behind


def test_write_accepts_a_trace_and_casts_fitting_ints(tmp_path):
    tr = Trace(np.array([5, 5]), np.array([0, 1]), np.array([2, 2]), np.array([7, 7]))
    write_trace(tmp_path / "x.npz", *tr)
    got = load_trace(tmp_path / "x.npz")
    assert got.kind.dtype == np.int8 and got.t_us.dtype == np.int64
    assert got.slot.tolist() == [7, 7]


def test_empty_trace_is_valid(tmp_path):
    write_trace(tmp_path / "e.npz", [], [], [], [])
    assert len(load_trace(tmp_path / "e.npz").kind) == 0


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(kind=(0, 0, 2, 1)), r"kind\[2\] = 2; allowed: 0 \(alloc\) or 1 \(free\)"),
        (dict(order=(0, 11, 0, 11)), r"order\[1\] = 11 is out of range 0..10"),
        (dict(order=(-1, 3, -1, 3)), r"order\[0\] = -1 is out of range"),
        (dict(slot=(0, -4, 0, -4)), r"slot\[1\] = -4 is negative"),
        (dict(t=(0, 5, 4, 6)), r"time goes backwards at op 2: t_us\[2\] = 4 < t_us\[1\] = 5"),
        (dict(t=(-1, 0, 1, 2)), r"t_us\[0\] = -1 is negative"),
        (dict(slot=(0, 1, 2, 1)), r"op 2 frees slot 2, which holds no allocated block"),
        (dict(order=(0, 3, 1, 3)), r"op 2 frees slot 0 with order 1, but it was allocated with "
                                   r"order 0 \(op 0\)"),
        (dict(kind=(0, 0, 0, 1), slot=(0, 1, 1, 1), order=(0, 3, 3, 3)),
         r"op 2 allocates into slot 1, which still holds a live block"),
        (dict(kind=(0, 1, 1, 0), slot=(0, 0, 0, 1), order=(0, 0, 0, 0)),
         r"op 2 frees slot 0, which holds no allocated block \(never allocated, or already"),
    ],
)
def test_rejects_bad_content(tmp_path, change, match):
    p = save_raw(tmp_path / "bad.npz", **arrays(**change))
    with pytest.raises(ValueError, match=match) as e:
        load_trace(p)
    assert str(e.value).startswith(str(p))
    # write_trace refuses the same content and leaves nothing behind
    with pytest.raises(ValueError, match=match):
        write_trace(tmp_path / "w.npz", **arrays(**change))
    assert not (tmp_path / "w.npz").exists()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["bad.npz"]


def test_reports_first_problem_in_time_order(tmp_path):
    # op 3 has a wrong-order free, op 1 a free of a never-allocated slot: op 1 is named
    a = arrays(kind=(0, 1, 0, 1), order=(2, 0, 0, 3), slot=(5, 6, 7, 5), t=(0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"op 1 frees slot 6"):
        check_trace(**a)


def test_rejects_missing_array(tmp_path):
    a = arrays()
    del a["t_us"]
    p = save_raw(tmp_path / "m.npz", **a)
    with pytest.raises(ValueError, match=r"missing array\(s\) t_us; .*found: kind, order, slot"):
        load_trace(p)


@pytest.mark.parametrize("name, dtype", [("kind", np.int64), ("order", np.uint8),
                                         ("slot", np.int64), ("t_us", np.float64)])
def test_rejects_wrong_dtype(tmp_path, name, dtype):
    a = arrays()
    a[name] = a[name].astype(dtype)
    p = save_raw(tmp_path / "d.npz", **a)
    with pytest.raises(ValueError, match=rf"array '{name}' has dtype {np.dtype(dtype).name}"):
        load_trace(p)


def test_rejects_wrong_shape_and_unequal_lengths(tmp_path):
    a = arrays()
    a["slot"] = a["slot"].reshape(2, 2)
    with pytest.raises(ValueError, match=r"array 'slot' has shape \(2, 2\); .*1-D"):
        load_trace(save_raw(tmp_path / "s.npz", **a))
    a = arrays()
    a["order"] = a["order"][:3]
    with pytest.raises(ValueError, match=r"unequal lengths .*'order': 3"):
        load_trace(save_raw(tmp_path / "l.npz", **a))


def test_rejects_object_arrays(tmp_path):
    a = arrays()
    a["kind"] = np.array([0, 0, 1, None], dtype=object)
    p = save_raw(tmp_path / "o.npz", **a)
    with pytest.raises(ValueError, match=r"array 'kind' has dtype object"):
        load_trace(p)


def test_rejects_non_zip_and_unreadable(tmp_path):
    p = tmp_path / "text.npz"
    p.write_text("kind,order,slot\n0,0,0\n")
    with pytest.raises(ValueError, match=r"not a trace file: expected an .npz \(zip\) archive"):
        load_trace(p)
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match=r"not a trace file"):
        load_trace(npy)
    with pytest.raises(ValueError, match=r"cannot read trace file"):
        load_trace(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match=r"is a directory, not a trace file"):
        load_trace(tmp_path)  # regression: was reported as "no such file"


def test_rejects_truncated_zip(tmp_path):
    good = tmp_path / "g.npz"
    write_trace(good, **arrays())
    data = good.read_bytes()
    bad = tmp_path / "trunc.npz"
    # keep the central directory (so it still looks like a zip) but damage a member's data
    with zipfile.ZipFile(good) as z:
        info = z.getinfo("kind.npy")
    cut = bytearray(data)
    start = info.header_offset + 30 + len(info.filename) + 10
    cut[start:start + 20] = b"\xff" * 20
    bad.write_bytes(bytes(cut))
    with pytest.raises(ValueError, match=str(bad)):
        load_trace(bad)


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "keep.npz"
    write_trace(p, **arrays())
    before = p.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        write_trace(p, **arrays(t=(0, 0, 0, 9)))
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["keep.npz"]


def test_write_rejects_values_that_do_not_fit(tmp_path):
    with pytest.raises(ValueError, match=r"kind: values do not fit in int8"):
        write_trace(tmp_path / "x.npz", [0], [300], [0], [0])
    with pytest.raises(ValueError, match=r"n_pages: 0 must be a positive int"):
        write_trace(tmp_path / "x.npz", **arrays(), n_pages=0)
    assert not (tmp_path / "x.npz").exists()


def test_generate_matches_bench_generator():
    for seed in (1, 7):
        tr = generate_trace(20_000, seed=seed)
        kind, order, slot = naive_gen(20_000, seed=seed)
        assert tr.kind.tolist() == kind
        assert tr.order.tolist() == order
        assert tr.slot.tolist() == slot


@given(
    n_ops=st.integers(1, 400),
    seed=st.integers(0, 2**32 - 1),
    occupancy=st.floats(0.05, 0.95),
    n_pages=st.sampled_from([1024, 4096, 1 << 16]),
)
def test_generate_is_valid_and_matches_naive(n_ops, seed, occupancy, n_pages):
    tr = generate_trace(n_ops, seed=seed, occupancy=occupancy, n_pages=n_pages)
    kind, order, slot = naive_gen(n_ops, n_pages=n_pages, occupancy=occupancy, seed=seed)
    assert tr.kind.tolist() == kind and tr.order.tolist() == order and tr.slot.tolist() == slot
    assert naive_check(kind, order, slot) is None
    check_trace(*tr)
    assert (np.diff(tr.t_us) >= 0).all() and tr.t_us[0] >= 0


@given(
    kind=st.lists(st.integers(0, 1), min_size=1, max_size=40),
    data=st.data(),
)
def test_slot_check_agrees_with_naive(kind, data):
    n = len(kind)
    order = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    slot = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    a = arrays(t=[0] * n, kind=kind, order=order, slot=slot)
    want = naive_check(kind, order, slot)
    if want is None:
        check_trace(**a)
    else:
        with pytest.raises(ValueError, match=rf"op {want} "):
            check_trace(**a)


def test_generate_rate_and_mix():
    tr = generate_trace(50_000, seed=3, ops_per_s=2000.0, n_pages=1 << 16)
    # 50k ops at 2000/s take ~25 s; the Poisson sum has sd ~ sqrt(50k)/2000 s ≈ 0.11 s
    assert abs(tr.t_us[-1] / 1e6 - 25.0) < 1.0
    allocs = tr.order[tr.kind == 0]
    share0 = float(np.mean(allocs == 0))
    assert abs(share0 - 0.62) < 0.02  # the kernel-like mix is mostly order 0
    # steady state: live pages hover around the occupancy target
    pages = np.where(tr.kind == 0, 1, -1) * (1 << tr.order.astype(np.int64))
    live = np.cumsum(pages)
    assert 0.3 * (1 << 16) < live[len(live) // 2:].mean() < 0.9 * (1 << 16)
    assert generate_trace(100, seed=3).slot.tolist() == generate_trace(100, seed=3).slot.tolist()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_ops=0), r"n_ops: 0 is not allowed"),
        (dict(n_ops=10, occupancy=1.2), r"occupancy: 1.2 must be a number in \(0, 1\)"),
        (dict(n_ops=10, ops_per_s=0), r"ops_per_s: 0 must be a positive number"),
        (dict(n_ops=10, n_pages=-5), r"n_pages: -5 is not allowed"),
        (dict(n_ops=10, order_mix=(1, 2)), r"order_mix: .* must be 11 non-negative weights"),
        (dict(n_ops=10, n_pages=2, occupancy=0.1), r"less than one block"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_trace(**kwargs)


def test_readme_documents_the_format():
    text = (Path(__file__).parent.parent / "data" / "README.md").read_text(encoding="utf-8")
    for word in ("t_us", "int64", "kind", "int8", "order", "slot", "int32", "load_trace",
                 "write_trace", "generate_trace"):
        assert word in text
