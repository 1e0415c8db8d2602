"""A real browser drives the notebooks served as apps by Voila.

Headless Chromium (Debian's ``chromium`` package; Playwright cannot download browsers here)
opens the notebooks rendered by Voila on 127.0.0.1 with ``FPHLIB_PROFILE=smoke`` and the
Voila configuration of ``binder/`` (cells tagged ``developer`` left out), at 1280 px wide:

- the quickstart: change the host memory and the mechanism, press Run, and check that the
  plots, their titles and the readable summary table name the new scenario;
- notebook 01: every widget fits in the page (nothing clipped, no label cut short);
- every notebook (:data:`WALK`): loads without a console error (the jupytext lab extension,
  which fails in Voila, is denied in ``binder/voila.json``) and nothing clipped; in each app
  one control changed shows the stale banner, Run (or the redraw) brings it up to date.

Screenshots are written to ``out/test_browser/`` (:data:`SHOTS`): ``quickstart_loaded.png``,
``quickstart_after_run.png``, ``notebook01.png``, and for every notebook ``NAME_loaded.png``
(as it opens), ``NAME_stale.png`` (a control changed: the banner over the old results) and
``NAME_after_change.png`` (after Run).

Needs: ``apt-get install -y chromium`` and ``pip install voila playwright``.
"""

import importlib.util
import os
import re
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
SHOTS = ROOT / "out" / "test_browser"
WIDTH = 1280
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


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory):
    """Voila serving ``notebooks/`` (URL of its root; notebooks at ``voila/render/NAME``)."""
    missing = missing_requirements()
    if missing:
        pytest.skip("browser test needs: " + "; ".join(missing))
    tmp_path = tmp_path_factory.mktemp("voila")
    # compile (or load) every kernel first, so the browser waits measure the app, not numba
    subprocess.run([sys.executable, "-c", "import fphlib; fphlib.warmup()"], cwd=ROOT,
                   check=True, timeout=900)
    port = free_port()
    log = open(tmp_path / "voila.log", "wb")
    env = {**os.environ, "FPHLIB_PROFILE": "smoke", "JUPYTER_PLATFORM_DIRS": "1",
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           # binder/voila.json: the Voila configuration Binder uses (binder/start)
           "JUPYTER_CONFIG_PATH": str(ROOT / "binder")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", "notebooks", "--no-browser",
         f"--port={port}", "--Voila.ip=127.0.0.1", "--Voila.open_browser=False"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}/voila/render/"
    finally:
        # voila and its kernel run in their own session: end that process group only
        stop_process_group(proc)
        log.close()
        text = (tmp_path / "voila.log").read_text(errors="replace")
        if "Traceback" in text:
            print(text[-4000:])


