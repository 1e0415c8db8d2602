"""The one numba decorator of fphlib, and the one borrowed-array intrinsic.

Every kernel is compiled with ``cache=True`` (warm starts reuse the on-disk cache) and
``error_model="numpy"`` (no Python exception checks on integer division in hot loops).
State is always plain NumPy arrays or tuples of them (docs/design.md §2): no jitclass, no structref.
"""

import copy
import functools
import gc

from numba.core import cgutils, inline_closurecall, ir, lowering, sigutils, targetconfig, types
from numba.core.analysis import compute_cfg_from_blocks, must_use_alloca
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.core.datamodel import models
from numba.core.imputils import lower_cast, lower_constant
from numba.core.registry import CPUDispatcher
from numba.core.typeconv import Conversion
from numba.core.typing.templates import AttributeTemplate
from numba.extending import (
    infer_getattr,
    intrinsic,
    lower_getattr_generic,
    register_model,
    typeof_impl,
)

from ._cache import refresh, sources_digest

refresh()  # before any kernel loads: a cache that inlines an edited file must not be reused

__all__ = ["Borrowed", "Ref", "borrowed", "borrowed_all", "column_group", "compiled", "jit",
           "store_ref"]


def _source_stamp(cache, py_func):
    """The stamp a cache index must match: numba's (the function's file), and for a plug-in
    (a function outside fphlib, which inlines fphlib's kernels and column indexes) also the
    digest of fphlib's kernel sources, so that a plug-in's cache is rebuilt when fphlib
    changes as fphlib's own caches are (:func:`fphlib._cache.refresh`)."""
    stamp = cache._impl.locator.get_source_stamp()
    if not (py_func.__module__ or "").startswith("fphlib."):
        stamp = (stamp, _fphlib_digest())
    return stamp


@functools.cache
def _fphlib_digest():
    """fphlib's kernel sources, once per process (a plug-in's caches are checked with it)."""
    return sources_digest()


