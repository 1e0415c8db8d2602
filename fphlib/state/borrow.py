"""Borrowed views of the engine state (no reference counting inside kernels)."""

from .._jit import borrowed_all, jit
from ..state.zone import Zone, borrow_zone
from .layout import GI

__all__ = ["borrow_state", "borrow_zone", "guest_zone", "zone_of"]


@jit(inline="always")
def borrow_state(s):
    """Every array of ``s`` without its MemInfo (see ``fphlib.state.zone.borrow_zone``).

    Numba reference-counts each array read out of a tuple with atomic operations; with ~40
    arrays passed to every helper that costs ~0.5 µs per call. Borrowed views make those
    increfs no-ops. Valid only while the caller holds ``s``: use inside one kernel call.
    """
    return borrowed_all(s)


def guest_zone(s, g):
    """The buddy Zone view of guest g: slices of the concatenated arrays (Python or jitted)."""
    a = s.gi[g, GI.OFF]
    b = a + s.gi[g, GI.NPAGES]
    na = s.gi[g, GI.XB_NODE_OFF]
    la = s.gi[g, GI.XB_LEAF_OFF]
    return Zone(
        s.nxt[a:b],
        s.prv[a:b],
        s.state[a:b],
        s.flags[a:b],
        s.z_head[g],
        s.z_tail[g],
        s.z_nr[g],
        s.z_cfg[g],
        s.xb_nodes[na : na + s.gi[g, GI.XB_NODE_N]],
        s.xb_leaves[la : la + s.gi[g, GI.XB_LEAF_N]],
        s.xb_meta[g],
    )


_guest_zone = jit(inline="always")(guest_zone)


@jit
def zone_of(s, g):
    """``guest_zone`` in a kernel: guest g's Zone view, borrowed."""
    return borrow_zone(_guest_zone(borrow_state(s), g))
