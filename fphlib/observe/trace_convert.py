"""kmem tracepoint text → fphlib trace: parse the event lines, then convert them to slots.

Two steps, each a jitted kernel behind a thin validating wrapper:

1. :func:`parse_events` reads the text that ``trace_pipe`` (or ``trace``) of tracefs prints for
   the page allocator tracepoints of ``include/trace/events/kmem.h`` and returns flat arrays
   (time in ns, event kind, pfn, order). The line layout is ftrace's default output
   (``kernel/trace/trace_output.c``: ``"%16s-%-7d [%03d] <flags> %5lu.%06lu: "``, then the
   event name and its ``TP_printk`` text):

   - ``mm_page_alloc: page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s``; a failed
     allocation (NULL page, pfn -1 in the record) prints ``pfn=0x0``;
   - ``mm_page_free: page=%p pfn=0x%lx order=%d``;
   - ``mm_page_free_batched: page=%p pfn=0x%lx order=0`` (the order is a literal; the record
     has no order field);
   - ``mm_page_pcpu_drain: page=%p pfn=0x%lx order=%d migratetype=%d``;
   - ``CPU:%d [LOST %lu EVENTS]`` lines, which ``trace_pipe`` inserts where the ring buffer
     dropped events (``kernel/trace/trace.c``: ``print_trace_line``), are summed as lost.

   The event name is found as ``": mm_page_"`` preceded by a timestamp (digits, an optional
   ``.`` and more digits), so a task name holding spaces or colons does not confuse it.
   Anything else (other events, ``#`` comments, blank lines) is counted, not parsed.

2. :func:`convert_events` turns the events into the trace slot discipline of
   ``fphlib.workloads.trace_file`` (data/README.md, "Trace files"): every alloc takes a slot
   from a stack of free slots (last freed, first reused, so slots stay as few as the live
   blocks), every free names the slot of the block it frees with the alloc's order. The
   kernel keeps, for every pfn of the recorded span (a dense array from the lowest to the
   highest pfn seen), the head pfn of the live block that owns the page, and for every live
   head its order, slot and pages not yet freed.

Conversion rules (each case is counted in the stats dict; names in brackets):

- Events are put in time order first (stable sort; ``reordered_events`` counts the places
  where the input went backwards). ``t_us`` counts microseconds from the first event of any
  kind (``t0_ns``), floored.
- ``mm_page_alloc`` with pfn 0 is a failed allocation (``alloc_failed``): dropped. An alloc or
  free with an order above 10 (``NR_ORDERS - 1``) is dropped (``order_out_of_range``).
- (a) A free whose pages belong to no live block — the block was allocated before the
  recording started, by a task outside the recorded process tree, or taken without an alloc
  event: ``alloc_pages_bulk()``'s per-CPU loop (``mm/page_alloc.c``; vmalloc, the network
  stack) and compaction's free page isolation (``mm/compaction.c``) hand out pages without
  ``mm_page_alloc``: dropped (``free_unmatched``, ``free_unmatched_pages``). A failed
  memcg charge in ``__alloc_pages()`` frees the block before the (then NULL) alloc event:
  an unmatched free and a failed alloc.
- (b) ``mm_page_free_batched`` fires *in addition to* ``mm_page_free`` in Linux 6.x:
  ``free_unref_folios()`` (``mm/page_alloc.c``) first calls ``free_pages_prepare()`` for every
  folio of the batch, which emits ``mm_page_free(page, order)``, and later
  ``trace_mm_page_free_batched(page)`` just before ``free_frozen_page_commit()`` puts the
  folio on the per-CPU list. A batched event of a pfn that is no longer live is therefore the
  duplicate of that free and dropped (``batched_duplicate``); one of a still-live pfn (a
  kernel that emits it *instead of* ``mm_page_free``) frees that pfn's page — the whole block
  when the pfn is the block's head (a folio is freed whole) — (``batched_as_free``).
  ``mm_page_pcpu_drain`` (``free_pcppages_bulk``) moves pages from a per-CPU list to the buddy
  free lists: a page the program freed earlier, no program event; counted
  (``events_pcpu_drain``), never emitted.
- (c) Page-conserving rule for frees that do not match their alloc (``split_page()`` of a
  non-compound order-k block freed as 2^k order-0 pages, ``__free_pages()`` of a
  non-compound page with extra references freeing its tail halves, or any other order
  mismatch): a free event frees the pages of ``[pfn, pfn + 2**order)``; each page owned by a
  live block is released from it, and a block is emitted as freed (whole, with its alloc's
  order and slot) when its last page is freed, at that event's time. Such events are counted
  in ``split_free_events``, the blocks they complete in ``blocks_freed_piecewise``; pages of
  the range owned by no block count in ``free_unmatched_pages``.
- (d) An alloc covering a page still owned by a live block means the free of that block was
  not seen (ring buffer overrun, or freed by a task outside the recorded tree): every such
  block is emitted as freed just before the new alloc, at its time (``implicit_frees``,
  ``implicit_free_pages``).
- Blocks still live at the end stay allocated (``live_at_end``, ``live_pages_at_end``).

Pages are conserved: ``alloc_pages == free_pages + live_pages_at_end`` (emitted allocs and
frees), and every emitted free names a block of an emitted alloc.

Simplifications: the trace has no CPU, task, migratetype or gfp flags (the simulator replays
an op on vCPU ``slot % vcpus``); a block freed piecewise is freed at its last page's time; the
time of an implicit free (d) is an upper bound of the true one.
"""

