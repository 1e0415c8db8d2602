"""Notebooks: committed without outputs, in sync with their jupytext twins, and they run.

Every notebook is executed with ``FPHLIB_PROFILE=smoke`` (small sizes) by nbclient in a
fresh kernel; any error, or any warning printed to the notebook's stderr, fails the test.
"""

from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
TWIN_DIR = NB_DIR / "py"
EXPECTED = ["00_quickstart", "01_buddy_and_xbitmap", "02_mechanisms", "03_migration_and_races",
            "04_guests_and_policies",
            "05_block_size", "06_validation", "07_real_kernel", "08_your_own_mechanism"]
# every notebook in notebooks/ is checked and executed, not only the expected ones
ALL = sorted({p.stem for p in NB_DIR.glob("*.ipynb")} | set(EXPECTED))


def notebooks():
    return sorted(NB_DIR.glob("*.ipynb"))


def names():
    return [p.stem for p in notebooks()]


def test_expected_notebooks_and_twins_exist():
    assert set(EXPECTED) <= set(names()), f"missing notebooks: {set(EXPECTED) - set(names())}"
    twins = sorted(p.stem for p in TWIN_DIR.glob("*.py"))
    assert twins == names(), "every notebook needs a notebooks/py/NAME.py twin and vice versa"


def cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.mark.parametrize("name", ALL)
def test_notebook_has_no_outputs(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert c.outputs == [], f"{name}.ipynb cell {i} has outputs; strip them"
            assert c.execution_count is None, f"{name}.ipynb cell {i} has an execution count"
    assert "widgets" not in nb.metadata, f"{name}.ipynb stores widget state; strip it"


@pytest.mark.parametrize("name", ALL)
def test_notebook_matches_its_twin(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    twin = jupytext.read(TWIN_DIR / f"{name}.py")
    assert cells(nb) == cells(twin), (
        f"{name}.ipynb and py/{name}.py differ; run `jupytext --sync notebooks/{name}.ipynb` "
        "(or --sync on the edited file)"
    )
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags == [c.metadata.get("tags", []) for c in twin.cells]


@pytest.mark.parametrize("name", ALL)
def test_first_code_cell_reads_the_profile(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert 'os.environ.get("FPHLIB_PROFILE"' in first.source
    assert "parameters" in first.metadata.get("tags", [])  # papermill can override it too


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def execute(name, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("FPHLIB_PROFILE", "smoke")
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(NB_DIR)}})
    client.execute()
    return nb


def outputs(nb):
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            for out in c.outputs:
                yield i, out


@pytest.mark.notebook
@pytest.mark.parametrize("name", ALL)
def test_notebook_runs_with_smoke_profile(name, monkeypatch):
    nb = execute(name, monkeypatch)
    for i, out in outputs(nb):
        assert out.output_type != "error", f"{name} cell {i}: {out.ename}: {out.evalue}"
        if out.output_type == "stream" and out.name == "stderr":
            assert "Warning" not in out.text, f"{name} cell {i} warns:\n{out.text}"
    widgets = [i for i, out in outputs(nb) if WIDGET_MIME in out.get("data", {})]
    assert widgets, f"{name} shows no widget app"
    texts = "\n".join(str(out.get("data", {}).get("text/plain", "")) + out.get("text", "")
                      for _, out in outputs(nb))
    assert "smoke" in texts, f"{name} does not show that it ran the smoke profile"
