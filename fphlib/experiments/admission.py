"""Guest admission: launch guests one after another until the host runs out of memory.

The experiment of Nitesh Narayan Lal's v8 cover letter (docs/references.md §2.1
and §8 #1): a host with 15837 MB of RAM and swap disabled runs 5 GB guests; in each guest a
program mallocs 4 GB, memsets it and exits; guests are launched one after another until one
is killed for low host memory. Published: **3 guests without hinting, 5 to 7 with hinting**
(:data:`PUBLISHED`).

Here guest ``i`` boots at ``i * interval_s`` (``SimConfig.guest_overrides[i]["start_s"]``) and
runs ``memhog`` once (touch ``size``, hold ``hold_s``, free, then idle). Without hinting the
host keeps backing every page a guest ever touched, so each guest costs the host its full
``size``; a mechanism that returns freed memory lets the host admit more guests.

Units: ``"15837MB"`` is read by :func:`fphlib.parse_size` as 15837 MiB (binary, as ``free -m``
and ``/proc/meminfo`` print it). That is also what the cover letter most likely quotes: a
16 GiB machine shows about 15837 MiB of MemTotal once the kernel has reserved its share,
whereas 15837 * 10**6 bytes (14.75 GiB) would be an odd figure for any common machine. The
default host is therefore :data:`V8_HOST_MEM` = 15837 MiB = 16 606 298 112 bytes; "5 GB"
guests and "4 GB" mallocs are read as GiB likewise (QEMU's ``-m 5G`` is 5 GiB). The count
without hinting does not depend on this choice: 3 guests fit either way and a 4th does not.
"""

import math

import numpy as np
import pandas as pd

from ..api.config import SimConfig, check_number
from ..api.simulate import simulate
from ..costs import HOST_RESERVE
from ..hinting import REGISTRY
from ..units import PAGE_SIZE, parse_size
from ..workloads import COMMON
from .scenarios import balloon_target_for, profile_name

V8_HOST_MEM = 15837 << 20  # "15837 MB" read as MiB (see the module docstring)

# Launch interval, one default for every mechanism (no per-mechanism tuning). A 4 GiB memhog
# at its default touch rate (~1.5 GB/s plus host faults) takes ~3-15 s, holds 1 s and frees
# in 0.5 s; free page reporting then starts 2 s later (PAGE_REPORTING_DELAY) and, with its
# per-pass budget of ceil(nr_free/512) + 1 reports of 32 blocks per free list, needs ~17 s
# to report the 4 GiB back (measured: a 5 GiB guest is down to its boot footprint 23 s after
# it started; the kernel's comment says an idle system is fully reported in ~30 s). The
# balloon's static policy re-sends its target every 10 s. 30 s leaves every mechanism time to
# return what it can before the next guest boots.
DEFAULT_INTERVAL_S = 30.0

# What happened to each guest by the end of the run.
FATES = ("oom_killed", "guest_oom", "done", "running", "not_started")

# Published admission counts: mechanism -> (low, high); docs/references.md §8 #1.
# "with hinting" is Nitesh's v8 (per-CPU capture arrays), the series the letter covers.
PUBLISHED = {"none": (3, 3), "hinting_v8": (5, 7)}
PUBLISHED_SOURCE = "Nitesh Narayan Lal, v8 cover letter, https://lkml.org/lkml/2019/2/4/993"

# Arguments the experiment sets itself: passing them through **overrides is an error.
_OWN = ("guests", "guest_overrides", "workload", "workload_params", "mechanism",
        "mechanism_params", "host_mem", "host_swap", "guest_mem", "seed", "duration_s",
        "sample_s")

COLUMNS = (
    "mechanism",
    "guest",
    "start_s",
    "workload_end_s",
    "killed_s",
    "fate",
    "host_rss_bytes",
    "swap_start_bytes",
    "swap_bytes",
    "admitted",
)

