"""The one numba decorator of fphlib, and the one borrowed-array intrinsic.

Every kernel is compiled with ``cache=True`` (warm starts reuse the on-disk cache) and
``error_model="numpy"`` (no Python exception checks on integer division in hot loops).
State is always plain NumPy arrays or tuples of them (DESIGN §2): no jitclass, no structref.
"""

import functools

import numba
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._cache import refresh

refresh()  # before any kernel loads: a cache that inlines an edited file must not be reused

__all__ = ["borrowed", "jit"]

jit = functools.partial(numba.njit, cache=True, error_model="numpy")


@intrinsic
def borrowed(typingctx, arr):
    """The array ``arr`` without its MemInfo: a view that is not reference counted.

    Numba reference-counts every array a kernel touches: reading one out of a tuple, or
    binding an inlined function's argument, emits NRT_incref/NRT_decref, atomic
    read-modify-writes on the array's MemInfo. LLVM's refcount pruning removes the pairs that
    sit in one basic block, not those spread over the branches of a loop; in the buddy replay
    loop the leftover atomics made it ~10x slower (churn5m 0.5 s against 0.04 s for the C
    reference). On a borrowed view NRT_incref is a no-op that LLVM folds away.

    Valid only while the caller holds ``arr``, which is always the case inside one kernel
    call: never return or store a borrowed view. ``None`` passes through unchanged (the
    xbitmap fields of ``fphlib.guest.buddy.untracked_zone``).
    """
    if isinstance(arr, types.NoneType):
        return arr(arr), lambda context, builder, sig, args: args[0]
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, value=args[0])
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        return ary._getvalue()

    return arr(arr), codegen
