"""Hinting mechanisms, one module each, and their registry.

A mechanism module exports ``NAME``, ``PARAMS`` (a spec of :class:`fphlib.state.params.Param`),
``TAKES_HINT_ORDER``, ``ASKS`` (the host-policy asks it reads: ``"pages"``, a balloon
size, and/or ``"hint"``, hinting on/off; policies that cannot drive it are refused),
optionally ``STATE`` (:class:`fphlib.state.layout.PrivateState`) and
``check_params(params)``, and any of the jitted hooks ``start(s, g, z, t, cost)``,
``tick(s, g, z, t_end, cost)``, ``on_free(s, g, z, pfn, order, t)`` (with
``free_hook_order(params, hint_order)``), ``on_alloc_fail(s, g, z, t, cost) -> (pages freed,
stall s)`` and ``reported_pages(s, g, z) -> pages``; :mod:`fphlib.hinting.dispatch` fills the
missing ones with no-ops. Adding a mechanism = its module + one line in ``REGISTRY``.
"""

import importlib

REGISTRY = (
    "none",
    "page_reporting",
    "balloon",
    "hinting_v8",
    "hinting_bitmap",
    "xbitmap_hints",
    "free_page_hint",
)

MECHANISMS = {name: i for i, name in enumerate(REGISTRY)}


def mechanism_module(name):
    """The module of mechanism ``name`` (a key of ``MECHANISMS``)."""
    return importlib.import_module(f"{__name__}.{name}")


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
