"""The only branches over the mechanism id: implementations of the mechanism hooks in
:mod:`fphlib.state.hooks`, generated from ``REGISTRY`` (a new mechanism needs no edit here).

Each mechanism's hooks stay their own compile units (cached with their module); this module
adds one small if/elif chain per hook, and no-ops for the hooks a mechanism leaves out.
"""

from .._jit import jit
from ..guest.buddy import NR_ORDERS
from ..state import hooks
from ..state.layout import PI_MECH
from . import REGISTRY, mechanism_module

MODULES = tuple(mechanism_module(name) for name in REGISTRY)


@jit
def _no_start(s, g, z, t, cost):
    return None


@jit
def _no_tick(s, g, z, t_end, cost):
    return None


@jit
def _no_on_free(s, g, z, pfn, order, t):
    return None


@jit
def _no_alloc_fail(s, g, z, t, cost):
    return 0, 0.0


@jit
def _no_reported(s, g, z):
    return 0


# hook -> (argument list, no-op)
HOOKS = {
    "start": ("s, g, z, t, cost", _no_start),
    "tick": ("s, g, z, t_end, cost", _no_tick),
    "on_free": ("s, g, z, pfn, order, t", _no_on_free),
    "on_alloc_fail": ("s, g, z, t, cost", _no_alloc_fail),
    "reported_pages": ("s, g, z", _no_reported),
}


def free_hook_order(module, params, hint_order):
    """Smallest merged order for which the buddy calls the mechanism's ``on_free``."""
    if not hasattr(module, "on_free"):
        return NR_ORDERS  # never
    return module.free_hook_order(params, hint_order)


for _hook, (_args, _noop) in HOOKS.items():
    hooks.register(
        getattr(hooks, "mech_" + _hook),
        [getattr(m, _hook, _noop) for m in MODULES],
        _args,
        f"s.pi[{PI_MECH}]",
    )
