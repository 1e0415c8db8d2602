"""Slow, obviously-correct pure-Python twins of fphlib's jitted kernels (stumpy's pattern).

Tests compare every kernel with its twin here on random inputs. Keep each twin as plain as
possible: dicts, lists, sets and Python ints, no NumPy tricks, no shared code with fphlib.
"""

import math

# ============================================================================ buddy allocator
# (section owned by the buddy allocator work: tests/test_buddy*.py)


class NaiveBuddy:
    """Linux v5.10 zone free lists with one migratetype, on Python lists and dicts.

    ``lists[o]`` runs head to tail. ``free``/``allocated``/``isolated`` map a block's first
    page to its order.
    """

    def __init__(self, n_pages, n_orders=11, placement="kernel"):
        self.n_pages = n_pages
        self.n_orders = n_orders
        self.placement = placement
        self.lists = [[] for _ in range(n_orders)]
        self.free = {}
        self.allocated = {}
        self.isolated = {}
        top = n_orders - 1
        for pfn in range(0, n_pages, 2**top):
            self.lists[top].append(pfn)
            self.free[pfn] = top

    @property
    def nr_free(self):
        return [len(lst) for lst in self.lists]

    @property
    def free_pages(self):
        return sum(2**order for order in self.free.values())

    def _take(self, pfn):
        order = self.free.pop(pfn)
        self.lists[order].remove(pfn)
        return order

    def alloc(self, order):
        """Head of the smallest non-empty list >= order; upper halves go to list heads."""
        for current in range(order, self.n_orders):
            if self.lists[current]:
                break
        else:
            return -1
        pfn = self.lists[current][0]
        self._take(pfn)
        while current > order:
            current -= 1
            half = pfn + 2**current
            self.lists[current].insert(0, half)
            self.free[half] = current
        self.allocated[pfn] = order
        return pfn

    def _place(self, pfn, order, to_tail):
        while order < self.n_orders - 1:
            buddy = pfn ^ (2**order)
            if self.free.get(buddy) != order:
                break
            self._take(buddy)
            pfn = min(pfn, buddy)
            order += 1
        if not to_tail and self.placement == "kernel" and order < self.n_orders - 2:
            # the order+1 block holding ours, and that block's own buddy: free -> tail
            parent = pfn - pfn % 2 ** (order + 1)
            uncle = parent ^ (2 ** (order + 1))
            to_tail = self.free.get(uncle) == order + 1
        if to_tail:
            self.lists[order].append(pfn)
        else:
            self.lists[order].insert(0, pfn)
        self.free[pfn] = order
        return order

    def free_block(self, pfn, order):
        assert self.allocated.pop(pfn) == order
        return self._place(pfn, order, False)

    def isolate(self, pfn, order):
        assert self._take(pfn) == order
        self.isolated[pfn] = order

    def putback(self, pfn, order):
        assert self.isolated.pop(pfn) == order
        return self._place(pfn, order, True)

    def rotate_to_front(self, pfn, order):
        lst = self.lists[order]
        i = lst.index(pfn)
        self.lists[order] = lst[i:] + lst[:i]

    def replay(self, kind, order, slot):
        """The ../bench/ref_buddy.c loop: (failed allocs, sum of pfns handed out)."""
        held = {}
        failed = checksum = 0
        for k, o, s in zip(kind, order, slot, strict=True):
            k, o, s = int(k), int(o), int(s)
            if k == 0:
                pfn = self.alloc(o)
                held[s] = pfn
                if pfn < 0:
                    failed += 1
                else:
                    checksum += pfn
            else:
                pfn = held.pop(s)
                if pfn >= 0:
                    self.free_block(pfn, o)
        return failed, checksum


# ============================================================================ xbitmap
# (section owned by the xbitmap work: tests/test_xbitmap*.py)

XB_MAX_BIT = 2**64 - 1


def _xb_digits(leaf):
    """Base-64 digits of a leaf index: radix node levels needed to reach it."""
    n = 0
    while leaf >= 64**n:
        n += 1
    return n


