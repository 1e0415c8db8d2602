"""Ready-made configurations: the headline comparison and the FPHLIB_PROFILE sizes.

The headline comparison (README, ``make demo``): three 5 GiB guests on a 16 GiB host, each
running memhog over 4 GiB, under no hinting, a classic balloon and free page reporting.
Notebooks and tests run the same scenario scaled down by profile:

- ``smoke``: seconds, for the test suite (``FPHLIB_PROFILE=smoke``);
- ``demo``: a few seconds per run within Binder's ~2 GB of RAM (the Binder default);
- ``full``: the headline sizes.
"""

import os

from ..api.config import SimConfig
from ..hinting import takes_hint_order
from ..units import format_size, parse_size

PROFILES = ("smoke", "demo", "full")
HEADLINE_MECHANISMS = ("none", "balloon", "page_reporting")

# Per profile: host RAM, guest RAM, boot footprint, memhog size, run length, sampling period.
# Guest sizes are whole numbers of 4 MiB (order-10) blocks, as the guest model requires.
# Memhog runs `runs` times (touch, hold, free, gap), so the runs show memory coming back
# between rounds, and the guests start staggered so that their peaks do not coincide.
_SIZES = {
    # smoke guests stay above 64 MiB + low watermark free when idle, the zone size below which
    # free page reporting never runs (PAGE_REPORTING_CAPACITY << order 9)
    "smoke": dict(host_mem="1GiB", guest_mem="256MiB", boot="16MiB", size="160MiB",
                  duration_s=15.0, sample_s=0.25, hold_s=2.0, gap_s=4.0, runs=2,
                  stagger_s=1.0),
    "demo": dict(host_mem="4GiB", guest_mem="1280MiB", boot="64MiB", size="1GiB",
                 duration_s=60.0, sample_s=0.5, hold_s=6.0, gap_s=10.0, runs=3,
                 stagger_s=5.0),
    "full": dict(host_mem="16GiB", guest_mem="5GiB", boot="256MiB", size="4GiB",
                 duration_s=120.0, sample_s=1.0, hold_s=10.0, gap_s=20.0, runs=3,
                 stagger_s=10.0),
}


# every notebook's profile when FPHLIB_PROFILE is not set (`make lab`, Binder and Voila set it
# to this too); the notebooks' first cells repeat it as os.environ.get("FPHLIB_PROFILE", ...)
DEFAULT_PROFILE = "demo"


def profile_name(profile=None, default=DEFAULT_PROFILE):
    """Return a valid profile name: ``profile``, else ``$FPHLIB_PROFILE``, else ``default``."""
    name = profile if profile is not None else os.environ.get("FPHLIB_PROFILE", default)
    if name not in PROFILES:
        raise ValueError(
            f"FPHLIB_PROFILE/profile: {name!r} is not one of {', '.join(PROFILES)}"
        )
    return name


