"""Policy ``"idle_tax"``: ESX's idle memory tax on top of min-funding revocation.

Waldspurger, OSDI 2002 §5.2-5.3 (docs/references.md §9.1): memory is taken
from the guest with the lowest adjusted shares-per-page ratio
rho = S / (P (f + k (1 - f))), k = 1 / (1 - tau), so idle pages cost a guest k times as many
shares as active ones; ``tau`` defaults to 0.75 (``Mem.IdleTax``, k = 4), tau = 0 is pure
proportional share. Shares, min and max per guest as in :mod:`.proportional_share`.

Active fraction f, as ESX measures it (§5.3): every ``sample_s`` (30 s) the host picks
:data:`N_SAMPLE` = 100 random pages the guest holds (backed), invalidates them - here: clears
their accessed bit ``PG_REFERENCED``, the bit a guest write sets (``fphlib.host.backing``) -
and at the end of the period counts the t pages touched again: f = t / n. Three estimates are
kept, a slow and a fast exponentially weighted moving average of the periods' f and the fast
one including the current period's pages touched so far, and the maximum is used, so that the
estimate rises quickly and decays slowly.

Simplifications: the sampler shares the accessed bit with the host's reclaim clock (one EPT
accessed bit per page, as in KVM; reclaim clearing it hides a touch, so under host swapping f
is underestimated); sampling time is simulated time, not VM execution time; the EWMA gains
(:data:`FAST_GAIN`, :data:`SLOW_GAIN`) are not given in the paper and are this model's choice;
estimates start at 0 (a new guest counts as idle until its first period ends); a page the
guest never touched (not backed) is not sampled.
"""

import numpy as np

from ..._jit import borrowed, jit
from ...state.borrow import borrow_state
from ...state.layout import GI, PG_REFERENCED, PI, PrivateState
from ...state.params import Param
from ...state.zone import PG_BACKED
from .common import (
    QUANTUM,
    QUANTUM_SHARED_FLOATS,
    QUANTUM_SHARED_INTS,
    TARGET_FREE,
    check_drivable,
    init_quantum,
    lcg_next,
    lcg_seed,
    running,
)
from .esx import ESX_FLOATS, ESX_INTERVAL, ESX_INTS, N_ESX_FLOATS, N_ESX_INTS, init_esx, revoke

NAME = "idle_tax"
PARAMS = {
    "tau": Param("float", 0.75, 0.0, 0.99, "", "idle memory tax rate (ESX Mem.IdleTax "
                 "75 %); 0 = pure proportional share"),
    "sample_s": Param("float", 30.0, 1e-3, 86400.0, "s", "active-memory sampling period "
                      "(ESX: 100 pages per 30 s)"),
    "interval_s": ESX_INTERVAL,
    "quantum": QUANTUM,
    "target_free": TARGET_FREE,
}

N_SAMPLE = 100  # pages sampled per period (ESX default, §5.3)
FAST_GAIN = 0.5  # weight of the newest period in the fast EWMA (model choice)
SLOW_GAIN = 0.125  # ... in the slow EWMA (model choice)
NOT_REFERENCED = ~PG_REFERENCED

RNG, HAVE = range(N_ESX_INTS, N_ESX_INTS + 2)
SAMPLE0 = N_ESX_INTS + 2  # N_SAMPLE columns of sampled global page indices (-1: none)
SLOW, FAST, PERIOD_END, PERIOD = range(N_ESX_FLOATS, N_ESX_FLOATS + 4)
TAU = len(QUANTUM_SHARED_FLOATS)  # policy-wide, after the quantum policies' target


def init_shared(params, cfg, ints, floats):
    init_quantum(params, cfg, ints, floats)
    floats[TAU] = params["tau"]


STATE = PrivateState(
    ints=ESX_INTS + ("RNG", "HAVE") + tuple(f"SAMPLE{i}" for i in range(N_SAMPLE)),
    floats=ESX_FLOATS + ("SLOW", "FAST", "PERIOD_END", "PERIOD"),
    shared_ints=QUANTUM_SHARED_INTS, shared_floats=QUANTUM_SHARED_FLOATS + ("TAU",),
    shared_init=init_shared,
)


def check(mechanism, mode, params):
    check_drivable(NAME, mechanism, mode)


def init_guest(params, cfg, g, ints, floats):
    init_esx(params, cfg, g, ints, floats)
    ints[RNG] = lcg_seed(cfg.seed, g)
    ints[HAVE] = 0
    ints[SAMPLE0:SAMPLE0 + N_SAMPLE] = -1
    floats[SLOW] = floats[FAST] = 0.0
    floats[PERIOD_END] = 0.0
    floats[PERIOD] = params["sample_s"]


@jit(inline="always")
def ewma(old, new, gain):
    return old + gain * (new - old)


@jit
def start_period(s, g, now):
    """Pick up to N_SAMPLE random backed pages of guest g and clear their accessed bits."""
    s = borrow_state(s)
    off = s.gi[g, GI.OFF]
    n = s.gi[g, GI.NPAGES]
    st = s.pol_i[g, RNG]
    k = 0
    for _ in range(4 * N_SAMPLE):
        if k == N_SAMPLE:
            break
        st = lcg_next(st)
        p = off + st % n
        if s.flags[p] & PG_BACKED:
            s.flags[p] &= NOT_REFERENCED  # ESX: invalidate the page's mappings
            s.pol_i[g, SAMPLE0 + k] = p
            k += 1
    for i in range(k, N_SAMPLE):
        s.pol_i[g, SAMPLE0 + i] = -1
    s.pol_i[g, RNG] = st
    s.pol_i[g, HAVE] = 1
    s.pol_f[g, PERIOD_END] = now + s.pol_f[g, PERIOD]


@jit
def touched_fraction(s, g):
    """t / n of the current period so far (0 without sampled pages)."""
    s = borrow_state(s)
    t = 0
    n = 0
    for i in range(N_SAMPLE):
        p = s.pol_i[g, SAMPLE0 + i]
        if p >= 0:
            n += 1
            if s.flags[p] & PG_REFERENCED:
                t += 1
    return t / n if n else 0.0


@jit
def active_fraction(s, g, now):
    """Advance guest g's sampler to ``now``; return its estimate max(slow, fast, current)."""
    s = borrow_state(s)
    if not s.pol_i[g, HAVE]:
        start_period(s, g, now)
    elif now >= s.pol_f[g, PERIOD_END]:
        f = touched_fraction(s, g)
        s.pol_f[g, SLOW] = ewma(s.pol_f[g, SLOW], f, SLOW_GAIN)
        s.pol_f[g, FAST] = ewma(s.pol_f[g, FAST], f, FAST_GAIN)
        start_period(s, g, now)
    current = ewma(s.pol_f[g, FAST], touched_fraction(s, g), FAST_GAIN)
    return max(s.pol_f[g, SLOW], s.pol_f[g, FAST], current)


@jit
def step(s, now, cost):
    """Estimate every running guest's active fraction, then revoke by adjusted ratio."""
    s = borrow_state(s)
    cost = borrowed(cost)
    G = s.pi[PI.G]
    f = np.ones(G)
    for g in range(G):
        if running(s, g):
            f[g] = active_fraction(s, g, now)
    revoke(s, now, f, s.pol_sf[TAU], cost)
