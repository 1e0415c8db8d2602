"""Sizes written the way people write them: ``"4GiB"``, ``"512MiB"``, ``4096``."""

import re

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "tib": 1 << 40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")

PAGE_SIZE = 4096  # bytes of a base page (x86_64 PAGE_SHIFT 12)
# Free areas, orders 0..10 (order 10 = 4 MiB): MAX_ORDER = 11 before Linux 6.4,
# NR_PAGE_ORDERS since 6.8 (include/linux/mmzone.h).
NR_ORDERS = 11

# The rule, stated once (``--help``, docs): decimal-looking units are binary, as in free(1),
# QEMU and libvirt; there is no 1000-based unit.
SIZE_RULE = (
    "SIZE: bytes, or a number with a unit K, M, G or T; units are binary and case-insensitive: "
    "KiB = KB = K = 1024 bytes, and 4GB = 4gb = 4GiB (as free, QEMU and libvirt read them)"
)


def parse_size(value, field="size"):
    """Return a size in bytes.

    Parameters
    ----------
    value : int or str
        A non-negative int (bytes) or a string such as ``"4GiB"``, ``"512MiB"``, ``"1.5GiB"``
        or ``"4096"``. Units are binary (KiB = 1024 bytes); ``KB``/``MB``/``GB`` are read as
        their binary twins, as ``free``, QEMU and libvirt do.
    field : str
        Name used in the error message.

    Returns
    -------
    int
        The size in bytes.

    Raises
    ------
    ValueError
        On anything else, quoting the input and showing an accepted example.
    """
    if hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        value = value.item()  # numpy scalars (np.int64(4096)) as the Python number they hold
    if isinstance(value, bool):
        raise ValueError(f"{field}: {value!r} is not a size; write e.g. '4GiB', '512MiB' or 4096")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{field}: {value!r} is negative; sizes are >= 0 (e.g. '4GiB')")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2).lower() in _UNITS and len(m.group(1)) <= 40:
            number, unit = m.groups()
            scale = _UNITS[unit.lower()]
            if "." in number:
                num, _, frac = number.partition(".")
                # exact rational arithmetic: "1.5GiB" is exactly 3 * 2**29
                numerator = int((num or "0") + frac) * scale
                denominator = 10 ** len(frac)
                if numerator % denominator == 0:
                    return numerator // denominator
                raise ValueError(
                    f"{field}: {value!r} is not a whole number of bytes; write e.g. '1.5GiB'"
                )
            return int(number) * scale
    raise ValueError(
        f"{field}: {value!r} is not a size; write e.g. '4GiB', '512MiB', '1.5GiB' or 4096"
    )


def format_size(n_bytes):
    """Return a short human form such as ``'4 GiB'`` or ``'1.5 MiB'``."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n_bytes) >= scale:
            if abs(n_bytes) >= 1 << 1000:  # past a float: an int shown by its size
                return f"~2**{int(abs(n_bytes)).bit_length() - 1} B"
            return f"{n_bytes / scale:.4g} {unit}"
    return f"{n_bytes} B"
