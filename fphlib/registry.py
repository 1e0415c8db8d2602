"""The open registries of mechanisms, host policies and workloads (docs/plugins.md).

One :class:`Registry` per kind holds the built-in modules (imported by name on first use),
the plug-ins installed as packages (entry-point groups ``fphlib.mechanisms``,
``fphlib.policies``, ``fphlib.workloads``, loaded the first time the registry is read) and
those registered at run time (:func:`fphlib.register_mechanism` from a notebook). Every
consumer — ``SimConfig`` validation, the widgets, the CLI's choices, sweeps, plots, the
contract tests — iterates the one live registry, so a registered plug-in shows up in all of
them.

A plug-in is a module (or any object with the module's attributes: a class, a
``types.SimpleNamespace``); :meth:`Registry.register` checks it against the kind's contract
and names what is missing or wrong. Each plug-in has a source digest (:meth:`Registry.digest`)
that sweep cache keys and result provenance include, so an edited plug-in never serves
results cached from its older source, and a spec (:meth:`Registry.shipping`) with which a
sweep registers it again in worker processes.

This module sits on the bottom floor: of fphlib it imports only the parameter spec and the
private-state declaration (:mod:`fphlib.state`).
"""

import hashlib
import importlib
import importlib.metadata
import inspect
import marshal
import types
import warnings
from collections.abc import Sequence
from pathlib import Path

from .state.layout import PrivateState
from .state.params import Param

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class PluginError(ValueError):
    """A plug-in that does not meet its kind's contract (the message names what is wrong)."""


def _load(spec):
    """The module named ``spec`` ("package.module"), or ``spec`` itself."""
    if isinstance(spec, str):
        try:
            return importlib.import_module(spec)
        except ImportError as e:
            raise PluginError(f"cannot import plug-in module {spec!r}: {e}") from None
    return spec


def _functions(obj):
    """The Python functions behind ``obj``'s callables: jitted dispatchers give ``py_func``."""
    for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
        func = getattr(value, "py_func", value)
        if isinstance(func, staticmethod):
            func = func.__func__
        func = getattr(func, "py_func", func)
        if isinstance(func, types.FunctionType):
            yield func


def _code_digest(func, h, seen):
    """Hash ``func``'s bytecode (any edit of its source changes it, or its line table) and,
    recursively, the functions of its own module that it names (a notebook's helpers)."""
    if func in seen:
        return
    seen.add(func)
    h.update(marshal.dumps(func.__code__))
    module = getattr(func, "__module__", None)
    for name in func.__code__.co_names:
        value = func.__globals__.get(name)
        inner = getattr(value, "py_func", value)
        if isinstance(inner, types.FunctionType) and inner.__module__ == module:
            _code_digest(inner, h, seen)


def source_digest(obj):
    """SHA-1 of a plug-in's source: its package's ``*.py`` files for a module with a file,
    else the source of its functions (and helpers they call) and the repr of its data."""
    h = hashlib.sha1()
    path = getattr(obj, "__file__", None)
    if path:
        package = (getattr(obj, "__package__", None) or "").split(".")[0]
        root = Path(path).parent
        if package:
            top = importlib.import_module(package)
            if getattr(top, "__file__", None):
                root = Path(top.__file__).parent
        files = sorted(root.rglob("*.py")) if root.name != "site-packages" else [Path(path)]
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        return h.hexdigest()
    seen = set()
    for func in sorted(_functions(obj), key=lambda f: f.__name__):
        _code_digest(func, h, seen)
    for key, value in sorted(vars(obj).items()):
        if key.isupper() and not callable(value):
            h.update(key.encode())
            _data_digest(value, h, seen)
    return h.hexdigest()


def _data_digest(value, h, seen):
    """Hash a plug-in's data (``PARAMS``, ``STATE``...) by content: functions inside it (a
    ``PrivateState``'s ``init``) by their code, never by their address."""
    func = getattr(value, "py_func", value)
    if isinstance(func, types.FunctionType):
        _code_digest(func, h, seen)
    elif isinstance(value, dict):
        for k, v in value.items():
            h.update(repr(k).encode())
            _data_digest(v, h, seen)
    elif isinstance(value, tuple | list):
        h.update(f"{type(value).__name__}({len(value)})".encode())
        for v in value:
            _data_digest(v, h, seen)
    else:
        h.update(repr(value).encode())


