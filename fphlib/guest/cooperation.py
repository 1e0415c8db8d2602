"""A guest's cooperation with its host: whether, when and how much it answers an ask.

On the thread this project started from, David Hildenbrand: "Relying on a guest to free up
memory when you really need it is not going to work"; Wei Wang: "Host can ask at any time
(including when not urgently need it) depending on the admin's configuration"
(docs/references.md §4.2). A guest that answers late, partly or never is given by
``SimConfig.guest_overrides[g]["cooperation"]`` (default: every ask answered at once, nothing
held back):

- ``answers``: the fraction of the host's asks *for memory* it answers (0..1). An ask for
  memory is a larger balloon or hinting switched on; an ask that gives the guest memory back
  (a smaller balloon, hinting off) is always answered. The k-th ask for memory (k = 0, 1, ...)
  is answered when ``ceil((k + 1) * answers) > ceil(k * answers)``: evenly spread, the first
  answered whenever ``answers > 0``, no random draw. ``answers = 0`` also keeps hinting off
  from boot (a guest that never gives).
- ``delay_s``: the guest's driver acts on an answered ask this long after the host made it (a
  busy or descheduled guest reading its config space late); an ask answered meanwhile replaces
  the one waiting, as the config space holds one value.
- ``cap``: the most memory it gives: a balloon never larger than ``cap``; hinting switched
  off while the memory it has returned (``GI.RETURNED``: discarded and not touched since) is
  at least ``cap``. A reporting mechanism reads the switch when its next pass starts
  (page_reporting: a whole pass over the free lists), so a hinting guest may give a pass
  more than its cap; a balloon's cap is exact.

Each ask lives in two places: the host's config space (``GI.WANT_PAGES``, ``GI.WANT_HINT``,
written by :func:`fphlib.host.policy.ask.ask`; what host policies compare against) and what the
guest's driver has read and acts on (``GI.ASK_PAGES``, ``GI.ASK_HINT``, ``GI.ASK_SEQ``,
``GF.ASK_T``; what mechanisms read). For a fully cooperative guest the two are equal at every
instant. The host learns nothing more than a real one would: the balloon's actual size, the
guest's free memory and its RSS; its policy carries on as it would (asks another guest, reclaims
and swaps, OOM-kills).

Simplifications: a guest decides per ask, never per page; an unanswered ask is not taken up
later (the host must change its ask to be heard again); in hint mode the cap is checked once
per engine tick and read by the mechanism at its next pass (above); the live
migration's free page hint commands (fphlib.host.migration) are not subject to cooperation.
"""

import numpy as np

from .._jit import jit
from ..state.borrow import borrow_state
from ..state.layout import GF, GI

# the defaults: a guest that answers every ask at once and gives whatever is asked
FULL = {"answers": 1.0, "delay_s": 0.0, "cap": None}


def is_full(coop, mem):
    """Does the ``cooperation`` dict (canonical, see ``SimConfig``) describe a fully
    cooperative guest of ``mem`` bytes?"""
    return (coop["answers"] >= 1.0 and coop["delay_s"] == 0.0
            and (coop["cap"] is None or coop["cap"] >= mem))


@jit(inline="always")
def _answered(k, answers):
    """Is the k-th ask for memory (from 0) answered by a guest answering ``answers`` of them?"""
    return np.ceil((k + 1) * answers) > np.ceil(k * answers)


@jit(inline="always")
def tell(s, g, now, pages, hint):
    """The guest's driver reads an ask at ``now``: a config change its mechanism sees."""
    s.gi[g, GI.ASK_PAGES] = pages
    s.gi[g, GI.ASK_HINT] = hint
    s.gi[g, GI.ASK_SEQ] += 1
    s.gf[g, GF.ASK_T] = now


@jit(inline="always")
def _effective_hint(s, g):
    """The agreed hinting state, held off while the guest has given its cap."""
    return s.gi[g, GI.AGREED_HINT] if s.gi[g, GI.RETURNED] < s.gi[g, GI.COOP_CAP] else 0


@jit
def hear(s, g, now):
    """Guest g hears the host's new ask (``GI.WANT_*``): it answers now, later or never."""
    s = borrow_state(s)
    pages = s.gi[g, GI.WANT_PAGES]
    hint = s.gi[g, GI.WANT_HINT]
    if pages > s.gi[g, GI.AGREED_PAGES] or hint > s.gi[g, GI.AGREED_HINT]:  # for memory
        k = s.gi[g, GI.COOP_ASKS]
        s.gi[g, GI.COOP_ASKS] = k + 1
        if not _answered(k, s.gf[g, GF.COOP_ANSWERS]):
            s.gi[g, GI.ASKS_UNANSWERED] += 1
            return
    s.gi[g, GI.AGREED_PAGES] = min(pages, s.gi[g, GI.COOP_CAP])
    s.gi[g, GI.AGREED_HINT] = hint
    if s.gf[g, GF.COOP_DELAY] > 0.0:
        if not s.gi[g, GI.COOP_PENDING]:
            s.gi[g, GI.COOP_PENDING] = 1
            s.gf[g, GF.COOP_DUE] = now + s.gf[g, GF.COOP_DELAY]
        return
    tell(s, g, now, s.gi[g, GI.AGREED_PAGES], _effective_hint(s, g))


@jit
def cooperation_step(s, g, t_end):
    """A tick of a guest that does not fully cooperate: the driver reads an answer that has
    waited its delay; hinting goes off (or back on) as the returned memory crosses the cap."""
    s = borrow_state(s)
    if s.gi[g, GI.COOP_PENDING]:
        due = s.gf[g, GF.COOP_DUE]
        if due > t_end:
            return
        s.gi[g, GI.COOP_PENDING] = 0
        tell(s, g, due, s.gi[g, GI.AGREED_PAGES], _effective_hint(s, g))
        return
    hint = _effective_hint(s, g)
    if hint != s.gi[g, GI.ASK_HINT]:
        tell(s, g, t_end, s.gi[g, GI.ASK_PAGES], hint)


def init_cooperation(gi_row, gf_row, coop, npages, page_size):
    """Set guest columns (one row of ``gi`` and of ``gf``) from its ``cooperation`` dict."""
    cap = coop["cap"]
    gi_row[GI.COOP_CAP] = npages if cap is None else min(npages, cap // page_size)
    gf_row[GF.COOP_ANSWERS] = coop["answers"]
    gf_row[GF.COOP_DELAY] = coop["delay_s"]
    gi_row[GI.COOP] = int(not is_full(coop, npages * page_size))
    # hinting is on from boot (until a policy says otherwise) only for a guest that gives
    gi_row[GI.WANT_HINT] = 1
    gi_row[GI.AGREED_HINT] = int(coop["answers"] > 0.0)
    gi_row[GI.ASK_HINT] = int(coop["answers"] > 0.0 and gi_row[GI.COOP_CAP] > 0)
