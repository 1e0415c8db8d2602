"""The host discard queue (performed at request + latency) and per-guest free-page tracking."""

import numpy as np
import pytest

import fphlib
from fphlib.api.counters import guest_counters
from fphlib.costs import INDEX
from fphlib.engine.build import build_state, guest_zone
from fphlib.engine.loop import run_chunk
from fphlib.guest.buddy import rmqueue_smallest
from fphlib.guest.xbitmap import tracking_mismatch
from fphlib.hinting import page_reporting
from fphlib.host.backing import touch
from fphlib.host.discard_queue import discard_due, discard_later, discard_pending
from fphlib.state.zone import PG_BACKED, PG_DATA

from engine_helpers import one_guest


def _backed_block(s, z, order):
    pfn = rmqueue_smallest(z, order)
    touch(s, 0, z, pfn, 1 << order, 0.0, s.cost, 0)
    return pfn


def test_discard_lands_after_the_latency_and_not_before():
    s, z = one_guest(host_thp=False)
    pfn = _backed_block(s, z, 2)
    z.flags[pfn : pfn + 4] &= ~PG_DATA  # the guest no longer needs it
    rss = guest_counters(s, 0).rss
    due = discard_later(s, 0, z, pfn, 4, 1.0, s.cost)
    assert due == pytest.approx(1.0 + s.cost[INDEX["discard_latency"]])
    assert discard_pending(s, 0, pfn + 3, 1) and not discard_pending(s, 0, pfn + 4, 1)
    assert discard_due(s, 0, z, due - 1e-9, s.cost) == 0.0  # too early: still backed
    assert guest_counters(s, 0).rss == rss and z.flags[pfn] & PG_BACKED
    assert discard_due(s, 0, z, due, s.cost) > 0.0
    assert guest_counters(s, 0).rss == rss - 4 and not z.flags[pfn] & PG_BACKED
    assert guest_counters(s, 0).dq_n == 0 and guest_counters(s, 0).lost == 0


def test_a_write_between_request_and_discard_is_a_lost_write():
    s, z = one_guest(host_thp=False)
    pfn = _backed_block(s, z, 0)  # PG_DATA set: the guest wrote it and still needs it
    due = discard_later(s, 0, z, pfn, 1, 0.0, s.cost)
    discard_due(s, 0, z, due, s.cost)
    assert guest_counters(s, 0).lost == 1


def test_a_full_queue_performs_its_oldest_discard_early():
    s, z = one_guest(host_thp=False)  # page_reporting: capacity (32) slots
    slots = s.dq_t.shape[1]
    pfns = [_backed_block(s, z, 0) for _ in range(slots + 1)]
    for p in pfns:
        z.flags[p] &= ~PG_DATA
        discard_later(s, 0, z, p, 1, 0.0, s.cost)
    assert guest_counters(s, 0).dq_early == 1 and guest_counters(s, 0).dq_n == slots
    assert not z.flags[pfns[0]] & PG_BACKED and z.flags[pfns[1]] & PG_BACKED


def test_per_guest_tracking_follows_each_guests_free_lists(monkeypatch):
    """A mechanism that asks for tracking gets one xbitmap per guest, kept current."""
    for mode in ("page", "head"):
        state = page_reporting.STATE._replace(tracking=lambda params, m=mode: m)
        monkeypatch.setattr(page_reporting, "STATE", state)
        cfg = fphlib.SimConfig(host_mem="2GiB", guests=3, guest_mem="128MiB",
                               workload="churn", mechanism="page_reporting",
                               workload_params={"boot": "8MiB", "target": 0.5,
                                                "ops_per_s": 20000},
                               guest_overrides=[{"mem": "64MiB"}], duration_s=1.5,
                               sample_s=0.5, hint_order=5)
        s, info = build_state(cfg)
        run_chunk(s, 0, info["n_ticks"] + 1)
        counts = []
        for g in range(cfg.guests):
            z = guest_zone(s, g)
            assert tracking_mismatch(z, {"page": 1, "head": 2}[mode]) is None, (mode, g)
            counts.append(int(z.nr_free.sum()))
        assert len(set(counts)) == 3  # three different guests, three different bitmaps
        assert np.all(guest_counters(s, slice(None)).xb_leaf_n > 0)
