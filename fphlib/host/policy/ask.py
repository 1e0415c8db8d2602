"""The one way a host policy talks to the guests: an ask per guest, recorded when it changes."""

from ..._jit import jit
from ...state.borrow import borrow_state
from ...state.layout import EV_ASK, EV_HINT_OFF, EV_HINT_ON, GF, GI
from ...units import PAGE_SIZE
from ..backing import record_event


@jit(inline="always")
def ask(s, g, now, pages, hint):
    """Ask guest g at ``now`` to give back ``pages`` (balloon size) and to hint or not.

    Every ask is a config change the mechanism sees (``GI.ASK_SEQ``, as a balloon config
    interrupt); a change of either value is recorded as an event (``ask``, ``hint_on``,
    ``hint_off``).
    """
    s = borrow_state(s)
    if pages != s.gi[g, GI.ASK_PAGES]:
        record_event(s, now, g, EV_ASK, pages * PAGE_SIZE)
    if hint != s.gi[g, GI.ASK_HINT]:
        record_event(s, now, g, EV_HINT_ON if hint else EV_HINT_OFF, 0.0)
    s.gi[g, GI.ASK_PAGES] = pages
    s.gi[g, GI.ASK_HINT] = hint
    s.gi[g, GI.ASK_SEQ] += 1
    s.gf[g, GF.ASK_T] = now
