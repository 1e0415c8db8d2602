"""Memory of an xbitmap of free pages against flat alternatives, for a guest 1/50/99 % free.

Usage: python benchmarks/xbitmap_memory.py [--sizes 4GiB,64GiB] [--ops-per-page X]

For each guest size and free fraction, two placements of the free memory:

- fragmented: what the buddy allocator leaves after a churn trace (``churn_trace`` at
  occupancy 1 - free, replayed through ``BuddyAllocator(track=...)``); the measured free
  fraction is printed, since churn oscillates around its target;
- contiguous: the first ``free`` share of the guest free, the rest allocated.

Columns (bytes): the xbitmap kept by Wei Wang's proposal with one bit per free page and with
one bit per free block head (kernel structure size: 576 per radix node + 128 per leaf), a flat
bitmap of every page (n/8), a per-2 MiB bitmap as in Nitesh Lal's v10-v12 (n/512/8), and one
flag byte per page (what a per-page state array costs; the kernel's page->flags word already
exists, 8 bytes per page).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fphlib  # noqa: E402
from fphlib.workloads.trace_file import churn_trace  # noqa: E402

FREE = (0.01, 0.50, 0.99)
TOP_ORDER = 10


def fragmented(n_pages, free, track, ops_per_page, seed=1):
    """(xbitmap bytes, measured free fraction) after churn at occupancy 1 - free."""
    b = fphlib.BuddyAllocator(n_pages, track=track)
    n_ops = max(20_000, int(ops_per_page * n_pages))
    kind, order, slot, _ = churn_trace(n_ops, n_pages=n_pages, occupancy=1 - free, seed=seed)
    b.replay(kind, order, slot)
    return b.tracking_stats["nbytes"], b.free_pages / n_pages


def buddy_blocks(lo, hi):
    """The aligned blocks (pfn, order <= 10) the buddy holds for a free range [lo, hi)."""
    blocks = []
    while lo < hi:
        order = TOP_ORDER
        while lo % (1 << order) or lo + (1 << order) > hi:
            order -= 1
        blocks.append((lo, order))
        lo += 1 << order
    return blocks


def contiguous(n_pages, free, track):
    """xbitmap bytes when pages [0, free * n) are free and the rest allocated."""
    n_free = int(round(free * n_pages))
    xb = fphlib.XBitmap()
    if track == "page":
        if n_free:
            xb.fill(0, n_free - 1)
    else:
        for pfn, _ in buddy_blocks(0, n_free):
            xb.set_bit(pfn)
    return xb.nbytes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="4GiB,64GiB", help="comma-separated guest sizes")
    ap.add_argument("--ops-per-page", type=float, default=0.15,
                    help="churn trace length per guest page (steady state ~0.1)")
    args = ap.parse_args(argv)
    sizes = [fphlib.parse_size(s.strip(), "sizes") for s in args.sizes.split(",")]

    head = (f"{'guest':>7} {'pattern':>10} {'free':>6} {'xb/page':>10} {'xb/head':>10} "
            f"{'flat':>10} {'2MiB bmp':>9} {'flag B':>10}  {'xb/page÷flat':>12}")
    print(head)
    for size in sizes:
        n = size // 4096
        flat, coarse, flags = n // 8, n // 512 // 8, n
        for free in FREE:
            page, measured = fragmented(n, free, "page", args.ops_per_page)
            head_b, _ = fragmented(n, free, "head", args.ops_per_page)
            rows = [("fragmented", measured, page, head_b),
                    ("contiguous", free, contiguous(n, free, "page"), contiguous(n, free, "head"))]
            for pattern, f, pb, hb in rows:
                print(f"{fphlib.format_size(size):>7} {pattern:>10} {f:6.1%} {pb:10d} {hb:10d} "
                      f"{flat:10d} {coarse:9d} {flags:10d}  {pb / flat:12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
