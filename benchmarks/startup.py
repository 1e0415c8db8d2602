"""Start-up costs a new user meets, cold (empty numba cache) and warm (the same cache again).

Each figure is measured in a fresh process, so nothing compiled earlier in this script counts:

- ``import``: ``import fphlib``;
- ``simulate``: import + the first ``simulate()`` of a small page_reporting/churn run (the
  engine's cold compile: bounded at 60 s on a 2-core machine);
- ``simulate other mechanism``: the same cache, a second process running the same scenario
  under another mechanism (what switching mechanisms in a notebook costs once);
- ``BuddyAllocator``: import + the first ``BuddyAllocator`` alloc/free (its own cache);
- ``warmup`` (with ``--warmup``): ``fphlib.warmup()``, every registered mechanism.

``--against REV`` measures git revision REV the same way, interleaved with this tree, and
prints the ratios new/old (REV is checked out into a temporary worktree).

    .venv/bin/python benchmarks/startup.py [--warmup] [--against HEAD~1]
"""

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_TIMED = textwrap.dedent("""
    import sys, time, warnings
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    import fphlib
    what = sys.argv[1]
    if what == "simulate":
        cfg = fphlib.SimConfig(host_mem="1GiB", guests=1, guest_mem="256MiB", workload="churn",
                               workload_params={"ops_per_s": 1000, "boot": "16MiB"},
                               mechanism=sys.argv[2], duration_s=1)
        fphlib.simulate(cfg)
    elif what == "buddy":
        b = fphlib.BuddyAllocator(1024)
        b.free(b.alloc(0), 0)
    elif what == "warmup":
        fphlib.warmup()
    print(time.perf_counter() - t0)
""")


def timed(tree, what, *args, cache):
    """Seconds of import + ``what`` in a fresh process of ``tree`` with numba cache ``cache``.

    The wall time, and the child's CPU time in ``timed.cpu`` (numba compiles on one thread,
    so on a busy machine the CPU time is the steadier figure)."""
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_CACHE_DIR=str(cache))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-c", _TIMED, what, *args], env=env, check=True,
                         capture_output=True, text=True, cwd=tree)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    timed.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(out.stdout.strip().splitlines()[-1])


def cold_compile(tree, mechanism="page_reporting"):
    """Seconds of import + first simulate() with an empty numba cache, in a fresh process."""
    with tempfile.TemporaryDirectory() as cache:
        return timed(tree, "simulate", mechanism, cache=cache)


@contextlib.contextmanager
def checkout(rev):
    """A temporary git worktree of ``rev`` (removed afterwards)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                       check=True, capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           capture_output=True)


def interleaved(trees, i):
    """``trees`` in round ``i``'s order: reversed every other round, so that neither tree is
    always measured first (a machine whose speed drifts favours neither)."""
    return trees if i % 2 == 0 else trees[::-1]


def measure(tree, with_warmup):
    """Every start-up figure of ``tree``: {name: (wall s, cpu s)}, cold then warm."""
    steps = [("import", "import", ()), ("simulate cold", "simulate", ("page_reporting",)),
             ("simulate warm", "simulate", ("page_reporting",)),
             ("simulate other mechanism cold", "simulate", ("balloon",))]
    runs = [steps, [("BuddyAllocator cold", "buddy", ()), ("BuddyAllocator warm", "buddy", ())]]
    if with_warmup:
        runs.append([("warmup cold", "warmup", ()), ("warmup warm", "warmup", ())])
    out = {}
    for run in runs:
        with tempfile.TemporaryDirectory() as cache:  # each group starts from an empty cache
            for name, what, args in run:
                wall = timed(tree, what, *args, cache=cache)
                out[name] = (wall, timed.cpu)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warmup", action="store_true", help="also time fphlib.warmup()")
    ap.add_argument("--against", metavar="REV", help="compare with git revision REV")
    args = ap.parse_args()
    if not args.against:
        print(f"{'':<32} {'wall':>8} {'cpu':>8}")
        for name, (wall, cpu) in measure(ROOT, args.warmup).items():
            print(f"{name:<32} {wall:7.1f}s {cpu:7.1f}s", flush=True)
        return
    with checkout(args.against) as old:
        o = measure(old, args.warmup)
        n = measure(ROOT, args.warmup)
    print(f"{'':<32} {'new wall/cpu':>14} {'old wall/cpu':>14}  cpu ratio  (old {args.against})")
    for name in n:
        (nw, nc), (ow, oc) = n[name], o[name]
        print(f"{name:<32} {nw:6.1f}/{nc:6.1f}s {ow:6.1f}/{oc:6.1f}s  {nc / oc:5.2f}")


if __name__ == "__main__":
    main()
