"""Build the engine's arrays from a SimConfig (Python side, runs once per simulation)."""

import functools
import math
import mmap
import threading

import numpy as np
from numba import types

from .._virtio import reports_free_pages
from ..costs import cost_array
from ..guest.buddy import NR_ORDERS, init_free_lists
from ..guest.cooperation import init_cooperation
from ..guest.mm import alloc_pages
from ..guest.pcp import pcp_batch_high
from ..guest.reclaim import guest_reclaim
from ..guest.xbitmap import tracking_arrays
from ..hinting import MECHANISMS, mechanism_is_safe, mechanism_module
from ..hinting.dispatch import free_hook_order, hook_functions
from ..host.backing import HPAGE_PAGES, ensure_ram
from ..host.daemons import SCAN_SLEEP_S, host_step
from ..host.migration import migration_arrays, migration_step
from ..host.policy import POLICIES, policy_module
from ..state import layout as L
from ..state import units
from ..state.borrow import guest_zone
from ..state.units import publish
from ..state.zone import CFG_LEN, CFG_PLACEMENT, CFG_REPORTING_OFF, CFG_TRACK, NOT_HEAD
from ..units import PAGE_SIZE
from ..workloads import WORKLOADS, Setup, build_rng, workload_settings
from ..workloads.common import boot
from ..workloads.io import mm_step
from .loop import TICK_S, check_all, run_chunk
from .parallel_compile import precompile

TRACK_MODES = {None: 0, "page": 1, "head": 2}  # fphlib.guest.buddy.TRACKS (xbitmap modes)
# the parameters every workload takes, stored as given, each in its wp column
_WP_AS_GIVEN = {"io_rate": L.WP.IO_RATE, "io_write": L.WP.IO_WRITE, "start_s": L.WP.START}


def watermarks(n_pages):
    """(min, low, high) watermarks in pages of one zone of ``n_pages`` (a guest's; the host's).

    ``init_per_zone_wmark_min``: min_free_kbytes = int_sqrt(lowmem_kbytes * 16) clamped to
    [128, 262144]; ``__setup_per_zone_wmarks``: low = min + max(min / 4, managed *
    watermark_scale_factor (10) / 10000), high = min + 2 * that (mm/page_alloc.c, v5.10).
    """
    kbytes = n_pages * 4
    min_free_kbytes = min(max(math.isqrt(kbytes * 16), 128), 262144)
    wmin = min_free_kbytes // 4
    tmp = max(wmin >> 2, n_pages * 10 // 10000)
    return wmin, wmin + tmp, wmin + 2 * tmp


def workload_slots(specs):
    """``{workload: slot}`` of the workloads with a step among ``specs`` (guest specs), in
    registry order: the run's workload units (at most ``units.N_WORKLOAD_SLOTS``)."""
    used = {spec["workload"] for spec in specs}
    stepped = [w for w in WORKLOADS if w in used and hasattr(WORKLOADS.module(w), "step")]
    if len(stepped) > units.N_WORKLOAD_SLOTS:
        raise ValueError(f"workload: a run takes at most {units.N_WORKLOAD_SLOTS} workloads "
                         f"with a step; this one has {len(stepped)}: {', '.join(stepped)}")
    return {w: i for i, w in enumerate(stepped)}


# The big arrays of the last simulate() that finished (the per-page arrays and the workloads'
# pool), for the next one of the same size (a sweep's runs, a notebook's reruns): the kernel
# zeroes every fresh page a run maps (~0.4 s of system time per GiB-scale run, and seconds
# when this machine is itself a guest whose free page reporting gave the memory back to its
# host), where refilling in place costs a memset of the two byte arrays. At most one set is
# kept; release_page_arrays() drops it.
_SPARE = []
_SPARE_LOCK = threading.Lock()

# numpy asks for transparent huge pages (madvise MADV_HUGEPAGE) on arrays of 4 MiB and more.
# On a KVM guest whose balloon reports free pages (VIRTIO_BALLOON_F_REPORTING: the host
# discards the free 2 MiB blocks the guest reports, mm/page_reporting.c), a fresh huge page's
# first touch is what costs: on such a guest 2 GiB of fresh huge pages took 4.9-5.6 s of
# system time to fault in, the same 2 GiB in 4 KiB pages 0.9-1.0 s (huge pages not reported
# yet: 0.3-0.7 s). There the big per-page arrays are mapped in small pages: a 1 TiB host's
# first run 8.4-10.5 -> 4.7-5.2 s, the 64 x 16 GiB churn's 3.5-8.4 -> 1.9-2.7 s; later runs
# (the arrays kept and reused) pay the page walks of random accesses that huge pages saved:
# memhog's equal, the churn's 5-13 % slower. Below 64 MiB an array's first touch costs little
# (the demo's 3 x 5 GiB guests: 16 MiB for a link array) and keeps numpy's huge pages (with
# small pages its runs were 1-5 % slower); so does every array on a machine without free page
# reporting (bare metal, or a guest whose host does not take free memory back): not measured
# here, numpy's choice stands there.
_SMALL_PAGES_FROM = 64 << 20


@functools.cache
def _small_pages():
    """Map the big per-page arrays in 4 KiB pages on this machine? (above)"""
    return hasattr(mmap, "MADV_NOHUGEPAGE") and reports_free_pages()


def _fresh_zeros(n, dtype):
    """A zeroed array of ``n`` items, in memory mapped in 4 KiB pages when it is big and
    :func:`_small_pages` (above); lazily zero like ``np.zeros``: a page costs only when first
    written."""
    nbytes = n * np.dtype(dtype).itemsize
    if nbytes < _SMALL_PAGES_FROM or not _small_pages():
        return np.zeros(n, dtype)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buf, dtype)  # the array holds the mapping; unmapped with it


