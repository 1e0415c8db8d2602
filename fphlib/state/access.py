"""Named accessors of the engine state for mechanisms, policies and workloads (fphlib.extend).

What the run asks and the guest's free lists, read through a name instead of a raw column of
``gi``/``pi`` (:mod:`fphlib.state.layout`), so that code outside the engine never depends on
where a value is stored. Inlined: they cost nothing over the raw index.
"""

from .._jit import jit
from ..state.zone import PG_REPORTED
from .layout import GI, PI, ST_RUNNING


# ---------------------------------------------------------------- what the run asks
@jit(inline="always")
def hint_order(s):
    """The run's ``hint_order`` (SimConfig.hint_order): the smallest order to hint."""
    return s.pi[PI.HINT_ORDER]


@jit(inline="always")
def n_guests(s):
    """Guests in the run."""
    return s.pi[PI.G]


@jit(inline="always")
def guest_pages(s, g):
    """Pages of guest g's memory."""
    return s.gi[g, GI.NPAGES]


@jit(inline="always")
def guest_running(s, g):
    """Has guest g booted and not been killed?"""
    return s.gi[g, GI.STATUS] == ST_RUNNING


@jit(inline="always")
def watermarks(s, g):
    """Guest g's (min, low, high) zone watermarks in pages."""
    return s.gi[g, GI.MIN_WMARK], s.gi[g, GI.LOW_WMARK], s.gi[g, GI.HIGH_WMARK]


@jit(inline="always")
def buffer_start(s, g):
    """Start of guest g's slice of ``s.mbuf`` (the mechanism's ``PrivateState.buffer``)."""
    return s.gi[g, GI.MBUF_OFF]


@jit(inline="always")
def hint_asked(s, g):
    """Does the host policy want guest g to hint (1) or not (0)?"""
    return s.gi[g, GI.ASK_HINT]


@jit(inline="always")
def pages_asked(s, g):
    """Pages the host policy wants back from guest g (a balloon size)."""
    return s.gi[g, GI.ASK_PAGES]


@jit(inline="always")
def asks_seen(s, g):
    """How many asks the policy has made of guest g (changes when a new ask arrives)."""
    return s.gi[g, GI.ASK_SEQ]


# ---------------------------------------------------------------- the buddy's free lists
@jit(inline="always")
def free_list_first(z, order):
    """The first free block on the ``order`` list of zone ``z`` (-1: empty)."""
    return z.head[order]


@jit(inline="always")
def free_list_next(z, pfn):
    """The block after ``pfn`` on its free list (-1: the end)."""
    return z.next[pfn]


@jit(inline="always")
def nr_free(z, order):
    """Free blocks on the ``order`` list (the kernel's ``free_area[order].nr_free``)."""
    return z.nr_free[order]


@jit(inline="always")
def is_reported(z, pfn):
    """Is free head ``pfn`` flagged PageReported (already given to the host)?"""
    return (z.flags[pfn] & PG_REPORTED) != 0


@jit(inline="always")
def isolated_pages(s, g):
    """Pages guest g's mechanism holds isolated (off the free lists, not allocated)."""
    return s.gi[g, GI.ISOLATED]


@jit(inline="always")
def pool_start(s, g):
    """Start of guest g's slice of ``s.pool`` (int32 slots for the blocks its workload holds;
    its size is the workload's ``Setup.pool``)."""
    return s.gi[g, GI.POOL_OFF]


@jit(inline="always")
def pool_capacity(s, g):
    """Slots of guest g's slice of ``s.pool``."""
    return s.gi[g, GI.POOL_CAP]
