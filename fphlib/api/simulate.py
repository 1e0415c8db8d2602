"""``simulate(cfg) -> SimResult``: build the arrays, run the jitted loop, tidy the output."""

import signal
import threading
import time

import numpy as np
import pandas as pd

from ..costs import INDEX
from ..engine.build import build_state, give_back_page_arrays
from ..engine.check import INVARIANTS, InvariantError
from ..engine.loop import run_chunk
from ..guest.xbitmap import COUNTERS as XB_COUNTERS
from ..host.migration import migration_summary
from ..state import layout as L
from ..units import PAGE_SIZE
from ..workloads import workload_runtime_s
from .asking import never_asking, per_guest, run_metrics
from .config import SimConfig
from .result import EVENT_COLUMNS, GUEST_COLUMNS, HOST_COLUMNS, SUMMARY_METRICS, SimResult

_STATUS = {L.ST_WAITING: "not_started", L.ST_RUNNING: "running", L.ST_KILLED: "oom_killed"}


def simulate(cfg, progress=False):
    """Run one simulation.

    Parameters
    ----------
    cfg : SimConfig
    progress : bool
        Show a ``tqdm.auto`` bar over simulated time (the loop runs in chunks).

    Returns
    -------
    SimResult

    Raises
    ------
    ValueError
        If ``cfg`` is not a SimConfig.
    fphlib.engine.check.InvariantError
        With ``debug=True``, at the first violated invariant (guest, time, invariant).
    KeyboardInterrupt
        On Ctrl-C, within a fraction of a second (the loop runs in short chunks).

    Notes
    -----
    The process keeps the per-page arrays of the last run (10 bytes per guest page: 2.5 GiB
    for 1 TiB of guests) and its workloads' pool of held blocks (4 bytes per slot: 0.6 GiB for
    the 64 x 16 GiB churn), and the next run of the same sizes refills them in place instead of
    mapping fresh memory; ``fphlib.engine.build.release_page_arrays()`` frees them.
    """
    cfg = _revalidated(cfg)
    with _CtrlC() as ctrl_c:
        return _simulate(cfg, progress, ctrl_c)


class _CtrlC:
    """Ctrl-C during a run as a flag, raised as ``KeyboardInterrupt`` between chunks.

    Python raises ``KeyboardInterrupt`` at whatever bytecode runs when SIGINT arrives; in a
    finalizer (a temporary directory, a numba object being collected) it is printed and lost,
    and the run went on to its end. With this handler (main thread only) no Ctrl-C is lost.
    """

    def __enter__(self):
        self.hit = False
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        self.hit = True

    def check(self):
        if self.hit:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
        return False


