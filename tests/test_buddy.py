"""fphlib.BuddyAllocator and the buddy kernels: worked examples, twin comparisons, bad input."""

import numba
import numpy as np
import pytest

import fphlib
from fphlib.guest import buddy
from fphlib.guest.buddy import BuddyAllocator, BuddyInvariantError
from fphlib.state.zone import ALLOC_BASE, NOT_HEAD, PG_REPORTED
from fphlib.workloads.trace_file import churn_trace

from naive import NaiveBuddy

PLACEMENTS = ["kernel", "head"]


def lists(b):
    return [b.free_list(o) for o in range(b.n_orders)]


def snapshot(b):
    return [a.copy() for a in b.zone]


def assert_unchanged(b, before):
    for name, a, saved in zip(buddy.Zone._fields, b.zone, before, strict=True):
        np.testing.assert_array_equal(a, saved, err_msg=f"Zone.{name} changed")


# --------------------------------------------------------------------------- worked examples


def test_public_name_is_the_module_class():
    assert fphlib.BuddyAllocator is BuddyAllocator


def test_fresh_zone_lists_top_blocks_in_pfn_order():
    b = BuddyAllocator(4096)
    assert lists(b)[10] == [0, 1024, 2048, 3072]
    assert b.nr_free.tolist() == [0] * 10 + [4]
    assert b.free_pages == 4096
    b.check()


def test_order0_from_order10_block_splits_upper_halves_to_list_heads():
    # kernel-mechanisms.md §1.5: an order-0 request from an order-10 block at P returns P
    # and creates P+512 (o9), P+256 (o8), ..., P+1 (o0)
    b = BuddyAllocator(2048)
    assert b.alloc(10) == 0
    p = b.alloc(0)
    assert p == 1024
    for o in range(10):
        assert b.free_list(o) == [1024 + 2**o]
    assert b.free_list(10) == []
    assert b.free_pages == 1023
    b.check()
    # freeing it merges all the way back up: 1024 | 1 ... | 512 -> one order-10 block,
    # placed at the head (order 10 >= MAX_ORDER - 2 never goes to the tail)
    b.free(p, 0)
    assert b.free_list(10) == [1024]
    b.free(0, 10)
    assert b.free_list(10) == [0, 1024]
    assert b.nr_free.tolist() == [0] * 10 + [2]
    b.check()


def _placement_example(placement):
    """n_pages 32, n_orders 4 (blocks of 8): see test_buddy_merge_likely_places_at_tail."""
    b = BuddyAllocator(32, n_orders=4, placement=placement)
    assert [b.alloc(0) for _ in range(4)] == [0, 1, 2, 3]
    assert b.alloc(2) == 4
    assert b.alloc(0) == 8  # splits block 8: o2 [12], o1 [10], o0 [9]
    assert lists(b) == [[9], [10], [12], [16, 24]]
    b.free(4, 2)  # buddy 0 allocated; order 2 >= n_orders - 2: head
    b.free(1, 0)  # buddy 0 allocated; higher buddy 2 (o1) allocated: head
    b.free(3, 0)  # buddy 2 allocated; higher buddy 0 allocated: head
    assert lists(b) == [[3, 1, 9], [10], [4, 12], [16, 24]]
    final = b.free(2, 0)  # merges with 3 into (2, o1); buddy 0 allocated: stop
    assert final is None
    return b


def test_buddy_merge_likely_places_at_tail():
    # (2, o1): combined pfn 0, its order-2 buddy is page 4, a free order-2 block -> tail
    b = _placement_example("kernel")
    assert lists(b) == [[1, 9], [10, 2], [4, 12], [16, 24]]
    assert b.nr_free.tolist() == [2, 2, 2, 2]
    assert b.free_pages == 30
    b.check()


def test_head_placement_always_at_head():
    b = _placement_example("head")
    assert lists(b) == [[1, 9], [2, 10], [4, 12], [16, 24]]
    b.check()


