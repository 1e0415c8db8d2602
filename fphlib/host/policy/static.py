"""Policy ``"static"``: a fixed memory target per guest, re-sent every ``interval_s``.

What a host administrator does with ``virsh setmem`` (or oVirt MOM with a constant rule): the
balloon target leaves each guest ``target`` bytes; hinting is always on. Kernel/QEMU source:
the balloon's ``num_pages`` config field (include/uapi/linux/virtio_balloon.h). The target
is the older ``SimConfig.balloon_target`` (``None``: never ask), the interval
``balloon_interval_s`` (10 s, oVirt MOM's policy interval).

Simplifications: one target for every guest; re-sent at each interval even when unchanged
(the balloon driver re-checks, as after a config interrupt).
"""

from ..._jit import borrowed, jit
from ...state.borrow import borrow_state
from ...state.layout import GI, PI, PrivateState, private_columns
from ...state.params import Param
from ...units import PAGE_SIZE
from .ask import ask

NAME = "static"
PARAMS = {
    "target": Param("size_or_none", None, 0, 2**50, "bytes", "memory each guest keeps "
                    "(balloon target); None: never ask", field="balloon_target"),
    "interval_s": Param("float", 10.0, 1e-3, 86400.0, "s", "how often the host re-sends "
                        "the target", field="balloon_interval_s"),
}

(KEEP_PAGES,) = private_columns("KEEP_PAGES")


def _init(params, n_pages, vcpus, ints, floats):
    target = params["target"]
    ints[KEEP_PAGES] = -1 if target is None else target // PAGE_SIZE


STATE = PrivateState(ints=("KEEP_PAGES",), init=_init)


@jit
def step(s, now, cost):
    """Ask every guest for the pages above its target (none without a target)."""
    s = borrow_state(s)
    cost = borrowed(cost)
    for g in range(s.pi[PI.G]):
        keep = s.pol_i[g, KEEP_PAGES]
        if keep < 0:
            continue
        ask(s, g, now, max(0, s.gi[g, GI.NPAGES] - keep), 1)
