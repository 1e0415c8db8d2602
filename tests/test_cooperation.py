"""A guest's cooperation with the host's asks (fphlib.guest.cooperation): which asks are
answered (jitted rule against its naive twin), config validation, and what happens in runs:
a guest that answers nothing gives nothing and the host falls back to swap; a late guest acts
after its delay; a capped guest gives at most its cap; the default is untouched."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fphlib
from fphlib.experiments import COOPERATION_COLUMNS, cooperation, cooperation_config
from fphlib.guest import cooperation as C

from naive import naive_answered

MIB = 1 << 20


# ------------------------------------------------------------------ which asks are answered


@given(st.integers(0, 10_000), st.floats(0, 1))
def test_jitted_answer_rule_matches_the_naive_one(k, answers):
    assert bool(C._answered(k, answers)) == naive_answered(k, answers)


@given(st.integers(1, 2000), st.integers(0, 100))
def test_answers_spread_evenly_and_add_up_to_the_fraction(n, percent):
    p = percent / 100
    got = [naive_answered(k, p) for k in range(n)]
    # the count of the first n answers telescopes to ceil(n p): never more than one off
    assert sum(got) == math.ceil(n * p - 1e-9) or sum(got) == math.ceil(n * p)
    assert abs(sum(got) - n * p) <= 1
    if p > 0:
        assert got[0]  # the first ask is answered by any guest that answers at all
    else:
        assert not any(got)


# ------------------------------------------------------------------ config


def _cfg(coop, **kw):
    d = dict(guests=1, guest_mem="64MiB", host_mem="1GiB", duration_s=60.0, sample_s=1.0,
             workload="idle", workload_params={"boot": "8MiB"}, mechanism="balloon",
             policy="static",
             policy_params={"target": "32MiB", "interval_s": 5.0})
    d.update(kw)
    return fphlib.SimConfig(**d, guest_overrides=[{"cooperation": coop}])


def test_cooperation_is_filled_in_and_round_trips():
    cfg = _cfg({"answers": 0.25})
    assert cfg.guest_spec(0)["cooperation"] == {"answers": 0.25, "delay_s": 0.0, "cap": None}
    assert fphlib.SimConfig.from_json(cfg.to_json()) == cfg
    assert _cfg({"cap": "16MiB"}).guest_spec(0)["cooperation"]["cap"] == 16 * MIB
    assert fphlib.SimConfig(guests=2).guest_spec(1)["cooperation"] == C.FULL


@pytest.mark.parametrize("coop, key, says", [
    ({"answers": 1.5}, "['answers']", "<= 1"),
    ({"answers": float("nan")}, "['answers']", "a number"),
    ({"delay_s": -1}, "['delay_s']", ">= 0"),
    ({"delay_s": 61}, "['delay_s']", "<= 60"),
    ({"cap": "128MiB"}, "['cap']", "0..67108864"),
    ({"answer": 1}, "['answer']", "known keys: answers, delay_s, cap"),
    (0.5, "", "expected a dict"),
])
def test_bad_cooperation_names_the_field(coop, key, says):
    with pytest.raises(ValueError) as e:
        _cfg(coop)
    assert f"guest_overrides[0]['cooperation']{key}" in str(e.value)
    assert says in str(e.value)


def test_full_cooperation_counts_as_the_default():
    assert C.is_full(C.FULL, 64 * MIB)
    assert C.is_full({"answers": 1.0, "delay_s": 0.0, "cap": 64 * MIB}, 64 * MIB)
    assert not C.is_full({"answers": 1.0, "delay_s": 0.0, "cap": 32 * MIB}, 64 * MIB)
    assert not C.is_full({"answers": 0.9, "delay_s": 0.0, "cap": None}, 64 * MIB)


# ------------------------------------------------------------------ runs: the balloon


def _balloon(res):
    return res.guests[res.guests.guest == 0].set_index("t_s")["balloon_bytes"]


def test_a_guest_answering_every_ask_through_the_cooperation_path_changes_nothing(
        monkeypatch):
    """The same run with every guest sent through hear()/cooperation_step (COOP = 1) but
    answering everything at once: bit-identical results."""
    for mech, pol, params in (("balloon", "static", {"target": "32MiB", "interval_s": 5.0}),
                              ("page_reporting", "watermark", {"interval_s": 2.0})):
        cfg = _cfg(None, mechanism=mech, policy=pol, policy_params=params,
                   workload="memhog",
                   workload_params={"size": "48MiB", "hold_s": 1.0, "boot": "8MiB"})
        plain = fphlib.simulate(cfg)
        seen = []

        def never_full(coop, mem, seen=seen):
            seen.append(mem)
            return False

        monkeypatch.setattr(C, "is_full", never_full)
        routed = fphlib.simulate(cfg)
        monkeypatch.undo()
        assert seen == [64 * MIB]  # the guest was built as not fully cooperative
        assert plain.summary.drop("wall_s").equals(routed.summary.drop("wall_s"))
        assert plain.guests.equals(routed.guests)
        assert plain.events.equals(routed.events)


def test_a_guest_that_answers_nothing_keeps_its_balloon_empty():
    full = fphlib.simulate(_cfg(None))
    never = fphlib.simulate(_cfg({"answers": 0}))
    assert _balloon(full).iloc[-1] == 32 * MIB
    assert (_balloon(never) == 0).all()
    gs = never.guest_summary
    assert gs.asks_unanswered.iloc[0] >= 1 and gs.returned_bytes.iloc[0] == 0
    # the host asked just the same: its asks are recorded as events
    asks = never.events[never.events.kind == "ask"]
    assert len(asks) >= 1 and asks.value.iloc[0] == 32 * MIB


def test_a_late_guest_inflates_after_its_delay():
    full, late = (fphlib.simulate(_cfg(c)) for c in (None, {"delay_s": 12.0}))
    t_ask = late.events[late.events.kind == "ask"].t_s.iloc[0]
    first = {name: _balloon(r)[_balloon(r) > 0].index[0] for name, r in
             (("full", full), ("late", late))}
    assert first["full"] <= t_ask + 1.0  # sampled every second
    assert t_ask + 12.0 <= first["late"] <= t_ask + 13.0
    assert _balloon(late).iloc[-1] == 32 * MIB


def test_a_capped_guest_gives_at_most_its_cap():
    capped = fphlib.simulate(_cfg({"cap": "8MiB"}))
    assert _balloon(capped).max() == 8 * MIB
    assert capped.guest_summary.returned_bytes.iloc[0] <= 8 * MIB


# ------------------------------------------------------------------ runs: hinting


def test_an_uncooperative_guest_leaves_the_host_to_swap():
    """The memhog sequence: guests 0 and 1 answer nothing, so what their memhogs freed stays
    backed; the host swaps when guest 2's memhog runs, and guest 2 is slower."""
    ok, _ = cooperation_config("page_reporting", "always_on", 0.0, scale=1 / 16)
    bad, n_bad = cooperation_config("page_reporting", "always_on", 2 / 3, scale=1 / 16)
    assert n_bad == 2
    r_ok, r_bad = fphlib.simulate(ok), fphlib.simulate(bad)
    assert r_ok.summary["swap_out_bytes"] == 0
    assert r_bad.summary["swap_out_bytes"] > 0
    gs = r_bad.guest_summary
    assert (gs.reported_bytes.iloc[:2] == 0).all() and gs.reported_bytes.iloc[2] > 0
    assert (gs.workload_runtime_s.iloc[2]
            > 1.5 * r_ok.guest_summary.workload_runtime_s.iloc[2])


