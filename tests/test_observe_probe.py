"""fphlib.observe.probe: what the machine offers, read from fake and real procfs/sysfs."""

import pytest

from fphlib._virtio import reports_free_pages
from fphlib.observe import _common, probe
from fphlib.observe.machine import BALLOON_FEATURES, balloon_device, parse_zoneinfo

ZONEINFO = """Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 943
  pages free     3840
        spanned  4095
        present  3998
        managed  3840
  start_pfn:           1
Node 0, zone    DMA32
  pages free     771105
        spanned  1044480
        present  782336
        managed  772845
        cma      0
  start_pfn:           4096
Node 0, zone  Movable
  pages free     0
        spanned  0
        present  0
        managed  0
"""


def test_parse_zoneinfo():
    zs = parse_zoneinfo(ZONEINFO)
    assert [(z.node, z.name) for z in zs] == [(0, "DMA"), (0, "DMA32"), (0, "Movable")]
    dma32 = zs[1]
    assert (dma32.start_pfn, dma32.spanned, dma32.present, dma32.managed) == \
        (4096, 1044480, 782336, 772845)
    assert dma32.end_pfn == 4096 + 1044480
    assert zs[2].spanned == 0
    with pytest.raises(ValueError, match="zoneinfo line 5: spanned 'x'"):
        parse_zoneinfo(ZONEINFO.replace("spanned  4095", "spanned  x"))
    with pytest.raises(ValueError, match="must be a str"):
        parse_zoneinfo(b"Node 0")


def _device(root, name, dev_id, bits):
    d = root / name
    d.mkdir(parents=True)
    (d / "device").write_text(f"0x{dev_id:04x}\n")
    (d / "features").write_text("".join("1" if i in bits else "0" for i in range(64)) + "\n")


def test_balloon_device_decodes_feature_bits(tmp_path):
    _device(tmp_path, "virtio0", 0x0002, {1, 32})  # a block device first
    _device(tmp_path, "virtio1", 0x0005, {1, 2, 5, 32})
    b = balloon_device(tmp_path)
    assert b["path"].endswith("virtio1")
    assert b["feature_bits"] == [1, 2, 5, 32]
    assert b["features"] == ["STATS_VQ", "DEFLATE_ON_OOM", "REPORTING"]
    assert set(BALLOON_FEATURES.values()) >= {"FREE_PAGE_HINT", "PAGE_POISON"}
    assert balloon_device(tmp_path / "none") is None



def test_reports_free_pages_only_for_a_balloon_that_negotiated_reporting(tmp_path):
    """What the engine asks before it maps its big per-page arrays in small pages."""
    assert not reports_free_pages(tmp_path)  # no virtio device: bare metal
    _device(tmp_path, "virtio0", 0x0002, {5, 32})  # a block device's bit 5 is not REPORTING
    assert not reports_free_pages(tmp_path)
    _device(tmp_path, "virtio1", 0x0005, {1, 2, 32})  # a balloon without REPORTING
    assert not reports_free_pages(tmp_path)
    (tmp_path / "virtio1" / "features").write_text("0110010" + "0" * 57)  # with it
    assert reports_free_pages(tmp_path)

def test_probe_reports_missing_pieces(monkeypatch, tmp_path):
    _device(tmp_path, "virtio0", 0x0005, {1, 2})  # a balloon without REPORTING
    monkeypatch.setattr(_common, "VIRTIO_DEVICES", str(tmp_path))
    monkeypatch.setattr(_common, "KPAGEFLAGS", str(tmp_path / "no-kpageflags"))
    monkeypatch.setattr(_common, "REPORTING_ORDER", str(tmp_path / "no-order"))
    monkeypatch.setattr(_common, "ZONEINFO", str(tmp_path / "no-zoneinfo"))
    p = probe()  # never raises
    assert not p.kpageflags_readable and p.page_reporting_order is None and p.zones == []
    assert not p.reporting
    missing = p.missing(need=("kpageflags", "reporting", "page_reporting_order", "zones"))
    assert [m.split()[0] for m in missing] == ["kpageflags", "reporting",
                                               "page_reporting_order", "zones"]
    assert "VIRTIO_BALLOON_F_REPORTING" in missing[1]
    assert "no-kpageflags" in missing[0]
    assert "missing: " in repr(p) and "STATS_VQ, DEFLATE_ON_OOM" in repr(p)
    d = p.to_dict()
    assert d["reporting"] is False and d["balloon"]["feature_bits"] == [1, 2]
    with pytest.raises(ValueError, match="unknown piece"):
        p.missing(need=("gpu",))


def test_probe_of_this_machine_is_consistent():
    p = probe()
    assert p.kernel and p.cpus >= 1
    assert (p.balloon is not None) == ("balloon" not in " ".join(p.missing()))
    if p.zones:
        spans = [(z.start_pfn, z.end_pfn) for z in p.zones if z.spanned]
        assert spans == sorted(spans)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    if p.root and p.kpageflags_readable:
        assert "kpageflags" not in " ".join(p.missing())


def test_probe_and_first_touch_are_functions_after_their_modules_load():
    import importlib

    importlib.import_module("fphlib.observe.machine")
    importlib.import_module("fphlib.observe.touch")
    from fphlib.observe import first_touch, probe
    from fphlib.observe.machine import Probe

    assert isinstance(probe(), Probe)
    with pytest.raises(ValueError, match="repeats"):
        first_touch(size="1MiB", repeats=0)


PAGESETS = """Node 0, zone   Normal
  pages free     146528
        spanned  5505024
  pagesets
    cpu: 0
              count:    96651
              high:     98566
              batch:    63
              high_min: 8278
              high_max: 176128
  vm stats threshold: 32
    cpu: 1
              count:    41974
              high:     42234
              batch:    63
              high_min: 8278
              high_max: 176128
  vm stats threshold: 32
  node_unreclaimable:  0
  start_pfn:           1048576
Node 0, zone  Movable
  pages free     0
"""


def test_parse_pcp_and_pcp_pages(tmp_path):
    from fphlib.observe.machine import parse_pcp, pcp_pages

    pcp = parse_pcp(PAGESETS)
    assert sorted(pcp) == [(0, "Normal", 0), (0, "Normal", 1)]
    assert pcp[(0, "Normal", 1)] == {"count": 41974, "high": 42234, "batch": 63,
                                     "high_min": 8278, "high_max": 176128}
    f = tmp_path / "zoneinfo"
    f.write_text(PAGESETS)
    assert pcp_pages(path=f) == 96651 + 41974
    assert pcp_pages({1}, path=f) == 41974
    with pytest.raises(_common.ObserveError, match="per-CPU lists"):
        pcp_pages(path=tmp_path / "absent")
