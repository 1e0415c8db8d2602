"""Hypothesis drives fphlib.XBitmap and its naive twin through the same operations."""

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import fphlib

from naive import NaiveXBitmap

TOP = 2**64 - 1
_EDGES = [0, 63, 64, 1023, 1024, 1025, 65535, 65536, 2**22, 2**40, 2**63, TOP - 1024, TOP]

bits = st.one_of(
    st.integers(0, 5000),
    st.sampled_from(_EDGES).flatmap(
        lambda e: st.integers(max(0, e - 3), min(TOP, e + 3))
    ),
    st.integers(0, TOP),
)


def _outcome(call):
    try:
        return call(), None
    except MemoryError:
        return None, MemoryError


class XBitmapMachine(RuleBasedStateMachine):
    @initialize(require_preload=st.booleans())
    def start(self, require_preload):
        self.xb = fphlib.XBitmap(require_preload=require_preload)
        self.twin = NaiveXBitmap(require_preload=require_preload)

    @rule(bit=bits)
    def set_bit(self, bit):
        assert _outcome(lambda: self.xb.set_bit(bit)) == _outcome(lambda: self.twin.set_bit(bit))

    @rule()
    def preload(self):
        self.xb.preload()
        self.twin.preload()

    @precondition(lambda self: not self.twin.empty())
    @rule(data=st.data())
    def clear_present_bit(self, data):
        bit = data.draw(st.sampled_from(sorted(self.twin.bits)))
        self.xb.clear_bit(bit)
        self.twin.clear_bit(bit)

    @rule(bit=bits)
    def clear_bit(self, bit):
        self.xb.clear_bit(bit)
        self.twin.clear_bit(bit)

    @rule(bit=bits)
    def test_bit(self, bit):
        assert self.xb.test_bit(bit) == self.twin.test_bit(bit)

    @rule(start=bits, span=st.one_of(st.integers(0, 3000), st.integers(0, TOP)))
    def find(self, start, span):
        hi = min(TOP, start + span)
        assert self.xb.find_set(start, hi) == self.twin.find_set(start, hi)
        assert self.xb.find_zero(start, hi) == self.twin.find_zero(start, hi)
        assert self.xb.find_set(hi, start) == self.twin.find_set(hi, start)

    @rule(lo=bits, span=st.one_of(st.integers(0, 3000), st.integers(0, TOP)))
    def zero(self, lo, span):
        hi = min(TOP, lo + span)
        self.xb.zero(lo, hi)
        self.twin.zero(lo, hi)

    @rule(lo=bits, span=st.integers(0, 2500))
    def fill(self, lo, span):
        hi = min(TOP, lo + span)
        assert _outcome(lambda: self.xb.fill(lo, hi)) == _outcome(lambda: self.twin.fill(lo, hi))

    @invariant()
    def same_state(self):
        xb, twin = self.xb, self.twin
        assert xb.count() == twin.count()
        assert xb.empty() == twin.empty()
        assert (xb.n_nodes, xb.n_leaves, xb.height) == (twin.n_nodes, twin.n_leaves, twin.height)
        assert xb.nbytes == twin.nbytes
        assert xb.stats["leaf_allocs"] == twin.leaf_allocs
        xb.check()

    def teardown(self):
        if hasattr(self, "xb"):
            self.xb.zero(0, TOP)
            assert self.xb.nbytes == 0 and self.xb.empty()
            self.xb.check()


TestXBitmapMachine = XBitmapMachine.TestCase