# FPHLIB_PROFILE sizes of the v8 scenario: "full" is the cover letter with the default guest
# (a distro guest's boot footprint: page cache, slab, anonymous memory; fphlib.workloads);
# "demo" and "smoke" scale host, guests, memhog, boot footprint and the host's own memory
# down by 4 and 16 (same ratios, so the same count without hinting).
_BOOT = COMMON["boot"].default
_SIZES = {
    "smoke": dict(host_mem=V8_HOST_MEM // 16, guest_mem="320MiB", size="256MiB",
                  boot=_BOOT // 16 // PAGE_SIZE * PAGE_SIZE,
                  host_reserve=HOST_RESERVE // 16 // PAGE_SIZE * PAGE_SIZE,
                  max_guests=8),
    "demo": dict(host_mem=V8_HOST_MEM // 4, guest_mem="1280MiB", size="1GiB",
                 boot=_BOOT // 4 // PAGE_SIZE * PAGE_SIZE,
                 host_reserve=HOST_RESERVE // 4 // PAGE_SIZE * PAGE_SIZE,
                 max_guests=12),
    "full": dict(host_mem=V8_HOST_MEM, guest_mem="5GiB", size="4GiB", boot=_BOOT,
                 host_reserve=HOST_RESERVE, max_guests=12),
}


def _fail(name, value, allowed):
    raise ValueError(f"{name}: {value!r} is not allowed; {allowed}")


def _registry():

    return tuple(REGISTRY)


def _mechanism(name, value):
    known = _registry()
    if not isinstance(value, str) or value not in known:
        _fail(name, value, f"known mechanisms: {', '.join(known)}")
    return value


def v8_admission_kwargs(profile=None):
    """Keyword arguments of :func:`admission` for the v8 scenario at a FPHLIB_PROFILE size.

    Parameters
    ----------
    profile : {"smoke", "demo", "full"}, optional
        Default: ``$FPHLIB_PROFILE``, else ``"demo"``. ``"full"`` is the cover letter (host
        15837 MiB, 5 GiB guests, memhog 4 GiB, the default boot footprint); ``"demo"`` and
        ``"smoke"`` divide every size by 4 and 16.

    Returns
    -------
    dict
        ``host_mem``, ``guest_mem``, ``size``, ``boot`` and ``max_guests``.
    """

    return dict(_SIZES[profile_name(profile)])


def _balloon_target(mechanism, overrides, guest_mem, boot):
    """Give a balloon run the headline target unless the caller set one."""
    if mechanism != "balloon" or overrides.get("balloon_target") is not None:
        return overrides
    policy = overrides.get("policy", "static")
    if policy != "static" or "target" in (overrides.get("policy_params") or {}):
        return overrides

    return {**overrides, "balloon_target": balloon_target_for(guest_mem, boot)}


def admission_config(mechanism="none", host_mem=V8_HOST_MEM, guest_mem="5GiB", size="4GiB",
                     interval_s=DEFAULT_INTERVAL_S, max_guests=12, host_swap=0,
                     mechanism_params=None, seed=0, *, boot=None, hold_s=1.0, rate=None,
                     sample_s=0.5, settle_s=None, **overrides):
    """The :class:`fphlib.SimConfig` of one admission run (see :func:`admission`)."""

    mechanism = _mechanism("mechanism", mechanism)
    interval_s = check_number("interval_s", interval_s, lo=0, lo_open=True)
    max_guests = check_number("max_guests", max_guests, lo=1, hi=256, integer=True)
    settle_s = interval_s if settle_s is None else check_number("settle_s", settle_s, lo=0)
    hold_s = check_number("hold_s", hold_s, lo=0)
    for key in overrides:
        if key in _OWN:
            _fail(key, overrides[key], "admission() sets it itself; use its own arguments "
                  "(host_mem, guest_mem, size, max_guests, interval_s, settle_s, sample_s, ...)")
    size = parse_size(size, "size")
    if size <= 0:
        _fail("size", size, "memhog must touch > 0 bytes, e.g. '4GiB'")
    boot = COMMON["boot"].default if boot is None else parse_size(boot, "boot")
    params = {"size": size, "boot": boot, "hold_s": hold_s, "repeat": 1}
    if rate is not None:
        params["rate"] = rate
    duration = (max_guests - 1) * interval_s + max(settle_s, sample_s)
    overrides = _balloon_target(mechanism, overrides, guest_mem, boot)
    return SimConfig(
        host_mem=host_mem,
        host_swap=host_swap,
        guests=max_guests,
        guest_mem=guest_mem,
        workload="memhog",
        workload_params=params,
        mechanism=mechanism,
        mechanism_params=mechanism_params or {},
        duration_s=duration,
        sample_s=sample_s,
        seed=seed,
        guest_overrides=tuple({"start_s": i * interval_s} for i in range(max_guests)),
        **overrides,
    )


