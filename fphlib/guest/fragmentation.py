"""Linux's fragmentation metrics and the /proc/buddyinfo format, with the kernel's arithmetic.

Source: mm/vmstat.c (``fill_contig_page_info``, ``__fragmentation_index``,
``unusable_free_index``, ``frag_show_print``); docs/references.md §10.
All divisions are the kernel's unsigned integer divisions (``div_u64``). Indices are in
thousandths, as the kernel computes them before printing ``"%d.%03d"``.

Simplifications: one zone at a time, from its ``nr_free`` per order (the kernel reads the
same counters without the zone lock, ``data_race()``).
"""

import re

import numpy as np

from .buddy import NR_ORDERS, BuddyAllocator

_LINE = re.compile(r"Node\s+(\d+),\s+zone\s+(\S+)((?:\s+\d+)+)\s*")


def _nr_free(nr_free):
    """``nr_free`` as a list of non-negative Python ints, or a ValueError."""
    arr = np.asarray(nr_free)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"nr_free must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"nr_free must hold integers, got dtype {arr.dtype}")
    if (arr < 0).any():
        i = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"nr_free[{i}] must be >= 0, got {arr[i]}")
    return [int(x) for x in arr]


def _order(order, n_orders):
    if isinstance(order, bool | np.bool_) or not isinstance(order, int | np.integer):
        raise ValueError(f"order must be an integer, got {order!r}")
    if not 0 <= order < n_orders:
        raise ValueError(f"order must be in 0..{n_orders - 1} (one per nr_free entry), got {order}")
    return int(order)


def _contig_page_info(counts, order):
    """``fill_contig_page_info``: (free_blocks_total, free_pages, free_blocks_suitable)."""
    total = pages = suitable = 0
    for o, blocks in enumerate(counts):
        total += blocks
        pages += blocks << o
        if o >= order:
            suitable += blocks << (o - order)
    return total, pages, suitable