def test_isolate_and_putback_go_to_the_tail_and_merge():
    b = BuddyAllocator(2048, placement="head")
    assert b.alloc(0) == 0  # lists o0..o9 hold 1, 2, ..., 512; o10 holds 1024
    b.isolate_free_page(1024, 10)
    assert b.free_list(10) == []
    assert b.free_pages == 1023
    with pytest.raises(ValueError, match="isolated with order 10"):
        b.free(1024, 10)
    b.check()
    assert b.alloc(10) == -1
    b.free(0, 0)  # merges up to (0, o10)
    assert b.free_list(10) == [0]
    # FPI_TO_TAIL: even at order 10 the putback goes to the tail
    assert b.putback_isolated_page(1024, 10) == 10
    assert b.free_list(10) == [0, 1024]
    b.check()


def test_putback_merges_with_free_buddy():
    b = BuddyAllocator(1024)
    assert b.alloc(0) == 0
    b.isolate_free_page(1, 0)
    b.free(0, 0)  # buddy 1 is isolated, not free: no merge
    assert b.free_list(0) == [0]
    assert b.putback_isolated_page(1, 0) == 10  # merges 0|1 -> ... -> order 10
    assert b.free_list(10) == [0]
    assert b.nr_free.sum() == 1
    b.check()


def test_list_rotate_to_front():
    b = BuddyAllocator(5 * 1024)
    b.list_rotate_to_front(3072, 10)
    assert b.free_list(10) == [3072, 4096, 0, 1024, 2048]
    b.list_rotate_to_front(3072, 10)  # already the head: no change
    assert b.free_list(10) == [3072, 4096, 0, 1024, 2048]
    b.check()


def test_alloc_fails_with_minus_one_when_nothing_fits():
    b = BuddyAllocator(8, n_orders=2)
    assert [b.alloc(1) for _ in range(4)] == [0, 2, 4, 6]
    assert b.alloc(0) == -1
    assert b.alloc(1) == -1
    assert b.free_pages == 0
    b.check()


def test_single_order_zone():
    b = BuddyAllocator(3, n_orders=1)
    assert [b.alloc(0) for _ in range(4)] == [0, 1, 2, -1]
    b.free(1, 0)
    assert b.free_list(0) == [1]
    b.check()


def test_memory_is_ten_bytes_per_page():
    n = 1 << 16
    b = BuddyAllocator(n)
    z = b.zone
    per_page = z.next.nbytes + z.prev.nbytes + z.state.nbytes + z.flags.nbytes
    assert per_page == 10 * n
    assert b.nbytes <= 10 * n + 1024  # plus per-order arrays and cfg


# --------------------------------------------------------------------------- versus the twin


def random_ops(seed, n_pages, n_orders, placement, n_ops):
    """Drive the allocator and its twin with one random op stream; compare after each op."""
    rng = np.random.default_rng(seed)
    b = BuddyAllocator(n_pages, n_orders, placement)
    t = NaiveBuddy(n_pages, n_orders, placement)
    live = []
    for step in range(n_ops):
        r = rng.random()
        if r < 0.5 or not (live or t.free):
            o = int(rng.integers(0, n_orders))
            got = b.alloc(o)
            assert got == t.alloc(o), step
            if got >= 0:
                live.append((got, o))
        elif r < 0.85 and live:
            pfn, o = live.pop(int(rng.integers(0, len(live))))
            b.free(pfn, o)
            t.free_block(pfn, o)
        elif r < 0.92 and t.free:
            pfn = sorted(t.free)[int(rng.integers(0, len(t.free)))]
            o = t.free[pfn]
            b.isolate_free_page(pfn, o)
            t.isolate(pfn, o)
        elif r < 0.97 and t.isolated:
            pfn = sorted(t.isolated)[int(rng.integers(0, len(t.isolated)))]
            o = t.isolated[pfn]
            assert b.putback_isolated_page(pfn, o) == t.putback(pfn, o)
        elif t.free:
            pfn = sorted(t.free)[int(rng.integers(0, len(t.free)))]
            b.list_rotate_to_front(pfn, t.free[pfn])
            t.rotate_to_front(pfn, t.free[pfn])
        assert b.nr_free.tolist() == t.nr_free, step
        if step % 25 == 0:
            assert lists(b) == t.lists, step
    assert lists(b) == t.lists
    assert b.free_pages == t.free_pages
    b.check()


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize(
    ("seed", "n_pages", "n_orders"), [(0, 4096, 11), (1, 64, 4), (2, 8, 2), (3, 2048, 11)]
)
def test_random_ops_match_twin(seed, n_pages, n_orders, placement):
    random_ops(seed, n_pages, n_orders, placement, 600)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_replay_matches_twin_on_churn_trace(placement):
    # the ../bench generator on a 16 MiB zone: order-10 allocs fail now and then
    kind, order, slot, _ = churn_trace(20_000, n_pages=1 << 12)
    b = BuddyAllocator(1 << 12, placement=placement)
    t = NaiveBuddy(1 << 12, placement=placement)
    failed, checksum = t.replay(kind, order, slot)
    assert failed > 0  # the comparison covers failing allocations
    assert b.replay(kind, order, slot) == failed
    assert b.last_checksum == checksum
    assert b.nr_free.tolist() == t.nr_free
    assert lists(b) == t.lists
    b.check()