def page_arrays(n_pages, n_slots=0, reuse=False):
    """``(nxt, prv, state, flags, pool)``: per-page arrays for ``n_pages`` pages (no page on a
    list, every page ``NOT_HEAD`` with no flags) and ``n_slots`` pool slots for the blocks the
    workloads hold; with ``reuse`` the kept arrays of those sizes (taken out, so two runs at
    once never share them; :func:`give_back_page_arrays` returns them), and kept arrays of
    another size are dropped first.

    The link arrays are left as they are (fresh memory, or the last run's links): a page's
    links are only read while it is on a list, and written when it enters one
    (fphlib.state.lists). So are the pool slots: the caller presets those that start at -1,
    and a workload that asks for no preset writes each slot before it reads it
    (fphlib.workloads.Setup). A test fills both with garbage and checks that no result
    changes.
    """
    kept = (None,) * 5
    if reuse:
        with _SPARE_LOCK:
            if _SPARE:
                kept = _SPARE.pop()
    nxt, prv, state, flags, pool = kept
    kept = None  # arrays of another size are freed before this run's are mapped
    if nxt is None or nxt.shape[0] != n_pages:
        nxt = prv = state = flags = None
        nxt, prv = _fresh_zeros(n_pages, np.int32), _fresh_zeros(n_pages, np.int32)
        state, flags = _fresh_zeros(n_pages, np.int8), _fresh_zeros(n_pages, np.uint8)
    else:
        flags.fill(0)
    state.fill(NOT_HEAD)
    if pool is None or pool.shape[0] != n_slots:
        pool = None
        # zeros: memory the kernel maps on first write, so slots never used cost nothing
        pool = _fresh_zeros(n_slots, np.int32)
    return nxt, prv, state, flags, pool


def give_back_page_arrays(s):
    """Keep the per-page arrays and the pool of a finished run's state ``s`` for the next run
    of its size (:func:`page_arrays`), in place of any kept before; ``s`` must not be used
    again."""
    with _SPARE_LOCK:
        _SPARE[:] = [(s.nxt, s.prv, s.state, s.flags, s.pool)]


def release_page_arrays():
    """Drop the arrays kept for the next run (10 bytes per guest page and 4 per pool slot)."""
    with _SPARE_LOCK:
        _SPARE.clear()


