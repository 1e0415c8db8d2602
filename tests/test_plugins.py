"""Plug-ins (docs/plugins.md): the open registries, fphlib.extend, shipping to workers, cache
keys that follow a plug-in's source, and the installable example (examples/fphlib-eager).

The notebook plug-in here is source executed into a module that is not importable, as a
notebook cell's definitions are: numba cannot cache it and a worker can only receive it
pickled by value.
"""

import concurrent.futures as cf
import dataclasses
import importlib.metadata
import multiprocessing as mp
import threading
import types
from pathlib import Path

import pandas as pd
import pytest

import fphlib
from fphlib.hinting import REGISTRY as MECHANISMS
from fphlib.host.policy import REGISTRY as POLICIES
from fphlib.registry import PluginError

# The example package's mechanism (hint each free block of order >= hint_order at once:
# isolate, report, put back flagged reported), as a notebook cell would define it
EXAMPLE = (Path(__file__).resolve().parents[1] / "examples" / "fphlib-eager" / "src"
           / "fphlib_eager" / "mechanism.py").read_text()

POLICY_CELL = '''
from fphlib import extend as fx

NAME = "cell_toggle"
PARAMS = {"interval_s": fx.POLICY_INTERVAL}


def check(mechanism, mode, params):
    fx.check_drivable(NAME, mechanism, mode, modes=("hint",))


@fx.jit
def step(s, now, cost):
    s = fx.borrow_state(s)
    for g in range(fx.n_guests(s)):
        if fx.guest_running(s, g):
            fx.ask(s, g, now, 0, 1 - fx.hint_asked(s, g))
'''

# A workload: allocate order-0 pages up to `peak` of the guest, free them all, again.
WORKLOAD_CELL = '''
from fphlib import extend as fx

NAME = "cell_sawtooth"
PARAMS = {"peak": fx.Param("float", 0.5, 0.0, 0.95, "", "fraction of the guest held at the peak"),
          "ops_per_s": fx.Param("float", 50000.0, 1.0, 1e9, "ops/s", "pages per second")}
PEAK, OPS, CREDIT = fx.private_columns("PEAK OPS CREDIT")
FREEING, HELD = fx.private_columns("FREEING HELD")


def init(params, n_pages, vcpus, ints, floats):
    floats[PEAK] = int(params["peak"] * n_pages)
    floats[OPS] = params["ops_per_s"]


STATE = fx.PrivateState(ints=("FREEING", "HELD"), floats=("PEAK", "OPS", "CREDIT"), init=init)


def build(params, n_pages, rng):
    return fx.Setup(pool=int(params["peak"] * n_pages) + 1)


def estimate_events(params, n_pages, active_s):
    return params["ops_per_s"] * active_s


@fx.jit
def step(s, g, z, t, dt, cost, ovh):
    s = fx.borrow_state(s)
    z = fx.borrow_zone(z)
    credit = s.wl_f[g, CREDIT] + fx.pay_debt(s, g, dt) * s.wl_f[g, OPS]
    base = fx.pool_start(s, g)
    while credit >= 1.0:
        credit -= 1.0
        n = s.wl_i[g, HELD]
        if s.wl_i[g, FREEING]:
            if n == 0:
                s.wl_i[g, FREEING] = 0
                continue
            fx.release(s, g, z, s.pool[base + n - 1], 0, fx.randint(s.rng, g, 2), t)
            s.pool[base + n - 1] = -1
            s.wl_i[g, HELD] = n - 1
        elif n >= s.wl_f[g, PEAK] or n >= fx.pool_capacity(s, g):
            s.wl_i[g, FREEING] = 1
        else:
            pfn = fx.alloc_touch(s, g, z, 0, 0, t, cost, ovh)
            if pfn == -2:
                return False
            if pfn >= 0:
                s.pool[base + n] = pfn
                s.wl_i[g, HELD] = n + 1
    s.wl_f[g, CREDIT] = credit
    return True
'''

