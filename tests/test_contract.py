"""Contract tests over the registries: every registered mechanism (and its variants) and every
host policy is checked here without test code of its own (issue: one seam).

- page conservation and every debug invariant (``debug=True``) under Hypothesis-drawn small
  configs: every workload, guests 1-4, vCPUs 1-4, hint orders, host with and without swap,
  with and without a live migration of guest 0, with page cache, slab, file I/O and guest
  swap or without (so no mechanism ever hints a page-cache page: invariant 16);
- zero lost writes for every safe mechanism variant;
- same seed, same summary;
- each module's docstring names its kernel source or patch series and has a
  "Simplifications" section; each parameter spec is complete.
"""

import importlib
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fphlib
from fphlib.hinting import REGISTRY, mechanism_is_safe, mechanism_module
from fphlib.host.policy import REGISTRY as POLICY_REGISTRY
from fphlib.host.policy import policy_module
from fphlib.state.params import Param
from fphlib.workloads import WORKLOADS


def variants(name):
    """(mechanism, mechanism_params) pairs: the defaults, and each choice of each choice or
    bool parameter, so that unsafe variants are tested too."""
    spec = mechanism_module(name).PARAMS
    out = [(name, {})]
    for key, p in spec.items():
        choices = p.choices if p.kind == "choice" else (True, False) if p.kind == "bool" else ()
        out += [(name, {key: c}) for c in choices if c != p.default]
    return out


VARIANTS = [v for name in REGISTRY for v in variants(name)]
IDS = [f"{m}{''.join(f'-{k}={v}' for k, v in p.items())}" for m, p in VARIANTS]


def is_safe(mech, params):
    cfg = fphlib.SimConfig(mechanism=mech, mechanism_params=params)
    return mechanism_is_safe(mech, cfg.mechanism_settings())


def _trace(tmp_path_factory, n_pages):
    from fphlib.workloads.trace_file import generate_trace, write_trace

    path = tmp_path_factory.mktemp("trace") / f"t{n_pages}.npz"
    if not path.exists():
        tr = generate_trace(3000, seed=5, occupancy=0.4, ops_per_s=2000, n_pages=n_pages)
        write_trace(path, tr.t_us, tr.kind, tr.order, tr.slot)
    return str(path)