def balloon_target_for(guest_mem, boot=0):
    """The balloon target of the headline runs: the idle footprint plus 20 % of the guest.

    That is where an oVirt MOM-style policy leaves an idle guest (it keeps
    ``min_guest_free_percent`` = 0.20 of the guest free above what is used;
    docs/references.md §9.3). When memhog needs more, the guest deflates
    (VIRTIO_BALLOON_F_DEFLATE_ON_OOM) and the host re-inflates at its next policy interval,
    so the comparison shows what a balloon reclaims between rounds and what it costs
    (refaults), not a target so loose that it only takes never-touched pages. Rounded up to
    whole 4 MiB blocks.
    """
    guest = parse_size(guest_mem, "guest_mem")
    need = parse_size(boot, "boot") + guest // 5
    block = 4 << 20
    return min(guest, -(-need // block) * block)


PRESET_SIZES = {name: {k: sizes[k] for k in ("host_mem", "guest_mem", "duration_s")}
                for name, sizes in _SIZES.items()}
"""Host memory, guest memory and duration of each profile: the presets of the quickstart."""


def _memhog_sizes(sizes, guest_mem):
    """(boot, memhog size) for a guest of ``guest_mem``: the profile's, scaled to the guest."""
    block = 4 << 20
    guest = parse_size(guest_mem, "guest_mem")
    ref = parse_size(sizes["guest_mem"], "guest_mem")
    boot = min(parse_size(sizes["boot"], "boot"), max(block, guest // 8 // block * block))
    size = parse_size(sizes["size"], "size") * guest // ref // block * block
    return boot, max(block, min(size, guest - boot - block))


def headline_config(profile="full", mechanism="none", **overrides):
    """The headline scenario as a SimConfig, sized by ``profile``.

    Parameters
    ----------
    profile : {"smoke", "demo", "full"}
    mechanism : str
        ``SimConfig.mechanism``.
    **overrides
        Any other SimConfig field (e.g. ``guests=2``, ``hint_order=10``). A ``guest_mem``
        override scales the memhog size (and caps the boot footprint) with the guest, keeping
        the profile's proportions; a ``duration_s`` override keeps at most 600 samples.
    """
    sizes = _SIZES[profile_name(profile)]
    guests = overrides.pop("guests", 3)
    guest_mem = overrides.pop("guest_mem", sizes["guest_mem"])
    boot, size = _memhog_sizes(sizes, guest_mem)
    duration = overrides.pop("duration_s", sizes["duration_s"])
    d = dict(
        host_mem=sizes["host_mem"],
        guests=guests,
        guest_mem=guest_mem,
        workload="memhog",
        workload_params={"size": size, "boot": boot,
                         "hold_s": sizes["hold_s"], "gap_s": sizes["gap_s"],
                         "runs": sizes["runs"]},
        mechanism=mechanism,
        duration_s=duration,
        sample_s=max(sizes["sample_s"], float(duration) / 600),
        guest_overrides=tuple({"start_s": g * sizes["stagger_s"]} for g in range(guests)),
        seed=0,
    )
    if mechanism == "balloon" and overrides.get("policy", "static") == "static":
        d["balloon_target"] = balloon_target_for(guest_mem, boot)
    d.update(overrides)
    return SimConfig(**d)


def scenario_title(cfg):
    """One line naming what ``cfg`` simulates, for figure titles: guests and sizes, host,
    workload, duration (e.g. "3 × 5 GiB guests on a 16 GiB host · memhog 4 GiB · 120 s")."""
    guest = format_size(parse_size(cfg.guest_mem, "guest_mem"))
    host = format_size(parse_size(cfg.host_mem, "host_mem"))
    work = str(cfg.workload)
    params = cfg.workload_params or {}
    if cfg.workload == "memhog" and "size" in params:
        work += f" {format_size(parse_size(params['size'], 'size'))}"
    elif cfg.workload == "churn" and "target" in params:
        work += f" at {float(params['target']):.0%}"
    swap = f" with {format_size(cfg.host_swap)} swap" if cfg.host_swap else ""
    return (f"{cfg.guests} × {guest} guest{'s' if cfg.guests != 1 else ''} on a {host} host"
            f"{swap} · {work} · {float(cfg.duration_s):g} s")


def run_caption(cfg, mechanism=True, policy=True):
    """What a figure or table of a run of ``cfg`` shows: :func:`scenario_title`, the
    mechanism (with its hint order when it takes one) and the host policy, e.g. "3 × 5 GiB
    guests on a 16 GiB host · memhog 4 GiB · 120 s · page_reporting (order 9) · policy
    static". ``mechanism=False`` / ``policy=False``: leave them out (a figure comparing
    several)."""
    parts = [scenario_title(cfg)]
    if mechanism:
        parts.append(str(cfg.mechanism) + (f" (order {cfg.hint_order})"
                                           if takes_hint_order(cfg.mechanism) else ""))
    if policy:
        parts.append(f"policy {cfg.policy}")
    return " · ".join(parts)


def headline_configs(profile="full", mechanisms=HEADLINE_MECHANISMS, **overrides):
    """{mechanism: SimConfig} for the headline comparison."""
    return {m: headline_config(profile, m, **overrides) for m in mechanisms}
