"""What asking costs: per-guest and per-run metrics of a host policy (docs/design.md §3.5).

"Offering free pages will cause the guest some performance drop" (the seed thread): a guest
the host asks pays the hinting (or balloon) CPU, exits, and later refaults and swap-ins, and
its workload slows down. :func:`per_guest` tabulates that per guest (the tidy
``SimResult.per_guest``); :func:`fphlib.api.simulate.with_baseline` runs the same
configuration a second time with the host never asking (:func:`never_asking`) and adds each
guest's ``slowdown``;
:func:`run_metrics` gives the run's host RSS peak/mean, swap, OOM kills and Jain's fairness
index of the slowdowns.

Slowdown of guest g: ``workload_runtime_s / baseline workload_runtime_s`` when its workload
finishes in both runs (memhog, trace); otherwise the ratio of work done in the simulated time,
``baseline workload_ops / workload_ops`` (churn, or a memhog the run cut short); ``inf`` for a
guest OOM-killed in the run but not in the baseline; 1.0 for a guest that did no work in
either run (idle). The baseline is the same configuration (same seed, so the same workload
random streams) under policy ``static`` without a target: no ask is ever sent and hinting
stays on, so a reporting mechanism reports on its own as in mainline Linux and a balloon
never inflates.

Jain's fairness index (Jain, Chiu, Hawe, DEC-TR-301, 1984) of x_1..x_n:
``(sum x)^2 / (n sum x^2)``, 1 when all are equal, 1/n when one guest pays everything; over
the guests with a finite slowdown.
"""

import dataclasses

import numpy as np
import pandas as pd

PER_GUEST_COLUMNS = (
    "guest",
    "workload",
    "status",
    "asks",
    "asked_bytes",
    "hint_on_s",
    "returned_bytes",
    "hinting_cpu_s",
    "vmexits",
    "refault_pages",
    "refault_stall_s",
    "swap_in_pages",
    "swap_in_stall_s",
    "stall_s",
    "swap_out_bytes",
    "host_rss_mean_bytes",
    "host_rss_peak_bytes",
    "workload_runtime_s",
    "workload_ops",
    "slowdown",
)


def never_asking(cfg):
    """``cfg`` with a host that never asks (policy ``static`` without a target)."""
    return dataclasses.replace(cfg, policy="static", policy_params={}, balloon_target=None)


