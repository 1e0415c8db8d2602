"""This machine's virtio-balloon, read from sysfs: which free page hinting its host does.

fphlib runs on KVM guests as often as on bare metal, and what the guest's own balloon does
matters to the engine (:func:`reports_free_pages`: how the per-page arrays are mapped) and to
the live-kernel recordings (:func:`fphlib.observe.machine.probe`).

Sources: the virtio-balloon device is the virtio device whose ``device`` file reads
``0x0005`` (VIRTIO_ID_BALLOON, include/uapi/linux/virtio_ids.h); its ``features`` file is one
character per feature bit, bit 0 first, of the features the driver negotiated
(drivers/virtio/virtio.c, ``features_show``); the balloon's bits are those of
include/uapi/linux/virtio_balloon.h (:data:`BALLOON_FEATURES`). Only the first balloon found
is described.
"""

from pathlib import Path

VIRTIO_DEVICES = "/sys/bus/virtio/devices"
VIRTIO_ID_BALLOON = 0x0005  # include/uapi/linux/virtio_ids.h

# include/uapi/linux/virtio_balloon.h: VIRTIO_BALLOON_F_*
BALLOON_FEATURES = {
    0: "MUST_TELL_HOST",
    1: "STATS_VQ",
    2: "DEFLATE_ON_OOM",
    3: "FREE_PAGE_HINT",
    4: "PAGE_POISON",
    5: "REPORTING",
}


def feature_bits(bits):
    """Set bit numbers of a virtio ``features`` string ('0'/'1' per bit, bit 0 first)."""
    return [i for i, c in enumerate(bits.strip()) if c == "1"]


def balloon_device(root=None):
    """The first virtio-balloon device under ``root`` (default :data:`VIRTIO_DEVICES`):
    ``{"path", "feature_bits", "features"}``, or None when there is none.

    ``features`` names the balloon bits set (:data:`BALLOON_FEATURES`); other set bits
    (transport bits such as VIRTIO_F_VERSION_1 = 32) are listed in ``feature_bits`` only.
    """
    root = Path(root or VIRTIO_DEVICES)
    try:
        devices = sorted(root.iterdir())
    except OSError:
        return None
    for dev in devices:
        try:
            if int((dev / "device").read_text().strip(), 16) != VIRTIO_ID_BALLOON:
                continue
            bits = feature_bits((dev / "features").read_text())
        except (OSError, ValueError):
            continue
        return {"path": str(dev), "feature_bits": bits,
                "features": [BALLOON_FEATURES[b] for b in bits if b in BALLOON_FEATURES]}
    return None


def reports_free_pages(root=None):
    """True when this machine is a guest whose balloon negotiated free page reporting
    (VIRTIO_BALLOON_F_REPORTING, Linux 5.7+): its host discards the free blocks of order
    ``page_reporting_order`` and up that the guest reports (mm/page_reporting.c), so the
    guest's next use of one faults it in again on the host."""
    balloon = balloon_device(root)
    return balloon is not None and "REPORTING" in balloon["features"]
