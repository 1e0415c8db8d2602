"""The one numba decorator of fphlib.

Every kernel is compiled with ``cache=True`` (warm starts reuse the on-disk cache) and
``error_model="numpy"`` (no Python exception checks on integer division in hot loops).
State is always plain NumPy arrays or tuples of them (DESIGN §2): no jitclass, no structref.
"""

import functools

import numba

jit = functools.partial(numba.njit, cache=True, error_model="numpy")