import os
from typing import NamedTuple

import numpy as np

from .._jit import jit
from ..units import NR_ORDERS
from ..workloads.trace_file import Trace, check_trace

# event kinds of the parsed stream (the index into EVENT_NAMES)
EV_ALLOC, EV_FREE, EV_FREE_BATCHED, EV_PCPU_DRAIN = 0, 1, 2, 3
EVENT_NAMES = ("mm_page_alloc", "mm_page_free", "mm_page_free_batched", "mm_page_pcpu_drain")

# counters of convert_events, in the order of the kernel's counter array
STAT_NAMES = (
    "events_alloc",
    "events_free",
    "events_free_batched",
    "events_pcpu_drain",
    "alloc_failed",
    "order_out_of_range",
    "allocs",
    "alloc_pages",
    "frees",
    "free_pages",
    "free_unmatched",
    "free_unmatched_pages",
    "batched_duplicate",
    "batched_as_free",
    "split_free_events",
    "blocks_freed_piecewise",
    "implicit_frees",
    "implicit_free_pages",
    "live_at_end",
    "live_pages_at_end",
    "slots",
)


class Events(NamedTuple):
    """Parsed tracepoint events, one entry per event line, in input order."""

    ts_ns: np.ndarray  # int64: timestamp in ns (the trace clock's unit)
    kind: np.ndarray  # int8: EV_ALLOC, EV_FREE, EV_FREE_BATCHED, EV_PCPU_DRAIN
    pfn: np.ndarray  # int64
    order: np.ndarray  # int16


# ------------------------------------------------------------------------------ parsing


@jit
def _match(buf, at, end, pat):
    """True when the bytes of ``pat`` start at ``buf[at]`` (and fit before ``end``)."""
    if at + pat.shape[0] > end:
        return False
    for i in range(pat.shape[0]):
        if buf[at + i] != pat[i]:
            return False
    return True


@jit
def _find(buf, start, end, pat):
    """Index of the first ``pat`` in ``buf[start:end]``, or -1."""
    first = pat[0]
    last = end - pat.shape[0]
    i = start
    while i <= last:
        if buf[i] == first and _match(buf, i, end, pat):
            return i
        i += 1
    return -1


