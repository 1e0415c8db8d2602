"""Separate compile units (fphlib.state.units): a run compiles only its own mechanism, policy
and workloads, and a hook called through its address behaves as the direct call."""

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

from fphlib import SimConfig
from fphlib._jit import Ref, native_address
from fphlib.api.counters import guest_counters
from fphlib.engine.build import build_state, guest_zone
from fphlib.engine.loop import run_chunk
from fphlib.hinting import page_reporting
from fphlib.hinting.dispatch import HOOKS
from fphlib.state import hooks, units
from fphlib.state.borrow import zone_of
from fphlib.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parent.parent


def small(**kw):
    # page reporting needs 32 x 2 MiB of unreported free memory to start (capacity << order)
    base = dict(host_mem="1GiB", guests=2, guest_mem="256MiB", workload="memhog",
                workload_params={"boot": "4MiB", "size": "128MiB", "hold_s": 0.1},
                mechanism="page_reporting", report_delay_s=0.05, duration_s=1.0)
    base.update(kw)
    return SimConfig(**base)


@numba.njit
def _reported_through_hook(s, g):
    return hooks.mech_reported_pages(s, g, zone_of(s, g))


@numba.njit
def _alloc_fail_through_hook(s, g):
    return hooks.mech_on_alloc_fail(s, g, zone_of(s, g), 0.0, s.cost)


@numba.njit
def _reported_with_zone(s, g, z):
    return hooks.mech_reported_pages(s, g, z)


def test_hook_through_its_address_equals_the_direct_call():
    cfg = small()
    s, info = build_state(cfg)
    run_chunk(s, 0, info["n_ticks"] + 1)
    for g in range(cfg.guests):
        direct = page_reporting.reported_pages(s, g, guest_zone(s, g))
        assert direct > 0  # the run reported something: the comparison means something
        assert _reported_through_hook(s, g) == direct


@pytest.mark.parametrize("debug", [False, True])
def test_bind_fills_the_slots_this_run_uses_and_leaves_the_rest_empty(debug):
    cfg = small(workload="memhog", workload_params={"boot": "4MiB", "size": "8MiB"},
                debug=debug)
    s, _ = build_state(cfg)
    for hook in HOOKS:
        assert (s.fn[units.SLOT["mech_" + hook]] != 0) == hasattr(page_reporting, hook), hook
    for unit in ("policy_step", "host_ensure_ram", "guest_boot", "guest_alloc_slowpath"):
        assert s.fn[units.SLOT[unit]] != 0, unit
    assert s.fn[units.SLOT["migration_step"]] == 0  # no migration: nothing compiled
    assert (s.fn[units.SLOT["debug_check"]] != 0) == debug
    # memhog's step in the run's first workload slot, every other workload slot empty
    assert guest_counters(s, 0).wl == 0
    assert s.fn[units.SLOT_WORKLOAD] == native_address(
        WORKLOADS.module("memhog").step, units.signature("workload_step", numba.typeof(s)))
    assert not s.fn[units.SLOT_WORKLOAD + 1:].any()


def test_an_empty_slot_is_a_no_op():
    """A hook the mechanism leaves out runs as a no-op (page_reporting: on_alloc_fail)."""
    s, _ = build_state(small())
    assert s.fn[units.SLOT["mech_on_alloc_fail"]] == 0
    assert _alloc_fail_through_hook(s, 0) == (0, 0.0)


def test_a_unit_called_with_another_zone_type_is_refused():
    s, _ = build_state(small())
    z = guest_zone(s, 0)
    z = z._replace(next=np.repeat(z.next, 2)[::2])  # same values, non-contiguous layout
    assert numba.typeof(z.next).layout != "C"
    with pytest.raises(TypingError, match="argument z"):
        _reported_with_zone(s, 0, z)


_ONLY_ITS_OWN = textwrap.dedent("""
    import json, warnings
    warnings.simplefilter("ignore")
    import fphlib
    from fphlib.hinting import REGISTRY, mechanism_module
    from fphlib.hinting.dispatch import HOOKS
    from fphlib._jit import compiled
    cfg = fphlib.SimConfig(host_mem="256MiB", guests=1, guest_mem="64MiB", workload="churn",
                           workload_params={"boot": "4MiB", "ops_per_s": 1000},
                           mechanism="page_reporting", duration_s=0.1, sample_s=0.1)
    fphlib.simulate(cfg)
    out = {}
    for name in REGISTRY:
        m = mechanism_module(name)
        out[name] = sum(len(compiled(getattr(m, h))) for h in HOOKS if hasattr(m, h))
    from fphlib.guest import xbitmap
    out["xbitmap tracking"] = sum(len(compiled(f)) for f in xbitmap.XB_HOOKS.values())
    print(json.dumps(out))
""")


