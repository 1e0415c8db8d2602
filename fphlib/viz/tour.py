"""The guest-side tour (notebook 01): a buddy allocator you drive by hand or by churn.

:class:`GuestTour` holds one :class:`fphlib.BuddyAllocator` plus the blocks it handed out, and
replays allocations and frees on it; :func:`tracking_memory` measures what each way of
tracking free pages costs as a guest fills, :func:`tracking_work` the work each does under
zone->lock; :class:`TourApp` puts both behind widgets with a
buddyinfo bar chart, the fragmentation indices and the tracking-memory plot.
"""

import numpy as np
import pandas as pd

from ..guest.buddy import BuddyAllocator
from ..guest.fragmentation import format_buddyinfo
from ..units import NR_ORDERS, PAGE_SIZE, parse_size
from ..workloads.trace_file import KERNEL_ORDER_MIX
from . import plots
from .figures import app_figure, figure_png

TRACKS = ("page", "head")


def xbitmap_nbytes(buddy):
    """Kernel bytes of the xbitmap that ``buddy`` keeps of its free pages (0 when untracked)."""
    return int(buddy.tracking_stats.get("nbytes", 0))


class GuestTour:
    """One guest zone to allocate from and free into, step by step or by churn.

    Parameters
    ----------
    guest_mem : int or str
        Zone size, a whole number of 4 MiB (order-10) blocks.
    placement : {"kernel", "head"}
        Free-list placement (``BuddyAllocator``).
    track : {"page", "head", "bitmap"} or None
        Keep an xbitmap of free pages (one bit per free page, or per free block head), or a
        flat bitmap of free pages (``BuddyAllocator(track=...)``).
    seed : int
        Seed of the random choices (which block to free, which order to allocate).
    """

    def __init__(self, guest_mem="64MiB", placement="kernel", track="page", seed=0):
        n_bytes = parse_size(guest_mem, "guest_mem")
        self.n_pages = n_bytes // PAGE_SIZE
        kwargs = {} if track is None else {"track": track}
        self.buddy = BuddyAllocator(self.n_pages, placement=placement, **kwargs)
        self.track = track
        self.rng = np.random.default_rng(seed)
        self.live = []  # (pfn, order) of the blocks handed out, in allocation order
        self.failed = 0

    @property
    def used_pages(self):
        """Pages in allocated blocks."""
        return self.n_pages - int(self.buddy.free_pages)

    @property
    def used_fraction(self):
        return self.used_pages / self.n_pages

    def alloc(self, order):
        """Allocate one block of ``order``; return its pfn, or -1 (counted in ``failed``)."""
        pfn = int(self.buddy.alloc(int(order)))
        if pfn < 0:
            self.failed += 1
        else:
            self.live.append((pfn, int(order)))
        return pfn

    def free(self, index=None):
        """Free the ``index``-th live block (a random one by default); return (pfn, order)."""
        if not self.live:
            raise ValueError("free: nothing is allocated")
        if index is None:
            index = int(self.rng.integers(len(self.live)))
        # swap-remove: O(1), and the order of `live` carries no meaning
        pfn, order = self.live[index]
        self.live[index] = self.live[-1]
        self.live.pop()
        self.buddy.free(pfn, order)
        return pfn, order

    def churn(self, n_ops, target=0.6, order_mix=KERNEL_ORDER_MIX):
        """``n_ops`` steps of churn around ``target`` occupancy with a kernel-like order mix.

        Below the target each step allocates (order drawn from ``order_mix``), above it each
        step frees a random live block; the randomness is drawn up front from the tour's seed.
        """
        if not 0 <= target <= 1:
            raise ValueError(f"target: {target!r} must be a fraction in [0, 1]")
        p = np.asarray(order_mix, float)
        p = p / p.sum()
        orders = self.rng.choice(NR_ORDERS, size=int(n_ops), p=p)
        coins = self.rng.random(int(n_ops))
        for i in range(int(n_ops)):
            # allocate with a probability that falls as occupancy passes the target, so the
            # zone hovers around it instead of oscillating
            want_alloc = coins[i] < 0.5 + 4 * (target - self.used_fraction)
            if want_alloc or not self.live:
                self.alloc(orders[i])
            else:
                self.free()

    def fill_to(self, fraction, order_mix=KERNEL_ORDER_MIX):
        """Allocate (kernel-like orders) until ``fraction`` of the zone is used."""
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction: {fraction!r} must be in [0, 1]")
        p = np.asarray(order_mix, float)
        p = p / p.sum()
        while self.used_fraction < fraction:
            order = int(self.rng.choice(NR_ORDERS, p=p))
            missing = int((fraction - self.used_fraction) * self.n_pages)
            order = min(order, max(missing, 1).bit_length() - 1)
            if self.alloc(order) < 0 and self.alloc(0) < 0:
                break  # the zone is full

    def free_all(self):
        """Free every live block (the zone returns to whole order-10 blocks)."""
        while self.live:
            self.free(len(self.live) - 1)

    def snapshot(self):
        """State for plots and tables: nr_free, used fraction, tracking bytes."""
        return {
            "nr_free": np.array(self.buddy.nr_free, dtype=np.int64),
            "used_fraction": self.used_fraction,
            "free_pages": int(self.buddy.free_pages),
            "live_blocks": len(self.live),
            "failed_allocs": self.failed,
            "xbitmap_bytes": xbitmap_nbytes(self.buddy),
        }

    def buddyinfo(self):
        """The zone as a ``/proc/buddyinfo`` line."""

        return format_buddyinfo(self.buddy.nr_free)


