"""Run a script in a fresh Python with its own empty numba cache (compile tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_fresh(tmp_path, script, *argv, env=None):
    """Run ``script`` with ``argv`` in a new interpreter whose imports see ``tmp_path`` (where a
    test writes its kernels module) and fphlib, and whose numba cache is ``tmp_path/cache``;
    return the JSON the script printed last."""
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}",
               NUMBA_CACHE_DIR=str(tmp_path / "cache"), **(env or {}))
    out = subprocess.run([sys.executable, "-c", script, *argv], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
