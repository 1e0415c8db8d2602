"""Where everything lives in the engine's arrays (column indices and the state tuple).

The bottom floor of the simulator: guest mm, host, hinting mechanisms, host policies and the
engine all import it; it imports none of them (only the buddy's ``Zone`` type).
All state is plain NumPy arrays (docs/design.md §2). Per-page arrays of all guests are concatenated
(guest g owns ``[gi[g, GI_OFF], gi[g, GI_OFF] + gi[g, GI_NPAGES])``) and the loop builds a
:class:`fphlib.guest.buddy.Zone` view per guest, so the compiled loop does not depend on the
number of guests. Per-guest scalars are columns of one int64 matrix ``gi`` and one float64
matrix ``gf``; host scalars live in ``hi``/``hf``; run parameters in ``pi``/``pf``.

Mechanisms and policies keep their own state out of this file: each declares private
per-guest columns and a per-guest buffer length (:class:`PrivateState`), which ``build``
allocates as ``mi``/``mf``/``mbuf`` (mechanism) and ``pol_i``/``pol_f`` (policy). Only one
mechanism and one policy run at a time, so every mechanism numbers its columns from 0.
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
# KVM's dirty log of the page (set by every guest write, cleared by a migration dirty-bitmap
# sync of the guest's memory and by a free page hint; fphlib.host.migration)
PG_MIG_DIRTY = np.uint8(128)

# ------------------------------------------------------------------ per-guest int64 columns
# BALLOON: pages the mechanism holds allocated from the guest (balloon pages);
# MBUF_OFF: start of the guest's slice of ``mbuf``; ASK_*: what the host policy asks
# (ASK_SEQ counts asks, the config-change interrupt; ASK_TOLD: the last one the mechanism's
# tick has seen); DQ_*: the host discard queue ring; SWAPINS: pages swapped in on a touch;
# XB_*: the guest's rows of the free-page tracking pools; FPH_CMD: the free page hint command
# the host wrote in the balloon's config space (free_page_hint_cmd_id: 0 = none yet, else
# fphlib.host.migration.CMD_ID_STOP/DONE or a round id >= CMD_ID_FIRST).
NGI = _columns("GI", """OFF NPAGES STATUS WL WL_PHASE WL_CUR WL_ROUND HELD_HEAD HELD_TAIL USED BOOT
BALLOON ISOLATED RSS SWAP
POOL_OFF POOL_CAP POOL_N TR_OFF TR_N TR_POS
MIN_WMARK LOW_WMARK HIGH_WMARK PCP_BATCH PCP_HIGH
MBUF_OFF ASK_PAGES ASK_HINT ASK_SEQ ASK_TOLD DQ_HEAD DQ_N DQ_EARLY
XB_NODE_OFF XB_NODE_N XB_LEAF_OFF XB_LEAF_N
REPORTS REPORTED_PAGES VMEXITS FAULTS REFAULTS ALLOC_FAIL LOST LOCK_OPS SWAPOUT
EVENTS BALLOON_MSGS OOM_DEFLATES STALE_HINTS
FPH_CMD SWAPINS
PC PC_DIRTY PC_HEAD PC_TAIL SLAB SLAB_HEAD SLAB_DEBT GSWAP GSWAP_CAP HELD_PAGES MM_ON KSWAPD
PC_DROPPED WRITEBACK GSWAPOUT GSWAPIN KSWAPD_WAKES DIRECT_RECLAIMS WL_RUN
OOM_ADJ""")
# WL: the unit slot of the guest's workload step in this run (units.SLOT_WORKLOAD + WL; -1: a
# workload without a step, idle after boot); WL_PHASE, WL_CUR, WL_ROUND, WL_RUN: the
# workload's progress (phase, pages held now, passes, runs), read by the summary and plots.
# guest memory beyond anonymous pages (fphlib.guest.reclaim): PC/PC_DIRTY: page-cache pages
# (of them dirty), an LRU list through ``nxt``/``prv`` from PC_HEAD (oldest) to PC_TAIL;
# SLAB: kernel (slab) pages, a stack through ``nxt`` from SLAB_HEAD; SLAB_DEBT: page-cache
# pages added (+) or reclaimed (-) not yet matched by a slab page (one per SLAB_PC_PAGES);
# GSWAP/GSWAP_CAP: pages in the guest's swap / its size; HELD_PAGES: pages the workload's
# held list maps (resident + in guest swap); MM_ON: watermarks enforced and reclaim on;
# KSWAPD: kswapd awake; PC_DROPPED ... DIRECT_RECLAIMS: counters; WL_RUN: memhog runs done;
# OOM_ADJ: the guest's oom_score_adj (host OOM killer, fphlib.host.backing)

# guest status
ST_WAITING = 0  # not booted yet
ST_RUNNING = 1
ST_KILLED = 2  # OOM-killed by the host

# ------------------------------------------------------------------ per-guest float64 columns
# REFAULT_STALL / SWAPIN_STALL: the parts of STALL spent refaulting discarded pages and
# swapping pages back in (the price a guest pays for giving memory back; fphlib.host.backing);
# RECLAIM_STALL: the part spent in host direct reclaim (its CPU and the swap device's queue)
NGF = _columns("GF", """START WL_START WL_NEXT CREDIT DEBT STALL GUEST_CPU HOST_CPU WL_END
ASK_T REFAULT_STALL SWAPIN_STALL
RECLAIM_STALL IO_CREDIT WL_TOUCH WL_PASS_T0 GUEST_RECLAIM_STALL KSWAPD_CPU""")
# IO_CREDIT: page-cache pages owed by the I/O rate; WL_TOUCH: seconds memhog spent touching
# (workload_runtime_s), WL_PASS_T0: start of its current pass; GUEST_RECLAIM_STALL: part of
# STALL spent in the guest's direct reclaim; KSWAPD_CPU: guest CPU of the guest's kswapd

# ------------------------------------------------------------------ workload parameter columns
# The parameters every workload takes (fphlib.workloads.COMMON); a workload's own parameters
# and state are its private columns of ``wl_i``/``wl_f`` (its ``STATE``)
NWP = _columns("WP", "BOOT START BOOT_CACHE BOOT_SLAB IO_RATE IO_WRITE")

# ------------------------------------------------------------------ host int64 / float64
# OVERHEAD_PAGES: the host reserve (SimConfig.host_reserve) + the VMM overhead of each running
# guest. WMARK_*: the host's min/low/high watermarks (pages); KSWAPD: kswapd is awake;
# KSWAPD_PAGES / DIRECT_PAGES: pages swapped out by kswapd / by direct reclaim; THP_SWAPS:
# THPs swapped out whole (THP_SWAP); THP_SPLITS: THPs split to swap them per 4 KiB;
# KHUGE_CURSOR: khugepaged's next 2 MiB region; COLLAPSES: ranges it collapsed;
# SWAPOUTS: pages swapped out in all; PANICS: OOM with no killable guest (the host panics)
NHI = _columns(
    "HI", "RAM_PAGES SWAP_CAP RSS SWAP CLOCK CLOCK_G OOM_KILLS NEV NEV_LOST OVERHEAD_PAGES RSS_PEAK"
    " WMARK_MIN WMARK_LOW WMARK_HIGH KSWAPD KSWAPD_PAGES DIRECT_PAGES THP_SWAPS THP_SPLITS "
    "KHUGE_CURSOR COLLAPSES SWAPOUTS PANICS"
)
# SWAP_BUSY: when the swap device has done every I/O queued so far (fphlib.host.backing);
# HOST_NEXT: the next instant of the host's daemons (kswapd, khugepaged); KHUGE_NEXT:
# khugepaged's next scan; KSWAPD_CPU / KHUGE_CPU: host CPU of the two daemons; KSWAPD_UNTIL:
# when kswapd's CPU is free again (a THP swapped out whole can take it past the tick)
NHF = _columns("HF", "CPU POLICY_NEXT SWAP_BUSY HOST_NEXT KHUGE_NEXT KSWAPD_CPU KHUGE_CPU "
               "KSWAPD_UNTIL")

# ------------------------------------------------------------------ run parameters
# FREE_HOOK_ORDER: the mechanism's on_free hook runs for merged blocks of at least this order
# KSWAPD / KHUGEPAGED: the host daemons are on (SimConfig.host_kswapd / host_khugepaged)
NPI = _columns(
    "PI", "G MECH POLICY HINT_ORDER FREE_HOOK_ORDER THP VCPUS DEBUG N_TICKS SAMPLE_TICKS "
    "KSWAPD KHUGEPAGED SAFE"
)
# SAFE: the run's mechanism variant is safe (fphlib.hinting.mechanism_is_safe): the debug
# checks then also require that no page-cache page is ever hinted or discarded
# SWAP_PAGE_S: the swap device's time per 4 KiB page (4096 / host_swap_bandwidth; 0: no limit)
NPF = _columns("PF", "DT POLICY_INTERVAL SWAP_PAGE_S")

# ------------------------------------------------------------------ live migration (one guest)
# fphlib.host.migration: the migrated guest, its precopy phase and counters (int64 ``mig_i``)
NMI = _columns("MI", """ON G PHASE ROUND CURSOR CMD HINT_ON SENT_PAGES ZERO_PAGES HINTED BYTES
PASS_BYTES MAX_ROUNDS SYNCS HELD_PEAK CONVERGED""")
NMF = _columns("MF", "AT NEXT BW DOWNTIME T_END DOWNTIME_S PASS_T0 HOLD_START HOLD_S")

# ------------------------------------------------------------------ recorded series
# RG_REPORTED: bytes reported/ballooned so far (cumulative, the summary's reported_bytes);
# RG_REPORTED_FREE: free pages flagged reported now (the mechanism's reported_pages hook)
NRG = _columns("RG", "RSS FREE REPORTED ISOLATED USED PCP BALLOON SWAP REPORTED_FREE "
               "PAGE_CACHE SLAB GUEST_SWAP")
NRH = _columns("RH", "RSS SWAP FREE")

# event kinds (rows of ``ev``: t_s, guest, kind, value)
EV_OOM_KILL = 1  # host OOM killer killed the guest; value = its RSS + swap in bytes
EV_GUEST_START = 2
EV_WORKLOAD_END = 3
EV_GUEST_OOM = 4  # an allocation failed inside the guest (memhog stops); value = order
EV_ASK = 5  # the host policy changed its ask of the guest; value = bytes asked back
EV_HINT_ON = 6  # the host policy switched the guest's hinting on
EV_HINT_OFF = 7  # ... or off
EV_HOST_PANIC = 8  # host OOM with no killable guest (all oom_score_adj -1000): panic
EVENT_KINDS = {
    EV_OOM_KILL: "oom_kill",
    EV_GUEST_START: "guest_start",
    EV_WORKLOAD_END: "workload_end",
    EV_GUEST_OOM: "guest_alloc_failure",
    EV_ASK: "ask",
    EV_HINT_ON: "hint_on",
    EV_HINT_OFF: "hint_off",
    EV_HOST_PANIC: "host_panic",
}
MAX_EVENTS = 20_000



class PrivateState(NamedTuple):
    """The state a mechanism or policy declares; ``build`` allocates it, nothing else names it.

    ``ints``/``floats`` name its per-guest int64/float64 columns (numbered from 0 in
    ``mi``/``mf`` or ``pol_i``/``pol_f``); ``buffer(params, n_pages, vcpus)`` is the length of
    its per-guest int64 slice of ``mbuf``; ``init(params, n_pages, vcpus, ints, floats)``
    sets a guest's initial column values (rows are zero before); ``discard_slots(params)``
    sizes the guest's host discard queue; ``tracking(params)`` picks the per-guest free-page
    tracking (``None``, ``"page"`` or ``"head"``: an xbitmap the buddy keeps current).

    A mechanism's first float column (``MECH_WAKE``) is its next instant: the engine calls its
    ``tick`` only when that instant falls in the tick or the host policy asked something new
    (``build`` sets it to inf before ``init``), so an idle mechanism costs the loop nothing.
    """

    ints: tuple = ()
    floats: tuple = ()
    buffer: object = None
    init: object = None
    discard_slots: object = None
    tracking: object = None


MECH_WAKE = 0  # mf column 0: the mechanism's next instant (inf: none); see PrivateState


def private_columns(names):
    """``range`` over whitespace-separated names: ``A, B = private_columns("A B")``."""
    return range(len(names.split()))



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
    # per guest free-page tracking (rows sliced per guest by GI_XB_*; meta one row per guest)
    xb_nodes: np.ndarray
    xb_leaves: np.ndarray
    xb_meta: np.ndarray  # int64[G, xbitmap.META_LEN]
    # per guest per vCPU pcp lists
    pcp_head: np.ndarray  # int64[G, V]
    pcp_tail: np.ndarray
    pcp_cnt: np.ndarray
    # per guest scalars
    gi: np.ndarray  # int64[G, NGI]
    gf: np.ndarray  # float64[G, NGF]
    wp: np.ndarray  # float64[G, NWP]
    # the private state of each guest's workload (its PrivateState; widest of the run's)
    wl_i: np.ndarray  # int64[G, ints]
    wl_f: np.ndarray  # float64[G, floats]
    rng: np.ndarray  # uint64[G] splitmix64 state
    # the mechanism's and the policy's private state (PrivateState)
    mi: np.ndarray  # int64[G, ints]
    mf: np.ndarray  # float64[G, floats]
    mbuf: np.ndarray  # int64[sum of buffers], guest g from GI_MBUF_OFF
    pol_i: np.ndarray  # int64[G, ints]
    pol_f: np.ndarray  # float64[G, floats]
    # host discard queue per guest (a ring of GI_DQ_N entries from GI_DQ_HEAD)
    dq_t: np.ndarray  # float64[G, slots]: when the host performs the discard
    dq_pfn: np.ndarray  # int64[G, slots]: first guest pfn
    dq_n: np.ndarray  # int64[G, slots]: pages
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
    # live migration of one guest (fphlib.host.migration)
    mig_i: np.ndarray  # int64[NMI]
    mig_f: np.ndarray  # float64[NMF]
    mig_bmap: np.ndarray  # uint64[pages / 64]: QEMU's migration bitmap (rb->bmap), pages to send
    # native addresses of the run's separately compiled units (fphlib.state.units.bind)
    fn: np.ndarray  # int64[units.N_SLOTS]
    # this state and every guest's zone view, stored for units called by reference
    # (fphlib.state.units.publish)
    self_ref: np.ndarray  # int64[units.ref_words(...)]
