"""``memhog``: numactl's memhog (``memhog [-r<repeat>] size``, numactl/memhog.c): map ``size``
bytes, touch all of it at ``rate``, ``repeat`` times over the same memory, then exit (free at
``free_rate``). ``hold_s`` keeps the memory mapped after the touching before exiting (0 by
default, as the tool: set it to model ``malloc + memset + sleep``). ``runs`` runs the program
that many times, ``gap_s`` apart (a shell loop: each run maps fresh memory). This is also the
test program of the reporting and hinting cover letters (``memhog 4g`` / malloc + memset +
exit).

Runs on vCPU 0, allocating blocks of ``order`` (0: 4 KiB faults; 9: guest THP). The first pass
allocates and writes each block (a first touch: the host backs it); later passes write the same
blocks again, oldest first: a page the host swapped out is swapped back in
(``fphlib.host.backing.touch``), a page the host discarded refaults, and a block the guest
itself swapped out (``SimConfig.guest_swap``, fphlib.guest.reclaim) is read back into a new
frame (``guest_swap_in`` per page, a stall). Pages are freed at exit in the order they were last
touched. The held blocks are linked through the zone's ``next`` array (allocated pages do not use
it), oldest first, so memhog adds no per-page state; the guest's reclaim swaps out from the
oldest end, so the pages in guest swap are always the ones touched longest ago, the next a pass
reaches.

``workload_runtime_s`` is the time spent touching (every pass of every run, with its stalls;
not the hold, the gaps or the exits). If an allocation fails the guest's OOM killer ends that
run at once: it frees what it holds (event ``guest_alloc_failure``).

Simplifications: the touch rate is one number for first touch and re-touch (host fault, swap
and reclaim costs come on top as stalls); a pass writes whole blocks.
"""

from .._jit import borrowed, jit
from ..bounds import MAX_DURATION_S, MAX_RATE, MAX_REPEAT, MAX_WORKLOAD_SIZE, MIN_RATE
from ..costs import C_GUEST_SWAP_IN
from ..host.backing import record_event
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import EV_GUEST_OOM, EV_WORKLOAD_END, GF, GI, PrivateState, private_columns
from ..state.lists import list_add_tail, list_del
from ..state.params import Param
from ..units import NR_ORDERS, PAGE_SIZE
from .common import alloc_touch, pay_debt, release, write_block

NAME = "memhog"
PARAMS = {
    "size": Param("size", 1 << 30, 0, MAX_WORKLOAD_SIZE, "bytes", "bytes mapped and touched"),
    # bytes/s the guest writes when the host needn't fault: in-guest 4 KiB faults at
    # 361,855/s (will-it-scale page_fault2, Duyck v17; docs/costs.md §5, §8) = 1.48 GB/s
    # [derived]. Host first-touch faults (fault_4k) come on top: with ~12 µs each
    # (docs/costs.md §5, §8: 0.35 GB/s per vCPU) memhog writes ~0.3 GB/s, as published
    # memhog timings imply.
    "rate": Param("size", 361_855 * PAGE_SIZE, MIN_RATE, MAX_RATE, "bytes/s", "bytes per second "
                  "the guest writes (in-guest faults; host faults come on top)"),
    "free_rate": Param("size", 8 << 30, MIN_RATE, MAX_RATE, "bytes/s", "bytes per second "
                       "freed at exit (unmapping is fast)"),
    "hold_s": Param("float", 0.0, 0.0, MAX_DURATION_S, "s", "time holding the memory before "
                    "exiting (the tool: 0)"),
    "repeat": Param("int", 1, 1, MAX_REPEAT, "", "passes over the same memory (memhog -r)"),
    "runs": Param("int", 1, 1, MAX_REPEAT, "", "times memhog is run, one after the other"),
    "gap_s": Param("float", 0.0, 0.0, MAX_DURATION_S, "s", "pause between runs"),
    "order": Param("int", 0, 0, NR_ORDERS - 1, "", "block order: 0 = 4 KiB faults, 9 = "
                   "guest THP"),
}
# private float columns (wl_f), one per parameter the step reads
COL_SIZE, COL_RATE, COL_FREE_RATE, COL_HOLD, COL_REPEAT, COL_RUNS, COL_GAP, COL_ORDER = \
    private_columns("SIZE RATE FREE_RATE HOLD REPEAT RUNS GAP ORDER")
