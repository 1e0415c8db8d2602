"""Host-policy experiments: a memhog sequence on a host with swap, and the ESX idle-tax story.

- :func:`memhog_sequence`: guests run ``memhog`` one after another on a host with swap; each
  run's runtime and the host's swap (Nitesh Narayan Lal's v10/v11 cover letters: 3 guests of
  6 GB each running ``memhog 6G`` in turn on a 15 GB host with 4 GB swap;
  docs/references.md §2). Without hinting the host keeps backing every page a
  finished memhog freed, so the later guests push the host into swap and run slower.
- :func:`overcommit`: N guests, some busy (churn), some idle (touched their memory once), on
  an overcommitted host under ``idle_tax`` with each ``tau`` (Waldspurger, OSDI 2002, Fig. 7:
  two 256 MB VMs, one idle, one running dbench, equal shares; tau = 0: both converge to
  ~179 MB; tau = 0.75: memory moves to the busy VM; docs/references.md §9.1).

Measured (2026-12-01, ``memhog_sequence()`` at full size, 5.5 GiB memhogs 60 s apart, host
reserve 360 MiB, swap device ~205 MB/s): without hinting the third memhog takes 18.8 s
instead of 7.5 s while the host swaps 2802 MiB out (11.3 s of it stalled in direct reclaim,
waiting for the swap device; kswapd writes the rest in the background); with page_reporting
every memhog takes 7.5 s and nothing is swapped. ``overcommit()`` (2 x 256 MiB, 300 s;
measured 2026-12-07, after the ESX policies enforce the shares with the balloon and per-VM
host swapping): host RSS (ESX's allocation) at tau = 0: busy 199 MiB, idle 196 MiB; at
tau = 0.75: busy 218 MiB, idle 175 MiB (the busy guest's memory minus balloon: 244 and
256 MiB; part of its revoked share is swapped by the host, not ballooned).

Simplifications: the guests have no swap of their own, so a memhog as large as the guest
would fail in the guest: :func:`memhog_sequence` touches ``size`` = guest memory minus
``headroom`` (boot footprint and watermarks) by default; dbench is modelled by ``churn``
(steady allocation and free around a target occupancy) and the idle Windows VM, which zeroes
all its memory at boot, by one ``memhog`` pass over most of its memory.
"""


import pandas as pd

from .. import bounds
from ..api.asking import never_asking, per_guest, run_metrics
from ..api.config import SimConfig, check_number, policy_allows
from ..costs import HOST_RESERVE, SIZE_DEFAULTS
from ..hinting import MECHANISMS
from ..host.policy import REGISTRY
from ..units import PAGE_SIZE, parse_size

SEQUENCE_COLUMNS = ("mechanism", "guest", "start_s", "runtime_s", "memhog_end_s", "status",
                    "swap_out_bytes", "host_swap_peak_bytes", "host_swap_end_bytes")
OVERCOMMIT_COLUMNS = ("tau", "guest", "role", "memory_bytes", "host_rss_bytes",
                      "balloon_bytes", "swap_bytes", "slowdown", "workload_ops")

# the scenario of Nitesh Narayan Lal's v10/v11 cover letters: 3 x 6 GB guests, 15 GB host,
# 4 GB swap; the mechanisms compared by default
SEQUENCE_DEFAULTS = dict(guests=3, guest_mem=6 << 30, host_mem=15 << 30, host_swap=4 << 30,
                         boot=256 << 20)
SEQUENCE_MECHANISMS = ("none", "page_reporting", "hinting_bitmap")
# a memhog of 6 GiB at 1 GiB/s takes ~6 s; reporting needs ~20-30 s to give it back
# (kernel comment: an idle system is fully reported in ~30 s); 60 s apart leaves time for it
SEQUENCE_INTERVAL_S = 60.0
HEADROOM = 512 << 20  # boot footprint (256 MiB) + watermarks and pcp lists of a 6 GiB guest
BUSY_START_S = 20.0  # overcommit: the busy guest starts after the idle one touched its memory


