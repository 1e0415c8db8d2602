"""Policy ``"mom"``: oVirt MOM's balloon rules, exactly (docs/references.md
§9.3 and §7.2).

Sources: https://github.com/oVirt/mom/blob/master/doc/balloon.rules (``variant="doc"``) and
https://github.com/oVirt/vdsm/blob/master/static/etc/vdsm/mom.d/02-balloon.policy
(``variant="vdsm"``, **the default**: what oVirt ships). Every ``interval_s`` (10 s, the
policy engine interval) the host takes one sample of its free memory and of each guest's
balloon (``balloon_cur``, the balloon's ``actual`` guest size) and ``mem_unused`` (stats
MEMFREE), keeps the last ``sample-history-length`` = 10, and applies, with ``StatAvg`` the
mean of those samples (:func:`mom_target`):

    host_free      = StatAvg(host.mem_free) / host.mem_available
    guest_free_pct = host_free - 0.05            if host_free <= 0.05 (pressure_critical)
                   = 0.20 * host_free / 0.20     otherwise
    used           = StatAvg(balloon_cur) - StatAvg(mem_unused)
    shrink (host_free < 0.20): size = max(cur * 0.95, max(min, used + guest_free_pct * cur)),
                               applied if size <= cur and |size - cur| > 0.0025 cur
    grow (else, if cur < max): size = min(max(cur * 1.05, max(min, used + F * cur)), max),
                               F = 0.20 (doc) or guest_free_pct (vdsm); applied if the
                               change is > 0.0025 cur
    vdsm QoS: if cur < min: size = min

The target is sent as the balloon size ``mem - size``. ``min`` (vdsm ``memGuaranteedSize``)
and ``max`` per guest come from ``SimConfig.guest_overrides`` (default 0 and the guest's
memory). MOM sets balloon targets, so it is refused with mechanisms that have no balloon.

Simplifications: the host and guest monitors sample at the policy interval (MOM samples
every 5 s and runs the policy every 10 s); vdsm's ``balloonEnabled`` is taken as on; the host's
``mem_free`` has no buffers/cache (no host page cache in the model).
"""

import numpy as np

from ..._jit import borrowed, jit
from ...state.borrow import borrow_state
from ...state.layout import GI, HI, PI, PrivateState
from ...state.params import Param
from ...units import PAGE_SIZE
from .common import (
    INTERVAL,
    N_COMMON_INTS,
    check_drivable,
    guest_free_pages,
    host_free_pages,
    init_mode,
    running,
    set_ask,
)

NAME = "mom"
PARAMS = {
    "variant": Param("choice", "vdsm", unit="", help="the rules of vdsm's 02-balloon.policy "
                     "(default) or of MOM's doc/balloon.rules", choices=("vdsm", "doc")),
    "interval_s": INTERVAL,
}

# MOM balloon constants (doc/balloon.rules, vdsm 02-balloon.policy)
PRESSURE_THRESHOLD = 0.20
PRESSURE_CRITICAL = 0.05
MIN_GUEST_FREE_PERCENT = 0.20
MAX_BALLOON_CHANGE_PERCENT = 0.05
MIN_BALLOON_CHANGE_PERCENT = 0.0025
HISTORY = 10  # sample-history-length (doc/mom-balloon+ksm.conf)

# NHIST: samples taken of this guest; policy-wide HOSTN: samples of the host, HOST0...:
# HISTORY columns of host mem_free samples
MIN_PAGES, MAX_PAGES, VDSM, NHIST = range(N_COMMON_INTS, N_COMMON_INTS + 4)
CUR0 = 0  # HISTORY columns of balloon_cur samples (pages)
UNUSED0 = HISTORY  # HISTORY columns of mem_unused samples (pages)
(HOSTN,) = range(1)
HOST0 = 0
STATE = PrivateState(
    ints=("BY_PAGES", "MIN_PAGES", "MAX_PAGES", "VDSM", "NHIST"),
    floats=tuple(f"{k}{i}" for k in ("CUR", "UNUSED") for i in range(HISTORY)),
    shared_ints=("HOSTN",), shared_floats=tuple(f"HOST{i}" for i in range(HISTORY)),
)