@st.composite
def small_configs(draw):
    guests = draw(st.integers(1, 4))
    guest_mib = draw(st.sampled_from([64, 128, 256]))
    workload = draw(st.sampled_from(sorted(WORKLOADS)))
    params = {"boot": f"{draw(st.sampled_from([8, 32]))}MiB"}
    # guest memory beyond anonymous pages: page cache and slab at boot (or the old anonymous
    # footprint), file I/O growing the page cache, guest swap (fphlib.guest.reclaim)
    if draw(st.booleans()):
        params.update(boot_cache=0, boot_slab=0)
    params["io_rate"] = draw(st.sampled_from([0, 0, 16 << 20, 64 << 20]))
    params["io_write"] = draw(st.sampled_from([0.0, 0.5]))
    if workload == "memhog":
        params.update(size=f"{draw(st.sampled_from([16, 48, guest_mib - 40]))}MiB",
                      rate="512MiB", hold_s=0.3, gap_s=0.2, repeat=draw(st.integers(1, 3)),
                      order=draw(st.sampled_from([0, 0, 3, 9])))
    elif workload == "churn":
        params.update(target=draw(st.sampled_from([0.3, 0.6, 0.9])),
                      ops_per_s=draw(st.sampled_from([2000.0, 20000.0])))
    swap = draw(st.sampled_from([0, 64 << 20]))
    host_mib = draw(st.sampled_from([guests * guest_mib // 2 + 64, guests * guest_mib + 256]))
    return dict(
        host_mem=host_mib << 20, host_swap=swap, host_thp=draw(st.booleans()),
        guests=guests, guest_mem=f"{guest_mib}MiB", vcpus=draw(st.integers(1, 4)),
        workload=workload, workload_params=params, hint_order=draw(st.integers(0, 10)),
        duration_s=draw(st.sampled_from([2.0, 3.5])), sample_s=0.05,
        seed=draw(st.integers(0, 2**32)), balloon_target=draw(st.sampled_from([None, "32MiB"])),
        balloon_interval_s=0.5,
        guest_swap=draw(st.sampled_from([0, 32 << 20])),
        migration=draw(st.sampled_from(
            [None, {"at_s": 0.3, "bandwidth": "512MiB", "downtime_ms": 20}])),
    )


def _config(kw, mech, params, tmp_path_factory):
    kw = dict(kw)
    if kw["workload"] == "trace":
        n_pages = int(kw["guest_mem"][:-3]) * 256
        kw["workload_params"] = {**{k: v for k, v in kw["workload_params"].items()
                                    if k in ("boot", "boot_cache", "boot_slab", "io_rate",
                                             "io_write")},
                                 "path": _trace(tmp_path_factory, n_pages)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # guests larger than host RAM + swap
        return fphlib.SimConfig(**kw, mechanism=mech, mechanism_params=params, debug=True)


@pytest.mark.parametrize(("mech", "params"), VARIANTS, ids=IDS)
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kw=small_configs())
def test_conservation_and_safety(mech, params, kw, tmp_path_factory):
    """Debug invariants hold at every sample (page conservation first); a safe variant never
    loses a write; the same seed gives the same summary."""
    cfg = _config(kw, mech, params, tmp_path_factory)
    res = fphlib.simulate(cfg)  # raises InvariantError naming guest, time and invariant
    if is_safe(mech, params):
        assert res.summary["lost_writes"] == 0
    # memory returned is net (what the host still has back): never more than a guest's
    # memory, nor than the cumulative discards; the debug check holds it to the page flags
    gs = res.guest_summary
    assert (gs.returned_bytes <= gs.mem_bytes).all()
    assert (gs.returned_bytes <= gs.reported_bytes).all()
    assert (res.guests.groupby("guest").returned_bytes.last() == gs.returned_bytes).all()
    again = fphlib.simulate(cfg)
    a = res.summary.drop("wall_s")
    b = again.summary.drop("wall_s")
    assert a.equals(b), (a[a != b], b[a != b])
    assert res.guests.equals(again.guests)


def _docstring_ok(module):
    doc = getattr(module, "__doc__", None) or ""
    assert "Simplifications" in doc, f"{module.__name__}: no 'Simplifications' section"
    return doc


@pytest.mark.parametrize("name", REGISTRY)
def test_mechanism_module_contract(name):
    module = mechanism_module(name)
    doc = _docstring_ok(module)
    assert module.NAME == name
    sources = ("source", "mm/", "drivers/", "RFC", "lkml", "http")
    assert any(s.lower() in doc.lower() for s in sources), f"{name}: no kernel source named"
    assert isinstance(module.TAKES_HINT_ORDER, bool)
    for key, p in module.PARAMS.items():
        assert isinstance(p, Param) and p.help, f"{name}.{key}: spec incomplete"
    hooks = {"start", "tick", "on_free", "on_alloc_fail", "reported_pages"}
    assert hooks & set(dir(module)) or name == "none"
    if hasattr(module, "on_free"):
        assert hasattr(module, "free_hook_order")


@pytest.mark.parametrize("name", POLICY_REGISTRY)
def test_policy_module_contract(name):
    module = policy_module(name)
    _docstring_ok(module)
    assert module.NAME == name and "interval_s" in module.PARAMS
    assert callable(module.step)


@pytest.mark.parametrize("name", REGISTRY)
def test_unknown_mechanism_param_is_refused(name):
    allowed = ", ".join(mechanism_module(name).PARAMS) or "none"
    with pytest.raises(ValueError, match=r"mechanism_params\['bogus'\].*allowed keys: "
                       + allowed.replace("(", r"\(")):
        fphlib.SimConfig(mechanism=name, mechanism_params={"bogus": 1})


def test_registry_is_the_only_list():
    """Every built-in mechanism is registered and importable by name; MECHANISMS is the same
    live registry; positions are distinct."""
    assert fphlib.hinting.MECHANISMS is REGISTRY
    for name in fphlib.hinting.BUILTIN:
        assert name in REGISTRY and not REGISTRY.is_plugin(name)
        assert importlib.import_module(f"fphlib.hinting.{name}").NAME == name
    assert np.unique([REGISTRY.index(n) for n in REGISTRY]).size == len(REGISTRY)


def test_a_result_saved_before_the_seam_still_loads(tmp_path):
    """tests/data/result_v0.1.0 was saved by fphlib 0.1.0 (balloon, report_capacity=16,
    balloon_target): its config maps to the new fields and runs again."""
    import pathlib

    res = fphlib.SimResult.load(pathlib.Path(__file__).parent / "data" / "result_v0.1.0")
    cfg = res.config
    assert cfg.mechanism == "balloon" and cfg.policy == "static"
    assert cfg.mechanism_settings() == {"deflate_on_oom": True}
    assert cfg.policy_settings() == {"target": 96 << 20, "interval_s": 1.0}
    assert res.summary["reported_bytes"] == 64 << 20
    again = fphlib.simulate(cfg)
    assert again.summary["reported_bytes"] == res.summary["reported_bytes"]
    assert again.summary["lost_writes"] == 0


def test_older_field_and_new_parameter_cannot_disagree():
    with pytest.raises(ValueError, match=r"mechanism_params\['capacity'\].*report_capacity"):
        fphlib.SimConfig(mechanism="page_reporting", report_capacity=16,
                         mechanism_params={"capacity": 8})
    cfg = fphlib.SimConfig(mechanism="page_reporting", mechanism_params={"capacity": 8})
    assert cfg.mechanism_settings()["capacity"] == 8
    with pytest.raises(ValueError, match="power of 2"):
        fphlib.SimConfig(mechanism="page_reporting", mechanism_params={"capacity": 24})
    with pytest.raises(ValueError, match=r"policy_params\['interval_s'\].*0.001"):
        fphlib.SimConfig(policy_params={"interval_s": 0})


def _run_on_kept_arrays(cfg, links):
    """``simulate(cfg)`` on per-page arrays and a pool kept from an earlier run
    (fphlib.engine.build reuses them in place), whose links and pool slots hold
    ``links(n)`` and whose page states and flags hold garbage: what a run of the same size may
    leave behind."""
    from fphlib.engine import build

    build.release_page_arrays()
    sizes, _ = build.build_state(cfg, bind=False)
    n_pages, n_slots = len(sizes.nxt), len(sizes.pool)
    del sizes
    garbage = np.random.default_rng(1)
    state = garbage.integers(-128, 128, n_pages).astype(np.int8)
    flags = garbage.integers(0, 256, n_pages).astype(np.uint8)
    build._SPARE.append((links(n_pages), links(n_pages), state, flags, links(n_slots)))
    try:
        return fphlib.simulate(cfg)
    finally:
        build.release_page_arrays()


@pytest.mark.parametrize(("mech", "params"), VARIANTS, ids=IDS)
@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kw=small_configs())
def test_a_pages_links_before_it_enters_a_list_change_nothing(mech, params, kw,
                                                               tmp_path_factory):
    """A run may start on the links and pool slots an earlier run left (they are not cleared:
    a page's links are only read while it is on a list, a slot only after it was written):
    all -1 and random pages give the same results, frame for frame."""
    cfg = _config(kw, mech, params, tmp_path_factory)
    clean = _run_on_kept_arrays(cfg, lambda n: np.full(n, -1, np.int32))
    rng = np.random.default_rng(2)
    dirty = _run_on_kept_arrays(cfg, lambda n: rng.integers(-1, n, n).astype(np.int32))
    a, b = clean.summary.drop("wall_s"), dirty.summary.drop("wall_s")
    assert a.equals(b), (a[a != b], b[a != b])
    for frame in ("guests", "host", "events", "guest_summary"):
        assert getattr(clean, frame).equals(getattr(dirty, frame)), frame
