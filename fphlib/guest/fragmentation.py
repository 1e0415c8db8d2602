"""Linux's fragmentation metrics and the /proc/buddyinfo format, with the kernel's arithmetic.

Source: mm/vmstat.c (``fill_contig_page_info``, ``__fragmentation_index``,
``unusable_free_index``, ``frag_show_print``); reference/policies-peers-metrics.md §3.
All divisions are the kernel's unsigned integer divisions (``div_u64``). Indices are in
thousandths, as the kernel computes them before printing ``"%d.%03d"``.

Simplifications: one zone at a time, from its ``nr_free`` per order (the kernel reads the
same counters without the zone lock, ``data_race()``).
"""

import re

import numpy as np

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
