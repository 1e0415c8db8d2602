"""The engine: one jitted loop over simulated time (docs/design.md §1, §3).

Time model
----------
- Time advances in fixed ticks of ``TICK_S`` = 1 ms. In each tick, guests are processed in
  index order; for each guest: boot (at its start tick), the workload's operations for the
  tick, then the hinting mechanism's own instants that fall inside the tick. Events of
  different guests within one tick are therefore ordered by guest index, not by exact time.
- Workloads are rate based: memhog touches ``rate`` bytes/s, churn does ``ops_per_s``
  operations/s, with fractional credit carried between ticks. A stall (fault, swap-in,
  deflate-on-OOM) is a time debt the workload pays before doing more work, so stalls slow
  the workload and stretch ``workload_runtime_s``.
- Mechanisms are event driven at their own instants inside a tick: the page reporting worker
  wakes at its scheduled delayed-work time and at each ack (report round trip = exit + kick
  wakeup + host discard time + ack), the balloon driver at each message ack; list walks and
  isolations take no simulated time (their CPU cost is charged as zone->lock holds). The host
  performs a discard when the request arrives (at the kick), so isolated pages are never
  reallocated before the discard - the point of isolation.
- A live migration (``SimConfig.migration``, :mod:`fphlib.host.migration`) runs its thread
  in each tick after the host policy and before the guests, so the guests' hints and writes
  of a tick follow the pages it sent in that tick.
- Samples are taken every ``sample_s`` (rounded to whole ticks) at tick starts, so the sample
  at t shows the state after every tick before t; the last sample is at ``duration_s``.
- The loop calls the run's mechanism hooks, host policy, workload steps and migration thread
  through the addresses ``build`` bound in ``s.fn`` (:mod:`fphlib.state.units`): each is its
  own compile unit, so the loop's code is the same for every configuration and a first run
  compiles only what it uses.
- The loop runs in chunks of ticks; all state lives in arrays between chunks, so chunking
  (progress bars) changes nothing.

- The host's kswapd and khugepaged (:mod:`fphlib.host.daemons`) run at the end of a tick
  in which they have an instant (kswapd: every tick while awake), after the guests.
- A guest's page-cache I/O and kswapd (fphlib.guest.reclaim) run after its workload in each
  tick, when it does I/O or an allocation woke kswapd.

Simplifications (besides those listed in each module): one NUMA node and one zone per guest;
no compaction or page shuffling; vCPUs of a guest run one workload thread (memhog on vCPU 0,
churn on random vCPUs); the host's memory is backed guest pages + a fixed overhead per
running guest + a fixed host reserve (``host_reserve``).
"""


from .._jit import jit
from ..costs import C_GUEST_OVERHEAD
from ..guest.buddy import nr_free_pages
from ..guest.cooperation import cooperation_step
from ..host.backing import note_peak, record_event
from ..host.discard_queue import discard_due
from ..state.borrow import borrow_state, borrow_zone, zone_of
from ..state.hooks import (
    debug_check,
    guest_boot,
    guest_mm_step,
    host_ensure_ram,
    host_step,
    mech_reported_pages,
    mech_start,
    mech_tick,
    migration_step,
    policy_step,
    workload_step,
)
from ..state.layout import (
    EV_GUEST_START,
    GF,
    GI,
    HF,
    HI,
    MECH_WAKE,
    MF,
    PF,
    PI,
    RG,
    RH,
    ST_RUNNING,
    ST_WAITING,
    WP,
)
from ..state.units import publish
from ..units import PAGE_SIZE
from .check import check_guest, check_host

TICK_S = 1e-3
EPS = 1e-9


@jit
def sample(s, k):
    """Record sample k of the host and every guest."""
    s = borrow_state(s)
    ovh = int(s.cost[C_GUEST_OVERHEAD]) // PAGE_SIZE
    for g in range(s.pi[PI.G]):
        z = zone_of(s, g)
        running = s.gi[g, GI.STATUS] == ST_RUNNING
        s.rec_g[k, g, RG.RSS] = (s.gi[g, GI.RSS] + (ovh if running else 0)) * PAGE_SIZE
        s.rec_g[k, g, RG.FREE] = nr_free_pages(z) * PAGE_SIZE
        # cumulative, like the summary's reported_bytes (which is its last sample)
        s.rec_g[k, g, RG.REPORTED] = s.gi[g, GI.REPORTED_PAGES] * PAGE_SIZE
        s.rec_g[k, g, RG.REPORTED_FREE] = mech_reported_pages(s, g, z) * PAGE_SIZE
        s.rec_g[k, g, RG.ISOLATED] = s.gi[g, GI.ISOLATED] * PAGE_SIZE
        s.rec_g[k, g, RG.USED] = s.gi[g, GI.USED] * PAGE_SIZE
        pcp = 0
        for cpu in range(s.pcp_cnt.shape[1]):
            pcp += s.pcp_cnt[g, cpu]
        s.rec_g[k, g, RG.PCP] = pcp * PAGE_SIZE
        s.rec_g[k, g, RG.BALLOON] = s.gi[g, GI.BALLOON] * PAGE_SIZE
        s.rec_g[k, g, RG.SWAP] = s.gi[g, GI.SWAP] * PAGE_SIZE
        s.rec_g[k, g, RG.PAGE_CACHE] = s.gi[g, GI.PC] * PAGE_SIZE
        s.rec_g[k, g, RG.SLAB] = s.gi[g, GI.SLAB] * PAGE_SIZE
        s.rec_g[k, g, RG.GUEST_SWAP] = s.gi[g, GI.GSWAP] * PAGE_SIZE
        s.rec_g[k, g, RG.RETURNED] = s.gi[g, GI.RETURNED] * PAGE_SIZE
    used = s.hi[HI.RSS] + s.hi[HI.OVERHEAD_PAGES]
    s.rec_h[k, RH.RSS] = used * PAGE_SIZE
    s.rec_h[k, RH.SWAP] = s.hi[HI.SWAP] * PAGE_SIZE
    s.rec_h[k, RH.FREE] = (s.hi[HI.RAM_PAGES] - used) * PAGE_SIZE


