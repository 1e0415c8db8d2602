"""Free-page tracking: the buddy allocator keeps an xbitmap of free memory under zone->lock
(or, to compare with, a flat bitmap of free pages)."""

import numpy as np
import pytest

import fphlib
from fphlib.guest import xbitmap as xbm
from fphlib.guest.buddy import BuddyInvariantError

GRANULARITIES = ["page", "head"]  # in an xbitmap
TRACKS = [*GRANULARITIES, "bitmap"]
PLACEMENTS = ["kernel", "head"]


def bitmap_bits(b):
    """Set bits of the allocator's tracking bitmap, read with the xbitmap's own find_set (for
    the flat bitmap: every set bit of its rows, decoded by the naive twin's bit order)."""
    z = b._zone  # the kernels take the writable arrays (b.zone views are read-only)
    if b.track == "bitmap":
        return [
            li * xbm.LEAF_BITS + w * 64 + i
            for li, row in enumerate(z.xb_leaves)
            for w in range(xbm.LEAF_WORDS)
            for i in range(64)
            if int(row[w]) >> i & 1
        ]
    bits = []
    found, at = xbm.xb_find_set(z.xb_nodes, z.xb_leaves, z.xb_meta, 0, xbm.MAX_BIT)
    while found:
        bits.append(int(at))
        found, at = xbm.xb_find_set(z.xb_nodes, z.xb_leaves, z.xb_meta, at + 1, xbm.MAX_BIT)
    return bits


def expected_bits(b, granularity):
    """From the public free lists: every free page, or every free block head."""
    out = []
    for order in range(b.n_orders):
        for pfn in b.free_list(order):
            out.extend([pfn] if granularity == "head" else range(pfn, pfn + (1 << order)))
    return sorted(out)


def assert_tracked(b, granularity):
    assert bitmap_bits(b) == expected_bits(b, granularity)
    b.check()
    assert b.tracking_stats["failed"] == 0


def test_fresh_zone_worked_example():
    """4 top-order blocks free: leaves 0..3 under one radix node."""
    for granularity, n_bits in (("page", 4096), ("head", 4)):
        b = fphlib.BuddyAllocator(4096, track=granularity)
        assert b.track == granularity
        s = b.tracking_stats
        assert s["nbytes"] == 576 + 4 * 128
        assert len(bitmap_bits(b)) == n_bits
        assert s["leaf_allocs"] == 4 and s["preload_allocs"] == 4
    b = fphlib.BuddyAllocator(4096, track="bitmap")
    s = b.tracking_stats
    assert s["nbytes"] == 4 * 128 and s["fill"] == 4 and s["leaf_allocs"] == 0
    assert bitmap_bits(b) == list(range(4096))
    b = fphlib.BuddyAllocator(4096)
    assert b.track is None and b.tracking_stats == {}


def test_flat_bitmap_alloc_one_page_worked_example():
    """The same list operations as in the xbitmap case below, with no allocations at all."""
    b = fphlib.BuddyAllocator(2 * 4096, track="bitmap")
    assert b.alloc(0) == 0
    assert bitmap_bits(b) == list(range(1, 2 * 4096))
    s = b.tracking_stats
    assert (s["zero"], s["fill"]) == (1, 8 + 10)
    assert s["leaf_allocs"] == s["preload_allocs"] == 0 and s["nbytes"] == 8 * 128
    b.free(0, 0)
    assert bitmap_bits(b) == list(range(2 * 4096)) and b.tracking_stats["zero"] == 1 + 10
    b.check()


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_alloc_one_page_worked_example(granularity):
    """alloc(0) takes pfn 0 from the first order-10 block; expand() frees 512, 256, ..., 1."""
    b = fphlib.BuddyAllocator(4096, track=granularity)
    assert b.alloc(0) == 0
    if granularity == "head":
        assert bitmap_bits(b) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3072]
    else:
        assert bitmap_bits(b) == list(range(1, 4096))
    s = b.tracking_stats
    # one block left a list (leaf 0 emptied and freed), ten upper halves entered (new leaf 0)
    ops = ("clear_bit", "set_bit") if granularity == "head" else ("zero", "fill")
    assert (s[ops[0]], s[ops[1]]) == (1, 4 + 10)
    assert (s["leaf_allocs"], s["leaf_frees"]) == (5, 1)
    b.free(0, 0)  # merges all the way back up: ten buddies leave, one block enters
    assert bitmap_bits(b) == expected_bits(b, granularity)
    assert b.tracking_stats[ops[0]] == 1 + 10
    b.check()