def test_replay_trace_kernel_matches_wrapper():
    kind, order, slot, n_slots = churn_trace(5_000, n_pages=1 << 12)
    b = BuddyAllocator(1 << 12)
    z = buddy.new_zone(1 << 12)
    failed, checksum = buddy.replay_trace(z, kind, order, slot, n_slots)
    assert b.replay(kind, order, slot) == failed
    assert b.last_checksum == checksum
    np.testing.assert_array_equal(z.nr_free, b.nr_free)


def test_replay_then_calls_continue_from_the_same_state():
    kind, order, slot, _ = churn_trace(3_000, n_pages=1 << 12)
    b = BuddyAllocator(1 << 12)
    t = NaiveBuddy(1 << 12)
    b.replay(kind, order, slot)
    t.replay(kind, order, slot)
    assert [b.alloc(o % 11) for o in range(40)] == [t.alloc(o % 11) for o in range(40)]
    b.check()


def test_churn_trace_holds_its_own_rules():
    kind, order, slot, n_slots = churn_trace(4_000, n_pages=1 << 14, seed=7)
    assert kind.dtype == np.int8 and order.dtype == np.int8 and slot.dtype == np.int32
    live = {}
    for k, o, s in zip(kind.tolist(), order.tolist(), slot.tolist(), strict=True):
        assert 0 <= s < n_slots
        if k == 0:
            assert s not in live
            live[s] = o
        else:
            assert live.pop(s) == o
    assert np.array_equal(churn_trace(4_000, n_pages=1 << 14, seed=7)[0], kind)
    assert not np.array_equal(churn_trace(4_000, n_pages=1 << 14, seed=8)[0], kind)


# --------------------------------------------------------------------------- check()


def broken(n_pages=2048):
    b = BuddyAllocator(n_pages)
    for o in (0, 3, 0, 5):
        b.alloc(o)
    b.check()
    return b


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda z: z.nr_free.__setitem__(4, z.nr_free[4] + 1), r"nr_free\[4\] is 2"),
        (lambda z: z.tail.__setitem__(10, 0), "order 10: tail is 0 but the list ends at 1024"),
        (lambda z: z.head.__setitem__(10, -1), "order 10: head is -1 but tail is 1024"),
        (lambda z: z.prev.__setitem__(1024, 5), "page 1024 has prev 5, expected -1"),
        (lambda z: z.next.__setitem__(1024, 4096), "link after page 1024 is 4096, not a page"),
        (lambda z: z.head.__setitem__(9, 7000), "order 9: the head is 7000, not a page number"),
        (lambda z: z.next.__setitem__(512, 512), "page 512 is listed twice"),
        (lambda z: z.state.__setitem__(1024, 9), "listed page 1024 is not a free head of order 10"),
        (lambda z: z.state.__setitem__(0, NOT_HEAD), "page 0 belongs to no block"),
        (lambda z: z.state.__setitem__(0, 100), "page 0 has an invalid state 100"),
        (lambda z: z.state.__setitem__(3, ALLOC_BASE), "overlaps page 3"),
        (lambda z: z.flags.__setitem__(0, PG_REPORTED), "page 0 is PageReported"),
        (lambda z: z.flags.__setitem__(1024, PG_REPORTED),
         r"1024 pages are in PageReported blocks but the zone counts 0 \(cfg"),
    ],
)
def test_check_names_the_first_violation(corrupt, message):
    b = broken()
    corrupt(b._zone)  # the writable arrays: b.zone is read-only
    with pytest.raises(BuddyInvariantError, match=message):
        b.check()


