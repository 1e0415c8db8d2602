"""Host policies: whom the host asks for memory, and when (DESIGN §3.5), and their registry.

A policy module exports ``NAME``, ``PARAMS`` (every policy takes ``interval_s``), optionally
``STATE`` (:class:`fphlib.state.layout.PrivateState`, columns of ``pol_i``/``pol_f``) and
``check(mechanism, mode, params)`` (refuse combinations that make no sense, with a
``ValueError`` saying why; ``mode`` is the ask the mechanism reads, from its ``ASKS``:
:func:`fphlib.api.config.ask_mode`, :func:`fphlib.host.policy.common.check_drivable`),
``check_params(params)`` (cross-parameter checks), ``init_guest(params, cfg, g, ints,
floats)`` (per-guest private columns: shares, min, max from ``guest_overrides``, seeds), and
the jitted
``step(s, now, cost)``, which the engine runs every ``interval_s`` before the guests. A step
writes only the per-guest asks, through :func:`fphlib.host.policy.ask.ask`: pages wanted back
(``GI_ASK_PAGES``) and hinting on/off (``GI_ASK_HINT``); mechanisms read those and nothing
else of the policy. Adding a policy = its module + one line in ``REGISTRY``.
"""

import importlib

REGISTRY = (
    "static",
    "always_on",
    "watermark",
    "round_robin",
    "most_free_first",
    "proportional_share",
    "idle_tax",
    "mom",
)

POLICIES = {name: i for i, name in enumerate(REGISTRY)}


def policy_module(name):
    """The module of policy ``name`` (a key of ``POLICIES``)."""
    return importlib.import_module(f"{__name__}.{name}")

