"""Where everything lives in the engine's arrays (column indices and the state tuple).

The bottom floor of the simulator: guest mm, host, hinting mechanisms, host policies, workloads
and the engine all import it; it imports none of them. Each group of columns is declared once,
as a ``NamedTuple`` class whose fields name the columns in order (``GuestInts``), and one
instance of it holds their indexes (``GI``): ``s.gi[g, GI.REPORTS]``. Jitted code reads such
an index as a compile-time constant. All state is plain NumPy arrays (docs/design.md §2).
Per-page arrays of all guests are concatenated
(guest g owns ``[gi[g, GI.OFF], gi[g, GI.OFF] + gi[g, GI.NPAGES])``) and the loop builds a
:class:`fphlib.state.zone.Zone` view per guest, so the compiled loop does not depend on the
number of guests. Per-guest scalars are columns of one int64 matrix ``gi`` and one float64
matrix ``gf``; host scalars live in ``hi``/``hf``; run parameters in ``pi``/``pf``.

Mechanisms and policies keep their own state out of this file: each declares private
per-guest columns and a per-guest buffer length (:class:`PrivateState`), which ``build``
allocates as ``mi``/``mf``/``mbuf`` (mechanism) and ``pol_i``/``pol_f`` (policy). Only one
mechanism and one policy run at a time, so every mechanism numbers its columns from 0.
"""

from typing import NamedTuple

import numpy as np

from .._jit import column_group

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
@column_group
class GuestInts(NamedTuple):
    """Per-guest int64 columns of ``gi`` (``GI.NAME`` is the column index)."""

    OFF: int
    NPAGES: int
    STATUS: int
    WL: int
    WL_PHASE: int
    WL_CUR: int
    WL_ROUND: int
    HELD_HEAD: int
    HELD_TAIL: int
    USED: int
    BOOT: int
    BALLOON: int
    ISOLATED: int
    RSS: int
    SWAP: int
    POOL_OFF: int
    POOL_CAP: int
    POOL_N: int
    TR_OFF: int
    TR_N: int
    TR_POS: int
    MIN_WMARK: int
    LOW_WMARK: int
    HIGH_WMARK: int
    PCP_BATCH: int
    PCP_HIGH: int
    MBUF_OFF: int
    ASK_PAGES: int
    ASK_HINT: int
    ASK_SEQ: int
    ASK_TOLD: int
    DQ_HEAD: int
    DQ_N: int
    DQ_EARLY: int
    XB_NODE_OFF: int
    XB_NODE_N: int
    XB_LEAF_OFF: int
    XB_LEAF_N: int
    REPORTS: int
    REPORTED_PAGES: int
    RETURNED: int
    VMEXITS: int
    FAULTS: int
    REFAULTS: int
    ALLOC_FAIL: int
    LOST: int
    LOCK_OPS: int
    SWAPOUT: int
    EVENTS: int
    BALLOON_MSGS: int
    OOM_DEFLATES: int
    STALE_HINTS: int
    FPH_CMD: int
    SWAPINS: int
    PC: int
    PC_DIRTY: int
    PC_HEAD: int
    PC_TAIL: int
    SLAB: int
    SLAB_HEAD: int
    SLAB_TAIL: int
    SLAB_DEBT: int
    GSWAP: int
    GSWAP_CAP: int
    HELD_PAGES: int
    MM_ON: int
    KSWAPD: int
    PC_DROPPED: int
    WRITEBACK: int
    GSWAPOUT: int
    GSWAPIN: int
    KSWAPD_WAKES: int
    DIRECT_RECLAIMS: int
    WL_RUN: int
    OOM_ADJ: int
    WANT_PAGES: int
    WANT_HINT: int
    COOP: int
    COOP_CAP: int
    COOP_ASKS: int
    COOP_PENDING: int
    AGREED_PAGES: int
    AGREED_HINT: int
    ASKS_UNANSWERED: int
    HOST_CLOCK: int
    LAZYFREE: int
    LAZYFREED: int
    THP_SPLITS: int


