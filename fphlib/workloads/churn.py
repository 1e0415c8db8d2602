"""``churn``: steady allocation and freeing around a target occupancy, kernel-like order mix.

Each operation is an allocation with probability ``clip(0.5 + 2 (target - held) / target)``
(so the guest ramps up to ``target`` of its memory and then hovers there) and otherwise frees
a uniformly random held block: lifetimes are exponential with mean
``held_blocks / free_rate`` (``lifetime_s`` sets ``ops_per_s`` to ``2 * target_blocks /
lifetime_s``). Orders are drawn from ``orders`` (weights), vCPUs uniformly. Held blocks sit
in a pool of pfns (4 bytes per held block: ≤ 4 bytes per guest page).
"""

import numpy as np

from .._jit import borrowed, jit
from ..bounds import MAX_DURATION_S, MAX_OPS_PER_S, MAX_ORDER_WEIGHT, MIN_LIFETIME_S
from ..guest.mm import block_order
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GF, GI, PI, PrivateState, private_columns
from ..state.params import Param
from ..state.rng import randint, uniform
from ..units import NR_ORDERS, PAGE_SIZE
from . import Setup
from .common import alloc_touch, pay_debt, release

NAME = "churn"
# Kernel-like order mix: mostly order-0 (anonymous and page-cache pages), some order 1-3
# (slab, order-2 kernel stacks on x86-64), rare order-9 (guest THP).
DEFAULT_ORDERS = {0: 0.95, 1: 0.02, 2: 0.015, 3: 0.01, 9: 0.005}
PARAMS = {
    "target": Param("float", 0.5, 0.0, 0.95, "", "fraction of guest memory held at steady "
                    "state"),
    "ops_per_s": Param("float", 100_000.0, 1e-9, MAX_OPS_PER_S, "ops/s", "alloc + free "
                       "operations per second"),
    "lifetime_s": Param("float_or_none", None, MIN_LIFETIME_S, MAX_DURATION_S, "s", "mean "
                        "block lifetime; sets ops_per_s when given"),
    "orders": Param("orders", DEFAULT_ORDERS, 0.0, MAX_ORDER_WEIGHT, "", "order -> weight of "
                    "the blocks allocated"),
}
# private float columns (wl_f): the target in bytes, operations per second, then the
# cumulative order weights (the last is 1.0)
CH_TARGET, CH_OPS = private_columns("TARGET OPS")
CH_MIX = 2


def _weights(params):
    """The order weights as given (not normalized), one per order."""
    weights = np.zeros(NR_ORDERS)
    for o, w in params["orders"].items():
        weights[int(o)] = w
    return weights


def _mean_pages(weights):
    return float((weights / weights.sum()) @ (1 << np.arange(NR_ORDERS)))


def _ops_per_s(params, n_pages, weights):
    if params["lifetime_s"] is None:
        return params["ops_per_s"]
    return 2.0 * (params["target"] * n_pages / _mean_pages(weights)) / params["lifetime_s"]


def _init(params, n_pages, vcpus, ints, floats):
    weights = _weights(params)
    floats[CH_TARGET] = params["target"] * n_pages * PAGE_SIZE
    floats[CH_OPS] = _ops_per_s(params, n_pages, weights)
    floats[CH_MIX:CH_MIX + NR_ORDERS] = np.cumsum(weights) / weights.sum()
    floats[CH_MIX + NR_ORDERS - 1] = 1.0


STATE = PrivateState(floats=("TARGET", "OPS", *(f"MIX{o}" for o in range(NR_ORDERS))),
                     init=_init)


def build(params, n_pages, rng):
    """A pool for the held blocks: the target with a margin."""
    # step reads only slots below POOL_N, each written when its block was allocated
    return Setup(pool=int(1.25 * params["target"] * n_pages) + 1024, pool_preset=False)


def estimate_events(params, n_pages, active_s):
    """Operations in ``active_s``, in pages."""
    weights = _weights(params)
    ops = _ops_per_s(params, n_pages, weights)
    # the default mix counts one page per operation, as fphlib.api.limits always has (its
    # rare order-9 blocks would otherwise multiply the estimate by 3.7 and refuse hour-long
    # default runs that take two minutes); a given mix counts its mean block size
    mean = 1.0 if params["orders"] is DEFAULT_ORDERS else _mean_pages(weights)
    return ops * active_s * mean


@jit(inline="always")
def _pick_order(s, g):
    u = uniform(s.rng, g)
    for o in range(NR_ORDERS):
        if u < s.wl_f[g, CH_MIX + o]:
            return o
    return 0


@jit
def step(s, g, z, t, dt, cost, ovh):
    """One tick [t, t + dt) of churn on guest g; False if the guest was killed."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    avail = pay_debt(s, g, dt)
    credit = s.gf[g, GF.CREDIT] + s.wl_f[g, CH_OPS] * avail
    target = s.wl_f[g, CH_TARGET] / PAGE_SIZE
    off = s.gi[g, GI.POOL_OFF]
    vcpus = s.pi[PI.VCPUS]
    while credit >= 1.0:
        credit -= 1.0
        held = s.gi[g, GI.WL_CUR]
        p_alloc = 0.5 + 2.0 * (target - held) / target
        n = s.gi[g, GI.POOL_N]
        if uniform(s.rng, g) < p_alloc and n < s.gi[g, GI.POOL_CAP]:
            order = _pick_order(s, g)
            cpu = randint(s.rng, g, vcpus)
            pfn = alloc_touch(s, g, z, order, cpu, t, cost, ovh)
            if pfn == -2:
                return False
            if pfn >= 0:
                s.pool[off + n] = pfn
                s.gi[g, GI.POOL_N] = n + 1
                s.gi[g, GI.WL_CUR] += 1 << order
        elif n > 0:
            i = randint(s.rng, g, n)
            pfn = s.pool[off + i]
            s.pool[off + i] = s.pool[off + n - 1]
            s.pool[off + n - 1] = -1
            s.gi[g, GI.POOL_N] = n - 1
            order = block_order(z, pfn)
            s.gi[g, GI.WL_CUR] -= 1 << order
            release(s, g, z, pfn, order, randint(s.rng, g, vcpus), t)
    s.gf[g, GF.CREDIT] = credit
    return True
