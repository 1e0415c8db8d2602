"""The list.h helper (fphlib.state.lists) against Python lists: several lists threaded through
one pair of link arrays, driven by Hypothesis through add, add_tail, del and rotate."""

import hypothesis.strategies as st
import numpy as np
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fphlib.state.lists import list_add, list_add_tail, list_del, list_rotate_to_front

N_ENTRIES = 24


class ListsMachine(RuleBasedStateMachine):
    """``k`` lists share ``nxt``/``prv`` as the buddy, pcp and LRU lists share a zone's."""

    @initialize(k=st.integers(1, 4))
    def setup(self, k):
        self.nxt = np.full(N_ENTRIES, -1, np.int32)
        self.prv = np.full(N_ENTRIES, -1, np.int32)
        # the ends of list i: heads[i], tails[i] (the buddy's per-order zone.head/zone.tail)
        self.heads = np.full(k, -1, np.int64)
        self.tails = np.full(k, -1, np.int64)
        self.twin = [[] for _ in range(k)]  # first to last
        self.home = {}  # entry -> list it is on

    def _apply(self, fn, i, entry):
        fn(self.nxt, self.prv, self.heads, i, self.tails, i, entry)

    @precondition(lambda self: len(self.home) < N_ENTRIES)
    @rule(data=st.data(), tail=st.booleans())
    def add(self, data, tail):
        i = data.draw(st.integers(0, len(self.twin) - 1))
        entry = data.draw(st.sampled_from([e for e in range(N_ENTRIES) if e not in self.home]))
        self._apply(list_add_tail if tail else list_add, i, entry)
        if tail:
            self.twin[i].append(entry)
        else:
            self.twin[i].insert(0, entry)
        self.home[entry] = i

    @precondition(lambda self: self.home)
    @rule(data=st.data())
    def delete(self, data):
        entry = data.draw(st.sampled_from(sorted(self.home)))
        i = self.home.pop(entry)
        self._apply(list_del, i, entry)
        self.twin[i].remove(entry)

    @precondition(lambda self: self.home)
    @rule(data=st.data())
    def rotate(self, data):
        entry = data.draw(st.sampled_from(sorted(self.home)))
        i = self.home[entry]
        self._apply(list_rotate_to_front, i, entry)
        at = self.twin[i].index(entry)
        self.twin[i] = self.twin[i][at:] + self.twin[i][:at]

    @invariant()
    def lists_match(self):
        for first, last, want in zip(self.heads, self.tails, self.twin, strict=True):
            forward, p = [], first
            while p >= 0 and len(forward) <= N_ENTRIES:
                forward.append(p)
                p = int(self.nxt[p])
            backward, p = [], last
            while p >= 0 and len(backward) <= N_ENTRIES:
                backward.append(p)
                p = int(self.prv[p])
            assert forward == want
            assert backward == want[::-1]


TestLists = ListsMachine.TestCase


def test_rotate_of_the_first_entry_and_of_an_empty_list_change_nothing():
    nxt = np.full(4, -1, np.int32)
    prv = np.full(4, -1, np.int32)
    heads = np.full(2, -1, np.int64)
    tails = np.full(2, -1, np.int64)
    list_rotate_to_front(nxt, prv, heads, 0, tails, 0, 2)
    assert heads.tolist() == [-1, -1] and tails.tolist() == [-1, -1]
    list_add_tail(nxt, prv, heads, 1, tails, 1, 1)
    list_add_tail(nxt, prv, heads, 1, tails, 1, 3)
    list_rotate_to_front(nxt, prv, heads, 1, tails, 1, 1)
    assert heads.tolist() == [-1, 1] and tails.tolist() == [-1, 3]
    assert nxt.tolist() == [-1, 3, -1, -1] and prv.tolist() == [-1, -1, -1, 1]


def test_ends_in_two_columns_of_a_table_as_the_engine_keeps_them():
    """The LRU's ends are two columns of the per-guest table: (g, first column), (g, last)."""
    nxt = np.full(6, -1, np.int32)
    prv = np.full(6, -1, np.int32)
    table = np.full((2, 3), -1, np.int64)  # columns 0, 2: first, last; column 1 untouched
    for entry in (4, 0, 5):
        list_add_tail(nxt, prv, table, (1, 0), table, (1, 2), entry)
    list_del(nxt, prv, table, (1, 0), table, (1, 2), 0)
    list_add(nxt, prv, table, (0, 0), table, (0, 2), 2)
    assert table.tolist() == [[2, -1, 2], [4, -1, 5]]
    assert nxt[4] == 5 and prv[5] == 4 and nxt[5] == -1 and prv[4] == -1


def test_pcp_lists_are_indexed_by_guest_and_cpu():
    nxt = np.full(4, -1, np.int32)
    prv = np.full(4, -1, np.int32)
    heads = np.full((2, 2), -1, np.int64)
    tails = np.full((2, 2), -1, np.int64)
    list_add(nxt, prv, heads, (1, 0), tails, (1, 0), 3)
    list_add(nxt, prv, heads, (1, 0), tails, (1, 0), 1)
    assert heads.tolist() == [[-1, -1], [1, -1]] and tails.tolist() == [[-1, -1], [3, -1]]
    list_del(nxt, prv, heads, (1, 0), tails, (1, 0), 1)
    assert heads[1, 0] == 3 == tails[1, 0] and prv[3] == -1