GI = GuestInts(*range(len(GuestInts._fields)))
NGI = len(GI)
# WL: the unit slot of the guest's workload step in this run (units.SLOT_WORKLOAD + WL; -1: a
# workload without a step, idle after boot); WL_PHASE, WL_CUR, WL_ROUND, WL_RUN: the
# workload's progress (phase, pages held now, passes, runs), read by the summary and plots.
# guest memory beyond anonymous pages (fphlib.guest.reclaim): PC/PC_DIRTY: page-cache pages
# (of them dirty), an LRU list through ``nxt``/``prv`` from PC_HEAD (oldest) to PC_TAIL;
# SLAB: kernel (slab) pages, a list from SLAB_HEAD (newest) to SLAB_TAIL; SLAB_DEBT: page-cache
# pages added (+) or reclaimed (-) not yet matched by a slab page (one per SLAB_PC_PAGES);
# GSWAP/GSWAP_CAP: pages in the guest's swap / its size; HELD_PAGES: pages the workload's
# held list maps (resident + in guest swap); MM_ON: watermarks enforced and reclaim on;
# KSWAPD: kswapd awake; PC_DROPPED ... DIRECT_RECLAIMS: counters; WL_RUN: memhog runs done;
# OOM_ADJ: the guest's oom_score_adj (host OOM killer, fphlib.host.backing); RETURNED: pages
# the host discarded on a hint or a balloon inflation that the guest has not touched since
# (PG_DISCARDED): the memory returned now, net of re-hints (REPORTED_PAGES counts every
# discard); WANT_PAGES/WANT_HINT: the host policy's ask as written in the guest's config space
# (ASK_*: what the guest's driver has read and acts on); COOP ... ASKS_UNANSWERED: how the
# guest answers asks (fphlib.guest.cooperation; COOP = 0: at once and in full); HOST_CLOCK:
# the hand of the host's reclaim of this guest alone (fphlib.host.reclaim.reclaim_guest);
# LAZYFREE: pages the host lazily freed on a hint (MADV_FREE: still backed, PG_BACKED and
# PG_DISCARDED both set), LAZYFREED: of them, pages host reclaim has since taken;
# THP_SPLITS: the guest's host THPs split (a discard of part of one, or a swap-out per 4 KiB)

# guest status
ST_WAITING = 0  # not booted yet
ST_RUNNING = 1
ST_KILLED = 2  # OOM-killed by the host

# ------------------------------------------------------------------ per-guest float64 columns
# REFAULT_STALL / SWAPIN_STALL: the parts of STALL spent refaulting discarded pages and
# swapping pages back in (the price a guest pays for giving memory back; fphlib.host.backing);
# RECLAIM_STALL: the part spent in host direct reclaim (its CPU and the swap device's queue)
@column_group
class GuestFloats(NamedTuple):
    """Per-guest float64 columns of ``gf`` (``GF.NAME`` is the column index)."""

    START: int
    WL_START: int
    WL_NEXT: int
    CREDIT: int
    DEBT: int
    STALL: int
    GUEST_CPU: int
    HOST_CPU: int
    WL_END: int
    ASK_T: int
    REFAULT_STALL: int
    SWAPIN_STALL: int
    RECLAIM_STALL: int
    IO_CREDIT: int
    WL_TOUCH: int
    WL_PASS_T0: int
    GUEST_RECLAIM_STALL: int
    KSWAPD_CPU: int
    COOP_ANSWERS: int
    COOP_DELAY: int
    COOP_DUE: int


GF = GuestFloats(*range(len(GuestFloats._fields)))
NGF = len(GF)
# IO_CREDIT: page-cache pages owed by the I/O rate; WL_TOUCH: seconds memhog spent touching
# (workload_runtime_s), WL_PASS_T0: start of its current pass; GUEST_RECLAIM_STALL: part of
# STALL spent in the guest's direct reclaim; KSWAPD_CPU: guest CPU of the guest's kswapd;
# COOP_ANSWERS, COOP_DELAY, COOP_DUE: cooperation's fraction of asks answered, its answer
# latency and when the waiting answer is read (fphlib.guest.cooperation)

# ------------------------------------------------------------------ workload parameter columns
# The parameters every workload takes (fphlib.workloads.COMMON); a workload's own parameters
# and state are its private columns of ``wl_i``/``wl_f`` (its ``STATE``)
@column_group
class WorkloadParams(NamedTuple):
    """Per-guest float64 columns of ``wp``, the parameters every workload takes (``WP.NAME``
    is the column index)."""

    BOOT: int
    START: int
    BOOT_CACHE: int
    BOOT_SLAB: int
    IO_RATE: int
    IO_WRITE: int