def jain_index(values):
    """Jain's fairness index of the finite ``values`` (NaN if there are none)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x) or not np.any(x):
        return float("nan")
    return float(x.sum() ** 2 / (len(x) * (x**2).sum()))


def _hint_on_s(res):
    """Seconds each guest had hinting on (from its start; hint_on/hint_off events)."""
    cfg = res.config
    gs = res.guest_summary
    out = np.zeros(cfg.guests)
    ev = res.events
    for g in range(cfg.guests):
        start = float(gs["start_s"].iloc[g])
        if start > cfg.duration_s or gs["status"].iloc[g] == "not_started":
            continue
        end = cfg.duration_s
        kills = ev[(ev.guest == g) & (ev.kind == "oom_kill")]
        if len(kills):
            end = float(kills.t_s.iloc[0])
        on, since, total = True, start, 0.0
        for t, kind in ev[(ev.guest == g) & ev.kind.isin(["hint_on", "hint_off"])][
                ["t_s", "kind"]].itertuples(index=False):
            t = min(max(float(t), start), end)
            if on and kind == "hint_off":
                total += t - since
                on = False
            elif not on and kind == "hint_on":
                since, on = t, True
        if on:
            total += end - since
        out[g] = total
    return out


def per_guest(res, baseline=None):
    """One row per guest: what the host asked of it and what that cost it.

    Parameters
    ----------
    res : SimResult
    baseline : SimResult, optional
        The same configuration with the host never asking (:func:`never_asking`); without
        it ``slowdown`` is NaN.

    Returns
    -------
    pandas.DataFrame
        Columns ``PER_GUEST_COLUMNS``: ``asked_bytes`` is the largest balloon size asked,
        ``asks`` the number of changed asks (balloon size or hinting on/off),
        ``returned_bytes`` the memory the host got back from the guest's hints/balloon and
        still has at the end (net: a page hinted again after a retouch counts once),
        ``hinting_cpu_s`` the guest CPU of the mechanism (and the refaults it caused),
        ``stall_s`` all workload stalls (faults, refaults, swap-ins).
    """
    gs = res.guest_summary
    G = len(gs)
    ev = res.events
    asks = ev[ev.kind.isin(["ask", "hint_on", "hint_off"])].groupby("guest").size()
    asked = ev[ev.kind == "ask"].groupby("guest")["value"].max()
    idx = np.arange(G)

    def col(name, default=0):
        return gs[name].to_numpy() if name in gs else np.full(G, default)

    df = pd.DataFrame({
        "guest": idx,
        "workload": gs["workload"].to_numpy(),
        "status": gs["status"].to_numpy(),
        "asks": asks.reindex(idx, fill_value=0).to_numpy().astype(np.int64),
        "asked_bytes": asked.reindex(idx, fill_value=0.0).to_numpy().astype(np.int64),
        "hint_on_s": _hint_on_s(res),
        "returned_bytes": col("returned_bytes"),
        "hinting_cpu_s": col("guest_cpu_overhead_s", 0.0),
        "vmexits": col("vmexits"),
        "refault_pages": col("refault_pages"),
        "refault_stall_s": col("refault_stall_s", np.nan),
        "swap_in_pages": col("swap_in_pages", -1),
        "swap_in_stall_s": col("swap_in_stall_s", np.nan),
        "stall_s": col("workload_stall_s", 0.0),
        "swap_out_bytes": col("swap_out_bytes"),
        "host_rss_mean_bytes": col("host_rss_mean_bytes", 0.0),
        "host_rss_peak_bytes": col("host_rss_peak_bytes"),
        "workload_runtime_s": col("workload_runtime_s", np.nan),
        "workload_ops": col("workload_ops", -1),
        "slowdown": slowdowns(res, baseline) if baseline is not None else np.full(G, np.nan),
    }, columns=list(PER_GUEST_COLUMNS))
    return df


def slowdowns(res, baseline):
    """Per-guest slowdown of ``res`` against ``baseline`` (see the module docstring)."""
    a, b = res.guest_summary, baseline.guest_summary
    if len(a) != len(b):
        raise ValueError("baseline: expected a run of the same guests "
                         f"({len(a)} guests, baseline has {len(b)})")
    out = np.ones(len(a))
    for g in range(len(a)):
        killed = a["status"].iloc[g] == "oom_killed"
        base_killed = b["status"].iloc[g] == "oom_killed"
        rt, brt = a["workload_runtime_s"].iloc[g], b["workload_runtime_s"].iloc[g]
        if killed and not base_killed:
            out[g] = np.inf
        elif np.isfinite(rt) and np.isfinite(brt) and brt > 0:
            out[g] = rt / brt
        else:
            ops, bops = a["workload_ops"].iloc[g], b["workload_ops"].iloc[g]
            out[g] = bops / ops if ops > 0 else (np.inf if bops > 0 else 1.0)
    return out


def run_metrics(res, table=None):
    """Per-run costs: host RSS peak/mean, swap peak and swapped out, OOM kills, asks, and the
    mean, worst and Jain's fairness index of the slowdowns (NaN without a baseline)."""
    table = per_guest(res) if table is None else table
    s = res.summary
    slow = table["slowdown"].to_numpy(dtype=float)
    finite = slow[np.isfinite(slow)]
    return {
        "host_rss_peak_bytes": float(s["host_rss_peak_bytes"]),
        "host_rss_mean_bytes": float(s["host_rss_mean_bytes"]),
        "swap_peak_bytes": float(res.host["swap_bytes"].max()),
        "swap_out_bytes": float(s["swap_out_bytes"]),
        "oom_kills": float(s["oom_kills"]),
        "asks": float(table["asks"].sum()),
        "returned_bytes": float(table["returned_bytes"].sum()),
        "mean_slowdown": float(finite.mean()) if len(finite) else float("nan"),
        "worst_slowdown": float(slow.max()) if len(slow) and not np.all(np.isnan(slow))
        else float("nan"),
        "jain_slowdown": jain_index(slow),
    }
