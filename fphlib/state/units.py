"""Separate compile units: the parts of the simulator a run may or may not use (the mechanism's
hooks, the host policy's step, each workload's step, the migration thread) are compiled on
their own and called through native addresses, never linked into their callers.

Why: numba links every jitted callee's LLVM module into its caller and optimizes and
machine-codes the whole again (numba.core.codegen.CPUCodeLibrary.finalize), at every level of
the call graph. With all mechanisms, policies and workloads as static callees of the engine
loop, a first ``simulate()`` compiled all of them, several times over (357 s cold with seven
mechanisms). Called through an address, a unit is compiled once, for one signature, only when
a run needs it (``bind``), and cached on disk like any kernel.

How: ``fphlib.engine.build`` picks the functions of a run and :func:`bind` compiles them for
the run's exact argument types (:func:`signature`) and stores their native entry points in
``EngineState.fn``. The jitted callers (:mod:`fphlib.state.hooks`) load the address from
``s.fn[slot]`` and call it with numba's own calling convention (an intrinsic, as numba calls a
first-class function's ``jit_addr``: numba.core.lowering, ``_lower_call_FunctionType``);
errors propagate as in any call. Addresses belong to the process that bound them: a state is
bound again (``bind``) before it runs in another process.

By reference: numba passes a tuple flattened, ~400 machine words for the engine state and ~80
for a zone view, on every call (hinting_v8's ``on_free`` runs on every buddy free: the copy
cost it 2.7x of its events/s). So units are compiled to take the state and the zone as
``fphlib._jit.Ref`` pointers into ``s.self_ref``, where :func:`publish` stores the state and
every guest's zone view (``zone_of(s, g)``) once per ``run_chunk`` (and at ``bind``); the
caller passes guest g's stored zone, so a unit's ``z`` is always ``zone_of(s, g)``.
"""

import functools

import numpy as np
from numba import typeof, types
from numba.core.errors import TypingError
from numba.core.registry import cpu_target
from numba.extending import intrinsic

from .._jit import Borrowed, Ref, abi_size, call_native, jit, native_address, ref_pointer, store_ref
from .borrow import borrow_state, zone_of
from .layout import PI

# unit -> (argument names, return type). Argument names fix the types (ARG_TYPES); the zone
# ``z`` is always ``zone_of(s, g)``'s type, so a caller with another view is refused at typing.
SPECS = {
    "mech_start": ("s g z t cost", types.none),
    "mech_tick": ("s g z t_end cost", types.none),
    "mech_on_free": ("s g z pfn order t cost", types.none),
    "mech_on_free_page": ("s g z cpu pfn order t cost", types.none),
    "mech_on_alloc_fail": ("s g z t cost", types.Tuple((types.int64, types.float64))),
    "mech_reported_pages": ("s g z", types.int64),
    "policy_step": ("s now cost", types.none),
    "migration_step": ("s now cost", types.none),
    "host_ensure_ram": ("s need t g cost ovh", types.none),
    "guest_boot": ("s g z t cost ovh", types.boolean),
    "guest_alloc_slowpath": ("s g z order cpu t cost", types.int64),
    "guest_reclaim": ("s g z need k t cost", types.int64),
    "guest_mm_step": ("s g z t dt cost ovh", types.none),
    "debug_check": ("s k", types.int64),
    "workload_step": ("s g z t dt cost ovh", types.boolean),
    "host_step": ("s now cost", types.none),
}
ARG_TYPES = {
    "g": types.int64,
    "k": types.int64,
    "cpu": types.int64,
    "need": types.int64,
    "pfn": types.int64,
    "order": types.int64,
    "ovh": types.int64,
    "t": types.float64,
    "t_end": types.float64,
    "now": types.float64,
    "dt": types.float64,
}
N_WORKLOAD_SLOTS = 8  # workload_step slots, indexed by workload id (fphlib.workloads)

SLOT = {name: i for i, name in enumerate(n for n in SPECS if n != "workload_step")}
SLOT_WORKLOAD = len(SLOT)  # workload w at SLOT_WORKLOAD + w
N_SLOTS = SLOT_WORKLOAD + N_WORKLOAD_SLOTS


@functools.cache
def zone_type(state_type):
    """The numba type of ``zone_of(s, g)`` for a state of ``state_type``."""
    args = (Borrowed(state_type), types.int64)  # as the kernels call it, after borrow_state
    zone_of.callee.compile(args)
    return zone_of.callee.overloads[args].signature.return_type


def _arg_types(unit, state_type, by_ref=True):
    names, _ = SPECS[unit]
    out = []
    for name in names.split():
        if name == "s":
            out.append(Ref(state_type) if by_ref else state_type)
        elif name == "z":
            zone = zone_type(state_type)
            out.append(Ref(zone) if by_ref else zone)
        elif name == "cost":
            out.append(state_type.types[state_type.fields.index("cost")])
        else:
            out.append(ARG_TYPES[name])
    return tuple(out)


def _plain(t):
    """The tuple type a :class:`~fphlib._jit.Borrowed` type borrows from (else ``t``)."""
    return t.plain if isinstance(t, Borrowed) else t


# Every run types its state, sizes its self_ref, and looks up its units' signatures and entry
# points: numba hashes a type by hashing the types it holds, ~50 array types here, and llvmlite
# builds a target to size one, so that cost 2-4 ms per run (2-3 % of the demo's; a sweep of
# short runs pays it each time). Each is kept per process (_per_state_type).
_STATE_TYPES = {}
_KEPT = {}