def _at(host, t, column):
    """``host[column]`` at the last sample taken at or before time t."""
    i = int(np.searchsorted(host["t_s"].to_numpy(), t + 1e-9, side="right")) - 1
    return int(host[column].iloc[max(i, 0)])


def admission_frame(res, interval_s):
    """The tidy per-guest frame of a finished admission run ``res`` (see :func:`admission`)."""
    cfg = res.config
    gs = res.guest_summary
    ev = res.events
    host = res.host
    kills = ev[ev["kind"] == "oom_kill"]
    swapped = host[host["swap_bytes"] > 0]
    t_kill = float(kills["t_s"].min()) if len(kills) else math.inf
    t_swap = float(swapped["t_s"].iloc[0]) if len(swapped) else math.inf
    t_fail = min(t_kill, t_swap)
    starts = np.array([cfg.guest_spec(g)["start_s"] for g in range(cfg.guests)])
    if math.isfinite(t_fail):
        # the failure belongs to the most recent launch: that guest is not admitted
        admitted = max(int(np.searchsorted(starts, t_fail, side="right")) - 1, 0)
        failure = "oom_kill" if t_kill <= t_swap else "swap"
    else:
        admitted, failure = cfg.guests, None
    rows = []
    duration = cfg.duration_s
    for g in range(cfg.guests):
        mine = ev[ev["guest"] == g]
        end = mine.loc[mine["kind"] == "workload_end", "t_s"]
        killed = mine.loc[mine["kind"] == "oom_kill", "t_s"]
        status = gs.loc[gs["guest"] == g, "status"].iloc[0]
        if status == "oom_killed":
            fate = "oom_killed"
        elif status == "not_started":
            fate = "not_started"
        elif (mine["kind"] == "guest_alloc_failure").any():
            fate = "guest_oom"
        elif len(end):
            fate = "done"
        else:
            fate = "running"
        slot_end = starts[g + 1] if g + 1 < cfg.guests else duration
        rows.append({
            "mechanism": cfg.mechanism,
            "guest": g,
            "start_s": float(starts[g]),
            "workload_end_s": float(end.iloc[0]) if len(end) else math.nan,
            "killed_s": float(killed.iloc[0]) if len(killed) else math.nan,
            "fate": fate,
            # host state just before the next launch (or at the end of the run)
            "host_rss_bytes": _at(host, slot_end - 1e-6, "rss_bytes"),
            "swap_start_bytes": _at(host, float(starts[g]), "swap_bytes"),
            "swap_bytes": _at(host, slot_end - 1e-6, "swap_bytes"),
            "admitted": g < admitted,
        })
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df.attrs.update({
        "mechanism": cfg.mechanism,
        "admitted": int(admitted),
        "capped": failure is None,
        "failure": failure,
        "first_failure_s": t_fail if math.isfinite(t_fail) else None,
        "max_guests": int(cfg.guests),
        "interval_s": float(interval_s),
        "host_mem": int(cfg.host_mem),
        "guest_mem": int(cfg.guest_mem),
        "size": int(cfg.workload_params["size"]),
        "oom_kills": int(len(kills)),
        "wall_s": float(res.summary["wall_s"]),
    })
    return df


