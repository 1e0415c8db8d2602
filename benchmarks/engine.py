"""Engine speed and memory: events per second per mechanism, bytes per guest page, cold compile.

(a) the demo scenario (3 guests x 5 GiB running memhog 4 GiB on a 16 GiB host, 120 s) under
every registered mechanism (``fphlib.hinting.REGISTRY``); (b) 16 guests x 4 GiB churning for
10 simulated minutes with page_reporting; (c) the host policy scenario: 64 guests x
16 GiB (1 TiB of guest memory, host RAM 22 % of it + swap 10 %, so that the policies ask)
churning for 120 simulated seconds with page_reporting under every host policy that can drive
it (``fphlib.host.policy.REGISTRY``), policy every 10 s, each run's wall time against
``policy="always_on"`` in the same process (target: <= 2x). Measured 2026-12-01 on the shared
2-core machine at full size (3.2 GiB of state, 12.5 B/page): always_on 4.10 s, the other
policies 0.94x-1.14x (round_robin the slowest); the first run of the process took 11.9 s
(fresh memory), hence always_on is timed first and last.
(d) ``--large``: the large hosts of the speed issue, each in a fresh process: 64 x 16 GiB
guests running memhog 8 GiB on a 1 TiB host (page_reporting, 120 s) and the 64 x 16 GiB churn
of (c) under always_on; wall time of the process's first run (which pays for GiBs of fresh
memory: on a KVM guest whose host backs memory lazily that alone takes seconds) and of its
second, events/s, peak RSS and the second run's system time (the kernel zeroing fresh pages:
since the second run reuses the first's per-page arrays (fphlib.engine.build.page_arrays),
~0.0 s against 0.4-0.8 s before, and seconds before whenever this guest's own free page
reporting had given the memory back to its host between the runs); with ``--against REV``
interleaved with REV.
``--policy-scale F`` multiplies the guest memory of (c) (e.g. 1/64 on a small machine: the
full size needs ~11 GiB of simulator state). Prints events/s, simulator bytes per guest page
(docs/design.md §5: at most 16) and the peak RSS of the process.

``--cold`` also measures the engine's cold compile: import + first ``simulate()`` in a fresh
process with an empty numba cache (``NUMBA_CACHE_DIR`` pointed at a new directory, so the
project's cache is left alone).

``--against REV`` runs (a) for the mechanisms both versions have, side by side with git
revision REV checked out into a temporary directory (same machine, same interpreter,
interleaved old/new ``--repeat`` times, best of each), and prints the events/s ratios
new/old; with ``--cold`` the cold compile of REV too. A mechanism that does not compile at
one of them (an installed plug-in written for a newer ``fphlib.extend``, e.g.
``examples/fphlib-eager`` before ``fx.borrowed``) is listed as skipped, with the error.

    .venv/bin/python benchmarks/engine.py [--quick] [--cold] [--against HEAD~1] [--repeat 3]
        [--policy-only] [--policy-scale 0.015625] [--large [--against REV]]
"""

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from startup import checkout, cold_compile, interleaved

ROOT = Path(__file__).resolve().parent.parent

# Runs inside a subprocess against whichever fphlib is first on sys.path (new or old tree).
_DEMO = textwrap.dedent("""
    import json, sys, time, warnings
    warnings.simplefilter("ignore")
    import fphlib
    from fphlib.hinting import MECHANISMS
    mechs = [m for m in json.loads(sys.argv[1]) if m in MECHANISMS]
    try:
        fphlib.warmup()
        warm = True
    except Exception:  # e.g. a plug-in installed for a newer fphlib.extend than this tree's
        warm = False
    out, skipped = {}, {}
    def kw(mech):
        return dict(workload="memhog", mechanism=mech,
                    balloon_target="1GiB" if mech == "balloon" else None)
    for mech in [] if warm else mechs:  # each compiled before any run is timed
        try:
            fphlib.simulate(fphlib.SimConfig(**kw(mech), guest_mem="64MiB", duration_s=0.5))
        except Exception as e:
            skipped[mech] = f"{type(e).__name__}: {e}"[:160]
    for mech in [m for m in mechs if m not in skipped]:
        cfg = fphlib.SimConfig(host_mem="16GiB", guests=3, guest_mem="5GiB",
                               workload_params={"size": "4GiB"}, duration_s=120, **kw(mech))
        t0 = time.perf_counter()
        res = fphlib.simulate(cfg)
        wall = time.perf_counter() - t0
        out[mech] = res.summary["events"] / wall
    print(json.dumps({"rates": out, "skipped": skipped}))
""")

