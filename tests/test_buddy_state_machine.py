"""Hypothesis drives BuddyAllocator and its naive twin through the same operations."""

import hypothesis.strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from fphlib.guest.buddy import BuddyAllocator

from naive import NaiveBuddy


class BuddyMachine(RuleBasedStateMachine):
    """alloc / free / isolate / putback / rotate, the operations the engine uses."""

    @initialize(
        placement=st.sampled_from(["kernel", "head"]),
        n_orders=st.integers(1, 6),
        blocks=st.integers(1, 4),
        track=st.sampled_from([None, "page", "head", "bitmap"]),
    )
    def setup(self, placement, n_orders, blocks, track):
        n_pages = blocks << (n_orders - 1)
        # with tracking, check() below also holds the bitmap to the (twin-checked) free lists
        self.b = BuddyAllocator(n_pages, n_orders, placement, track=track)
        self.t = NaiveBuddy(n_pages, n_orders, placement)

    @rule(order=st.integers(0, 5))
    def alloc(self, order):
        order %= self.b.n_orders
        assert self.b.alloc(order) == self.t.alloc(order)

    @precondition(lambda self: self.t.allocated)
    @rule(data=st.data())
    def free(self, data):
        pfn = data.draw(st.sampled_from(sorted(self.t.allocated)))
        order = self.t.allocated[pfn]
        self.b.free(pfn, order)
        self.t.free_block(pfn, order)

    @precondition(lambda self: self.t.free)
    @rule(data=st.data())
    def isolate(self, data):
        pfn = data.draw(st.sampled_from(sorted(self.t.free)))
        order = self.t.free[pfn]
        self.b.isolate_free_page(pfn, order)
        self.t.isolate(pfn, order)

    @precondition(lambda self: self.t.isolated)
    @rule(data=st.data())
    def putback(self, data):
        pfn = data.draw(st.sampled_from(sorted(self.t.isolated)))
        order = self.t.isolated[pfn]
        assert self.b.putback_isolated_page(pfn, order) == self.t.putback(pfn, order)

    @precondition(lambda self: self.t.free)
    @rule(data=st.data())
    def rotate(self, data):
        pfn = data.draw(st.sampled_from(sorted(self.t.free)))
        order = self.t.free[pfn]
        self.b.list_rotate_to_front(pfn, order)
        self.t.rotate_to_front(pfn, order)

    @invariant()
    def same_state(self):
        if not hasattr(self, "b"):
            return
        self.b.check()
        assert self.b.nr_free.tolist() == self.t.nr_free
        assert [self.b.free_list(o) for o in range(self.b.n_orders)] == self.t.lists
        assert self.b.free_pages == self.t.free_pages


TestBuddyMachine = BuddyMachine.TestCase
