"""fphlib.XBitmap against the v21 semantics, the naive twin and the kernel's memory rules."""

import numba
import numpy as np
import pytest

import fphlib
from fphlib.guest import xbitmap as xbm

from naive import NaiveXBitmap

TOP = 2**64 - 1
NODE, LEAF = 576, 128


def both_check(xb, twin):
    xb.check()
    assert xb.count() == twin.count()
    assert xb.empty() == twin.empty()
    assert xb.n_leaves == twin.n_leaves
    assert xb.n_nodes == twin.n_nodes
    assert xb.nbytes == twin.nbytes
    assert xb.height == twin.height


def test_public_name():
    assert fphlib.XBitmap is xbm.XBitmap


# ------------------------------------------------------------------ worked cases from v21 tests


@pytest.mark.parametrize(
    "bit", [0, 30, 31, 62, 63, 64, 700, 1023, 1024, 1025, (1 << 63) | (1 << 24),
            (1 << 63) | (1 << 24) | 70, TOP]
)
def test_check_bit(bit):
    """v21 xbitmap_check_bit: set, test, find, clear, empty again."""
    xb = fphlib.XBitmap()
    assert not xb.test_bit(bit)
    xb.set_bit(bit)
    assert xb.test_bit(bit)
    assert xb.find_set(0) == bit
    assert xb.find_set(bit) == bit
    assert xb.find_set(bit + 1) is None if bit < TOP else xb.find_set(bit) == TOP
    xb.clear_bit(bit)
    assert xb.empty()
    xb.clear_bit(bit)
    assert xb.empty()
    assert xb.find_set(0) is None
    assert xb.nbytes == 0


def test_bit_range_regular():
    """v21 xbitmap_check_bit_range, regular tests 1 and 2."""
    xb = fphlib.XBitmap()
    xb.set_bit(700)
    assert xb.find_set(0) == 700
    assert xb.find_set(701) is None
    xb.zero(0, 1023)
    assert xb.empty()
    for b in (2000, 2001, 2040):
        xb.set_bit(b)
    assert xb.find_set(0, 2048) == 2000
    assert xb.find_set(2000, 2002) == 2000
    assert xb.find_set(2002, 2040) == 2040
    assert xb.find_set(2002, 2039) is None
    assert xb.find_zero(2000, 2048) == 2002
    assert xb.find_zero(2048, 2060) == 2048
    xb.zero(0, 2048)
    assert xb.find_set(0, 2048) is None
    assert xb.empty()


def test_bit_range_overflow():
    """v21 overflow tests at the top of the unsigned long range."""
    xb = fphlib.XBitmap()
    xb.set_bit(1)
    xb.set_bit(TOP - 4)
    assert xb.find_set(0) == 1
    assert xb.find_set(1) == 1
    assert xb.find_set(2) == TOP - 4
    assert xb.find_set(TOP - 3, 2) is None  # start > max
    assert xb.find_zero(TOP - 4) == TOP - 3
    xb.zero(TOP - 4, TOP)
    assert xb.find_set(TOP - 10) is None
    assert xb.find_set(TOP - 1, 2) is None
    xb.zero(0, 1)
    assert xb.find_set(0, 2) is None
    assert xb.empty()


def test_zero_bits():
    """v21 xbitmap_check_zero_bits."""
    xb = fphlib.XBitmap()
    xb.zero(0, TOP)
    assert xb.empty()
    xb.set_bit(0)
    xb.zero(TOP - 10, TOP)
    assert xb.test_bit(0)
    xb.set_bit(TOP)
    xb.zero(0, TOP)
    assert xb.empty()
    assert xb.nbytes == 0


