"""The only branch over the host policy id: ``policy_step`` (:mod:`fphlib.state.hooks`)
generated from ``REGISTRY``."""

from ...state import hooks
from ...state.layout import PI_POLICY
from . import REGISTRY, policy_module

MODULES = tuple(policy_module(name) for name in REGISTRY)

hooks.register(hooks.policy_step, [m.step for m in MODULES], "s, now, cost",
               f"s.pi[{PI_POLICY}]")