@jit
def _parse_kernel(buf, marker, names, pfn_key, order_key, lost_key, out_ts, out_kind, out_pfn,
                  out_order, counts):
    """Parse every line of ``buf``; fill the output arrays; return the number of events.

    ``counts``: [lines, other lines, malformed event lines, lost events, lost lines].
    ``names``: one row per event name followed by ``":"``, padded with zero bytes.
    """
    n = buf.shape[0]
    k = 0
    pos = 0
    while pos < n:
        end = pos
        while end < n and buf[end] != 10:
            end += 1
        s = pos
        pos = end + 1
        if end > s and buf[end - 1] == 13:
            end -= 1
        if end == s:
            continue
        counts[0] += 1
        # the event name: ": mm_page_" preceded by a timestamp digits[.digits]
        j = _find(buf, s, end, marker)
        ts_start = -1
        while j >= 0:
            q = j - 1
            dots = 0
            while q >= s and (48 <= buf[q] <= 57 or buf[q] == 46):
                if buf[q] == 46:
                    dots += 1
                q -= 1
            if q < j - 1 and dots <= 1 and buf[q + 1] != 46 and buf[j - 1] != 46 and (
                    q < s or buf[q] == 32):
                ts_start = q + 1
                break
            j = _find(buf, j + 1, end, marker)
        if ts_start < 0:
            # "CPU:%d [LOST %lu EVENTS]"
            li = _find(buf, s, end, lost_key)
            if li >= 0:
                q = li + lost_key.shape[0]
                v = 0
                nd = 0
                while q < end and 48 <= buf[q] <= 57:
                    v = v * 10 + (buf[q] - 48)
                    nd += 1
                    q += 1
                if nd > 0:
                    counts[3] += v
                    counts[4] += 1
                    continue
            counts[1] += 1
            continue
        # which event
        name_at = j + 2
        ev = -1
        for e in range(names.shape[0]):
            m = 0
            while m < names.shape[1] and names[e, m] != 0:
                m += 1
            if _match(buf, name_at, end, names[e, :m]):
                ev = e
                break
        if ev < 0:
            counts[1] += 1
            continue
        # timestamp: seconds[.fraction] -> ns
        sec = 0
        q = ts_start
        while buf[q] != 46 and q < j:
            sec = sec * 10 + (buf[q] - 48)
            q += 1
        frac = 0
        nfrac = 0
        if q < j:
            q += 1
            while q < j:
                if nfrac < 9:
                    frac = frac * 10 + (buf[q] - 48)
                    nfrac += 1
                q += 1
        while nfrac < 9:
            frac *= 10
            nfrac += 1
        ts = sec * 1_000_000_000 + frac
        # pfn=0x<hex>
        p = _find(buf, name_at, end, pfn_key)
        if p < 0:
            counts[2] += 1
            continue
        q = p + pfn_key.shape[0]
        pfn = 0
        nd = 0
        while q < end:
            c = buf[q]
            if 48 <= c <= 57:
                d = c - 48
            elif 97 <= c <= 102:
                d = c - 87
            elif 65 <= c <= 70:
                d = c - 55
            else:
                break
            pfn = pfn * 16 + d
            nd += 1
            q += 1
        if nd == 0 or nd > 15:
            counts[2] += 1
            continue
        # order=<dec>
        o = _find(buf, q, end, order_key)
        if o < 0:
            counts[2] += 1
            continue
        q = o + order_key.shape[0]
        order = 0
        nd = 0
        while q < end and 48 <= buf[q] <= 57 and nd < 6:
            order = order * 10 + (buf[q] - 48)
            nd += 1
            q += 1
        if nd == 0:
            counts[2] += 1
            continue
        out_ts[k] = ts
        out_kind[k] = ev
        out_pfn[k] = pfn
        out_order[k] = order
        k += 1
    return k


@jit
def _count_lines(buf):
    n = 1
    for i in range(buf.shape[0]):
        if buf[i] == 10:
            n += 1
    return n


def _bytes(text):
    return np.frombuffer(text.encode() if isinstance(text, str) else text, np.uint8)


# EVENT_NAMES as a byte matrix for the kernel: "mm_page_alloc:" etc., zero-padded
_NAMES = np.zeros((len(EVENT_NAMES), max(map(len, EVENT_NAMES)) + 2), np.uint8)
for _i, _name in enumerate(EVENT_NAMES):
    _NAMES[_i, :len(_name) + 1] = _bytes(_name + ":")