def check(mechanism, mode, params):
    """MOM computes balloon sizes: only mechanisms that take a balloon size."""
    check_drivable(NAME, mechanism, mode, modes=("pages",))


def init_guest(params, cfg, g, ints, floats):
    init_mode(cfg, ints)
    spec = cfg.guest_spec(g)
    n = spec["mem"] // PAGE_SIZE
    ints[MIN_PAGES] = min(n, spec.get("min", 0) // PAGE_SIZE)
    ints[MAX_PAGES] = min(n, spec.get("max", spec["mem"]) // PAGE_SIZE)
    ints[VDSM] = int(params["variant"] == "vdsm")
    ints[NHIST] = 0
    floats[:] = 0.0


@jit
def mom_target(vdsm, host_free, cur, cur_avg, unused_avg, bmin, bmax):
    """The balloon rule for one guest: its new size (``balloon_cur`` target), or -1.0 for
    no change. Any unit (kB in MOM, pages here); ``host_free`` a fraction."""
    if host_free <= PRESSURE_CRITICAL:
        guest_free_pct = host_free - PRESSURE_CRITICAL  # negative: forces the guest to swap
    else:
        guest_free_pct = MIN_GUEST_FREE_PERCENT * host_free / PRESSURE_THRESHOLD
    used = cur_avg - unused_avg
    target = -1.0
    if host_free < PRESSURE_THRESHOLD:
        floor = max(bmin, used + guest_free_pct * cur)
        size = max(cur * (1.0 - MAX_BALLOON_CHANGE_PERCENT), floor)
        if size <= cur and abs(size - cur) > MIN_BALLOON_CHANGE_PERCENT * cur:
            target = size
    elif cur < bmax:
        free_pct = guest_free_pct if vdsm else MIN_GUEST_FREE_PERCENT
        floor = max(bmin, used + free_pct * cur)
        size = min(max(cur * (1.0 + MAX_BALLOON_CHANGE_PERCENT), floor), bmax)
        if abs(size - cur) > MIN_BALLOON_CHANGE_PERCENT * cur:
            target = size
    if vdsm and cur < bmin:
        target = bmin
    return target


@jit(inline="always")
def _avg(s, g, col0, n):
    total = 0.0
    for i in range(n):
        total += s.pol_f[g, col0 + i]
    return total / n


@jit
def step(s, now, cost):
    """Sample, then apply the balloon rule to every running guest."""
    s = borrow_state(s)
    cost = borrowed(cost)
    G = s.pi[PI.G]
    s.pol_sf[HOST0 + s.pol_si[HOSTN] % HISTORY] = host_free_pages(s)
    s.pol_si[HOSTN] += 1
    n_host = min(s.pol_si[HOSTN], HISTORY)
    total = 0.0
    for i in range(n_host):  # in order, as _avg
        total += s.pol_sf[HOST0 + i]
    host_free = total / n_host / s.hi[HI.RAM_PAGES]
    for g in range(G):
        if not running(s, g):
            continue
        npages = s.gi[g, GI.NPAGES]
        cur = np.float64(npages - s.gi[g, GI.BALLOON])
        k = s.pol_i[g, NHIST] % HISTORY
        s.pol_f[g, CUR0 + k] = cur
        s.pol_f[g, UNUSED0 + k] = guest_free_pages(s, g)
        s.pol_i[g, NHIST] += 1
        n = min(s.pol_i[g, NHIST], HISTORY)
        target = mom_target(s.pol_i[g, VDSM], host_free, cur, _avg(s, g, CUR0, n),
                            _avg(s, g, UNUSED0, n), np.float64(s.pol_i[g, MIN_PAGES]),
                            np.float64(s.pol_i[g, MAX_PAGES]))
        if target >= 0.0:
            set_ask(s, g, now, npages - np.int64(target), np.int64(1))