class NaiveXBitmap:
    """Twin of ``fphlib.XBitmap``: a Python set of bit indices, v21 semantics.

    Memory follows the kernel's rules stated plainly: a leaf per 1024-bit chunk holding a set
    bit; radix levels = digits of the largest leaf index in base 64, grown on insert; on
    delete, root levels are dropped while every leaf is under the root's slot 0, but never
    below one level once the tree has a node (an IDR tree keeps entry 0 out of the root);
    nodes at each level = distinct leaf-index prefixes at that level.
    """

    def __init__(self, require_preload=False):
        self.bits = set()
        self.height = 0
        self.require_preload = require_preload
        self.spare = False
        self.leaf_allocs = 0
        self.leaf_frees = 0

    def _leaves(self):
        return {b >> 10 for b in self.bits}

    def _grew(self, before, after):
        new = len(after - before)
        if self.require_preload:
            if new > int(self.spare):
                raise MemoryError("no preloaded leaf")
            self.spare = self.spare and new == 0
        self.leaf_allocs += new
        if not before:
            self.height = _xb_digits(max(after))
        else:
            self.height = max(self.height, _xb_digits(max(after)))

    def _shrunk(self, before, after):
        self.leaf_frees += len(before - after)
        if not after:
            self.height = 0
            return
        while self.height > 1 and max(after) < 64 ** (self.height - 1):
            self.height -= 1

    def preload(self):
        self.spare = True

    def set_bit(self, bit):
        before = self._leaves()
        self._grew(before, before | {bit >> 10})
        self.bits.add(bit)

    def clear_bit(self, bit):
        before = self._leaves()
        self.bits.discard(bit)
        self._shrunk(before, self._leaves())

    def test_bit(self, bit):
        return bit in self.bits

    def find_set(self, start, max=XB_MAX_BIT):
        found = [b for b in self.bits if start <= b <= max]
        return min(found) if found else None

    def find_zero(self, start, max=XB_MAX_BIT):
        b = start
        while b <= max and b in self.bits:
            b += 1
        return b if b <= max else None

    def zero(self, lo, hi):
        before = self._leaves()
        self.bits = {b for b in self.bits if not lo <= b <= hi}
        self._shrunk(before, self._leaves())

    def fill(self, lo, hi):
        assert hi - lo < 1 << 22, "the naive twin only fills small ranges"
        before = self._leaves()
        self._grew(before, before | set(range(lo >> 10, (hi >> 10) + 1)))
        self.bits.update(range(lo, hi + 1))

    def empty(self):
        return not self.bits

    def count(self):
        return len(self.bits)

    @property
    def n_leaves(self):
        return len(self._leaves())

    @property
    def n_nodes(self):
        leaves = self._leaves()
        return sum(len({li >> (6 * (level + 1)) for li in leaves}) for level in range(self.height))

    @property
    def nbytes(self):
        return 576 * self.n_nodes + 128 * self.n_leaves


# ============================================================================ engine
# (section owned by the simulation engine work: tests/test_engine*.py)