BASE = fphlib.SimConfig(host_mem="1GiB", guest_mem="256MiB", workload="churn",
                        workload_params={"target": 0.4, "boot": "16MiB"}, duration_s=3.0,
                        sample_s=0.25, hint_order=7, seed=3)


def notebook_module(source, name):
    """Execute ``source`` as a notebook cell does: a module nobody can import by name."""
    module = types.ModuleType(name)
    exec(compile(source, f"<cell {name}>", "exec"), module.__dict__)  # noqa: S102 - test source
    return module


def cell(capacity=16):
    source = EXAMPLE.replace('NAME = "eager"', 'NAME = "cell_eager"')
    source = source.replace('fx.Param("int", 32,', f'fx.Param("int", {capacity},')
    assert source.count("cell_eager") == 1 and f"Param(\"int\", {capacity}," in source
    return notebook_module(source, "cell_eager")


@pytest.fixture
def toy():
    """The notebook mechanism and policy, registered for one test."""
    mech = fphlib.register_mechanism(cell())
    policy = fphlib.register_policy(notebook_module(POLICY_CELL, "cell_toggle"))
    yield mech, policy
    for registry, name in ((MECHANISMS, mech), (POLICIES, policy)):
        if name in registry:
            registry.unregister(name)


def test_a_registered_plugin_is_listed_by_every_consumer(toy):
    from fphlib.cli import _choices
    from fphlib.sweep import block_size_mechanisms
    from fphlib.viz.policies import policies
    from fphlib.viz.widgets import mechanism_names

    mech, policy = toy
    assert (mech, policy) == ("cell_eager", "cell_toggle")
    assert mech in MECHANISMS and MECHANISMS.is_plugin(mech)
    assert mech in _choices("mechanism") and policy in _choices("policy")
    assert mech in mechanism_names() and policy in policies()
    assert mech in block_size_mechanisms()
    cfg = fphlib.SimConfig(mechanism=mech, policy=policy)
    assert set(cfg.plugins()) == {f"mechanism {mech}", f"policy {policy}"}
    MECHANISMS.unregister(mech)
    with pytest.raises(ValueError, match="mechanism: 'cell_eager' is not allowed; known "
                       "mechanisms: none, page_reporting"):
        fphlib.SimConfig(mechanism=mech)


def test_a_notebook_plugin_runs_safely_and_reports(toy):
    mech, policy = toy
    cfg = dataclasses.replace(BASE, mechanism=mech, debug=True)
    res = fphlib.simulate(cfg)  # debug: every invariant at every sample
    assert res.summary["lost_writes"] == 0
    assert res.summary["reports"] > 0 and res.summary["reported_bytes"] > 0
    none = fphlib.simulate(dataclasses.replace(BASE, mechanism="none"))
    assert res.summary["host_rss_final_bytes"] < none.summary["host_rss_final_bytes"]
    toggled = fphlib.simulate(dataclasses.replace(cfg, policy=policy,
                                                  policy_params={"interval_s": 0.5}))
    kinds = set(toggled.events["kind"])
    assert {"hint_on", "hint_off"} <= kinds
    assert toggled.summary["reported_bytes"] < res.summary["reported_bytes"]


def _bad(**changes):
    module = cell()
    for key, value in changes.items():
        if value is None:
            delattr(module, key)
        else:
            setattr(module, key, value)
    return module


@pytest.mark.parametrize(("changes", "message"), [
    ({"PARAMS": None}, "PARAMS is missing; expected a dict"),
    ({"PARAMS": {"x": 1}}, "PARAMS is {'x': 1}; expected a dict"),
    ({"TAKES_HINT_ORDER": "yes"}, "TAKES_HINT_ORDER is 'yes'; expected True or False"),
    ({"ASKS": ("pages", "soon")}, r"ASKS is \('pages', 'soon'\); expected a tuple of"),
    ({"tick": lambda s, g, z, t_end, cost: None}, "tick is not jitted; decorate it with "
     "fphlib.extend.jit"),
    ({"tick": fphlib.extend.jit(lambda s, g, z, t: None)}, r"takes 4 arguments; expected "
     r"tick\(s, g, z, t_end, cost\)"),
    ({"free_hook_order": None}, "on_free needs free_hook_order"),
    ({"STATE": ("PHASE",)}, "STATE is .*expected a fphlib.extend.PrivateState"),
    ({"NAME": "Bad Name"}, "NAME is 'Bad Name'; expected a lower-case identifier"),
    ({"NAME": "page_reporting"}, "'page_reporting' is built into fphlib"),
])
def test_a_plugin_that_breaks_the_contract_is_refused_naming_what(changes, message):
    with pytest.raises(PluginError, match=message):
        fphlib.register_mechanism(_bad(**changes))
    assert "cell_eager" not in MECHANISMS