@pytest.mark.parametrize("base", [0, 1024, 1024 * 64])
def test_set_already_full(base):
    """v21 xbitmap_check_set: setting bits of full leaves again is fine; clearing empties."""
    xb = fphlib.XBitmap()
    n = 64 * 1024
    xb.fill(base, base + n - 1)
    assert xb.count() == n
    assert xb.find_zero(base) == base + n
    for i in range(0, n, 97):
        xb.set_bit(base + i)
    assert xb.count() == n
    xb.zero(base, base + n - 1)
    assert xb.empty()
    assert xb.nbytes == 0


def test_find_zero_unpopulated_and_full():
    xb = fphlib.XBitmap()
    assert xb.find_zero(12345) == 12345
    assert xb.find_zero(TOP) == TOP
    assert xb.find_zero(5, 4) is None
    assert xb.find_set(5, 4) is None
    xb.fill(0, 3 * 1024 - 1)  # three full leaves: find_zero skips them through the tags
    assert xb.find_zero(0) == 3 * 1024
    assert xb.find_zero(0, 3 * 1024 - 1) is None
    xb.clear_bit(2000)
    assert xb.find_zero(0) == 2000
    assert xb.find_zero(2001) == 3 * 1024


def test_find_zero_full_top_of_range():
    xb = fphlib.XBitmap()
    xb.fill(TOP - 2047, TOP)
    assert xb.find_zero(TOP - 5000) == TOP - 5000
    assert xb.find_zero(TOP - 2047) is None
    assert xb.find_zero(TOP - 2048) == TOP - 2048
    assert xb.find_set(0) == TOP - 2047
    assert xb.count() == 2048


@pytest.mark.parametrize("level", [1, 2, 3, 7])
def test_find_walks_to_the_next_sibling_subtree(level):
    """The subtree under slot 62 has nothing left: the walk must go on at slot 63."""
    span = 64**level  # leaves under one slot of a level-`level` node
    a = 62 * span * 1024 + 5  # first leaf under slot 62
    start = (62 * span + span - 1) * 1024  # last leaf under slot 62 (absent)
    b = 63 * span * 1024 + 9  # first leaf under slot 63
    xb = fphlib.XBitmap()
    xb.set_bit(a)
    xb.set_bit(b)
    assert xb.find_set(start) == b
    assert xb.find_set(a + 1) == b
    assert xb.find_set(a - 5) == a
    xb.clear_bit(b)
    xb.set_bit(b + 64 * span * 1024)  # first leaf of the next level-`level` node
    assert xb.find_set(start) == b + 64 * span * 1024


def test_find_zero_walks_past_full_subtrees():
    """Slot 62 and 63 subtrees full: find_zero climbs over both full siblings."""
    xb = fphlib.XBitmap()
    lo = 62 * 64 * 1024
    xb.fill(lo, lo + 2 * 64 * 1024 - 1)  # bottom nodes 62 and 63 full
    xb.set_bit(3)  # keep the tree taller than the filled part
    assert xb.find_zero(lo) == lo + 2 * 64 * 1024
    assert xb.find_zero(lo + 5000) == lo + 2 * 64 * 1024
    xb.set_bit(lo + 2 * 64 * 1024)
    assert xb.find_zero(lo) == lo + 2 * 64 * 1024 + 1
    xb.clear_bit(lo + 64 * 1024 + 77)
    assert xb.find_zero(lo) == lo + 64 * 1024 + 77


# ------------------------------------------------------------------------------ memory


@pytest.mark.parametrize(
    ("bit", "nodes"),
    [
        (0, 0),  # leaf 0 alone sits in the root: no node
        (1023, 0),
        (1024, 1),  # leaf 1: one level
        (64 * 1024 - 1, 1),  # leaf 63
        (64 * 1024, 2),  # leaf 64: two levels
        (2**40, 6),  # leaf 2**30 has 31 bits: ceil(31/6) = 6 levels
        (2**63, 9),  # leaf 2**53: 54 bits -> 9 levels (XB_MAX_PATH)
        (TOP, 9),
    ],
)
def test_one_bit_costs_its_path(bit, nodes):
    xb = fphlib.XBitmap()
    xb.set_bit(bit)
    assert xb.nbytes == nodes * NODE + LEAF
    assert xb.height == nodes
    xb.clear_bit(bit)
    assert xb.nbytes == 0
    assert xb.height == 0