def naive_reporting_pass(free_list, reported, capacity):
    """One ``page_reporting_cycle`` over a single free list whose blocks never merge.

    ``free_list``: block ids head -> tail; ``reported``: ids already PageReported.
    Returns (list head -> tail afterwards, reported ids, report calls, requested again).
    Mirrors mm/page_reporting.c (v5.10) with plain lists; the leftover report of
    ``page_reporting_process_zone`` is included (one list, one zone).
    """
    lst = list(free_list)
    reported = set(reported)
    budget = -(-len(lst) // (capacity * 16))
    sg = []  # isolation order
    reports = 0
    requested = False

    def putback(pages):
        # page_reporting_drain walks the scatterlist from its start, which holds the page
        # isolated last; each goes to the tail (FPI_TO_TAIL) and becomes PageReported.
        for p in reversed(pages):
            lst.append(p)
            reported.add(p)

    cur = lst[0] if lst else None
    stopped_at = None
    while cur is not None:
        i = lst.index(cur)
        nxt = lst[i + 1] if i + 1 < len(lst) else None
        if cur in reported:
            cur = nxt
            continue
        if budget < 0:
            requested = True
            stopped_at = cur
            break
        if len(sg) < capacity:
            lst.remove(cur)
            sg.append(cur)
            cur = nxt
            continue
        lst = lst[i:] + lst[:i]  # list_rotate_to_front(cur)
        reports += 1
        budget -= 1
        putback(sg)
        sg = []
        cur = lst[0]
    if stopped_at is not None:
        i = lst.index(stopped_at)
        lst = lst[i:] + lst[:i]
    if sg:
        reports += 1
        putback(sg)
    return lst, reported, reports, requested


def naive_pcp_batch_high(managed_pages):
    """``zone_batchsize`` + ``pageset_set_batch`` (v5.10), written out step by step."""
    batch = managed_pages // 1024
    if batch * 4096 > 1024 * 1024:
        batch = (1024 * 1024) // 4096
    batch = batch // 4
    if batch < 1:
        batch = 1
    x = batch + batch // 2
    p = 1
    while p * 2 <= x:
        p *= 2
    batch = p - 1
    return max(1, batch), 6 * batch


class NaivePcp:
    """Per-CPU order-0 lists (v5.10) over a NaiveBuddy: lists run head -> tail."""

    def __init__(self, n_pages, vcpus, batch, high):
        self.buddy = NaiveBuddy(n_pages)
        self.lists = [[] for _ in range(vcpus)]
        self.batch = batch
        self.high = high

    def alloc(self, cpu):
        lst = self.lists[cpu]
        if not lst:  # rmqueue_bulk: batch pages to the tail
            for _ in range(self.batch):
                pfn = self.buddy.alloc(0)
                if pfn < 0:
                    break
                lst.append(pfn)
        if not lst:
            return -1
        return lst.pop(0)

    def free(self, cpu, pfn):
        lst = self.lists[cpu]
        lst.insert(0, pfn)
        if len(lst) >= self.high:  # free_pcppages_bulk: batch pages from the tail
            for _ in range(self.batch):
                if not lst:
                    break
                self.buddy.free_block(lst.pop(), 0)

    def drain(self):
        for lst in self.lists:
            while lst:
                self.buddy.free_block(lst.pop(), 0)


def naive_watermarks(managed_pages):
    """(min, low, high) watermark pages of one zone holding all memory (v5.10 formulas)."""
    lowmem_kbytes = managed_pages * 4
    k = 0
    while (k + 1) * (k + 1) <= lowmem_kbytes * 16:
        k += 1
    k = max(128, min(k, 262144))
    wmin = k // 4
    tmp = max(wmin // 4, managed_pages * 10 // 10000)
    return wmin, wmin + tmp, wmin + 2 * tmp


# ============================================================================ host memory
# (section owned by the host memory work: tests/test_hostmem.py)


def naive_oom_victim(procs, totalpages):
    """``select_bad_process`` over ``procs``: dicts with running, rss, swap, pgtables, adj.

    oom_badness = rss + swap + pgtables + adj * (totalpages // 1000); adj -1000 is never
    chosen; on equal points the later process wins. -1 if nobody is killable.
    """
    victim = None
    best = None
    for i, p in enumerate(procs):
        if not p["running"] or p["adj"] == -1000:
            continue
        points = p["rss"] + p["swap"] + p["pgtables"] + p["adj"] * (totalpages // 1000)
        if best is None or points >= best:
            best = points
            victim = i
    return -1 if victim is None else victim


def naive_collapse_ok(ptes, huge):
    """khugepaged's verdict on one 2 MiB range; ``ptes`` is 512 of "none", "swap", "young",
    "old" (a present page with or without its accessed bit)."""
    if huge:
        return False
    none = ptes.count("none")
    swap = ptes.count("swap")
    young = ptes.count("young")
    if none == 512 or none > 511 or swap > 64:
        return False
    if young == 0:
        return False
    if swap and young < 256:
        return False
    return True
# ============================================================================ guest reclaim
# (fphlib.guest.reclaim.shrink_node: page cache part)


def naive_shrink_page_cache(lru, want):
    """mm/vmscan.c ``shrink_node`` over one file LRU as fphlib models it.

    ``lru``: list of [pfn, dirty], oldest first. Clean pages are dropped in LRU order; a dirty
    page the scan passes is written back (then clean, staying in its place); when a pass wrote
    some and has not freed ``want`` yet, a second pass drops the now clean ones.
    Returns (dropped pfns in order, written-back pfns in order, remaining [pfn, dirty] list).
    """
    lru = [list(e) for e in lru]
    dropped, written = [], []
    for _ in range(2):
        wrote = 0
        keep = []
        for i, (pfn, dirty) in enumerate(lru):
            if len(dropped) >= want:
                keep.extend(lru[i:])
                break
            if dirty:
                written.append(pfn)
                keep.append([pfn, False])
                wrote += 1
            else:
                dropped.append(pfn)
        lru = keep
        if len(dropped) >= want or wrote == 0:
            break
    return dropped, written, lru


# ============================================================================ kpageflags
# (section owned by the live-kernel observation work: tests/test_observe_drain.py)


def naive_kpageflags_summary(flags, start_pfn, zones, max_order=10):
    """Twin of fphlib.observe.kpageflags._kernel on Python ints.

    ``flags``: list of ints (pfns start_pfn...); ``zones``: list of (lo, hi) pfn ranges.
    Returns (free pages per zone, [blocks per order] per zone, [reported blocks per order]
    per zone, stray reported pages per zone): a free (bit 10) page starts a block of the
    largest order it is aligned to whose pages are all free and inside the zone; the block is
    reported when its first page has bit 3.
    """
    end = start_pfn + len(flags)

    def is_free(pfn):
        return (flags[pfn - start_pfn] >> 10) & 1 == 1

    def is_marked(pfn):
        return (flags[pfn - start_pfn] >> 3) & 1 == 1

    free, blocks, reported, stray = [], [], [], []
    for zlo, zhi in zones:
        lo, hi = max(zlo, start_pfn), min(zhi, end)
        counts = [0] * (max_order + 1)
        marked = [0] * (max_order + 1)
        n_free = n_stray = 0
        pfn = lo
        while pfn < hi:
            if not is_free(pfn):
                pfn += 1
                continue
            order = 0
            for o in range(max_order, 0, -1):
                size = 2**o
                if pfn % size == 0 and pfn + size <= hi and \
                        all(is_free(q) for q in range(pfn, pfn + size)):
                    order = o
                    break
            counts[order] += 1
            n_free += 2**order
            if is_marked(pfn):
                marked[order] += 1
            n_stray += sum(1 for q in range(pfn + 1, pfn + 2**order) if is_marked(q))
            pfn += 2**order
        free.append(n_free)
        blocks.append(counts)
        reported.append(marked)
        stray.append(n_stray)
    return free, blocks, reported, stray


# ============================================================================ kmem trace conversion
# (section owned by the trace recording work: tests/test_observe_trace.py; the rules are
# those of fphlib/observe/trace_convert.py's module docstring)


def naive_parse_kmem_line(line):
    """One line of trace_pipe text -> (ts_ns, kind, pfn, order), ("lost", n) or None.

    kind: 0 mm_page_alloc, 1 mm_page_free, 2 mm_page_free_batched, 3 mm_page_pcpu_drain.
    """
    import re

    pattern = (r"^.*? (\d+)(?:\.(\d+))?: (mm_page_alloc|mm_page_free|mm_page_free_batched|"
               r"mm_page_pcpu_drain): .*?pfn=0x([0-9a-fA-F]+).*?order=(\d+)")
    lost = re.search(r"\[LOST (\d+) EVENTS\]", line)
    m = re.match(pattern, line)
    if m is None:
        return ("lost", int(lost.group(1))) if lost else None
    sec, frac, name, pfn, order = m.groups()
    frac = (frac or "")[:9].ljust(9, "0")
    kinds = ["mm_page_alloc", "mm_page_free", "mm_page_free_batched", "mm_page_pcpu_drain"]
    return (int(sec) * 10**9 + int(frac), kinds.index(name), int(pfn, 16), int(order))


def naive_convert_events(ts_ns, kind, pfn, order, n_orders=11):
    """Events -> (ops [(t_us, kind, order, slot)], stats dict), on dicts and lists."""
    events = sorted(zip(ts_ns, kind, pfn, order, strict=True), key=lambda e: e[0])
    stats = {}

    def add(name, v=1):
        stats[name] = stats.get(name, 0) + v

    names = ["events_alloc", "events_free", "events_free_batched", "events_pcpu_drain"]
    for name in names:
        add(name, 0)
    owner = {}  # page -> slot of the live block holding it
    blocks = {}  # slot -> {"head", "order", "pages": set of pages not yet freed}
    stack = []  # released slots, last released on top
    n_slots = 0
    ops = []
    t0 = events[0][0] if events else 0

    def free_block(s, t):
        blk = blocks.pop(s)
        for p in blk["pages"]:
            del owner[p]
        ops.append((t, 1, blk["order"], s))
        stack.append(s)
        add("frees")
        add("free_pages", 2 ** blk["order"])

    for ts, k, p, o in events:
        t = (ts - t0) // 1000
        add(names[k])
        if k == 3:
            continue
        if k == 0 and p == 0:
            add("alloc_failed")
            continue
        if k != 2 and o >= n_orders:
            add("order_out_of_range")
            continue
        if k == 0:
            pages = list(range(p, p + 2**o))
            for q in pages:
                if q in owner:
                    s = owner[q]
                    add("implicit_frees")
                    add("implicit_free_pages", 2 ** blocks[s]["order"])
                    free_block(s, t)
            if stack:
                s = stack.pop()
            else:
                s = n_slots
                n_slots += 1
            blocks[s] = {"head": p, "order": o, "pages": set(pages)}
            for q in pages:
                owner[q] = s
            ops.append((t, 0, o, s))
            add("allocs")
            add("alloc_pages", 2**o)
            continue
        if k == 2:
            if p not in owner:
                add("batched_duplicate")
                continue
            add("batched_as_free")
            blk = blocks[owner[p]]
            whole = blk["head"] == p
            pages = list(range(p, p + 2 ** blk["order"])) if whole else [p]
        else:
            pages = list(range(p, p + 2**o))
            s = owner.get(p)
            whole = (s is not None and blocks[s]["head"] == p and blocks[s]["order"] == o
                     and len(blocks[s]["pages"]) == 2**o)
        touched = False
        for q in pages:
            if q not in owner:
                add("free_unmatched_pages")
                continue
            touched = True
            s = owner.pop(q)
            blk = blocks[s]
            blk["pages"].discard(q)
            if not blk["pages"]:
                if not whole:
                    add("blocks_freed_piecewise")
                blocks.pop(s)
                ops.append((t, 1, blk["order"], s))
                stack.append(s)
                add("frees")
                add("free_pages", 2 ** blk["order"])
        if k == 1 and not whole:
            add("split_free_events" if touched else "free_unmatched")
    stats["live_at_end"] = len(blocks)
    stats["live_pages_at_end"] = sum(2 ** b["order"] for b in blocks.values())
    stats["slots"] = n_slots
    return ops, stats


# ============================================================================ hinting_v8
# (virt/kvm/page_hinting.c of the v8 series: tests/test_hinting_v8.py)


def naive_v8_get_buddy_page(free, pfn, n_orders):
    """``get_buddy_page``: the head of the free block holding ``pfn`` ({head: order}), or None."""
    for order in range(n_orders):
        head = pfn - pfn % 2**order
        if free.get(head, -1) >= order:
            return head
    return None


def naive_v8_scan_array(free, entries, n_orders):
    """``scan_array`` + ``pack_array``: (entries left, kthread woken)."""
    pt = [list(e) for e in entries]
    for i in range(len(pt)):
        pfn = pt[i][0]
        if pfn in free:  # PageBuddy: kept
            continue
        head = naive_v8_get_buddy_page(free, pfn, n_orders)
        if head is None:
            continue
        if any(e is not None and e[0] == head for e in pt):  # if_exist, a linear search
            pt[i] = None
        else:
            pt[i] = [head, free[head]]
    left = [tuple(e) for e in pt if e is not None]
    return left, len(left) == len(entries)


def naive_v8_hinting_walk(free, allocated, refcounted, entries, n_orders, min_wmark, cap):
    """``hinting_fn``'s loop. ``free`` {head: order} loses what is isolated; ``allocated``
    {head: order} (order > 0: compound); ``refcounted``: pages with a refcount. Returns
    (isolated [(pfn, order)], pages visited)."""

    def compound_head(pfn):
        for head, order in allocated.items():
            if order > 0 and head <= pfn < head + 2**order:
                return head
        return None

    hyp = []
    visits = 0
    for pfn, order in entries:
        end = pfn + 2**order - 1
        while pfn <= end:
            visits += 1
            head = compound_head(pfn)
            if head is not None:
                pfn = head + 2 ** allocated[head]
                continue
            if pfn in refcounted:
                pfn += 1
                continue
            head = pfn if pfn in free else naive_v8_get_buddy_page(free, pfn, n_orders)
            if head is None:
                pfn += 1
                continue
            o = free[head]
            free_pages = sum(2**x for x in free.values())
            if len(hyp) < cap and free_pages > min_wmark + 2**o:  # __isolate_free_page
                del free[head]
                hyp.append((head, o))
            pfn = head + 2**o
    return hyp, visits


def naive_answered(k, answers):
    """fphlib.guest.cooperation._answered: is the k-th ask for memory (from 0) answered by a
    guest answering ``answers`` of them? ceil((k + 1) p) > ceil(k p)."""
    return math.ceil((k + 1) * answers) > math.ceil(k * answers)


def naive_dontneed(flags, pfn, npages, backed=2, data=4, swapped=16, referenced=32,
                   discarded=64):
    """fphlib.host.backing.discard with MADV_DONTNEED on a guest's page flags (a list, changed
    in place), page by page as mm/madvise.c zaps PTEs: (lost writes, pages returned).
    Every page still flagged with guest data is a lost write; a backed or swapped page is
    returned (unbacked, or its swap slot freed) and flagged discarded."""
    lost = returned = 0
    for q in range(pfn, pfn + npages):
        f = flags[q]
        if f & data:
            lost += 1
        if f & backed:
            flags[q] = (f & ~backed) | discarded
            returned += 1
        elif f & swapped:
            flags[q] = (f & ~swapped) | discarded
            returned += 1
    return lost, returned


def naive_swap_clock(flags, huge, lo, hi, hand, want, room, backed=2, swapped=16,
                     referenced=32, discarded=64, hpage=512):
    """fphlib.host.reclaim._swap_out's second-chance clock over pages [lo, hi) of one guest,
    page by page (mm/vmscan.c), on lists ``flags`` (per page) and ``huge`` (per 2 MiB region),
    changed in place: (freed, hand, pages swapped out, THPs swapped whole, THPs split, lazily
    freed pages taken). ``room``: free swap slots."""
    total = hi - lo
    freed = scanned = out = thp = splits = lazy = 0
    while freed < want and scanned < 2 * total and out < room:
        p = hand
        hand = lo if hand + 1 >= hi else hand + 1
        scanned += 1
        f = flags[p]
        if not f & backed:
            continue
        r = p // hpage
        if huge[r]:  # one folio, one accessed bit
            base = r * hpage
            ref = False
            for q in range(base, base + hpage):
                if flags[q] & referenced:
                    ref = True
                    flags[q] &= ~referenced
            whole = False
            if not ref:
                huge[r] = 0
                whole = room - out >= hpage
                if whole:  # THP_SWAP: 512 slots at once
                    for q in range(base, base + hpage):
                        flags[q] = (flags[q] & ~backed) | swapped
                    out += hpage
                    thp += 1
                    freed += hpage
            if ref or whole:  # the hand passes the rest of the THP
                scanned += base + hpage - 1 - p
                hand = lo if base + hpage >= hi else base + hpage
                continue
            splits += 1
        if f & discarded:
            flags[p] = f & ~backed
            freed += 1
            lazy += 1
        elif f & referenced:
            flags[p] = f & ~referenced
        else:
            flags[p] = (f & ~backed) | swapped
            out += 1
            freed += 1
    return freed, hand, out, thp, splits, lazy
