"""The hooks through which guest memory management and the engine reach the mechanism, the host
policy, the workloads and the migration thread of a run, without importing them (guest/ and
host/ sit below hinting/; the engine imports no mechanism).

Each hook calls the function :func:`fphlib.state.units.bind` stored for the run in
``s.fn`` (a separate compile unit, see :mod:`fphlib.state.units`); ``fphlib.engine.build``
decides which function each slot holds: the mechanism's hooks, the policy's step, the
workloads' steps, the migration thread, the host's reclaim path, the debug checks. An empty
slot (address 0: a hook the mechanism leaves out, no migration, no ``debug``) is a no-op
returning 0, so nothing is compiled for it.
"""

from .._jit import jit
from .units import SLOT, SLOT_WORKLOAD, caller

_start = caller("mech_start")
_tick = caller("mech_tick")
_on_free = caller("mech_on_free")
_on_free_page = caller("mech_on_free_page")
_on_alloc_fail = caller("mech_on_alloc_fail")
_reported_pages = caller("mech_reported_pages")
_policy_step = caller("policy_step")
_migration_step = caller("migration_step")
_workload_step = caller("workload_step")
_host_ensure_ram = caller("host_ensure_ram")
_debug_check = caller("debug_check")
_guest_boot = caller("guest_boot")
_guest_alloc_slowpath = caller("guest_alloc_slowpath")
_host_step = caller("host_step")
_guest_reclaim = caller("guest_reclaim")
_guest_mm_step = caller("guest_mm_step")
_SLOT_MECH_START = SLOT["mech_start"]
_SLOT_MECH_TICK = SLOT["mech_tick"]
_SLOT_MECH_ON_FREE = SLOT["mech_on_free"]
_SLOT_MECH_ON_FREE_PAGE = SLOT["mech_on_free_page"]
_SLOT_MECH_ON_ALLOC_FAIL = SLOT["mech_on_alloc_fail"]
_SLOT_MECH_REPORTED_PAGES = SLOT["mech_reported_pages"]
_SLOT_POLICY_STEP = SLOT["policy_step"]
_SLOT_MIGRATION_STEP = SLOT["migration_step"]
_SLOT_HOST_ENSURE_RAM = SLOT["host_ensure_ram"]
_SLOT_DEBUG_CHECK = SLOT["debug_check"]
_SLOT_GUEST_BOOT = SLOT["guest_boot"]
_SLOT_GUEST_ALLOC_SLOWPATH = SLOT["guest_alloc_slowpath"]
_SLOT_HOST_STEP = SLOT["host_step"]
_SLOT_GUEST_RECLAIM = SLOT["guest_reclaim"]
_SLOT_GUEST_MM_STEP = SLOT["guest_mm_step"]


@jit(inline="always")
def mech_start(s, g, z, t, cost):
    """The mechanism's ``start`` when guest g boots."""
    fn = s.fn[_SLOT_MECH_START]
    if fn != 0:
        _start(fn, s, g, z, t, cost)


@jit(inline="always")
def mech_tick(s, g, z, t_end, cost):
    """The mechanism's instants of guest g up to ``t_end``."""
    fn = s.fn[_SLOT_MECH_TICK]
    if fn != 0:
        _tick(fn, s, g, z, t_end, cost)


@jit(inline="always")
def mech_on_free(s, g, z, pfn, order, t):
    """The mechanism's ``on_free`` for a block merged to ``order`` at ``pfn`` (given the
    run's cost table like every other hook)."""
    fn = s.fn[_SLOT_MECH_ON_FREE]
    if fn != 0:
        _on_free(fn, s, g, z, pfn, order, t, s.cost)


@jit(inline="always")
def mech_on_free_page(s, g, z, cpu, pfn, order, t):
    """The mechanism's ``on_free_page``: ``arch_free_page`` of a block as freed on vCPU ``cpu``,
    before the pcp list or the buddy sees it."""
    fn = s.fn[_SLOT_MECH_ON_FREE_PAGE]
    if fn != 0:
        _on_free_page(fn, s, g, z, cpu, pfn, order, t, s.cost)


