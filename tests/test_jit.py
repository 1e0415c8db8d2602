"""fphlib's numba decorator (fphlib._jit): jitted callers get a wrapper-less twin with its own
cache files, and borrowed named tuples are a type of their own (both for compile time)."""

import ast
import copy
import pickle
import sys
import textwrap
from collections import namedtuple

import numba
import numpy as np
import pytest
from fresh_process import run_fresh
from numba import typeof
from numba.core.registry import CPUDispatcher

import fphlib
from fphlib._jit import (
    Borrowed,
    _Dispatcher,
    borrowed_all,
    compiled,
    jit,
    load_8_bytes,
)

_MODULE = textwrap.dedent("""
    from fphlib._jit import jit

    @jit
    def add(a, b):
        return a + b

    @jit
    def twice(a):
        return add(a, a)
""")

_RUN = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import kernels
    out = {"result": getattr(kernels, sys.argv[1])(*map(int, sys.argv[2:]))}
    for name in ("add", "twice"):
        f = getattr(kernels, name)
        out[name] = [len(f.overloads), len(f.callee.overloads),
                     len(f.stats.cache_hits) + len(f.callee.stats.cache_hits)]
    print(json.dumps(out))
""")


def _run(tmp_path, *argv):
    return run_fresh(tmp_path, _RUN, *argv)


def test_jitted_callers_compile_the_twin_and_python_never_loads_its_cache(tmp_path):
    (tmp_path / "kernels.py").write_text(_MODULE)
    # jitted caller: twice is compiled for Python, add only as a callee (no CPython wrapper)
    assert _run(tmp_path, "twice", "21") == {"result": 42, "twice": [1, 0, 0],
                                             "add": [0, 1, 0]}
    names = sorted(p.name for p in (tmp_path / "cache").rglob("*.nbi"))
    assert any("add" in n and "-callee" in n for n in names), names
    # a new process calling add from Python: numba's index does not key on the compile
    # flags, so loading the callee's cached code here would jump into a missing wrapper
    assert _run(tmp_path, "add", "2", "3") == {"result": 5, "twice": [0, 0, 0],
                                               "add": [1, 0, 0]}
    # twice comes back from the cache (with add's code linked in: nothing compiled)
    assert _run(tmp_path, "twice", "4") == {"result": 8, "twice": [1, 0, 1], "add": [0, 0, 0]}


def test_a_signature_python_compiled_serves_jitted_callers_too():
    @jit
    def inc(a):
        return a + 1

    @jit
    def call_inc(a):
        return inc(a)

    assert inc(1.5) == 2.5
    assert call_inc(2.5) == 3.5
    sig = (numba.float64,)
    assert inc.callee.overloads[sig] is inc.overloads[sig]  # one compile
    assert list(compiled(inc)) == [sig]


def test_inlined_functions_have_no_twin():
    @jit(inline="always")
    def f(a):
        return a

    assert f.callee is None and f(3) == 3


def test_borrowing_a_named_tuple_gives_the_borrowed_type_once():
    Pair = namedtuple("Pair", "a b")

    @numba.njit
    def borrow_twice(p):
        q = borrowed_all(p)
        r = borrowed_all(q)
        return q.a.sum() + r.b.sum()

    p = Pair(np.arange(3.0), np.arange(4))
    assert borrow_twice(p) == 3.0 + 6
    plain = typeof(p)
    (sig,) = borrow_twice.overloads.values()
    typemap = sig.type_annotation.typemap
    borrowed = {str(t) for name, t in typemap.items() if name.startswith(("q", "r"))}
    assert borrowed == {str(Borrowed(plain))}


_Mixed = namedtuple("_Mixed", "x y")  # module level: pickled by reference


def test_borrowed_type_survives_pickling_as_the_on_disk_cache_needs():
    plain = typeof(_Mixed(np.zeros(2), np.zeros(2, np.int32)))
    t = Borrowed(plain)
    hash(t)  # computed once and kept, but never pickled (str hashes differ per process)
    assert "_hash" in vars(t) and "_hash" not in t.__reduce__()[1][2]
    back = pickle.loads(pickle.dumps(t))
    assert back == t and back.plain == plain and back != plain
    assert hash(back) == hash(t) == hash(t.key)


def test_every_jit_function_is_ours():
    # a kernel decorated with numba.njit directly would get neither twin nor literal folding
    import fphlib.engine.build  # noqa: F401  (imports every kernel module)

    ours = [f for name, module in list(sys.modules.items()) if name.startswith("fphlib.")
            for f in vars(module).values() if isinstance(f, CPUDispatcher)
            and f.py_func.__module__ == name]
    assert len(ours) > 50
    assert [f for f in ours if not isinstance(f, _Dispatcher)] == []


@jit(state_by_ref=True)
def _guest_int(s, g, column):
    s = borrowed_all(s)
    return s.gi[g, column] + s.pi.shape[0]


@jit
def _call_guest_int(s, g, column):
    s = borrowed_all(s)
    return _guest_int(s, g, column)


def test_a_published_state_is_passed_by_reference_and_any_other_by_value():
    """``state_by_ref``: jitted callers pass the engine state as a pointer to the copy
    ``publish`` stored; a state that is not that copy (changed since, or never published) must
    still reach the callee whole, or the callee would read stale arrays."""
    from numba.core import types

    from fphlib._jit import Ref
    from fphlib.state.layout import GI

    from engine_helpers import one_guest

    s, _ = one_guest()
    s.gi[0, GI.USED] = 12345
    want = 12345 + s.pi.shape[0]
    assert _call_guest_int(s, 0, GI.USED) == want
    # jitted callers type the callee for a pointer to the state
    _, _, args, _ = _guest_int.callee.get_call_template(
        (Borrowed(typeof(s)), types.int64, types.int64), {})
    assert isinstance(args[0], Ref) and args[0].dtype == typeof(s)
    # an array replaced after publish: the stored copy is stale, the callee sees the new one
    gi = s.gi.copy()
    gi[0, GI.USED] = 777
    assert _call_guest_int(s._replace(gi=gi), 0, GI.USED) == 777 + s.pi.shape[0]
    # a state whose self_ref cannot hold it (never published)
    unpublished = s._replace(self_ref=np.zeros(1, np.int64))
    assert _call_guest_int(unpublished, 0, GI.USED) == want
    # Python calls are unchanged: the callee's own compile for the state itself
    assert _guest_int(s, 0, GI.USED) == want


def _fresh_kernel(body="return x + 1"):
    """A new jitted function (exec'd: no cache to load, so calling it compiles)."""
    ns = {}
    exec(f"from fphlib._jit import jit\n@jit\ndef kernel(x):\n    {body}\n", ns)
    return ns["kernel"]


def test_the_cyclic_collector_is_paused_while_numba_compiles_and_restored_after():
    import gc

    from numba.core import event

    class GcState(event.Listener):
        def on_start(self, ev):
            states.append(("start", gc.isenabled()))

        def on_end(self, ev):
            states.append(("end", gc.isenabled()))

    states = []
    with event.install_listener("numba:compile", GcState()):
        assert _fresh_kernel()(1) == 2
    assert states == [("start", False), ("end", False)]
    assert gc.isenabled()


def test_a_failed_compile_restores_the_collector_and_a_disabled_one_stays_off():
    import gc

    with pytest.raises(numba.core.errors.TypingError):
        _fresh_kernel("return x + 'text'")(1)
    assert gc.isenabled()
    gc.disable()
    try:
        assert _fresh_kernel()(2) == 3
        assert not gc.isenabled()  # the caller's choice stands
    finally:
        gc.enable()


_BORROWING = """
from fphlib._jit import borrowed_all, jit

@jit
def loop(t, n):
    b = borrowed_all(t)  # assigned once, used in the loop's blocks
    total = 0
    for i in range(n):
        total += b.a[i] + b.c[i]
    return total

@jit
def branches(t, u, first):
    if first:
        b = borrowed_all(t)
    else:
        b = borrowed_all(u)
    return b.a[0]  # b merges two assignments: a stack slot, as numba makes it
"""


def test_a_borrowed_state_assigned_once_is_kept_in_a_value_across_blocks(monkeypatch):
    from numba.core import lowering

    from fphlib._jit import Borrowed

    kept = {}
    find = lowering.Lower._find_singly_assigned_variable

    def record(self):
        find(self)
        name = self.fndesc.qualname
        kept[name] = {v for v, t in self.fndesc.typemap.items()
                      if isinstance(t, Borrowed) and v in self._singly_assigned_vars}
        kept[name, "all"] = {v for v, t in self.fndesc.typemap.items() if isinstance(t, Borrowed)}

    monkeypatch.setattr(lowering.Lower, "_find_singly_assigned_variable", record)
    ns = {}
    exec(_BORROWING, ns)
    Pair = namedtuple("Pair", "a c")
    # arrays of two dtypes: a heterogeneous named tuple, which borrowed_all makes Borrowed
    t = Pair(np.arange(4.0), np.arange(4) * 10)
    u = Pair(np.full(4, 7.0), np.zeros(4, np.int64))
    assert ns["loop"](t, 3) == sum(t.a[:3] + t.c[:3])
    assert kept["loop"] == kept["loop", "all"] == {"b"}
    assert (ns["branches"](t, u, True), ns["branches"](t, u, False)) == (0.0, 7.0)
    merged = kept["branches", "all"] - kept["branches"]
    assert len(merged) == 1  # the merged b has two assignments: left to numba's stack slot


_INLINED = """
from fphlib._jit import jit

SCALE = {scale}

@jit(inline="always")
def scaled(x):
    y = x * SCALE  # a global: numba reads it when it builds the IR
    return y + 1

@jit
def twice(a, b):
    return scaled(a) + scaled(b)  # two call sites

@jit
def once(a):
    return scaled(a)
"""


def _source_module(tmp_path, name, source):
    """``source`` as a module of its own (numba's cache needs a file)."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    sys.path.insert(0, str(tmp_path))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(tmp_path))


def test_a_function_inlined_at_many_sites_is_built_once_and_each_site_named_apart(tmp_path):
    from numba.core import inline_closurecall

    from fphlib._jit import _INLINEE_IR

    mod = _source_module(tmp_path, "inlined_many", _INLINED.format(scale=3))
    names = []
    inline_ir = inline_closurecall.InlineWorker.inline_ir

    def record(self, caller_ir, block, i, callee_ir, *args, **kwargs):
        names.append(callee_ir.func_id.unique_name)
        return inline_ir(self, caller_ir, block, i, callee_ir, *args, **kwargs)

    inline_closurecall.InlineWorker.inline_ir = record
    try:
        assert mod.twice(2, 5) == (2 * 3 + 1) + (5 * 3 + 1)
        assert mod.once(4) == 4 * 3 + 1
    finally:
        inline_closurecall.InlineWorker.inline_ir = inline_ir
    built = [k for k in _INLINEE_IR if k[0] is mod.scaled.py_func]
    assert len(built) == 1  # three sites, one IR (numba built it at each: three)
    assert len(names) == 3 and len(set(names)) == 3  # each site's variables named apart


def test_an_inlined_function_whose_global_changed_is_built_again(tmp_path):
    from fphlib._jit import _INLINEE_IR

    mod = _source_module(tmp_path, "inlined_global", _INLINED.format(scale=3))
    assert mod.once(4) == 13
    old = mod.SCALE
    mod.SCALE = 10
    # a new function inlining it (numba froze the global in once's compile, as it does)
    ns = {"jit": jit, "scaled": mod.scaled}
    exec("@jit\ndef again(a):\n    return scaled(a)\n", ns)
    assert ns["again"](4) == 41
    assert mod.once(4) == 13
    entries = [v for k, v in _INLINEE_IR.items() if k[0] is mod.scaled.py_func]
    assert len(entries) == 2
    # each entry keeps the values its key identifies alive: no new object can take their ids
    assert {any(x is old for x in held) for _, held in entries} == {True, False}


def test_flags_hash_and_compare_as_numba_defines_them():
    from numba.core.compiler import Flags

    rng = np.random.default_rng(5)
    names = [n for n, o in Flags.options.items() if o.type is bool][:8]
    flags = []
    for _ in range(60):
        f = Flags()
        for name in rng.choice(names, rng.integers(0, 4), replace=False):
            setattr(f, str(name), bool(rng.integers(0, 2)))  # a default set explicitly, too
        flags.append(f)
    pairs = [(a, b) for a in flags for b in flags]
    assert any(a.values() == b.values() and a._values != b._values for a, b in pairs)
    assert any(a.values() != b.values() for a, b in pairs)
    for a, b in pairs:
        assert (a == b) is (a.values() == b.values())  # numba's definition
        if a == b:
            assert hash(a) == hash(b)
    assert hash(flags[0]) == hash(tuple(sorted(Flags.options)))  # numba's hash, kept
    assert Flags().__eq__(object()) is NotImplemented


_BRANCHY = """
from fphlib._jit import jit

@jit(inline="always")
def clipped(x, lo, hi):
    if x < lo:  # several blocks, one scope
        y = lo
    elif x > hi:
        y = hi
    else:
        y = x
    return y * 2

@jit
def clip_both(a, b):
    return clipped(a, 0, 10) + clipped(b, 0, 10)
"""


def test_inlining_copies_the_callee_scope_once_per_copy_not_once_per_block(tmp_path,
                                                                             monkeypatch):
    from numba.core import inline_closurecall

    branchy = _source_module(tmp_path, "branchy", _BRANCHY)
    seen = []
    get_all_scopes = inline_closurecall._get_all_scopes

    def record(blocks):
        seen.append((len(blocks), len({id(b.scope) for b in blocks.values()})))
        return get_all_scopes(blocks)

    monkeypatch.setattr(inline_closurecall, "_get_all_scopes", record)
    assert branchy.clip_both(-3, 4) == 0 + 8
    assert branchy.clip_both(12, 11) == 20 + 20
    assert len(seen) == 2  # two sites
    assert all(n_blocks > 2 and scopes == 1 for n_blocks, scopes in seen), seen
    loc = inline_closurecall.ir.Loc("f.py", 3)
    assert copy.deepcopy(loc) is loc  # a location is shared by IR copies, never changed
    scope = inline_closurecall.ir.Scope(None, loc)
    scope.define("x", loc)
    twin = copy.deepcopy(scope)  # outside inlining: a copy, as numba makes it
    assert twin is not scope and twin == scope and twin.localvars is not scope.localvars


@jit
def _load_8_bytes_at(arr, i):
    return load_8_bytes(arr, i)


def test_load_8_bytes_is_the_little_endian_word_at_any_offset():
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, 64).astype(np.uint8)
    for i in range(0, 64 - 8 + 1):
        assert _load_8_bytes_at(arr, i) == int.from_bytes(arr[i:i + 8].tobytes(), "little")
    assert _load_8_bytes_at(arr[5:], 3) == int.from_bytes(arr[8:16].tobytes(), "little")
    with pytest.raises(numba.core.errors.TypingError):
        _load_8_bytes_at(arr.astype(np.int64), 0)  # bytes of a uint8 array only


def _kernels_taking_cost(source):
    """(name, opens with ``cost = borrowed(cost)``) for each function of ``source`` jitted
    without ``inline=`` that takes ``cost``."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef) or "cost" not in [a.arg for a in node.args.args]:
            continue
        decorators = [ast.unparse(d) for d in node.decorator_list]
        if not any("jit" in d for d in decorators) or any("inline" in d for d in decorators):
            continue
        borrows = any(ast.unparse(stmt) in ("cost = borrowed(cost)", "cost = fx.borrowed(cost)")
                      for stmt in node.body)
        yield node.name, borrows


def test_every_kernel_that_takes_cost_borrows_it():
    """fphlib's modules and every registered mechanism, policy and workload (plug-ins with a
    source file too).

    A kernel receives ``cost`` from its caller; each inlined helper it passes ``cost`` to
    would incref and decref it (the MemInfo is the caller's, unknown here, so LLVM keeps the
    calls, and the loop's registers are spilled around them: 5 % of the churn step's
    samples). ``borrowed`` makes the MemInfo a constant null, and the calls fold away."""
    import inspect
    from pathlib import Path

    from fphlib.hinting import REGISTRY as MECHANISMS
    from fphlib.host.policy import REGISTRY as POLICIES
    from fphlib.workloads import REGISTRY as WORKLOADS

    files = set(Path(fphlib.__file__).parent.rglob("*.py"))
    for registry in (MECHANISMS, POLICIES, WORKLOADS):
        for name in registry:
            try:  # a notebook cell's module, registered by another test, has no source file
                files.add(Path(inspect.getsourcefile(registry.module(name))))
            except TypeError:
                continue
    kernels = [(str(path), name, borrows) for path in sorted(files)
               for name, borrows in _kernels_taking_cost(path.read_text())]
    missing = [(path, name) for path, name, borrows in kernels if not borrows]
    assert not missing, missing
    assert len(kernels) > 50  # the walk found the kernels
