"""Engine speed and memory: events per second and simulator bytes per guest page.

(a) the demo scenario (3 guests x 5 GiB running memhog 4 GiB on a 16 GiB host, 120 s) for
none, balloon and page_reporting; (b) 16 guests x 4 GiB churning for 10 simulated minutes
with page_reporting. Prints both and the peak RSS of the process. DESIGN §5 asks for at most
16 bytes of simulator state per guest page.

    .venv/bin/python benchmarks/engine.py [--quick]
"""

import argparse
import resource
import time

import fphlib
from fphlib.engine.build import build_state, state_nbytes


def bytes_per_page(cfg):
    """Simulator bytes per guest page, without the per-run recorders (samples, events)."""
    s, _ = build_state(cfg)
    pages = sum(cfg.guest_spec(g)["mem"] for g in range(cfg.guests)) // 4096
    fixed = s.rec_h.nbytes + s.rec_g.nbytes + s.ev.nbytes
    return (state_nbytes(s) - fixed) / pages, state_nbytes(s)


def run(name, cfg):
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="(b) for 60 s instead of 600 s")
    args = ap.parse_args()
    t0 = time.perf_counter()
    fphlib.warmup()
    print(f"warmup {time.perf_counter() - t0:.1f} s")
    demo = fphlib.SimConfig(
        host_mem="16GiB", guests=3, guest_mem="5GiB", workload="memhog",
        workload_params={"size": "4GiB"}, duration_s=120,
    )
    for mech in ("none", "balloon", "page_reporting"):
        cfg = demo.__class__.from_dict(
            {**demo.to_dict(), "mechanism": mech,
             "balloon_target": "1GiB" if mech == "balloon" else None}
        )
        run(f"(a) demo {mech}", cfg)
    big = fphlib.SimConfig(
        host_mem="80GiB", guests=16, guest_mem="4GiB", workload="churn",
        workload_params={"target": 0.5, "ops_per_s": 20_000}, mechanism="page_reporting",
        duration_s=60 if args.quick else 600, sample_s=1.0,
    )
    run(f"(b) 16x4GiB churn {big.duration_s:g} s", big)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
