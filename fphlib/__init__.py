"""fphlib: a numba workbench for guest free page hinting in KVM.

The public names below are a contract (DESIGN §4). They are imported lazily so that
``import fphlib`` stays fast and a notebook only pays for what it uses.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "parse_size": "fphlib.units",
    "format_size": "fphlib.units",
    "BuddyAllocator": "fphlib.guest.buddy",
    "fragmentation_index": "fphlib.guest.fragmentation",
    "unusable_index": "fphlib.guest.fragmentation",
    "parse_buddyinfo": "fphlib.guest.fragmentation",
    "format_buddyinfo": "fphlib.guest.fragmentation",
    "XBitmap": "fphlib.guest.xbitmap",
    "SimConfig": "fphlib.api.config",
    "SimResult": "fphlib.api.result",
    "simulate": "fphlib.api.simulate",
    "warmup": "fphlib.api.warmup",
    "sweep": "fphlib.sweep",  # a callable package: fphlib.sweep(grid, ...) (fphlib/sweep/)
}

# subpackages and modules reachable as attributes without an import of their own
# (fphlib.experiments..., fphlib.validation..., fphlib.observe...)
_SUBPACKAGES = ("experiments", "validation", "observe")

__all__ = sorted(_PUBLIC) + list(_SUBPACKAGES) + ["__version__"]


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'fphlib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