def parse_events(data):
    """Parse kmem tracepoint text (``trace_pipe`` output) into :class:`Events`.

    Parameters
    ----------
    data : str, bytes, numpy.ndarray of uint8, or os.PathLike
        The text itself (a ``str`` is text, never a file name), or a ``pathlib.Path`` of a
        file holding it (read through a memory map).

    Returns
    -------
    (Events, dict)
        The events in input order, and counts: ``lines`` (non-blank), ``other_lines`` (not a
        page allocator event), ``malformed`` (an event line without a readable pfn/order),
        ``lost_events`` and ``lost_lines`` (from ``[LOST n EVENTS]`` lines), and
        ``events_<name>`` per tracepoint.
    """
    if isinstance(data, str | bytes | bytearray | memoryview):
        buf = _bytes(bytes(data) if not isinstance(data, str) else data)
    elif isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise ValueError(f"data: a numpy array must be 1-D uint8 bytes, got {data.dtype} "
                             f"with shape {data.shape}")
        buf = data
    elif isinstance(data, os.PathLike):
        path = os.fspath(data)
        size = os.path.getsize(path)
        buf = np.memmap(path, np.uint8, "r") if size else np.zeros(0, np.uint8)
    else:
        raise ValueError(f"data: expected text, bytes, a uint8 array or a path, got "
                         f"{type(data).__name__}")
    cap = _count_lines(buf) if buf.size else 0
    ts = np.empty(cap, np.int64)
    kind = np.empty(cap, np.int8)
    pfn = np.empty(cap, np.int64)
    order = np.empty(cap, np.int16)
    counts = np.zeros(5, np.int64)
    if buf.size:
        n = _parse_kernel(buf, _bytes(": mm_page_"), _NAMES, _bytes("pfn=0x"),
                          _bytes("order="), _bytes("[LOST "), ts, kind, pfn, order, counts)
    else:
        n = 0
    ev = Events(ts[:n].copy(), kind[:n].copy(), pfn[:n].copy(), order[:n].copy())
    info = {"lines": int(counts[0]), "other_lines": int(counts[1]),
            "malformed": int(counts[2]), "lost_events": int(counts[3]),
            "lost_lines": int(counts[4])}
    per = np.bincount(ev.kind, minlength=len(EVENT_NAMES)) if n else np.zeros(4, np.int64)
    for i, name in enumerate(EVENT_NAMES):
        info[f"events_{name}"] = int(per[i])
    return ev, info


# ---------------------------------------------------------------------------- conversion


@jit
def _emit(i, t, k, o, s, out_t, out_kind, out_order, out_slot):
    out_t[i] = t
    out_kind[i] = k
    out_order[i] = o
    out_slot[i] = s
    return i + 1


@jit
def _release(s, t, m, head, blk_order, left, owner, free_slots, n_free_slots, out_t,
             out_kind, out_order, out_slot):
    """Free live block ``s`` whole (its remaining pages) at time ``t``; emit the free."""
    ho = blk_order[s]
    for q in range(head[s], head[s] + (1 << ho)):
        if owner[q] == s:
            owner[q] = -1
    left[s] = 0
    m = _emit(m, t, 1, ho, s, out_t, out_kind, out_order, out_slot)
    free_slots[n_free_slots] = s
    return m


