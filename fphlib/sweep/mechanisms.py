"""Which hinting mechanisms have a block size (``hint_order``), from the registry."""

from ..hinting import MECHANISMS, REGISTRY
from ..hinting import takes_hint_order as _takes


def takes_hint_order(mechanism):
    """True if ``hint_order`` changes what ``mechanism`` reports (its block size)."""
    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism: {mechanism!r} is not allowed; known mechanisms: "
                         f"{', '.join(MECHANISMS)}")
    return _takes(mechanism)


def block_size_mechanisms():
    """Registered mechanisms that take a block size, in registry order."""
    return tuple(m for m in REGISTRY if _takes(m))