def test_a_run_compiles_no_other_mechanism():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _ONLY_ITS_OWN], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=1200, check=True)
    compiled = json.loads(out.stdout.strip().splitlines()[-1])
    assert compiled.pop("page_reporting") >= 3  # start, tick, on_free, reported_pages
    assert compiled == {name: 0 for name in compiled}  # nor the xbitmap tracking kernel


def test_tracking_arrays_without_a_bound_kernel_raise_instead_of_calling_address_0():
    from fphlib.guest import xbitmap
    from fphlib.guest.buddy import init_free_lists, new_zone

    z = new_zone(4096, track=xbitmap.TRACK_PAGE)
    assert z.xb_meta[xbitmap.M_TRACK_FN] == xbitmap.xb_hook_address(xbitmap.TRACK_PAGE,
                                                                     True) != 0
    assert z.xb_meta[xbitmap.M_TRACK_DEL_FN] == xbitmap.xb_hook_address(xbitmap.TRACK_PAGE,
                                                                         False) != 0
    z.xb_meta[xbitmap.M_TRACK_FN] = 0
    with pytest.raises(RuntimeError, match="tracking_arrays"):
        init_free_lists(z)


def test_state_type_is_the_same_for_every_configuration():
    """One engine loop for every run: the state's numba type does not depend on the config."""
    a, _ = build_state(small())
    b, _ = build_state(small(mechanism="balloon", balloon_target="32MiB", guests=3,
                             workload="memhog", workload_params={"boot": "4MiB"}))
    assert numba.typeof(a) == numba.typeof(b)


def _copied(s):
    return type(s)(*[a.copy() for a in s])


def test_units_get_the_state_they_run_on_not_a_stale_copy():
    """Units take the state by reference (s.self_ref); run_chunk publishes it on entry, so a
    state whose arrays were copied (pickled to a worker, say) runs exactly as the original."""
    s, info = build_state(small())
    twin = _copied(s)
    ticks = info["n_ticks"] + 1
    run_chunk(s, 0, ticks)
    before = [a.copy() for a in s]
    run_chunk(twin, 0, ticks)
    for name, a, b, c in zip(s._fields, before, s, twin, strict=True):
        if name != "self_ref":  # it holds each state's own addresses
            assert np.array_equal(a, b, equal_nan=True), name  # the twin's run left s alone
            assert np.array_equal(b, c, equal_nan=True), name  # and ran the same
    assert guest_counters(s, slice(None)).reports.sum() > 0  # the mechanism's units ran


def test_publish_refuses_a_self_ref_too_small_for_the_state():
    s, _ = build_state(small())
    short = s._replace(self_ref=s.self_ref[: len(s.self_ref) // 2].copy())
    with pytest.raises(ValueError, match="self_ref is too small"):
        units.publish(short)


def test_a_ref_type_survives_pickling_as_the_on_disk_cache_needs():
    ref = Ref(numba.typeof(build_state(small())[0]))
    assert pickle.loads(pickle.dumps(ref)) == ref


def test_the_state_type_and_unit_addresses_kept_per_process_are_numbas():
    """units.state_type keeps typeof(s) by what numba types each array by; bind keeps each
    unit's entry point by that type: both equal what numba gives afresh."""
    from fphlib.engine.build import unit_slots

    cfgs = [SimConfig(guests=g, guest_mem="64MiB", host_mem="1GiB", workload="churn",
                      mechanism=m, duration_s=0.5, sample_s=0.25)
            for g, m in ((1, "page_reporting"), (2, "xbitmap_hints"), (1, "balloon"))]
    for cfg in cfgs:
        s, _ = build_state(cfg)  # bound: s.fn holds the kept addresses
        assert units.state_type(s) is units.state_type(s)
        assert units.state_type(s) == numba.typeof(s)
        for slot, (unit, function) in unit_slots(s, cfg).items():
            assert s.fn[slot] == native_address(function, units.signature(
                unit, numba.typeof(s)))
    # an array numba types differently (read-only here) is another state type
    ro = s.gi.copy()
    ro.flags.writeable = False
    other = s._replace(gi=ro)
    assert units.state_type(other) == numba.typeof(other) != units.state_type(s)