def admission(mechanism="none", host_mem=V8_HOST_MEM, guest_mem="5GiB", size="4GiB",
              interval_s=DEFAULT_INTERVAL_S, max_guests=12, host_swap=0, mechanism_params=None,
              seed=0, *, boot=None, hold_s=1.0, rate=None, sample_s=0.5, settle_s=None,
              return_result=False, progress=False, **overrides):
    """Launch guests one after another; count those admitted before a kill or swap.

    Guest ``i`` boots at ``i * interval_s`` and runs ``memhog`` once: it touches ``size`` bytes
    (at ``rate``), holds them ``hold_s``, frees them and idles. The run lasts
    ``(max_guests - 1) * interval_s + settle_s``. Counting stops at the first host OOM kill
    (event ``oom_kill``) or the first sample with host swap in use (``res.host.swap_bytes >
    0``), whichever comes first; the failure is blamed on the most recent launch, so
    **admitted = the guests launched before that launch** (the v8 letter's "3 guests
    without hinting" = the 4th launch gets one killed). The host's OOM killer picks the
    guest with the largest RSS + swap, which is usually an older guest, not the newest.
    Without a failure, all ``max_guests`` are admitted and ``attrs["capped"]`` is True
    (the real limit is higher: raise ``max_guests``).

    Parameters
    ----------
    mechanism : str
        A registered mechanism (``fphlib.hinting.REGISTRY``).
    host_mem : int or str
        Host RAM; default :data:`V8_HOST_MEM` (15837 MiB; ``"15837MB"`` parses to the same).
    guest_mem : int or str
        RAM of every guest (whole 4 MiB blocks).
    size : int or str
        Bytes memhog touches in each guest (the letter's "malloc 4 GB + memset").
    interval_s : float
        Seconds between launches; :data:`DEFAULT_INTERVAL_S` (30 s) for every mechanism
        (enough for a 4 GiB memhog plus free page reporting's drain). Keep it longer than the
        memhog itself, or a failure may be blamed on the wrong launch.
    max_guests : int
        Guests to launch at most (1..256).
    host_swap : int or str
        Host swap; the letter's host had none (0): the first shortage is an OOM kill.
    mechanism_params : dict, optional
        ``SimConfig.mechanism_params`` of ``mechanism``.
    seed : int
    boot : int or str, optional
        Boot footprint of each guest (default: the workload default, 256 MiB).
    hold_s : float
        Seconds memhog holds its memory before exiting (the letter's program exits at once).
    rate : int or str, optional
        memhog first-touch rate in bytes/s (default 1 GiB/s).
    sample_s : float
        Sampling period of the time series (swap detection works at this resolution).
    settle_s : float, optional
        Time after the last launch (default ``interval_s``).
    return_result : bool
        Also return the :class:`fphlib.SimResult` of the run.
    progress : bool
        Show a progress bar over simulated time.
    **overrides
        Any other :class:`fphlib.SimConfig` field (``hint_order``, ``vcpus``, ``host_thp``,
        ``costs``, ``policy``, ``balloon_target``, ...). For ``mechanism="balloon"`` with no
        target given, the static policy gets the headline target
        (:func:`fphlib.experiments.scenarios.balloon_target_for`: boot footprint + 20 % of
        the guest): without a target a balloon never inflates and behaves like ``none``.

    Returns
    -------
    pandas.DataFrame
        One row per launched guest, columns :data:`COLUMNS`: ``mechanism``, ``guest``,
        ``start_s``, ``workload_end_s`` (NaN if memhog did not finish), ``killed_s`` (NaN if
        not killed), ``fate`` (one of :data:`FATES`: ``oom_killed`` by the host,
        ``guest_oom`` (memhog hit an allocation failure inside the guest and stopped),
        ``done``, ``running``, ``not_started``), ``host_rss_bytes`` and ``swap_bytes`` (host
        RSS and swap in use just before the next launch, or at the end for the last guest),
        ``swap_start_bytes`` (host swap in use when the guest booted) and ``admitted`` (bool:
        counted). ``df.attrs`` holds ``admitted`` (int, = ``df["admitted"].sum()``),
        ``capped``, ``failure`` (``"oom_kill"``, ``"swap"`` or None), ``first_failure_s``,
        ``oom_kills``, ``max_guests``, ``interval_s``, sizes in bytes and ``wall_s``. With
        ``return_result=True``: ``(df, SimResult)``.

    Raises
    ------
    ValueError
        Naming the argument: unknown mechanism, bad sizes or counts, or an override of a field
        the experiment sets itself (``guests``, ``workload``, ``duration_s``, ...).
    """

    cfg = admission_config(mechanism, host_mem, guest_mem, size, interval_s, max_guests,
                           host_swap, mechanism_params, seed, boot=boot, hold_s=hold_s,
                           rate=rate, sample_s=sample_s, settle_s=settle_s, **overrides)
    res = simulate(cfg, progress=progress)
    df = admission_frame(res, interval_s)
    return (df, res) if return_result else df