# (d) the large hosts, each in a fresh process (its first run pays the fresh memory of GiBs of
# state, as a user's first run does; the second shows the run without that)
_LARGE = textwrap.dedent("""
    import json, resource, sys, time, warnings
    warnings.simplefilter("ignore")
    import fphlib
    mem = 16 << 30
    scenarios = {
        "memhog 1TiB": dict(host_mem="1TiB", guests=64, guest_mem=mem, workload="memhog",
                            workload_params={"size": "8GiB"}, duration_s=120,
                            mechanism="page_reporting"),
        "churn 64x16GiB": dict(host_mem=int(64 * mem * 0.22) + (64 << 25),
                               host_swap=int(64 * mem * 0.1), guests=64, guest_mem=mem,
                               workload="churn", workload_params={
                                   "target": 0.5, "ops_per_s": 2_000, "boot": 256 << 20},
                               mechanism="page_reporting", duration_s=120, sample_s=1.0,
                               policy="always_on", policy_params={"interval_s": 10.0}),
    }
    kw = scenarios[sys.argv[1]]
    fphlib.simulate(fphlib.SimConfig(guest_mem="64MiB", workload=kw["workload"],
                                     mechanism="page_reporting", duration_s=0.1, sample_s=0.05))
    walls, kernel = [], []
    for _ in range(2):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        res = fphlib.simulate(fphlib.SimConfig(**kw))
        walls.append(time.perf_counter() - t0)
        kernel.append(resource.getrusage(resource.RUSAGE_SELF).ru_stime - r0.ru_stime)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"first": walls[0], "second": walls[1], "events": res.summary["events"],
                      "peak_rss": rss, "kernel_second": kernel[1]}))
""")
LARGE = ("memhog 1TiB", "churn 64x16GiB")


def large(rev=None, repeat=1):
    """(d): wall time, events/s and peak RSS of the large hosts, each in a fresh process; with
    ``rev``, interleaved with that revision, best of ``repeat``."""
    trees = [("new", ROOT)]
    with contextlib.ExitStack() as stack:
        if rev:
            trees.insert(0, ("old", stack.enter_context(checkout(rev))))
        best = {}
        for i in range(repeat):
            for name in LARGE:
                for label, tree in interleaved(trees, i):
                    r = json.loads(_python(tree, _LARGE, name))
                    b = best.setdefault((name, label), r)
                    if r["second"] < b["second"]:
                        b["kernel_second"] = r["kernel_second"]
                    for k in ("first", "second"):
                        b[k] = min(b[k], r[k])
        for name in LARGE:
            for label, _ in trees:
                r = best[(name, label)]
                print(f"(d) {name:<15} {label}: first run {r['first']:6.2f} s, second "
                      f"{r['second']:6.2f} s ({r['events'] / r['second'] / 1e6:5.1f} M events/s),"
                      f" peak RSS {r['peak_rss'] / 2**30:.1f} GiB; the second run's system time"
                      f" {r['kernel_second']:.2f} s")
            if rev:
                n, o = best[(name, "new")], best[(name, "old")]
                print(f"(d) {name:<15} new/old: first {n['first'] / o['first']:.2f}, second "
                      f"{n['second'] / o['second']:.2f}")


def _python(tree, code, *args):
    e = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", code, *args], env=e, check=True,
                         capture_output=True, text=True, cwd=tree)
    return out.stdout.strip().splitlines()[-1]


def bytes_per_page(cfg):
    """Simulator bytes per guest page, without the per-run recorders (samples, events)."""
    from fphlib.engine.build import build_state, state_nbytes

    s, _ = build_state(cfg)
    pages = sum(cfg.guest_spec(g)["mem"] for g in range(cfg.guests)) // 4096
    fixed = s.rec_h.nbytes + s.rec_g.nbytes + s.ev.nbytes
    return (state_nbytes(s) - fixed) / pages, state_nbytes(s)


def variants(names):
    """(mechanism, mechanism_params): each default, and each non-default choice or bool of
    each parameter (xbitmap_hints isolate=False, free_page_hint mode=xbitmap, ...)."""
    from fphlib.hinting import mechanism_module

    for name in names:
        yield name, {}
        for key, p in mechanism_module(name).PARAMS.items():
            choices = p.choices if p.kind == "choice" else (True, False) if p.kind == "bool" \
                else ()
            for c in choices:
                if c != p.default:
                    yield name, {key: c}


def run(name, cfg):
    import fphlib

    t0 = time.perf_counter()
    res = fphlib.simulate(cfg)
    wall = time.perf_counter() - t0
    per_page, total = bytes_per_page(cfg)
    ev = res.summary["events"]
    print(
        f"{name:<34} wall {wall:7.2f} s  events {ev:12.0f}  {ev / wall / 1e6:6.1f} M events/s  "
        f"state {per_page:5.2f} B/page ({total / 2**20:.0f} MiB)  "
        f"final RSS {res.summary['host_rss_final_bytes'] / 2**30:.2f} GiB"
    )
    return res


