"""Which hinting mechanisms have a block size (``hint_order``), from the registry.

A mechanism module declares ``TAKES_HINT_ORDER = True`` when ``SimConfig.hint_order`` sets
its smallest reported block. Modules written before that attribute existed are covered by
``_DECLARED`` below — the one place to update until each module declares it itself.
"""

import importlib

# page_reporting: page_reporting_order (mm/page_reporting.c); the balloon works on order-0
# pages and ``none`` reports nothing.
_DECLARED = {"page_reporting": True}


def takes_hint_order(mechanism):
    """True if ``hint_order`` changes what ``mechanism`` reports (its block size)."""
    from ..hinting import MECHANISMS

    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism: {mechanism!r} is not allowed; known mechanisms: "
                         f"{', '.join(MECHANISMS)}")
    try:
        module = importlib.import_module(f"fphlib.hinting.{mechanism}")
    except ImportError:
        module = None
    declared = getattr(module, "TAKES_HINT_ORDER", None)
    if declared is not None:
        return bool(declared)
    return _DECLARED.get(mechanism, False)


def block_size_mechanisms():
    """Registered mechanisms that take a block size, in registry order."""
    from ..hinting import MECHANISMS

    return tuple(m for m in MECHANISMS if takes_hint_order(m))
