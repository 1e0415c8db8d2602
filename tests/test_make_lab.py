"""`make lab` (a README command) warms the numba cache, then starts JupyterLab on notebooks/
with both notebooks there."""

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from servers import free_port, stop_process_group

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make (Debian package make)")
def test_make_lab_serves_the_notebooks(tmp_path):
    port = free_port()
    token = "fphlib-test"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_PLATFORM_DIRS": "1"}
    log_path = tmp_path / "lab.log"
    log = open(log_path, "wb")  # a file, not a pipe: a full pipe would stall the server
    proc = subprocess.Popen(
        ["make", "lab", f"PORT={port}",
         f"LAB_ARGS=--no-browser --ip=127.0.0.1 --ServerApp.token={token}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 900  # make lab compiles the kernels first when cold
        listing = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/api/contents?token={token}"
                with urllib.request.urlopen(url, timeout=2) as r:
                    listing = json.load(r)
                break
            except OSError:
                time.sleep(0.5)
        if listing is None:
            out = log_path.read_text(errors="replace")
            pytest.fail(f"make lab did not serve JupyterLab on port {port}:\n{out[-3000:]}")
        out = log_path.read_text(errors="replace")
        assert "fphlib: simulator already compiled" in out or "fphlib: ready in" in out, out
        names = {item["name"] for item in listing["content"]}
        assert {"00_quickstart.ipynb", "01_buddy_and_xbitmap.ipynb"} <= names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}") as r:
            assert r.status == 200
            assert b"JupyterLab" in r.read()
    finally:
        stop_process_group(proc)
        log.close()