def test_check_finds_unmerged_buddies_and_unlisted_free_heads():
    b = BuddyAllocator(1024)
    assert b.alloc(0) == 0
    # page 0 becomes a free head on the order-0 list next to its free buddy 1
    b._zone.state[0] = NOT_HEAD
    buddy.add_to_free_list(b._zone, 0, 0)
    with pytest.raises(BuddyInvariantError, match="pages 0 and 1 of order 0 are buddies"):
        b.check()
    c = BuddyAllocator(1024)
    assert c.alloc(0) == 0
    c._zone.state[0] = 0  # claims to be free, but no list holds it
    with pytest.raises(BuddyInvariantError, match="page 0 is a free head of order 0 but on no"):
        c.check()


def test_check_finds_overlapping_and_misaligned_blocks():
    b = BuddyAllocator(1024)
    assert b.alloc(0) == 0  # page 1 is a free order-0 block; page 2 a free order-1 block
    b._zone.state[0] = ALLOC_BASE + 1  # an order-1 block at 0 would swallow page 1
    with pytest.raises(BuddyInvariantError, match="overlaps page 1"):
        b.check()
    c = BuddyAllocator(1024)
    assert [c.alloc(0), c.alloc(0)] == [0, 1]
    c._zone.state[1] = ALLOC_BASE + 1
    with pytest.raises(BuddyInvariantError, match="block at page 1 of order 1 is not aligned"):
        c.check()


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1000,), "n_pages must be a positive multiple of 2\\*\\*\\(n_orders-1\\) = 1024"),
        ((0,), "got 0"),
        ((-1024,), "got -1024"),
        ((1024.0,), "n_pages must be an integer"),
        ((True,), "n_pages must be an integer"),
        ((1024, 12), "n_orders must be in 1..11, got 12"),
        ((1024, 0), "n_orders must be in 1..11, got 0"),
        ((1024, 11, "tail"), "placement must be one of \\['head', 'kernel'\\], got 'tail'"),
        ((1 << 31,), "at most 2,147,483,647"),
    ],
)
def test_constructor_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        BuddyAllocator(*args)


def test_alloc_rejects_bad_order():
    b = BuddyAllocator(1024)
    before = snapshot(b)
    for bad, message in [(11, "order must be in 0..10, got 11"), (-1, "got -1"),
                         (1.5, "order must be an integer")]:
        with pytest.raises(ValueError, match=message):
            b.alloc(bad)
    assert_unchanged(b, before)


@pytest.mark.parametrize(
    ("pfn", "order", "message"),
    [
        (2048, 0, "pfn 2048 is out of range 0..2047"),
        (-1, 0, "pfn -1 is out of range"),
        (2, 2, "pfn 2 is not aligned to 2\\*\\*2 = 4 pages"),
        (0, 1, "pfn 0 is not an allocated block of order 1: it is allocated with order 0"),
        (1, 0, "pfn 1 is not an allocated block of order 0: it is a free block of order 0"),
        (4, 0, "pfn 4 is not an allocated block of order 0: it is allocated with order 2"),
        (5, 0, "pfn 5 is not an allocated block of order 0: it is not the head of a block"),
        (0, 11, "order must be in 0..10"),
        ("0", 0, "pfn must be an integer"),
    ],
)
def test_free_rejects_bad_blocks_and_leaves_allocator_unchanged(pfn, order, message):
    b = BuddyAllocator(2048)
    assert b.alloc(0) == 0
    assert b.alloc(2) == 4
    before = snapshot(b)
    with pytest.raises(ValueError, match=message):
        b.free(pfn, order)
    assert_unchanged(b, before)
    b.check()