def admission_table(mechanisms=None, progress=False, mechanism_params=None, return_guests=False,
                    **kw):
    """Run :func:`admission` under several mechanisms; one row per mechanism.

    Parameters
    ----------
    mechanisms : iterable of str, optional
        Default: every registered mechanism (``fphlib.hinting.REGISTRY``), in registry order.
    progress : bool
        A ``tqdm.auto`` bar over the mechanisms.
    mechanism_params : dict, optional
        ``{mechanism: params}`` for the mechanisms that need non-default parameters.
    return_guests : bool
        Also return the per-guest frames of every run stacked (tidy, with a ``mechanism``
        column).
    **kw
        Arguments of :func:`admission` shared by every run (sizes, ``interval_s``,
        ``max_guests``, ``hint_order``, ...).

    Returns
    -------
    pandas.DataFrame
        Columns ``mechanism``, ``admitted``, ``capped`` (no failure within ``max_guests``:
        the true count is higher), ``failure``, ``first_failure_s``, ``oom_kills``,
        ``max_guests``, ``published_low``, ``published_high`` (:data:`PUBLISHED`, NaN where
        nothing was published) and ``wall_s``. With ``return_guests=True``:
        ``(table, guests)``.
    """
    if "mechanism" in kw:
        _fail("mechanism", kw["mechanism"], "admission_table() runs every mechanism in "
              "`mechanisms`; pass mechanisms=[...]")
    names = _registry() if mechanisms is None else tuple(mechanisms)
    if isinstance(mechanisms, str) or not names:
        _fail("mechanisms", mechanisms, "expected a non-empty list of mechanism names")
    for i, name in enumerate(names):
        _mechanism(f"mechanisms[{i}]", name)
    params = mechanism_params or {}
    if not isinstance(params, dict):
        _fail("mechanism_params", params, "expected a dict {mechanism: params}")
    iterator = names
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(names, desc="admission", unit="mechanism")
    rows, frames = [], []
    for name in iterator:
        df = admission(name, mechanism_params=params.get(name), **kw)
        a = df.attrs
        low, high = PUBLISHED.get(name, (math.nan, math.nan))
        rows.append({
            "mechanism": name,
            "admitted": a["admitted"],
            "capped": a["capped"],
            "failure": a["failure"],
            "first_failure_s": math.nan if a["first_failure_s"] is None
            else a["first_failure_s"],
            "oom_kills": a["oom_kills"],
            "max_guests": a["max_guests"],
            "published_low": low,
            "published_high": high,
            "wall_s": a["wall_s"],
        })
        frames.append(df)
    table = pd.DataFrame(rows)
    if not return_guests:
        return table
    for df in frames:
        df.attrs = {}  # per-run attrs do not describe the stacked frame
    return table, pd.concat(frames, ignore_index=True)