WP = WorkloadParams(*range(len(WorkloadParams._fields)))
NWP = len(WP)

# ------------------------------------------------------------------ host int64 / float64
# OVERHEAD_PAGES: the host reserve (SimConfig.host_reserve) + the VMM overhead of each running
# guest. WMARK_*: the host's min/low/high watermarks (pages); KSWAPD: kswapd is awake;
# KSWAPD_PAGES / DIRECT_PAGES: pages swapped out by kswapd / by direct reclaim; THP_SWAPS:
# THPs swapped out whole (THP_SWAP); THP_SPLITS: THPs split to swap them per 4 KiB (the
# guests' GI.THP_SPLITS also count the splits of a discard of part of a THP);
# KHUGE_CURSOR: khugepaged's next 2 MiB region; COLLAPSES: ranges it collapsed;
# SWAPOUTS: pages swapped out in all; PANICS: OOM with no killable guest (the host panics)
@column_group
class HostInts(NamedTuple):
    """Host int64 scalars of ``hi`` (``HI.NAME`` is the column index)."""

    RAM_PAGES: int
    SWAP_CAP: int
    RSS: int
    SWAP: int
    CLOCK: int
    CLOCK_G: int
    OOM_KILLS: int
    NEV: int
    NEV_LOST: int
    OVERHEAD_PAGES: int
    RSS_PEAK: int
    WMARK_MIN: int
    WMARK_LOW: int
    WMARK_HIGH: int
    KSWAPD: int
    KSWAPD_PAGES: int
    DIRECT_PAGES: int
    THP_SWAPS: int
    THP_SPLITS: int
    KHUGE_CURSOR: int
    COLLAPSES: int
    SWAPOUTS: int
    PANICS: int
    LAZYFREE: int
    LAZY_CLOCK: int


HI = HostInts(*range(len(HostInts._fields)))
NHI = len(HI)
# SWAP_BUSY: when the swap device has done every I/O queued so far (fphlib.host.backing);
# HOST_NEXT: the next instant of the host's daemons (kswapd, khugepaged); KHUGE_NEXT:
# khugepaged's next scan; KSWAPD_CPU / KHUGE_CPU: host CPU of the two daemons; KSWAPD_UNTIL:
# when kswapd's CPU is free again (a THP swapped out whole can take it past the tick);
# LAZYFREE / LAZY_CLOCK (host ints): lazily-freed pages of all guests, and the hand of the
# reclaim pass that takes them first (fphlib.host.reclaim)
@column_group
class HostFloats(NamedTuple):
    """Host float64 scalars of ``hf`` (``HF.NAME`` is the column index)."""

    CPU: int
    POLICY_NEXT: int
    SWAP_BUSY: int
    HOST_NEXT: int
    KHUGE_NEXT: int
    KSWAPD_CPU: int
    KHUGE_CPU: int
    KSWAPD_UNTIL: int


HF = HostFloats(*range(len(HostFloats._fields)))
NHF = len(HF)

# ------------------------------------------------------------------ run parameters
# FREE_HOOK_ORDER: the mechanism's on_free hook runs for merged blocks of at least this order
# KSWAPD / KHUGEPAGED: the host daemons are on (SimConfig.host_kswapd / host_khugepaged)
@column_group
class RunInts(NamedTuple):
    """Run parameters, int64 ``pi`` (``PI.NAME`` is the column index)."""

    G: int
    MECH: int
    POLICY: int
    HINT_ORDER: int
    FREE_HOOK_ORDER: int
    THP: int
    VCPUS: int
    DEBUG: int
    N_TICKS: int
    SAMPLE_TICKS: int
    KSWAPD: int
    KHUGEPAGED: int
    SAFE: int
    MADV_FREE: int