def test_memory_worked_sequence():
    xb = fphlib.XBitmap()
    xb.set_bit(0)
    assert xb.nbytes == LEAF
    xb.set_bit(1024)  # extend: one node above leaf 0, leaf 1 beside it
    assert xb.nbytes == NODE + 2 * LEAF
    xb.clear_bit(1024)  # IDR trees never shrink entry 0 back into the root
    assert xb.nbytes == NODE + LEAF
    xb.set_bit(TOP)  # 8 new levels above the bottom node, 8 new nodes down to leaf 2**54-1
    assert xb.n_nodes == 1 + 8 + 8
    assert xb.nbytes == 17 * NODE + 2 * LEAF
    xb.clear_bit(TOP)  # shrinks back to the single bottom node
    assert xb.nbytes == NODE + LEAF
    xb.fill(0, 65535)  # leaves 0..63: one full bottom node
    assert xb.nbytes == NODE + 64 * LEAF
    xb.set_bit(65536)  # leaf 64: root + two bottom nodes
    assert xb.nbytes == 3 * NODE + 65 * LEAF
    xb.zero(0, TOP)
    assert xb.nbytes == 0
    xb.check()


def test_set_then_clear_everything_returns_to_zero():
    rng = np.random.default_rng(7)
    bits = {int(b) for b in rng.integers(0, 2**63, 300, dtype=np.uint64)} | {0, TOP, 1024}
    xb = fphlib.XBitmap()
    for b in bits:
        xb.set_bit(b)
    assert xb.count() == len(bits)
    assert xb.nbytes > 0
    for b in bits:
        xb.clear_bit(b)
    assert xb.nbytes == 0
    assert xb.empty()
    xb.check()


def test_capacity_exact_for_a_bounded_range():
    n_bits = 5 * 64 * 1024 + 77  # 321 leaves, two levels
    node_cap, leaf_cap = xbm.xb_capacity(n_bits)
    assert (node_cap, leaf_cap) == (1 + 6, 321 + 1)
    nodes, leaves, meta = xbm.xb_new(node_cap, leaf_cap, xbm.MODE_PRELOAD)
    assert xbm.xb_preload(nodes, leaves, meta) == 0
    for li in range(321):  # fill leaf by leaf, each new leaf from a fresh preload
        assert xbm.xb_fill(nodes, leaves, meta, li * 1024, min(n_bits, li * 1024 + 1024) - 1) == 0
        assert xbm.xb_preload(nodes, leaves, meta) == 0
    assert xbm.xb_count(nodes, leaves, meta) == n_bits
    assert meta[xbm.M_NODES_AVAIL] == 0 and meta[xbm.M_LEAF_FREE] == -1
    xbm.check_arrays(nodes, leaves, meta)


def test_pool_exhaustion_is_reported_and_harmless():
    nodes, leaves, meta = xbm.xb_new(0, 0)
    assert xbm.xb_set_bit(nodes, leaves, meta, 5) == xbm.NEED_LEAVES
    nodes, leaves = xbm.xb_grow(nodes, leaves, meta, 0, 1)
    assert xbm.xb_set_bit(nodes, leaves, meta, 5000) == xbm.NEED_NODES  # leaf 4 needs a node
    xbm.check_arrays(nodes, leaves, meta)
    assert xbm.xb_empty(meta)
    nodes, leaves = xbm.xb_grow(nodes, leaves, meta, 1, 1)
    assert xbm.xb_set_bit(nodes, leaves, meta, 5000) == 0
    xbm.check_arrays(nodes, leaves, meta)


# ------------------------------------------------------------------------------ preload


