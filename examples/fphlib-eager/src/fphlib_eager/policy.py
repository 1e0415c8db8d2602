"""Host policy ``"toggle"``: every guest hints while the host is short of memory.

Every ``interval_s`` the host reads its free memory (``MemFree``); below ``low`` of its RAM
it switches hinting on in every running guest, above ``high`` off again (hysteresis, as
oVirt MOM's balloon rules use host free-memory thresholds:
https://github.com/oVirt/mom, ``doc/balloon.rules``).

Simplifications: one switch for all guests; the host's free memory is read at the policy
instant only.
"""

from fphlib import extend as fx

NAME = "toggle"
PARAMS = {
    "low": fx.Param("float", 0.10, 0.0, 1.0, "", "hinting on below this fraction of host "
                    "RAM free"),
    "high": fx.Param("float", 0.25, 0.0, 1.0, "", "hinting off above this fraction (> low)"),
    "interval_s": fx.POLICY_INTERVAL,
}
LOW, HIGH = fx.private_columns("LOW HIGH")


def _init(params, n_pages, vcpus, ints, floats):
    floats[LOW] = params["low"]
    floats[HIGH] = params["high"]


STATE = fx.PrivateState(floats=("LOW", "HIGH"), init=_init)


def check(mechanism, mode, params):
    """Only mechanisms that read the hinting on/off ask."""
    fx.check_drivable(NAME, mechanism, mode, modes=("hint",))


def check_params(params):
    if not params["low"] < params["high"]:
        raise ValueError(f"policy_params['low']: {params['low']!r} is not allowed; expected "
                         f"less than high ({params['high']!r})")


@fx.jit
def step(s, now, cost):
    """Switch every running guest's hinting on when short, off when comfortable."""
    s = fx.borrow_state(s)
    cost = fx.borrowed(cost)
    free = fx.host_free_fraction(s)
    for g in range(fx.n_guests(s)):
        if not fx.guest_running(s, g):
            continue
        on = fx.hint_asked(s, g)
        if free < s.pol_f[g, LOW] and not on:
            fx.ask(s, g, now, fx.pages_asked(s, g), 1)
        elif free > s.pol_f[g, HIGH] and on:
            fx.ask(s, g, now, fx.pages_asked(s, g), 0)