def policy_row(scale=1.0):
    """(c): wall time of every policy that drives page_reporting vs always_on, same run."""
    import fphlib
    from fphlib.api.config import policy_allows
    from fphlib.host.policy import REGISTRY as POLICIES

    mem = max(4 << 20, int((16 << 30) * scale) // (4 << 20) * (4 << 20))
    # host RAM a bit below what the guests touch in 120 s, so that the asking policies ask
    base = dict(host_mem=int(64 * mem * 0.22) + (64 << 25), host_swap=int(64 * mem * 0.1),
                guests=64,
                guest_mem=mem, workload="churn",
                workload_params={"target": 0.5, "ops_per_s": 2_000, "boot": min(mem // 4,
                                                                                  256 << 20)},
                mechanism="page_reporting", duration_s=120, sample_s=1.0)
    # load the compiled engine first, so that the first timed run pays no cache load
    fphlib.simulate(fphlib.SimConfig(guest_mem="64MiB", workload="churn",
                                     mechanism="page_reporting", policy="always_on",
                                     duration_s=0.1, sample_s=0.05))
    # always_on runs first and again last: the first run of a process also pays for fresh
    # memory (GiBs of new arrays); the reference is the faster of the two
    order = ["always_on"] + [p for p in POLICIES if p != "always_on"] + ["always_on"]
    walls = {}
    for policy in order:
        if not policy_allows(policy, "page_reporting"):
            continue
        cfg = fphlib.SimConfig(**base, policy=policy, policy_params={"interval_s": 10.0})
        res = run(f"(c) 64x{mem / 2**30:g}GiB policy={policy}", cfg)
        walls[policy] = min(walls.get(policy, math.inf), res.summary["wall_s"])
    for policy, wall in walls.items():
        print(f"(c) policy {policy:<20} wall {wall:7.2f} s  ratio vs always_on "
              f"{wall / walls['always_on']:5.2f}")
    return walls


def against(rev, repeat, cold):
    """Events/s of (a) here and at ``rev``, interleaved; print the ratios."""
    from fphlib.hinting import REGISTRY

    with checkout(rev) as old:
        best = {"old": {}, "new": {}}
        skipped = {}
        mechs = json.dumps(list(REGISTRY))
        for i in range(repeat):
            for label, tree in interleaved((("old", old), ("new", ROOT)), i):
                run = json.loads(_python(tree, _DEMO, mechs))
                for m, r in run["rates"].items():
                    best[label][m] = max(best[label].get(m, 0.0), r)
                skipped.update({(label, m): why for m, why in run["skipped"].items()})
            print(f"  round {i + 1}/{repeat} done", flush=True)
        print(f"(a) demo events/s, best of {repeat}, this tree vs {rev}:")
        for m in best["old"]:
            if m not in best["new"]:
                continue
            n, o = best["new"][m], best["old"][m]
            print(f"  {m:<16} new {n / 1e6:6.1f} M/s  old {o / 1e6:6.1f} M/s  "
                  f"ratio {n / o:5.2f}")
        for (label, m), why in sorted(skipped.items()):
            tree = rev if label == "old" else "this tree"
            print(f"  {m:<16} skipped: it does not run at {tree} ({why})")
        if cold:
            c_new, c_old = cold_compile(ROOT), cold_compile(old)
            print(f"cold compile: new {c_new:.0f} s, old ({rev}) {c_old:.0f} s, "
                  f"ratio {c_new / c_old:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="(b) for 60 s instead of 600 s")
    ap.add_argument("--cold", action="store_true", help="measure the cold compile too")
    ap.add_argument("--against", metavar="REV", help="compare (a) with git revision REV")
    ap.add_argument("--repeat", type=int, default=3, help="rounds for --against (default 3)")
    ap.add_argument("--policy-only", action="store_true", help="only the policy row (c)")
    ap.add_argument("--large", action="store_true",
                    help="only (d): the 1 TiB memhog and 64 x 16 GiB churn hosts (with "
                         "--against: interleaved with REV)")
    ap.add_argument("--policy-scale", type=float, default=1.0,
                    help="guest memory factor of (c) (default 1: 64 x 16 GiB)")
    args = ap.parse_args()
    if args.policy_only:
        policy_row(args.policy_scale)
        return
    if args.large:
        large(args.against, args.repeat if args.against else 1)
        return
    if args.against:
        against(args.against, args.repeat, args.cold)
        return
    import fphlib
    from fphlib.hinting import REGISTRY

    if args.cold:
        print(f"cold compile (import + first simulate, empty numba cache): "
              f"{cold_compile(ROOT):.0f} s")
    t0 = time.perf_counter()
    fphlib.warmup()
    print(f"warmup {time.perf_counter() - t0:.1f} s")
    demo = fphlib.SimConfig(
        host_mem="16GiB", guests=3, guest_mem="5GiB", workload="memhog",
        workload_params={"size": "4GiB"}, duration_s=120,
    )
    for mech, params in variants(REGISTRY):
        cfg = demo.__class__.from_dict(
            {**demo.to_dict(), "mechanism": mech, "mechanism_params": params,
             "balloon_target": "1GiB" if mech == "balloon" else None}
        )
        label = mech + "".join(f" {k}={v}" for k, v in params.items())
        run(f"(a) demo {label}", cfg)
    big = fphlib.SimConfig(
        host_mem="80GiB", guests=16, guest_mem="4GiB", workload="churn",
        workload_params={"target": 0.5, "ops_per_s": 20_000}, mechanism="page_reporting",
        duration_s=60 if args.quick else 600, sample_s=1.0,
    )
    run(f"(b) 16x4GiB churn {big.duration_s:g} s", big)
    policy_row(args.policy_scale)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