STRUCTURES = {
    "flat": "flat bitmap (1 bit per page)",
    "flags": "per-page flags (1 byte per page)",
    "page": "xbitmap, one bit per free page",
    "head": "xbitmap, one bit per free block head",
}


def tracking_memory(guest_mem="64MiB", fractions=(0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.97),
                    churn_ops=2000, seed=0):
    """Memory each way of tracking free pages needs as a guest fills.

    Two zones (xbitmap per free page, and per free block head) are driven through the same
    fill-and-churn sequence: for each occupancy in ``fractions`` (ascending), fill to it, then
    ``churn_ops`` steps of churn around it (fragmenting free memory, as a running guest
    does), then measure.

    Returns
    -------
    pandas.DataFrame
        Long-form: ``used_fraction`` (measured), ``target``, ``structure``, ``bytes``.
    """
    fractions = list(fractions)
    if fractions != sorted(fractions) or not all(0 <= f < 1 for f in fractions):
        raise ValueError(f"fractions: {fractions!r} must be ascending values in [0, 1)")
    rows = []
    tours = {t: GuestTour(guest_mem, track=t, seed=seed) for t in TRACKS}
    n_pages = tours["page"].n_pages
    for f in fractions:
        for tour in tours.values():
            tour.fill_to(f)
            tour.churn(churn_ops, target=f)
        used = tours["page"].used_fraction
        rows.append((used, f, STRUCTURES["flat"], n_pages // 8))
        rows.append((used, f, STRUCTURES["flags"], n_pages))
        for t, tour in tours.items():
            rows.append((used, f, STRUCTURES[t], xbitmap_nbytes(tour.buddy)))
    return pd.DataFrame(rows, columns=["used_fraction", "target", "structure", "bytes"])


WORK_TRACKS = ("bitmap", "page", "head")
WORK_STRUCTURES = {"bitmap": STRUCTURES["flat"], "page": STRUCTURES["page"],
                   "head": STRUCTURES["head"]}


def tracking_work(guest_mem="64MiB", target=0.9, churn_ops=5000, seed=0):
    """The work each way of tracking free pages adds under zone->lock, per churn step.

    Three zones (flat bitmap, xbitmap per free page, xbitmap per free block head) are filled
    to ``target`` and then churned around it for ``churn_ops`` steps, all with the same seed:
    the allocator does the same list operations in each (tracking never changes it), so the
    rows differ only in what the tracking structure did meanwhile.

    Returns
    -------
    pandas.DataFrame
        One row per structure, indexed by its name: ``list_ops`` (blocks that entered or left
        a free list, one bitmap operation each) and per churn step ``ops_per_step``,
        ``leaf_kmallocs_per_step`` / ``leaf_kfrees_per_step`` (128-byte leaves),
        ``node_kmallocs_per_step`` (576-byte radix nodes), ``preload_kmallocs_per_step``
        (the allocations ``xb_preload`` made ahead); ``bytes`` of the structure after.
    """
    if not 0 <= target < 1:
        raise ValueError(f"target: {target!r} must be a fraction in [0, 1)")
    if int(churn_ops) < 1:
        raise ValueError(f"churn_ops: {churn_ops!r} must be a positive number of steps")
    keys = ("ops", "leaf_allocs", "leaf_frees", "node_allocs", "preload_allocs")
    rows = {}
    for track in WORK_TRACKS:
        tour = GuestTour(guest_mem, track=track, seed=seed)
        tour.fill_to(target)
        before = tour.buddy.tracking_stats
        tour.churn(churn_ops, target=target)
        stats = tour.buddy.tracking_stats
        d = {k: stats[k] - before[k] for k in keys}
        rows[WORK_STRUCTURES[track]] = {
            "list_ops": d["ops"],
            "ops_per_step": d["ops"] / churn_ops,
            "leaf_kmallocs_per_step": d["leaf_allocs"] / churn_ops,
            "leaf_kfrees_per_step": d["leaf_frees"] / churn_ops,
            "node_kmallocs_per_step": d["node_allocs"] / churn_ops,
            "preload_kmallocs_per_step": d["preload_allocs"] / churn_ops,
            "bytes": stats["nbytes"],
        }
    return pd.DataFrame.from_dict(rows, orient="index")


class TourApp:
    """Widgets for notebook 01: alloc/free by hand, churn by slider, live guest-side plots."""

    def __init__(self, guest_mem="64MiB", track="page", seed=0):
        import ipywidgets as W

        self.tour = GuestTour(guest_mem, track=track, seed=seed)
        wide = {"description_width": "initial"}
        self.order = W.IntSlider(value=0, min=0, max=NR_ORDERS - 1, description="order",
                                 continuous_update=False, style=wide,
                                 tooltip="order of the block to allocate: 2^order pages "
                                         "(0 = 4 KiB, 9 = 2 MiB, 10 = 4 MiB)")
        self.alloc_button = W.Button(description="alloc", icon="plus",
                                     tooltip="allocate one block of this order (the smallest "
                                             "free block that fits is split: expand())")
        self.free_button = W.Button(description="free a random block", icon="minus",
                                    layout=W.Layout(width="auto"),
                                    tooltip="free one allocated block, chosen at random (it "
                                            "merges with its buddy while the buddy is free)")
        self.target = W.FloatSlider(value=0.6, min=0.0, max=0.95, step=0.05,
                                    description="churn target", continuous_update=False,
                                    style=wide, readout_format=".0%",
                                    tooltip="occupancy the churn hovers around: allocate below "
                                            "it, free above it")
        self.ops = W.IntSlider(value=2000, min=100, max=20000, step=100, description="ops",
                               continuous_update=False, style=wide,
                               tooltip="steps of churn per press (one alloc or free each, "
                                       "orders drawn from a kernel-like mix)")
        self.churn_button = W.Button(description="churn", icon="refresh",
                                     tooltip="run the churn steps now")
        self.reset_button = W.Button(description="free all", icon="undo",
                                     tooltip="free every allocated block (the zone merges back "
                                             "into order-10 blocks)")
        self.status = W.HTML()
        self.buddyinfo_text = W.HTML(layout=W.Layout(max_width="100%", overflow="auto"))
        # the two plots share a row when the page is wide enough and wrap otherwise: each image
        # scales with its box, so nothing is clipped at any width
        fit = W.Layout(flex="1 1 420px", max_width="100%", height="auto")
        self.images = [W.Image(format="png", layout=fit) for _ in range(2)]
        self._figs = [app_figure((6.0, 3.2)), app_figure((6.0, 3.2))]
        self.alloc_button.on_click(lambda _: self._act(self.tour.alloc, self.order.value))
        self.free_button.on_click(lambda _: self._act(self.tour.free) if self.tour.live else None)
        self.churn_button.on_click(
            lambda _: self._act(self.tour.churn, self.ops.value, target=self.target.value))
        self.reset_button.on_click(lambda _: self._act(self.tour.free_all))
        wrap = W.Layout(flex_flow="row wrap", align_items="center", max_width="100%")
        self.widget = W.VBox([
            W.HBox([self.order, self.alloc_button, self.free_button, self.reset_button],
                   layout=wrap),
            W.HBox([self.target, self.ops, self.churn_button], layout=wrap),
            self.status, self.buddyinfo_text, W.HBox(self.images, layout=wrap),
        ], layout=W.Layout(max_width="100%"))
        self.widget.add_class("fphlib-tour")
        self.redraw()

    def _act(self, fn, *args, **kwargs):
        fn(*args, **kwargs)
        self.redraw()

    def redraw(self):
        """Redraw the buddyinfo and fragmentation plots and the status line (in place)."""

        snap = self.tour.snapshot()
        plots.plot_buddyinfo(snap["nr_free"], ax=self._ax(0))
        plots.plot_fragmentation(snap["nr_free"], ax=self._ax(1))
        for img, fig in zip(self.images, self._figs, strict=True):
            img.value = figure_png(fig)
        xb = snap["xbitmap_bytes"]
        self.status.value = (
            f"used {snap['used_fraction']:.1%} of {self.tour.n_pages} pages · "
            f"{snap['live_blocks']} live blocks · {snap['failed_allocs']} failed allocs · "
            f"xbitmap ({self.tour.track}) {xb} B vs flat bitmap {self.tour.n_pages // 8} B"
        )
        self.buddyinfo_text.value = f"<pre>{self.tour.buddyinfo()}</pre>"

    def _ax(self, i):
        fig = self._figs[i]
        return fig.axes[0] if fig.axes else fig.add_subplot()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