def build_state(cfg, bind=True, reuse=False):
    """Return (EngineState, info dict) for ``cfg`` with every page free and unbacked; with
    ``bind`` its units compiled (or loaded) and bound (:func:`bind_units`); with ``reuse``
    the per-page arrays and pool kept from an earlier run when there are (:func:`page_arrays`)."""
    G = cfg.guests
    V = cfg.vcpus
    specs = [cfg.guest_spec(g) for g in range(G)]
    npages = [spec["mem"] // PAGE_SIZE for spec in specs]
    offs = np.concatenate([[0], np.cumsum(npages)]).astype(np.int64)
    P = int(offs[-1])
    dt = TICK_S
    n_ticks = max(1, round(cfg.duration_s / dt))
    every = max(1, round(cfg.sample_s / dt))
    n_samples = n_ticks // every + 1

    gi = np.zeros((G, L.NGI), np.int64)
    gf = np.zeros((G, L.NGF), np.float64)
    wp = np.zeros((G, L.NWP), np.float64)
    modules = [WORKLOADS.module(spec["workload"]) for spec in specs]
    wstates = [getattr(m, "STATE", L.PrivateState()) for m in modules]
    wl_i = np.zeros((G, max(1, *(len(st.ints) for st in wstates))), np.int64)
    wl_f = np.zeros((G, max(1, *(len(st.floats) for st in wstates))), np.float64)
    slots = workload_slots(specs)
    seeds = np.random.SeedSequence(cfg.seed).spawn(G)
    traces = []
    preset = []  # (offset, slots) of the pool to start at -1 (Setup.pool_preset)
    pool_off = 0
    tr_off = 0
    for g, spec in enumerate(specs):
        n = npages[g]
        wl = spec["workload"]
        gi[g, L.GI.OFF] = offs[g]
        gi[g, L.GI.NPAGES] = n
        gi[g, L.GI.WL] = slots.get(wl, -1)
        gi[g, L.GI.HELD_HEAD] = gi[g, L.GI.HELD_TAIL] = -1
        # hinting on until a policy says otherwise (for a guest that gives at all)
        init_cooperation(gi[g], gf[g], spec["cooperation"], n, PAGE_SIZE)
        wmin, wlow, whigh = watermarks(n)
        gi[g, L.GI.MIN_WMARK], gi[g, L.GI.LOW_WMARK], gi[g, L.GI.HIGH_WMARK] = wmin, wlow, whigh
        gi[g, L.GI.PCP_BATCH], gi[g, L.GI.PCP_HIGH] = pcp_batch_high(n)
        # every parameter: given, else its default (fphlib.workloads: COMMON and the module's)
        params = workload_settings(wl, spec["workload_params"])
        start = float(spec["start_s"])
        gf[g, L.GF.START] = start
        gf[g, L.GF.WL_START] = start + float(params["start_s"])
        gf[g, L.GF.WL_NEXT] = gf[g, L.GF.WL_START]
        gf[g, L.GF.WL_END] = np.nan
        wp[g, L.WP.BOOT] = min(params["boot"], n * PAGE_SIZE)
        boot_pages = int(wp[g, L.WP.BOOT]) // PAGE_SIZE  # split in pages (bytes in wp)
        wp[g, L.WP.BOOT_SLAB] = round(params["boot_slab"] * boot_pages) * PAGE_SIZE
        wp[g, L.WP.BOOT_CACHE] = round(params["boot_cache"] * boot_pages) * PAGE_SIZE
        for name, column in _WP_AS_GIVEN.items():
            wp[g, column] = params[name]
        gi[g, L.GI.PC_HEAD] = gi[g, L.GI.PC_TAIL] = -1
        gi[g, L.GI.SLAB_HEAD] = gi[g, L.GI.SLAB_TAIL] = -1
        gi[g, L.GI.GSWAP_CAP] = cfg.guest_swap // PAGE_SIZE
        # the kernel's watermarks and reclaim, for a guest with anything to reclaim
        gi[g, L.GI.MM_ON] = int(wp[g, L.WP.BOOT_SLAB] + wp[g, L.WP.BOOT_CACHE] > 0
                                or wp[g, L.WP.IO_RATE] > 0 or cfg.guest_swap > 0)
        if wstates[g].init:  # the workload's private columns
            wstates[g].init(params, n, V, wl_i[g], wl_f[g])
        build = getattr(modules[g], "build", None)
        setup = build(params, n, build_rng(seeds[g])) if build is not None else Setup()
        if setup.trace is not None:
            traces.append(setup.trace)
            gi[g, L.GI.TR_OFF] = tr_off
            gi[g, L.GI.TR_N] = len(setup.trace[0])
            tr_off += len(setup.trace[0])
        gi[g, L.GI.POOL_OFF] = pool_off
        gi[g, L.GI.POOL_CAP] = setup.pool
        if setup.pool_preset:
            preset.append((pool_off, setup.pool))
        pool_off += setup.pool

    def cat(i, dtype):
        return np.concatenate([t[i] for t in traces]) if traces else np.zeros(0, dtype)

    hi = np.zeros(L.NHI, np.int64)
    hi[L.HI.RAM_PAGES] = cfg.host_mem // PAGE_SIZE
    hi[L.HI.SWAP_CAP] = cfg.host_swap // PAGE_SIZE
    # the host's own memory, in use from the start (guests add their VMM overhead at boot)
    hi[L.HI.OVERHEAD_PAGES] = cfg.host_reserve_bytes() // PAGE_SIZE
    hi[L.HI.WMARK_MIN], hi[L.HI.WMARK_LOW], hi[L.HI.WMARK_HIGH] = watermarks(
        cfg.host_mem // PAGE_SIZE)
    for g in range(G):
        gi[g, L.GI.OOM_ADJ] = cfg.guest_spec(g).get("oom_score_adj", 0)
    pi = np.zeros(L.NPI, np.int64)
    pi[L.PI.G] = G
    mech = mechanism_module(cfg.mechanism)
    mparams = cfg.mechanism_settings()
    policy = policy_module(cfg.policy)
    pparams = cfg.policy_settings()
    pi[L.PI.MECH] = MECHANISMS.index(cfg.mechanism)
    pi[L.PI.POLICY] = POLICIES.index(cfg.policy)
    pi[L.PI.HINT_ORDER] = cfg.hint_order
    pi[L.PI.FREE_HOOK_ORDER] = free_hook_order(mech, mparams, cfg.hint_order)
    pi[L.PI.THP] = int(cfg.host_thp)
    pi[L.PI.VCPUS] = V
    pi[L.PI.DEBUG] = int(cfg.debug)
    pi[L.PI.SAFE] = int(mechanism_is_safe(cfg.mechanism, cfg.mechanism_settings()))
    pi[L.PI.N_TICKS] = n_ticks
    pi[L.PI.SAMPLE_TICKS] = every
    pi[L.PI.KSWAPD] = int(cfg.host_kswapd)
    pi[L.PI.KHUGEPAGED] = int(cfg.host_khugepaged and cfg.host_thp)
    pi[L.PI.MADV_FREE] = int(cfg.madvise() == "free")
    pf = np.zeros(L.NPF, np.float64)
    pf[L.PF.DT] = dt
    pf[L.PF.POLICY_INTERVAL] = pparams["interval_s"]
    bw = cfg.host_swap_bandwidth
    pf[L.PF.SWAP_PAGE_S] = PAGE_SIZE / bw if bw > 0 else 0.0
    hf = np.zeros(L.NHF, np.float64)
    hf[L.HF.POLICY_NEXT] = pparams["interval_s"]  # a policy acts after its first interval
    # khugepaged's first scan after one scan_sleep_millisecs; kswapd sleeps until woken
    hf[L.HF.KHUGE_NEXT] = SCAN_SLEEP_S if pi[L.PI.KHUGEPAGED] else np.inf
    hf[L.HF.HOST_NEXT] = hf[L.HF.KHUGE_NEXT]

    mstate = getattr(mech, "STATE", L.PrivateState())
    mi, mf, mbuf = private_arrays(mstate, mparams, npages, V, gi, L.GI.MBUF_OFF)
    pstate = getattr(policy, "STATE", L.PrivateState())
    pol_i, pol_f, _ = private_arrays(pstate, pparams, npages, V, None, None)
    if hasattr(policy, "init_guest"):  # per-guest settings (shares, min, max) and seeds
        for g in range(G):
            policy.init_guest(pparams, cfg, g, pol_i[g], pol_f[g])
    pol_si = np.zeros(max(1, len(pstate.shared_ints)), np.int64)
    pol_sf = np.zeros(max(1, len(pstate.shared_floats)), np.float64)
    if pstate.shared_init:  # the policy's values for the whole run
        pstate.shared_init(pparams, cfg, pol_si, pol_sf)
    slots = max(1, mstate.discard_slots(mparams) if mstate.discard_slots else 1)
    track = TRACK_MODES[mstate.tracking(mparams) if mstate.tracking else None]
    xb = []
    for g in range(G):
        nodes, leaves, meta = tracking_arrays(npages[g] if track else 0, track)
        xb.append((nodes, leaves, meta))
        gi[g, L.GI.XB_NODE_N] = len(nodes)
        gi[g, L.GI.XB_LEAF_N] = len(leaves)
        if g + 1 < G:
            gi[g + 1, L.GI.XB_NODE_OFF] = gi[g, L.GI.XB_NODE_OFF] + len(nodes)
            gi[g + 1, L.GI.XB_LEAF_OFF] = gi[g, L.GI.XB_LEAF_OFF] + len(leaves)

    rng = np.array([sq.generate_state(1, np.uint64)[0] for sq in seeds], np.uint64)

    mig_i, mig_f, mig_bmap = migration_arrays(cfg.migration, npages[0])

    z_cfg = np.zeros((G, CFG_LEN), np.int64)
    z_cfg[:, CFG_PLACEMENT] = 1  # kernel placement (buddy_merge_likely, v5.10)
    z_cfg[:, CFG_TRACK] = track
    # the page_reporting_enabled static key: off unless the mechanism marks reported pages
    z_cfg[:, CFG_REPORTING_OFF] = int(not getattr(mech, "REPORTS_PAGES", False))
    nxt, prv, state, flags, pool = page_arrays(P, pool_off, reuse)
    for off, n in preset:
        pool[off:off + n] = -1
    s = L.EngineState(
        nxt=nxt,
        prv=prv,
        state=state,
        flags=flags,
        reg_cnt=np.zeros(P // HPAGE_PAGES, np.uint16),
        reg_huge=np.zeros(P // HPAGE_PAGES, np.uint8),
        z_head=np.full((G, NR_ORDERS), -1, np.int32),
        z_tail=np.full((G, NR_ORDERS), -1, np.int32),
        z_nr=np.zeros((G, NR_ORDERS), np.int64),
        z_cfg=z_cfg,
        xb_nodes=np.concatenate([x[0] for x in xb]),
        xb_leaves=np.concatenate([x[1] for x in xb]),
        xb_meta=np.stack([x[2] for x in xb]),
        pcp_head=np.full((G, V), -1, np.int64),
        pcp_tail=np.full((G, V), -1, np.int64),
        pcp_cnt=np.zeros((G, V), np.int64),
        gi=gi,
        gf=gf,
        wp=wp,
        wl_i=wl_i,
        wl_f=wl_f,
        rng=rng,
        mi=mi,
        mf=mf,
        mbuf=mbuf,
        pol_i=pol_i,
        pol_f=pol_f,
        pol_si=pol_si,
        pol_sf=pol_sf,
        dq_t=np.zeros((G, slots), np.float64),
        dq_pfn=np.zeros((G, slots), np.int64),
        dq_n=np.zeros((G, slots), np.int64),
        pool=pool,
        tr_t=cat(0, np.int64),
        tr_kind=cat(1, np.int8),
        tr_order=cat(2, np.int8),
        tr_slot=cat(3, np.int32),
        hi=hi,
        hf=hf,
        pi=pi,
        pf=pf,
        cost=cost_array(cfg.costs),
        rec_h=np.zeros((n_samples, L.NRH), np.float64),
        rec_g=np.zeros((n_samples, G, L.NRG), np.float64),
        ev=np.zeros((L.MAX_EVENTS, 4), np.float64),
        err=np.zeros(8, np.int64),
        mig_i=mig_i,
        mig_f=mig_f,
        mig_bmap=mig_bmap,
        fn=np.zeros(units.N_SLOTS, np.int64),
        self_ref=np.zeros(1, np.int64),
    )
    s = s._replace(self_ref=np.zeros(units.ref_words(units.state_type(s), G), np.int64))
    for g in range(G):
        init_free_lists(guest_zone(s, g))
    if bind:
        bind_units(s, cfg)
    info = {"n_ticks": n_ticks, "every": every, "n_samples": n_samples, "dt": dt}
    return s, info


def bind_units(s, cfg):
    """Compile (or load) the separate units this run needs and store their addresses in
    ``s.fn`` (:mod:`fphlib.state.units`). Nothing else is compiled, so a first run pays only
    for what it uses; a cold cache compiles them in parallel processes (parallel_compile)."""
    slots = unit_slots(s, cfg)
    precompile(compile_items(s, slots))
    units.bind(s, slots)


def unit_slots(s, cfg):
    """``{slot: (unit, function)}`` of the units the run of ``cfg`` (state ``s``) needs: its
    mechanism's hooks, its policy's step, the migration thread if it migrates, the steps of
    the workloads its guests run, the host's reclaim path and its daemons (kswapd,
    khugepaged) if on, the guest's reclaim if it has anything to reclaim, the debug checks if
    ``debug``."""
    slots = {units.SLOT[unit]: (unit, f) for unit, f in hook_functions(cfg.mechanism).items()}
    slots[units.SLOT["policy_step"]] = ("policy_step", policy_module(cfg.policy).step)
    if cfg.migration:
        slots[units.SLOT["migration_step"]] = ("migration_step", migration_step)
    if cfg.debug:
        slots[units.SLOT["debug_check"]] = ("debug_check", check_all)
    slots[units.SLOT["host_ensure_ram"]] = ("host_ensure_ram", ensure_ram)
    if cfg.host_kswapd or (cfg.host_khugepaged and cfg.host_thp):
        slots[units.SLOT["host_step"]] = ("host_step", host_step)
    slots[units.SLOT["guest_boot"]] = ("guest_boot", boot)
    slots[units.SLOT["guest_alloc_slowpath"]] = ("guest_alloc_slowpath", alloc_pages)
    if s.gi[:, L.GI.MM_ON].any():  # page cache, slab, guest swap: the guest's reclaim
        slots[units.SLOT["guest_reclaim"]] = ("guest_reclaim", guest_reclaim)
        slots[units.SLOT["guest_mm_step"]] = ("guest_mm_step", mm_step)
    for wl, slot in workload_slots([cfg.guest_spec(g) for g in range(cfg.guests)]).items():
        slots[units.SLOT_WORKLOAD + slot] = ("workload_step", WORKLOADS.module(wl).step)
    return slots


def compile_items(s, slots):
    """The :func:`fphlib.engine.parallel_compile.precompile` items of a run: its units
    (``slots`` from :func:`unit_slots`), the loop and ``publish``, the longest compiles
    first so that no process is left with a long one at the end."""
    state_type = units.state_type(s)
    by_length = sorted(slots.values(), key=lambda item: _COMPILE_RANK.get(item[0], 0),
                       reverse=True)
    return ([(f, units.signature(unit, state_type), False) for unit, f in by_length[:3]]
            + [(run_chunk, (state_type, types.int64, types.int64), True)]
            + [(f, units.signature(unit, state_type), False) for unit, f in by_length[3:]]
            + [(publish, (state_type,), True)])


# Units whose cold compile is long, longest first (seconds on a 2-core machine, 2026-12:
# benchmarks/compile_profile.py); parallel_compile starts them first so that no process is
# left with a long one at the end. Only the order depends on it.
_COMPILE_RANK = {"guest_boot": 9, "host_ensure_ram": 8, "workload_step": 7, "mech_tick": 6,
                 "host_step": 5, "guest_alloc_slowpath": 4, "guest_reclaim": 3,
                 "guest_mm_step": 2}


def private_arrays(state, params, npages, vcpus, gi, off_col):
    """``(ints, floats, buffer)`` of a mechanism's or policy's :class:`PrivateState` for
    every guest (at least one column each, so the arrays' types never change)."""
    G = len(npages)
    ints = np.zeros((G, max(1, len(state.ints))), np.int64)
    floats = np.zeros((G, max(1, len(state.floats))), np.float64)
    lens = [state.buffer(params, n, vcpus) if state.buffer else 0 for n in npages]
    offs = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    if gi is not None:
        gi[:, off_col] = offs[:-1]
    floats[:, 0] = np.inf  # MECH_WAKE (mechanisms); a policy's first column likewise unused
    for g, n in enumerate(npages):
        if state.init:
            state.init(params, n, vcpus, ints[g], floats[g])
    return ints, floats, np.zeros(max(1, int(offs[-1])), np.int64)


def state_nbytes(s):
    """Bytes of all engine arrays."""
    return sum(a.nbytes for a in s)