PI = RunInts(*range(len(RunInts._fields)))
NPI = len(PI)
# SAFE: the run's mechanism variant is safe (fphlib.hinting.mechanism_is_safe): the debug
# checks then also require that no page-cache page is ever hinted or discarded; MADV_FREE:
# the host discards with MADV_FREE (lazily), not MADV_DONTNEED (fphlib.host.backing.discard)
# SWAP_PAGE_S: the swap device's time per 4 KiB page (4096 / host_swap_bandwidth; 0: no limit)
@column_group
class RunFloats(NamedTuple):
    """Run parameters, float64 ``pf`` (``PF.NAME`` is the column index)."""

    DT: int
    POLICY_INTERVAL: int
    SWAP_PAGE_S: int


PF = RunFloats(*range(len(RunFloats._fields)))
NPF = len(PF)

# ------------------------------------------------------------------ live migration (one guest)
# fphlib.host.migration: the migrated guest, its precopy phase and counters (int64 ``mig_i``)
@column_group
class MigrationInts(NamedTuple):
    """The live migration's int64 ``mig_i`` (``MI.NAME`` is the column index)."""

    ON: int
    G: int
    PHASE: int
    ROUND: int
    CURSOR: int
    CMD: int
    HINT_ON: int
    SENT_PAGES: int
    ZERO_PAGES: int
    HINTED: int
    BYTES: int
    PASS_BYTES: int
    MAX_ROUNDS: int
    SYNCS: int
    HELD_PEAK: int
    CONVERGED: int


MI = MigrationInts(*range(len(MigrationInts._fields)))
NMI = len(MI)
@column_group
class MigrationFloats(NamedTuple):
    """The live migration's float64 ``mig_f`` (``MF.NAME`` is the column index)."""

    AT: int
    NEXT: int
    BW: int
    DOWNTIME: int
    T_END: int
    DOWNTIME_S: int
    PASS_T0: int
    HOLD_START: int
    HOLD_S: int


MF = MigrationFloats(*range(len(MigrationFloats._fields)))
NMF = len(MF)

# ------------------------------------------------------------------ recorded series
# RG.REPORTED: bytes reported/ballooned so far (cumulative, the summary's reported_bytes);
# RG.REPORTED_FREE: free pages flagged reported now (the mechanism's reported_pages hook)
@column_group
class GuestSeries(NamedTuple):
    """Per-guest recorded series, the last axis of ``rec_g`` (``RG.NAME`` is the column index)."""

    RSS: int
    FREE: int
    REPORTED: int
    ISOLATED: int
    USED: int
    PCP: int
    BALLOON: int
    SWAP: int
    REPORTED_FREE: int
    PAGE_CACHE: int
    SLAB: int
    GUEST_SWAP: int
    RETURNED: int


RG = GuestSeries(*range(len(GuestSeries._fields)))
NRG = len(RG)
@column_group
class HostSeries(NamedTuple):
    """Host recorded series, the last axis of ``rec_h`` (``RH.NAME`` is the column index)."""

    RSS: int
    SWAP: int
    FREE: int


RH = HostSeries(*range(len(HostSeries._fields)))
NRH = len(RH)

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

    A policy's values that are not per guest (its thresholds, a round-robin cursor) are its
    ``shared_ints``/``shared_floats``, one row for the whole run (``pol_si``/``pol_sf``), set
    by ``shared_init(params, cfg, ints, floats)``.

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
    shared_ints: tuple = ()
    shared_floats: tuple = ()
    shared_init: object = None


MECH_WAKE = 0  # mf column 0: the mechanism's next instant (inf: none); see PrivateState


def private_columns(names):
    """``range`` over whitespace-separated names: ``A, B = private_columns("A B")``."""
    return range(len(names.split()))



class EngineState(NamedTuple):
    """Every array of one run; the jitted loop mutates them in place between chunks."""

    # per page (all guests concatenated)
    nxt: np.ndarray  # int32: free-list / pcp / held-list links
    prv: np.ndarray  # int32
    state: np.ndarray  # int8 (zone.Zone.state)
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
    mbuf: np.ndarray  # int64[sum of buffers], guest g from GI.MBUF_OFF
    pol_i: np.ndarray  # int64[G, ints]
    pol_f: np.ndarray  # float64[G, floats]
    pol_si: np.ndarray  # int64[shared ints]: the policy's values for the whole run
    pol_sf: np.ndarray  # float64[shared floats]
    # host discard queue per guest (a ring of GI.DQ_N entries from GI.DQ_HEAD)
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
