"""Lost writes of read-only vs isolating xbitmap hints, and zone->lock time with and without
the xbitmap, in one churn scenario (2 x 256 MiB guests, 50k ops/s, discard latency 2 ms, 20 s).

    .venv/bin/python benchmarks/race_lost_writes.py
"""

import warnings

import fphlib

warnings.simplefilter("ignore")
base = dict(host_mem="2GiB", guests=2, guest_mem="256MiB", vcpus=2, workload="churn",
            workload_params={"boot": "16MiB", "target": 0.5, "ops_per_s": 50000,
                             "orders": {0: 0.5, 3: 0.2, 9: 0.3}},
            hint_order=3, costs={"discard_latency": 2e-3}, duration_s=20, seed=7)
for mech, params in (("xbitmap_hints", {"isolate": False, "interval_s": 0.2}),
                     ("xbitmap_hints", {"isolate": True, "interval_s": 0.2}),
                     ("page_reporting", {}), ("none", {})):
    r = fphlib.simulate(fphlib.SimConfig(**base, mechanism=mech, mechanism_params=params))
    s = r.summary
    mib = s["reported_bytes"] / 2**20
    print(f"{mech:15} {str(params):40} lost_writes {s['lost_writes']:8.0f}  "
          f"reported {mib:8.0f} MiB  zone_lock_hold_s {s['zone_lock_hold_s']:.4f}  "
          f"xbitmap_ops {r.guest_summary.xbitmap_ops.sum():.0f}")
