"""Policy ``"most_free_first"``: ask the guest with the most free memory first.

The host reads each guest's free memory from the virtio-balloon stats queue
(VIRTIO_BALLOON_S_MEMFREE, polled by QEMU's ``guest-stats-polling-interval``;
docs/references.md §7.1) and, while it has less than ``target_free`` of its RAM
free, asks guests in decreasing order of free memory for up to ``quantum`` each (never more
than the free memory above the guest's high watermark) until the shortage is covered. With
a reporting/hinting mechanism the guests asked get hinting on for the interval, the others
off. With memory to spare the guest with the least free memory gets a quantum of its
balloon back.

Simplifications: the stats are exact and current (no polling lag).
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
    guest_free_pages,
    hints_off_except,
    init_mode,
    init_quantum,
    need_pages,
    reclaimable_pages,
    running,
    take,
)

NAME = "most_free_first"
PARAMS = {"interval_s": INTERVAL, "quantum": QUANTUM, "target_free": TARGET_FREE}

STATE = PrivateState(ints=("BY_PAGES",), shared_ints=QUANTUM_SHARED_INTS,
                     shared_floats=QUANTUM_SHARED_FLOATS, shared_init=init_quantum)


def check(mechanism, mode, params):
    check_drivable(NAME, mechanism, mode)


def init_guest(params, cfg, g, ints, floats):
    init_mode(cfg, ints)


@jit
def step(s, now, cost):
    """Take from the guests with the most free memory first; see the module docstring."""
    s = borrow_state(s)
    cost = borrowed(cost)
    G = s.pi[PI.G]
    q = s.pol_si[Q_QUANTUM_PAGES]
    need = need_pages(s, s.pol_sf[Q_TARGET])
    chosen = np.zeros(G, np.int64)
    if need > 0:
        for _ in range(G):
            best = -1
            most = np.int64(-1)
            for g in range(G):
                if running(s, g) and not chosen[g]:
                    f = guest_free_pages(s, g)
                    if f > most:
                        most = f
                        best = g
            if best < 0 or reclaimable_pages(s, best) == 0:
                break
            amount = min(q, reclaimable_pages(s, best), need)
            take(s, best, now, amount)
            chosen[best] = 1
            need -= amount
            if need <= 0:
                break
    elif need < -RELEASE_QUANTA * q:
        best = -1
        least = np.int64(-1)
        for g in range(G):
            if running(s, g) and s.pol_i[g, BY_PAGES] and s.gi[g, GI.BALLOON] > 0:
                f = guest_free_pages(s, g)
                if best < 0 or f < least:
                    least = f
                    best = g
        if best >= 0:
            give_back(s, best, now, q)
    hints_off_except(s, now, chosen)