def test_preload_mode_requires_a_spare_per_new_leaf():
    xb = fphlib.XBitmap(require_preload=True)
    assert xb.require_preload
    with pytest.raises(MemoryError, match="preload"):
        xb.set_bit(5)
    assert xb.empty() and xb.stats["nomem"] == 1
    xb.preload()
    xb.set_bit(5)
    xb.set_bit(6)  # same leaf: no allocation needed
    with pytest.raises(MemoryError):
        xb.set_bit(5000)
    assert not xb.test_bit(5000)
    xb.preload()
    xb.preload()  # already has a spare: nothing allocated
    with pytest.raises(MemoryError):
        xb.fill(2000, 5000)  # leaves 1..4, three of them new, only one spare
    assert xb.count() == 2
    xb.fill(1024, 2047)
    assert xb.count() == 1026
    stats = xb.stats
    assert stats["preload_calls"] == 3
    assert stats["preload_allocs"] == 2
    assert stats["leaf_allocs"] == 2
    xb.check()


def test_grow_mode_counts_allocations():
    xb = fphlib.XBitmap()
    for b in (1, 2, 3000, 3001, 10**9):
        xb.set_bit(b)
    xb.clear_bit(3000)
    xb.clear_bit(3001)
    s = xb.stats
    assert s["set_bit"] == 5 and s["clear_bit"] == 2
    assert s["leaf_allocs"] == 3 and s["leaf_frees"] == 1
    assert s["node_allocs"] - s["node_frees"] == xb.n_nodes


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("bad", [-1, 2**64, 1.0, 3.5, True, "7", None, np.float64(2)])
def test_bad_index_rejected_unchanged(bad):
    xb = fphlib.XBitmap()
    xb.set_bit(42)
    before = (xb.count(), xb.nbytes, xb.stats)
    for call in (xb.set_bit, xb.clear_bit, xb.test_bit, xb.find_set, xb.find_zero):
        with pytest.raises(ValueError, match=r"2\*\*64"):
            call(bad)
    with pytest.raises(ValueError, match="max"):
        xb.find_set(0, bad)
    with pytest.raises(ValueError, match="hi"):
        xb.fill(0, bad)
    with pytest.raises(ValueError, match="lo"):
        xb.zero(bad, 5)
    assert (xb.count(), xb.nbytes, xb.stats) == before


def test_inverted_range_rejected():
    xb = fphlib.XBitmap()
    with pytest.raises(ValueError, match="lo must be <= hi"):
        xb.fill(10, 9)
    with pytest.raises(ValueError, match="lo must be <= hi"):
        xb.zero(10, 9)
    assert xb.empty()


def test_numpy_integers_accepted():
    xb = fphlib.XBitmap()
    xb.set_bit(np.uint64(TOP))
    xb.set_bit(np.int32(7))
    assert xb.find_set(np.int64(0)) == 7
    assert xb.find_set(8) == TOP


def test_huge_fill_raises_memory_error_unchanged():
    xb = fphlib.XBitmap(max_nbytes=1 << 20)
    xb.set_bit(3)
    with pytest.raises(MemoryError, match="max_nbytes"):
        xb.fill(0, TOP)
    with pytest.raises(MemoryError):
        xb.fill(0, 8192 * 1024)
    assert xb.count() == 1 and xb.nbytes == LEAF
    xb.fill(0, 4096 * 1024 - 1)  # 512 KiB of leaves fits
    assert xb.count() == 4096 * 1024


def test_zero_whole_range_visits_only_populated_leaves():
    xb = fphlib.XBitmap()
    xb.fill(0, 2**20)
    xb.set_bit(2**62)
    xb.set_bit(TOP)
    xb.zero(1, TOP)  # 2**54 leaf indices in range: must walk only the ~1000 that exist
    assert xb.count() == 1 and xb.test_bit(0)
    assert xb.stats["leaf_frees"] == 1026
    xb.zero(0, TOP)
    assert xb.empty()


