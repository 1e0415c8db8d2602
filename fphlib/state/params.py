"""Parameter specs of mechanisms and host policies, and their one validator.

A spec maps each parameter name to a :class:`Param` (kind, default, range, unit, help);
``SimConfig`` checks ``mechanism_params`` and ``policy_params`` against the chosen module's
spec with :func:`validate`, which names the key, the allowed keys and the range.
"""

import math
from typing import NamedTuple


class Param(NamedTuple):
    """One parameter: ``kind`` is ``int``, ``float``, ``bool``, ``choice``, ``size`` or
    ``size_or_none`` (bytes, ``parse_size`` forms)."""

    kind: str
    default: object
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    help: str = ""
    choices: tuple = ()
    field: str | None = None  # a SimConfig field whose value is the default (older name)


def describe(spec):
    """One line per parameter: name, kind, range, unit, default and help (CLI, errors)."""
    lines = []
    for key, p in spec.items():
        if p.kind == "choice":
            rng = " | ".join(repr(c) for c in p.choices)
        elif p.kind in ("size", "size_or_none"):
            rng = "a size such as '4GiB'" + (" or None" if p.kind == "size_or_none" else "")
        elif p.kind == "bool":
            rng = "True | False"
        else:
            rng = f"{p.lo:g}..{p.hi:g}"
        unit = f" {p.unit}" if p.unit and p.kind not in ("size", "size_or_none") else ""
        lines.append(f"{key}: {p.kind} {rng}{unit}, default {p.default!r} - {p.help}")
    return lines


def _check(name, p, value):
    def bad(what):
        raise ValueError(f"{name}: {value!r} is not allowed; expected {what}")

    if p.kind == "bool":
        if not isinstance(value, bool):
            bad("True or False")
        return value
    if p.kind in ("size", "size_or_none"):
        if value is None and p.kind == "size_or_none":
            return None
        from ..units import parse_size

        size = parse_size(value, name)
        if not p.lo <= size <= p.hi:
            bad(f"a size in {p.lo:g}..{p.hi:g} bytes")
        return size
    if p.kind == "choice":
        if value not in p.choices:
            bad("one of " + ", ".join(repr(c) for c in p.choices))
        return value
    rng = f"in {p.lo:g}..{p.hi:g}{' ' + p.unit if p.unit else ''}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        bad(f"a number {rng}")
    if not math.isfinite(value) or not p.lo <= value <= p.hi:
        bad(f"a number {rng}")
    if p.kind == "int":
        if not float(value).is_integer():
            bad(f"an integer {rng}")
        return int(value)
    return float(value)


def validate(name, owner, spec, params):
    """Canonical dict of the explicitly given ``params`` (``ValueError`` naming the key)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValueError(f"{name}: {params!r} is not allowed; expected a dict")
    out = {}
    for key, value in params.items():
        if key not in spec:
            known = ", ".join(spec) if spec else "none"
            raise ValueError(
                f"{name}[{key!r}]: unknown parameter for {owner}; allowed keys: {known}"
            )
        out[key] = _check(f"{name}[{key!r}]", spec[key], value)
    return dict(sorted(out.items()))


def effective(spec, given, cfg):
    """Every parameter's value: given, else its SimConfig alias field, else its default."""
    out = {}
    for key, p in spec.items():
        if key in given:
            out[key] = given[key]
        elif p.field is not None:
            out[key] = getattr(cfg, p.field)
        else:
            out[key] = p.default
    return out
