"""Host policies: whom the host asks for memory, and when (docs/design.md §3.5), and their live
registry (docs/plugins.md).

A policy module exports ``NAME``, ``PARAMS`` (every policy takes ``interval_s``), optionally
``STATE`` (:class:`fphlib.state.layout.PrivateState`, columns of ``pol_i``/``pol_f``) and
``check(mechanism, mode, params)`` (refuse combinations that make no sense, with a
``ValueError`` saying why; ``mode`` is the ask the mechanism reads, from its ``ASKS``:
:func:`fphlib.api.config.ask_mode`, :func:`fphlib.host.policy.common.check_drivable`),
``check_params(params)`` (cross-parameter checks), ``init_guest(params, cfg, g, ints,
floats)`` (per-guest private columns: shares, min, max from ``guest_overrides``, seeds), and
the jitted ``step(s, now, cost)``, which the engine runs every ``interval_s`` before the
guests. A step writes only the per-guest asks, through :func:`fphlib.host.policy.ask.ask`:
pages wanted back (``GI.WANT_PAGES``) and hinting on/off (``GI.WANT_HINT``); the guest's
driver reads them into ``GI.ASK_PAGES`` and ``GI.ASK_HINT`` (at once, or late, partly or never
as its cooperation says: :mod:`fphlib.guest.cooperation`), and mechanisms read those and
nothing else of the policy. Adding a built-in policy = its module + its name in
``BUILTIN``; a plug-in = :func:`fphlib.register_policy` or an entry point in group
``fphlib.policies``.
"""

from ...registry import (
    Registry,
    check_callables,
    check_jitted,
    check_state,
    is_params_spec,
    require,
)
from ...state.units import SPECS


def _check_policy(module, name):
    require(module, {
        "PARAMS": (lambda p: is_params_spec(p) and "interval_s" in p,
                   "a dict {name: fphlib.extend.Param(...)} with help, holding 'interval_s' "
                   "(fphlib.extend.POLICY_INTERVAL)"),
        "step": (callable, "a jitted step(s, now, cost)"),
    })
    check_jitted(module, "step", tuple(SPECS["policy_step"][0].split()))
    check_state(module)
    check_callables(module, ("check", "check_params", "init_guest"))


BUILTIN = (
    "static",
    "always_on",
    "watermark",
    "round_robin",
    "most_free_first",
    "proportional_share",
    "idle_tax",
    "mom",
)

REGISTRY = Registry("policy", __name__, BUILTIN, _check_policy, "fphlib.policies")
POLICIES = REGISTRY  # the same live registry (older name)


def register_policy(module, replace=False):
    """Register a host-policy plug-in (a module, an object with its attributes, or a dotted
    module path); return its name. See docs/plugins.md."""
    return REGISTRY.register(module, replace)


def policy_module(name):
    """The module of policy ``name`` (a registered name)."""
    return REGISTRY.module(name)
