"""ESX min-funding revocation, shared by ``proportional_share`` and ``idle_tax``.

Waldspurger, "Memory Resource Management in VMware ESX Server", OSDI 2002, §5
(docs/references.md §9.1): each VM holds S shares and P pages; when memory
must be taken, it is revoked from the VM with the lowest (adjusted) shares-per-page ratio

    rho = S / (P * (f + k * (1 - f))),   k = 1 / (1 - tau)

(f: the VM's active fraction, tau: the idle memory tax; tau = 0 is pure proportional
share). Each VM also has a ``min`` (guaranteed memory) and a ``max`` (configured size):
the host never asks a balloon that leaves a guest less than ``min``, and always asks one
that leaves it at most ``max``.

Per-guest ``shares`` (default :data:`DEFAULT_SHARES`), ``min`` and ``max`` come from
``SimConfig.guest_overrides``.

Enforcement (§4-§6): the shares decide how much each VM gives, not the free memory its guest
happens to have: the revocable memory of a VM is its machine memory P above its ``min``. A VM
revoked from is asked for a balloon first, up to ``Mem.CtlMaxPercent`` = 65 % of its memory;
what the balloon cannot take (past that limit now, or not delivered by the next interval, e.g.
a guest with nothing left to free) the host swaps out of that VM
(:func:`fphlib.host.reclaim.reclaim_guest`; the soft state's "swap if no balloon").

Simplifications: P is the VM's host RSS (backed pages; swapped pages are not machine memory);
revocation proceeds in quanta, recomputing rho after each with P lowered by what was taken (the
reallocation of one interval); memory is given back (a quantum per interval) to the guest with
the highest rho that has a balloon, once the host has ``RELEASE_QUANTA`` quanta to spare; the
free-memory states are one target (``target_free``, the high state's 6 %): below it the host
balloons and swaps at once (no separate hard and low states); with a reporting/hinting
mechanism a VM can only give its free memory (hinting is switched on for it) and is never
swapped by the policy.
"""

import numpy as np

from ..._jit import borrowed, jit
from ...host.reclaim import reclaim_guest
from ...state.borrow import borrow_state
from ...state.layout import GI, PI
from ...units import PAGE_SIZE
from .common import (
    BY_PAGES,
    INTERVAL,
    N_COMMON_INTS,
    Q_QUANTUM_PAGES,
    Q_TARGET,
    RELEASE_QUANTA,
    give_back,
    hints_off_except,
    init_mode,
    need_pages,
    reclaimable_pages,
    running,
    set_ask,
    take,
)

# ESX 2's memory reallocation period (docs/references.md §9.1, "Other ESX 2/GSX parameters")
ESX_INTERVAL = INTERVAL._replace(default=15.0, help="how often the host reallocates memory "
                                 "(ESX: 15 s)")
# Mem.CtlMaxPercent: a balloon takes at most 65 % of its VM's memory (docs/references.md §9.1)
CTL_MAX_FRACTION = 0.65
DEFAULT_SHARES = 1000.0  # the worked example's S (docs/references.md §9.1); only ratios matter

# common ESX per-guest columns, after the common ones: ints MIN_PAGES MAX_PAGES, float SHARES;
# the quantum and the target are policy-wide (common.QUANTUM_SHARED_INTS/FLOATS)
MIN_PAGES, MAX_PAGES = range(N_COMMON_INTS, N_COMMON_INTS + 2)
N_ESX_INTS = N_COMMON_INTS + 2
ESX_INTS = ("BY_PAGES", "MIN_PAGES", "MAX_PAGES")
(SHARES,) = range(1)
N_ESX_FLOATS = 1
ESX_FLOATS = ("SHARES",)