# ------------------------------------------------------------------------------ vs naive

BOUNDARY = [0, 1, 62, 63, 64, 65, 1022, 1023, 1024, 1025, 2047, 2048, 65535, 65536, 65537,
            2**22 - 1, 2**22, 2**28, 2**40, 2**63 - 1, 2**63, TOP - 1024, TOP - 1023, TOP - 64,
            TOP - 1, TOP]
# first/last bits of leaves on either side of slot boundaries at the first three node levels
BOUNDARY += [(j * 64**k + d) * 1024 + e for k in (1, 2, 3) for j in (1, 62, 63, 64)
             for d in (-1, 0) for e in (0, 1023)]


def _random_bit(rng):
    kind = rng.integers(4)
    if kind == 0:
        return int(rng.integers(0, 6000))
    if kind == 1:
        b = BOUNDARY[rng.integers(len(BOUNDARY))] + int(rng.integers(-3, 4))
        return min(max(b, 0), TOP)
    if kind == 2:
        return int(rng.integers(0, 2**64, dtype=np.uint64))
    return TOP - int(rng.integers(0, 3000))


@pytest.mark.parametrize("seed", range(6))
def test_random_ops_match_naive(seed):
    rng = np.random.default_rng(seed)
    xb = fphlib.XBitmap()
    twin = NaiveXBitmap()
    for step in range(500):
        op = rng.integers(8)
        a = _random_bit(rng)
        b = _random_bit(rng) if rng.random() < 0.5 else min(TOP, a + int(rng.integers(0, 3000)))
        lo, hi = min(a, b), max(a, b)
        if op <= 2:
            xb.set_bit(a)
            twin.set_bit(a)
        elif op == 3:
            xb.clear_bit(a)
            twin.clear_bit(a)
        elif op == 4:
            assert xb.test_bit(a) == twin.test_bit(a)
            assert xb.find_set(a, b) == twin.find_set(a, b), (step, a, b)
        elif op == 5:
            assert xb.find_zero(a, b) == twin.find_zero(a, b), (step, a, b)
            assert xb.find_zero(lo, hi) == twin.find_zero(lo, hi), (step, lo, hi)
        elif op == 6:
            xb.zero(lo, hi)
            twin.zero(lo, hi)
        else:
            hi = min(hi, lo + 2500)
            xb.fill(lo, hi)
            twin.fill(lo, hi)
        if step % 25 == 0 or op in (3, 6):
            both_check(xb, twin)
    both_check(xb, twin)
    assert xb.stats["leaf_allocs"] == twin.leaf_allocs
    assert xb.stats["leaf_frees"] == twin.leaf_frees
    bits = sorted(twin.bits)
    found = []
    at = xb.find_set(0)
    while at is not None:
        found.append(at)
        at = xb.find_set(at + 1) if at < TOP else None
    assert found == bits


@pytest.mark.parametrize("seed", range(3))
def test_random_preload_mode_matches_naive(seed):
    rng = np.random.default_rng(100 + seed)
    xb = fphlib.XBitmap(require_preload=True)
    twin = NaiveXBitmap(require_preload=True)
    for _ in range(400):
        a = int(rng.integers(0, 40 * 1024))
        op = rng.integers(5)
        if op == 0:
            xb.preload()
            twin.preload()
        elif op <= 2:
            outcome = []
            for t in (xb, twin):
                try:
                    t.set_bit(a)
                    outcome.append(True)
                except MemoryError:
                    outcome.append(False)
            assert outcome[0] == outcome[1]
        elif op == 3:
            hi = a + int(rng.integers(0, 1500))
            outcome = []
            for t in (xb, twin):
                try:
                    t.fill(a, hi)
                    outcome.append(True)
                except MemoryError:
                    outcome.append(False)
            assert outcome[0] == outcome[1]
        else:
            hi = a + int(rng.integers(0, 5000))
            xb.zero(a, hi)
            twin.zero(a, hi)
        assert xb.count() == twin.count()
    both_check(xb, twin)
    assert xb.stats["leaf_allocs"] == twin.leaf_allocs