@pytest.fixture(scope="module")
def browser_page():
    """A function opening a new page (1280 px wide) of one headless Chromium."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    user_data = tempfile.mkdtemp(prefix="fphlib-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                user_data, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": WIDTH, "height": 1400},
            )
            try:
                def new_page():
                    page = ctx.new_page()
                    page.set_default_timeout(180_000)
                    return page

                yield new_page
            finally:
                ctx.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)


def test_quickstart_app_reruns_in_a_real_browser(voila_url, browser_page):
    page = browser_page()
    page.goto(voila_url + "00_quickstart.ipynb")
    # the notebook runs once on load: the table appears when that run finished
    table = page.locator("table.fphlib-summary")
    table.wait_for()
    before_table = table.inner_text()
    assert "page_reporting (order 9)" in before_table and "none" in before_table
    rss_img = page.locator(".fphlib-app img").first
    before_src = rss_img.get_attribute("src")
    assert before_src and before_src.startswith("blob:")
    old_scenario = "3 × 256 MiB guests on a 1 GiB host"  # the smoke preset
    assert all(old_scenario in t for t in png_titles(page))
    # developer cells (tag "developer") are not part of the app
    assert "The same from Python" not in page.content()
    screenshot(page, SHOTS / "quickstart_loaded.png")

    # host memory 1 GiB -> 2 GiB: four steps of 256 MiB on the slider, from the keyboard
    handle = page.locator(".widget-slider", has_text="host memory").locator(".noUi-handle")
    handle.focus()
    for _ in range(4):
        handle.press("ArrowRight")
    new_scenario = "3 × 256 MiB guests on a 2 GiB host"
    page.get_by_text(new_scenario).first.wait_for()  # the line above Run says it first
    mechanism = page.locator("select", has=page.locator("option[value='balloon']"))
    mechanism.select_option("balloon")
    # the balloon takes no hint order: the slider is disabled with a note
    page.get_by_text("balloon does not use the hint order").wait_for()
    page.get_by_role("button", name="Run").click()
    # the new table: its header names balloon and no longer page_reporting (a metric label,
    # "report requests / balloon messages", has the word in the old table too, and the status
    # "done: 2 run(s)" was already there from the first run: neither may be waited on alone)
    page.wait_for_function(
        "() => { const t = document.querySelector('table.fphlib-summary');"
        " return t && t.innerText.split('\\n')[0].includes('balloon')"
        " && !t.innerText.includes('page_reporting'); }"
    )
    page.wait_for_function(
        "(old) => { const i = document.querySelector('.fphlib-app img');"
        " return i && i.src !== old; }",
        arg=before_src,
    )
    page.get_by_text("done: 2 run(s)").wait_for()
    after_table = table.inner_text()
    assert "balloon" in after_table and "page_reporting" not in after_table
    # readable: labels with units, no raw metric names, the change against none
    assert "host RSS, peak" in after_table and "host_rss_peak_bytes" not in after_table
    assert "vs none" in after_table and " MiB" in after_table  # smoke sizes
    summary = page.locator(".fphlib-app").inner_text()
    assert f"Summary: {new_scenario}" in summary
    assert "vs none: balloon minus none" in summary  # the footnotes
    # the figure titles (stored in the PNGs' Title chunks as drawn) name the new scenario
    titles = png_titles(page)
    assert len(titles) == 2 and all(new_scenario in t for t in titles), titles
    assert "sim" not in page.locator(".fphlib-app .widget-output").inner_text()
    assert rss_img.evaluate("i => i.naturalWidth") > 300  # a real rendered PNG
    screenshot(page, SHOTS / "quickstart_after_run.png")


PNG_TITLES_JS = """async () => {
  const out = [];
  for (const img of document.querySelectorAll('.fphlib-app img')) {
    const b = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    const dv = new DataView(b.buffer);
    let pos = 8, title = '';
    while (pos + 8 <= b.length) {  // PNG chunks: length, type, data, CRC
      const len = dv.getUint32(pos);
      const type = String.fromCharCode(...b.slice(pos + 4, pos + 8));
      if (type === 'tEXt') {
        const data = b.slice(pos + 8, pos + 8 + len);
        const z = data.indexOf(0);
        const latin1 = new TextDecoder('latin1');
        if (latin1.decode(data.slice(0, z)) === 'Title') title = latin1.decode(data.slice(z + 1));
      }
      if (type === 'IEND') break;
      pos += 12 + len;
    }
    out.push(title);
  }
  return out;
}"""


def screenshot(page, path):
    """Screenshot of the whole app (Voila scrolls inside the page: grow the viewport first)."""
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": WIDTH, "height": min(int(height) + 40, 16000)})
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": WIDTH, "height": 1400})
    print(f"screenshot: {path}")


def png_titles(page):
    """The Title text chunk of each plot of the app (the figure's title as drawn)."""
    return page.evaluate(PNG_TITLES_JS)


CLIPPED_JS = """(width) => {
  const out = [];
  for (const el of document.querySelectorAll('.jupyter-widgets, .widget-label, img')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;  // hidden (e.g. an empty output)
    const name = (el.innerText || el.title || el.className).toString().slice(0, 40);
    if (r.left < -1 || r.right > width + 1) out.push(`outside the page: ${name} ${r.right}`);
    if (el.classList.contains('widget-label') && el.scrollWidth > el.clientWidth + 1)
      out.push(`label cut short: ${name}`);
  }
  if (document.documentElement.scrollWidth > width + 1)
    out.push(`page scrolls sideways: ${document.documentElement.scrollWidth}`);
  return out;
}"""


def test_notebook_01_renders_without_clipped_widgets(voila_url, browser_page):
    page = browser_page()
    page.goto(voila_url + "01_buddy_and_xbitmap.ipynb")
    page.locator(".fphlib-tour img").first.wait_for()
    page.locator("table.fphlib-table").last.wait_for()  # the last cells ran
    page.wait_for_function(
        "() => [...document.querySelectorAll('.fphlib-tour img')]"
        ".every(i => i.complete && i.naturalWidth > 0)")
    assert page.evaluate("() => window.innerWidth") == WIDTH
    clipped = page.evaluate(CLIPPED_JS, WIDTH)
    screenshot(page, SHOTS / "notebook01.png")
    assert not clipped, clipped
    # the widgets still work: churn redraws the status line
    status = page.locator(".fphlib-tour").get_by_text("live blocks").first
    before = status.inner_text()
    page.get_by_role("button", name="churn").click()
    page.wait_for_function(
        "(old) => [...document.querySelectorAll('.fphlib-tour .widget-html')]"
        ".some(e => e.innerText.includes('live blocks') && e.innerText !== old)", arg=before)
    assert not page.evaluate(CLIPPED_JS, WIDTH)


def slider_step(label, key="ArrowLeft"):
    """An action: one keyboard step of the slider labelled ``label``."""
    def act(page):
        handle = page.locator(".widget-slider", has_text=label).locator(".noUi-handle")
        handle.focus()
        handle.press(key)
    return act


def click_checkbox(label):
    def act(page):
        page.locator(".widget-checkbox", has_text=label).locator("input").click()
    return act


def select_first(label, index=0):
    """An action: pick option ``index`` (alone) of the (multi-)select labelled ``label``."""
    def act(page):
        box = page.locator(".widget-select, .widget-select-multiple, .widget-dropdown",
                           has_text=label).locator("select")
        box.select_option(index=index)
    return act


# notebook -> (what the app's first run shows when done, the change of one control, the
# button that runs it or None when the app redraws at once)
WALK = {
    "00_quickstart": ("done:", slider_step("guests"), "Run"),
    "01_buddy_and_xbitmap": ("live blocks", None, None),
    "02_mechanisms": ("done:", slider_step("guests"), "Run"),
    "03_migration_and_races": ("done:", click_checkbox("free memory used before"), "Run"),
    "04_guests_and_policies": ("done:", slider_step("guests"), "Run"),
    "05_block_size": ("computed", slider_step("seeds"), "Run sweep"),
    "06_validation": ("done (", select_first("results"), "Run"),
    "07_real_kernel": ("recording", select_first("recording", 1), None),
    "08_your_own_mechanism": ("", None, None),
}
ALL_NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_the_walk_covers_every_notebook():
    assert sorted(WALK) == ALL_NOTEBOOKS


@pytest.mark.parametrize("name", sorted(WALK))
def test_every_notebook_in_voila(voila_url, browser_page, name):
    """Each notebook loads without a console error and nothing clipped at 1280 px; in each
    app one control changed marks the results stale, Run brings them up to date."""
    ready, change, button = WALK[name]
    page = browser_page()
    errors, failed = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(voila_url + f"{name}.ipynb")
    page.wait_for_load_state("networkidle")
    if ready:
        page.locator(".jp-OutputArea, body").get_by_text(ready).first.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('img')].every(i => i.complete)")
    assert page.evaluate("() => window.innerWidth") == WIDTH
    assert "Traceback" not in page.content(), f"{name}: a cell failed"
    clipped = page.evaluate(CLIPPED_JS, WIDTH)
    screenshot(page, SHOTS / f"{name}_loaded.png")
    assert not clipped, clipped
    if change is not None:
        change(page)
        if button is not None:
            banner = page.locator(".fphlib-stale-banner").first
            banner.wait_for()
            assert "results below are for" in banner.inner_text()
            screenshot(page, SHOTS / f"{name}_stale.png")
            # the button's name also holds its icon's glyph: match the words only
            page.get_by_role("button", name=re.compile(rf"^\W*{button}\s*$")).first.click()
            # up to date again: no banner, nothing greyed, Run enabled
            page.wait_for_function(
                "() => !document.querySelector('.fphlib-stale-banner')"
                " && !document.querySelector('.fphlib-stale')")
        page.wait_for_function(
            "() => [...document.querySelectorAll('img')].every(i => i.complete)")
        text = page.locator("body").inner_text()
        assert "error:" not in text, f"{name}: the run failed"
        assert not page.evaluate(CLIPPED_JS, WIDTH)
        screenshot(page, SHOTS / f"{name}_after_change.png")
    # this machine has no network: what Voila's page asks of CDNs fails to load (each a
    # console line "Failed to load resource"); everything the server serves must load
    local = [u for u in failed if u.startswith(voila_url.split("/voila/")[0])]
    assert not local, f"{name}: failed to load {local}"
    external = [u for u in failed if u not in local]
    if external:
        print(f"{name}: not loaded (no network): {external}")
        errors = [e for e in errors if not e.startswith("Failed to load resource")]
    assert not errors, f"{name}: console errors: {errors}"


def test_missing_requirements_are_named(monkeypatch):
    import test_browser

    monkeypatch.setattr(test_browser, "CHROMIUM", "/nonexistent/chromium")
    missing = test_browser.missing_requirements()
    assert missing[0] == ("/nonexistent/chromium (Debian package chromium: "
                          "apt-get install -y chromium)")
