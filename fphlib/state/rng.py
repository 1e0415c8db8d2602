"""A per-guest splitmix64 stream: reproducible, independent per guest, chunk-safe.

The state is one uint64 per guest in ``EngineState.rng`` (seeded from
``numpy.random.SeedSequence``), so pausing the loop between chunks changes nothing.
"""

import numpy as np

from .._jit import jit

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@jit(inline="always")
def next_u64(rng, g):
    """splitmix64 (Steele, Lea, Flood 2014)."""
    z = rng[g] + _GAMMA
    rng[g] = z
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit(inline="always")
def uniform(rng, g):
    """A float in [0, 1)."""
    return np.float64(next_u64(rng, g) >> _S11) * _INV53


@jit(inline="always")
def randint(rng, g, n):
    """An int in [0, n), n >= 1."""
    return np.int64(uniform(rng, g) * n)
