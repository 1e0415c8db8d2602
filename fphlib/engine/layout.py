"""Where everything lives in the engine's arrays (column indices and the state tuple).

All state is plain NumPy arrays (DESIGN §2). Per-page arrays of all guests are concatenated
(guest g owns ``[gi[g, GI_OFF], gi[g, GI_OFF] + gi[g, GI_NPAGES])``) and the loop builds a
:class:`fphlib.guest.buddy.Zone` view per guest, so the compiled loop does not depend on the
number of guests. Per-guest scalars are columns of one int64 matrix ``gi`` and one float64
matrix ``gf``; host scalars live in ``hi``/``hf``; run parameters in ``pi``/``pf``.
"""

from typing import NamedTuple

import numpy as np


def _columns(prefix, names):
    """Define ``PREFIX_NAME = index`` for each whitespace-separated name; return the count."""
    names = names.split()
    for i, name in enumerate(names):
        globals()[f"{prefix}_{name}"] = i
    return len(names)

# ------------------------------------------------------------------ extra per-page flag bits
# Bits 1, 2, 4, 8 are the buddy module's (PG_REPORTED, PG_BACKED, PG_DATA, PG_IN_FLIGHT).
PG_SWAPPED = np.uint8(16)  # host swapped this page out (counts in host swap, not RSS)
PG_REFERENCED = np.uint8(32)  # host accessed bit (second-chance clock of host reclaim)
PG_DISCARDED = np.uint8(64)  # host discarded it (hint/balloon): the next touch is a refault

# ------------------------------------------------------------------ per-guest int64 columns
NGI = _columns("GI", """OFF NPAGES STATUS WL WL_PHASE WL_CUR WL_ROUND HELD_HEAD HELD_TAIL USED BOOT
BALLOON BAL_HEAD BAL_TARGET BAL_WANT BAL_PHASE BAL_MSG_N ISOLATED RSS SWAP
POOL_OFF POOL_CAP POOL_N TR_OFF TR_N TR_POS
MIN_WMARK LOW_WMARK HIGH_WMARK PCP_BATCH PCP_HIGH
PR_STATE PR_PHASE PR_ORDER PR_BUDGET PR_CURSOR PR_OFFSET
REPORTS REPORTED_PAGES VMEXITS FAULTS REFAULTS ALLOC_FAIL LOST LOCK_OPS SWAPOUT
EVENTS BALLOON_MSGS OOM_DEFLATES""")

# guest status
ST_WAITING = 0  # not booted yet
ST_RUNNING = 1
ST_KILLED = 2  # OOM-killed by the host

# ------------------------------------------------------------------ per-guest float64 columns
NGF = _columns("GF", """START WL_START WL_NEXT CREDIT DEBT STALL GUEST_CPU HOST_CPU WL_END
PR_WAKE BAL_WAKE BAL_POLICY""")

# ------------------------------------------------------------------ workload parameter columns
NWP = _columns("WP", "BOOT START SIZE RATE FREE_RATE HOLD REPEAT GAP ORDER TARGET OPS SPEED")

# ------------------------------------------------------------------ host int64 / float64
NHI = _columns(
    "HI", "RAM_PAGES SWAP_CAP RSS SWAP CLOCK CLOCK_G OOM_KILLS NEV NEV_LOST OVERHEAD_PAGES RSS_PEAK"
)
NHF = _columns("HF", "CPU")

# ------------------------------------------------------------------ run parameters
NPI = _columns("PI", "G MECH HINT_ORDER CAP THP VCPUS DEBUG DEFLATE_OOM N_TICKS SAMPLE_TICKS")
NPF = _columns("PF", "DT DELAY BAL_INTERVAL")

# ------------------------------------------------------------------ recorded series
NRG = _columns("RG", "RSS FREE REPORTED ISOLATED USED PCP BALLOON SWAP")
NRH = _columns("RH", "RSS SWAP FREE")

# event kinds (rows of ``ev``: t_s, guest, kind, value)
EV_OOM_KILL = 1  # host OOM killer killed the guest; value = its RSS + swap in bytes
EV_GUEST_START = 2
EV_WORKLOAD_END = 3
EV_GUEST_OOM = 4  # an allocation failed inside the guest (memhog stops); value = order
EVENT_KINDS = {
    EV_OOM_KILL: "oom_kill",
    EV_GUEST_START: "guest_start",
    EV_WORKLOAD_END: "workload_end",
    EV_GUEST_OOM: "guest_alloc_failure",
}
MAX_EVENTS = 20_000

BALLOON_PFNS = 256  # VIRTIO_BALLOON_ARRAY_PFNS_MAX (include/uapi/linux/virtio_balloon.h)


class EngineState(NamedTuple):
    """Every array of one run; the jitted loop mutates them in place between chunks."""

    # per page (all guests concatenated)
    nxt: np.ndarray  # int32: free-list / pcp / held-list links
    prv: np.ndarray  # int32
    state: np.ndarray  # int8 (buddy.Zone.state)
    flags: np.ndarray  # uint8 (buddy PG_* plus PG_SWAPPED/REFERENCED/DISCARDED)
    # per 2 MiB host region
    reg_cnt: np.ndarray  # uint16: pages present (backed or swapped) in the region
    reg_huge: np.ndarray  # uint8: backed by one host THP
    # per guest zone
    z_head: np.ndarray  # int32[G, 11]
    z_tail: np.ndarray  # int32[G, 11]
    z_nr: np.ndarray  # int64[G, 11]
    z_cfg: np.ndarray  # int64[G, CFG_LEN]
    xb_nodes: np.ndarray
    xb_leaves: np.ndarray
    xb_meta: np.ndarray
    # per guest per vCPU pcp lists
    pcp_head: np.ndarray  # int64[G, V]
    pcp_tail: np.ndarray
    pcp_cnt: np.ndarray
    # per guest scalars
    gi: np.ndarray  # int64[G, NGI]
    gf: np.ndarray  # float64[G, NGF]
    wp: np.ndarray  # float64[G, NWP]
    wmix: np.ndarray  # float64[G, 11] cumulative order weights (churn)
    rng: np.ndarray  # uint64[G] splitmix64 state
    sg_pfn: np.ndarray  # int32[G, capacity] page reporting scatterlist
    sg_ord: np.ndarray  # int8[G, capacity]
    msg: np.ndarray  # int32[G, 256] balloon PFN message
    pool: np.ndarray  # int32[...] churn/trace held blocks (pfn, -1 = empty)
    tr_t: np.ndarray  # int64 trace times (µs)
    tr_kind: np.ndarray  # int8
    tr_order: np.ndarray  # int8
    tr_slot: np.ndarray  # int32
    # host, parameters, costs
    hi: np.ndarray
    hf: np.ndarray
    pi: np.ndarray
    pf: np.ndarray
    cost: np.ndarray
    # recorders
    rec_h: np.ndarray  # float64[S, NRH]
    rec_g: np.ndarray  # float64[S, G, NRG]
    ev: np.ndarray  # float64[MAX_EVENTS, 4]
    err: np.ndarray  # int64[8]: debug violation (code, guest, sample, detail...)