@jit
def _kernel(ts_ns, kind, pfn, order, base, span, n_orders, out_t, out_kind, out_order,
            out_slot, stats):
    """Convert time-sorted events; return the number of emitted ops (see module docstring).

    A live block is known by its slot: ``owner[p - base]`` is the slot of the live block that
    owns page p (-1: none); ``head``/``blk_order``/``left`` give, per slot, the block's first
    page (relative to ``base``), its order and its pages not yet freed.
    """
    n = ts_ns.shape[0]
    owner = np.full(span, -1, np.int32)
    head = np.zeros(n + 1, np.int64)
    blk_order = np.zeros(n + 1, np.int8)
    left = np.zeros(n + 1, np.int32)
    free_slots = np.empty(n + 1, np.int32)  # stack of released slots, last freed on top
    n_free_slots = 0
    n_slots = 0
    m = 0
    t0 = ts_ns[0] if n > 0 else 0
    for i in range(n):
        t = (ts_ns[i] - t0) // 1000
        k = kind[i]
        o = order[i]
        stats[k] += 1  # events_<name>
        if k == 3:
            continue
        if k == 0 and pfn[i] == 0:
            stats[4] += 1  # alloc_failed
            continue
        if k != 2 and o >= n_orders:
            stats[5] += 1  # order_out_of_range
            continue
        p0 = pfn[i] - base
        if k == 0:
            npg = 1 << o
            # (d) pages still owned by a live block: its free was lost -> free it now
            for p in range(p0, p0 + npg):
                s = owner[p]
                if s >= 0:
                    stats[16] += 1  # implicit_frees
                    stats[17] += 1 << blk_order[s]
                    stats[8] += 1  # frees
                    stats[9] += 1 << blk_order[s]
                    m = _release(s, t, m, head, blk_order, left, owner, free_slots,
                                 n_free_slots, out_t, out_kind, out_order, out_slot)
                    n_free_slots += 1
            if n_free_slots > 0:
                n_free_slots -= 1
                s = free_slots[n_free_slots]
            else:
                s = n_slots
                n_slots += 1
            for p in range(p0, p0 + npg):
                owner[p] = s
            head[s] = p0
            blk_order[s] = o
            left[s] = npg
            stats[6] += 1  # allocs
            stats[7] += npg
            m = _emit(m, t, 0, o, s, out_t, out_kind, out_order, out_slot)
            continue
        whole = False
        if k == 2:
            # (b) batched: a duplicate of mm_page_free unless the page is still live
            s = owner[p0]
            if s < 0:
                stats[12] += 1  # batched_duplicate
                continue
            stats[13] += 1  # batched_as_free
            whole = head[s] == p0
            npg = (1 << blk_order[s]) if whole else 1
        else:
            npg = 1 << o
            s = owner[p0]
            if s >= 0 and head[s] == p0 and blk_order[s] == o and left[s] == npg:
                whole = True  # the common case: the whole block, with its alloc's order
        # (a)/(c) page by page: release each owned page; a block whose last page goes is freed
        touched = False
        unmatched = 0
        for p in range(p0, p0 + npg):
            s = owner[p]
            if s < 0:
                unmatched += 1
                continue
            touched = True
            owner[p] = -1
            left[s] -= 1
            if left[s] == 0:
                if not whole:
                    stats[15] += 1  # blocks_freed_piecewise
                stats[8] += 1
                stats[9] += 1 << blk_order[s]
                m = _emit(m, t, 1, blk_order[s], s, out_t, out_kind, out_order, out_slot)
                free_slots[n_free_slots] = s
                n_free_slots += 1
        stats[11] += unmatched  # free_unmatched_pages
        if k == 1 and not whole:
            if touched:
                stats[14] += 1  # split_free_events
            else:
                stats[10] += 1  # free_unmatched
    live = 0
    live_pages = 0
    for s in range(n_slots):
        if left[s] > 0:
            live += 1
            live_pages += 1 << blk_order[s]
    stats[18] = live
    stats[19] = live_pages
    stats[20] = n_slots
    return m


MAX_SPAN = 1 << 31  # pfns of the recorded span (8 TiB of 4 KiB pages)


