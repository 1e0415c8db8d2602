"""Binder and conda files agree with pyproject.toml; the Binder scripts do what Binder needs."""

import os
import re
import stat
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def load_yaml(path):
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirements(lines):
    """{canonical name: specifier string} (extras folded into the name)."""
    out = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if req.extras:
            name += "[" + ",".join(sorted(req.extras)) + "]"
        out[name] = str(req.specifier)
    return out


def split_env(env):
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep["pip"])
        else:
            conda.append(dep)
    return conda, pip


def test_binder_env_matches_pyproject_runtime_and_notebook_deps():
    proj = pyproject()["project"]
    want = requirements(proj["dependencies"] + proj["optional-dependencies"]["notebooks"])
    conda, pip = split_env(load_yaml("binder/environment.yml"))
    got = requirements(pip)
    missing = {k: v for k, v in want.items() if k not in got}
    extra = {k: v for k, v in got.items() if k not in want}
    assert not missing, f"binder/environment.yml lacks {missing} (pyproject.toml has them)"
    assert not extra, f"binder/environment.yml has {extra}, which pyproject.toml does not list"
    differ = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert not differ, f"version bounds differ (binder, pyproject): {differ}"
    assert not any(p.startswith(("-e", ".", "/")) or "file:" in p for p in pip), (
        "no local pip references in binder/environment.yml: they disable repo2docker's "
        "environment pre-assembly; postBuild installs fphlib"
    )


def python_pin(conda):
    pins = [d for d in conda if re.match(r"^python\s*[=<>]", d)]
    assert len(pins) == 1, f"exactly one python pin expected, got {pins}"
    return pins[0].split("=", 1)[1].lstrip("=")


def test_python_pins_agree_and_satisfy_requires_python():
    from packaging.specifiers import SpecifierSet

    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    pins = []
    for path in ("binder/environment.yml", "environment.yml"):
        conda, _ = split_env(load_yaml(path))
        pin = python_pin(conda)
        assert pin == "3.11", f"{path}: python={pin}; the project targets 3.11"
        assert requires.contains(pin + ".0"), f"{path}: python {pin} violates {requires}"
        assert "pip" in conda, f"{path}: needs pip in the conda dependencies"
        pins.append(pin)
    assert pins[0] == pins[1]


def test_root_env_installs_the_package_with_notebook_extra():
    conda, pip = split_env(load_yaml("environment.yml"))
    editable = [p for p in pip if p.startswith("-e")]
    assert editable, "environment.yml must install fphlib itself (pip: -e .[notebooks])"
    target = editable[0][2:].strip()
    assert re.fullmatch(r"\.\[([\w,]+)\]", target), target
    extras = set(re.fullmatch(r"\.\[([\w,]+)\]", target).group(1).split(","))
    assert "notebooks" in extras
    assert set(pyproject()["project"]["optional-dependencies"]) >= extras


def script(path):
    p = ROOT / path
    assert p.exists(), f"{path} is missing"
    assert p.stat().st_mode & stat.S_IXUSR, f"{path} must be executable (chmod +x)"
    return p.read_text(encoding="utf-8")


def code_lines(text):
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(
        "#")]


def test_postbuild_installs_package_and_warms_cache():
    text = script("binder/postBuild")
    assert text.startswith("#!/bin/bash\n")
    lines = code_lines(text)
    assert lines[0] == "set -e", "set -e must come first, or a failed step does not fail the build"
    assert "pip install --no-deps -e ." in lines
    warm = [ln for ln in lines if "warmup()" in ln]
    assert warm and "NUMBA_CPU_NAME=generic" in warm[0]


def test_start_caps_threads_sets_profile_and_execs():
    text = script("binder/start")
    assert text.startswith("#!/bin/bash\n")
    lines = code_lines(text)
    assert lines[-1] == 'exec "$@"'
    env = dict(re.findall(r'^export (\w+)=(.*)$', "\n".join(lines), re.M))
    assert env["NUMBA_CPU_NAME"] == "generic"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        assert int(env[var]) <= 2, f"{var} must be capped on Binder"
    assert "demo" in env["FPHLIB_PROFILE"]


def test_start_script_runs_the_command_with_its_environment(tmp_path):
    import subprocess

    out = subprocess.run(
        ["bash", str(ROOT / "binder/start"), "bash", "-c",
         'echo "$NUMBA_CPU_NAME $FPHLIB_PROFILE $OMP_NUM_THREADS"'],
        capture_output=True, text=True, check=True,
        env={**{k: v for k, v in os.environ.items() if k != "FPHLIB_PROFILE"}},
    )
    assert out.stdout.split() == ["generic", "demo", "1"]


def test_only_binder_folder_is_used_by_binder():
    # repo2docker refuses a repo with both binder/ and .binder/, and ignores root files when
    # binder/ exists; root-level postBuild/start would silently never run.
    assert not (ROOT / ".binder").exists()
    for name in ("postBuild", "start", "apt.txt", "requirements.txt", "runtime.txt"):
        assert not (ROOT / name).exists(), f"root {name} is ignored by Binder; use binder/"


@pytest.mark.parametrize("path", ["binder/environment.yml", "environment.yml"])
def test_channels(path):
    assert load_yaml(path)["channels"] == ["conda-forge"]


def test_repo2docker_dry_run_builds_from_binder_folder():
    # `repo2docker --no-build` needs no container engine and no network: it only writes the
    # Dockerfile it would build, which shows what Binder will do with these files.
    pytest.importorskip(
        "repo2docker", reason="jupyter-repo2docker is not installed (pip install "
        "jupyter-repo2docker; it belongs in the [test] extra)")
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "repo2docker", "--no-build", "--debug", str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stdout + out.stderr
    assert "Building conda environment for python=3.11" in log
    env_step = log.find('--file "binder/environment.yml"')
    copy_src = log.find("COPY --chown=0:0 src/ ${REPO_DIR}/")
    # the environment is built from binder/environment.yml alone, before the repository is
    # copied in: commits that do not touch it reuse the cached environment layer
    assert 0 <= env_step < copy_src, "environment not pre-assembled"
    assert "RUN ./binder/postBuild" in log[copy_src:]
    assert 'R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in log


def test_voila_leaves_out_developer_cells(tmp_path):
    """binder/voila.json drops cells tagged "developer"; binder/start puts it on Voila's path."""
    import json
    import subprocess

    conf = json.loads((ROOT / "binder" / "voila.json").read_text())
    assert conf["TagRemovePreprocessor"]["remove_cell_tags"] == ["developer"]
    out = subprocess.run(
        ["bash", str(ROOT / "binder/start"), "bash", "-c", 'echo "$JUPYTER_CONFIG_PATH"'],
        capture_output=True, text=True, check=True, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_PATH"},
    )
    assert out.stdout.strip() == str(ROOT / "binder")
