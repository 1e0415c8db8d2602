"""The full structural check of an xbitmap's arrays (Python side, for tests and
:meth:`fphlib.guest.xbitmap.XBitmap.check`).

It checks what lib/radix-tree.c (v4.15) and lib/xbitmap.c (v21) keep true of the tree, on the
layout of :mod:`fphlib.guest.xbitmap_arrays`: links, slot counts and IDR_FREE tags, minimal
height, no empty leaf or childless node, and that the pools and the tree account for every
row.
"""

import numpy as np

from .xbitmap_arrays import (
    L_COUNT,
    LEAF_BITS,
    LEAF_WORDS,
    M_CACHE_L,
    M_CACHE_LI,
    M_CACHE_N,
    M_CACHE_OFF,
    M_HEIGHT,
    M_LEAF_ALLOCS,
    M_LEAF_FREE,
    M_LEAF_FREES,
    M_NODE_ALLOCS,
    M_NODE_FREE,
    M_NODE_FREES,
    M_NODES_AVAIL,
    M_ROOT,
    M_SPARE,
    MAP_SHIFT,
    MAP_SIZE,
    MAX_BIT,
    MAX_HEIGHT,
    N_FULL,
    N_LEVEL,
    N_OCC,
    N_OFFSET,
    N_PARENT,
)


def check_arrays(nodes, leaves, meta):
    """Full structural check of an xbitmap's arrays; raises AssertionError naming the fault.

    Checks parent links, slot counts and occupancy masks, the IDR_FREE (``N_FULL``) tags,
    minimal height (as ``radix_tree_shrink`` leaves it), no empty leaf or childless node,
    the lookup cache, the in-use counters and that free lists and tree rows partition the
    pools.
    """
    root = int(meta[M_ROOT])
    height = int(meta[M_HEIGHT])
    tree_nodes = set()
    tree_leaves = set()

    def leaf_ok(l):
        """Check a leaf in the tree; return whether it is full."""
        words = leaves[l, :LEAF_WORDS]
        assert np.any(words != 0), f"leaf {l} is empty"
        count = sum(bin(int(w)).count("1") for w in words)
        assert int(leaves[l, L_COUNT]) == count, f"leaf {l}: count {leaves[l, L_COUNT]}"
        return count == LEAF_BITS

    def walk(n, level, parent, offset):
        """Return whether the subtree is full."""
        assert n not in tree_nodes, f"node {n} reached twice"
        tree_nodes.add(n)
        row = nodes[n]
        assert row[N_PARENT] == parent, f"node {n}: parent {row[N_PARENT]} != {parent}"
        assert parent < 0 or row[N_OFFSET] == offset, f"node {n}: offset {row[N_OFFSET]}"
        assert row[N_LEVEL] == level, f"node {n}: level {row[N_LEVEL]} != {level}"
        occ = 0
        full = 0
        for s in range(MAP_SIZE):
            child = int(row[s])
            if child < 0:
                continue
            occ |= 1 << s
            if level == 0:
                assert child not in tree_leaves, f"leaf {child} reached twice"
                tree_leaves.add(child)
                child_full = leaf_ok(child)
            else:
                child_full = walk(child, level - 1, n, s)
            full |= int(child_full) << s
        assert occ, f"node {n} has no children"
        assert int(row[N_OCC]) & MAX_BIT == occ, f"node {n}: occupancy mask"
        assert int(row[N_FULL]) & MAX_BIT == full, f"node {n}: full (IDR_FREE) mask"
        return full == MAX_BIT

    if root < 0:
        assert height == 0, f"empty tree with height {height}"
    elif height == 0:
        tree_leaves.add(root)
        leaf_ok(root)
    else:
        assert height <= MAX_HEIGHT, f"height {height}"
        walk(root, height - 1, -1, 0)
        if height > 1:
            # minimal height: the root uses a slot other than 0, or more than one slot
            assert nodes[root, N_OCC] != 1, "root could shrink"
    cached = int(meta[M_CACHE_LI])
    if cached:  # the lookup cache names a leaf in the tree, at its index
        l, n, off = int(meta[M_CACHE_L]), int(meta[M_CACHE_N]), int(meta[M_CACHE_OFF])
        assert n in tree_nodes and nodes[n, N_LEVEL] == 0, f"lookup cache: node {n}"
        assert 0 <= off < MAP_SIZE and nodes[n, off] == l, f"lookup cache: leaf {l}"
        index, shift = off, MAP_SHIFT
        while nodes[n, N_PARENT] >= 0:
            index |= int(nodes[n, N_OFFSET]) << shift
            shift += MAP_SHIFT
            n = int(nodes[n, N_PARENT])
        assert n == root and index == cached - 1, f"lookup cache: index {cached - 1}"
    n_nodes = int(meta[M_NODE_ALLOCS] - meta[M_NODE_FREES])
    n_leaves = int(meta[M_LEAF_ALLOCS] - meta[M_LEAF_FREES])
    assert n_nodes == len(tree_nodes), f"node allocs - frees {n_nodes} != {len(tree_nodes)}"
    assert n_leaves == len(tree_leaves), f"leaf allocs - frees {n_leaves} != {len(tree_leaves)}"

    def free_chain(head, column, n_rows, as_int):
        seen = []
        i = int(head)
        while i >= 0:
            assert i < n_rows and len(seen) <= n_rows, "free list corrupt"
            seen.append(i)
            i = as_int(column[i])
        return seen

    free_nodes = free_chain(meta[M_NODE_FREE], nodes[:, 0], nodes.shape[0], int)
    free_leaves = free_chain(
        meta[M_LEAF_FREE], leaves[:, 0], leaves.shape[0], lambda v: int(np.int64(v))
    )
    assert meta[M_NODES_AVAIL] == len(free_nodes), "M_NODES_AVAIL"
    spare = {int(meta[M_SPARE])} if meta[M_SPARE] >= 0 else set()
    assert len(free_nodes) + len(tree_nodes) == nodes.shape[0], "node rows leaked"
    assert not set(free_nodes) & tree_nodes, "a free node is in the tree"
    assert len(free_leaves) + len(tree_leaves) + len(spare) == leaves.shape[0], "leaf rows leaked"
    assert not (set(free_leaves) | spare) & tree_leaves, "a free leaf is in the tree"
    for l in set(free_leaves) | spare:
        assert not np.any(leaves[l, 1:]), f"free leaf row {l} is not zero"