def _simulate(cfg, progress, ctrl_c):
    t0 = time.perf_counter()
    s, info = build_state(cfg, reuse=True)
    ctrl_c.check()
    last = info["n_ticks"] + 1  # the final tick only samples
    # Chunks of about CHUNK_WALL_S of work: Ctrl-C is seen between two chunks (Python raises
    # KeyboardInterrupt as soon as the jitted call returns), and a bar moves smoothly.
    chunk = max(1, -(-last // 100)) if progress else 1000
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=info["n_ticks"], unit="sim s", unit_scale=info["dt"], desc=cfg.mechanism
        )
    try:
        tick0 = 0
        while tick0 < last:
            tick1 = min(tick0 + chunk, last)
            c0 = time.perf_counter()
            ctrl_c.check()
            if run_chunk(s, tick0, tick1):
                _raise_violation(s, info)
            if bar is not None:
                bar.update(min(tick1, info["n_ticks"]) - min(tick0, info["n_ticks"]))
            elif tick0 > 0:  # not the first chunk: it may include compiling
                took = time.perf_counter() - c0
                chunk = int(min(max(chunk * CHUNK_WALL_S / max(took, 1e-6), 1), chunk * 4))
            tick0 = tick1
    finally:
        if bar is not None:
            bar.close()
    result = _result(cfg, s, info, time.perf_counter() - t0)
    give_back_page_arrays(s)  # the result holds copies, nothing of the per-page arrays
    return result


CHUNK_WALL_S = 0.1  # wall time per jitted chunk: the delay before Ctrl-C takes effect


def _revalidated(cfg):
    """``cfg`` checked again from its fields: the engine trusts every value it gets, so a
    config edited after validation (``object.__setattr__``) is refused, not run."""
    import warnings

    if not isinstance(cfg, SimConfig):
        raise ValueError(f"cfg: expected a SimConfig, got {type(cfg).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warned about when cfg was built
        again = SimConfig.from_dict(cfg.to_dict())
    if again != cfg:
        raise ValueError("cfg: changed after validation; build it with SimConfig(...) or "
                         "dataclasses.replace")
    return again


def _raise_violation(s, info):
    code, g, k, detail = (int(x) for x in s.err[:4])
    t = k * info["every"] * info["dt"]
    who = f"guest {g}" if g >= 0 else "host"
    raise InvariantError(
        f"{who} at t={t:g} s: invariant {code} violated: {INVARIANTS.get(code, '?')} "
        f"(detail {detail})"
    )


def _result(cfg, s, info, wall):
    G = cfg.guests
    dt = info["dt"]
    t_s = np.arange(info["n_samples"]) * info["every"] * dt
    host = pd.DataFrame(
        {
            "t_s": t_s,
            "rss_bytes": s.rec_h[:, L.RH.RSS].astype(np.int64),
            "swap_bytes": s.rec_h[:, L.RH.SWAP].astype(np.int64),
            "free_bytes": s.rec_h[:, L.RH.FREE].astype(np.int64),
        },
        columns=list(HOST_COLUMNS),
    )
    rec = s.rec_g
    cols = {
        "t_s": np.repeat(t_s, G),
        "guest": np.tile(np.arange(G, dtype=np.int64), len(t_s)),
    }
    for name, idx in (
        ("rss_bytes", L.RG.RSS),
        ("free_bytes", L.RG.FREE),
        ("reported_bytes", L.RG.REPORTED),
        ("isolated_bytes", L.RG.ISOLATED),
        ("used_bytes", L.RG.USED),
        ("pcp_bytes", L.RG.PCP),
        ("balloon_bytes", L.RG.BALLOON),
        ("swap_bytes", L.RG.SWAP),
        ("reported_free_bytes", L.RG.REPORTED_FREE),
        ("page_cache_bytes", L.RG.PAGE_CACHE),
        ("slab_bytes", L.RG.SLAB),
        ("guest_swap_bytes", L.RG.GUEST_SWAP),
        ("returned_bytes", L.RG.RETURNED),
    ):
        cols[name] = rec[:, :, idx].reshape(-1).astype(np.int64)
    guests = pd.DataFrame(cols, columns=list(GUEST_COLUMNS))

    n_ev = int(s.hi[L.HI.NEV])
    ev = s.ev[:n_ev]
    events = pd.DataFrame(
        {
            "t_s": ev[:, 0],
            "guest": ev[:, 1].astype(np.int64),
            "kind": [L.EVENT_KINDS.get(int(k), "?") for k in ev[:, 2]],
            "value": ev[:, 3],
        },
        columns=list(EVENT_COLUMNS),
    )

    gi, gf = s.gi, s.gf
    lock_s = s.cost[INDEX["zone_lock"]]
    # the free-page xbitmap's work under zone->lock (mechanisms that track free pages)
    meta = s.xb_meta
    xb_ops = sum(meta[:, XB_COUNTERS[k]] for k in ("set_bit", "clear_bit", "zero", "fill", "find"))
    xb_kmallocs = sum(meta[:, XB_COUNTERS[k]] for k in ("leaf_allocs", "node_allocs"))
    # each workload's own measure where it has one (memhog: the time spent touching)
    runtime = np.array([workload_runtime_s(s, g, cfg.guest_spec(g)["workload"])
                        for g in range(cfg.guests)], np.float64)
    killed = gi[:, L.GI.STATUS] == L.ST_KILLED
    runtime = np.where(killed, np.nan, runtime)
    final_rss = rec[-1, :, L.RG.RSS]
    gs = pd.DataFrame(
        {
            "guest": np.arange(G, dtype=np.int64),
            "mem_bytes": gi[:, L.GI.NPAGES] * PAGE_SIZE,
            "workload": [cfg.guest_spec(g)["workload"] for g in range(G)],
            "start_s": gf[:, L.GF.START],
            "status": [_STATUS[int(x)] for x in gi[:, L.GI.STATUS]],
            # per guest from the samples (the run's peak is exact, tracked at every fault)
            "host_rss_peak_bytes": rec[:, :, L.RG.RSS].max(axis=0).astype(np.int64),
            "host_rss_mean_bytes": rec[:, :, L.RG.RSS].mean(axis=0),
            "host_rss_final_bytes": final_rss.astype(np.int64),
            "reported_bytes": gi[:, L.GI.REPORTED_PAGES] * PAGE_SIZE,
            "returned_bytes": gi[:, L.GI.RETURNED] * PAGE_SIZE,
            "reports": gi[:, L.GI.REPORTS] + gi[:, L.GI.BALLOON_MSGS],
            "vmexits": gi[:, L.GI.VMEXITS],
            "refault_pages": gi[:, L.GI.REFAULTS],
            "alloc_failures": gi[:, L.GI.ALLOC_FAIL],
            "lost_writes": gi[:, L.GI.LOST],
            "guest_cpu_overhead_s": gf[:, L.GF.GUEST_CPU],
            "host_cpu_s": gf[:, L.GF.HOST_CPU],
            "swap_out_bytes": gi[:, L.GI.SWAPOUT] * PAGE_SIZE,
            "oom_kills": killed.astype(np.int64),
            "workload_runtime_s": runtime,
            "workload_stall_s": gf[:, L.GF.STALL],
            "refault_stall_s": gf[:, L.GF.REFAULT_STALL],
            "swap_in_pages": gi[:, L.GI.SWAPINS],
            "swap_in_stall_s": gf[:, L.GF.SWAPIN_STALL],
            "reclaim_stall_s": gf[:, L.GF.RECLAIM_STALL],
            # workload allocations and frees (events minus reports and balloon messages)
            "workload_ops": gi[:, L.GI.EVENTS] - gi[:, L.GI.REPORTS] - gi[:, L.GI.BALLOON_MSGS],
            "zone_lock_hold_s": gi[:, L.GI.LOCK_OPS] * lock_s
            + xb_ops * s.cost[INDEX["xbitmap_op"]],
            "events": gi[:, L.GI.EVENTS] + gi[:, L.GI.FAULTS],
            "faults": gi[:, L.GI.FAULTS],
            "balloon_msgs": gi[:, L.GI.BALLOON_MSGS],
            "oom_deflates": gi[:, L.GI.OOM_DEFLATES],
            # host THPs of the guest split: by a discard of part of one (hints below the
            # THP's order) or to swap it per 4 KiB
            "thp_splits": gi[:, L.GI.THP_SPLITS],
            "stale_hints": gi[:, L.GI.STALE_HINTS],
            "asks_unanswered": gi[:, L.GI.ASKS_UNANSWERED],
            "lazyfree_bytes": gi[:, L.GI.LAZYFREE] * PAGE_SIZE,
            "lazyfreed_bytes": gi[:, L.GI.LAZYFREED] * PAGE_SIZE,
            "early_discards": gi[:, L.GI.DQ_EARLY],
            "xbitmap_ops": xb_ops,
            "xbitmap_kmallocs": xb_kmallocs,
            # guest memory beyond anonymous pages (fphlib.guest.reclaim)
            "page_cache_dropped_bytes": gi[:, L.GI.PC_DROPPED] * PAGE_SIZE,
            "writeback_bytes": gi[:, L.GI.WRITEBACK] * PAGE_SIZE,
            "guest_swap_out_bytes": gi[:, L.GI.GSWAPOUT] * PAGE_SIZE,
            "guest_swap_in_bytes": gi[:, L.GI.GSWAPIN] * PAGE_SIZE,
            "kswapd_wakes": gi[:, L.GI.KSWAPD_WAKES],
            "direct_reclaims": gi[:, L.GI.DIRECT_RECLAIMS],
            "guest_reclaim_stall_s": gf[:, L.GF.GUEST_RECLAIM_STALL],
            "kswapd_cpu_s": gf[:, L.GF.KSWAPD_CPU],
        }
    )
    summed = (
        "reported_bytes returned_bytes reports vmexits refault_pages alloc_failures lost_writes "
        "guest_cpu_overhead_s swap_out_bytes zone_lock_hold_s events"
    ).split()
    summary = {m: float(gs[m].sum()) for m in summed}
    summary["host_rss_peak_bytes"] = float(s.hi[L.HI.RSS_PEAK] * PAGE_SIZE)
    summary["host_rss_mean_bytes"] = float(host["rss_bytes"].mean())
    summary["host_rss_final_bytes"] = float(host["rss_bytes"].iloc[-1])
    summary["host_cpu_s"] = float(s.hf[L.HF.CPU])
    summary["oom_kills"] = float(s.hi[L.HI.OOM_KILLS])
    finished = runtime[~np.isnan(runtime)]
    summary["workload_runtime_s"] = float(finished.mean()) if len(finished) else float("nan")
    summary["events"] += float(n_ev + s.hi[L.HI.NEV_LOST])
    summary["wall_s"] = float(wall)
    summary.update(migration_summary(s))
    series = pd.Series({m: summary[m] for m in SUMMARY_METRICS}, dtype="float64")
    return SimResult(
        summary=series, guest_summary=gs, host=host, guests=guests, events=events, config=cfg
    )


def with_baseline(cfg, simulate=simulate):
    """Run ``cfg`` and its never-asking twin (:func:`fphlib.api.asking.never_asking`); return
    ``(res, baseline, per_guest table, run metrics)``."""
    res = simulate(cfg)
    base = simulate(never_asking(cfg))
    table = per_guest(res, base)
    return res, base, table, run_metrics(res, table)