@jit
def check_all(s, k):
    """Debug invariants of every guest and the host; record the first violation."""
    s = borrow_state(s)
    for g in range(s.pi[PI.G]):
        code, detail = check_guest(s, g, zone_of(s, g))
        if code:
            s.err[0] = code
            s.err[1] = g
            s.err[2] = k
            s.err[3] = detail
            return code
    code, detail = check_host(s)
    if code:
        s.err[0] = code
        s.err[1] = -1
        s.err[2] = k
        s.err[3] = detail
    return code


@jit(inline="always")  # one call site
def _start_guest(s, g, z, t, ovh):
    s = borrow_state(s)
    z = borrow_zone(z)
    s.gi[g, GI.STATUS] = ST_RUNNING
    s.hi[HI.OVERHEAD_PAGES] += ovh
    record_event(s, t, g, EV_GUEST_START, 0.0)
    host_ensure_ram(s, 0, t, g, s.cost, ovh)
    if s.gi[g, GI.STATUS] != ST_RUNNING:
        return
    if not guest_boot(s, g, z, t, s.cost, ovh):
        return
    mech_start(s, g, z, t, s.cost)


@jit
def run_chunk(s, tick0, tick1):
    """Run ticks [tick0, tick1) (sampling at tick starts); return 0, or 1 on a violation."""
    publish(s)  # the state the units get by reference (fphlib.state.units); as bind calls it
    s = borrow_state(s)
    cost = s.cost
    ovh = int(cost[C_GUEST_OVERHEAD]) // PAGE_SIZE
    G = s.pi[PI.G]
    dt = s.pf[PF.DT]
    every = s.pi[PI.SAMPLE_TICKS]
    n_ticks = s.pi[PI.N_TICKS]
    for i in range(tick0, tick1):
        t = i * dt
        if i % every == 0:
            sample(s, i // every)
            if s.pi[PI.DEBUG] and debug_check(s, i // every):
                return 1
        if i >= n_ticks:
            break
        t_end = t + dt
        # the host policy's instants in this tick, before the guests
        while s.hf[HF.POLICY_NEXT] <= t_end:
            now = s.hf[HF.POLICY_NEXT]
            policy_step(s, now, cost)
            s.hf[HF.POLICY_NEXT] = now + s.pf[PF.POLICY_INTERVAL]
        # the live migration thread (fphlib.host.migration), before the guests
        if s.mig_f[MF.NEXT] <= t_end:
            migration_step(s, t_end, cost)
        for g in range(G):
            status = s.gi[g, GI.STATUS]
            if status == ST_WAITING:
                if t + EPS < s.gf[g, GF.START]:
                    continue
                _start_guest(s, g, zone_of(s, g), t, ovh)
            if s.gi[g, GI.STATUS] != ST_RUNNING:
                continue
            z = zone_of(s, g)
            if t + EPS >= s.gf[g, GF.WL_START]:
                wl = s.gi[g, GI.WL]
                if wl >= 0:  # each workload's step is its own unit (fphlib.state.units)
                    if not workload_step(s, wl, g, z, t, dt, cost, ovh):
                        continue
                    if s.gi[g, GI.STATUS] != ST_RUNNING:
                        continue
            # page-cache I/O and kswapd (fphlib.workloads.io, its own unit), when they have work
            if s.gi[g, GI.KSWAPD] or s.wp[g, WP.IO_RATE] > 0.0:
                guest_mm_step(s, g, z, t, dt, cost, ovh)
                if s.gi[g, GI.STATUS] != ST_RUNNING:
                    continue
            # a guest that answers late, partly or up to a cap (fphlib.guest.cooperation)
            if s.gi[g, GI.COOP]:
                cooperation_step(s, g, t_end)
            # the mechanism's instants (its mf column MECH_WAKE) and the host's new asks
            if s.mf[g, MECH_WAKE] <= t_end or s.gi[g, GI.ASK_SEQ] != s.gi[g, GI.ASK_TOLD]:
                s.gi[g, GI.ASK_TOLD] = s.gi[g, GI.ASK_SEQ]
                mech_tick(s, g, z, t_end, cost)
            if s.gi[g, GI.DQ_N]:
                discard_due(s, g, z, t_end, cost)  # discards no mechanism waited for
        # the host's kswapd and khugepaged (fphlib.host.daemons), after the guests' faults
        if s.hf[HF.HOST_NEXT] <= t_end:
            host_step(s, t_end, cost)
        note_peak(s)
    return 0
