"""Hinting mechanisms, one module each, and their live registry (docs/plugins.md).

A mechanism module exports ``NAME``, ``PARAMS`` (a spec of :class:`fphlib.state.params.Param`),
``TAKES_HINT_ORDER``, ``ASKS`` (the host-policy asks it reads: ``"pages"``, a balloon
size, and/or ``"hint"``, hinting on/off; policies that cannot drive it are refused),
optionally ``STATE`` (:class:`fphlib.state.layout.PrivateState`), ``REPORTS_PAGES``,
``MADVISE`` (how its series' host discarded: ``"dontneed"``, the default, or ``"free"``),
``safe(params)`` and ``check_params(params)``, and any of the jitted hooks ``start(s, g, z,
t, cost)``, ``tick(s, g, z, t_end, cost)``, ``on_free(s, g, z, pfn, order, t, cost)`` (with
``free_hook_order(params, hint_order)``), ``on_alloc_fail(s, g, z, t, cost) -> (pages freed,
stall s)`` and ``reported_pages(s, g, z) -> pages``; a hook left out is a no-op
(:mod:`fphlib.hinting.dispatch`). Adding a built-in mechanism = its module + its name in
``BUILTIN``; a plug-in = :func:`fphlib.register_mechanism` or an entry point in group
``fphlib.mechanisms``.
"""

from ..host.backing import MADVISE_CHOICES
from ..registry import (
    PluginError,
    Registry,
    check_callables,
    check_jitted,
    check_state,
    is_params_spec,
    require,
)
from ..state.units import SPECS

BUILTIN = (
    "none",
    "page_reporting",
    "balloon",
    "hinting_v8",
    "hinting_bitmap",
    "xbitmap_hints",
    "free_page_hint",
)

# hook -> its arguments, from the one signature each is compiled for (fphlib.state.units)
HOOK_ARGS = {unit[len("mech_"):]: tuple(args.split())
             for unit, (args, _) in SPECS.items() if unit.startswith("mech_")}
ASK_KINDS = ("pages", "hint")


def madvise_of(name):
    """How mechanism ``name``'s host discards by default: its module's ``MADVISE``."""
    return getattr(REGISTRY.module(name), "MADVISE", "dontneed")


def _check_mechanism(module, name):
    require(module, {
        "PARAMS": (is_params_spec, "a dict {name: fphlib.extend.Param(...)} with help"),
        "TAKES_HINT_ORDER": (lambda v: isinstance(v, bool), "True or False"),
    })
    asks = getattr(module, "ASKS", ())
    if not isinstance(asks, tuple) or set(asks) - set(ASK_KINDS):
        raise PluginError(f"ASKS is {asks!r}; expected a tuple of {ASK_KINDS}")
    madvise = getattr(module, "MADVISE", "dontneed")
    if madvise not in MADVISE_CHOICES:
        raise PluginError(f"MADVISE is {madvise!r}; expected one of {MADVISE_CHOICES}")
    check_state(module)
    check_callables(module, ("safe", "check_params", "free_hook_order"))
    for hook, args in HOOK_ARGS.items():
        if hasattr(module, hook):
            check_jitted(module, hook, args)
    if hasattr(module, "on_free") and not hasattr(module, "free_hook_order"):
        raise PluginError("on_free needs free_hook_order(params, hint_order): the smallest "
                          "merged order the buddy calls it for")


REGISTRY = Registry("mechanism", __name__, BUILTIN, _check_mechanism, "fphlib.mechanisms")
MECHANISMS = REGISTRY  # the same live registry (older name)


def register_mechanism(module, replace=False):
    """Register a mechanism plug-in (a module, an object with its attributes, or a dotted
    module path); return its name. See docs/plugins.md for the hook contract."""
    return REGISTRY.register(module, replace)


def mechanism_module(name):
    """The module of mechanism ``name`` (a registered name)."""
    return REGISTRY.module(name)


def takes_hint_order(name):
    """Does mechanism ``name`` work in blocks of ``hint_order`` (plots, widgets, sweeps)?"""
    return bool(mechanism_module(name).TAKES_HINT_ORDER)


def mechanism_is_safe(name, params):
    """Can mechanism ``name`` with these effective parameters never lose a guest write?

    A module declares ``safe(params)`` when a parameter selects an unsafe variant; without
    it the mechanism is safe (the engine counts every lost write either way).
    """
    safe = getattr(mechanism_module(name), "safe", None)
    return True if safe is None else bool(safe(params))
