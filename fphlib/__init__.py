"""fphlib: a numba workbench for guest free page hinting in KVM.

The public names below are a contract (docs/design.md §4). They are imported lazily so that
``import fphlib`` stays fast and a notebook only pays for what it uses.
"""

from ._lazy import lazy_names

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
    # plug-ins (docs/plugins.md): they import from fphlib.extend
    "register_mechanism": "fphlib.hinting",
    "register_policy": "fphlib.host.policy",
    "register_workload": "fphlib.workloads",
}

# subpackages and modules reachable as attributes without an import of their own
# (fphlib.experiments..., fphlib.validation..., fphlib.observe..., fphlib.extend)
_SUBPACKAGES = ("experiments", "validation", "observe", "extend")

__all__ = sorted(_PUBLIC) + list(_SUBPACKAGES) + ["__version__"]

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC, _SUBPACKAGES, listed=__all__)
