"""Host offering policies: formulas against hand-computed values, behaviour in small
runs, refused combinations, and the registry contract over every allowed policy x mechanism.

Hand-computed values are reference/policies-peers-metrics.md §2.1 (ESX rho) and §2.3 (MOM).
"""

import inspect
import warnings

import numpy as np
import pytest

import fphlib
from fphlib.api.asking import PER_GUEST_COLUMNS, jain_index, never_asking
from fphlib.api.config import ask_mode, policy_allows
from fphlib.api.simulate import with_baseline
from fphlib.hinting import REGISTRY as MECHANISMS
from fphlib.hinting import mechanism_is_safe, mechanism_module
from fphlib.host.policy import REGISTRY as POLICIES
from fphlib.host.policy import policy_module
from fphlib.host.policy.esx import adjusted_ratio
from fphlib.host.policy.mom import mom_target
from fphlib.host.policy.watermark import watermark_next

MIB = 1 << 20
PAIRS = [(p, m) for p in POLICIES for m in MECHANISMS if policy_allows(p, m)]
REFUSED = [(p, m) for p in POLICIES for m in MECHANISMS if not policy_allows(p, m)]


# ------------------------------------------------------------------ formulas


def test_esx_adjusted_ratio_worked_example():
    """S=1000, P=100, f=0.1, tau=0.75 => rho = 1000 / (100 * 3.7) = 2.703 (§2.1)."""
    assert adjusted_ratio(1000.0, 100.0, 0.1, 0.75) == pytest.approx(1000 / 370)
    assert round(adjusted_ratio(1000.0, 100.0, 0.1, 0.75), 3) == 2.703
    assert adjusted_ratio(1000.0, 100.0, 1.0, 0.75) == pytest.approx(10.0)  # fully active
    for f in (0.0, 0.1, 0.5, 1.0):  # tau = 0: pure shares, whatever f
        assert adjusted_ratio(1000.0, 100.0, f, 0.0) == pytest.approx(10.0)


def test_mom_shrink_worked_example():
    """Host 16 GiB, 15 % free; guest cur 4194304 kB, unused 2097152 kB (§2.3)."""
    cur, unused = 4194304.0, 2097152.0
    for variant in (0, 1):
        assert mom_target(variant, 0.15, cur, cur, unused, 0.0, cur) == pytest.approx(
            3984588.8)
        # at 4 % free guest_free_pct = -0.01: floor 2055209, the 5 % step still dominates
        assert mom_target(variant, 0.04, cur, cur, unused, 0.0, cur) == pytest.approx(
            3984588.8)
    # a floor above the 5 % step: used 820 => size = 820 + 0.15 * 1000 = 970
    assert mom_target(1, 0.15, 1000.0, 1000.0, 180.0, 0.0, 1000.0) == pytest.approx(970.0)
    # shrink only if size <= cur: floor above cur => no change
    assert mom_target(1, 0.15, 1000.0, 1000.0, 10.0, 0.0, 1000.0) == -1.0


def test_mom_grow_differs_between_doc_and_vdsm():
    """Grow: doc/ uses F = 0.20, vdsm the recomputed guest_free_pct (= host_free here)."""
    # host 50 % free, cur 1000, used 900, max 2000
    assert mom_target(1, 0.5, 1000.0, 1000.0, 100.0, 0.0, 2000.0) == pytest.approx(1400.0)
    assert mom_target(0, 0.5, 1000.0, 1000.0, 100.0, 0.0, 2000.0) == pytest.approx(1100.0)
    # capped at max, and no change below 0.25 % of cur
    assert mom_target(0, 0.5, 1000.0, 1000.0, 100.0, 0.0, 1001.0) == -1.0
    assert mom_target(0, 0.5, 1000.0, 1000.0, 100.0, 0.0, 1000.0) == -1.0  # cur == max
    # vdsm QoS: a guest below its guaranteed minimum goes back to it
    assert mom_target(1, 0.1, 500.0, 500.0, 0.0, 800.0, 1000.0) == pytest.approx(800.0)
    assert mom_target(0, 0.1, 500.0, 500.0, 0.0, 800.0, 1000.0) == -1.0


