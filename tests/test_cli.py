"""``python -m fphlib``: config files and flags, errors, saved results, demo, trace."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fphlib
from fphlib import cli
from fphlib.api.config import SimConfig
from fphlib.workloads.trace_file import load_trace

ROOT = Path(__file__).resolve().parent.parent


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def run_main(capsys, *argv):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


SMALL = dict(host_mem="512MiB", guests=2, guest_mem="64MiB", workload="memhog",
             workload_params={"size": "32MiB", "boot": "8MiB"}, mechanism="page_reporting",
             duration_s=6.0, sample_s=0.5, seed=3)


def test_every_simconfig_field_has_a_documented_flag():
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["simulate"].format_help()
    for f in dataclasses.fields(SimConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in help_text, f"no flag for SimConfig.{f.name}"
        assert f.name in cli.FIELD_HELP, f"SimConfig.{f.name} has no help text in cli.FIELD_HELP"
    assert help_text.count("(default:") >= len(dataclasses.fields(SimConfig))
    # allowed values are listed
    from fphlib.hinting import REGISTRY

    flat = " ".join(help_text.split())
    assert "{" + ",".join(REGISTRY) + "}" in flat.replace(", ", ",")
    for w in ("idle", "memhog", "churn", "trace"):
        assert w in help_text
    # workload parameters with their defaults
    assert "memhog: size: size a size such as '4GiB', default '1GiB'" in flat


def test_flags_override_file_toml(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(
        'host_mem = "8GiB"\nguests = 2\nguest_mem = "1GiB"\nworkload = "memhog"\n'
        'mechanism = "balloon"\nballoon_target = "768MiB"\n'
        '[workload_params]\nsize = "512MiB"\nhold_s = 3\n'
        '[costs]\nvmexit = 2e-6\n'
        '[[guest_overrides]]\nstart_s = 0\n[[guest_overrides]]\nstart_s = 5\n'
    )
    args = parse("simulate", "--config", str(toml), "--guests", "3", "--mechanism",
                 "page_reporting", "--param", "size=256MiB", "--cost", "kick_wakeup=5e-6",
                 "--no-host-thp")
    cfg = cli.config_from_args(args)
    assert cfg.guests == 3 and cfg.mechanism == "page_reporting"  # flags win
    assert cfg.host_mem == 8 << 30 and cfg.guest_mem == 1 << 30  # file kept
    assert cfg.balloon_target == 768 << 20
    # dict fields merge key by key: the file's hold_s stays, the flag's size wins
    assert cfg.workload_params["size"] == 256 << 20 and cfg.workload_params["hold_s"] == 3.0
    assert cfg.costs["vmexit"] == 2e-6 and cfg.costs["kick_wakeup"] == 5e-6
    assert cfg.host_thp is False
    assert [o.get("start_s") for o in cfg.guest_overrides] == [0.0, 5.0]


def test_json_file_and_defaults(tmp_path):
    js = tmp_path / "run.json"
    js.write_text(json.dumps({"guests": 2, "seed": 9}))
    cfg = cli.config_from_args(parse("simulate", "--config", str(js)))
    want = SimConfig(guests=2, seed=9)
    assert cfg == want
    # no file, no flags: SimConfig's defaults
    assert cli.config_from_args(parse("simulate")) == SimConfig()
    # a saved config.json (SimConfig.to_dict) is a valid config file
    js.write_text(json.dumps(SimConfig(**SMALL).to_dict()))
    assert cli.config_from_args(parse("simulate", "--config", str(js))) == SimConfig(**SMALL)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--guests", "two"], r"argument --guests: invalid int value: 'two'"),
        (["--mechanism", "magic"], r"argument --mechanism: invalid choice: 'magic'"),
        (["--workload-params", "{size: 1}"], r"argument --workload-params: not valid JSON"),
        (["--workload-params", "[1]"], r"argument --workload-params: expected a JSON object"),
        (["--param", "size"], r"argument --param: expected KEY=VALUE, got 'size'"),
        (["--guest-mem", "5MiB"], r"guest_mem: '5MiB' is not allowed; guest memory must be a "
                                  r"positive whole number of order-10 blocks"),
        (["--hint-order", "11"], r"hint_order: 11 is not allowed"),
        (["--workload", "memhog", "--param", "speed=2"],
         r"workload_params\['speed'\]: 2 is not allowed; unknown parameter for workload "
         r"'memhog'"),
        (["--host-mem", "lots"], r"host_mem: 'lots' is not a size"),
    ],
)
def test_bad_flags_give_clear_errors(capsys, argv, match):
    code, out, err = run_main(capsys, "simulate", *argv)
    assert code == 2 and out == ""
    # one line naming the flag or field, then where to look
    assert err.startswith("python -m fphlib simulate: error: ") and err.count("\n") == 1
    assert err.rstrip().endswith("(see --help)")
    import re

    assert re.search(match, err), err


@pytest.mark.parametrize(
    "content, suffix, match",
    [
        ("guests = [", ".toml", r"not valid TOML"),
        ("{guests: 2}", ".json", r"not valid JSON"),
        ("[1, 2]", ".json", r"the top level must be an object/table"),
        ('{"gusts": 2}', ".json", r"gusts: 2 is not allowed; unknown SimConfig field"),
        ("guests = 2", ".yaml", r"unknown suffix '.yaml'; use .json or .toml"),
    ],
)
def test_bad_config_files(tmp_path, capsys, content, suffix, match):
    path = tmp_path / ("cfg" + suffix)
    path.write_text(content)
    code, _, err = run_main(capsys, "simulate", "--config", str(path))
    assert code == 2
    import re

    assert re.search(match, err), err


def test_bad_trace_file_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_text("nope")
    code, out, err = run_main(capsys, "simulate", "--guest-mem", "64MiB", "--host-mem",
                              "256MiB", "--workload", "trace", "--param", f"path={bad}",
                              "--param", "boot=8MiB", "--duration-s", "1")
    assert code == 2 and out == ""
    assert f"error: {bad}: not a trace file" in err and "Traceback" not in err


def test_missing_config_file(tmp_path, capsys):
    code, _, err = run_main(capsys, "simulate", "--config", str(tmp_path / "nope.toml"))
    assert code == 2 and "cannot read (No such file or directory)" in err


def test_simulate_round_trip(tmp_path, capsys):
    toml = tmp_path / "small.toml"
    toml.write_text(
        'host_mem = "512MiB"\nguests = 2\nguest_mem = "64MiB"\nworkload = "memhog"\n'
        'mechanism = "none"\nduration_s = 6.0\nsample_s = 0.5\nseed = 3\n'
        '[workload_params]\nsize = "32MiB"\nboot = "8MiB"\n'
    )
    out_dir = tmp_path / "res"
    code, out, err = run_main(capsys, "simulate", "--config", str(toml), "--mechanism",
                              "page_reporting", "--out", str(out_dir))
    assert code == 0, err
    assert f"results written to {out_dir}" in out
    loaded = fphlib.SimResult.load(out_dir)
    cfg = SimConfig(**SMALL)
    assert loaded.config == cfg
    direct = fphlib.simulate(cfg)
    pd.testing.assert_frame_equal(loaded.host, direct.host, check_dtype=False)
    pd.testing.assert_frame_equal(loaded.guests, direct.guests, check_dtype=False)
    for metric in ("host_rss_peak_bytes", "reported_bytes", "reports", "refault_pages"):
        assert loaded.summary[metric] == direct.summary[metric]
    # the printed table is readable(): labels and the run's peak RSS in GiB/MiB
    from fphlib.viz.plots import metric_info
    from fphlib.viz.tables import format_value

    assert metric_info("host_rss_peak_bytes").label in out
    assert format_value(direct.summary["host_rss_peak_bytes"], "bytes") in out


def test_demo_smoke_writes_figure_and_tables(tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, err = run_main(capsys, "demo", "--profile", "smoke", "--out", str(out_dir),
                              "--no-progress")
    assert code == 0, err
    png = (out_dir / "demo_host_rss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    table = pd.read_csv(out_dir / "demo_summary.csv", index_col="metric")
    assert list(table.columns) == ["none", "balloon", "page_reporting"]
    assert "host_rss_peak_bytes" in table.index and "lost_writes" in table.index
    md = (out_dir / "demo_summary.md").read_text()
    assert md.startswith("# fphlib demo (smoke profile)")
    assert "| none | balloon | page_reporting |" in md and "| host RSS, peak |" in md
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "demo_host_rss.png", "demo_summary.csv", "demo_summary.md"]
    # the headline claim, at smoke size: hinting ends with less host memory than none
    final = table.loc["host_rss_final_bytes"]
    assert final["page_reporting"] < final["none"] and final["balloon"] < final["none"]
    assert table.loc["reported_bytes", "none"] == 0
    assert table.loc["lost_writes"].eq(0).all()


def test_trace_generate_and_check(tmp_path, capsys):
    path = tmp_path / "churn.npz"
    code, out, err = run_main(capsys, "trace", "--ops", "5000", "--seed", "4", "--guest-mem",
                              "64MiB", "--ops-per-s", "1000", "--out", str(path))
    assert code == 0, err
    tr = load_trace(path)
    assert len(tr.kind) == 5000
    with np.load(path) as npz:
        assert int(npz["n_pages"]) == (64 << 20) // 4096
    assert 4.0 < tr.t_us[-1] / 1e6 < 6.0  # 5000 ops at 1000/s
    code, out, _ = run_main(capsys, "trace", "--check", str(path))
    assert code == 0 and "valid trace, 5000 ops" in out
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    code, out, err = run_main(capsys, "trace", "--check", str(bad))
    assert code == 1 and "not a trace file" in err
    code, _, err = run_main(capsys, "trace", "--ops", "0", "--out", str(tmp_path / "z.npz"))
    assert code == 2 and "--ops: 0 is not allowed" in err
    code, _, err = run_main(capsys, "trace")
    assert code == 2 and "give --out PATH" in err


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "fphlib", "--help"], capture_output=True,
                         text=True, cwd=ROOT, check=True)
    for cmd in ("simulate", "demo", "trace"):
        assert cmd in out.stdout
    out = subprocess.run([sys.executable, "-m", "fphlib", "frobnicate"], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 2 and "invalid choice: 'frobnicate'" in out.stderr


def test_generated_trace_drives_the_engine(tmp_path, capsys):
    path = tmp_path / "t.npz"
    code, _, err = run_main(capsys, "trace", "--ops", "4000", "--guest-mem", "128MiB",
                            "--ops-per-s", "1000", "--occupancy", "0.5", "--out", str(path))
    assert code == 0, err
    span_s = load_trace(path).t_us[-1] / 1e6
    cfg = SimConfig(host_mem="512MiB", guests=1, guest_mem="128MiB", workload="trace",
                    workload_params={"path": str(path), "boot": "8MiB"}, duration_s=8.0)
    res = fphlib.simulate(cfg)
    # the trace fits the guest it was made for, and replays over its own time span
    assert res.summary["alloc_failures"] == 0
    assert res.summary["workload_runtime_s"] == pytest.approx(span_s, abs=0.1)
    assert res.guests["used_bytes"].max() > 16 << 20