def test_double_free_is_rejected():
    b = BuddyAllocator(1024)
    p = b.alloc(3)
    b.free(p, 3)
    before = snapshot(b)
    with pytest.raises(ValueError, match="it is a free block of order 10"):
        b.free(p, 3)
    assert_unchanged(b, before)


def test_isolate_putback_rotate_reject_wrong_state():
    b = BuddyAllocator(2048)
    assert b.alloc(0) == 0
    before = snapshot(b)
    with pytest.raises(ValueError, match="pfn 0 is not a free block of order 0"):
        b.isolate_free_page(0, 0)
    with pytest.raises(ValueError, match="pfn 1 is not an isolated block of order 0"):
        b.putback_isolated_page(1, 0)
    with pytest.raises(ValueError, match="pfn 2 is not a free block of order 0: it is a free"):
        b.list_rotate_to_front(2, 0)
    assert_unchanged(b, before)


BAD_TRACES = [
    # (kind, order, slot, message): each is bad at its last op
    ([0, 2], [0, 0], [0, 1], "trace op 1 .*kind must be 0 \\(alloc\\) or 1 \\(free\\)"),
    ([0, 0], [0, 11], [0, 1], "trace op 1 .*order is outside 0..10"),
    ([0, 0], [0, -1], [0, 1], "trace op 1 .*order is outside 0..10"),
    ([0, 0], [0, 0], [0, -1], "trace op 1 .*slot must be >= 0"),
    ([0, 1, 1], [0, 0, 0], [0, 0, 0], "trace op 2 .*already freed through it"),
    # regression: the second free through slot 0 would free the block slot 1 holds now
    ([0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0], "trace op 3 .*already freed through it"),
    ([0, 0, 1, 1], [0, 1, 0, 0], [0, 1, 1, 0], "trace op 2 .*not allocated with this order"),
    ([0, 1], [2, 1], [0, 0], "trace op 1 .*free of a block that is not allocated with this"),
]


@pytest.mark.parametrize(("kind", "order", "slot", "message"), BAD_TRACES)
@pytest.mark.parametrize("used", [False, True])
def test_replay_rejects_bad_trace_and_leaves_allocator_unchanged(
    kind, order, slot, message, used
):
    b = BuddyAllocator(2048)
    if used:  # restored from a snapshot rather than by re-initialising
        b.alloc(3)
        b.free(b.alloc(0), 0)
    before = snapshot(b)
    with pytest.raises(ValueError, match=message):
        b.replay(np.array(kind, np.int8), np.array(order, np.int8), np.array(slot, np.int32))
    assert_unchanged(b, before)
    b.check()
    # still usable, and a good trace works afterwards
    assert b.replay([0, 1], [0, 0], [0, 0]) == 0


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (([0], [0, 0], [0, 0]), "equal lengths, got kind 1, order 2, slot 2"),
        (([[0]], [0], [0]), "'kind' must be 1-D"),
        (([0.0], [0], [0]), "'kind' must hold integers"),
        (([0], [300], [0]), "'order': value 300 at index 0 is outside 0..10"),
        (([0], [0], [2**40]), "'slot': value 1099511627776 at index 0"),
        (([0], [0], np.array([5_000_000], np.int32)), r"slot\[0\] = 5000000 is outside 0..1023"),
        (([0, 0], [0, 0], [0, 1024]), r"slot\[1\] = 1024 is outside 0..1023: a zone of 1024"),
    ],
)
def test_replay_rejects_malformed_arrays(arrays, message):
    b = BuddyAllocator(1024)
    before = snapshot(b)
    with pytest.raises(ValueError, match=message):
        b.replay(*arrays)
    assert_unchanged(b, before)