def test_a_policy_without_interval_is_refused():
    module = notebook_module(POLICY_CELL, "cell_toggle")
    module.PARAMS = {}
    with pytest.raises(PluginError, match="policy plug-in 'cell_toggle': PARAMS .* holding "
                       "'interval_s'"):
        fphlib.register_policy(module)


def test_a_name_is_registered_once_unless_replaced(toy):
    with pytest.raises(PluginError, match="'cell_eager' is registered already .* "
                       "replace=True"):
        fphlib.register_mechanism(cell())
    before = MECHANISMS.digest("cell_eager")
    assert fphlib.register_mechanism(cell(capacity=8), replace=True) == "cell_eager"
    assert MECHANISMS.digest("cell_eager") != before
    assert list(MECHANISMS).count("cell_eager") == 1


def test_a_module_path_registers_and_digests_its_files(tmp_path, monkeypatch):
    pkg = tmp_path / "labplug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mech.py").write_text(EXAMPLE.replace('NAME = "eager"', 'NAME = "path_eager"'))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert fphlib.register_mechanism("labplug.mech") == "path_eager"
        assert MECHANISMS.shipping("path_eager") == ("module", "labplug.mech")
        digest = MECHANISMS.digest("path_eager")
        (pkg / "helpers.py").write_text("X = 1\n")  # any file of the package counts
        fphlib.register_mechanism("labplug.mech", replace=True)
        assert MECHANISMS.digest("path_eager") != digest
    finally:
        MECHANISMS.unregister("path_eager")
    with pytest.raises(PluginError, match="cannot import plug-in module 'labplug.nothing'"):
        fphlib.register_mechanism("labplug.nothing")


def test_editing_a_plugin_invalidates_its_cached_runs(toy, tmp_path):
    grid = {"mechanism": ["cell_eager"]}
    first = fphlib.sweep(grid, base=BASE, cache=tmp_path, progress=False)
    assert first.attrs["computed"] == 1
    again = fphlib.sweep(grid, base=BASE, cache=tmp_path, progress=False)
    assert again.attrs["cached"] == 1
    fphlib.register_mechanism(cell(capacity=2), replace=True)  # the cell edited and rerun
    edited = fphlib.sweep(grid, base=BASE, cache=tmp_path, progress=False)
    assert edited.attrs == {"computed": 1, "cached": 0, "failed": 0, "keys": ["mechanism"]}
    assert edited["reports"][0] > first["reports"][0]  # smaller reports: more of them
    fphlib.register_mechanism(cell(), replace=True)  # back to the first source: cached
    assert fphlib.sweep(grid, base=BASE, cache=tmp_path, progress=False).attrs["cached"] == 1


def test_a_notebook_plugin_is_shipped_to_spawned_workers(toy):
    grid = [{"mechanism": "cell_eager", "policy": "static"},
            {"mechanism": "cell_eager", "policy": "cell_toggle"},
            {"mechanism": "none", "policy": "static"}]
    here = fphlib.sweep(grid, base=BASE, progress=False)
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        there = fphlib.sweep(grid, base=BASE, executor=pool, progress=False)
    assert there["error"].isna().all(), list(there["error"])
    pd.testing.assert_frame_equal(here.drop(columns="wall_s"), there.drop(columns="wall_s"))


