"""Recorded allocator op streams: the file format of the ``"trace"`` workload.

A trace is an ``.npz`` archive of four flat arrays of equal length N, one entry per op
(data/README.md has the full description):

========  =======  ==================================================================
array     dtype    meaning
========  =======  ==================================================================
t_us      int64    time of the op in microseconds from the guest's start, >= 0,
                   non-decreasing
kind      int8     0 = alloc, 1 = free
order     int8     block order, 0..10 (order 10 = 4 MiB of 4 KiB pages)
slot      int32    handle slot >= 0: an alloc stores the pfn it got in ``slot``; a free
                   releases the block held in ``slot`` (same semantics as
                   docs/design.md §5)
========  =======  ==================================================================

The handle discipline is checked when a file is loaded or written: every free names a slot
that holds a live block of the same order, and no alloc overwrites a slot that still holds a
live block (that block could never be freed again). An optional scalar ``n_pages`` records the
guest size the trace was made for; it is informative only.

:func:`generate_trace` makes churn traces with the same op stream as
``gen_trace.py`` (docs/design.md §5; same seed ⇒ identical kind/order/slot) plus Poisson arrival
times, so the speed benchmark and the simulator can share a workload.
"""

import os
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

from .._atomic import write_file
from .._jit import jit
from ..bounds import MAX_GUEST_MEM, MAX_TRACE_OPS, finite
from ..units import NR_ORDERS, PAGE_SIZE

ALLOC, FREE = 0, 1
ARRAYS = {"t_us": np.int64, "kind": np.int8, "order": np.int8, "slot": np.int32}

# Kernel-like order mix of gen_trace.py (docs/design.md §5): mostly order 0, some order-9
# (THP-sized) blocks, few order 10. Keeping the same numbers keeps generate_trace == gen_trace.gen.
KERNEL_ORDER_MIX = (0.62, 0.10, 0.08, 0.05, 0.04, 0.03, 0.02, 0.02, 0.01, 0.025, 0.005)


class Trace(NamedTuple):
    """One recorded op stream (see the module docstring for the meaning of each array)."""

    t_us: np.ndarray  # int64[N]
    kind: np.ndarray  # int8[N]
    order: np.ndarray  # int8[N]
    slot: np.ndarray  # int32[N]


def check_trace(t_us, kind, order, slot, source="trace", n_pages=None):
    """Validate the four arrays of a trace; return them as a :class:`Trace`.

    Parameters
    ----------
    t_us, kind, order, slot : numpy.ndarray
        The arrays, with exactly the dtypes of the format (no silent casts: a wrong dtype is
        usually a sign that the file was written by a different tool).
    source : str
        Name used in error messages (a file path, or ``"trace"``).
    n_pages : int, optional
        Pages of the guest that replays it: every slot must be below it (a guest of N pages
        holds at most N blocks, and the replay keeps a table of ``max(slot) + 1`` entries).
        The same rule as ``BuddyAllocator.replay`` and ``python -m fphlib trace --check``.

    Raises
    ------
    ValueError
        Naming the array, the offending op index and what the format allows.
    """
    arrays = {"t_us": t_us, "kind": kind, "order": order, "slot": slot}
    for name, want in ARRAYS.items():
        a = arrays[name]
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{source}: array {name!r} is {type(a).__name__}, not a numpy array")
        if a.ndim != 1:
            raise ValueError(
                f"{source}: array {name!r} has shape {a.shape}; the format needs a flat 1-D array"
            )
        if a.dtype != np.dtype(want):
            raise ValueError(
                f"{source}: array {name!r} has dtype {a.dtype}; the format needs "
                f"{np.dtype(want).name}"
            )
    n = len(kind)
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{source}: arrays have unequal lengths {lengths}; all must be equal")

    def first(mask):
        return int(np.flatnonzero(mask)[0])

    bad = (kind != ALLOC) & (kind != FREE)
    if bad.any():
        i = first(bad)
        raise ValueError(f"{source}: kind[{i}] = {kind[i]}; allowed: 0 (alloc) or 1 (free)")
    bad = (order < 0) | (order >= NR_ORDERS)
    if bad.any():
        i = first(bad)
        raise ValueError(f"{source}: order[{i}] = {order[i]} is out of range 0..{NR_ORDERS - 1}")
    bad = slot < 0
    if bad.any():
        i = first(bad)
        raise ValueError(f"{source}: slot[{i}] = {slot[i]} is negative; slots are >= 0")
    if n_pages is not None and n and int(slot.max()) >= n_pages:
        i = int(np.argmax(slot))
        raise ValueError(
            f"{source}: slot[{i}] = {slot[i]} is outside 0..{n_pages - 1}: a guest of "
            f"{n_pages} pages holds at most {n_pages} blocks; number slots densely from 0"
        )
    if n and t_us[0] < 0:
        raise ValueError(f"{source}: t_us[0] = {t_us[0]} is negative; times start at >= 0")
    bad = np.diff(t_us) < 0
    if bad.any():
        i = first(bad) + 1
        raise ValueError(
            f"{source}: time goes backwards at op {i}: t_us[{i}] = {t_us[i]} < "
            f"t_us[{i - 1}] = {t_us[i - 1]}; t_us must be non-decreasing"
        )
    _check_slots(kind, order, slot, source)
    return Trace(t_us, kind, order, slot)


