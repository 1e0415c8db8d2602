"""Speed of the xbitmap kernels: set/clear/test/find on sparse and dense patterns.

Usage: python benchmarks/xbitmap_ops.py [--n N] [--reps R]

The kernels are driven the way the engine drives them: a jitted loop calling the ``xb_*``
entry points on arrays it owns, pre-sized with ``xb_capacity`` (no growth inside the loop).
The reference, measured in the same run on the same indices, is a flat bitmap (one uint64
word per 64 bits, the cheapest possible structure for a bounded range). Patterns:

- sparse: N random bits over a 1 TiB guest (2**28 pages): ~1 bit per 4 MiB leaf;
- dense: half of the bits of a 16 GiB guest (2**22 pages) set at random;
- top: N random bits in the last 2**28 indices of the 64-bit range (a 9-level tree).

Each cell is the best of R runs, in M ops/s; "ratio" is xbitmap time / flat time. The last
line times the Python wrapper (``XBitmap.set_bit``) to show the per-call overhead.
"""

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fphlib  # noqa: E402
from fphlib.guest import xbitmap as xbm  # noqa: E402

TOP = 2**64 - 1


@numba.njit
def xb_set_all(nodes, leaves, meta, bits):
    bad = 0
    for i in range(bits.shape[0]):
        bad += xbm.xb_set_bit(nodes, leaves, meta, bits[i]) != 0
    return bad


@numba.njit
def xb_clear_all(nodes, leaves, meta, bits):
    for i in range(bits.shape[0]):
        xbm.xb_clear_bit(nodes, leaves, meta, bits[i])


@numba.njit
def xb_test_all(nodes, leaves, meta, bits):
    hits = 0
    for i in range(bits.shape[0]):
        hits += xbm.xb_test_bit(nodes, leaves, meta, bits[i])
    return hits


@numba.njit
def xb_find_all(nodes, leaves, meta, starts, hi, zero):
    acc = np.uint64(0)
    for i in range(starts.shape[0]):
        if zero:
            found, at = xbm.xb_find_zero(nodes, leaves, meta, starts[i], hi)
        else:
            found, at = xbm.xb_find_set(nodes, leaves, meta, starts[i], hi)
        acc += at
    return acc


@numba.njit
def flat_set_all(words, base, bits):
    for i in range(bits.shape[0]):
        b = bits[i] - base
        words[b >> np.uint64(6)] |= np.uint64(1) << (b & np.uint64(63))
    return 0


@numba.njit
def flat_clear_all(words, base, bits):
    for i in range(bits.shape[0]):
        b = bits[i] - base
        words[b >> np.uint64(6)] &= ~(np.uint64(1) << (b & np.uint64(63)))


@numba.njit
def flat_test_all(words, base, bits):
    hits = 0
    for i in range(bits.shape[0]):
        b = bits[i] - base
        hits += (words[b >> np.uint64(6)] >> (b & np.uint64(63))) & np.uint64(1)
    return hits


@numba.njit
def flat_find_all(words, base, starts, zero):
    acc = np.uint64(0)
    n = words.shape[0]
    for i in range(starts.shape[0]):
        b = starts[i] - base
        w = np.int64(b >> np.uint64(6))
        x = ~words[w] if zero else words[w]
        x &= np.uint64(0xFFFFFFFFFFFFFFFF) << (b & np.uint64(63))
        while x == 0 and w + 1 < n:
            w += 1
            x = ~words[w] if zero else words[w]
        if x != 0:
            acc += base + np.uint64(w * 64) + np.uint64(np.log2(x & -x))
    return acc


def capacity(bits):
    """(node rows, leaf rows) of the tree holding ``bits``: one node per distinct leaf-index
    prefix at each level, one leaf per distinct leaf index (no growth while timing)."""
    li = np.unique(bits >> np.uint64(10))
    height = 0
    while int(li.max()) >> (6 * height):
        height += 1
    nodes = sum(np.unique(li >> np.uint64(6 * level)).shape[0] for level in range(1, height + 1))
    return nodes, li.shape[0] + 1


