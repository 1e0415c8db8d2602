"""The hooks through which guest memory management and the engine reach the mechanism and the
host policy of a run, without importing them (guest/ and host/ sit below hinting/).

Each function here is a stub for jitted callers; :mod:`fphlib.hinting.dispatch` and
:mod:`fphlib.host.policy.dispatch` register their implementations (numba overloads holding the
only branches over the mechanism and policy ids). ``fphlib.engine`` imports both before it
compiles anything, so every caller is typed with them.
"""


def _stub(name):
    def f(*args):
        raise NotImplementedError(f"{name} runs only in jitted code (fphlib.hinting.dispatch)")

    f.__name__ = name
    return f


# mechanism hooks (signatures: fphlib.hinting.dispatch)
mech_start = _stub("mech_start")
mech_tick = _stub("mech_tick")
mech_on_free = _stub("mech_on_free")
mech_on_alloc_fail = _stub("mech_on_alloc_fail")
mech_reported_pages = _stub("mech_reported_pages")
# host policy hook (fphlib.host.policy.dispatch)
policy_step = _stub("policy_step")


def register(stub, functions, args, selector):
    """Give ``stub`` a jitted implementation calling ``functions[k]`` where ``k = selector``.

    ``args`` is the argument list as source (``"s, g, z, t, cost"``), ``selector`` an
    expression over them (``"s.pi[1]"``). The if/elif chain is generated from the registry,
    so a new mechanism or policy adds no branch by hand; each function stays its own
    (cached) compile unit.
    """
    from numba.extending import overload

    lines = [f"def impl({args}):", f"    k = {selector}"]
    for i in range(1, len(functions)):
        lines.append(f"    {'if' if i == 1 else 'elif'} k == {i}:")
        lines.append(f"        return f{i}({args})")
    lines.append(f"    return f0({args})")
    ns = {f"f{i}": f for i, f in enumerate(functions)}
    exec("\n".join(lines), ns)  # generated from the registry, no user input
    exec(f"def typer({args}):\n    return impl", ns)
    overload(stub)(ns["typer"])
