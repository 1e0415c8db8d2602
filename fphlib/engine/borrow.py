"""Borrowed views of the engine state (no reference counting inside kernels)."""

from .._jit import jit
from ..guest.buddy import _borrowed, borrow_zone
from .layout import EngineState

__all__ = ["borrow_state", "borrow_zone"]


@jit(inline="always")
def borrow_state(s):
    """Every array of ``s`` without its MemInfo (see ``fphlib.guest.buddy.borrow_zone``).

    Numba reference-counts each array read out of a tuple with atomic operations; with ~40
    arrays passed to every helper that costs ~0.5 µs per call. Borrowed views make those
    increfs no-ops. Valid only while the caller holds ``s``: use inside one kernel call.
    """
    return EngineState(
        _borrowed(s.nxt),
        _borrowed(s.prv),
        _borrowed(s.state),
        _borrowed(s.flags),
        _borrowed(s.reg_cnt),
        _borrowed(s.reg_huge),
        _borrowed(s.z_head),
        _borrowed(s.z_tail),
        _borrowed(s.z_nr),
        _borrowed(s.z_cfg),
        _borrowed(s.xb_nodes),
        _borrowed(s.xb_leaves),
        _borrowed(s.xb_meta),
        _borrowed(s.pcp_head),
        _borrowed(s.pcp_tail),
        _borrowed(s.pcp_cnt),
        _borrowed(s.gi),
        _borrowed(s.gf),
        _borrowed(s.wp),
        _borrowed(s.wmix),
        _borrowed(s.rng),
        _borrowed(s.sg_pfn),
        _borrowed(s.sg_ord),
        _borrowed(s.msg),
        _borrowed(s.pool),
        _borrowed(s.tr_t),
        _borrowed(s.tr_kind),
        _borrowed(s.tr_order),
        _borrowed(s.tr_slot),
        _borrowed(s.hi),
        _borrowed(s.hf),
        _borrowed(s.pi),
        _borrowed(s.pf),
        _borrowed(s.cost),
        _borrowed(s.rec_h),
        _borrowed(s.rec_g),
        _borrowed(s.ev),
        _borrowed(s.err),
    )