def _check_slots(kind, order, slot, source):
    """Check the handle discipline of every slot, vectorised (millions of ops in well under 1 s).

    Grouped by slot (stable, so time order is kept inside a group) the kinds must alternate
    alloc, free, alloc, ... and each free must repeat the order of the alloc just before it.
    """
    n = len(kind)
    if n == 0:
        return
    idx = np.argsort(slot, kind="stable")
    s, k, o = slot[idx], kind[idx], order[idx]
    starts = np.ones(n, bool)
    starts[1:] = s[1:] != s[:-1]
    prev_k = np.empty(n, np.int8)
    prev_k[0] = FREE
    prev_k[1:] = k[:-1]
    prev_k[starts] = FREE  # a slot's history starts as "nothing allocated"
    prev_o = np.empty(n, np.int8)
    prev_o[0] = 0
    prev_o[1:] = o[:-1]
    problems = []  # (op index, message)
    free_of_empty = (k == FREE) & (prev_k == FREE)
    if free_of_empty.any():
        i = int(idx[free_of_empty].min())
        problems.append(
            (i, f"op {i} frees slot {slot[i]}, which holds no allocated block "
                "(never allocated, or already freed)")
        )
    realloc = (k == ALLOC) & (prev_k == ALLOC)
    if realloc.any():
        i = int(idx[realloc].min())
        problems.append(
            (i, f"op {i} allocates into slot {slot[i]}, which still holds a live block "
                "(it would leak: free the slot first or use another slot)")
        )
    wrong_order = (k == FREE) & (prev_k == ALLOC) & (o != prev_o)
    if wrong_order.any():
        j = int(np.flatnonzero(wrong_order)[np.argmin(idx[wrong_order])])
        i = int(idx[j])
        problems.append(
            (i, f"op {i} frees slot {slot[i]} with order {o[j]}, but it was allocated with "
                f"order {prev_o[j]} (op {int(idx[j - 1])}); a free must repeat the alloc's order")
        )
    if problems:
        raise ValueError(f"{source}: {min(problems)[1]}")