class _PluginCache(FunctionCache):
    """numba's on-disk cache of a plug-in's function, stamped with fphlib's sources too."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = IndexDataCacheFile(
            cache_path=self._cache_path, filename_base=self._impl.filename_base,
            source_stamp=_source_stamp(self, py_func))


_LOWERING_ONLY_FLAGS = ("no_cpython_wrapper", "no_cfunc_wrapper")
"""Compile flags that only lowering reads (the wrappers numba adds to a compiled function)."""


def _inlinee_key(worker, func, enable_ssa):
    """What a callee's untyped IR depends on besides its code: the typing context, the
    target, pipeline and flags of the compile, and the values its globals, closure cells and
    defaults hold now (identities: numba reads them when it builds the IR). The target
    context is keyed by its class: numba derives one per compile from the flags, which are
    in the key. Returns (key, the values whose identities it holds), or None: not
    cacheable."""
    code = getattr(func, "__code__", None)
    if code is None or worker.locals:
        return None
    flags = worker.flags.copy()
    flags.enable_ssa = enable_ssa  # what run_untyped_passes compiles with
    for name in _LOWERING_ONLY_FLAGS:
        flags.discard(name)
    env = func.__globals__
    values = (*(env.get(name) for name in code.co_names),
              *(c.cell_contents for c in func.__closure__ or ()),
              func.__defaults__, func.__kwdefaults__)
    return (func, code, worker.typingctx, type(worker.targetctx), type(worker.pipeline),
            worker._compiler_pipeline, flags.summary(), tuple(map(id, values))), values


def _inlinee_ir_once(run_untyped_passes):
    """Wrap numba's ``InlineWorker.run_untyped_passes`` so that a function inlined at many
    call sites goes through numba's frontend once per process, not once per site.

    For every ``inline="always"`` call site numba rebuilds the callee's IR from its bytecode
    and runs the whole untyped pipeline on it, which inlines the callee's own callees again,
    at each of their sites (numba/core/inline_closurecall.py). The IR depends only on the
    function, on what its globals and closure hold, and on the compile's contexts and flags
    (:func:`_inlinee_key`); ``InlineWorker.inline_ir`` deep-copies the IR it is given
    before it changes anything, so one IR serves every site. Each site still gets a fresh
    function identity, so its variables are named apart as numba names them.
    """

    @functools.wraps(run_untyped_passes)
    def run(self, func, enable_ssa=False):
        keyed = _inlinee_key(self, func, enable_ssa)
        if keyed is None:
            return run_untyped_passes(self, func, enable_ssa)
        key, values = keyed
        built = _INLINEE_IR.get(key, (None,))[0]
        if built is None:
            built = run_untyped_passes(self, func, enable_ssa)
            # the values stay alive with it: no other object can take one's id (the key)
            _INLINEE_IR[key] = built, values
        else:  # numba's run sets this on the caller's flags, which the caller's passes read
            self.flags.enable_ssa = enable_ssa
        site = copy.copy(built)  # inline_ir copies the blocks before changing them
        site.func_id = built.func_id.derive()
        return site

    return run


_INLINEE_IR = {}
"""_inlinee_key -> (the untyped IR numba built for it, the values the key identifies)
(:func:`_inlinee_ir_once`)."""

if hasattr(inline_closurecall.InlineWorker, "run_untyped_passes"):  # else: numba's own way
    inline_closurecall.InlineWorker.run_untyped_passes = _inlinee_ir_once(
        inline_closurecall.InlineWorker.run_untyped_passes)


def _one_scope_copy_per_inline(inline_ir):
    """Wrap numba's ``InlineWorker.inline_ir`` so that each copy of the callee's IR it makes
    copies the callee's variable scope once, not once per block.

    ``inline_ir`` deep-copies the callee's blocks one by one (twice: one copy to inline, one
    kept unchanged), and each block's copy copies the scope the blocks share, with every
    variable in it: for a callee of B blocks and V variables, B·V copies where V do (half
    of the inliner's copying in a cold first run). The copies are equal, ``inline_ir`` keeps
    one (``_get_all_scopes``), and every inlined block is given the caller's scope.
    """

    @functools.wraps(inline_ir)
    def inline(self, *args, **kwargs):
        global _SCOPE_COPIES
        outer, _SCOPE_COPIES = _SCOPE_COPIES, {}
        try:
            return inline_ir(self, *args, **kwargs)
        finally:
            _SCOPE_COPIES = outer

    return inline


_SCOPE_COPIES = None
"""id(scope) -> (scope, its copy) during an ``inline_ir`` (:func:`_one_scope_copy_per_inline`)."""


def _scope_deepcopy(self, memo):
    """``copy.deepcopy`` of an ``ir.Scope`` (what it does for a plain object), or, inside
    ``inline_ir``, the copy of this scope already made there."""
    copies = _SCOPE_COPIES
    made = copies.get(id(self)) if copies is not None else None
    if made is not None and made[0] is self:
        memo[id(self)] = made[1]
        return made[1]
    new = object.__new__(type(self))
    memo[id(self)] = new
    new.__dict__.update(copy.deepcopy(self.__dict__, memo))
    if copies is not None:
        copies[id(self)] = self, new
    return new


if (hasattr(inline_closurecall.InlineWorker, "inline_ir")
        and not {"__deepcopy__", "__slots__"} & vars(ir.Scope).keys()):
    inline_closurecall.InlineWorker.inline_ir = _one_scope_copy_per_inline(
        inline_closurecall.InlineWorker.inline_ir)
    ir.Scope.__deepcopy__ = _scope_deepcopy
if "__deepcopy__" not in vars(ir.Loc):
    # a source location is a value (numba never changes one; ``lines`` caches the file's
    # text): IR copies share it rather than copy it with every statement
    ir.Loc.__deepcopy__ = lambda self, memo: self


def _flags_compare_fast(config_class):
    """Give numba's compile flags (``TargetConfig``) the same hash and equality, faster.

    numba types every call of an ``@overload`` function through a cache keyed by the
    current compile's flags (``_OverloadFunctionTemplate._get_impl``,
    numba/core/typing/templates.py), so each lookup hashes the flags and compares them with
    an entry's. numba's hash is that of the sorted option names (``sorted`` of a dict
    iterates its keys), the same for all flags of a class, so every lookup also compares
    the flags with each entry's: two dicts of ~40 options, each read through a property
    (~7 % of a cold first run). Here the hash is computed once per class, and two flags of
    one class compare only the options either sets (any other holds its default in both);
    flags of different classes are numba's comparison.
    """
    numba_eq = config_class.__eq__
    hashes = {}

    def __hash__(self):
        cls = type(self)
        h = hashes.get(cls)
        if h is None:
            h = hashes[cls] = hash(tuple(sorted(self.values())))
        return h

    def __eq__(self, other):
        if type(self) is not type(other):
            return numba_eq(self, other)
        mine, theirs = self._values, other._values
        if mine == theirs:
            return True
        options = self.options
        return all(mine.get(k, options[k].default) == theirs.get(k, options[k].default)
                   for k in mine.keys() | theirs.keys())

    config_class.__hash__ = __hash__
    config_class.__eq__ = __eq__


if hasattr(targetconfig.TargetConfig, "_values"):  # else: numba's own comparison
    _flags_compare_fast(targetconfig.TargetConfig)


class _CalleeCache(FunctionCache):
    """numba's on-disk cache of a :attr:`_Dispatcher.callee`, in files of its own (numba's
    cache index does not key on the compile flags: a Python call must never load a callee's
    compile, which has no entry point for Python)."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = IndexDataCacheFile(
            cache_path=self._cache_path, filename_base=self._impl.filename_base + "-callee",
            source_stamp=_source_stamp(self, py_func))