def test_replay_slot_semantics_follow_the_c_reference():
    b = BuddyAllocator(1024)
    # a slot overwritten before its free leaks the first block; freeing an unused slot is a
    # no-op, like freeing the slot of a failed alloc
    assert b.replay([0, 0, 1, 1], [0, 0, 0, 5], [3, 3, 3, 7]) == 0
    assert b.last_checksum == 0 + 1
    assert b.free_pages == 1023
    assert b.zone.state[0] == ALLOC_BASE
    b.check()


def test_replay_accepts_lists_and_wide_dtypes():
    b = BuddyAllocator(1024)
    assert b.replay(np.array([0, 0, 1], np.int64), [10, 0, 10], [0, 1, 0]) == 1
    assert b.last_checksum == 0
    assert b.replay([], [], []) == 0
    assert b.last_checksum == 0


# --------------------------------------------------------------------------- engine-style use


@numba.njit(cache=True)
def _drive(z, orders, out):
    for i in range(orders.shape[0]):
        out[i] = buddy.rmqueue_smallest(z, orders[i])
    for i in range(0, orders.shape[0], 2):
        if out[i] >= 0:
            buddy.free_pages(z, out[i], orders[i])


@numba.njit(cache=True)
def _engine_like_loop(zones_next, zones_prev, zones_state, zones_flags, heads, tails, nr_frees,
                      cfgs, orders):
    """Two zones stored as rows of 2-D arrays, driven from one jitted loop (as the engine);
    the second through ``untracked_zone``."""
    out = np.empty((2, orders.shape[0]), np.int64)
    for g in range(2):
        z = buddy.Zone(zones_next[g], zones_prev[g], zones_state[g], zones_flags[g], heads[g],
                       tails[g], nr_frees[g], cfgs[g], np.zeros((0, 0), np.int64),
                       np.zeros((0, 0), np.uint64), np.zeros(0, np.int64))
        if g == 0:
            _drive(z, orders, out[g])
        else:
            _drive(buddy.untracked_zone(z), orders, out[g])
    return out


def test_kernels_on_views_from_a_jitted_loop():
    n, n_orders = 4096, 11
    rows = [buddy.new_zone(n, n_orders, placement) for placement in PLACEMENTS]
    stacked = [np.stack([getattr(r, f) for r in rows]) for f in buddy.Zone._fields[:8]]
    orders = np.random.default_rng(5).integers(0, 6, 40)
    out = _engine_like_loop(*stacked, orders)
    for g, placement in enumerate(PLACEMENTS):
        t = NaiveBuddy(n, n_orders, placement)
        expected = [t.alloc(int(o)) for o in orders]
        for i in range(0, len(orders), 2):
            if expected[i] >= 0:
                t.free_block(expected[i], int(orders[i]))
        assert out[g].tolist() == expected
        assert stacked[6][g].tolist() == t.nr_free  # nr_free rows were updated in place


def test_buddy_reexports_its_kernel_modules_which_never_import_it():
    """The kernels, the trace replay and the check sit below the front end (imports run one
    way); ``buddy`` still offers their names, the same objects, to callers that import them
    from it."""
    import ast
    import importlib
    from pathlib import Path

    tracking = {"free_page_tracking", "xbitmap_arrays"}
    below = {"buddy_kernels": tracking, "buddy_trace": {"buddy_kernels"},
             "buddy_check": {"buddy_kernels"}}
    for name, allowed in below.items():
        module = importlib.import_module(f"fphlib.guest.{name}")
        tree = ast.parse(Path(module.__file__).read_text())
        local = {n.module for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}
        assert local <= allowed, (name, local)
        for attr, value in vars(module).items():
            if attr in buddy.__all__:
                assert getattr(buddy, attr) is value, attr
    assert all(hasattr(buddy, name) for name in buddy.__all__)