def _regular_file(source):
    """Refuse what is not a readable regular file before opening it (a FIFO would block)."""
    import stat

    try:
        mode = os.stat(source).st_mode
    except FileNotFoundError:
        raise ValueError(f"{source}: cannot read trace file (no such file)") from None
    except OSError as e:
        raise ValueError(f"{source}: cannot read trace file ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"{source}: is a directory, not a trace file (.npz)")
    if not stat.S_ISREG(mode):
        raise ValueError(
            f"{source}: is not a regular file (a FIFO, socket or device); a trace is an .npz file"
        )


def load_trace(path, n_pages=None):
    """Read and validate a trace file.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.npz`` archive holding ``t_us``, ``kind``, ``order`` and ``slot``.
    n_pages : int, optional
        Pages of the guest that replays it; slots must be below it (:func:`check_trace`).

    Returns
    -------
    Trace
        NamedTuple ``(t_us, kind, order, slot)``.

    Raises
    ------
    ValueError
        If the file cannot be read, is not an ``.npz`` (zip) archive, lacks an array, or
        breaks the format (the message names the array and the offending op).
    """
    source = os.fspath(path)
    _regular_file(source)
    try:
        is_zip = zipfile.is_zipfile(source)
    except OSError as e:
        raise ValueError(f"{source}: cannot read trace file ({e.strerror or e})") from e
    if not is_zip:
        raise ValueError(
            f"{source}: not a trace file: expected an .npz (zip) archive with arrays "
            "t_us, kind, order, slot (see data/README.md)"
        )
    try:
        with zipfile.ZipFile(source) as zf:
            members = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
            missing = [name for name in ARRAYS if name not in members]
            if missing:
                raise ValueError(
                    f"{source}: missing array(s) {', '.join(missing)}; a trace needs "
                    f"t_us, kind, order, slot (found: {', '.join(members) or 'none'})"
                )
            arrays = {name: _read_member(zf, members[name], name, want, source)
                      for name, want in ARRAYS.items()}
    except ValueError as e:
        if str(e).startswith(source):
            raise
        raise ValueError(f"{source}: unreadable trace array ({e})") from e
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError,
            RuntimeError) as e:
        raise ValueError(f"{source}: corrupt or unreadable .npz archive "
                         f"({type(e).__name__}: {e})") from e
    return check_trace(source=source, n_pages=n_pages, **arrays)


def _read_member(zf, member, name, want, source):
    """One array of the archive, its ``.npy`` header checked before anything is allocated:
    the format's dtype, one dimension, at most ``MAX_TRACE_OPS`` entries, and exactly as
    many bytes stored as the header declares (a forged shape is refused, not allocated)."""
    info = zf.getinfo(member)
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{source}: array {name!r} has .npy format version {version}; "
                             "expected 1.0 or 2.0 (numpy.savez)")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        try:
            shape, _, dtype = read_header(f)
        except (zlib.error, zipfile.BadZipFile, EOFError, OSError):
            raise
        except Exception as e:  # noqa: BLE001 - numpy parses the header text in Python:
            # a damaged one raises SyntaxError, tokenize.TokenError, ...
            raise ValueError(f"{source}: array {name!r} has a damaged .npy header "
                             f"({type(e).__name__}: {e})") from None
        if dtype != np.dtype(want):
            raise ValueError(f"{source}: array {name!r} has dtype {dtype}; the format needs "
                             f"{np.dtype(want).name}")
        if len(shape) != 1:
            raise ValueError(f"{source}: array {name!r} has shape {shape}; the format needs "
                             "a flat 1-D array")
        (n,) = shape
        if n > MAX_TRACE_OPS:
            raise ValueError(f"{source}: array {name!r} declares {n:,} ops, above the limit "
                             f"of {MAX_TRACE_OPS:,} (fphlib.bounds.MAX_TRACE_OPS)")
        stored = info.file_size - f.tell()
        if stored != n * dtype.itemsize:
            raise ValueError(f"{source}: array {name!r} declares {n:,} entries "
                             f"({n * dtype.itemsize:,} bytes) but holds {stored:,} bytes")
        out = np.empty(n, dtype)
        view = memoryview(out).cast("B")
        got = 0
        while got < len(view):
            k = f.readinto(view[got:])
            if not k:
                raise ValueError(f"{source}: array {name!r} ends after {got:,} of "
                                 f"{len(view):,} bytes")
            got += k
        if f.read(1):  # reading to the end also checks the member's CRC-32
            raise ValueError(f"{source}: array {name!r} holds more than its header declares")
    return out


