"""Mechanism ``"none"``: the baseline. The guest never tells the host anything, so host RSS
only grows (pages are backed on first touch and never discarded). Kernel source: none (a
guest without virtio-balloon or free page reporting).

Simplifications: none - there is nothing to model; every hook is the dispatcher's no-op.
"""

from ..state.params import Param  # noqa: F401  (every mechanism's spec uses it)

NAME = "none"
PARAMS = {}
TAKES_HINT_ORDER = False
ASKS = ()  # reads no host policy ask (fphlib.host.policy refuses asking policies)
