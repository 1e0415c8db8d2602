"""The one way a host policy talks to the guests: an ask per guest, recorded when it changes."""

from ..._jit import jit
from ...guest.cooperation import hear, tell
from ...state.borrow import borrow_state
from ...state.layout import EV_ASK, EV_HINT_OFF, EV_HINT_ON, GI
from ...units import PAGE_SIZE
from ..backing import record_event


@jit(inline="always")
def ask(s, g, now, pages, hint):
    """Ask guest g at ``now`` to give back ``pages`` (balloon size) and to hint or not.

    The ask is written to the guest's config space (``GI.WANT_PAGES``, ``GI.WANT_HINT``); a
    change of either value is recorded as an event (``ask``, ``hint_on``, ``hint_off``). A
    fully cooperative guest's driver reads it at once (``GI.ASK_SEQ`` moves on, as a balloon
    config interrupt); any other guest answers as its cooperation says
    (:mod:`fphlib.guest.cooperation`).
    """
    s = borrow_state(s)
    if pages != s.gi[g, GI.WANT_PAGES]:
        record_event(s, now, g, EV_ASK, pages * PAGE_SIZE)
    if hint != s.gi[g, GI.WANT_HINT]:
        record_event(s, now, g, EV_HINT_ON if hint else EV_HINT_OFF, 0.0)
    s.gi[g, GI.WANT_PAGES] = pages
    s.gi[g, GI.WANT_HINT] = hint
    if s.gi[g, GI.COOP]:
        hear(s, g, now)
    else:
        tell(s, g, now, pages, hint)
