"""Doubly linked lists threaded through per-page link arrays: the kernel's
``include/linux/list.h`` for a simulator that stores pages as indices.

Every list of pages in the model uses these four operations on a zone's ``next``/``prev``
arrays (``page->lru``, ``page->buddy_list``, ``folio->lru``): the buddy's free lists (ends in
``Zone.head``/``Zone.tail`` per order), the per-CPU lists (``pcp_head``/``pcp_tail`` per vCPU),
the page-cache LRU, the workload's held (mapped anonymous) blocks, the slab pages, and the
pages a balloon or a free page hint holds. A page sits on at most one list at a time, as in
the kernel, so one pair of link arrays serves them all.

A list's first entry is ``heads[head_at]`` and its last ``tails[tail_at]`` (-1 when empty):
``zone.head, order, zone.tail, order`` for a buddy free list, ``s.pcp_head, (g, cpu),
s.pcp_tail, (g, cpu)`` for a pcp list, ``s.gi, (g, GI.PC_HEAD), s.gi, (g, GI.PC_TAIL)`` for a
list whose ends are two columns of a per-guest table. Two measured alternatives were slower:
the ends passed in and out as values (two loads and two stores more per operation: the buddy
replay 5-8 %), and column views ``s.gi[:, GI.PC_HEAD]`` indexed by guest (the demo's memhog
held list: 6-10 % of the engine's events/s).

Differences from list.h: lists end in -1 instead of a circular sentinel ``list_head`` (the
ends live outside the link arrays, and ``-1`` is what every reader of a free list in fphlib
tests for); ``list_del`` does not poison the entry's links (``LIST_POISON1/2``): a page's links
are only read while it is on a list.

Entries are cast to ``np.uintp`` where they index the link arrays: numba wraps negative signed
indices (a compare and a select on every step of the pointer chasing), unsigned ones skip it;
every cast index is a valid entry, links are tested for -1 first (docs/design.md §5).
"""

import numpy as np

from .._jit import jit


@jit(inline="always")
def list_add(nxt, prv, heads, head_at, tails, tail_at, entry):
    """``list_add``: ``entry`` becomes the first of the list."""
    first = heads[head_at]
    nxt[np.uintp(entry)] = first
    prv[np.uintp(entry)] = -1
    if first >= 0:
        prv[np.uintp(first)] = entry
    else:
        tails[tail_at] = entry
    heads[head_at] = entry


@jit(inline="always")
def list_add_tail(nxt, prv, heads, head_at, tails, tail_at, entry):
    """``list_add_tail``: ``entry`` becomes the last of the list (``list_add`` on the list
    read backwards: links and ends swapped)."""
    list_add(prv, nxt, tails, tail_at, heads, head_at, entry)


@jit(inline="always")
def list_del(nxt, prv, heads, head_at, tails, tail_at, entry):
    """``list_del``: unlink ``entry`` from the list (it is on it)."""
    after = nxt[np.uintp(entry)]
    before = prv[np.uintp(entry)]
    if before >= 0:
        nxt[np.uintp(before)] = after
    else:
        heads[head_at] = after
    if after >= 0:
        prv[np.uintp(after)] = before
    else:
        tails[tail_at] = before


@jit(inline="always")
def list_rotate_to_front(nxt, prv, heads, head_at, tails, tail_at, entry):
    """``list_rotate_to_front``: ``entry`` (on the list) becomes the first; the entries
    before it move, in order, to the end."""
    first = heads[head_at]
    if first == entry or first < 0:
        return
    last = tails[tail_at]
    before = prv[np.uintp(entry)]
    # close the ring, then cut it just before entry
    nxt[np.uintp(last)] = first
    prv[np.uintp(first)] = last
    nxt[np.uintp(before)] = -1
    prv[np.uintp(entry)] = -1
    heads[head_at] = entry
    tails[tail_at] = before
