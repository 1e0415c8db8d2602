"""The house's imports run one way: every fphlib module imports only from its own floor's
package or from the floors below (docs/model.md lists them), whether at module level or inside
a function, and no set of modules imports itself in a circle."""

import ast
import pathlib

import pytest

import fphlib

ROOT = pathlib.Path(fphlib.__file__).parent

# bottom to top; a module may import from a lower floor, or from its own package (the single
# modules of the bottom floor and the two command lines may import each other: the circle
# test still holds them)
FLOORS = (
    ("fphlib", "fphlib.units", "fphlib.bounds", "fphlib.costs", "fphlib.errors",
     "fphlib._cache", "fphlib._jit", "fphlib._lazy", "fphlib._atomic", "fphlib._virtio"),
    ("fphlib.state",),
    ("fphlib.registry",),
    ("fphlib.guest",),
    ("fphlib.host",),
    ("fphlib.hinting", "fphlib.host.policy"),
    ("fphlib.workloads",),
    ("fphlib.engine",),
    ("fphlib.extend",),
    ("fphlib.api",),
    ("fphlib.sweep", "fphlib.experiments", "fphlib.observe"),
    ("fphlib.validation",),
    ("fphlib.viz",),
    ("fphlib.cli", "fphlib.__main__"),
)


def module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def home(module):
    """(floor, package) of ``module``: the longest package prefix listed in FLOORS."""
    best = None
    for floor, packages in enumerate(FLOORS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and (
                    best is None or len(package) > len(best[1])):
                best = (floor, package)
    assert best is not None, f"{module} is on no floor: add its package to FLOORS"
    return best


def imports(module):
    """``(target module, line, inside a function)`` of every fphlib import of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            targets = [t for t in names if t in MODULES] or [target]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            if t == "fphlib" or t.startswith("fphlib."):
                while t not in MODULES and "." in t:
                    t = t.rpartition(".")[0]
                if t != module:
                    out.append((t, node.lineno, id(node) not in top))
    return out


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_down_the_floors(module):
    floor, package = home(module)
    for target, line, inner in imports(module):
        t_floor, t_package = home(target)
        where = f"{module}:{line} imports {target}{' (in a function)' if inner else ''}"
        same_floor_ok = t_floor == floor and floor in (0, len(FLOORS) - 1)
        assert t_floor < floor or t_package == package or same_floor_ok, (
            f"{where}: an arrow running up or sideways (floors in {__name__})")


def test_no_module_imports_itself_in_a_circle():
    graph = {m: {t for t, _, _ in imports(m)} for m in MODULES}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles


def test_the_engine_imports_no_mechanism_policy_or_workload_module():
    """It binds them through the registries (fphlib.engine.build, fphlib.state.units)."""
    from fphlib.hinting import BUILTIN as MECHANISMS
    from fphlib.host.policy import BUILTIN as POLICIES
    from fphlib.workloads import BUILTIN as WORKLOADS

    banned = {f"fphlib.hinting.{m}" for m in MECHANISMS}
    banned |= {f"fphlib.host.policy.{p}" for p in POLICIES}
    banned |= {f"fphlib.workloads.{w}" for w in WORKLOADS}
    for module in MODULES:
        if module.startswith("fphlib.engine"):
            assert not {t for t, _, _ in imports(module)} & banned, module


def test_the_floors_hold_every_module():
    for module in MODULES:
        home(module)


# Modules that import fphlib inside functions, and why (measured or structural reasons):
LAZY_ALLOWED = {
    "fphlib.cli": "`python -m fphlib --help` stays under a second: each command imports "
                  "what it runs",
    "fphlib.observe": "root-only recorders: probe() and --help work without the model",
    "fphlib.api.warmup": "is_warm() answers without importing the engine (make lab)",
}


def _parameter_named_like_import(module, line):
    """Is the import at ``line`` the late default of a parameter of the same name
    (``if simulate is None: from ..api.simulate import simulate``)?"""
    tree = ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.lineno <= line <= node.end_lineno:
            params = {a.arg for a in node.args.args + node.args.kwonlyargs}
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.lineno == line:
                    return {a.asname or a.name for a in sub.names} <= params
    return False


def test_imports_sit_at_module_level_unless_there_is_a_reason():
    lazy = []
    for module in MODULES:
        if any(module == m or module.startswith(m + ".") for m in LAZY_ALLOWED):
            continue
        for target, line, inner in imports(module):
            if inner and not _parameter_named_like_import(module, line):
                lazy.append(f"{module}:{line} imports {target} in a function")
    assert not lazy
