"""A real browser drives the quickstart served as an app by Voila.

Headless Chromium (Debian's ``chromium`` package; Playwright cannot download browsers here)
opens ``notebooks/00_quickstart.ipynb`` rendered by Voila on 127.0.0.1 with
``FPHLIB_PROFILE=smoke``, picks another mechanism, presses Run, and checks that the host RSS
plot and the summary table change. A screenshot is written to ``out/test_browser/``.

Needs: ``apt-get install -y chromium`` and ``pip install voila playwright``.
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from servers import free_port, stop_process_group

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def missing_requirements():
    missing = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} (Debian package chromium: apt-get install -y chromium)")
    for module, package in (("playwright", "playwright"), ("voila", "voila")):
        if importlib.util.find_spec(module) is None:
            missing.append(f"Python package {package} (pip install {package})")
    return missing


def wait_listening(port, proc, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"voila did not listen on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture
def voila_url(tmp_path):
    missing = missing_requirements()
    if missing:
        pytest.skip("browser test needs: " + "; ".join(missing))
    # compile (or load) every kernel first, so the browser waits measure the app, not numba
    subprocess.run([sys.executable, "-c", "import fphlib; fphlib.warmup()"], cwd=ROOT,
                   check=True, timeout=900)
    port = free_port()
    log = open(tmp_path / "voila.log", "wb")
    env = {**os.environ, "FPHLIB_PROFILE": "smoke", "JUPYTER_PLATFORM_DIRS": "1",
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", "notebooks/00_quickstart.ipynb", "--no-browser",
         f"--port={port}", "--Voila.ip=127.0.0.1", "--Voila.open_browser=False"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        # voila and its kernel run in their own session: end that process group only
        stop_process_group(proc)
        log.close()
        text = (tmp_path / "voila.log").read_text(errors="replace")
        if "Traceback" in text:
            print(text[-4000:])


def test_quickstart_app_reruns_in_a_real_browser(voila_url):
    from playwright.sync_api import sync_playwright

    shots = ROOT / "out" / "test_browser"
    shots.mkdir(parents=True, exist_ok=True)
    user_data = tempfile.mkdtemp(prefix="fphlib-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                user_data, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 1400},
            )
            try:
                page = ctx.new_page()
                page.set_default_timeout(180_000)
                page.goto(voila_url)
                # the notebook runs once on load: the table appears when that run finished
                table = page.locator("table.fphlib-summary")
                table.wait_for()
                before_table = table.inner_text()
                assert "page_reporting (order 9)" in before_table and "none" in before_table
                rss_img = page.locator(".fphlib-app img").first
                before_src = rss_img.get_attribute("src")
                assert before_src and before_src.startswith("blob:")
                page.screenshot(path=str(shots / "quickstart_loaded.png"))

                mechanism = page.locator("select", has=page.locator("option[value='balloon']"))
                mechanism.select_option("balloon")
                page.get_by_role("button", name="Run").click()
                # (a smoke run takes a fraction of a second, too short to catch the per-run
                # tqdm bar reliably; the app's run counter below proves the run went through)
                page.wait_for_function(
                    "() => { const t = document.querySelector('table.fphlib-summary');"
                    " return t && t.innerText.includes('balloon'); }"
                )
                page.wait_for_function(
                    "(old) => { const i = document.querySelector('.fphlib-app img');"
                    " return i && i.src !== old; }",
                    arg=before_src,
                )
                after_table = table.inner_text()
                assert "balloon" in after_table and "page_reporting" not in after_table
                assert "host_rss_peak_bytes" in after_table
                page.get_by_text("done: 2 run(s)").wait_for()
                assert "sim" not in page.locator(".fphlib-app .widget-output").inner_text()
                assert rss_img.evaluate("i => i.naturalWidth") > 300  # a real rendered PNG
                shot = shots / "quickstart_after_run.png"
                page.screenshot(path=str(shot))
                print(f"screenshot: {shot}")
            finally:
                ctx.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)


def test_missing_requirements_are_named(monkeypatch):
    import test_browser

    monkeypatch.setattr(test_browser, "CHROMIUM", "/nonexistent/chromium")
    missing = test_browser.missing_requirements()
    assert missing[0] == ("/nonexistent/chromium (Debian package chromium: "
                          "apt-get install -y chromium)")
