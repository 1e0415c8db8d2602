"""Policy ``"proportional_share"``: ESX min-funding revocation by shares.

Waldspurger, OSDI 2002 §5.1 (docs/references.md §9.1): memory is taken from
the guest with the lowest shares-per-page ratio S / P first; per-guest ``shares``, ``min``
(guaranteed) and ``max`` (configured size) come from ``SimConfig.guest_overrides``
(``{"shares": 2000, "min": "1GiB", "max": "3GiB"}``; default shares
:data:`fphlib.host.policy.esx.DEFAULT_SHARES`, min 0, max the guest's memory). The host
reclaims while it has less than ``target_free`` of its RAM free, in quanta of ``quantum``.
With a reporting/hinting mechanism the guests revoked from get hinting on for the interval,
the others off. The revocation loop is :func:`fphlib.host.policy.esx.revoke`.

Simplifications: those of :mod:`fphlib.host.policy.esx` (P = backed + swapped pages).
"""

import numpy as np

from ..._jit import borrowed, jit
from ...state.borrow import borrow_state
from ...state.layout import PI, PrivateState
from .common import (
    QUANTUM,
    QUANTUM_SHARED_FLOATS,
    QUANTUM_SHARED_INTS,
    TARGET_FREE,
    check_drivable,
    init_quantum,
)
from .esx import ESX_FLOATS, ESX_INTERVAL, ESX_INTS, init_esx, revoke

NAME = "proportional_share"
PARAMS = {"interval_s": ESX_INTERVAL, "quantum": QUANTUM, "target_free": TARGET_FREE}
STATE = PrivateState(ints=ESX_INTS, floats=ESX_FLOATS, shared_ints=QUANTUM_SHARED_INTS,
                     shared_floats=QUANTUM_SHARED_FLOATS, shared_init=init_quantum)


def check(mechanism, mode, params):
    check_drivable(NAME, mechanism, mode)


def init_guest(params, cfg, g, ints, floats):
    init_esx(params, cfg, g, ints, floats)


@jit
def step(s, now, cost):
    """Revoke from the lowest S / P first (tau = 0: every page counts as active)."""
    s = borrow_state(s)
    cost = borrowed(cost)
    revoke(s, now, np.ones(s.pi[PI.G]), 0.0, cost)
