"""Policy ``"always_on"``: the host never asks; guests hint on their own.

Today's behaviour of the reporting mechanisms in Linux: free page reporting needs no host
policy - the guest reports autonomously, at most every 2 s, 1/16 of each free list per pass
(mm/page_reporting.c; docs/references.md §7.4). Hinting stays on for every
guest (``GI.ASK_HINT`` = 1 from the start; off for a guest that answers no ask,
:mod:`fphlib.guest.cooperation`) and no balloon size is ever asked.

Refused with mechanisms that give nothing back on their own (``none``, ``balloon``,
``free_page_hint``): the host would never get memory back, which is mechanism ``none`` under
another name; use ``static`` (a balloon target) or a reclaiming policy instead.

Simplifications: none beyond the mechanism's own - the policy step is a no-op that still runs
every ``interval_s`` (so that its cost can be compared with the asking policies).
"""

from ..._jit import borrowed, jit
from .common import INTERVAL, check_drivable

NAME = "always_on"
PARAMS = {"interval_s": INTERVAL}


def check(mechanism, mode, params):
    """Only mechanisms that hint on their own (they read the hint on/off ask)."""
    check_drivable(NAME, mechanism, mode, modes=("hint",))


@jit
def step(s, now, cost):
    """Nothing to ask: every guest keeps hinting on."""
    cost = borrowed(cost)
    return
