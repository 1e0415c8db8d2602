"""``churn``: steady allocation and freeing around a target occupancy, kernel-like order mix.

Each operation is an allocation with probability ``clip(0.5 + 2 (target - held) / target)``
(so the guest ramps up to ``target`` of its memory and then hovers there) and otherwise frees
a uniformly random held block: lifetimes are exponential with mean
``held_blocks / free_rate`` (``lifetime_s`` sets ``ops_per_s`` to ``2 * target_blocks /
lifetime_s``). Orders are drawn from ``orders`` (weights), vCPUs uniformly. Held blocks sit
in a pool of pfns (4 bytes per held block: ≤ 4 bytes per guest page).
"""

from .._jit import jit
from ..engine.rng import randint, uniform
from ..guest.mm import block_order
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import (
    GF_CREDIT,
    GI_POOL_CAP,
    GI_POOL_N,
    GI_POOL_OFF,
    GI_WL_CUR,
    PI_VCPUS,
    WP_OPS,
    WP_TARGET,
)
from .common import alloc_touch, pay_debt, release


@jit(inline="always")
def _pick_order(s, g):
    u = uniform(s.rng, g)
    for o in range(s.wmix.shape[1]):
        if u < s.wmix[g, o]:
            return o
    return 0


@jit
def churn_step(s, g, z, t, dt, cost, ovh):
    """One tick [t, t + dt) of churn on guest g; False if the guest was killed."""
    s = borrow_state(s)
    z = borrow_zone(z)
    avail = pay_debt(s, g, dt)
    credit = s.gf[g, GF_CREDIT] + s.wp[g, WP_OPS] * avail
    target = s.wp[g, WP_TARGET] / 4096.0
    off = s.gi[g, GI_POOL_OFF]
    vcpus = s.pi[PI_VCPUS]
    while credit >= 1.0:
        credit -= 1.0
        held = s.gi[g, GI_WL_CUR]
        p_alloc = 0.5 + 2.0 * (target - held) / target
        n = s.gi[g, GI_POOL_N]
        if uniform(s.rng, g) < p_alloc and n < s.gi[g, GI_POOL_CAP]:
            order = _pick_order(s, g)
            cpu = randint(s.rng, g, vcpus)
            pfn = alloc_touch(s, g, z, order, cpu, t, cost, ovh)
            if pfn == -2:
                return False
            if pfn >= 0:
                s.pool[off + n] = pfn
                s.gi[g, GI_POOL_N] = n + 1
                s.gi[g, GI_WL_CUR] += 1 << order
        elif n > 0:
            i = randint(s.rng, g, n)
            pfn = s.pool[off + i]
            s.pool[off + i] = s.pool[off + n - 1]
            s.pool[off + n - 1] = -1
            s.gi[g, GI_POOL_N] = n - 1
            order = block_order(z, pfn)
            s.gi[g, GI_WL_CUR] -= 1 << order
            release(s, g, z, pfn, order, randint(s.rng, g, vcpus), t)
    s.gf[g, GF_CREDIT] = credit
    return True