class Registry(Sequence):
    """The live registry of one kind of plug-in.

    Iterating it gives the names in registration order (built-ins first); ``name in
    registry``, ``len``, ``registry.index(name)`` and ``registry.module(name)`` work as on a
    tuple of names.

    Parameters
    ----------
    kind : str
        ``"mechanism"``, ``"policy"`` or ``"workload"`` (in messages).
    package : str
        The package holding the built-in modules (``fphlib.hinting``).
    builtin : tuple of str
        The built-in names, each a module of ``package``.
    check : callable
        ``check(module, name)`` raises :class:`PluginError` when the module breaks the contract.
    group : str
        The entry-point group plug-in packages declare (``fphlib.mechanisms``).
    """

    def __init__(self, kind, package, builtin, check, group):
        self.kind = kind
        self.package = package
        self.group = group
        self._check = check
        self._builtin = tuple(builtin)
        self._names = list(builtin)
        self._modules = {}
        self._plugins = {}  # name -> {"module", "digest", "source", "spec"}
        self._entry_points_loaded = False

    # ---------------------------------------------------------------- reading
    def _names_now(self):
        if not self._entry_points_loaded:
            self.load_entry_points()
        return self._names

    def __iter__(self):
        return iter(tuple(self._names_now()))

    def __len__(self):
        return len(self._names_now())

    def __contains__(self, name):
        return isinstance(name, str) and name in self._names_now()

    def __getitem__(self, i):
        return tuple(self._names_now())[i]

    def __repr__(self):
        return f"<{self.kind} registry: {', '.join(self._names_now())}>"

    def index(self, name):
        """Position of ``name`` (stable within a process; never stored with results)."""
        return self._names_now().index(self._known(name))

    def _known(self, name):
        if name not in self:
            raise ValueError(f"{self.kind}: {name!r} is not registered; known "
                             f"{self.kind}s: {', '.join(self._names_now())}")
        return name

    def module(self, name):
        """The module (or plug-in object) registered as ``name``."""
        self._known(name)
        module = self._modules.get(name)
        if module is None:
            module = importlib.import_module(f"{self.package}.{name}")
            self._modules[name] = module
        return module

    def is_plugin(self, name):
        """Is ``name`` a plug-in (not one of fphlib's own modules)?"""
        return self._known(name) in self._plugins

    def plugins(self):
        """``{name: {"digest", "source"}}`` of the registered plug-ins."""
        self._names_now()
        return {n: {"digest": p["digest"], "source": p["source"]}
                for n, p in self._plugins.items()}

    def digest(self, name):
        """The source digest of plug-in ``name`` (None for a built-in: fphlib's own sources
        are in every cache key already)."""
        p = self._plugins.get(self._known(name))
        return p["digest"] if p is not None else None

    def shipping(self, name):
        """How a worker process registers plug-in ``name``: ``("module", "pkg.mod")`` for
        an importable module, ``("pickle", bytes)`` for one defined in a notebook."""
        p = self._plugins[self._known(name)]
        if p["spec"] is not None:
            return ("module", p["spec"])
        import cloudpickle

        try:
            return ("pickle", cloudpickle.dumps(p["module"]))
        except Exception as e:  # noqa: BLE001 - any pickling failure gets the same advice
            raise PluginError(
                f"{self.kind} {name!r} was registered from this process and cannot be sent to "
                f"sweep workers ({type(e).__name__}: {e}); put it in a module of its own and "
                f"install it with an entry point in group {self.group!r} (docs/plugins.md), or "
                "run the sweep in process (executor=None)") from None

    # ---------------------------------------------------------------- writing
    def register(self, module, replace=False):
        """Check ``module`` against the contract and register it under its ``NAME``.

        Parameters
        ----------
        module : module, object with the module's attributes, or str
            The plug-in, or the dotted path of a module to import.
        replace : bool
            Allow replacing a plug-in of the same name (a built-in is never replaced).

        Returns
        -------
        str
            The registered name.
        """
        spec = module if isinstance(module, str) else None
        module = _load(module)
        if spec is None and isinstance(module, types.ModuleType) \
                and module.__name__ != "__main__" and getattr(module, "__file__", None):
            spec = module.__name__
        name = getattr(module, "NAME", None)
        if not isinstance(name, str) or not name or set(name) - _NAME_CHARS \
                or name[0].isdigit():
            raise PluginError(f"{self.kind} plug-in {_label(module)}: NAME is {name!r}; "
                              "expected a lower-case identifier such as 'eager'")
        self._names_now()
        if name in self._builtin:
            raise PluginError(f"{self.kind} {name!r} is built into fphlib and cannot be "
                              "replaced; give the plug-in another NAME")
        if name in self._plugins and not replace:
            raise PluginError(f"{self.kind} {name!r} is registered already (from "
                              f"{self._plugins[name]['source']}); pass replace=True to "
                              "replace it")
        try:
            self._check(module, name)
        except PluginError as e:
            raise PluginError(f"{self.kind} plug-in {name!r}: {e}") from None
        if name not in self._names:
            self._names.append(name)
        self._modules[name] = module
        self._plugins[name] = {"module": module, "digest": source_digest(module),
                               "source": spec or _label(module), "spec": spec}
        return name

    def unregister(self, name):
        """Remove plug-in ``name`` (built-ins stay)."""
        if name not in self._plugins:
            raise ValueError(f"{self.kind}: {name!r} is not a registered plug-in")
        del self._plugins[name]
        del self._modules[name]
        self._names.remove(name)

    def load_entry_points(self):
        """Register the plug-ins of installed packages (entry-point group ``self.group``).

        A broken plug-in warns, naming its entry point and what is wrong, and is skipped:
        it never stops ``import fphlib``.
        """
        self._entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=self.group):
            if ep.value.split(":")[0] in {p["spec"] for p in self._plugins.values()}:
                continue
            try:
                self.register(ep.value.split(":")[0])
            except Exception as e:  # noqa: BLE001 - a plug-in's failure must not stop fphlib
                warnings.warn(f"fphlib: entry point {ep.name!r} = {ep.value!r} of group "
                              f"{self.group!r} was not registered: {e}", stacklevel=2)

    def ensure(self, name, digest, shipped):
        """Register plug-in ``name`` from ``shipped`` (:meth:`shipping`) unless a plug-in of
        that name and ``digest`` is registered already (sweep workers)."""
        if name in self and self.digest(name) == digest:
            return
        kind, payload = shipped
        if kind == "module":
            module = _load(payload)
        else:
            import cloudpickle

            module = cloudpickle.loads(payload)
        self.register(module, replace=True)
        if kind == "pickle":  # the very object the sweep digested
            self._plugins[name]["digest"] = digest
        elif self.digest(name) != digest:
            raise PluginError(f"{self.kind} {name!r}: this worker's copy differs from the "
                              "one the sweep was started with (another version installed?)")