def _round_mem(nbytes):
    """Down to a whole number of 4 MiB blocks (at least one)."""
    return max(4 << 20, int(nbytes) // (4 << 20) * (4 << 20))


def sequence_config(mechanism="none", scale=1.0, interval_s=SEQUENCE_INTERVAL_S, size=None,
                    seed=0, **overrides):
    """The :class:`~fphlib.SimConfig` of one memhog sequence (sizes multiplied by ``scale``,
    the per-guest VMM overhead and the host's reserve too)."""

    scale = check_number("scale", scale, lo=0, lo_open=True, hi=1)
    interval_s = check_number("interval_s", interval_s, lo=0, lo_open=True,
                              hi=bounds.MAX_DURATION_S / 3)
    d = SEQUENCE_DEFAULTS
    guest_mem = _round_mem(d["guest_mem"] * scale)
    boot = _round_mem(d["boot"] * scale)
    if size is None:
        size = guest_mem - _round_mem(HEADROOM * scale)
    size = parse_size(size, "size")
    G = d["guests"]
    costs = overrides.pop("costs", None)
    if costs is None:  # the per-guest VMM overhead scales with the rest
        overhead = int(SIZE_DEFAULTS["guest_overhead"][0] * scale)
        costs = {"guest_overhead": overhead // PAGE_SIZE * PAGE_SIZE}
    overrides.setdefault("host_reserve", int(HOST_RESERVE * scale) // PAGE_SIZE * PAGE_SIZE)
    return SimConfig(
        host_mem=int(d["host_mem"] * scale), host_swap=int(d["host_swap"] * scale),
        guests=G, guest_mem=guest_mem, workload="memhog",
        workload_params={"size": size, "boot": boot, "hold_s": 1.0},
        guest_overrides=tuple({"workload_params": {"size": size, "boot": boot, "hold_s": 1.0,
                                                   "start_s": i * interval_s}}
                              for i in range(G)),
        mechanism=mechanism, duration_s=G * interval_s, sample_s=0.5, seed=seed, costs=costs,
        **overrides)


def memhog_sequence(mechanisms=SEQUENCE_MECHANISMS, scale=1.0, interval_s=SEQUENCE_INTERVAL_S,
                    size=None, seed=0, simulate=None, **overrides):
    """Guests run ``memhog`` in turn on a host with swap; one row per mechanism and guest.

    Parameters
    ----------
    mechanisms : sequence of str
        Registered mechanisms to compare (default none, page_reporting, hinting_bitmap).
    scale : float
        Multiplies every size of the v10/v11 scenario (3 x 6 GiB guests, 15 GiB host, 4 GiB
        swap); 1/64 runs in about a second.
    interval_s : float
        Guest i's memhog starts at ``i * interval_s``.
    size : int or str, optional
        Bytes each memhog touches (default: guest memory minus 512 MiB x scale).
    **overrides
        Further SimConfig fields (policy, host_thp, costs, ...).

    Returns
    -------
    pandas.DataFrame
        ``SEQUENCE_COLUMNS``: each memhog's ``runtime_s`` (its ``workload_runtime_s``: the
        time spent touching), ``memhog_end_s`` (when it exited; NaN if it did not), the
        guest's ``status`` (``running``: the VM is still up), its pages swapped out by the
        host, and the host's swap peak and level when that guest's memhog exited.
    """

    if simulate is None:  # the parameter shares the name
        from ..api.simulate import simulate
    if isinstance(mechanisms, str):
        mechanisms = (mechanisms,)
    rows = []
    for mech in mechanisms:
        if mech not in MECHANISMS:
            raise ValueError(f"mechanisms: {mech!r} is not allowed; known mechanisms: "
                             f"{', '.join(MECHANISMS)}")
        res = simulate(sequence_config(mech, scale, interval_s, size, seed, **overrides))
        gs, host = res.guest_summary, res.host.set_index("t_s")
        ev = res.events
        for g in range(len(gs)):
            start = g * interval_s
            rt = float(gs["workload_runtime_s"].iloc[g])
            exits = ev.loc[(ev["guest"] == g) & (ev["kind"] == "workload_end"), "t_s"]
            end = float(exits.iloc[0]) if len(exits) else res.config.duration_s
            rows.append(dict(
                mechanism=mech, guest=g, start_s=start, runtime_s=rt,
                memhog_end_s=float(exits.iloc[0]) if len(exits) else float("nan"),
                status=gs["status"].iloc[g],
                swap_out_bytes=int(gs["swap_out_bytes"].iloc[g]),
                host_swap_peak_bytes=int(res.host["swap_bytes"].max()),
                host_swap_end_bytes=int(host["swap_bytes"].asof(end))))
    return pd.DataFrame(rows, columns=list(SEQUENCE_COLUMNS))


def overcommit_config(tau=0.75, guests=2, active=1, guest_mem="256MiB", ratio=1.43,
                      mechanism="balloon", duration_s=300.0, seed=0, policy_params=None,
                      **overrides):
    """The config of one :func:`overcommit` run: guests ``0..active-1`` busy, the rest idle.

    Host RAM for the guests is ``guests * guest_mem / ratio`` (ESX Fig. 7: 2 x 256 MB VMs
    converging to ~179 MB each, ratio 1.43) plus the per-guest overhead, and a small swap
    (a quarter of one guest) so that the balloon, not host swapping, does the reclaiming. A
    busy guest churns around 60 % of its memory (from ``BUSY_START_S``; churn touches every
    free page in turn, so its RSS grows to its whole memory); an idle one touches 80 % once
    at 32 MiB/s (as Windows zeroes its memory at boot) and frees it. The policy runs every
    second with a 1/32-guest quantum. Host THP is off by default (4 KiB backing,
    as ESX's: with THP a churning guest's RSS jumps to its full size within seconds).
    """

    guest_mem = parse_size(guest_mem, "guest_mem")
    guests = check_number("guests", guests, lo=1, hi=bounds.MAX_GUESTS, integer=True)
    if not (isinstance(active, int) and 0 <= active <= guests):
        raise ValueError(f"active: {active!r} is not allowed; expected an int in 0..{guests}")
    if not (isinstance(ratio, int | float) and ratio >= 1):
        raise ValueError(f"ratio: {ratio!r} is not allowed; expected a number >= 1 "
                         "(guest memory / host memory for guests)")
    ovh = parse_size((overrides.get("costs") or {}).get(
        "guest_overhead", SIZE_DEFAULTS["guest_overhead"][0]), "costs['guest_overhead']")
    host_mem = int(guests * guest_mem / ratio) + guests * ovh
    # ESX Fig. 7 sizes host memory for the VMs alone: no host reserve unless asked
    overrides.setdefault("host_reserve", 0)
    boot = _round_mem(guest_mem // 16)
    busy = {"workload": "churn", "workload_params": {"target": 0.6, "ops_per_s": 5_000.0,
                                                     "boot": boot, "start_s": BUSY_START_S}}
    idle = {"workload": "memhog", "workload_params": {"size": int(guest_mem * 0.8),
                                                      "rate": 32 << 20, "hold_s": 0.0,
                                                      "boot": boot}}
    params = {"tau": float(tau), "interval_s": 1.0, "sample_s": 5.0,
              "quantum": max(PAGE_SIZE, guest_mem // 32), **(policy_params or {})}
    overrides.setdefault("host_thp", False)  # 4 KiB backing, as ESX: RSS follows touches
    return SimConfig(
        host_mem=host_mem, host_swap=guest_mem // 4, guests=guests, guest_mem=guest_mem,
        guest_overrides=tuple(busy if g < active else idle for g in range(guests)),
        mechanism=mechanism, policy="idle_tax", policy_params=params, duration_s=duration_s,
        sample_s=1.0, seed=seed, **overrides)


def overcommit(taus=(0.0, 0.75), guests=2, active=1, guest_mem="256MiB", ratio=1.43,
               mechanism="balloon", duration_s=300.0, seed=0, simulate=None, **overrides):
    """The ESX idle-tax scenario: memory split between busy and idle guests for each tau.

    Returns
    -------
    pandas.DataFrame
        ``OVERCOMMIT_COLUMNS``, one row per tau and guest: ``role`` (``active``/``idle``),
        ``memory_bytes`` the guest's memory minus its balloon and ``host_rss_bytes`` its host
        RSS, both averaged over the last third of the run, ``slowdown`` against the same run
        with the host never asking (:mod:`fphlib.api.asking`).
    """

    if simulate is None:  # the parameter shares the name
        from ..api.simulate import simulate
    rows = []
    base = None
    for tau in taus:
        cfg = overcommit_config(tau, guests, active, guest_mem, ratio, mechanism, duration_s,
                                seed, **overrides)
        res = simulate(cfg)
        if base is None:
            base = simulate(never_asking(cfg))
        table = per_guest(res, base)
        tail = res.guests[res.guests.t_s >= 2 * duration_s / 3].groupby("guest").mean()
        for g in range(guests):
            mem = res.guest_summary["mem_bytes"].iloc[g]
            rows.append(dict(
                tau=float(tau), guest=g, role="active" if g < active else "idle",
                memory_bytes=float(mem - tail.balloon_bytes.iloc[g]),
                host_rss_bytes=float(tail.rss_bytes.iloc[g]),
                balloon_bytes=float(tail.balloon_bytes.iloc[g]),
                swap_bytes=float(tail.swap_bytes.iloc[g]),
                slowdown=float(table.slowdown.iloc[g]),
                workload_ops=int(table.workload_ops.iloc[g])))
    return pd.DataFrame(rows, columns=list(OVERCOMMIT_COLUMNS))


def policy_grid(policies=None, guest_counts=(1, 2, 4), mechanism="balloon", guest_mem="256MiB",
                ratio=1.5, active_fraction=0.5, duration_s=30.0, seed=0, simulate=None,
                progress=False):
    """Guest count x policy: one row per run with the run metrics of
    :func:`fphlib.api.asking.run_metrics` (host RSS peak/mean, swap, OOM kills, mean/worst
    slowdown, Jain's index), and the per-guest tables (for "who paid" plots).

    Policies that cannot drive ``mechanism`` are skipped. Half the guests (by default) churn,
    the others touch most of their memory once and go idle.
    """

    if simulate is None:  # the parameter shares the name
        from ..api.simulate import simulate
    policies = [p for p in (policies or REGISTRY) if policy_allows(p, mechanism)]
    mem = parse_size(guest_mem, "guest_mem")
    ovh = SIZE_DEFAULTS["guest_overhead"][0]
    rows, tables = [], []
    for n in guest_counts:
        active = int(round(n * active_fraction))
        overrides = tuple(
            {"workload": "churn", "workload_params": {"target": 0.7, "ops_per_s": 20_000.0,
                                                      "boot": "16MiB"}} if g < active else
            {"workload": "memhog", "workload_params": {"size": int(mem * 0.7), "hold_s": 0.0,
                                                       "boot": "16MiB"}}
            for g in range(n))
        # host memory sized for the guests alone (no host reserve), as in overcommit_config
        kw = dict(host_mem=int(n * mem / ratio) + n * ovh, host_swap=n * mem // 2, guests=n,
                  guest_mem=mem, guest_overrides=overrides, mechanism=mechanism,
                  duration_s=duration_s, sample_s=0.5, seed=seed, host_reserve=0)
        base = simulate(never_asking(SimConfig(**kw)))
        for p in policies:
            res = simulate(SimConfig(**kw, policy=p, policy_params={"interval_s": 2.0}))
            table = per_guest(res, base)
            rows.append(dict(guests=n, policy=p, **run_metrics(res, table)))
            tables.append(table.assign(guests=n, policy=p))
    return pd.DataFrame(rows), pd.concat(tables, ignore_index=True) if tables else None
