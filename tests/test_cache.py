"""Numba caches are dropped when any kernel source changes (numba only watches one file)."""

from fphlib import _cache


def make_package(root):
    (root / "guest" / "__pycache__").mkdir(parents=True)
    (root / "engine" / "__pycache__").mkdir(parents=True)
    (root / "_jit.py").write_text("jit = None\n")
    (root / "guest" / "xbitmap.py").write_text("A = 1\n")
    (root / "engine" / "loop.py").write_text("B = 2\n")


def cache_files(root):
    return sorted(p.name for p in root.glob("*/__pycache__/*.nb[ic]"))


def add_cache(root):
    (root / "guest" / "__pycache__" / "buddy.f-1.py311.nbi").write_bytes(b"i")
    (root / "engine" / "__pycache__" / "loop.run-9.py311.1.nbc").write_bytes(b"c")


def test_edit_in_one_file_drops_every_cache_once(tmp_path, monkeypatch):
    make_package(tmp_path)
    monkeypatch.setattr(_cache, "_ROOT", tmp_path)
    add_cache(tmp_path)
    assert _cache.refresh() is True  # no stamp yet: nothing cached can be trusted
    assert cache_files(tmp_path) == []

    add_cache(tmp_path)
    assert _cache.refresh() is False  # sources unchanged: caches kept
    assert len(cache_files(tmp_path)) == 2

    # an edit to a file that other files' kernels inline (xbitmap into buddy)
    (tmp_path / "guest" / "xbitmap.py").write_text("A = 3\n")
    assert _cache.refresh() is True
    assert cache_files(tmp_path) == []
    assert _cache.refresh() is False


def test_digest_sees_every_kernel_folder(tmp_path, monkeypatch):
    make_package(tmp_path)
    monkeypatch.setattr(_cache, "_ROOT", tmp_path)
    before = _cache.sources_digest()
    (tmp_path / "engine" / "loop.py").write_text("B = 4\n")
    assert _cache.sources_digest() != before
