"""Lazy public names of a package: one home for the ``__getattr__``/``__dir__`` pair that
``fphlib`` and ``fphlib.observe`` use, so that importing a package stays fast and a notebook
pays only for the modules it uses (PEP 562)."""

import importlib
import sys


def lazy_names(package, public, subpackages=(), listed=None):
    """``(__getattr__, __dir__)`` for ``package`` (its ``__name__``).

    ``public`` maps a name to the module that defines it (imported on first access, then
    bound in the package); ``subpackages`` are submodules reachable as attributes;
    ``listed`` is what ``dir()`` shows (default: the public names, then the subpackages).
    """
    names = list(listed) if listed is not None else sorted(public) + list(subpackages)

    def __getattr__(name):
        if name in subpackages:
            return importlib.import_module(f"{package}.{name}")
        module = public.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return names

    return __getattr__, __dir__
