"""Policy ``"round_robin"``: at each interval the host asks the next guest for a quantum.

The simplest fair rotation (the host "decides which guest to offer first" of the seed
thread; docs/design.md §3.5): while the host has less than ``target_free`` of its RAM free, each
interval asks the next running guest (in guest order, wrapping around) for ``quantum``
bytes. With ``balloon`` the guest's balloon grows by the quantum (capped by the free memory
its stats show above its high watermark); with a reporting/hinting mechanism that guest's
hinting is switched on for the interval and every other guest's off. With memory to spare
(``RELEASE_QUANTA`` quanta above the target) the next guest with a balloon gets a quantum
back.

Simplifications: one guest per interval whatever the shortage; guests that are not running
(not booted, OOM-killed) are skipped.
"""

import numpy as np

from ..._jit import borrowed, jit
from ...state.borrow import borrow_state
from ...state.layout import GI, PI, PrivateState
from .common import (
    BY_PAGES,
    INTERVAL,
    Q_QUANTUM_PAGES,
    Q_TARGET,
    QUANTUM,
    QUANTUM_SHARED_FLOATS,
    QUANTUM_SHARED_INTS,
    RELEASE_QUANTA,
    TARGET_FREE,
    check_drivable,
    give_back,
    hints_off_except,
    init_mode,
    init_quantum,
    need_pages,
    reclaimable_pages,
    running,
    take,
)

NAME = "round_robin"
PARAMS = {"interval_s": INTERVAL, "quantum": QUANTUM, "target_free": TARGET_FREE}

NEXT = len(QUANTUM_SHARED_INTS)  # policy-wide: the next guest to ask


def init_shared(params, cfg, ints, floats):
    init_quantum(params, cfg, ints, floats)
    ints[NEXT] = 0


STATE = PrivateState(ints=("BY_PAGES",), shared_ints=QUANTUM_SHARED_INTS + ("NEXT",),
                     shared_floats=QUANTUM_SHARED_FLOATS, shared_init=init_shared)


def check(mechanism, mode, params):
    check_drivable(NAME, mechanism, mode)


def init_guest(params, cfg, g, ints, floats):
    init_mode(cfg, ints)


@jit
def next_guest(s, start, want_balloon):
    """The first running guest from ``start`` on (wrapping), with a balloon ask if
    ``want_balloon``; -1 if none."""
    s = borrow_state(s)
    G = s.pi[PI.G]
    for i in range(G):
        g = (start + i) % G
        if running(s, g) and (not want_balloon or s.gi[g, GI.BALLOON] > 0):
            return g
    return -1


@jit
def step(s, now, cost):
    """Ask the next guest for a quantum (or give one back); see the module docstring."""
    s = borrow_state(s)
    cost = borrowed(cost)
    G = s.pi[PI.G]
    q = s.pol_si[Q_QUANTUM_PAGES]
    need = need_pages(s, s.pol_sf[Q_TARGET])
    chosen = np.zeros(G, np.int64)
    if need > 0:
        g = next_guest(s, s.pol_si[NEXT], False)
        if g >= 0:
            amount = min(q, reclaimable_pages(s, g)) if s.pol_i[g, BY_PAGES] else q
            take(s, g, now, amount)
            chosen[g] = 1
            s.pol_si[NEXT] = (g + 1) % G
    elif need < -RELEASE_QUANTA * q:
        g = next_guest(s, s.pol_si[NEXT], True)
        if g >= 0:
            give_back(s, g, now, q)
            s.pol_si[NEXT] = (g + 1) % G
    hints_off_except(s, now, chosen)