class _Dispatcher(CPUDispatcher):
    """numba's CPU dispatcher, with two changes for compile time.

    Jitted callers get a twin, :attr:`callee`, compiled without the CPython wrapper: numba
    builds a wrapper for every compile, and for a kernel taking the engine state (~60 arrays)
    unboxing them from Python objects was the bigger part of the kernel's compile time,
    although only the few entry points Python calls (``run_chunk``, the tests' kernels) ever
    use one. Python calls compile the dispatcher itself, wrapper included; numba types a
    global dispatcher by its ``_numba_type_``, here the twin's, so jitted code that names
    ``f`` calls ``f.callee``. A signature Python compiled already serves jitted callers as
    well (one compile for ``publish``, which both call).

    Jitted callers get it compiled for non-literal types: numba compiles a callee once per
    literal argument: ``alloc_pages(s, g, z, 0, 0, t, cost)`` and ``alloc_pages(s, g, z,
    order, cpu, t, cost)`` were two full compiles of the allocator (and of all it calls),
    ``xb_track_ptr(..., True)`` and ``(..., False)`` (the xbitmap's tracking hook of the
    time) two of the xbitmap (~25 % of a cold first run). Typing a call with the literals' base
    types gives one compile per signature; no kernel here branches on a literal argument at
    compile time.
    """

    state_by_ref = False  # jitted callers pass a published state by reference (jit's doc)

    def __init__(self, py_func, locals=None, targetoptions=None, **kwargs):
        self.callee = None
        super().__init__(py_func, locals=locals or {}, targetoptions=targetoptions, **kwargs)
        options = targetoptions or {}
        if options.get("inline", "never") == "never" and not options.get("no_cpython_wrapper"):
            self.callee = _Dispatcher(py_func, locals=locals, targetoptions={
                **options, "no_cpython_wrapper": True, "no_cfunc_wrapper": True})
            self.callee.python_facing = self

    @property
    def _numba_type_(self):
        return types.Dispatcher(self.callee or self)

    def enable_caching(self):
        super().enable_caching()
        if not (self.py_func.__module__ or "").startswith("fphlib."):
            self._cache = _PluginCache(self.py_func)
        if self.callee is not None:
            self.callee._cache = _CalleeCache(self.py_func)

    def compile(self, sig):
        # a signature Python compiled already serves jitted callers too (run_chunk's publish)
        python_facing = getattr(self, "python_facing", None)
        if python_facing is not None:
            args, _ = sigutils.normalize_signature(sig)
            cres = python_facing.overloads.get(tuple(args))
            if cres is not None:
                self.overloads.setdefault(tuple(args), cres)
        if not gc.isenabled():  # a compile around this one paused it (or the caller did)
            return super().compile(sig)
        # numba's typing and lowering make many short-lived objects in reference cycles;
        # Python's cyclic collector, run every 700 of them, also walks all that is imported
        # (benchmarks/startup.py). Paused for the compile; the next collection after it
        # frees the compile's garbage.
        gc.disable()
        try:
            return super().compile(sig)
        finally:
            gc.enable()

    def get_call_template(self, args, kws):
        args = tuple(types.unliteral(a) for a in args)
        kws = {k: types.unliteral(v) for k, v in kws.items()}
        if self.state_by_ref:
            args = tuple(_by_reference(a) for a in args)
            kws = {k: _by_reference(v) for k, v in kws.items()}
        return super().get_call_template(args, kws)


