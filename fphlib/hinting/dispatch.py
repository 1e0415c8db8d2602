"""A mechanism's hooks for :mod:`fphlib.state.hooks`: the functions ``fphlib.engine.build``
binds for a run (:func:`hook_functions`); a hook a mechanism leaves out is a no-op.

There is no branch over the mechanism id anywhere: a run binds its mechanism's hooks as
separate compile units (:mod:`fphlib.state.units`), so it compiles no other mechanism.
"""

from ..guest.buddy import NR_ORDERS
from . import HOOK_ARGS, mechanism_module

HOOKS = tuple(HOOK_ARGS)


def hook_functions(name):
    """``{unit: jitted function}`` of the hooks mechanism ``name`` defines (``"mech_tick"``:
    its ``tick``...); the others stay empty slots, no-ops (:mod:`fphlib.state.hooks`)."""
    module = mechanism_module(name)
    return {"mech_" + hook: getattr(module, hook) for hook in HOOKS if hasattr(module, hook)}


def free_hook_order(module, params, hint_order):
    """Smallest merged order for which the buddy calls the mechanism's ``on_free``."""
    if not hasattr(module, "on_free"):
        return NR_ORDERS  # never
    return module.free_hook_order(params, hint_order)