def convert_events(ts_ns, kind, pfn, order, source="events"):
    """Convert page allocator events to an fphlib :class:`~fphlib.workloads.trace_file.Trace`.

    Parameters
    ----------
    ts_ns : array of int
        Event times in ns (any origin; the trace starts at the first event).
    kind : array of int
        ``EV_ALLOC`` (0), ``EV_FREE`` (1), ``EV_FREE_BATCHED`` (2) or ``EV_PCPU_DRAIN`` (3).
    pfn, order : arrays of int
        The page frame number and order of each event (the order of a batched free is
        ignored).
    source : str
        Name used in error messages.

    Returns
    -------
    (Trace, dict)
        The trace (checked with ``check_trace``) and the counters of the module docstring
        (``STAT_NAMES``) plus ``reordered_events``, ``t0_ns`` and ``events``.

    Raises
    ------
    ValueError
        Naming the array and the first offending index.
    """
    arrays = {}
    for name, a in (("ts_ns", ts_ns), ("kind", kind), ("pfn", pfn), ("order", order)):
        a = np.asarray(a)
        if a.ndim != 1:
            raise ValueError(f"{source}: {name} must be a 1-D array, got shape {a.shape}")
        if a.size and a.dtype.kind not in "iu":
            raise ValueError(f"{source}: {name} must hold integers, got dtype {a.dtype}")
        arrays[name] = a
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{source}: arrays have unequal lengths {lengths}")
    n = lengths["kind"]
    for name, lo, hi in (("kind", 0, 3), ("pfn", 0, None), ("order", 0, None),
                         ("ts_ns", 0, None)):
        a = arrays[name]
        bad = (a < lo) | ((a > hi) if hi is not None else False)
        if n and bad.any():
            i = int(np.argmax(bad))
            allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise ValueError(f"{source}: {name}[{i}] = {a[i]} is out of range ({allowed})")
    ts = arrays["ts_ns"].astype(np.int64, copy=False)
    k = arrays["kind"].astype(np.int8)
    p = arrays["pfn"].astype(np.int64, copy=False)
    o = np.minimum(arrays["order"], 127).astype(np.int8)
    reordered = int(np.count_nonzero(np.diff(ts) < 0)) if n > 1 else 0
    if reordered:
        idx = np.argsort(ts, kind="stable")
        ts, k, p, o = ts[idx], k[idx], p[idx], o[idx]
    # the dense pfn span: every page any alloc/free event can touch
    if n:
        eff = np.where(k == 2, 0, o).astype(np.int64)  # a batched free's order is unknown
        ok = (k != 3) & (eff < NR_ORDERS) & ~((k == 0) & (p == 0))
        base = int(p[ok].min()) if ok.any() else 0
        top = int((p[ok] + (np.int64(1) << eff[ok])).max()) if ok.any() else 1
        span = max(top - base, 1)
    else:
        base, span = 0, 1
    if span > MAX_SPAN:
        raise ValueError(f"{source}: pfn spans {span} pages (0x{base:x}..0x{base + span:x}); "
                         f"at most {MAX_SPAN} are supported")
    n_allocs = int(np.count_nonzero(k == 0))
    cap = 2 * n_allocs
    out_t = np.empty(cap, np.int64)
    out_kind = np.empty(cap, np.int8)
    out_order = np.empty(cap, np.int8)
    out_slot = np.empty(cap, np.int32)
    stats = np.zeros(len(STAT_NAMES), np.int64)
    m = _kernel(ts, k, p, o, np.int64(base), np.int64(span), NR_ORDERS, out_t, out_kind,
                out_order, out_slot, stats)
    trace = check_trace(out_t[:m].copy(), out_kind[:m].copy(), out_order[:m].copy(),
                        out_slot[:m].copy(), source=source)
    info = {name: int(stats[i]) for i, name in enumerate(STAT_NAMES)}
    info["reordered_events"] = reordered
    info["events"] = n
    info["t0_ns"] = int(ts[0]) if n else 0
    return trace, info


def convert_text(data, source="trace text"):
    """:func:`parse_events` then :func:`convert_events`; returns (Trace, stats) where stats
    holds both the parse counts and the conversion counters."""
    ev, info = parse_events(data)
    trace, stats = convert_events(*ev, source=source)
    return trace, {**info, **stats}


__all__ = ["EVENT_NAMES", "EV_ALLOC", "EV_FREE", "EV_FREE_BATCHED", "EV_PCPU_DRAIN",
           "Events", "STAT_NAMES", "Trace", "convert_events", "convert_text", "parse_events"]