def state_type(s):
    """``typeof(s)`` for an engine state, kept by what numba types each array by (dtype,
    dimensions, layout, writeable, aligned: ``numba.core.typing.typeof._typeof_ndarray``)."""
    key = (type(s), *((a.dtype, a.ndim, a.flags.c_contiguous, a.flags.f_contiguous,
                       a.flags.writeable, a.flags.aligned) for a in s))
    t = _STATE_TYPES.get(key)
    if t is None:
        t = _STATE_TYPES[key] = typeof(s)
    return t


def _per_state_type(state_type, key, make, *args):
    """``make(*args)``, kept for ``state_type`` and ``key``: found by the type's id, not its
    hash (the cost above); the entry holds the type, so an id that a type gone since had names
    nothing."""
    at = (id(state_type), *key)
    kept = _KEPT.get(at)
    if kept is None or kept[0] is not state_type:
        kept = _KEPT[at] = (state_type, make(*args))
    return kept[1]


def signature(unit, state_type):
    """The one signature unit functions are compiled for, given the engine state's type."""
    return _per_state_type(state_type, ("signature", unit),
                           lambda: SPECS[unit][1](*_arg_types(unit, state_type)))


def ref_layout(context, state_type):
    """(byte offset of guest 0's zone, bytes per zone) in ``s.self_ref``, which holds the
    state at offset 0, then every guest's zone view."""
    return abi_size(context, state_type), abi_size(context, zone_type(state_type))


def ref_words(state_type, n_guests):
    """int64 words ``s.self_ref`` needs for a state of ``state_type`` with ``n_guests``."""
    offset, stride = _per_state_type(state_type, ("layout",), lambda: ref_layout(
        cpu_target.target_context, state_type))
    return (offset + n_guests * stride) // 8


@intrinsic
def _ref_layout(typingctx, s):
    def codegen(context, builder, sig, args):
        offset, stride = ref_layout(context, s)
        return context.make_tuple(builder, sig.return_type, [
            context.get_constant(types.int64, offset), context.get_constant(types.int64, stride)])

    return types.UniTuple(types.int64, 2)(s), codegen


@jit
def publish(s):
    """Store the state and every guest's zone view in ``s.self_ref`` (see the module doc)."""
    s = borrow_state(s)
    offset, stride = _ref_layout(s)
    if s.self_ref.size * 8 < offset + s.pi[PI.G] * stride:
        raise ValueError("s.self_ref is too small for the state and its zones (ref_words)")
    store_ref(s.self_ref, 0, s)
    for g in range(s.pi[PI.G]):
        store_ref(s.self_ref, offset + g * stride, zone_of(s, g))


def bind(s, functions):
    """Store the native addresses of ``functions`` ({slot: (unit, jitted function)}) in ``s.fn``."""
    st = state_type(s)
    fn = np.zeros(N_SLOTS, np.int64)
    for slot, (unit, function) in functions.items():
        fn[slot] = _per_state_type(st, ("address", unit, function), native_address, function,
                                   signature(unit, st))
    s.fn[:] = fn
    publish(s)


def caller(unit):
    """An intrinsic ``call(addr, *args)`` calling the unit function at ``addr`` with ``args``."""
    names, restype = SPECS[unit]

    def typer(typingctx, addr, args):
        state_type = _plain(args[0])
        want = _arg_types(unit, state_type, by_ref=False)
        for name, have, need in zip(names.split(), args, want, strict=True):
            if name in ("s", "z", "cost") and _plain(have) != _plain(need):
                raise TypingError(f"{unit}: argument {name} is {have}; units are compiled "
                                  f"for {need} (pass zone_of(s, g) and s.cost)")
        sig = restype(addr, *args)
        refs = _arg_types(unit, state_type)

        def codegen(context, builder, signature, llargs):
            named = dict(zip(names.split(), zip(args, llargs[1:], strict=True), strict=True))
            field = state_type.fields.index("self_ref")
            buf_type = state_type.types[field]
            buf = builder.extract_value(named["s"][1], field)
            vals = []
            for name, (have, val), need in zip(names.split(), named.values(), want,
                                               strict=True):
                if name == "s":
                    at = context.get_constant(types.int64, 0)
                    vals.append(ref_pointer(context, builder, buf_type, buf, at, need))
                elif name == "z":  # guest g's zone, stored by publish
                    offset, stride = ref_layout(context, state_type)
                    g = context.cast(builder, named["g"][1], named["g"][0], types.int64)
                    at = builder.add(context.get_constant(types.int64, offset),
                                     builder.mul(g, context.get_constant(types.int64, stride)))
                    vals.append(ref_pointer(context, builder, buf_type, buf, at, need))
                else:
                    vals.append(context.cast(builder, val, have, need))
            return call_native(context, builder, llargs[0], restype, refs, vals)

        return sig, codegen

    # an intrinsic's typer needs its parameters spelled out (numba folds *args into a tuple)
    params = ", ".join(names.split())
    ns = {"typer": typer}
    exec(f"def call_{unit}(typingctx, addr, {params}):\n"  # our SPECS, no user input
         f"    return typer(typingctx, addr, ({params},))", ns)
    return intrinsic(ns[f"call_{unit}"])