def best_of(reps, setup, run):
    best = float("inf")
    for _ in range(reps):
        state = setup()
        t = time.perf_counter()
        run(state)
        best = min(best, time.perf_counter() - t)
    return best


def patterns(n, rng):
    sparse = rng.integers(0, 2**28, n, dtype=np.uint64)
    dense = np.flatnonzero(rng.random(2**22) < 0.5).astype(np.uint64)
    top = np.uint64(TOP - (2**28 - 1)) + rng.integers(0, 2**28, n, dtype=np.uint64)
    return {
        "sparse": (np.uint64(0), 2**28, sparse),
        "dense": (np.uint64(0), 2**22, dense),
        "top": (np.uint64(TOP - (2**28 - 1)), 2**28, top),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="ops per measurement")
    ap.add_argument("--reps", type=int, default=3, help="best of R")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)

    print(f"{'pattern':>7} {'op':>10} {'xbitmap Mops/s':>15} {'flat Mops/s':>12} {'ratio':>6}")
    for name, (base, span, bits) in patterns(args.n, rng).items():
        probes = base + rng.integers(0, span, args.n, dtype=np.uint64)
        hi = np.uint64(int(base) + span - 1)
        n_bits = int(bits.shape[0])

        caps = capacity(bits)

        def fresh_xb(caps=caps):
            return xbm.xb_new(*caps)

        def filled_xb(bits=bits):
            arrays = fresh_xb()
            xb_set_all(*arrays, bits)
            return arrays

        def fresh_flat(span=span):
            return np.zeros(span // 64, np.uint64)

        def filled_flat(bits=bits, base=base):
            words = fresh_flat()
            flat_set_all(words, base, bits)
            return words

        # compile (and check that the pre-sized pools never run short)
        assert xb_set_all(*fresh_xb(), bits) == 0, "pool too small"
        a = filled_xb()
        xb_test_all(*a, probes[:10])
        xb_find_all(*a, probes[:10], hi, False)
        xb_find_all(*a, probes[:10], hi, True)
        xb_clear_all(*a, bits[:10])
        w = filled_flat()
        flat_test_all(w, base, probes[:10])
        flat_find_all(w, base, probes[:10], False)
        flat_clear_all(w, base, bits[:10])

        n_find = min(args.n, 20_000)
        ops = [
            ("set_bit", n_bits, fresh_xb, lambda a, bits=bits: xb_set_all(*a, bits),
             fresh_flat, lambda w, bits=bits, base=base: flat_set_all(w, base, bits)),
            ("test_bit", args.n, filled_xb, lambda a, p=probes: xb_test_all(*a, p),
             filled_flat, lambda w, p=probes, base=base: flat_test_all(w, base, p)),
            ("find_set", n_find, filled_xb,
             lambda a, p=probes[:n_find], hi=hi: xb_find_all(*a, p, hi, False),
             filled_flat, lambda w, p=probes[:n_find], base=base: flat_find_all(w, base, p, False)),
            ("find_zero", n_find, filled_xb,
             lambda a, p=probes[:n_find], hi=hi: xb_find_all(*a, p, hi, True),
             filled_flat, lambda w, p=probes[:n_find], base=base: flat_find_all(w, base, p, True)),
            ("clear_bit", n_bits, filled_xb, lambda a, bits=bits: xb_clear_all(*a, bits),
             filled_flat, lambda w, bits=bits, base=base: flat_clear_all(w, base, bits)),
        ]
        for op, count, xs, xr, fs, fr in ops:
            t_xb = best_of(args.reps, xs, xr)
            t_flat = best_of(args.reps, fs, fr)
            print(f"{name:>7} {op:>10} {count / t_xb / 1e6:15.1f} {count / t_flat / 1e6:12.1f} "
                  f"{t_xb / t_flat:6.1f}")

    xb = fphlib.XBitmap()
    some = [int(b) for b in rng.integers(0, 2**28, 20_000, dtype=np.uint64)]
    t = time.perf_counter()
    for b in some:
        xb.set_bit(b)
    dt = time.perf_counter() - t
    print(f"Python wrapper XBitmap.set_bit: {len(some) / dt / 1e6:.2f} M calls/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
