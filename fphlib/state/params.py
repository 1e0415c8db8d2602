"""Parameter specs of mechanisms, host policies and workloads, and their one validator.

A spec maps each parameter name to a :class:`Param` (kind, default, range, unit, help);
``SimConfig`` checks ``mechanism_params``, ``policy_params`` and ``workload_params`` against
the chosen module's spec with :func:`validate`, which names the key, the allowed keys and the
range.
"""


from typing import NamedTuple

from ..bounds import finite
from ..units import NR_ORDERS, format_size, parse_size


class Param(NamedTuple):
    """One parameter: ``kind`` is ``int``, ``float``, ``float_or_none``, ``bool``,
    ``choice``, ``size`` or ``size_or_none`` (bytes, ``parse_size`` forms; a rate in bytes/s
    has ``unit="bytes/s"``), ``orders`` (a dict order -> weight, weights in ``lo..hi``) or
    ``path`` (a non-empty string)."""

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
        elif p.kind == "orders":
            rng = "{order: weight}"
        elif p.kind == "path":
            rng = "a path"
        else:
            rng = f"{_plain(p.lo)}..{_plain(p.hi)}" + (" or None" if p.kind == "float_or_none"
                                                        else "")
        unit = f" {p.unit}" if p.unit and p.kind not in ("size", "size_or_none") else ""
        default = p.default
        if p.kind in ("size", "size_or_none") and default is not None:
            default = format_size(default).replace(" ", "") + p.unit[5:]
        lines.append(f"{key}: {p.kind} {rng}{unit}, default {default!r} - {p.help}")
    return lines


def _plain(x):
    """``x`` as people write it: never in scientific notation (1048576, not 1.04858e+06)."""
    x = float(x)
    return f"{x:.0f}" if x.is_integer() else f"{x:.12f}".rstrip("0").rstrip(".")


def _size_range(p):
    unit = p.unit[5:] if p.unit.startswith("bytes") else ""
    return f"{format_size(p.lo)}{unit}..{format_size(p.hi)}{unit}"


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
        size = parse_size(value, name)
        if not p.lo <= size <= p.hi:
            what = "a rate" if p.unit == "bytes/s" else "a size"
            raise ValueError(f"{name}: {value!r} ({format_size(size)}) is not allowed; "
                             f"expected {what} in {_size_range(p)}")
        return size
    if p.kind == "choice":
        if value not in p.choices:
            bad("one of " + ", ".join(repr(c) for c in p.choices))
        return value
    if p.kind == "path":
        if not isinstance(value, str) or not value:
            bad(p.help or "a path")
        return value
    if p.kind == "orders":
        return _orders(name, p, value, bad)
    if p.kind == "float_or_none" and value is None:
        return None
    rng = f"in {p.lo:g}..{p.hi:g}{' ' + p.unit if p.unit else ''}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        bad(f"a number {rng}")
    if not finite(value) or not p.lo <= value <= p.hi:
        bad(f"a number {rng}")
    if p.kind == "int":
        if not float(value).is_integer():
            bad(f"an integer {rng}")
        return int(value)
    return float(value)


def _orders(name, p, value, bad):
    """A dict order -> weight: orders 0..NR_ORDERS-1 once each, weights in lo..hi, not all 0."""
    if not isinstance(value, dict) or not value:
        bad(f"a non-empty dict order (0..{NR_ORDERS - 1}) -> weight")
    mix = {}
    for o, w in value.items():
        try:
            oi = int(o)
        except (TypeError, ValueError, OverflowError):
            oi = -1
        if isinstance(o, bool) or str(oi) != str(o).strip() or not 0 <= oi < NR_ORDERS:
            bad(f"a dict order -> weight; order {o!r} is not an order 0..{NR_ORDERS - 1}")
        if oi in mix:
            bad(f"a dict order -> weight; order {oi} is given twice")
        mix[oi] = _check(f"{name}[{o!r}]", Param("float", 0.0, p.lo, p.hi), w)
    if sum(mix.values()) <= 0:
        bad("a dict order -> weight; the weights must not all be zero")
    return dict(sorted(mix.items()))


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


def effective(spec, given, cfg=None):
    """Every parameter's value: given, else its SimConfig alias field, else its default."""
    out = {}
    for key, p in spec.items():
        if key in given:
            out[key] = given[key]
        elif p.field is not None and cfg is not None:
            out[key] = getattr(cfg, p.field)
        else:
            out[key] = p.default
    return out
