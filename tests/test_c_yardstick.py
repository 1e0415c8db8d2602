"""The C yardstick of the xbitmap's tracking cost (benchmarks/c/xbitmap_hook.h) does what
fphlib's xbitmap does: the same bits and the same leaf and node allocations on random
operations, so that benchmarks/tracking_overhead.py compares like with like."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fphlib.guest.xbitmap import XBitmap

HOOK = Path(__file__).resolve().parents[1] / "benchmarks" / "c" / "xbitmap_hook.h"

# Reads "s B" / "c B" (xbt_set / xbt_clear of bit B), "S P O" / "C P O" (the block of 2**O
# bits at P), "t B" (print whether B is set); prints the allocations as JSON at the end.
DRIVER = r"""
#include "%s"
int main(void) {
  char op; unsigned long long a, o;
  xbt_reset();
  while (scanf(" %%c", &op) == 1) {
    if (op == 's' && scanf("%%llu", &a) == 1) xbt_set(a);
    else if (op == 'c' && scanf("%%llu", &a) == 1) xbt_clear(a);
    else if (op == 'S' && scanf("%%llu %%llu", &a, &o) == 2) xbt_set_block(a, (int)o);
    else if (op == 'C' && scanf("%%llu %%llu", &a, &o) == 2) xbt_clear_block(a, (int)o);
    else if (op == 't' && scanf("%%llu", &a) == 1) {
      int64_t n, off, l = xbt_lookup(a >> 10, &n, &off);
      printf("%%d\n", l >= 0 && ((xbt_leaves[l].w[(a >> 6) & 15] >> (a & 63)) & 1));
    } else return 2;
  }
  xbt_check();
  printf("{\"leaf_allocs\": %%lld, \"node_allocs\": %%lld}\n", (long long)xbt_leaf_allocs,
         (long long)xbt_node_allocs);
  return 0;
}
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the C yardstick cannot be built")
    d = tmp_path_factory.mktemp("yardstick")
    (d / "driver.c").write_text(DRIVER % HOOK)
    subprocess.run([gcc, "-O1", "-o", str(d / "driver"), str(d / "driver.c")], check=True,
                   capture_output=True)
    return d / "driver"


def _random_ops(rng, n, blocks):
    """Operations on a few neighbouring leaves (so that leaves fill, empty and come back)
    and on far ones (so that the tree grows and shrinks)."""
    ops, far_set = [], []
    for _ in range(n):
        far = rng.random() < 0.05
        setting = rng.random() < 0.55
        order = int(rng.integers(0, 11)) if blocks else 0
        if far and not setting and far_set:  # clear a far one set before: its nodes go
            at, order = far_set.pop(int(rng.integers(0, len(far_set))))
        else:  # blocks are aligned to their size, as the buddy's (the hooks rely on it)
            top = (1 << 26) if far else (1 << 13) if blocks else (1 << 12)
            at = int(rng.integers(0, top >> order)) << order
            if far and setting:
                far_set.append((at, order))
        if blocks:
            ops.append(("S" if setting else "C", at, order))
        else:
            ops.append(("s" if setting else "c", at))
    return ops


@pytest.mark.parametrize("blocks", [False, True], ids=["head bits", "page blocks"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_c_xbitmap_matches_fphlib_s(driver, blocks, seed):
    rng = np.random.default_rng(seed)
    ops = _random_ops(rng, 4000, blocks)
    xb = XBitmap()
    touched = set()
    for op in ops:
        if op[0] == "s":
            xb.set_bit(op[1])
        elif op[0] == "c":
            xb.clear_bit(op[1])
        elif op[0] == "S":
            xb.fill(op[1], op[1] + (1 << op[2]) - 1)
        else:
            xb.zero(op[1], op[1] + (1 << op[2]) - 1)
        touched.update([op[1], op[1] + (1 << op[2]) - 1] if blocks else [op[1]])
    probes = sorted(touched)
    text = "".join(" ".join(map(str, op)) + "\n" for op in ops)
    text += "".join(f"t {b}\n" for b in probes)
    out = subprocess.run([str(driver)], input=text, capture_output=True, text=True, check=True)
    lines = out.stdout.split()
    c_bits = [line == "1" for line in lines[:-4]]  # the JSON's four tokens end the output
    c_stats = json.loads(" ".join(lines[-4:]))
    assert c_bits == [xb.test_bit(b) for b in probes]
    assert any(c_bits) and not all(c_bits)
    stats = xb.stats
    assert c_stats == {"leaf_allocs": stats["leaf_allocs"], "node_allocs": stats["node_allocs"]}
    assert stats["leaf_frees"] > 0 and stats["node_frees"] > 0  # the tree shrank too
