"""SimConfig: defaults, canonical sizes, JSON round trip, and every validation error."""

import dataclasses
import json
import warnings

import pytest

from fphlib import SimConfig


def test_sizes_are_canonical_ints_and_json_round_trips():
    cfg = SimConfig(
        host_mem="16GiB",
        guests=3,
        guest_mem="5GiB",
        workload="memhog",
        workload_params={"size": "4GiB", "rate": "2GiB"},
        mechanism="page_reporting",
        costs={"vmexit": 2e-6},
        guest_overrides=[{"start_s": 3}, {"mem": "4GiB", "workload": "idle"}],
        balloon_target="1GiB",
    )
    assert cfg.host_mem == 16 << 30 and cfg.guest_mem == 5 << 30
    assert cfg.workload_params == {"size": 4 << 30, "rate": 2 << 30}
    assert cfg.balloon_target == 1 << 30
    back = SimConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert SimConfig.from_json(cfg.to_json()) == cfg
    assert cfg.guest_spec(1)["mem"] == 4 << 30 and cfg.guest_spec(1)["workload"] == "idle"
    assert cfg.guest_spec(2)["mem"] == 5 << 30 and cfg.guest_spec(0)["start_s"] == 3.0


def test_churn_orders_round_trip_through_json_string_keys():
    cfg = SimConfig(workload="churn", workload_params={"orders": {0: 3, 9: 1}, "target": 0.4})
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["workload_params"]["orders"] == {"0": 3.0, "9": 1.0}
    assert SimConfig.from_dict(d) == cfg


def test_replace_revalidates():
    cfg = SimConfig()
    assert dataclasses.replace(cfg, guests=4).guests == 4
    with pytest.raises(ValueError, match="guests"):
        dataclasses.replace(cfg, guests=0)


def test_frozen():
    cfg = SimConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.guests = 2


