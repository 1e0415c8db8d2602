"""Read-only containers for the nested values of a validated ``SimConfig``.

A ``SimConfig`` is checked once, in ``__post_init__``; its nested dicts are stored as
:class:`FrozenDict` (and lists as tuples) so that no later edit can slip an unchecked value
into the jitted engine or change ``hash(cfg)``. ``FrozenDict`` is a ``dict`` (JSON, ``==``,
``isinstance`` and ``{**d}`` work as before) whose mutating methods raise ``TypeError``.
"""

import numpy as np


class FrozenDict(dict):
    """A ``dict`` that cannot be changed after construction (``TypeError`` on any edit)."""

    __slots__ = ()

    def _immutable(self, *args, **kwargs):
        raise TypeError(
            "a validated SimConfig cannot be changed; build a new one with "
            "dataclasses.replace(cfg, field=value) (it is validated again)"
        )

    __setitem__ = __delitem__ = __ior__ = _immutable
    clear = pop = popitem = setdefault = update = _immutable

    def __hash__(self):
        return hash(tuple(sorted((repr(k), _hashable(v)) for k, v in self.items())))

    def __reduce__(self):  # pickle/copy without __setitem__
        return (FrozenDict, (dict(self),))

    def __repr__(self):
        return dict.__repr__(self)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _hashable(v):
    if isinstance(v, dict):
        return hash(FrozenDict(v)) if not isinstance(v, FrozenDict) else hash(v)
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    return v


def freeze(value):
    """``value`` with every dict made a :class:`FrozenDict` and every list a tuple (deep)."""
    if isinstance(value, dict):
        return FrozenDict((k, freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value):
    """Inverse of :func:`freeze` for JSON: plain dicts (tuples stay tuples)."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(thaw(v) for v in value)
    return value


def plain(value):
    """Numpy scalars as the Python ``bool``, ``int``, ``float`` or ``str`` they hold (deep):
    what a notebook passes (``guests=np.int64(4)``) is validated like a literal."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return value
