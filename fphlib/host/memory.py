"""The host's memory as backing, reclaim and the OOM killer all see it: THP geometry, the page
flag masks, memory in use against the zone watermarks, the swap device's queue, and the run's
event log.

Model (docs/design.md §3.3):

- Host memory in use = backed guest pages + the VMM overhead of each running guest + the
  host's own memory (``SimConfig.host_reserve``: kernel, slab, services; all in
  ``HI.OVERHEAD_PAGES``). The host has the kernel's zone watermarks (min/low/high from its RAM,
  ``__setup_per_zone_wmarks`` in mm/page_alloc.c, :func:`fphlib.engine.build.watermarks`).
- An allocation that leaves free memory below the low watermark wakes kswapd
  (``wakeup_kswapd``, mm/vmscan.c), which reclaims in the background
  (:mod:`fphlib.host.daemons`); one that would leave it below the min watermark reclaims
  directly (:mod:`fphlib.host.reclaim`).
- The swap device is one FIFO queue shared by swap-out and swap-in (``HF.SWAP_BUSY``: when
  all I/O queued so far is done), each 4 KiB taking ``4096 / host_swap_bandwidth``.

Backing and discards are :mod:`fphlib.host.backing`, reclaim :mod:`fphlib.host.reclaim`, the
OOM killer :mod:`fphlib.host.oom`; all three build on this module, which imports none of them.
"""

import numpy as np

from .._jit import jit
from ..state.borrow import borrow_state
from ..state.layout import (
    HF,
    HI,
    MAX_EVENTS,
    PF,
    PG_DISCARDED,
    PG_MIG_DIRTY,
    PG_REFERENCED,
    PG_SWAPPED,
    PI,
)
from ..state.zone import PG_BACKED, PG_DATA

HPAGE_SHIFT = 9  # 2 MiB host THP = 512 guest pages
HPAGE_PAGES = 1 << HPAGE_SHIFT
# a one in each byte of a uint64: 8 pages' flag bytes read in one load hold a flag F at
# F * BYTES_X8 (host reclaim's clock, the discard's count of pages with data)
BYTES_X8 = np.uint64(0x0101010101010101)


NOT_BACKED = ~PG_BACKED
NOT_SWAPPED = ~PG_SWAPPED
NOT_DISCARDED = ~PG_DISCARDED
NOT_REFERENCED = ~PG_REFERENCED
# what a guest write sets: data the guest needs, the accessed bit, KVM's dirty log
WRITTEN = PG_DATA | PG_REFERENCED | PG_MIG_DIRTY
# a page a write needs no host help for has exactly PG_BACKED of these (PG_DISCARDED too: a
# lazily-freed page, MADV_FREE, whose write the host must see to keep it)
BACKED_OR_LAZY = PG_BACKED | PG_DISCARDED
HOST_BITS_CLEAR = ~(PG_BACKED | PG_SWAPPED | PG_REFERENCED)


@jit(inline="always")
def record_event(s, t, g, kind, value):
    """Append one row to the event log (counted, not stored, beyond MAX_EVENTS)."""
    s = borrow_state(s)
    n = s.hi[HI.NEV]
    if n < MAX_EVENTS:
        s.ev[n, 0] = t
        s.ev[n, 1] = g
        s.ev[n, 2] = kind
        s.ev[n, 3] = value
        s.hi[HI.NEV] = n + 1
    else:
        s.hi[HI.NEV_LOST] += 1


@jit(inline="always")
def host_used_pages(s):
    """Host memory in use: backed guest pages, per-guest overhead and the host reserve."""
    return s.hi[HI.RSS] + s.hi[HI.OVERHEAD_PAGES]


@jit(inline="always")
def note_peak(s):
    used = host_used_pages(s)
    if used > s.hi[HI.RSS_PEAK]:
        s.hi[HI.RSS_PEAK] = used


@jit(inline="always")
def below_min(s, need):
    """Would backing ``need`` more pages leave free memory below the min watermark?"""
    return host_used_pages(s) + need > s.hi[HI.RAM_PAGES] - s.hi[HI.WMARK_MIN]


@jit(inline="always")
def wake_kswapd(s, t):
    """``wakeup_kswapd`` when free memory is below the low watermark (kswapd on)."""
    if (s.pi[PI.KSWAPD] and not s.hi[HI.KSWAPD]
            and s.hi[HI.RAM_PAGES] - host_used_pages(s) < s.hi[HI.WMARK_LOW]):
        s.hi[HI.KSWAPD] = 1
        if s.hf[HF.HOST_NEXT] > t:
            s.hf[HF.HOST_NEXT] = t  # kswapd runs at the end of this tick


@jit(inline="always")
def swap_io(s, now, npages):
    """Queue ``npages`` 4 KiB transfers on the swap device at ``now``; return when done."""
    start = s.hf[HF.SWAP_BUSY]
    if start < now:
        start = now
    done = start + npages * s.pf[PF.SWAP_PAGE_S]
    s.hf[HF.SWAP_BUSY] = done
    return done