@jit(inline="always")
def mech_on_alloc_fail(s, g, z, t, cost):
    """The mechanism's answer to a failed allocation: (pages freed, stall s)."""
    fn = s.fn[_SLOT_MECH_ON_ALLOC_FAIL]
    if fn == 0:
        return 0, 0.0
    return _on_alloc_fail(fn, s, g, z, t, cost)


@jit(inline="always")
def mech_reported_pages(s, g, z):
    """Pages of guest g the mechanism has reported (discarded by the host) now."""
    fn = s.fn[_SLOT_MECH_REPORTED_PAGES]
    if fn == 0:
        return 0
    return _reported_pages(fn, s, g, z)


@jit(inline="always")
def policy_step(s, now, cost):
    """The host policy's step at ``now``."""
    fn = s.fn[_SLOT_POLICY_STEP]
    if fn != 0:
        _policy_step(fn, s, now, cost)


@jit(inline="always")
def migration_step(s, now, cost):
    """The live migration thread up to ``now`` (fphlib.host.migration)."""
    fn = s.fn[_SLOT_MIGRATION_STEP]
    if fn != 0:
        _migration_step(fn, s, now, cost)


@jit(inline="always")
def workload_step(s, wl, g, z, t, dt, cost, ovh):
    """One tick of guest g's workload ``wl``; False when the guest's workload ended or died."""
    return _workload_step(s.fn[SLOT_WORKLOAD + wl], s, g, z, t, dt, cost, ovh)


@jit(inline="always")
def host_ensure_ram(s, need, t, g, cost, ovh):
    """Make room for ``need`` more backed host pages for guest g (the host's slow path:
    reclaim, swap, OOM kill; fphlib.host.backing.ensure_ram)."""
    _host_ensure_ram(s.fn[_SLOT_HOST_ENSURE_RAM], s, need, t, g, cost, ovh)


@jit(inline="always")
def debug_check(s, k):
    """Debug invariants at sample k (fphlib.engine.loop.check_all); nonzero on a violation."""
    fn = s.fn[_SLOT_DEBUG_CHECK]
    if fn == 0:
        return 0
    return _debug_check(fn, s, k)


@jit(inline="always")
def guest_boot(s, g, z, t, cost, ovh):
    """Allocate and touch guest g's boot footprint (fphlib.workloads.common.boot)."""
    return _guest_boot(s.fn[_SLOT_GUEST_BOOT], s, g, z, t, cost, ovh)


@jit(inline="always")
def guest_alloc_slowpath(s, g, z, order, cpu, t, cost):
    """The allocation slow path after the pcp/buddy fast path failed: drain the pcp lists,
    ask the mechanism, retry (fphlib.guest.mm.alloc_pages); the pfn or -1."""
    return _guest_alloc_slowpath(s.fn[_SLOT_GUEST_ALLOC_SLOWPATH], s, g, z, order, cpu, t, cost)


@jit(inline="always")
def host_step(s, now, cost):
    """The host's kswapd and khugepaged up to ``now`` (fphlib.host.daemons.host_step)."""
    fn = s.fn[_SLOT_HOST_STEP]
    if fn != 0:
        _host_step(fn, s, now, cost)


@jit(inline="always")
def guest_reclaim(s, g, z, need, direct, t, cost):
    """The guest's reclaim of ``need`` pages (direct reclaim if ``direct``, else kswapd;
    fphlib.guest.reclaim.guest_reclaim); pages freed (0 when the run has no guest reclaim)."""
    fn = s.fn[_SLOT_GUEST_RECLAIM]
    if fn == 0:
        return 0
    return _guest_reclaim(fn, s, g, z, need, direct, t, cost)


@jit(inline="always")
def guest_mm_step(s, g, z, t, dt, cost, ovh):
    """Guest g's page-cache I/O and kswapd in one tick (fphlib.workloads.io.mm_step)."""
    fn = s.fn[_SLOT_GUEST_MM_STEP]
    if fn != 0:
        _guest_mm_step(fn, s, g, z, t, dt, cost, ovh)
