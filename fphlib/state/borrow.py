"""Borrowed views of the engine state (no reference counting inside kernels)."""

from .._jit import borrowed, jit
from ..guest.buddy import borrow_zone
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
        borrowed(s.nxt),
        borrowed(s.prv),
        borrowed(s.state),
        borrowed(s.flags),
        borrowed(s.reg_cnt),
        borrowed(s.reg_huge),
        borrowed(s.z_head),
        borrowed(s.z_tail),
        borrowed(s.z_nr),
        borrowed(s.z_cfg),
        borrowed(s.xb_nodes),
        borrowed(s.xb_leaves),
        borrowed(s.xb_meta),
        borrowed(s.pcp_head),
        borrowed(s.pcp_tail),
        borrowed(s.pcp_cnt),
        borrowed(s.gi),
        borrowed(s.gf),
        borrowed(s.wp),
        borrowed(s.wmix),
        borrowed(s.rng),
        borrowed(s.mi),
        borrowed(s.mf),
        borrowed(s.mbuf),
        borrowed(s.pol_i),
        borrowed(s.pol_f),
        borrowed(s.dq_t),
        borrowed(s.dq_pfn),
        borrowed(s.dq_n),
        borrowed(s.pool),
        borrowed(s.tr_t),
        borrowed(s.tr_kind),
        borrowed(s.tr_order),
        borrowed(s.tr_slot),
        borrowed(s.hi),
        borrowed(s.hf),
        borrowed(s.pi),
        borrowed(s.pf),
        borrowed(s.cost),
        borrowed(s.rec_h),
        borrowed(s.rec_g),
        borrowed(s.ev),
        borrowed(s.err),
        borrowed(s.mig_i),
        borrowed(s.mig_f),
        borrowed(s.mig_bmap),
    )