@pytest.mark.parametrize("granularity", TRACKS)
@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("seed", range(3))
def test_random_ops_keep_bitmap_equal_to_free_lists(granularity, placement, seed):
    rng = np.random.default_rng(seed)
    b = fphlib.BuddyAllocator(8 * 1024, placement=placement, track=granularity)
    held, isolated = [], []
    for step in range(1500):
        r = rng.random()
        if r < 0.45:
            order = int(rng.choice([0, 0, 0, 1, 2, 3, 5, 9, 10]))
            pfn = b.alloc(order)
            if pfn >= 0:
                held.append((pfn, order))
        elif r < 0.85 and held:
            pfn, order = held.pop(int(rng.integers(len(held))))
            b.free(pfn, order)
        elif r < 0.92:
            order = int(rng.integers(b.n_orders))
            free = b.free_list(order)
            if free:
                pfn = free[int(rng.integers(len(free)))]
                if rng.random() < 0.5:
                    b.isolate_free_page(pfn, order)
                    isolated.append((pfn, order))
                else:
                    b.list_rotate_to_front(pfn, order)
        elif isolated:
            pfn, order = isolated.pop(int(rng.integers(len(isolated))))
            b.putback_isolated_page(pfn, order)
        if step % 150 == 0:
            assert_tracked(b, granularity)
    assert_tracked(b, granularity)
    for pfn, order in held:
        b.free(pfn, order)
    for pfn, order in isolated:
        b.putback_isolated_page(pfn, order)
    assert_tracked(b, granularity)
    # everything free again: the bitmap is back to one full leaf (or one bit) per 4 MiB; the
    # flat bitmap's size never changes
    n_leaves = 8
    tree = 0 if granularity == "bitmap" else 576
    assert b.tracking_stats["nbytes"] == tree + n_leaves * 128


