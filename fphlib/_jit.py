"""The one numba decorator of fphlib, and the one borrowed-array intrinsic.

Every kernel is compiled with ``cache=True`` (warm starts reuse the on-disk cache) and
``error_model="numpy"`` (no Python exception checks on integer division in hot loops).
State is always plain NumPy arrays or tuples of them (DESIGN §2): no jitclass, no structref.
"""

import functools

from numba.core import cgutils, types
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic

from ._cache import refresh

refresh()  # before any kernel loads: a cache that inlines an edited file must not be reused

__all__ = ["borrowed", "borrowed_all", "jit"]



class _Dispatcher(CPUDispatcher):
    """numba's CPU dispatcher, but jitted callers get it compiled for non-literal types.

    Numba compiles a callee once per literal argument: ``alloc_pages(s, g, z, 0, 0, t, cost)``
    and ``alloc_pages(s, g, z, order, cpu, t, cost)`` were two full compiles of the allocator
    (and of all it calls), ``xb_track_ptr(..., True)`` and ``(..., False)`` two of the
    xbitmap (~25 % of a cold first run). Typing a call with the literals' base types gives
    one compile per signature; no kernel here branches on a literal argument at compile time.
    """

    def get_call_template(self, args, kws):
        args = tuple(types.unliteral(a) for a in args)
        kws = {k: types.unliteral(v) for k, v in kws.items()}
        return super().get_call_template(args, kws)


def jit(function=None, **options):
    """``numba.njit(cache=True, error_model="numpy", **options)`` with :class:`_Dispatcher`."""
    if function is None:
        return functools.partial(jit, **options)
    targetoptions = {"nopython": True, "error_model": "numpy", **options}
    dispatcher = _Dispatcher(py_func=function, locals={}, targetoptions=targetoptions)
    dispatcher.enable_caching()
    return dispatcher


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


def native_address(function, sig):
    """Compile (or load from the cache) jitted ``function`` for ``sig``; its native entry point.

    Called through :func:`call_native`, such a function is a compile unit of its own: its
    callers never link (and re-optimize) its code.
    """
    function.compile(sig)
    cres = function.overloads[sig.args]
    if cres.signature.return_type != sig.return_type:
        raise TypeError(f"{function.__name__} returns {cres.signature.return_type}, "
                        f"not {sig.return_type}")
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)


def call_native(context, builder, addr, restype, want, have, args):
    """Codegen: call the jitted function at ``addr`` (compiled for ``restype(*want)``) with
    ``args`` of types ``have`` (cast to ``want``) in numba's calling convention, as numba
    calls a first-class function's ``jit_addr`` (numba.core.lowering); errors propagate."""
    vals = [context.cast(builder, v, h, w) for v, h, w in zip(args, have, want, strict=True)]
    fnty = context.call_conv.get_function_type(restype, want)
    ptr = builder.inttoptr(addr, fnty.as_pointer())
    status, res = context.call_conv.call_function(builder, ptr, restype, want, vals)
    with cgutils.if_unlikely(builder, status.is_error):
        context.call_conv.return_status_propagate(builder, status)
    return res


@intrinsic
def borrowed_all(typingctx, tup):
    """Every array of the (named) tuple ``tup`` without its MemInfo (see :func:`borrowed`);
    ``None`` members pass unchanged.

    One intrinsic instead of a ``borrowed`` call per member and a tuple rebuilt from them:
    ``borrow_state`` (47 arrays) opens almost every kernel, and as a numba-level function it
    cost each of them about a second of compile time.
    """
    if not isinstance(tup, types.BaseTuple):
        return None
    if not all(isinstance(t, (types.Array, types.NoneType)) for t in tup.types):
        return None

    def codegen(context, builder, sig, args):
        val = args[0]
        for i, ty in enumerate(tup.types):
            if isinstance(ty, types.Array):
                ary = context.make_array(ty)(context, builder,
                                             value=builder.extract_value(val, i))
                ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
                val = builder.insert_value(val, ary._getvalue(), i)
        return val

    return tup(tup), codegen