_FROM_PARAMS = {COL_SIZE: "size", COL_RATE: "rate", COL_FREE_RATE: "free_rate",
                COL_HOLD: "hold_s", COL_REPEAT: "repeat", COL_RUNS: "runs", COL_GAP: "gap_s",
                COL_ORDER: "order"}


def _init(params, n_pages, vcpus, ints, floats):
    for column, key in _FROM_PARAMS.items():
        floats[column] = params[key]


STATE = PrivateState(floats=("SIZE", "RATE", "FREE_RATE", "HOLD", "REPEAT", "RUNS", "GAP",
                             "ORDER"), init=_init)


def estimate_events(params, n_pages, active_s):
    """Page operations in ``active_s``: every page touched each pass (a guest swap-in is an
    allocation, a swap-out a free) and freed at exit, bounded by the rates."""
    size = min(params["size"] // PAGE_SIZE, n_pages)
    per_run = 2 * size * params["repeat"] + size
    by_time = (2 * params["rate"] + params["free_rate"]) / PAGE_SIZE * active_s
    return min(per_run * params["runs"], by_time)


def runtime_s(s, g):
    """The time spent touching, once every pass of every run is over (else NaN)."""
    done = s.gi[g, GI.WL_ROUND] >= s.wl_f[g, COL_REPEAT] * s.wl_f[g, COL_RUNS]
    return float(s.gf[g, GF.WL_TOUCH]) if done else float("nan")

MH_WAIT = 0
MH_ALLOC = 1  # first pass: allocate and write
MH_HOLD = 2
MH_FREE = 3
MH_GAP = 4  # between runs
MH_DONE = 5
MH_RETOUCH = 6  # later passes: write the same blocks again


@jit(inline="always")
def _append(s, g, z, pfn):
    """A block becomes the youngest of the held list (touched last)."""
    list_add_tail(z.next, z.prev, s.gi, (g, GI.HELD_HEAD), s.gi, (g, GI.HELD_TAIL), pfn)


@jit(inline="always")
def _take_oldest(s, g, z):
    """Unlink the held block touched longest ago; return it."""
    pfn = s.gi[g, GI.HELD_HEAD]
    list_del(z.next, z.prev, s.gi, (g, GI.HELD_HEAD), s.gi, (g, GI.HELD_TAIL), pfn)
    return pfn


@jit(inline="always")
def _retouch(s, g, z, order, t, cost, ovh):
    """Write the held block touched longest ago again; 0 done, -1 no memory, -2 killed."""
    n = 1 << order
    if s.gi[g, GI.GSWAP] >= n:  # it is in guest swap: a new frame, read back from swap
        pfn = alloc_touch(s, g, z, order, 0, t, cost, ovh)
        if pfn < 0:
            return pfn
        s.gi[g, GI.GSWAP] -= n
        s.gi[g, GI.GSWAPIN] += n
        stall = n * cost[C_GUEST_SWAP_IN]
        s.gf[g, GF.DEBT] += stall
        s.gf[g, GF.STALL] += stall
        _append(s, g, z, pfn)
        return 0
    pfn = _take_oldest(s, g, z)
    _append(s, g, z, pfn)
    if write_block(s, g, z, pfn, n, t, cost, ovh) < 0.0:  # host swap-in or refault
        return -2
    return 0


@jit(inline="always")
def _end_pass(s, g, t_end):
    """A pass is over: its time (and the stall still owed) counts as touching time."""
    debt = s.gf[g, GF.DEBT]
    s.gf[g, GF.WL_TOUCH] += t_end - s.gf[g, GF.WL_PASS_T0] + debt
    s.gf[g, GF.WL_PASS_T0] = t_end + debt
    s.gi[g, GI.WL_ROUND] += 1


@jit(inline="always")
def _pass_done(s, g, t_end):
    """After a pass: the next pass at once, or hold (then exit); the new phase."""
    _end_pass(s, g, t_end)
    s.gi[g, GI.WL_CUR] = 0
    repeat = int(s.wl_f[g, COL_REPEAT])
    if s.gi[g, GI.WL_ROUND] >= (s.gi[g, GI.WL_RUN] + 1) * repeat:
        s.gi[g, GI.WL_PHASE] = MH_HOLD
        s.gf[g, GF.WL_NEXT] = t_end + s.wl_f[g, COL_HOLD]
    else:
        s.gi[g, GI.WL_PHASE] = MH_RETOUCH
    return s.gi[g, GI.WL_PHASE]


@jit
def step(s, g, z, t, dt, cost, ovh):
    """One tick [t, t + dt) of memhog on guest g; False if the guest was killed."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    avail = pay_debt(s, g, dt)
    order = int(s.wl_f[g, COL_ORDER])
    block = 1 << order
    phase = s.gi[g, GI.WL_PHASE]
    if phase == MH_WAIT or phase == MH_GAP:
        if t < s.gf[g, GF.WL_NEXT]:
            return True
        s.gf[g, GF.WL_PASS_T0] = t
        s.gi[g, GI.WL_PHASE] = phase = MH_ALLOC
        s.gf[g, GF.CREDIT] = 0.0
        s.gi[g, GI.WL_CUR] = 0
    if phase == MH_ALLOC or phase == MH_RETOUCH:
        size = int(s.wl_f[g, COL_SIZE]) // PAGE_SIZE
        credit = s.gf[g, GF.CREDIT] + s.wl_f[g, COL_RATE] / PAGE_SIZE * avail
        while credit >= block:
            if phase == MH_ALLOC:
                if s.gi[g, GI.WL_CUR] >= size:
                    break
                pfn = alloc_touch(s, g, z, order, 0, t, cost, ovh)
                if pfn >= 0:
                    _append(s, g, z, pfn)
                    s.gi[g, GI.HELD_PAGES] += block
            else:
                if s.gi[g, GI.WL_CUR] >= s.gi[g, GI.HELD_PAGES]:
                    break
                pfn = _retouch(s, g, z, order, t, cost, ovh)
            if pfn == -2:
                return False
            if pfn == -1:
                record_event(s, t, g, EV_GUEST_OOM, order)
                _end_pass(s, g, t + dt)  # this run's touching is over
                s.gi[g, GI.WL_ROUND] = (s.gi[g, GI.WL_RUN] + 1) * int(s.wl_f[g, COL_REPEAT])
                s.gi[g, GI.WL_PHASE] = phase = MH_FREE
                credit = 0.0
                break
            s.gi[g, GI.WL_CUR] += block
            credit -= block
            if s.gi[g, GI.WL_CUR] >= (size if phase == MH_ALLOC else s.gi[g, GI.HELD_PAGES]):
                phase = _pass_done(s, g, t + dt)
                if phase != MH_RETOUCH:
                    break
        if (phase == MH_ALLOC or phase == MH_RETOUCH) and s.gi[g, GI.WL_CUR] >= (
                size if phase == MH_ALLOC else s.gi[g, GI.HELD_PAGES]):
            phase = _pass_done(s, g, t + dt)  # nothing to touch (size 0, or all OOM-freed)
        s.gf[g, GF.CREDIT] = credit
        return True
    if phase == MH_HOLD:
        if t < s.gf[g, GF.WL_NEXT]:
            return True
        s.gi[g, GI.WL_PHASE] = phase = MH_FREE
        s.gf[g, GF.CREDIT] = 0.0
    if phase == MH_FREE:
        s.gi[g, GI.HELD_PAGES] -= s.gi[g, GI.GSWAP]  # exit frees its swap slots at once
        s.gi[g, GI.GSWAP] = 0
        credit = s.gf[g, GF.CREDIT] + s.wl_f[g, COL_FREE_RATE] / PAGE_SIZE * avail
        while credit >= block and s.gi[g, GI.HELD_HEAD] >= 0:
            pfn = _take_oldest(s, g, z)
            release(s, g, z, pfn, order, 0, t)
            s.gi[g, GI.HELD_PAGES] -= block
            credit -= block
        s.gf[g, GF.CREDIT] = credit
        if s.gi[g, GI.HELD_HEAD] < 0:  # exited
            s.gi[g, GI.WL_RUN] += 1
            if s.gi[g, GI.WL_RUN] < int(s.wl_f[g, COL_RUNS]):
                s.gi[g, GI.WL_PHASE] = MH_GAP
                s.gf[g, GF.WL_NEXT] = t + dt + s.wl_f[g, COL_GAP]
            else:
                s.gi[g, GI.WL_PHASE] = MH_DONE
                s.gf[g, GF.WL_END] = t + dt
                record_event(s, t + dt, g, EV_WORKLOAD_END, 0.0)
    return True

