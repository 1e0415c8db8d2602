"""Shared helpers for the engine tests: one-guest engine states driven kernel by kernel."""

import numpy as np

from fphlib import SimConfig
from fphlib.engine.build import build_state, guest_zone
from fphlib.state import layout as L
from fphlib.state.zone import PG_REPORTED


def one_guest(**kw):
    """(state, zone) of a booted-but-empty guest: every page free, nothing backed."""
    base = {"guests": 1, "guest_mem": "512MiB", "mechanism": "page_reporting", "duration_s": 60}
    base.update(kw)
    s, _ = build_state(SimConfig(**base))
    s.gi[0, L.GI.STATUS] = L.ST_RUNNING
    return s, guest_zone(s, 0)


def free_list(z, order):
    """Heads of the free list of ``order``, head to tail."""
    out = []
    p = int(z.head[order])
    while p >= 0:
        out.append(p)
        p = int(z.next[p])
    return out


def reported_set(z, order):
    return {p for p in free_list(z, order) if z.flags[p] & PG_REPORTED}


def reported_anywhere(z):
    return set(np.flatnonzero(z.flags & PG_REPORTED).tolist())