def test_count_and_find_on_dense_random_pattern():
    rng = np.random.default_rng(3)
    n = 200_000
    dense = rng.random(n) < 0.97
    xb = fphlib.XBitmap()
    xb.fill(0, n - 1)
    for i in np.flatnonzero(~dense):
        xb.clear_bit(int(i))
    assert xb.count() == int(dense.sum())
    zeros = np.flatnonzero(~dense)
    for start in rng.integers(0, n, 50):
        expect = zeros[zeros >= start]
        assert xb.find_zero(int(start), n - 1) == (int(expect[0]) if expect.size else None)
    got, beyond = xbm.xb_dense(xb._nodes, xb._leaves, xb._meta, n)
    assert not beyond
    np.testing.assert_array_equal(got, dense)


# ------------------------------------------------------------------ from another jitted loop


@numba.njit
def _engine_like_loop(nodes, leaves, meta, ops, bits):
    """What the engine does: call the entry points on caller-owned, pre-sized arrays."""
    bad = 0
    hits = 0
    for i in range(ops.shape[0]):
        if ops[i] == 0:
            xbm.xb_preload(nodes, leaves, meta)
            bad += xbm.xb_set_bit(nodes, leaves, meta, bits[i]) != 0
        elif ops[i] == 1:
            xbm.xb_clear_bit(nodes, leaves, meta, bits[i])
        elif ops[i] == 2:
            hits += xbm.xb_test_bit(nodes, leaves, meta, bits[i])
        else:
            found, at = xbm.xb_find_set(nodes, leaves, meta, bits[i], np.uint64(2**20))
            hits += found
    return bad, hits


def test_entry_points_callable_from_jitted_loop():
    n_bits = 2**20
    nodes, leaves, meta = xbm.xb_new(*xbm.xb_capacity(n_bits), xbm.MODE_PRELOAD)
    shapes = (nodes.shape, leaves.shape)
    rng = np.random.default_rng(11)
    ops = rng.integers(0, 4, 20_000)
    bits = rng.integers(0, n_bits, 20_000).astype(np.int64)
    bad, hits = _engine_like_loop(nodes, leaves, meta, ops, bits)
    assert bad == 0
    twin = set()
    expect_hits = 0
    for op, b in zip(ops.tolist(), bits.tolist(), strict=True):
        if op == 0:
            twin.add(b)
        elif op == 1:
            twin.discard(b)
        elif op == 2:
            expect_hits += b in twin
        else:
            expect_hits += any(b <= x for x in twin)
    assert hits == expect_hits
    assert xbm.xb_count(nodes, leaves, meta) == len(twin)
    assert (nodes.shape, leaves.shape) == shapes
    xbm.check_arrays(nodes, leaves, meta)


def test_xbitmap_reexports_its_kernel_modules_which_never_import_it():
    """The kernel modules sit below the front end (imports run one way); ``xbitmap`` still
    offers their names, the same objects, to callers that import them from it."""
    import ast
    import importlib
    from pathlib import Path

    below = {"xbitmap_arrays": set(), "xbitmap_tree": {"xbitmap_arrays"},
             "xbitmap_check": {"xbitmap_arrays"},
             "free_page_tracking": {"xbitmap_arrays", "xbitmap_tree", "xbitmap_check"}}
    for name, allowed in below.items():
        module = importlib.import_module(f"fphlib.guest.{name}")
        tree = ast.parse(Path(module.__file__).read_text())
        local = {n.module for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}
        assert local <= allowed, (name, local)
        for attr, value in vars(module).items():
            if attr in xbm.__all__:
                assert getattr(xbm, attr) is value, attr
    assert all(hasattr(xbm, name) for name in xbm.__all__)