def init_esx(params, cfg, g, ints, floats):
    """Per-guest shares, min and max (``guest_overrides``)."""
    init_mode(cfg, ints)
    spec = cfg.guest_spec(g)
    n = spec["mem"] // PAGE_SIZE
    ints[MIN_PAGES] = min(n, spec.get("min", 0) // PAGE_SIZE)
    ints[MAX_PAGES] = min(n, spec.get("max", spec["mem"]) // PAGE_SIZE)
    floats[SHARES] = spec.get("shares", DEFAULT_SHARES)


@jit(inline="always")
def tax_factor(f, tau):
    """``f + k (1 - f)`` with ``k = 1 / (1 - tau)``: the idle-memory-tax weight of a page."""
    return f + (1.0 - f) / (1.0 - tau)


@jit(inline="always")
def adjusted_ratio(shares, pages, f, tau):
    """ESX's adjusted shares-per-page ratio rho = S / (P (f + k (1 - f)))."""
    return shares / (max(pages, 1.0) * tax_factor(f, tau))


@jit
def revoke(s, now, f, tau, cost):
    """One interval of min-funding revocation with active fractions ``f`` (per guest)."""
    s = borrow_state(s)
    cost = borrowed(cost)
    G = s.pi[PI.G]
    q = s.pol_si[Q_QUANTUM_PAGES]
    # the configured size: a guest never holds more than its max
    for g in range(G):
        if running(s, g) and s.pol_i[g, BY_PAGES]:
            floor = s.gi[g, GI.NPAGES] - s.pol_i[g, MAX_PAGES]
            if s.gi[g, GI.WANT_PAGES] < floor:
                set_ask(s, g, now, floor, np.int64(1))
    need = need_pages(s, s.pol_sf[Q_TARGET])
    chosen = np.zeros(G, np.int64)
    taken = np.zeros(G, np.int64)
    if need > 0:
        # what a balloon did not deliver since the last interval the host swaps out of that
        # VM ("swap if no balloon", §6), and the ask comes down to what the balloon holds
        for g in range(G):
            if need <= 0:
                break
            if running(s, g) and s.pol_i[g, BY_PAGES]:
                short = s.gi[g, GI.WANT_PAGES] - s.gi[g, GI.BALLOON]
                if short > 0:
                    need -= reclaim_guest(s, g, min(short, need), now, cost)
                    set_ask(s, g, now, s.gi[g, GI.BALLOON], np.int64(1))
        for _ in range(4 * G + 4):
            if need <= 0:
                break
            best = -1
            best_rho = np.inf
            best_avail = np.int64(0)
            for g in range(G):
                if not running(s, g):
                    continue
                if s.pol_i[g, BY_PAGES]:
                    # the shares' claim: the VM's machine memory above its min, whether or
                    # not its guest has that much free (balloon, then host swap, enforce it)
                    avail = s.gi[g, GI.RSS] - s.pol_i[g, MIN_PAGES] - taken[g]
                else:
                    avail = reclaimable_pages(s, g) - taken[g]  # hints return free memory
                if avail <= 0:
                    continue
                rho = adjusted_ratio(s.pol_f[g, SHARES], s.gi[g, GI.RSS] - taken[g], f[g], tau)
                if rho < best_rho:
                    best_rho = rho
                    best = g
                    best_avail = avail
            if best < 0:
                break
            amount = min(q, best_avail, need)
            taken[best] += amount
            chosen[best] = 1
            need -= amount
        for g in range(G):
            if taken[g] <= 0:
                continue
            if not s.pol_i[g, BY_PAGES]:
                take(s, g, now, taken[g])
                continue
            # the balloon first, up to Mem.CtlMaxPercent of the VM; past it the host swaps
            limit = min(s.gi[g, GI.NPAGES] - s.pol_i[g, MIN_PAGES],
                        np.int64(CTL_MAX_FRACTION * s.gi[g, GI.NPAGES]))
            by_balloon = min(taken[g], max(np.int64(0), limit - s.gi[g, GI.BALLOON]))
            if by_balloon > 0:
                take(s, g, now, by_balloon)
            if taken[g] > by_balloon:
                reclaim_guest(s, g, taken[g] - by_balloon, now, cost)
    elif need < -RELEASE_QUANTA * q:
        best = -1
        best_rho = -1.0
        for g in range(G):
            if running(s, g) and s.pol_i[g, BY_PAGES]:
                floor = s.gi[g, GI.NPAGES] - s.pol_i[g, MAX_PAGES]
                if s.gi[g, GI.BALLOON] > floor:
                    rho = adjusted_ratio(s.pol_f[g, SHARES], s.gi[g, GI.RSS], f[g], tau)
                    if rho > best_rho:
                        best_rho = rho
                        best = g
        if best >= 0:
            floor = s.gi[best, GI.NPAGES] - s.pol_i[best, MAX_PAGES]
            give_back(s, best, now, min(q, s.gi[best, GI.BALLOON] - floor))
    hints_off_except(s, now, chosen)
    return chosen