def write_trace(path, t_us, kind, order, slot, n_pages=None, compress=False):
    """Validate a trace and write it to ``path`` atomically (written in a temporary directory
    fphlib made next to it, then moved with ``os.replace``).

    Arrays are converted to the format's dtypes when the values fit exactly; anything that
    :func:`load_trace` would reject is rejected here, before the file is touched. Use
    ``write_trace(path, *trace)`` to write a :class:`Trace`.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; written exactly as named (no suffix is added).
    t_us, kind, order, slot : array_like
        The op stream.
    n_pages : int, optional
        Guest size (in 4 KiB pages) the trace was made for; stored as metadata.
    compress : bool
        Write a deflate-compressed archive (``numpy.savez_compressed``); :func:`load_trace`
        reads both kinds.
    """
    if not isinstance(compress, bool):
        raise ValueError(f"compress: {compress!r} is not allowed; expected True or False")
    arrays = {}
    for name, want in ARRAYS.items():
        a = np.asarray({"t_us": t_us, "kind": kind, "order": order, "slot": slot}[name])
        if a.dtype != np.dtype(want) and a.size and a.dtype.kind in "iu":
            cast = a.astype(want)
            if not np.array_equal(cast, a):
                raise ValueError(
                    f"{name}: values do not fit in {np.dtype(want).name} (the format's dtype)"
                )
            a = cast
        elif a.size == 0:
            a = a.astype(want)
        arrays[name] = a
    extra = {}
    if n_pages is not None:
        if isinstance(n_pages, bool) or not isinstance(n_pages, int | np.integer) or n_pages <= 0:
            raise ValueError(f"n_pages: {n_pages!r} must be a positive int (pages of 4 KiB)")
        extra["n_pages"] = np.int64(n_pages)
    check_trace(source=os.fspath(path), n_pages=n_pages, **arrays)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory; give the trace file's path (.npz)")

    def write(tmp):
        with open(tmp, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays, **extra)
            f.flush()
            os.fsync(f.fileno())

    write_file(path, write, "temporary directory")  # in a directory fphlib made, then renamed


@jit
def _churn_ops(draws, u, pick, target_live, n_slots, kind, order, slot):
    """Fill kind/order/slot with a steady churn around ``target_live`` live blocks.

    Exactly the loop of gen_trace.py (docs/design.md §5) on pre-drawn randomness: allocate while
    fewer than ``target_live * (0.5 + u)`` blocks are live, else free a random live one; slots
    are reused last-freed-first.
    """
    free_slots = np.empty(n_slots, np.int32)  # a stack; top = n_free - 1
    for i in range(n_slots):
        free_slots[i] = n_slots - 1 - i
    n_free = n_slots
    live = np.empty(n_slots, np.int32)
    n_live = 0
    live_order = np.zeros(n_slots, np.int8)
    for i in range(draws.shape[0]):
        if n_live < target_live * (0.5 + u[i]) or n_live == 0:
            n_free -= 1
            s = free_slots[n_free]
            kind[i] = 0
            order[i] = draws[i]
            slot[i] = s
            live[n_live] = s
            n_live += 1
            live_order[s] = draws[i]
        else:
            j = pick[i] % n_live
            s = live[j]
            live[j] = live[n_live - 1]
            n_live -= 1
            kind[i] = 1
            order[i] = live_order[s]
            slot[i] = s
            free_slots[n_free] = s
            n_free += 1