def _trace(n_ops, n_pages, seed):
    """A small alloc/free trace in the ../bench format (kind, order, slot)."""
    rng = np.random.default_rng(seed)
    kind, order, slot = [], [], []
    live, free_slots, next_slot = {}, [], 0
    for _ in range(n_ops):
        if live and (rng.random() < 0.45 or sum(1 << o for o in live.values()) > n_pages // 2):
            s = list(live)[int(rng.integers(len(live)))]
            kind.append(1)
            order.append(live.pop(s))
            slot.append(s)
            free_slots.append(s)
        else:
            s = free_slots.pop() if free_slots else next_slot
            next_slot += s == next_slot
            o = int(rng.choice([0, 0, 0, 0, 1, 2, 3, 4, 9, 10]))
            kind.append(0)
            order.append(o)
            slot.append(s)
            live[s] = o
    return np.array(kind, np.int8), np.array(order, np.int8), np.array(slot, np.int32)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_replay_with_tracking_matches_plain_replay(placement):
    n_pages = 16 * 1024
    trace = _trace(20_000, n_pages, seed=5)
    plain = fphlib.BuddyAllocator(n_pages, placement=placement)
    failed = plain.replay(*trace)
    for granularity in TRACKS:
        b = fphlib.BuddyAllocator(n_pages, placement=placement, track=granularity)
        shapes = (b.zone.xb_nodes.shape, b.zone.xb_leaves.shape)
        assert b.replay(*trace) == failed
        assert b.last_checksum == plain.last_checksum
        np.testing.assert_array_equal(b.nr_free, plain.nr_free)
        assert_tracked(b, granularity)
        assert (b.zone.xb_nodes.shape, b.zone.xb_leaves.shape) == shapes  # no growth
        s = b.tracking_stats
        assert s["ops"] == s["set_bit"] + s["clear_bit"] + s["fill"] + s["zero"]
        assert s["ops"] > len(trace[0])  # at least one list operation per op
        # each new leaf came from a preload; one preloaded spare may be waiting
        spare = int(b.zone.xb_meta[xbm.M_SPARE] >= 0)
        assert s["preload_allocs"] == s["leaf_allocs"] + spare
        assert (s["leaf_allocs"] > 0) == (granularity != "bitmap")


@pytest.mark.parametrize("granularity", TRACKS)
def test_failed_replay_restores_the_bitmap(granularity):
    b = fphlib.BuddyAllocator(4096, track=granularity)
    pfn = b.alloc(3)
    kind = np.array([0, 0, 1, 1], np.int8)
    order = np.array([0, 2, 0, 0], np.int8)
    slot = np.array([0, 1, 0, 0], np.int32)  # the second free of slot 0 is bad
    with pytest.raises(ValueError, match="trace op 3"):
        b.replay(kind, order, slot)
    assert_tracked(b, granularity)
    assert b.zone.state[pfn] == 16 + 3  # still allocated
    fresh = fphlib.BuddyAllocator(4096, track=granularity)
    with pytest.raises(ValueError):
        fresh.replay(kind, order, slot)
    assert_tracked(fresh, granularity)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_check_catches_a_wrong_bit(granularity):
    b = fphlib.BuddyAllocator(4096, track=granularity)
    pfn = b.alloc(2)
    z = b._zone  # writable: b.zone is read-only
    xbm.xb_preload(z.xb_nodes, z.xb_leaves, z.xb_meta)
    xbm.xb_set_bit(z.xb_nodes, z.xb_leaves, z.xb_meta, pfn)  # an allocated page marked free
    with pytest.raises(BuddyInvariantError, match=f"pfn {pfn}"):
        b.check()
    xbm.xb_clear_bit(z.xb_nodes, z.xb_leaves, z.xb_meta, pfn)
    b.check()
    free_pfn = b.free_list(10)[0]
    xbm.xb_clear_bit(z.xb_nodes, z.xb_leaves, z.xb_meta, free_pfn)  # a free head unmarked
    with pytest.raises(BuddyInvariantError, match=f"pfn {free_pfn}"):
        b.check()


def test_check_catches_a_wrong_bit_in_the_flat_bitmap():
    b = fphlib.BuddyAllocator(4096, track="bitmap")
    pfn = b.alloc(2)
    rows = b._zone.xb_leaves  # writable: b.zone is read-only
    rows[0, 0] |= np.uint64(1 << pfn)  # an allocated page marked free, count not updated
    with pytest.raises(BuddyInvariantError, match="row 0: set-bit count"):
        b.check()
    rows[0, xbm.L_COUNT] += np.uint64(1)  # consistent row, wrong bit
    with pytest.raises(BuddyInvariantError, match=f"pfn {pfn}: bit is 1, lists say 0"):
        b.check()
    rows[0, 0] &= ~np.uint64(1 << pfn)
    rows[0, xbm.L_COUNT] -= np.uint64(1)
    b.check()


def test_check_catches_a_bit_beyond_the_zone():
    b = fphlib.BuddyAllocator(2048, track="head")
    z = b._zone  # writable: b.zone is read-only
    xbm.xb_preload(z.xb_nodes, z.xb_leaves, z.xb_meta)
    assert xbm.xb_set_bit(z.xb_nodes, z.xb_leaves, z.xb_meta, 2048) == 0
    with pytest.raises(BuddyInvariantError, match="n_pages"):
        b.check()


@pytest.mark.parametrize("bad", ["pages", "PAGE", "flat", 1, True, ["page"]])
def test_bad_track_rejected(bad):
    with pytest.raises(ValueError, match="track must be 'page', 'head', 'bitmap' or None"):
        fphlib.BuddyAllocator(1024, track=bad)


def test_tracking_capacity_is_presized_for_the_zone():
    n_pages = 64 * 1024 + 1024  # 65 leaves: two levels
    b = fphlib.BuddyAllocator(n_pages, track="page")
    nodes, leaves = xbm.xb_capacity(n_pages)
    assert (nodes, leaves) == (1 + 2, 65 + 1)
    assert b.zone.xb_nodes.shape[0] == nodes and b.zone.xb_leaves.shape[0] == leaves
    assert b.tracking_stats["nbytes"] == 3 * 576 + 65 * 128  # everything free: the full tree


@pytest.mark.parametrize(
    ("granularity", "expect"), [(1, list(range(2048, 2048 + 512))), (2, [2048])]
)
def test_plain_call_hooks(granularity, expect):
    """xb_track_add_call/xb_track_del_call: the tracking hooks as plain kernel calls."""
    nodes, leaves, meta = xbm.tracking_arrays(4096, granularity)
    xbm.xb_track_add_call(nodes, leaves, meta, 2048, 9, granularity)
    got = np.flatnonzero(xbm.xb_dense(nodes, leaves, meta, 4096)[0]).tolist()
    assert got == expect
    assert meta[xbm.M_PRELOAD_ALLOCS] == 1  # kernel-faithful: the new leaf came from a preload
    xbm.xb_track_del_call(nodes, leaves, meta, 2048, 9, granularity)
    assert xbm.xb_empty(meta)
    xbm.check_arrays(nodes, leaves, meta)


def test_flat_bitmap_hooks_on_a_block_spanning_rows():
    """TRACK_BITMAP through the same plain-call hooks: an order-12 block sets four rows."""
    nodes, leaves, meta = xbm.tracking_arrays(8192 + 1, xbm.TRACK_BITMAP)
    assert nodes.shape[0] == 0 and leaves.shape == (9, xbm.LEAF_WIDTH)
    xbm.xb_track_add_call(nodes, leaves, meta, 4096, 12, xbm.TRACK_BITMAP)
    xbm.xb_track_add_call(nodes, leaves, meta, 8192, 0, xbm.TRACK_BITMAP)
    assert leaves[:, xbm.L_COUNT].tolist() == [0] * 4 + [1024] * 4 + [1]
    assert (leaves[4:8, : xbm.LEAF_WORDS] == np.uint64(2**64 - 1)).all()
    xbm.xb_track_del_call(nodes, leaves, meta, 4096 + 1024 + 256, 8, xbm.TRACK_BITMAP)
    assert leaves[5, xbm.L_COUNT] == 1024 - 256
    assert (leaves[5, 4:8] == 0).all() and (leaves[5, 8:16] == np.uint64(2**64 - 1)).all()
    assert (meta[xbm.M_FILL], meta[xbm.M_ZERO]) == (2, 1)
    assert xbm.tracking_nbytes(leaves, meta, xbm.TRACK_BITMAP) == 9 * 128


def test_hooks_on_a_block_spanning_leaves():
    """An order-12 block covers four leaves: each new leaf is preloaded on its own."""
    nodes, leaves, meta = xbm.tracking_arrays(8192, xbm.TRACK_PAGE)
    xbm.xb_track_add_call(nodes, leaves, meta, 4096, 12, xbm.TRACK_PAGE)
    bits = xbm.xb_dense(nodes, leaves, meta, 8192)[0]
    assert np.flatnonzero(bits).tolist() == list(range(4096, 8192))
    assert meta[xbm.M_PRELOAD_ALLOCS] == 4 and meta[xbm.M_FAILED] == 0
    xbm.xb_track_del_call(nodes, leaves, meta, 4096 + 1024, 10, xbm.TRACK_PAGE)
    xbm.xb_track_del_call(nodes, leaves, meta, 4096, 12, xbm.TRACK_PAGE)
    assert xbm.xb_empty(meta)
    xbm.check_arrays(nodes, leaves, meta)
