"""What every host policy sees and how it asks: host free memory, guest stats, asks by mode.

A policy sees what a real host sees: its own free memory (``MemFree``: RAM minus backed guest
pages and per-guest overhead) and, per guest, the virtio-balloon stats queue
(VIRTIO_BALLOON_S_MEMFREE = the guest's free pages on the buddy lists, the balloon's
``actual`` size ``GI.BALLOON``; docs/references.md §7.1), plus the host RSS and
swap of each guest (the host's own accounting). It never reads guest page state directly, except the
idle-tax sampler (:mod:`.idle_tax`), which reads the accessed bit of sampled pages as ESX
reads its invalidated mappings.

It asks in one of two modes, fixed per run by the mechanism (``ASKS`` of the mechanism module,
:func:`fphlib.api.config.ask_mode`; host/ never imports hinting/), written to the guest's
config space: ``pages`` (the balloon: a balloon size, ``GI.WANT_PAGES``) or ``hint``
(reporting/hinting mechanisms: hinting on/off, ``GI.WANT_HINT``; a guest the policy wants
memory from has hinting on, every other guest off - the host "has plenty of free space, don't
worry"). The guest reads them as its cooperation says (:mod:`fphlib.guest.cooperation`).
Combinations where the mechanism reads neither are refused by
:func:`check_drivable`.

Simplifications: the stats are read at the policy instant (QEMU's
``guest-stats-polling-interval`` equals the policy interval); a guest's reserve (what a
balloon never takes) is its high watermark; a balloon ask moves on from the balloon's
actual size (what the guest reports in ``actual``), so after a deflate-on-OOM the next ask
starts from what the guest kept; a policy interval is long enough for an inflation to
complete (256 pages per message, a few microseconds each).
"""

import numpy as np

from ..._jit import jit
from ...state.access import guest_running as running  # the policies' name for it
from ...state.borrow import borrow_state
from ...state.layout import GI, HI
from ...state.params import Param
from ...units import PAGE_SIZE
from .ask import ask

# The first private int column of every asking policy: 1 = the mechanism takes pages
# (balloon), 0 = it takes hint on/off. Policy modules number their own columns after it.
BY_PAGES = 0
N_COMMON_INTS = 1

# ESX's "high" free-memory state: with at least 6 % of memory free the host reclaims nothing
# (Waldspurger, OSDI 2002, §6; docs/references.md §9.1).
DEFAULT_TARGET_FREE = 0.06
# A policy that reclaims gives a quantum back when the host has this many quanta to spare
# above its target (hysteresis, so that it does not take and give back in turn).
RELEASE_QUANTA = 2

INTERVAL = Param("float", 10.0, 1e-3, 86400.0, "s", "how often the host policy runs "
                 "(oVirt MOM's policy engine: 10 s)")
TARGET_FREE = Param("float", DEFAULT_TARGET_FREE, 0.0, 1.0, "", "fraction of host RAM the "
                    "host keeps free: it asks guests for memory only below it (ESX high "
                    "state: 0.06)")
QUANTUM = Param("size", 128 << 20, PAGE_SIZE, 2**50, "bytes", "memory asked of one guest at a "
                "time")


def check_drivable(policy, mechanism, mode, modes=("pages", "hint")):
    """Refuse a policy with a mechanism it cannot drive (``ValueError`` saying why); ``mode``
    is the ask the mechanism reads (``"pages"``, ``"hint"`` or ``None``)."""
    if mode in modes:
        return
    if mode is None:
        why = (f"mechanism {mechanism!r} reads no host ask (neither a balloon size nor "
               f"hinting on/off), so policy {policy!r} would have nobody to ask; use policy "
               f"'static' (which asks nothing)")
    else:
        what = {"pages": "balloon sizes", "hint": "hinting on/off"}
        why = (f"policy {policy!r} sets {' or '.join(what[m] for m in modes)}, but mechanism "
               f"{mechanism!r} only reads {what[mode]} asks")
    raise ValueError(f"policy: {policy!r} is not allowed with mechanism {mechanism!r}: {why}")