BAD = [
    ({"guest_mem": "5000KiB"}, r"guest_mem: '5000KiB'.*4 MiB"),
    ({"guest_mem": "6MiB"}, r"guest_mem.*order-10 blocks"),
    ({"guest_mem": 0}, r"guest_mem"),
    ({"guest_mem": "lots"}, r"guest_mem: 'lots' is not a size"),
    ({"host_mem": 0}, r"host_mem: 0"),
    ({"host_swap": -1}, r"host_swap: -1 is negative"),
    ({"host_thp": "yes"}, r"host_thp: 'yes'.*True or False"),
    ({"debug": 1}, r"debug: 1.*True or False"),
    ({"guests": 0}, r"guests: 0.*>= 1"),
    ({"guests": 2.5}, r"guests: 2.5.*integer"),
    ({"guests": 300}, r"guests: 300.*<= 256"),
    ({"vcpus": 0}, r"vcpus: 0"),
    ({"workload": "bake"}, r"workload: 'bake'.*idle, memhog, churn, trace"),
    ({"mechanism": "magic"}, r"mechanism: 'magic'.*none, page_reporting, balloon"),
    ({"hint_order": 11}, r"hint_order: 11.*<= 10"),
    ({"hint_order": -1}, r"hint_order: -1.*>= 0"),
    ({"report_capacity": 24}, r"report_capacity: 24.*power of 2"),
    ({"report_capacity": 0}, r"report_capacity: 0"),
    ({"report_delay_s": 0}, r"report_delay_s: 0"),
    ({"costs": {"warp": 1}}, r"costs: unknown cost 'warp'; known costs: vmexit"),
    ({"costs": {"vmexit": -1}}, r"costs\['vmexit'\]: -1"),
    ({"costs": {"vmexit": float("nan")}}, r"costs\['vmexit'\]"),
    ({"costs": [1]}, r"costs: \[1\]"),
    ({"duration_s": 0}, r"duration_s: 0"),
    ({"duration_s": 10, "sample_s": 20}, r"sample_s: 20.*<= duration_s"),
    ({"sample_s": 0}, r"sample_s: 0"),
    ({"guests": 256, "duration_s": 86400, "sample_s": 0.01}, r"sample_s: 0.01.*GiB"),
    ({"seed": -1}, r"seed: -1"),
    ({"workload_params": {"size": "1GiB"}},
     r"workload_params\['size'\].*known: boot, boot_cache, boot_slab, start_s, io_rate"),
    ({"workload": "memhog", "workload_params": {"size": "x"}}, r"workload_params\['size'\]"),
    ({"workload": "memhog", "workload_params": {"repeat": 0}}, r"workload_params\['repeat'\]"),
    ({"workload": "memhog", "workload_params": {"order": 11}}, r"workload_params\['order'\]"),
    ({"workload": "churn", "workload_params": {"target": 0.99}}, r"\['target'\]: 0.99"),
    ({"workload": "churn", "workload_params": {"orders": {12: 1}}}, r"order 12"),
    ({"workload": "churn", "workload_params": {"orders": {0: 0}}}, r"must not all be zero"),
    ({"workload": "churn", "workload_params": {"ops_per_s": 0}}, r"ops_per_s"),
    ({"workload": "trace"}, r"workload_params\['path'\].*needs"),
    ({"workload_params": [1]}, r"workload_params: \[1\].*dict"),
    ({"guest_overrides": [{}, {}]}, r"guest_overrides.*at most one entry per guest"),
    ({"guests": 2, "guest_overrides": [{"cpu": 1}]}, r"guest_overrides\[0\]\['cpu'\].*mem"),
    ({"guests": 2, "guest_overrides": [{}, {"mem": "3MiB"}]}, r"guest_overrides\[1\]\['mem'\]"),
    ({"guests": 2, "guest_overrides": [{"workload": "x"}]}, r"guest_overrides\[0\]\['workload'\]"),
    ({"guests": 2, "guest_overrides": [{"start_s": 99}]}, r"\['start_s'\]: 99"),
    ({"guest_overrides": {"mem": 1}}, r"guest_overrides.*list"),
    ({"balloon_target": "many"}, r"balloon_target: 'many'"),
    ({"balloon_interval_s": 0}, r"balloon_interval_s: 0"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_every_bad_field_names_field_value_and_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimConfig(**kwargs)


def test_from_dict_rejects_unknown_keys_and_non_dicts():
    with pytest.raises(ValueError, match="colour.*unknown SimConfig field"):
        SimConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="config"):
        SimConfig.from_dict([1, 2])


def test_guest_larger_than_host_ram_plus_swap_is_allowed_but_warned():
    with pytest.warns(UserWarning, match="guest 0: guest_mem 8 GiB is larger than host RAM"):
        cfg = SimConfig(host_mem="4GiB", host_swap="2GiB", guest_mem="8GiB")
    assert cfg.guest_mem == 8 << 30
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SimConfig(host_mem="4GiB", host_swap="4GiB", guest_mem="8GiB")


def test_equal_configs_hash_equal():
    a = SimConfig(workload="memhog", workload_params={"size": "1GiB"})
    b = SimConfig(workload="memhog", workload_params={"size": 1 << 30})
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert hash(a) != hash(SimConfig(workload="memhog", workload_params={"size": "2GiB"}))


def test_scenario_problems_rule():
    from fphlib.api.config import scenario_problems

    assert scenario_problems(SimConfig()) == []
    assert SimConfig(host_mem="16GiB", guests=3, guest_mem="5GiB").problems() == []
    with pytest.warns(UserWarning):
        big = SimConfig(host_mem="512MiB", guests=6, guest_mem="16GiB")
    problems = scenario_problems(big)
    assert problems[0].startswith("guests 0-5: guest_mem 16 GiB is larger than host RAM + "
                                  "swap (512 MiB)")
    assert "boot footprints" in problems[1]
    # rule 2 alone: every guest fits, their boot footprints together do not
    boot = SimConfig(host_mem="1GiB", guests=6, guest_mem="512MiB")
    assert len(boot.problems()) == 1 and "OOM-killed while booting" in boot.problems()[0]
    # swap counts, and smaller boot footprints fit
    assert SimConfig(host_mem="1GiB", host_swap="2GiB", guests=6,
                     guest_mem="512MiB").problems() == []
    assert SimConfig(host_mem="1GiB", guests=6, guest_mem="512MiB",
                     workload_params={"boot": "64MiB"}).problems() == []