def test_a_hinting_guest_stops_returning_at_its_cap():
    cap = 24 * MIB
    cfg, _ = cooperation_config("page_reporting", "always_on", 1.0,
                                uncooperative={"cap": cap}, scale=1 / 16)
    res = fphlib.simulate(cfg)
    full = fphlib.simulate(cooperation_config("page_reporting", "always_on", 0.0,
                                              scale=1 / 16)[0])
    returned = res.guests.pivot(index="t_s", columns="guest", values="returned_bytes")
    # the pass under way when the cap is reached finishes (page_reporting reads the switch
    # when a pass starts), then no more: less than the same guests give without a cap
    assert (returned.max() >= cap).all()
    assert (returned.max() < full.guest_summary.returned_bytes.to_numpy()).all()
    over = returned[returned >= cap]
    for g in returned:  # once at the cap, a guest's returned memory never grows again
        after = returned[g][over[g].notna().cumsum() > 0]
        assert after.is_monotonic_decreasing or len(after) <= 1


# ------------------------------------------------------------------ the experiment


def test_cooperation_experiment_says_who_pays():
    d = cooperation(fractions=(0.0, 2 / 3), policies=("always_on",), scale=1 / 16)
    assert tuple(d.columns) == COOPERATION_COLUMNS
    base = d[d.uncooperative == 0]
    assert (base.role == "cooperative").all() and np.allclose(base.slowdown, 1.0)
    bad = d[d.uncooperative > 0].set_index("role")
    assert bad.loc["uncooperative", "returned_bytes"] == 0
    assert bad.loc["cooperative", "slowdown"] > 1.5  # the cooperative guest pays
    assert bad.loc["cooperative", "host_swap_out_bytes"] > 0
    assert (d.asks == "at any time").all()


@pytest.mark.parametrize("kw, says", [
    ({"fractions": (1.5,)}, "fractions: 1.5"),
    ({"fractions": ()}, "fractions: empty"),
    ({"policies": ("nope",)}, "policies: 'nope'"),
    ({"mechanisms": ("nope",)}, "mechanisms: 'nope'"),
])
def test_cooperation_experiment_refuses_bad_arguments(kw, says):
    with pytest.raises(ValueError, match=says):
        cooperation(**kw)


def test_plot_cooperation_draws_both_panels():
    from fphlib.viz import policies as vp

    d = cooperation(**vp.COOPERATION_SIZES["smoke"], policies=("always_on",))
    fig = vp.plot_cooperation(d)
    slow, swap = fig.axes[:2]
    # one line per (policy, role) and one per policy, each with a point per share
    assert len(slow.get_lines()) >= 2 and len(swap.get_lines()) >= 1
    assert sorted(set(swap.get_lines()[0].get_xdata())) == sorted(set(d.uncooperative))