def test_watermark_hysteresis_formula():
    low, high = 0.1, 0.2
    on = 0
    seen = []
    for free in (0.5, 0.15, 0.09, 0.15, 0.19, 0.21, 0.15, 0.05):
        on = watermark_next(on, free, low, high)
        seen.append(on)
    assert seen == [0, 0, 1, 1, 1, 0, 0, 1]


def test_jain_index():
    assert jain_index([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert jain_index([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert jain_index([1.0, 2.0]) == pytest.approx(9 / 10)
    assert jain_index([1.0, np.inf, 1.0]) == pytest.approx(1.0)  # finite values only


# ------------------------------------------------------------------ configuration


def test_every_policy_module_declares_its_check_and_params():
    for name in POLICIES:
        module = policy_module(name)
        assert module.NAME == name and "interval_s" in module.PARAMS
    # the mechanism side of the contract: ASKS says which ask a mechanism reads, and a
    # built-in mechanism that reads an ask imports its column (plug-ins read it through
    # fphlib.extend.hint_asked / pages_asked)
    for name in MECHANISMS:
        module = mechanism_module(name)
        assert set(module.ASKS) <= {"pages", "hint"}
        if MECHANISMS.is_plugin(name):
            continue
        source = inspect.getsource(module)
        assert ("pages" in module.ASKS) == ("GI.ASK_PAGES" in source), name
        assert ("hint" in module.ASKS) == ("GI.ASK_HINT" in source), name


@pytest.mark.parametrize(("policy", "mech"), REFUSED)
def test_refused_pairs_say_why(policy, mech):
    with pytest.raises(ValueError, match=rf"policy: '{policy}' is not allowed with mechanism "
                                         rf"'{mech}': "):
        fphlib.SimConfig(policy=policy, mechanism=mech)


def test_refusals_are_the_nonsensical_ones():
    """Built-in policies refuse only mechanisms they cannot drive (plug-ins decide theirs)."""
    for policy, mech in REFUSED:
        if POLICIES.is_plugin(policy):
            continue
        mode = ask_mode(mech)
        assert mode is None or (policy, mode) in {("mom", "hint"), ("always_on", "pages")}
    assert ("mom", "balloon") in PAIRS and ("watermark", "page_reporting") in PAIRS


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_params_are_validated(policy):
    spec = policy_module(policy).PARAMS
    for key, p in spec.items():
        if p.kind in ("float", "int"):
            with pytest.raises(ValueError, match=rf"policy_params\['{key}'\].*{p.lo:g}"):
                fphlib.SimConfig(policy=policy, mechanism=_some_mechanism(policy),
                                 policy_params={key: p.hi * 2 + 1})
        elif p.kind == "choice":
            with pytest.raises(ValueError, match=rf"policy_params\['{key}'\].*one of"):
                fphlib.SimConfig(policy=policy, mechanism=_some_mechanism(policy),
                                 policy_params={key: "bogus"})


def _some_mechanism(policy):
    return next(m for m in MECHANISMS if policy_allows(policy, m))


def test_watermark_low_must_be_below_high():
    with pytest.raises(ValueError, match=r"policy_params\['low'\].*below high"):
        fphlib.SimConfig(policy="watermark", mechanism="page_reporting",
                         policy_params={"low": 0.3, "high": 0.2})


def test_per_guest_overrides_are_validated():
    kw = dict(policy="proportional_share", mechanism="balloon", guests=2, guest_mem="64MiB")
    with pytest.raises(ValueError, match=r"guest_overrides\[0\]\['shares'\]"):
        fphlib.SimConfig(**kw, guest_overrides=[{"shares": 0}])
    with pytest.raises(ValueError, match=r"guest_overrides\[1\]\['max'\]"):
        fphlib.SimConfig(**kw, guest_overrides=[{}, {"max": "1GiB"}])
    with pytest.raises(ValueError, match=r"guest_overrides\[0\]\['min'\].*max"):
        fphlib.SimConfig(**kw, guest_overrides=[{"min": "48MiB", "max": "32MiB"}])
    cfg = fphlib.SimConfig(**kw, guest_overrides=[{"shares": 2000, "min": "16MiB"}])
    assert cfg.guest_spec(0)["shares"] == 2000 and cfg.guest_spec(0)["min"] == 16 << 20
    assert fphlib.SimConfig.from_json(cfg.to_json()) == cfg


# ------------------------------------------------------------------ behaviour in small runs


def _hog(size="48MiB", hold=0.2, **extra):
    return dict(workload="memhog", workload_params={"size": size, "rate": "1GiB",
                                                    "hold_s": hold, "boot": "8MiB", **extra})


def _asks(res, kind="ask"):
    ev = res.events
    return ev[ev.kind == kind].reset_index(drop=True)


def test_round_robin_visits_every_guest():
    """Four guests that freed what they touched; the host always short (target_free 1):
    each interval asks the next guest, in order, wrapping around."""
    cfg = fphlib.SimConfig(host_mem="1GiB", guests=4, guest_mem="64MiB", **_hog(),
                           mechanism="balloon", policy="round_robin",
                           policy_params={"interval_s": 0.5, "quantum": "4MiB",
                                          "target_free": 1.0},
                           duration_s=5.0, sample_s=0.1)
    asks = _asks(fphlib.simulate(cfg))
    assert list(asks.guest[:8]) == [0, 1, 2, 3, 0, 1, 2, 3]
    assert asks.t_s.is_monotonic_increasing
    assert np.allclose(np.diff(asks.t_s[:8]), 0.5)
    assert (asks.value[:4] == 4 << 20).all()  # one quantum each


def test_round_robin_switches_hinting_of_one_guest_at_a_time():
    cfg = fphlib.SimConfig(host_mem="1GiB", guests=3, guest_mem="64MiB", **_hog(),
                           mechanism="page_reporting", policy="round_robin",
                           policy_params={"interval_s": 0.5, "target_free": 1.0},
                           duration_s=3.0, sample_s=0.1)
    res = fphlib.simulate(cfg)
    on = _asks(res, "hint_on")
    assert set(on.guest) == {0, 1, 2}
    table = res.per_guest
    assert (table.hint_on_s > 0).all() and (table.hint_on_s < 3.0).all()


def test_proportional_share_takes_from_the_lowest_ratio_first():
    """Equal guests, shares 500 / 1000 / 2000: the host takes from S/P lowest (guest 0)."""
    cfg = fphlib.SimConfig(
        host_mem="320MiB", guests=3, guest_mem="64MiB", **_hog(),
        guest_overrides=[{"shares": 500}, {"shares": 1000}, {"shares": 2000}],
        mechanism="balloon", policy="proportional_share",
        policy_params={"interval_s": 1.0, "quantum": "4MiB", "target_free": 0.5},
        duration_s=3.0, sample_s=0.1)
    res = fphlib.simulate(cfg)
    assert res.summary["oom_kills"] == 0
    asks = _asks(res)
    assert len(asks) and asks.guest.iloc[0] == 0
    asked = res.per_guest.asked_bytes
    assert asked[0] >= asked[1] >= asked[2]
    assert asked[0] > asked[2]


def test_min_is_never_ballooned_away():
    cfg = fphlib.SimConfig(
        host_mem="256MiB", guests=2, guest_mem="64MiB", **_hog(),
        guest_overrides=[{"shares": 10, "min": "60MiB"}, {"shares": 1000}],
        mechanism="balloon", policy="proportional_share",
        policy_params={"interval_s": 0.5, "quantum": "4MiB", "target_free": 0.9},
        duration_s=3.0, sample_s=0.1)
    res = fphlib.simulate(cfg)
    table = res.per_guest
    assert table.asked_bytes[0] <= (64 - 60) << 20
    assert table.asked_bytes[1] > 0


def test_idle_tax_moves_memory_from_the_idle_guest():
    """Guest 0 touched its memory once and went idle; guest 1 churns; equal shares. Raising
    tau from 0 to 0.75 makes the host take more from the idle guest and less from the busy
    one (ESX Fig. 7's direction): bytes the host got back from each."""
    def returned(tau):
        cfg = fphlib.SimConfig(
            host_mem="256MiB", host_swap="64MiB", guests=2, guest_mem="96MiB",
            host_reserve=0,  # host memory sized for the guests alone
            **_hog(size="64MiB", hold=0.1),
            guest_overrides=[{}, {"workload": "churn",
                                  "workload_params": {"target": 0.7, "ops_per_s": 50000.0,
                                                      "boot": "8MiB"}}],
            mechanism="balloon", policy="idle_tax",
            policy_params={"tau": tau, "sample_s": 0.25, "interval_s": 0.5,
                           "quantum": "4MiB", "target_free": 0.3},
            duration_s=6.0, sample_s=0.1)
        return fphlib.simulate(cfg).per_guest.returned_bytes

    flat, taxed = returned(0.0), returned(0.75)
    assert taxed[0] > flat[0]
    assert taxed[1] < flat[1]


def test_esx_shares_are_enforced_on_a_guest_with_nothing_free():
    """Equal shares; guest 0 holds 56 of its 64 MiB forever (nothing above its watermarks
    to balloon), guest 1 booted 8 MiB. The host is short: the lower rho is guest 0's (more
    machine pages), so it is asked for a balloon, which cannot inflate; by the next interval
    the host swaps guest 0's pages, not guest 1's (ESX: "swap if no balloon")."""
    cfg = fphlib.SimConfig(
        host_mem="128MiB", host_swap="128MiB", guests=2, guest_mem="64MiB", host_reserve=0,
        host_thp=False, **_hog(size="52MiB", hold=1e6),
        guest_overrides=[{}, {"workload": "idle", "workload_params": {"boot": "8MiB"}}],
        mechanism="balloon", policy="proportional_share",
        policy_params={"interval_s": 1.0, "quantum": "4MiB", "target_free": 0.3},
        duration_s=20.0, sample_s=0.5)
    res = fphlib.simulate(cfg)
    gs = res.guest_summary
    base = fphlib.simulate(never_asking(cfg)).guest_summary  # the host's own kswapd alone
    assert gs.swap_out_bytes[0] > base.swap_out_bytes[0] + 16 * MIB
    assert gs.swap_out_bytes[1] == base.swap_out_bytes[1] == 0
    # the balloon got only what the guest had above its watermarks: the rest was swapped
    assert res.guests[res.guests.guest == 0].balloon_bytes.max() <= 8 * MIB
    assert res.summary["oom_kills"] == 0


def test_watermark_switches_with_hysteresis_in_a_run():
    """Plenty free at first (off); a memhog fills the host (free < low: on); page reporting
    gives the memory back after it exits (free > high: off); nothing toggles in between."""
    cfg = fphlib.SimConfig(host_mem="160MiB", guests=1, guest_mem="128MiB",
                           host_reserve=0,  # host memory sized for the guest alone
                           **_hog(size="112MiB", hold=0.5, start_s=1.0),
                           mechanism="page_reporting", policy="watermark",
                           policy_params={"low": 0.2, "high": 0.5, "interval_s": 0.25},
                           duration_s=8.0, sample_s=0.05)
    res = fphlib.simulate(cfg)
    ev = res.events[res.events.kind.isin(["hint_on", "hint_off"])]
    assert list(ev.kind) == ["hint_off", "hint_on", "hint_off"]
    host = res.host.set_index("t_s")
    for t, kind in ev[["t_s", "kind"]].itertuples(index=False):
        free = host.free_bytes.asof(t) / (160 << 20)
        if kind == "hint_on":
            assert free < 0.2
        else:
            assert free > 0.5
    assert res.summary["reported_bytes"] > 64 << 20  # reporting ran while on


def test_mom_shrinks_balloons_under_pressure():
    cfg = fphlib.SimConfig(host_mem="256MiB", guests=2, guest_mem="96MiB",
                           **_hog(size="64MiB"), mechanism="balloon", policy="mom",
                           policy_params={"interval_s": 0.5}, duration_s=4.0, sample_s=0.1)
    res = fphlib.simulate(cfg)
    assert res.summary["oom_kills"] == 0
    asks = _asks(res)
    assert len(asks) >= 2
    # the 5 % step limit: every shrink is at most 5 % of the guest's size + rounding
    first = asks.groupby("guest").value.first()
    assert (first <= 0.05 * (96 << 20) + 4096).all()
    assert res.summary["lost_writes"] == 0


def test_per_guest_table_and_slowdown():
    """Balloons taken in the gaps between memhog rounds are deflated on OOM in the next
    round and refaulted: the asked guests pay stalls and run slower than never asked."""
    cfg = fphlib.SimConfig(host_mem="256MiB", host_swap="64MiB", guests=2, guest_mem="96MiB",
                           **_hog(size="72MiB", hold=0.1, runs=3, gap_s=0.3),
                           mechanism="balloon", policy="most_free_first",
                           policy_params={"interval_s": 0.25, "quantum": "16MiB",
                                          "target_free": 0.9},
                           duration_s=5.0, sample_s=0.1)
    res, base, table, run = with_baseline(cfg)
    assert list(table.columns) == list(PER_GUEST_COLUMNS)
    assert list(table.guest) == [0, 1]
    assert base.config == never_asking(cfg) and len(_asks(base)) == 0
    assert (table.asked_bytes > 0).all() and (table.returned_bytes > 0).all()
    # asked guests refault what they gave and their memhog slows down
    assert table.refault_pages.sum() > 0
    assert (table.slowdown >= 0.999).all() and table.slowdown.max() > 1.0
    assert 0.5 <= run["jain_slowdown"] <= 1.0
    assert run["worst_slowdown"] == table.slowdown.max()
    for key in ("host_rss_peak_bytes", "swap_peak_bytes", "oom_kills"):
        assert key in run


# ------------------------------------------------------------------ contract over pairs


def _contract_config(policy, mech, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fphlib.SimConfig(
            host_mem="160MiB", host_swap="32MiB", guests=3, guest_mem="64MiB", vcpus=2,
            **_hog(size="40MiB", hold=0.1, runs=2, gap_s=0.1),
            guest_overrides=[{}, {"workload": "churn",
                                  "workload_params": {"target": 0.6, "ops_per_s": 20000.0,
                                                      "boot": "8MiB"}},
                             {"start_s": 0.5, "shares": 2000, "min": "16MiB"}],
            mechanism=mech, policy=policy,
            policy_params={"interval_s": 0.2, **_pressing(policy)},
            duration_s=2.0, sample_s=0.05, seed=seed, debug=True)


def _pressing(policy):
    """Parameters that make the policy ask in a 2 s run."""
    spec = policy_module(policy).PARAMS
    out = {}
    if "target_free" in spec:
        out["target_free"] = 0.5
    if "quantum" in spec:
        out["quantum"] = "4MiB"
    if "sample_s" in spec:
        out["sample_s"] = 0.4
    if policy == "watermark":
        out.update(low=0.5, high=0.8)
    return out


@pytest.mark.parametrize(("policy", "mech"), PAIRS, ids=[f"{p}-{m}" for p, m in PAIRS])
def test_contract_every_allowed_pair(policy, mech):
    """Page conservation and every debug invariant at each sample (debug=True raises),
    no lost write for a safe mechanism, the same summary for the same seed."""
    cfg = _contract_config(policy, mech, seed=3)
    res = fphlib.simulate(cfg)
    if mechanism_is_safe(mech, cfg.mechanism_settings()):
        assert res.summary["lost_writes"] == 0
    again = fphlib.simulate(cfg)
    a, b = res.summary.drop("wall_s"), again.summary.drop("wall_s")
    assert a.equals(b), (a[a != b], b[a != b])
    assert res.events.equals(again.events)


# ------------------------------------------------------------------ experiments (small sizes)


def test_memhog_sequence_swaps_only_without_hinting():
    """v10/v11 style at 1/64 size: without hinting the third guest's memhog pushes the host
    into swap and waits for the swap-outs (direct reclaim); the reporting mechanisms gave the
    earlier guests' memory back, so nothing is swapped."""
    from fphlib.experiments import memhog_sequence
    from fphlib.experiments.policies import SEQUENCE_COLUMNS, SEQUENCE_MECHANISMS

    df = memhog_sequence(scale=1 / 64)
    assert list(df.columns) == list(SEQUENCE_COLUMNS)
    assert list(df.mechanism.unique()) == list(SEQUENCE_MECHANISMS)
    assert (df.status == "running").all() and df.runtime_s.notna().all()
    # each memhog exited after it started, and after touching its memory
    assert (df.memhog_end_s >= df.start_s + df.runtime_s).all()
    by = df.set_index(["mechanism", "guest"])
    assert by.loc[("none", 2), "host_swap_end_bytes"] > 0
    for mech in SEQUENCE_MECHANISMS[1:]:
        assert by.loc[(mech, 2), "host_swap_end_bytes"] == 0
        assert by.loc[("none", 2), "runtime_s"] > by.loc[(mech, 2), "runtime_s"]
    with pytest.raises(ValueError, match="mechanisms: 'bogus'"):
        memhog_sequence(mechanisms=["bogus"], scale=1 / 64)
    with pytest.raises(ValueError, match="scale"):
        memhog_sequence(scale=2)


def test_overcommit_idle_tax_moves_memory_to_the_busy_guest():
    from fphlib.experiments import overcommit
    from fphlib.experiments.policies import OVERCOMMIT_COLUMNS

    df = overcommit(guest_mem="64MiB", duration_s=60.0, costs={"guest_overhead": 4 << 20})
    assert list(df.columns) == list(OVERCOMMIT_COLUMNS)
    m = df.set_index(["tau", "role"]).memory_bytes
    assert m[(0.75, "idle")] < m[(0.0, "idle")]
    assert m[(0.75, "active")] >= m[(0.0, "active")]
    assert m[(0.75, "active")] > m[(0.75, "idle")]


def test_policy_grid_heatmaps_and_app():
    """The notebook's pieces: every policy that drives the balloon in the grid (registry
    order), heatmaps drawn, and the app refusing a pair it cannot run with the reason."""
    pytest.importorskip("ipywidgets")
    from fphlib.experiments import policy_grid
    from fphlib.viz import policies as vp

    grid, tables = policy_grid(guest_counts=(1, 2), guest_mem="64MiB", duration_s=3.0)
    expected = [p for p in POLICIES if policy_allows(p, "balloon")]
    assert list(grid.policy.unique()) == expected and set(grid.guests) == {1, 2}
    assert len(tables) == 3 * len(expected)
    fig = vp.plot_policy_heatmaps(grid)
    assert len(fig.axes) == len(vp.HEATMAP_METRICS)
    app = vp.PolicyApp(profile="smoke")
    app.policy.value, app.mechanism.value = "mom", "page_reporting"
    # said the moment the controls ask for it, before Run, and Run disabled
    assert "not allowed with mechanism 'page_reporting'" in app.status.value
    assert app.run_button.disabled
    assert app.run() == {}
    assert "not allowed with mechanism 'page_reporting'" in app.status.value
    app.mechanism.value = "balloon"
    assert not app.run_button.disabled and "press Run" in app.status.value
    # the heatmaps' colours start at the neutral value: 1.00 everywhere is not a scale
    flat = grid.assign(mean_slowdown=1.0, worst_slowdown=1.0)
    fig = vp.plot_policy_heatmaps(flat, metrics=("mean_slowdown",))
    assert fig.axes[0].collections[0].get_clim() == (1.0, 1.5)