def test_a_plugin_that_cannot_be_sent_is_refused_with_advice(toy):
    fphlib.register_mechanism(_bad(LOCK=threading.Lock()), replace=True)
    with cf.ProcessPoolExecutor(1) as pool, pytest.raises(
            PluginError, match="cannot be sent to sweep workers .* entry point in group "
            "'fphlib.mechanisms'.*executor=None"):
        fphlib.sweep({"mechanism": ["cell_eager"]}, base=BASE, executor=pool, progress=False)


def test_a_notebook_workload_runs_with_conservation_and_in_every_list():
    from fphlib.cli import _choices
    from fphlib.workloads import REGISTRY as WORKLOADS

    name = fphlib.register_workload(notebook_module(WORKLOAD_CELL, "cell_sawtooth"))
    try:
        assert name in WORKLOADS and name in _choices("workload")
        with pytest.raises(ValueError, match=r"workload_params\['peak'\]: 2 is not allowed; "
                           r"expected a number in 0..0.95"):
            dataclasses.replace(BASE, workload=name, workload_params={"peak": 2})
        cfg = dataclasses.replace(BASE, workload=name, mechanism="page_reporting", debug=True,
                                  workload_params={"peak": 0.6, "boot": "16MiB"},
                                  guest_overrides=({}, {"workload": "churn"}), guests=2)
        res = fphlib.simulate(cfg)  # debug: page conservation at every sample
        used = res.guests[res.guests.guest == 0].set_index("t_s").used_bytes
        assert used.max() > 0.55 * (256 << 20)  # it reached its peak ...
        assert used.iloc[-5:].min() < used.max()  # ... and freed again
        again = fphlib.simulate(cfg)
        assert res.summary.drop("wall_s").equals(again.summary.drop("wall_s"))
        assert "workload cell_sawtooth" in cfg.plugins()
    finally:
        WORKLOADS.unregister(name)


def test_a_workload_that_breaks_the_contract_is_refused():
    module = notebook_module(WORKLOAD_CELL, "cell_sawtooth")
    module.PARAMS = {**module.PARAMS, "boot": fphlib.extend.Param("size", 0, 0, 1, "", "x")}
    with pytest.raises(PluginError, match=r"PARAMS redefines \['boot'\]"):
        fphlib.register_workload(module)
    module = notebook_module(WORKLOAD_CELL, "cell_sawtooth")
    module.step = fphlib.extend.jit(lambda s, g, z, t: True)
    with pytest.raises(PluginError, match=r"expected step\(s, g, z, t, dt, cost, ovh\)"):
        fphlib.register_workload(module)


def test_extend_exports_what_it_lists():
    import fphlib.extend as fx

    missing = [name for name in fx.__all__ if not hasattr(fx, name)]
    assert not missing
    assert fx.COST["vmexit"] == fx.C_VMEXIT


def test_the_example_package_registers_through_entry_points():
    """examples/fphlib-eager is installed by ``make test``: its entry points put ``eager``
    and ``toggle`` in the registries without a call."""
    groups = {ep.value for g in ("fphlib.mechanisms", "fphlib.policies")
              for ep in importlib.metadata.entry_points(group=g)}
    assert {"fphlib_eager.mechanism", "fphlib_eager.policy"} <= groups, (
        "examples/fphlib-eager is not installed: run make test (or pip install -e "
        "examples/fphlib-eager)")
    assert "eager" in MECHANISMS and "toggle" in POLICIES
    assert MECHANISMS.shipping("eager") == ("module", "fphlib_eager.mechanism")


def test_a_broken_entry_point_warns_and_is_skipped(monkeypatch):
    from fphlib.registry import Registry

    class EP:
        name, value = "broken", "no_such_module.anywhere"

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [EP()])
    registry = Registry("mechanism", "fphlib.hinting", ("none",), lambda m, n: None,
                        "fphlib.mechanisms")
    with pytest.warns(UserWarning, match="entry point 'broken' .* was not registered: cannot "
                      "import plug-in module 'no_such_module.anywhere'"):
        assert list(registry) == ["none"]