def jit(function=None, *, state_by_ref=False, **options):
    """``numba.njit(cache=True, error_model="numpy", **options)`` with :class:`_Dispatcher`.

    ``state_by_ref=True``: jitted callers pass the engine state to this function as a pointer
    to its published copy (:func:`_pass_by_reference`), for a function too large for LLVM to
    inline that is called once per page (``alloc_kernel_page``).
    """
    if function is None:
        return functools.partial(jit, state_by_ref=state_by_ref, **options)
    targetoptions = {"nopython": True, "error_model": "numpy", **options}
    dispatcher = _Dispatcher(py_func=function, locals={}, targetoptions=targetoptions)
    if state_by_ref:
        dispatcher.state_by_ref = True
        if dispatcher.callee is not None:
            dispatcher.callee.state_by_ref = True
    try:
        dispatcher.enable_caching()
    except RuntimeError:  # no file to cache next to (a plug-in made with exec): compile only
        pass
    return dispatcher


def compiled(function):
    """The compiles of jitted ``function`` so far, Python's and jitted callers':
    {argument types: numba compile result}."""
    callee = getattr(function, "callee", None)
    return {**function.overloads, **(callee.overloads if callee is not None else {})}


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


@intrinsic
def load_8_bytes(typingctx, arr, i):
    """The bytes ``arr[i:i + 8]`` of a contiguous uint8 array as one little-endian uint64:
    one unaligned load (the caller keeps ``0 <= i`` and ``i + 8 <= len(arr)``). Eight pages'
    flag bytes at once, with no array view to build (``arr[i:j].view(np.uint64)`` compiles
    its size and alignment checks and their exceptions into every caller)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.uint8
            and arr.layout == "C" and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, value=args[0])
        at = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = builder.bitcast(builder.gep(ary.data, [at]), context.get_value_type(
            types.uint64).as_pointer())
        return builder.load(ptr, align=1)

    return types.uint64(arr, i), codegen


def native_address(function, sig):
    """Compile (or load from the cache) jitted ``function`` for ``sig``; its native entry point.

    Called through :func:`call_native`, such a function is a compile unit of its own: its
    callers never link (and re-optimize) its code.
    """
    function = function.callee or function  # no CPython wrapper needed
    function.compile(sig)
    cres = function.overloads[sig.args]
    if cres.signature.return_type != sig.return_type:
        raise TypeError(f"{function.__name__} returns {cres.signature.return_type}, "
                        f"not {sig.return_type}")
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)


def call_native(context, builder, addr, restype, argtypes, args):
    """Codegen: call the jitted function at ``addr`` (compiled for ``restype(*argtypes)``)
    with the LLVM values ``args`` in numba's calling convention, as numba calls a first-class
    function's ``jit_addr`` (numba.core.lowering); errors propagate."""
    fnty = context.call_conv.get_function_type(restype, argtypes)
    ptr = builder.inttoptr(addr, fnty.as_pointer())
    status, res = context.call_conv.call_function(builder, ptr, restype, argtypes, args)
    with cgutils.if_unlikely(builder, status.is_error):
        context.call_conv.return_status_propagate(builder, status)
    return res