def fragmentation_index(nr_free, order):
    """``__fragmentation_index`` for an allocation of ``2**order`` pages, in thousandths.

    ``-1000`` when a free block of that order exists (the allocation would succeed), ``0``
    when nothing is free; otherwise ``1000 - (1000 + free_pages * 1000 / 2**order) /
    free_blocks_total``: near 0 the failure is lack of memory, near 1000 fragmentation.
    The kernel's formula can go below zero (one free order-9 block asked for order 10 gives
    -500); that is reproduced as is.
    """
    counts = _nr_free(nr_free)
    order = _order(order, len(counts))
    total, pages, suitable = _contig_page_info(counts, order)
    if total == 0:
        return 0
    if suitable:
        return -1000
    return 1000 - (1000 + pages * 1000 // (1 << order)) // total


def unusable_index(nr_free, order):
    """``unusable_free_index``: thousandths of free memory unusable for ``2**order`` pages.

    ``1000`` when nothing is free, else ``(free_pages - suitable << order) * 1000 /
    free_pages``.
    """
    counts = _nr_free(nr_free)
    order = _order(order, len(counts))
    _, pages, suitable = _contig_page_info(counts, order)
    if pages == 0:
        return 1000
    return (pages - (suitable << order)) * 1000 // pages


def format_buddyinfo(nr_free, node=0, zone="Normal"):
    """One /proc/buddyinfo line, byte for byte as ``frag_show_print`` writes it.

    ``"Node %d, zone %8s "``, then ``"%6lu "`` per order, then a newline.
    """
    counts = _nr_free(nr_free)
    if isinstance(node, bool | np.bool_) or not isinstance(node, int | np.integer) or node < 0:
        raise ValueError(f"node must be a non-negative integer, got {node!r}")
    if not isinstance(zone, str) or not zone or any(c.isspace() for c in zone):
        raise ValueError(f"zone must be a non-empty name without spaces, got {zone!r}")
    return f"Node {int(node)}, zone {zone:>8} " + "".join(f"{c:6d} " for c in counts) + "\n"


def parse_buddyinfo(text):
    """Parse /proc/buddyinfo text into ``{(node, zone): nr_free array}``.

    Blank lines are skipped; any other line that is not ``Node <n>, zone <name> <counts>``,
    or repeats a (node, zone) pair, raises ValueError naming its line number (from 1).
    """
    if not isinstance(text, str):
        raise ValueError(f"buddyinfo text must be a str, got {type(text).__name__}")
    zones = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            raise ValueError(
                f"buddyinfo line {lineno}: expected 'Node <n>, zone <name> <count> ...', "
                f"got {line!r}"
            )
        key = (int(m.group(1)), m.group(2))
        if key in zones:
            raise ValueError(f"buddyinfo line {lineno}: node {key[0]} zone {key[1]} repeated")
        zones[key] = np.array([int(x) for x in m.group(3).split()], np.int64)
    return zones


def carve_plan(nr_free, n_pages=None):
    """Where free blocks go so that a zone holds exactly ``nr_free`` (per order).

    Returns ``(n_pages, mixed, free_blocks)``: the zone's pages (a whole number of top-order
    chunks, at least ``n_pages``), the number of leading "mixed" chunks (each holds free
    blocks below the top order and at least one allocated page), and a list per order of the
    free blocks' pfns. Chunks after the mixed ones: ``nr_free[top]`` free top-order chunks,
    then fully allocated chunks up to ``n_pages``.

    With nothing free the zone is one allocated chunk.

    A free block of order k must not have a free buddy of order k (they would merge), so a
    chunk that is not wholly free is split half by half: of the two halves of a region that
    holds an allocated page, one may be a free block and the other again holds an allocated
    page. The fewest mixed chunks that fit every order are used.
    """
    counts = _nr_free(nr_free)
    top = len(counts) - 1
    # mixed chunks needed: at order k the open regions of order k+1 number
    # 2^(top-1-k) * M - sum_{k<j<top} 2^(j-k-1) c[j], and each can give one free block
    need = 0
    for k in range(top - 1, -1, -1):
        used = sum(counts[j] << (j - k - 1) for j in range(k + 1, top))
        span = 1 << (top - 1 - k)
        need = max(need, -(-(counts[k] + used) // span))
    chunk = 1 << top
    pages = max(need + counts[top], 1) * chunk  # at least one chunk
    if n_pages is not None:
        pages = max(pages, -(-int(n_pages) // chunk) * chunk)
    open_ = np.arange(need, dtype=np.int64) * chunk
    free_blocks = [np.zeros(0, np.int64) for _ in range(top + 1)]
    for k in range(top - 1, -1, -1):
        c = counts[k]
        free_blocks[k] = open_[:c].copy()  # left halves become free blocks of order k
        right = open_ + (1 << k)
        open_ = np.concatenate([right[:c], np.sort(np.concatenate([open_[c:], right[c:]]))])
    free_blocks[top] = (need + np.arange(counts[top], dtype=np.int64)) * chunk
    return pages, need, free_blocks


def allocator_from_nr_free(nr_free, n_pages=None, placement="kernel"):
    """A :class:`~fphlib.guest.buddy.BuddyAllocator` whose free lists hold ``nr_free`` blocks
    of each order (a zone in the state a /proc/buddyinfo line describes).

    Built with the allocator's own operations (one :meth:`BuddyAllocator.replay`): every
    page of the mixed chunks of :func:`carve_plan` is allocated (order 0) and every other
    chunk as one top-order block, then the pages of each planned free block are freed (they
    merge into it) and the planned free top-order chunks go back. What stays allocated
    stands for the zone's used memory. ``n_pages``: the zone's size (default: the fewest
    whole top-order chunks that fit). Raises ValueError when the result differs from
    ``nr_free`` (it cannot, short of a bug).
    """
    counts = _nr_free(nr_free)
    if len(counts) > NR_ORDERS:
        raise ValueError(f"nr_free has {len(counts)} orders; at most {NR_ORDERS}")
    pages, mixed, free_blocks = carve_plan(counts, n_pages)
    top = len(counts) - 1
    chunk = 1 << top
    n_chunks = pages // chunk
    # allocations in pfn order (the allocator hands out the lowest free pfn first from a
    # fresh zone): slot p holds page p of the mixed chunks, then one slot per whole chunk
    n_small = mixed * chunk
    whole = n_chunks - mixed
    kind = [np.zeros(n_small + whole, np.int8)]
    order = [np.concatenate([np.zeros(n_small, np.int8), np.full(whole, top, np.int8)])]
    slot = [np.arange(n_small + whole, dtype=np.int32)]
    small = [(b[:, None] + np.arange(1 << k, dtype=np.int64)[None, :]).ravel()
             for k, b in enumerate(free_blocks[:top]) if len(b)]
    pages_freed = np.sort(np.concatenate(small)) if small else np.zeros(0, np.int64)
    kind.append(np.ones(len(pages_freed), np.int8))
    order.append(np.zeros(len(pages_freed), np.int8))
    slot.append(pages_freed.astype(np.int32))
    top_free = n_small + (free_blocks[top] // chunk - mixed)
    kind.append(np.ones(len(top_free), np.int8))
    order.append(np.full(len(top_free), top, np.int8))
    slot.append(top_free.astype(np.int32))
    b = BuddyAllocator(pages, n_orders=len(counts), placement=placement)
    failed = b.replay(np.concatenate(kind), np.concatenate(order), np.concatenate(slot))
    got = b.nr_free.tolist()
    if failed or got != counts:
        raise ValueError(f"allocator_from_nr_free: built {got}, expected {counts}")
    return b