def generate_trace(
    n_ops,
    seed=1,
    occupancy=0.6,
    ops_per_s=10_000.0,
    n_pages=1 << 20,
    order_mix=KERNEL_ORDER_MIX,
):
    """Generate a churn trace: steady alloc/free around a target occupancy.

    Parameters
    ----------
    n_ops : int
        Number of ops (> 0).
    seed : int
        Seed of ``numpy.random.default_rng``; same seed ⇒ identical trace. With the default
        ``occupancy``, ``n_pages`` and ``order_mix`` the kind/order/slot arrays equal those of
        ``gen_trace.py`` (docs/design.md §5) for the same seed.
    occupancy : float
        Target fraction of ``n_pages`` held by live blocks, in (0, 1).
    ops_per_s : float
        Mean op rate; arrival times are a Poisson process (exponential gaps, floored to µs).
    n_pages : int
        Guest size in 4 KiB pages the occupancy refers to (> 0).
    order_mix : sequence of 11 floats
        Probability of each order 0..10 for allocations (normalised to sum 1).

    Returns
    -------
    Trace
    """
    if not (isinstance(ops_per_s, int | float) and not isinstance(ops_per_s, bool)
            and finite(ops_per_s) and ops_per_s > 0):
        raise ValueError(f"ops_per_s: {ops_per_s!r} must be a positive number")
    rng, kind, order, slot, _ = _churn(n_ops, seed, occupancy, n_pages, order_mix)
    t_us = np.floor(np.cumsum(rng.exponential(1e6 / ops_per_s, n_ops))).astype(np.int64)
    return Trace(t_us, kind, order, slot)


def _churn(n_ops, seed, occupancy, n_pages, order_mix):
    """Validate, draw (in gen_trace.py's order) and run the churn loop; return the rng too."""
    if isinstance(n_ops, bool) or not isinstance(n_ops, int | np.integer) or \
            not 0 < n_ops <= MAX_TRACE_OPS:
        raise ValueError(f"n_ops: {n_ops!r} is not allowed; expected an int in "
                         f"1..{MAX_TRACE_OPS:,} (fphlib.bounds.MAX_TRACE_OPS)")
    if not (isinstance(occupancy, int | float) and not isinstance(occupancy, bool)
            and 0 < occupancy < 1):
        raise ValueError(f"occupancy: {occupancy!r} must be a number in (0, 1)")
    max_pages = MAX_GUEST_MEM // PAGE_SIZE
    if isinstance(n_pages, bool) or not isinstance(n_pages, int | np.integer) or \
            not 0 < n_pages <= max_pages:
        raise ValueError(f"n_pages: {n_pages!r} is not allowed; expected an int in "
                         f"1..{max_pages} (pages of 4 KiB of a guest of at most 1 TiB)")
    p = np.asarray(order_mix, dtype=np.float64)
    if p.shape != (NR_ORDERS,) or not np.all(np.isfinite(p)) or (p < 0).any() or p.sum() <= 0:
        raise ValueError(
            f"order_mix: {order_mix!r} must be {NR_ORDERS} non-negative weights for orders "
            f"0..{NR_ORDERS - 1} with a positive sum"
        )
    p = p / p.sum()
    orders = np.arange(NR_ORDERS)
    mean_pages = float((p * (1 << orders)).sum())
    target_live = int(occupancy * n_pages / mean_pages)
    if target_live < 1:
        raise ValueError(
            f"occupancy: {occupancy!r} of n_pages={n_pages} holds less than one block of the "
            "mean size; raise occupancy or n_pages"
        )
    n_slots = target_live * 2 + 16
    rng = np.random.default_rng(seed)
    # Same draws in the same order as gen_trace.py; generate_trace draws the times after them.
    draws = rng.choice(orders, size=n_ops, p=p).astype(np.int8)
    u = rng.random(n_ops)
    pick = rng.integers(0, 1 << 62, n_ops)
    kind = np.empty(n_ops, np.int8)
    order = np.empty(n_ops, np.int8)
    slot = np.empty(n_ops, np.int32)
    _churn_ops(draws, u, pick, target_live, n_slots, kind, order, slot)
    return rng, kind, order, slot, n_slots


def churn_trace(n_ops, n_pages=1 << 20, occupancy=0.6, seed=1, order_mix=KERNEL_ORDER_MIX):
    """The op stream of a churn trace without times: ``(kind, order, slot, n_slots)``.

    ``churn_trace(5_000_000)`` is the standard churn5m trace of docs/design.md §5 (same seed, same
    draws); ``n_slots`` bounds the slot values. Arguments as in :func:`generate_trace`.
    """
    _, kind, order, slot, n_slots = _churn(n_ops, seed, occupancy, n_pages, order_mix)
    return kind, order, slot, n_slots