# The policy-wide values of the policies that move memory a quantum at a time (round robin,
# most free first, the ESX family): shared columns (PrivateState.shared_ints/shared_floats)
QUANTUM_SHARED_INTS = ("QUANTUM_PAGES",)
QUANTUM_SHARED_FLOATS = ("TARGET",)
Q_QUANTUM_PAGES = 0  # pol_si: pages per ask
Q_TARGET = 0  # pol_sf: fraction of host RAM kept free


def init_quantum(params, cfg, ints, floats):
    """``shared_init`` of a quantum policy: its quantum and target."""
    ints[Q_QUANTUM_PAGES] = max(1, params["quantum"] // PAGE_SIZE)
    floats[Q_TARGET] = params["target_free"]


def init_mode(cfg, ints):
    """Set the ``BY_PAGES`` column of one guest's row from the run's mechanism."""
    ints[BY_PAGES] = int(cfg.ask_mode() == "pages")


@jit(inline="always")
def host_used_pages(s):
    return s.hi[HI.RSS] + s.hi[HI.OVERHEAD_PAGES]


@jit(inline="always")
def host_free_pages(s):
    """Host ``MemFree`` in pages (RAM minus backed guest pages and overhead)."""
    return s.hi[HI.RAM_PAGES] - host_used_pages(s)


@jit(inline="always")
def host_free_fraction(s):
    return host_free_pages(s) / s.hi[HI.RAM_PAGES]


@jit(inline="always")
def need_pages(s, target_free):
    """Pages the host lacks to keep ``target_free`` of its RAM free (negative: to spare)."""
    return np.int64(target_free * s.hi[HI.RAM_PAGES]) - host_free_pages(s)


@jit(inline="always")
def guest_free_pages(s, g):
    """VIRTIO_BALLOON_S_MEMFREE: free pages on the guest's buddy lists."""
    n = np.int64(0)
    for o in range(s.z_nr.shape[1]):
        n += s.z_nr[g, o] << o
    return n


@jit(inline="always")
def reclaimable_pages(s, g):
    """Free pages a balloon can take from guest g without pushing it below its high
    watermark (what the stats say it does not need)."""
    return max(np.int64(0), guest_free_pages(s, g) - s.gi[g, GI.HIGH_WMARK])


@jit
def set_ask(s, g, now, pages, hint):
    """Ask guest g for a balloon of ``pages`` and hinting on/off; only if it changes."""
    s = borrow_state(s)
    pages = min(max(pages, np.int64(0)), s.gi[g, GI.NPAGES])
    if pages != s.gi[g, GI.WANT_PAGES] or hint != s.gi[g, GI.WANT_HINT]:
        ask(s, g, now, pages, hint)


@jit
def take(s, g, now, pages):
    """Ask guest g for ``pages`` more than its balloon holds now, or switch hinting on."""
    s = borrow_state(s)
    if s.pol_i[g, BY_PAGES]:
        set_ask(s, g, now, s.gi[g, GI.BALLOON] + pages, np.int64(1))
    else:
        set_ask(s, g, now, np.int64(0), np.int64(1))


@jit
def give_back(s, g, now, pages):
    """Give guest g ``pages`` of its balloon back (pages mode only)."""
    s = borrow_state(s)
    if s.pol_i[g, BY_PAGES]:
        set_ask(s, g, now, s.gi[g, GI.BALLOON] - pages, s.gi[g, GI.WANT_HINT])


@jit
def hints_off_except(s, now, chosen):
    """Hint mode: hinting off for every running guest with ``chosen[g] == 0``."""
    s = borrow_state(s)
    for g in range(chosen.shape[0]):
        if running(s, g) and not chosen[g] and not s.pol_i[g, BY_PAGES]:
            set_ask(s, g, now, np.int64(0), np.int64(0))


@jit(inline="always")
def lcg_next(state):
    """Park-Miller minimal standard generator (CACM 31(10), 1988), multiplier 48271:
    the next state in 1..2**31 - 2 (int64 arithmetic, no overflow)."""
    return (state * 48271) % 2147483647


def lcg_seed(seed, g):
    """A nonzero Park-Miller state for guest g from the run's seed (SeedSequence)."""
    word = np.random.SeedSequence([int(seed), 0x9011C7, g]).generate_state(1, np.uint32)[0]
    return int(word) % 2147483646 + 1
