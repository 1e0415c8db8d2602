"""``SimConfig``: everything one simulation run needs, validated up front (docs/design.md §4).

Sizes accept ``parse_size`` forms (``"5GiB"``, ``4096``) and are stored as ints, so
``SimConfig.from_dict(cfg.to_dict()) == cfg`` and the dict survives JSON.
"""

import dataclasses
import json
import warnings
from dataclasses import dataclass

from .. import bounds
from ..costs import (
    HOST_RESERVE,
    HOST_RESERVE_MAX_FRACTION,
    SIZE_DEFAULTS,
    SWAP_BANDWIDTH,
    validate_costs,
)
from ..guest.cooperation import FULL as COOPERATION
from ..hinting import MECHANISMS, madvise_of, mechanism_module
from ..host.backing import MADVISE_CHOICES, OOM_SCORE_ADJ_MAX, OOM_SCORE_ADJ_MIN
from ..host.migration import validate_migration
from ..host.policy import POLICIES, policy_module
from ..state.params import _check, effective, validate
from ..units import NR_ORDERS, PAGE_SIZE, format_size, parse_size
from ..workloads import WORKLOADS, workload_module, workload_settings, workload_spec
from . import limits
from .frozen import freeze, plain, thaw

# kind -> the live registry of its modules (plug-ins included): SimConfig.plugins, sweeps
REGISTRIES = {"mechanism": MECHANISMS, "policy": POLICIES, "workload": WORKLOADS}
TOP_BLOCK = 4 << 20  # order-10 block: guest memory must be a whole number of these
OVERRIDE_KEYS = ("mem", "workload", "workload_params", "start_s", "shares", "min", "max",
                 "oom_score_adj", "cooperation")
COOPERATION_KEYS = tuple(COOPERATION)


