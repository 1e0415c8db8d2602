"""File I/O of any workload (``io_rate``, ``io_write``) and the guest's kswapd, one tick at a
time (the ``guest_mm_step`` unit, called by the engine for guests whose I/O or kswapd has
work; fphlib.guest.reclaim has the model).

``io_rate`` bytes/s of file data go through the page cache: each 4 KiB is a new page-cache
page (read or written by the workload), dirty with probability ``io_write`` (drawn from the
guest's random stream), plus the slab that file activity brings. The pages are allocated
like any other (the low watermark wakes kswapd, below min the allocation reclaims directly);
an I/O that finds no memory is skipped (the kernel would throttle it).

Simplifications: streaming I/O only (every page is new: no cache hits, no re-reads); the I/O
runs on vCPU 0 and its faults stall the guest's workload like its own.
"""

from .._jit import borrowed, jit
from ..guest.reclaim import kswapd
from ..state.borrow import borrow_state, borrow_zone
from ..state.layout import GF, GI, WP
from ..state.rng import uniform
from ..units import PAGE_SIZE
from .common import add_file_page


@jit
def mm_step(s, g, z, t, dt, cost, ovh):
    """One tick of guest g's page-cache I/O, then kswapd if it was woken."""
    s = borrow_state(s)
    z = borrow_zone(z)
    cost = borrowed(cost)
    rate = s.wp[g, WP.IO_RATE]
    if rate > 0.0:
        credit = s.gf[g, GF.IO_CREDIT] + rate / PAGE_SIZE * dt
        write = s.wp[g, WP.IO_WRITE]
        while credit >= 1.0:
            credit -= 1.0
            dirty = write > 0.0 and uniform(s.rng, g) < write
            if add_file_page(s, g, 0, t, cost, ovh, dirty) == -2:
                return
        s.gf[g, GF.IO_CREDIT] = credit
    if s.gi[g, GI.KSWAPD]:
        kswapd(s, g, z, t + dt, cost)
