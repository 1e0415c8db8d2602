"""Policy ``"watermark"``: hinting on only while the host runs short, with hysteresis.

"I have plenty of free space, don't worry" (the seed thread; docs/design.md §3.5): the host switches
its guests' hinting on when its free memory (a fraction of RAM) falls below ``low`` and off
again only when it rises above ``high`` - the hysteresis of ESX's free-memory states, which
return to the previous state only above the higher threshold (Waldspurger, OSDI 2002 §6;
docs/references.md §9.1). Defaults: ``low`` 0.10, ``high`` 0.20 (oVirt MOM's
``pressure_threshold``, §9.3).

- ``per_guest=False``: one switch for all guests.
- ``per_guest=True``: one switch per guest; while the host is below ``low`` it switches on
  one more guest per interval (the one with the most free memory in its stats), above
  ``high`` it switches every guest off.

With ``balloon`` a guest switched on is asked for all its free memory above its high
watermark at each interval (QEMU's auto-ballooning proposal inflates on host memory
pressure, docs/references.md §7.3); switched off, its balloon is deflated to 0.

Simplifications: free memory is host ``MemFree`` (no page cache on the host).
"""

import numpy as np

from ..._jit import borrowed, jit
from ...state.borrow import borrow_state
from ...state.layout import GI, PI, PrivateState
from ...state.params import Param
from .common import (
    BY_PAGES,
    INTERVAL,
    N_COMMON_INTS,
    check_drivable,
    guest_free_pages,
    host_free_fraction,
    init_mode,
    reclaimable_pages,
    running,
    set_ask,
)

NAME = "watermark"
PARAMS = {
    "low": Param("float", 0.10, 0.0, 1.0, "", "hinting on below this fraction of host RAM "
                 "free"),
    "high": Param("float", 0.20, 0.0, 1.0, "", "hinting off again above this fraction "
                  "(> low)"),
    "per_guest": Param("bool", False, help="one switch per guest, switched on one guest per "
                       "interval (else one switch for all)"),
    "interval_s": INTERVAL,
}

# ON: this guest's switch (per_guest); policy-wide: ALL_ON (the one switch of all guests),
# PER_GUEST, and the thresholds LOW, HIGH
(ON,) = range(N_COMMON_INTS, N_COMMON_INTS + 1)
ALL_ON, PER_GUEST = range(2)
LOW, HIGH = range(2)


def init_shared(params, cfg, ints, floats):
    ints[PER_GUEST] = int(params["per_guest"])
    floats[LOW] = params["low"]
    floats[HIGH] = params["high"]


STATE = PrivateState(ints=("BY_PAGES", "ON"), shared_ints=("ALL_ON", "PER_GUEST"),
                     shared_floats=("LOW", "HIGH"), shared_init=init_shared)


def check_params(params):
    if not params["low"] < params["high"]:
        raise ValueError(f"policy_params['low']: {params['low']!r} is not allowed; expected "
                         f"a fraction below high ({params['high']!r}) - the hysteresis band")


def check(mechanism, mode, params):
    check_drivable(NAME, mechanism, mode)


def init_guest(params, cfg, g, ints, floats):
    init_mode(cfg, ints)


@jit(inline="always")
def watermark_next(on, free_fraction, low, high):
    """The switch after seeing ``free_fraction``: on below ``low``, off above ``high``,
    unchanged in between (hysteresis)."""
    if free_fraction < low:
        return 1
    if free_fraction > high:
        return 0
    return on


@jit
def _apply(s, g, now, on):
    s = borrow_state(s)
    if s.pol_i[g, BY_PAGES]:
        if on:
            set_ask(s, g, now, s.gi[g, GI.BALLOON] + reclaimable_pages(s, g), np.int64(1))
        else:
            set_ask(s, g, now, np.int64(0), np.int64(0))
    else:
        set_ask(s, g, now, np.int64(0), np.int64(on))


@jit
def step(s, now, cost):
    """Switch hinting by the host's free memory (see the module docstring)."""
    s = borrow_state(s)
    cost = borrowed(cost)
    G = s.pi[PI.G]
    low = s.pol_sf[LOW]
    high = s.pol_sf[HIGH]
    free = host_free_fraction(s)
    if s.pol_si[PER_GUEST] == 0:
        on = watermark_next(s.pol_si[ALL_ON], free, low, high)
        s.pol_si[ALL_ON] = on
        for g in range(G):
            if running(s, g):
                _apply(s, g, now, on)
        return
    if free > high:
        for g in range(G):
            s.pol_i[g, ON] = 0
    elif free < low:
        best = -1
        most = np.int64(-1)
        for g in range(G):
            if running(s, g) and not s.pol_i[g, ON]:
                f = guest_free_pages(s, g)
                if f > most:
                    most = f
                    best = g
        if best >= 0:
            s.pol_i[best, ON] = 1
    for g in range(G):
        if running(s, g):
            _apply(s, g, now, s.pol_i[g, ON])