def _label(module):
    return getattr(module, "__name__", None) or type(module).__name__


def require(module, attrs):
    """Raise :class:`PluginError` naming the first of ``attrs`` (name -> (check, what)) that
    ``module`` lacks or holds in a wrong form."""
    for attr, (ok, what) in attrs.items():
        if not hasattr(module, attr):
            raise PluginError(f"{attr} is missing; expected {what}")
        if not ok(getattr(module, attr)):
            raise PluginError(f"{attr} is {getattr(module, attr)!r}; expected {what}")


def is_params_spec(params):
    """Is ``params`` a parameter spec: ``{name: Param}`` with help for each?"""
    return isinstance(params, dict) and all(
        isinstance(k, str) and isinstance(p, Param) and p.help for k, p in params.items())


def check_jitted(module, hook, args):
    """Raise :class:`PluginError` unless ``module.hook`` is jitted and takes ``args``."""
    f = getattr(module, hook)
    py = getattr(f, "py_func", None)
    if py is None:
        raise PluginError(f"{hook} is not jitted; decorate it with fphlib.extend.jit")
    got = tuple(inspect.signature(py).parameters)
    if len(got) != len(args):
        raise PluginError(f"{hook}{inspect.signature(py)} takes {len(got)} arguments; "
                          f"expected {hook}({', '.join(args)})")


def check_state(module):
    """Raise :class:`PluginError` unless ``module.STATE`` (if any) is a PrivateState."""
    state = getattr(module, "STATE", PrivateState())
    if not isinstance(state, PrivateState):
        raise PluginError(f"STATE is {state!r}; expected a fphlib.extend.PrivateState")


def check_callables(module, names):
    """Raise :class:`PluginError` naming the first of ``names`` present but not callable."""
    for name in names:
        if hasattr(module, name) and not callable(getattr(module, name)):
            raise PluginError(f"{name} is not callable")
