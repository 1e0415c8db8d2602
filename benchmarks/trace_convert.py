"""Speed of kmem tracepoint text → fphlib trace: parse + convert 10 M events (budget 30 s).

Usage: python benchmarks/trace_convert.py [--events N] [--budget S] [--keep PATH]

1. Synthetic input: a churn op stream (``fphlib.workloads.trace_file.generate_trace``) turned
   into tracepoint events as Linux 6.x emits them — ``mm_page_alloc`` per alloc,
   ``mm_page_free`` per free, a ``mm_page_free_batched`` duplicate after most order-0 frees
   and some ``mm_page_pcpu_drain`` lines — each block at its own pfn range; then formatted as
   ``trace_pipe`` text lines (``kernel/trace/trace_output.c`` layout), vectorised, and
   written to a temporary file.
2. Warm-up on a short text (numba compile or cache load, reported separately).
3. Timed: ``parse_events(path)`` (memory-mapped file) and ``convert_events`` on the result.
   Prints events/s of each step and of the whole, and the total against the budget.

Exits 1 when the total exceeds ``--budget`` (default 30 s), else 0.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fphlib.observe.trace_convert import convert_events, parse_events  # noqa: E402
from fphlib.workloads.trace_file import generate_trace  # noqa: E402

TEMPLATES = {  # kind -> line with fields to fill: T timestamp, P pfn, O order
    0: "         python3-12345   [001] .....  TTTTT.TTTTTT: mm_page_alloc: "
       "page=00000000deadbeef pfn=0xPPPPPPP order=OO migratetype=1 "
       "gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO",
    1: "         python3-12345   [001] .....  TTTTT.TTTTTT: mm_page_free: "
       "page=00000000deadbeef pfn=0xPPPPPPP order=OO",
    2: "         python3-12345   [001] ...4.  TTTTT.TTTTTT: mm_page_free_batched: "
       "page=00000000deadbeef pfn=0xPPPPPPP order=0",
    3: "         python3-12345   [000] d..3.  TTTTT.TTTTTT: mm_page_pcpu_drain: "
       "page=00000000deadbeef pfn=0xPPPPPPP order=OO migratetype=1",
}


def synthetic_events(n_events, seed=1):
    """(ts_ns, kind, pfn, order) of ``n_events`` tracepoint events."""
    rng = np.random.default_rng(seed)
    n_ops = int(n_events / 1.28) + 16  # ~1.31 events per op; cut to n_events below
    tr = generate_trace(n_ops, seed=seed, ops_per_s=1e6)
    pfn = 0x100000 + tr.slot.astype(np.int64) * 1024  # one 4 MiB range per slot
    kind = tr.kind.astype(np.int8)
    order = tr.order.astype(np.int16)
    ts = 100 * 10**9 + tr.t_us * 1000
    # a batched duplicate after 90 % of order-0 frees, a drain after 10 % of them
    f0 = np.flatnonzero((kind == 1) & (order == 0))
    dup = f0[rng.random(f0.size) < 0.9]
    drain = f0[rng.random(f0.size) < 0.1]
    extra_at = np.concatenate([dup, drain])
    extra_kind = np.concatenate([np.full(dup.size, 2, np.int8), np.full(drain.size, 3, np.int8)])
    at = np.concatenate([np.arange(n_ops), extra_at])
    sub = np.concatenate([np.zeros(n_ops, np.int8), 1 + (extra_kind == 3)])
    idx = np.lexsort((sub, at))
    idx = idx[:n_events]
    kind = np.concatenate([kind, extra_kind])[idx]
    return ts[at[idx]], kind, pfn[at[idx]], order[at[idx]]


def _digits(out, cols, values, base, width):
    """Write ``values`` as ``width`` zero-padded digits into columns ``cols..`` of ``out``."""
    v = values.astype(np.int64).copy()
    for k in range(width - 1, -1, -1):
        d = (v % base).astype(np.uint8)
        out[:, cols + k] = np.where(d < 10, d + 48, d + 87)
        v //= base


def format_text(ts, kind, pfn, order):
    """trace_pipe-like text lines for the events, as one uint8 array (fixed-width lines)."""
    width = max(len(t) for t in TEMPLATES.values()) + 1
    n = len(kind)
    out = np.empty((n, width), np.uint8)
    for k, template in TEMPLATES.items():
        rows = np.flatnonzero(kind == k)
        if rows.size == 0:
            continue
        line = np.frombuffer(template.ljust(width - 1).encode() + b"\n", np.uint8)
        block = np.broadcast_to(line, (rows.size, width)).copy()
        t = template.index("TTTTT.")
        _digits(block, t, ts[rows] // 10**9, 10, 5)
        _digits(block, t + 6, (ts[rows] % 10**9) // 1000, 10, 6)
        _digits(block, template.index("PPPPPPP"), pfn[rows], 16, 7)
        if "OO" in template:
            o = template.index("OO")
            _digits(block, o, order[rows], 10, 2)
            one = order[rows] < 10  # "order=3 " as the kernel prints it, not "order=03"
            block[one, o] = block[one, o + 1]
            block[one, o + 1] = 32
        out[rows] = block
    return out.reshape(-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--keep", type=Path, help="also keep the synthetic text here")
    args = ap.parse_args()

    t = time.perf_counter()
    ev = synthetic_events(args.events)
    text = format_text(*ev)
    n = len(ev[1])
    print(f"synthetic input: {n:,} events, {text.size / 1e6:,.0f} MB of text "
          f"({time.perf_counter() - t:.1f} s to make)")
    small = text[: text.size // n * 1000].tobytes()
    t = time.perf_counter()
    convert_events(*parse_events(small)[0])
    print(f"warm-up (numba compile or cache load): {time.perf_counter() - t:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep or Path(tmp) / "trace.txt")
        text.tofile(path)
        del text
        t0 = time.perf_counter()
        parsed, info = parse_events(path)
        t1 = time.perf_counter()
        trace, stats = convert_events(*parsed)
        t2 = time.perf_counter()
        if args.keep is None:
            os.unlink(path)
    assert info["malformed"] == 0 and len(parsed.kind) == n, info
    assert stats["free_unmatched"] == 0 and stats["implicit_frees"] == 0, stats
    total = t2 - t0
    print(f"parse:   {t1 - t0:6.2f} s  {n / (t1 - t0) / 1e6:6.2f} M events/s")
    print(f"convert: {t2 - t1:6.2f} s  {n / (t2 - t1) / 1e6:6.2f} M events/s "
          f"({len(trace.kind):,} ops, {stats['slots']:,} slots)")
    print(f"total:   {total:6.2f} s  {n / total / 1e6:6.2f} M events/s; "
          f"{total / args.budget:.2f} of the {args.budget:.0f} s budget "
          f"({'within' if total <= args.budget else 'OVER'})")
    return 0 if total <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