def _field(default=dataclasses.MISSING, *, kind, help, default_factory=dataclasses.MISSING):
    """A SimConfig field with its help: ``kind`` (size, int, float, bool, choice, dict, list,
    json) and the text the CLI's flags and the widgets' tooltips show (:data:`FIELD_HELP`)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"kind": kind, "help": help})


def ask_mode(mechanism):
    """Which host-policy ask mechanism ``mechanism`` reads (its module's ``ASKS``):
    ``"pages"`` (a balloon size), ``"hint"`` (hinting on/off) or ``None``."""
    asks = getattr(mechanism_module(mechanism), "ASKS", ())
    return "pages" if "pages" in asks else "hint" if "hint" in asks else None


def policy_allows(policy, mechanism):
    """Can host policy ``policy`` drive ``mechanism``? (``SimConfig`` refuses the pairs that
    answer False, saying why.)"""
    check = getattr(policy_module(policy), "check", None)
    if check is None:
        return True
    try:
        check(mechanism, ask_mode(mechanism), {})
    except ValueError:
        return False
    return True


def _fail(name, value, allowed):
    raise ValueError(f"{name}: {value!r} is not allowed; {allowed}")


def check_number(name, value, lo=None, hi=None, lo_open=False, integer=False):
    """``value`` as a float (an int if ``integer``) in the bounds, else a ValueError naming
    ``name`` and the range: the check of every number of a SimConfig and of the experiments'
    arguments (booleans, NaN, infinities and ints past a float are refused)."""
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    if ok and integer and not (isinstance(value, int) or float(value).is_integer()):
        ok = False
    if ok and not bounds.finite(value):
        ok = False
    if ok and lo is not None and (value <= lo if lo_open else value < lo):
        ok = False
    if ok and hi is not None and value > hi:
        ok = False
    if not ok:
        kind = "an integer" if integer else "a number"
        rng = []
        if lo is not None:
            rng.append(f"{'>' if lo_open else '>='} {lo}")
        if hi is not None:
            rng.append(f"<= {hi}")
        _fail(name, value, f"expected {kind} {' and '.join(rng)}".rstrip())
    return int(value) if integer else float(value)


def _keyed_dict(name, value, keys):
    """``value`` as a dict (None: empty) whose keys are all in ``keys``; else a ValueError."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(name, value, f"expected a dict with keys {', '.join(keys)}")
    for key in value:
        if key not in keys:
            _fail(f"{name}[{key!r}]", value[key], f"known keys: {', '.join(keys)}")
    return value


def _guest_mem(name, value):
    size = parse_size(value, name)
    if size <= 0 or size % TOP_BLOCK:
        _fail(
            name,
            value,
            "guest memory must be a positive whole number of order-10 blocks (4 MiB), "
            "e.g. '4GiB' or '5GiB'",
        )
    return limits.bounded(name, size, TOP_BLOCK, bounds.MAX_GUEST_MEM, "a size", "bytes",
                          given=value)


def _check_aliases(cfg, module):
    """Bound the older SimConfig fields that stand for ``module``'s parameters by the
    parameter's own range (``balloon_interval_s`` as the static policy's ``interval_s``)."""

    for p in module.PARAMS.values():
        if p.field is not None:
            _check(p.field, p, getattr(cfg, p.field))


def _check_read(field, value, policy):
    """Refuse an older SimConfig field set while ``policy`` ignores it: only a policy that
    declares it as one of its parameters (``Param(field=...)``) reads it."""
    def reads(name):
        return any(p.field == field for p in policy_module(name).PARAMS.values())

    if not reads(policy):
        readers = " or ".join(repr(name) for name in POLICIES if reads(name))
        _fail(field, value, f"only policy {readers} reads it, and policy={policy!r} would "
                            "ignore it; leave it None (or set the policy's own parameters in "
                            "policy_params)")


def _intervals(cfg):
    """The periods (s) of the policy's and the mechanism's rounds: work per simulated second."""
    out = []
    for settings in (cfg.policy_settings(), cfg.mechanism_settings()):
        for key, value in settings.items():
            if key.endswith(("interval_s", "delay_s")) and isinstance(value, float | int) \
                    and value > 0:
                out.append(float(value))
    return out


def _params(name, workload, params):
    """Validate ``params`` for ``workload`` against its spec (``fphlib.workloads.COMMON`` and
    the module's ``PARAMS``); return a canonical dict (sizes as ints)."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        _fail(name, params, "expected a dict of workload parameters")
    spec = workload_spec(workload)
    for key, value in params.items():
        if key not in spec:
            _fail(f"{name}[{key!r}]", value,
                  f"unknown parameter for workload {workload!r}; known: {', '.join(spec)}")
    out = validate(name, f"workload {workload!r}", spec, params)
    settings = workload_settings(workload, out)
    kernel = settings["boot_cache"] + settings["boot_slab"]
    if kernel > 1.0:
        _fail(f"{name}['boot_cache']", settings["boot_cache"],
              f"boot_cache + boot_slab are fractions of the boot footprint and sum to "
              f"{kernel:g} > 1")
    check = getattr(workload_module(workload), "check_params", None)
    if check is not None:
        check(settings)
    return out


def _workload(name, value):
    if not isinstance(value, str) or value not in WORKLOADS:
        _fail(name, value, f"known workloads: {', '.join(WORKLOADS)}")
    return value


@dataclass(frozen=True)
class SimConfig:
    """One simulation run: host, guests, workload, hinting mechanism, costs and sampling.

    Parameters
    ----------
    host_mem, host_swap : int or str
        Host RAM and swap in bytes (``"16GiB"``). ``host_swap=0``: no swap, OOM kills.
    host_thp : bool
        Back guest memory with 2 MiB host THPs (refaults and discards per 2 MiB).
    guests : int
        Number of guests (1..256).
    guest_mem : int or str
        Memory per guest, a whole number of 4 MiB blocks.
    vcpus : int
        vCPUs per guest (1..64); each has its own order-0 pcp list.
    workload, workload_params : str, dict
        Workload of every guest (``idle``, ``memhog``, ``churn``, ``trace``) and its
        parameters (``fphlib.workloads.workload_spec(name)``: ``COMMON`` and the module's
        ``PARAMS``).
    mechanism : str
        A registered mechanism (``fphlib.hinting.MECHANISMS``): ``none``, ``page_reporting``,
        ``balloon``, ...
    mechanism_params : dict
        The mechanism's parameters (its module's ``PARAMS``); unknown keys or values out of
        range raise ``ValueError`` naming the key and the allowed keys and range.
    hint_order : int
        Block size (order) the hinting mechanisms work in: ``page_reporting_order`` (default
        pageblock_order 9), Nitesh's bitmap chunk, ...
    report_capacity, report_delay_s : int, float
        Older names of page_reporting's ``capacity`` (32) and ``delay_s`` (2 s).
    policy, policy_params : str, dict
        The host policy (``fphlib.host.policy.POLICIES``; default ``static``) and its
        parameters (every policy takes ``interval_s``). A policy that cannot drive the
        mechanism (e.g. ``mom`` sets balloon sizes, ``page_reporting`` has no balloon) is
        refused with a ``ValueError`` saying why.
    costs : dict
        Overrides of ``fphlib.costs.DEFAULTS`` (seconds) and ``SIZE_DEFAULTS``.
    duration_s, sample_s : float
        Simulated time and sampling interval of the time series.
    seed : int
        Seed of every random choice (``numpy.random.SeedSequence``).
    debug : bool
        Check page conservation and list invariants at every sample.
    guest_overrides : tuple of dict
        Entry ``i`` overrides guest ``i``: keys ``mem``, ``workload``, ``workload_params``,
        ``start_s`` (when the guest boots), and the host policy's per-guest settings
        ``shares`` (ESX shares, default 1000), ``min`` (guaranteed memory, default 0) and
        ``max`` (configured size, default ``mem``) used by ``proportional_share``,
        ``idle_tax`` and ``mom``; ``oom_score_adj`` (-1000..1000, default 0) of the guest's
        QEMU process for the host OOM killer (-1000: never killed); ``cooperation``
        (how the guest answers the host's asks: ``{"answers": fraction 0..1 of asks for
        memory answered, "delay_s": answer latency, "cap": most memory it gives}``, default
        ``{"answers": 1, "delay_s": 0, "cap": None}``: every ask at once and in full;
        fphlib.guest.cooperation).
    balloon_target : int, str or None
        Older name of the ``static`` policy's ``target``: memory the host wants each guest to
        keep (balloon); None = never inflate. Refused with any other policy (it would be
        ignored).
    balloon_interval_s : float
        Older name of the ``static`` policy's ``interval_s`` (oVirt MOM interval, 10 s).
    deflate_on_oom : bool
        Older name of the balloon's ``deflate_on_oom`` (VIRTIO_BALLOON_F_DEFLATE_ON_OOM).
    migration : dict or None
        Live-migrate guest 0 (:mod:`fphlib.host.migration`): ``at_s`` (start), ``bandwidth``
        (bytes/s, or a size per second such as ``"1.25GB"``, ``"100GiB"``; binary units as
        QEMU's ``migrate_set_speed``), ``downtime_ms`` (the downtime limit) and optionally
        ``max_rounds`` (passes before the VM is stopped anyway, default 30).
    host_reserve : int, str or None
        Host memory the host keeps for itself (kernel, slab, services), counted in host RSS
        from the start. None: ``fphlib.costs.HOST_RESERVE`` (360 MiB, an idle Linux
        host's MemTotal - MemAvailable), but at most 1/8 of ``host_mem`` (scaled-down hosts).
    host_swap_bandwidth : float or str
        The swap device's bandwidth in bytes/s (or a size per second, ``"200MiB"``), shared by
        swap-out and swap-in; 0 = no limit (only the per-page CPU costs). Default
        ``fphlib.costs.SWAP_BANDWIDTH`` (~205 MB/s).
    host_kswapd, host_khugepaged : bool
        The host's background reclaim (kswapd, from the low to the high watermark) and THP
        collapse (khugepaged, with ``host_thp``); :mod:`fphlib.host.daemons`.
    host_madvise : str or None
        How the host discards a hinted or ballooned page: ``"dontneed"`` (MADV_DONTNEED: the
        page leaves RSS at once) or ``"free"`` (MADV_FREE: it stays in RSS, lazily freed,
        until host reclaim takes it first; a guest write before that keeps it). None: the
        mechanism's ``MADVISE`` (its series' QEMU: ``hinting_bitmap`` free, as RFC v10/v11;
        the others dontneed); :mod:`fphlib.host.backing`.
    guest_swap : int or str
        Swap space of each guest (bytes; default 0: no guest swap, as a cloud image). The
        guest's reclaim (fphlib.guest.reclaim) swaps the workload's anonymous memory out to it
        once the page cache is gone.

    Notes
    -----
    Validated once, when built: every value that becomes a size, a rate, an interval or a
    loop bound in the engine is bounded (:mod:`fphlib.api.limits`), and a run whose estimated
    work exceeds ``bounds.MAX_EVENTS`` is refused; each ``ValueError`` names the field and the
    allowed range. Numpy scalars are accepted as the numbers they hold. The config is then
    immutable, nested dicts included (read-only mappings, tuples), so its hash is stable;
    ``dataclasses.replace(cfg, ...)`` builds a new one and validates it again.
    """

    host_mem: int | str = _field("16GiB", kind="size", help="host RAM, e.g. 16GiB")
    host_swap: int | str = _field(0, kind="size",
        help="host swap capacity; 0 = no swap (the host OOM-kills a guest instead)")
    host_thp: bool = _field(True, kind="bool",
        help="back guest memory with 2 MiB transparent huge pages on the host")
    guests: int = _field(1, kind="int", help="number of guests on the host")
    guest_mem: int | str = _field("4GiB", kind="size",
        help="RAM of each guest; a whole number of 4 MiB (order-10) blocks")
    vcpus: int = _field(2, kind="int", help="vCPUs per guest (one per-CPU page list each)")
    workload: str = _field("idle", kind="choice", help="workload of every guest")
    workload_params: dict = _field(default_factory=dict, kind="dict",
        help="workload parameters as a JSON object, e.g. '{\"size\": \"4GiB\"}'; --param KEY=VALUE"
             " sets one key")
    mechanism: str = _field("none", kind="choice", help="free page hinting mechanism")
    mechanism_params: dict = _field(default_factory=dict, kind="dict",
        help="the mechanism's parameters as a JSON object (listed below)")
    hint_order: int = _field(9, kind="int",
        help="smallest order reported/hinted (9 = 2 MiB pageblock, 10 = 4 MiB)")
    report_capacity: int = _field(32, kind="int",
        help="older name of page_reporting's capacity: blocks per report "
             "(PAGE_REPORTING_CAPACITY)")
    report_delay_s: float = _field(2.0, kind="float",
        help="older name of page_reporting's delay_s: delay before a reporting pass "
             "(PAGE_REPORTING_DELAY), seconds")
    costs: dict = _field(default_factory=dict, kind="dict",
        help="cost overrides as a JSON object; --cost KEY=VALUE sets one key")
    duration_s: float = _field(60.0, kind="float", help="simulated time, seconds")
    sample_s: float = _field(0.5, kind="float", help="sampling period of the time series, seconds")
    seed: int = _field(0, kind="int", help="root seed (same config + seed => identical results)")
    debug: bool = _field(False, kind="bool",
        help="check page conservation at every sample (slower)")
    guest_overrides: tuple = _field((), kind="list",
        help="per-guest overrides as a JSON list of objects with keys mem, workload, "
             "workload_params, start_s, shares, min, max, oom_score_adj, cooperation")
    balloon_target: int | str | None = _field(None, kind="size",
        help="older name of the static policy's target: memory each guest keeps, e.g. 4.5GiB "
             "(balloon mechanism; 'none' = never inflate)")
    balloon_interval_s: float = _field(10.0, kind="float",
        help="older name of the static policy's interval_s: how often the host (re)sends the "
             "balloon target, seconds")
    deflate_on_oom: bool = _field(True, kind="bool",
        help="older name of the balloon's deflate_on_oom (VIRTIO_BALLOON_F_DEFLATE_ON_OOM)")
    policy: str = _field("static", kind="choice",
        help="host policy: whom the host asks for memory, and when")
    policy_params: dict = _field(default_factory=dict, kind="dict",
        help="the host policy's parameters as a JSON object (listed below)")
    migration: dict | None = _field(None, kind="dict",
        help="live-migrate guest 0: a JSON object with at_s, bandwidth (bytes/s or e.g. "
             "\"1.25GB\", \"100GiB\" per second), downtime_ms, optional max_rounds")
    # the host's own memory, swap device and daemons (fphlib.host.backing, .daemons)
    host_reserve: int | str | None = _field(None, kind="size",
        help="host memory the host keeps for itself (kernel, services), in use from the start;"
             " default 360 MiB, at most host_mem / 8")
    host_swap_bandwidth: float | str = _field(SWAP_BANDWIDTH, kind="json",
        help="swap device bandwidth, bytes/s or e.g. \"200MiB\" per second; 0 = no limit")
    host_kswapd: bool = _field(True, kind="bool",
        help="host kswapd: background reclaim from the low to the high watermark")
    host_khugepaged: bool = _field(True, kind="bool",
        help="host khugepaged: collapse split 2 MiB ranges back into THPs")
    host_madvise: str | None = _field(None, kind="choice",
        help="how the host discards hinted and ballooned pages: dontneed (MADV_DONTNEED: "
             "out of RSS at once) or free (MADV_FREE: lazily, when host reclaim needs the "
             "memory; a guest write first keeps the page); default: the mechanism's own")
    # guest memory beyond anonymous pages (fphlib.guest.reclaim)
    guest_swap: int | str = _field(0, kind="size",
        help="swap space of each guest; 0 = none (the guest reclaims page cache only, then "
             "fails the allocation)")

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: canonicalise once, here
        for f in dataclasses.fields(self):  # numpy scalars and frozen values, as literals
            set_(self, f.name, plain(getattr(self, f.name)))
        for name, lo, hi in (("host_mem", bounds.MIN_HOST_MEM, bounds.MAX_HOST_MEM),
                             ("host_swap", 0, bounds.MAX_HOST_SWAP)):
            given = getattr(self, name)
            set_(self, name, parse_size(given, name))
            limits.bounded(name, getattr(self, name), lo, hi, "a size", "bytes", given=given)
        if self.host_reserve is not None:
            given = self.host_reserve
            set_(self, "host_reserve", parse_size(given, "host_reserve"))
            limits.bounded("host_reserve", self.host_reserve, 0, self.host_mem - TOP_BLOCK,
                           "a size below host_mem", "bytes", given=given)
        given = self.host_swap_bandwidth
        bw = parse_size(given, "host_swap_bandwidth") if isinstance(given, str) else given
        set_(self, "host_swap_bandwidth", float(limits.bounded(
            "host_swap_bandwidth", bw, 0, bounds.MAX_RATE, "a rate (0 = no limit)", "bytes/s",
            given=given)))
        given = self.guest_swap
        set_(self, "guest_swap", parse_size(given, "guest_swap"))
        limits.bounded("guest_swap", self.guest_swap, 0, bounds.MAX_HOST_SWAP, "a size", "bytes",
                       given=given)
        for name in ("host_thp", "debug", "deflate_on_oom", "host_kswapd", "host_khugepaged"):
            if not isinstance(getattr(self, name), bool):
                _fail(name, getattr(self, name), "expected True or False")
        set_(self, "guests", check_number("guests", self.guests, lo=1, hi=bounds.MAX_GUESTS,
                                                integer=True))
        set_(self, "guest_mem", _guest_mem("guest_mem", self.guest_mem))
        set_(self, "vcpus", check_number("vcpus", self.vcpus, lo=1, hi=bounds.MAX_VCPUS,
                                         integer=True))
        set_(self, "workload", _workload("workload", self.workload))
        set_(
            self,
            "workload_params",
            _params("workload_params", self.workload, self.workload_params),
        )
        if not isinstance(self.mechanism, str) or self.mechanism not in MECHANISMS:
            _fail("mechanism", self.mechanism, f"known mechanisms: {', '.join(MECHANISMS)}")
        if not isinstance(self.policy, str) or self.policy not in POLICIES:
            _fail("policy", self.policy, f"known policies: {', '.join(POLICIES)}")
        set_(
            self,
            "hint_order",
            check_number("hint_order", self.hint_order, lo=0, hi=NR_ORDERS - 1, integer=True),
        )
        cap = check_number("report_capacity", self.report_capacity, lo=1, hi=1024, integer=True)
        if cap & (cap - 1):
            _fail("report_capacity", cap, "must be a power of 2 in 1..1024 (the kernel's 32)")
        set_(self, "report_capacity", cap)
        set_(
            self,
            "report_delay_s",
            check_number("report_delay_s", self.report_delay_s, lo=0, lo_open=True,
                    hi=bounds.MAX_REPORT_DELAY_S),
        )
        set_(self, "costs", validate_costs(self.costs))
        limits.check_costs(self.costs)
        set_(
            self,
            "duration_s",
            check_number("duration_s", self.duration_s, lo=0, lo_open=True,
                    hi=bounds.MAX_DURATION_S),
        )
        set_(self, "sample_s",
             check_number("sample_s", self.sample_s, lo=bounds.MIN_SAMPLE_S,
                          hi=bounds.MAX_SAMPLE_S))
        if self.sample_s > self.duration_s:
            _fail("sample_s", self.sample_s, f"must be <= duration_s ({self.duration_s})")
        if self.duration_s / self.sample_s > bounds.MAX_SAMPLES:
            _fail("sample_s", self.sample_s, f"too small: more than {bounds.MAX_SAMPLES:,} samples")
        record = (self.duration_s / self.sample_s + 1) * self.guests * 64  # 8 float64 columns
        if record > bounds.MAX_RECORD_BYTES:
            _fail(
                "sample_s",
                self.sample_s,
                f"the time series would take {record / 2**30:.1f} GiB for {self.guests} guests "
                f"over {self.duration_s:g} s; raise sample_s or lower duration_s",
            )
        set_(self, "seed", check_number("seed", self.seed, lo=0, hi=2**63 - 1, integer=True))
        set_(self, "guest_overrides", self._check_overrides(self.guest_overrides))
        if self.host_madvise is not None and self.host_madvise not in MADVISE_CHOICES:
            _fail("host_madvise", self.host_madvise,
                  f"expected one of {', '.join(MADVISE_CHOICES)} or None (the mechanism's own)")
        set_(self, "migration", validate_migration(self.migration, self.duration_s))
        if self.balloon_target is not None:
            set_(self, "balloon_target", parse_size(self.balloon_target, "balloon_target"))
        set_(
            self,
            "balloon_interval_s",
            check_number("balloon_interval_s", self.balloon_interval_s, lo=bounds.MIN_INTERVAL_S,
                    hi=bounds.MAX_INTERVAL_S),
        )
        for kind, module in (("mechanism", mechanism_module(self.mechanism)),
                             ("policy", policy_module(self.policy))):
            name = f"{kind}_params"
            given = validate(name, f"{kind} {module.NAME!r}", module.PARAMS, getattr(self, name))
            for key, p in module.PARAMS.items():
                default = next(f.default for f in dataclasses.fields(self) if f.name == p.field) \
                    if p.field else None
                if key in given and p.field and getattr(self, p.field) != default:
                    _fail(f"{name}[{key!r}]", given[key],
                          f"also set as {p.field}={getattr(self, p.field)!r}; set one of them")
            set_(self, name, given)
            _check_aliases(self, module)
            checker = getattr(module, "check_params", None)
            if checker is not None:
                checker(effective(module.PARAMS, given, self))
        if self.balloon_target is not None:
            _check_read("balloon_target", self.balloon_target, self.policy)
        pair_check = getattr(policy_module(self.policy), "check", None)
        if pair_check is not None:  # refuse a policy with a mechanism it cannot drive
            pair_check(self.mechanism, self.ask_mode(), self.policy_settings())
        self._check_scale()
        for name in ("workload_params", "costs", "mechanism_params", "policy_params",
                     "guest_overrides", "migration"):
            set_(self, name, freeze(getattr(self, name)))
        for problem in _oversized_guests(self):
            warnings.warn(problem, UserWarning, stacklevel=3)

    def problems(self):
        """Why this scenario cannot run meaningfully (:func:`scenario_problems`); empty if
        it can."""
        return scenario_problems(self)

    def _check_scale(self):
        """Total guest memory and the estimated work of the run within ``limits``."""
        total = sum(self.guest_spec(g)["mem"] for g in range(self.guests))
        if total > bounds.MAX_TOTAL_GUEST_MEM:
            _fail("guest_mem", self.guest_mem,
                  f"the guests' memory adds up to {format_size(total)}, above the limit of "
                  f"{format_size(bounds.MAX_TOTAL_GUEST_MEM)} for all guests; fewer or "
                  "smaller guests")
        limits.check_work(self, _intervals(self))

    def _check_overrides(self, overrides):
        if overrides is None:
            return ()
        if isinstance(overrides, dict) or not isinstance(overrides, list | tuple):
            _fail("guest_overrides", overrides, "expected a list of per-guest dicts")
        if len(overrides) > self.guests:
            _fail(
                "guest_overrides",
                f"{len(overrides)} entries",
                f"at most one entry per guest (guests={self.guests})",
            )
        out = []
        for i, entry in enumerate(overrides):
            name = f"guest_overrides[{i}]"
            entry = _keyed_dict(name, entry, OVERRIDE_KEYS)
            canon = {}
            if "mem" in entry:
                canon["mem"] = _guest_mem(f"{name}['mem']", entry["mem"])
            workload = self.workload
            if "workload" in entry:
                workload = canon["workload"] = _workload(f"{name}['workload']", entry["workload"])
            if "workload_params" in entry or "workload" in entry:
                params = entry.get("workload_params")
                if params is None and workload == self.workload:
                    params = self.workload_params
                canon["workload_params"] = _params(
                    f"{name}['workload_params']", workload, params
                )
            if "start_s" in entry:
                canon["start_s"] = check_number(
                    f"{name}['start_s']", entry["start_s"], lo=0, hi=self.duration_s
                )
            # host policy settings of the guest (ESX shares, min, max; MOM min, max)
            if "shares" in entry:
                canon["shares"] = check_number(f"{name}['shares']", entry["shares"], lo=0,
                                          lo_open=True, hi=1e12)
            mem = canon.get("mem", self.guest_mem)
            for key in ("min", "max"):
                if key in entry:
                    canon[key] = parse_size(entry[key], f"{name}[{key!r}]")
                    if not 0 <= canon[key] <= mem:
                        _fail(f"{name}[{key!r}]", entry[key],
                              f"expected a size in 0..{mem} bytes (the guest's memory)")
            if "oom_score_adj" in entry:
                canon["oom_score_adj"] = check_number(
                    f"{name}['oom_score_adj']", entry["oom_score_adj"], lo=OOM_SCORE_ADJ_MIN,
                    hi=OOM_SCORE_ADJ_MAX, integer=True)
            if "cooperation" in entry:
                canon["cooperation"] = self._cooperation(f"{name}['cooperation']",
                                                         entry["cooperation"], mem)
            if canon.get("min", 0) > canon.get("max", mem):
                _fail(f"{name}['min']", entry["min"], f"must not exceed max ({canon['max']})")
            out.append(canon)
        return tuple(out)

    def _cooperation(self, name, value, mem):
        """A guest's ``cooperation`` dict, every key filled in (fphlib.guest.cooperation)."""
        value = _keyed_dict(name, value, COOPERATION_KEYS)
        out = dict(COOPERATION)
        if "answers" in value:
            out["answers"] = check_number(f"{name}['answers']", value["answers"], lo=0, hi=1)
        if "delay_s" in value:
            out["delay_s"] = check_number(f"{name}['delay_s']", value["delay_s"], lo=0,
                                     hi=self.duration_s)
        if value.get("cap") is not None:
            cap = parse_size(value["cap"], f"{name}['cap']")
            if not 0 <= cap <= mem:
                _fail(f"{name}['cap']", value["cap"],
                      f"expected a size in 0..{mem} bytes (the guest's memory)")
            out["cap"] = cap
        return out

    def host_reserve_bytes(self):
        """The host's own memory: ``host_reserve``, or the default capped at host_mem / 8
        (``fphlib.costs.HOST_RESERVE_MAX_FRACTION``)."""
        if self.host_reserve is not None:
            return self.host_reserve
        reserve = int(min(HOST_RESERVE, self.host_mem * HOST_RESERVE_MAX_FRACTION))
        return reserve // PAGE_SIZE * PAGE_SIZE

    def madvise(self):
        """How the host discards in this run: ``host_madvise``, else the mechanism's."""
        return self.host_madvise or madvise_of(self.mechanism)

    def ask_mode(self):
        """Which host ask the mechanism reads: ``"pages"``, ``"hint"`` or ``None``."""
        return ask_mode(self.mechanism)

    def mechanism_settings(self):
        """Every parameter of the mechanism: given, else from its older field, else default."""
        return effective(mechanism_module(self.mechanism).PARAMS, self.mechanism_params, self)

    def policy_settings(self):
        """Every parameter of the host policy, as :meth:`mechanism_settings`."""
        return effective(policy_module(self.policy).PARAMS, self.policy_params, self)

    def plugins(self):
        """The plug-ins this run uses: ``{"mechanism eager": {"source", "digest"}, ...}``
        (empty when it uses only fphlib's own modules). Sweep cache keys and saved results
        include it, so an edited plug-in never serves results of its older source."""
        used = [("mechanism", self.mechanism), ("policy", self.policy)]
        used += [("workload", w) for w in
                 sorted({self.guest_spec(g)["workload"] for g in range(self.guests)})]
        out = {}
        for kind, name in used:
            registry = REGISTRIES[kind]
            if registry.is_plugin(name):
                out[f"{kind} {name}"] = registry.plugins()[name]
        return out

    def guest_spec(self, g):
        """The effective ``mem``, ``workload``, ``workload_params``, ``start_s`` and
        ``cooperation`` of guest g."""
        spec = {
            "mem": self.guest_mem,
            "workload": self.workload,
            "workload_params": self.workload_params,
            "start_s": 0.0,
            "cooperation": COOPERATION,
        }
        if g < len(self.guest_overrides):
            spec.update(self.guest_overrides[g])
        return spec

    def to_dict(self):
        """A JSON-serialisable dict; ``SimConfig.from_dict(d) == self``."""
        d = {f.name: thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}
        d["guest_overrides"] = [dict(o) for o in d["guest_overrides"]]
        for spec in [d["workload_params"]] + [o.get("workload_params") or {} for o in
                                             d["guest_overrides"]]:
            if "orders" in spec:
                spec["orders"] = {str(k): v for k, v in spec["orders"].items()}
        return d

    @classmethod
    def from_dict(cls, d):
        """Build from ``to_dict()`` output (or JSON of it); unknown keys raise ValueError."""
        if not isinstance(d, dict):
            _fail("config", d, "expected a dict from SimConfig.to_dict()")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                _fail(key, d[key], f"unknown SimConfig field; known: {', '.join(sorted(known))}")
        kwargs = dict(d)
        if isinstance(kwargs.get("guest_overrides"), list):  # JSON has lists, not tuples
            kwargs["guest_overrides"] = tuple(kwargs["guest_overrides"])
        return cls(**kwargs)

    def __hash__(self):
        # dict fields make the generated hash fail; hash the canonical JSON instead
        return hash(self.to_json())

    def to_json(self):
        """``to_dict()`` as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Inverse of ``to_json``."""
        return cls.from_dict(json.loads(text))


# field -> (kind, help) of every SimConfig field, from the fields' metadata: the CLI's flags
# and the widgets' tooltips
FIELD_HELP = {f.name: (f.metadata["kind"], f.metadata["help"])
              for f in dataclasses.fields(SimConfig)}


def _oversized_guests(cfg):
    """Rule 1 of :func:`scenario_problems`: guests larger than host RAM + swap, one sentence
    per size (naming the guests: ``guest 0``, ``guests 0-5``)."""
    total = cfg.host_mem + cfg.host_swap
    by_mem = {}
    for g in range(cfg.guests):
        mem = cfg.guest_spec(g)["mem"]
        if mem > total:
            by_mem.setdefault(mem, []).append(g)
    out = []
    for mem, ids in by_mem.items():
        who = (f"guest {ids[0]}" if len(ids) == 1 else
               f"guests {ids[0]}-{ids[-1]}" if ids[-1] - ids[0] == len(ids) - 1 else
               "guests " + ", ".join(map(str, ids)))
        kill = ("it if it touches it all" if len(ids) == 1 else
                "any of them that touches all its memory")
        out.append(f"{who}: guest_mem {format_size(mem)} is larger than host RAM + swap "
                   f"({format_size(total)}); the host will OOM-kill {kill}")
    return out


def scenario_problems(cfg):
    """Why a valid ``cfg`` cannot run meaningfully, as sentences; empty when it can.

    The rule (the notebooks disable Run on any of these and show them):

    1. a guest's memory is larger than the host's RAM + swap: touching it all gets the guest
       OOM-killed, and its memory plots show free memory the host never had;
    2. the guests' boot footprints (the workloads' ``boot`` parameter) plus the host's
       per-guest overhead (cost ``guest_overhead``) and its own memory
       (:meth:`SimConfig.host_reserve_bytes`) add up to more than host RAM + swap: guests are
       OOM-killed while booting, before any workload or hinting runs.

    A :class:`SimConfig` that breaks rule 1 also warns when made; neither rule refuses it
    (overcommit and OOM kills are what some experiments measure).

    Parameters
    ----------
    cfg : SimConfig

    Returns
    -------
    list of str
    """
    out = _oversized_guests(cfg)
    total = cfg.host_mem + cfg.host_swap
    overhead = cfg.costs.get("guest_overhead", SIZE_DEFAULTS["guest_overhead"][0])
    boot = sum(min(parse_size(workload_settings(spec["workload"], spec["workload_params"])
                              ["boot"], "boot"), spec["mem"])
               for spec in (cfg.guest_spec(g) for g in range(cfg.guests)))
    reserve = cfg.host_reserve_bytes()
    need = boot + cfg.guests * overhead + reserve
    if need > total:
        out.append(f"the {cfg.guests} guests' boot footprints ({format_size(boot)}) with the "
                   f"host's overhead ({format_size(cfg.guests * overhead + reserve)}) need "
                   f"{format_size(need)}, more than host RAM + swap ({format_size(total)}): "
                   "they are OOM-killed while booting")
    return out