class Ref(types.Type):
    """A pointer to a value of type ``dtype`` stored in memory (:func:`store_ref`).

    Numba passes a tuple argument flattened: the engine state (~50 arrays) is ~400 machine
    words per call. Separately compiled units (fphlib.state.units) take the state and the
    zone as a ``Ref`` instead, one word; :func:`borrowed_all` loads the value on the callee's
    side, and LLVM keeps only the loads of the fields the callee uses.
    """

    def __init__(self, dtype):
        self.dtype = dtype
        super().__init__(name=f"Ref[{dtype}]")


@register_model(Ref)
class _RefModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        pointee = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, pointee.as_pointer())


def ref_pointer(context, builder, buf_type, buf, offset, dtype):
    """Codegen: the ``Ref[dtype]`` at byte ``offset`` (an LLVM i64) of array ``buf``."""
    data = context.make_array(buf_type)(context, builder, value=buf).data
    at = builder.gep(builder.bitcast(data, cgutils.voidptr_t), [offset])
    return builder.bitcast(at, context.get_value_type(dtype).as_pointer())


@intrinsic
def store_ref(typingctx, buf, offset, value):
    """Store ``value`` (its arrays borrowed) at byte ``offset`` of the int64 array ``buf``,
    where a :class:`Ref` to it can be handed out; the caller checks that it fits
    (``abi_size``)."""
    if not (isinstance(buf, types.Array) and buf.dtype == types.int64 and buf.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        buf_v, offset_v, value_v = args
        ptr = ref_pointer(context, builder, buf, buf_v, offset_v, value)
        builder.store(_borrow_members(context, builder, value, value_v), ptr)
        return context.get_dummy_value()

    return types.none(buf, types.int64, value), codegen


def abi_size(context, dtype):
    """Bytes a value of numba type ``dtype`` takes in memory (8-byte aligned)."""
    return -(-context.get_abi_sizeof(context.get_value_type(dtype)) // 8) * 8


def _load_members(context, builder, tup, ptr):
    """Codegen: the tuple stored at ``ptr`` (by :func:`store_ref`), one load per member.

    Loads of a whole aggregate stay whole through LLVM's optimizer: every member became a
    value live (and spilled) across the callee. Member loads marked ``!invariant.load`` (the
    stored state does not change during a call) are dropped when unused and re-issued where
    needed instead of being spilled.
    """
    val = cgutils.get_null_value(context.get_value_type(tup))
    invariant = builder.module.add_metadata([])
    zero = context.get_constant(types.int32, 0)
    for i in range(len(tup.types)):
        member = builder.load(builder.gep(ptr, [zero, context.get_constant(types.int32, i)]))
        member.set_metadata("invariant.load", invariant)
        val = builder.insert_value(val, member, i)
    return val


def _borrow_members(context, builder, tup, val):
    """Codegen: the tuple value ``val`` with every array member's MemInfo set to NULL."""
    for i, ty in enumerate(tup.types):
        if isinstance(ty, types.Array):  # an array's MemInfo is its model's first member
            null = cgutils.get_null_value(val.type.elements[i].elements[0])
            val = builder.insert_value(val, null, [i, 0])
    return val


class Borrowed(types.NamedTuple):
    """The type of a named tuple of arrays after :func:`borrowed_all`: its arrays are
    borrowed, so numba neither increfs nor decrefs the tuple as a whole.

    Numba increfs a tuple member by member: wherever a kernel copies the engine state (an
    assignment, an argument of an inlined function) it emitted ~60 NRT calls for LLVM to fold
    away again, about a third of the compile time of a small kernel.
    """

    def __init__(self, plain):
        self.plain = plain
        super().__init__(plain.types, plain.instance_class)
        self.name = f"Borrowed[{plain.name}]"

    def can_convert_to(self, typingctx, other):
        if isinstance(other, Ref) and other.dtype == self.plain and _published(self):
            return Conversion.safe  # passed by reference (_pass_by_reference)
        return super().can_convert_to(typingctx, other)

    def __hash__(self):
        # numba hashes a type by its key, here the ~60 member types one by one, at every
        # lookup involving it (~10 k in a cold first run, ~2 % of it); a type never changes
        # (numba interns it by its key), so its hash is computed once
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.__dict__["_hash"] = hash(self.key)
        return h

    def __reduce__(self):
        # without the hash: str hashes differ from process to process (the on-disk cache)
        rebuild, (reconstructor, args, state) = super().__reduce__()
        state = {k: v for k, v in (state or {}).items() if k != "_hash"}
        return rebuild, (reconstructor, args, state)


@register_model(Borrowed)
class _BorrowedModel(models.TupleModel):
    def traverse(self, builder):  # no member to incref or decref
        return []

    def inner_models(self):
        return []


def _published(t):
    """Whether ``t`` is a borrowed state that :func:`fphlib.state.units.publish` stores at the
    start of its own ``self_ref`` array (the engine state)."""
    return isinstance(t, Borrowed) and "self_ref" in t.fields


def _by_reference(t):
    """The type a jitted callee is compiled for, given an argument of type ``t``: a published
    state as a :class:`Ref` to its stored copy, anything else as it is."""
    return Ref(t.plain) if _published(t) else t


@lower_cast(Borrowed, Ref)
def _pass_by_reference(context, builder, fromty, toty, val):
    """Codegen: a published state passed to a jitted callee as a pointer to its copy in
    ``self_ref`` (stored by ``publish``), not as the ~400 machine words numba flattens a tuple
    into for every call (on the stack: the copy was most of the cost of a call to, e.g., the
    boot loop's ``alloc_kernel_page``). The stored copy is used only when it is this state (every
    array the same); otherwise (a state nobody published, or changed since) the callee gets a
    pointer to a copy on the caller's stack, as numba would have passed it.
    """
    field = fromty.fields.index("self_ref")
    buf_type = fromty.types[field]
    buf = builder.extract_value(val, field)
    ptr = ref_pointer(context, builder, buf_type, buf, context.get_constant(types.int64, 0),
                      toty.dtype)
    copy = cgutils.alloca_once(builder, context.get_value_type(toty.dtype))
    slot = cgutils.alloca_once_value(builder, copy)
    nbytes = builder.mul(context.make_array(buf_type)(context, builder, value=buf).nitems,
                         context.get_constant(types.intp, 8))
    fits = builder.icmp_signed(">=", nbytes,
                               context.get_constant(types.intp, abi_size(context, toty.dtype)))
    with builder.if_then(fits, likely=True):
        same = cgutils.true_bit
        zero = context.get_constant(types.int32, 0)
        for i, ty in enumerate(fromty.types):
            if not isinstance(ty, types.Array):
                continue
            stored = builder.load(builder.gep(ptr, [zero, context.get_constant(types.int32, i)]))
            have = context.make_array(ty)(context, builder, value=builder.extract_value(val, i))
            want = context.make_array(ty)(context, builder, value=stored)
            same = builder.and_(same, builder.icmp_unsigned("==", have.data, want.data))
        with builder.if_then(same, likely=True):
            builder.store(ptr, slot)
    chosen = builder.load(slot)
    with builder.if_then(builder.icmp_unsigned("==", chosen, copy), likely=False):
        builder.store(_borrow_members(context, builder, fromty, val), copy)
    return chosen


@intrinsic
def borrowed_all(typingctx, tup):
    """Every array of the (named) tuple ``tup`` without its MemInfo (see :func:`borrowed`);
    ``None`` members pass unchanged. Given a :class:`Ref` to such a tuple, the tuple it
    points to (stored borrowed by :func:`store_ref`).

    One intrinsic instead of a ``borrowed`` call per member and a tuple rebuilt from them:
    ``borrow_state`` (47 arrays) opens almost every kernel, and as a numba-level function it
    cost each of them about a second of compile time.
    """
    ref = isinstance(tup, Ref)
    value = tup.dtype if ref else tup
    if isinstance(value, Borrowed):
        value = value.plain
    if not isinstance(value, types.BaseTuple):
        return None
    if not all(isinstance(t, (types.Array, types.NoneType)) for t in value.types):
        return None
    result = Borrowed(value) if isinstance(value, types.NamedTuple) else value

    def codegen(context, builder, sig, args):
        # the MemInfos are NULL in memory too (store_ref), but only a constant lets LLVM fold
        # the NRT calls away
        val = _load_members(context, builder, value, args[0]) if ref else args[0]
        return _borrow_members(context, builder, value, val)

    return result(tup), codegen


class _ColumnGroup(types.Type):
    """The numba type of a column group (:func:`column_group`): ``GI.REPORTS`` types as the
    literal column index, as a module-level int would."""

    def __init__(self, cls):
        self.cls = cls
        self.columns = {name: i for i, name in enumerate(cls._fields)}
        super().__init__(name=f"ColumnGroup[{cls.__module__}.{cls.__qualname__}]")


register_model(_ColumnGroup)(models.OpaqueModel)


@lower_constant(_ColumnGroup)
def _column_group_constant(context, builder, ty, pyval):
    return context.get_dummy_value()


@infer_getattr
class _ColumnGroupAttributes(AttributeTemplate):
    key = _ColumnGroup

    def generic_resolve(self, typ, attr):
        if attr in typ.columns:
            return types.IntegerLiteral(typ.columns[attr])
        return None


@lower_getattr_generic(_ColumnGroup)
def _column_group_getattr(context, builder, typ, val, attr):
    return context.get_constant(types.int64, typ.columns[attr])


def column_group(cls):
    """Class decorator of a ``NamedTuple`` naming the columns of a state array in order
    (``fphlib.state.layout.GuestInts``): in jitted code, ``GI.REPORTS`` of its instance is a
    compile-time constant with no tuple behind it.

    Numba would type the instance as a tuple of ints and build that constant tuple for every
    attribute read: ~6 ms of compile time per read, tens of seconds over the engine.
    """
    typeof_impl.register(cls)(lambda val, c: _ColumnGroup(type(val)))
    return cls


def _state_values_stay_in_registers(find_singly_assigned_variable):
    """Wrap numba's ``Lower._find_singly_assigned_variable`` so that a borrowed state lives
    in a value, not in a stack slot.

    numba keeps a variable in an LLVM value only if it is assigned once and used in the
    block that assigns it; any other variable gets an ``alloca`` (numba/core/lowering.py).
    A borrowed engine state (:class:`Borrowed`, ~400 machine words) is assigned once, at the
    top of a kernel or of an inlined call, and used across its loops, so every kernel had
    several state-sized stack slots, each split by LLVM's SROA into ~400 scalars and each
    scalar promoted back to a value by mem2reg: half of the LLVM time of a cold first run
    (``NUMBA_LLVM_PASS_TIMINGS``). A value is valid LLVM wherever its definition dominates
    the use (LLVM Language Reference, "SSA"), so a borrowed state assigned once in a block
    that dominates, and is lowered before, every block using it is kept as a value. Only
    borrowed states qualify: they need no reference counting (their ``del`` is a no-op).
    """

    @functools.wraps(find_singly_assigned_variable)
    def find(self):
        find_singly_assigned_variable(self)
        if self.func_ir.func_id.is_generator or self._disable_sroa_like_opt:
            return
        typemap = self.fndesc.typemap
        states = {v for v, t in typemap.items() if isinstance(t, Borrowed)}
        states -= self._singly_assigned_vars
        if not states:
            return
        blocks = self.func_ir.blocks
        states -= must_use_alloca(blocks)
        assigned = {v: [] for v in states}
        used = {v: set() for v in states}
        for label, block in blocks.items():
            for stmt in block.body:
                if isinstance(stmt, ir.Assign) and stmt.target.name in assigned:
                    assigned[stmt.target.name].append(label)
                for var in stmt.list_vars():
                    if var.name in used:
                        used[var.name].add(label)
        dominators = compute_cfg_from_blocks(blocks).dominators()
        for v in states:
            if len(assigned[v]) != 1:
                continue
            home = assigned[v][0]
            # numba lowers blocks in label order (Lower.lower_function_body)
            if all(home in dominators[u] and u > home for u in used[v] - {home}):
                self._singly_assigned_vars.add(v)

    return find


if hasattr(lowering.Lower, "_find_singly_assigned_variable"):  # else: numba's own rule
    lowering.Lower._find_singly_assigned_variable = _state_values_stay_in_registers(
        lowering.Lower._find_singly_assigned_variable)
