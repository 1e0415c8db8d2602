"""Grid expansion and validation: every combination is a valid SimConfig before any run.

A grid is either a dict ``{key: [values]}`` (the cartesian product, in key order) or a list
of dicts (zipped: one combination per dict). Keys are SimConfig fields or dotted keys into a
dict-valued field (``"workload_params.size"``, ``"costs.vmexit"``, and any dict field added
later such as ``mechanism_params``), so no field needs a special case here.
"""

import dataclasses
import hashlib
import itertools
import json
import math

import numpy as np

from ..api import limits
from ..api.config import SimConfig, check_number

_SEQUENCES = (list, tuple, range, np.ndarray)
CHECK_BAR_FROM = 1000  # combinations: from here the check of the grid shows a progress bar


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep: combination ``combo`` (grid order), replicate, its config."""

    combo: int
    replicate: int
    params: dict  # grid key -> the value the SimConfig holds (canonical, e.g. sizes in bytes)
    config: SimConfig
    config_json: str
    config_hash: str


def _fields():
    return {f.name: f for f in dataclasses.fields(SimConfig)}


def _is_dict_field(name, value):
    # a dict now, or declared as one (a field that defaults to None, e.g. ``dict | None``)
    if isinstance(value, dict):
        return True
    f = _fields().get(name)
    return value is None and f is not None and "dict" in str(f.type)


def _dict_fields(base_dict):
    return sorted(k for k, v in base_dict.items() if _is_dict_field(k, v))


def _check_key(key, base_dict):
    """Refuse unknown fields, a dotted key into a non-dict field, and ``seed``."""
    fields = _fields()
    if not isinstance(key, str) or not key:
        raise ValueError(f"grid key {key!r}: expected a SimConfig field name (a string)")
    head, _, rest = key.partition(".")
    if head not in fields:
        raise ValueError(
            f"grid key {key!r}: unknown SimConfig field {head!r}; known: {', '.join(fields)}"
        )
    if head == "seed":
        raise ValueError(
            "grid key 'seed': replicate seeds come from seeds=N (SeedSequence(base.seed)); "
            "sweep base.seed or raise seeds instead"
        )
    if rest and not _is_dict_field(head, base_dict[head]):
        raise ValueError(
            f"grid key {key!r}: {head!r} is not a dict field, so it takes no dotted key; "
            f"dict fields: {', '.join(_dict_fields(base_dict))}"
        )
    if "." in key and any(not part for part in key.split(".")):
        raise ValueError(f"grid key {key!r}: empty part in the dotted key")


def _plain(value):
    """numpy scalars to Python ones, so values survive JSON and SimConfig's type checks."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def count_combinations(grid, base_dict):
    """The number of combinations of ``grid``, checked and counted without expanding it (a
    product of lengths: ``range(10**12)`` is counted, not listed); refuses malformed grids."""
    if isinstance(grid, dict):
        if not grid:
            raise ValueError("grid: empty dict; expected {field: [values, ...]}")
        for key, values in grid.items():
            _check_key(key, base_dict)
            if not isinstance(values, _SEQUENCES):
                raise ValueError(
                    f"grid[{key!r}]: {values!r} is not a list; give the values to sweep as a "
                    f"list, e.g. {{{key!r}: [{values!r}]}}"
                )
            if len(values) == 0:
                raise ValueError(f"grid[{key!r}]: empty list; give at least one value")
        return math.prod(len(values) for values in grid.values())
    if isinstance(grid, list | tuple):
        if not grid:
            raise ValueError("grid: empty list; expected a list of {field: value} dicts")
        return len(grid)
    raise ValueError(
        f"grid: {type(grid).__name__} is not allowed; expected a dict {{field: [values]}} "
        "(product) or a list of {field: value} dicts (zipped)"
    )


def normalize_grid(grid, base_dict):
    """Return a list of combinations (dicts key -> value), refusing malformed grids."""
    count_combinations(grid, base_dict)
    if isinstance(grid, dict):
        keys = list(grid)
        lists = [[_plain(v) for v in grid[k]] for k in keys]
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists)]
    out = []
    for i, entry in enumerate(grid):
        if not isinstance(entry, dict) or not entry:
            raise ValueError(
                f"grid[{i}]: {entry!r} is not allowed; a zipped grid is a list of non-empty "
                "{field: value} dicts"
            )
        for key in entry:
            _check_key(key, base_dict)
        out.append({k: _plain(v) for k, v in entry.items()})
    return out


def apply(base_dict, combo):
    """``base_dict`` (``SimConfig.to_dict()``) with ``combo`` applied; whole fields first."""
    d = json.loads(json.dumps(base_dict))  # deep copy that leaves the base untouched
    for key in sorted(combo, key=lambda k: "." in k):
        head, _, rest = key.partition(".")
        if not rest:
            d[head] = combo[key]
            continue
        if d[head] is None:
            d[head] = {}
        target = d[head]
        parts = rest.split(".")
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = combo[key]
    return d


def lookup(d, key):
    """The value at a (dotted) key of a config dict, or None if absent."""
    value = d
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def replicate_seeds(base_seed, seeds):
    """Seeds of replicates 0..seeds-1: ``SeedSequence(base_seed).spawn(seeds)``.

    Child ``r`` has spawn key ``(r,)`` whatever ``seeds`` is, so raising ``seeds`` keeps the
    earlier replicates (and their cache entries). Every combination uses the same replicate
    seeds (common random numbers: differences between combinations are not seed noise).
    """
    seeds = check_seeds(seeds)
    children = np.random.SeedSequence(base_seed).spawn(seeds)
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]


def check_seeds(seeds):
    """``seeds`` as an int in 1..``limits.MAX_SEEDS``, else a ValueError naming ``seeds``
    (a float, even ``3.0`` or ``1e9``, and a bool are refused: a count is an integer)."""
    if isinstance(seeds, bool) or not isinstance(seeds, int | np.integer):
        raise ValueError(f"seeds: {seeds!r} is not allowed; expected an integer in "
                         f"1..{limits.MAX_SEEDS} (replicates per combination)")
    return check_number("seeds", int(seeds), lo=1, hi=limits.MAX_SEEDS, integer=True)


def check_max_runs(max_runs):
    """``max_runs`` (None: ``limits.MAX_SWEEP_RUNS``) as an int in
    1..``limits.MAX_SWEEP_RUNS_RAISED``, else a ValueError naming ``max_runs``."""
    if max_runs is None:
        return limits.MAX_SWEEP_RUNS
    if isinstance(max_runs, bool) or not isinstance(max_runs, int | np.integer):
        raise ValueError(f"max_runs: {max_runs!r} is not allowed; expected an integer in "
                         f"1..{limits.MAX_SWEEP_RUNS_RAISED:,} (default "
                         f"{limits.MAX_SWEEP_RUNS:,})")
    return check_number("max_runs", int(max_runs), lo=1, hi=limits.MAX_SWEEP_RUNS_RAISED,
                        integer=True)


def count_runs(grid, base=None, seeds=1, max_runs=None):
    """The runs of a sweep (combinations x ``seeds``), counted before anything is expanded;
    a ValueError above ``max_runs`` (default :data:`fphlib.api.limits.MAX_SWEEP_RUNS`)
    saying the count, the bound and how to raise it."""
    base = _base(base)
    seeds = check_seeds(seeds)
    max_runs = check_max_runs(max_runs)
    n = count_combinations(grid, base.to_dict()) * seeds
    if n > max_runs:
        raise ValueError(
            f"grid: {n:,} runs ({n // seeds:,} combinations x seeds={seeds}) is above the "
            f"limit of {max_runs:,} runs of one sweep; split the sweep, or raise the limit "
            "with sweep(..., max_runs=N) (command line: --max-runs N); the default is "
            f"fphlib.api.limits.MAX_SWEEP_RUNS = {limits.MAX_SWEEP_RUNS:,}"
        )
    return n


def _base(base):
    if base is None:
        return SimConfig()
    if not isinstance(base, SimConfig):
        raise ValueError(f"base: expected a SimConfig, got {type(base).__name__}")
    return base


def config_hash(config_json):
    """SHA-256 of the canonical config JSON (``SimConfig.to_json``, sorted keys)."""
    return hashlib.sha256(config_json.encode()).hexdigest()


def _column_value(value):
    # dicts and lists (e.g. a swept guest_overrides) as JSON text: parquet needs one type
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def expand(grid, base=None, seeds=1, max_runs=None, progress=False):
    """Validate ``grid`` against ``base`` and return the runs, combination-major.

    The runs are counted first (:func:`count_runs`: combinations x ``seeds``, without
    expanding anything) and refused above ``max_runs``; the check of every combination then
    shows a ``tqdm.auto`` bar with ``progress`` from :data:`CHECK_BAR_FROM` combinations on
    (about a millisecond each).

    Raises
    ------
    ValueError
        For a malformed grid (naming the key), ``seeds`` that is not an integer in
        1..``limits.MAX_SEEDS``, more runs than ``max_runs``, or listing every combination
        that is not a valid SimConfig (key=value and the reason) — before anything runs.
    """
    base = _base(base)
    seeds = check_seeds(seeds)
    count_runs(grid, base, seeds, max_runs)
    base_dict = base.to_dict()
    combos = normalize_grid(grid, base_dict)
    seed_list = replicate_seeds(base.seed, seeds)
    keys = list(dict.fromkeys(k for c in combos for k in c))
    bad, runs = [], []
    from tqdm.auto import tqdm

    with tqdm(total=len(combos), desc="checking the grid", unit="config",
              disable=not progress or len(combos) < CHECK_BAR_FROM) as bar:
        for i, combo in enumerate(combos):
            bar.update(1)
            d = apply(base_dict, combo)
            try:
                cfg0 = SimConfig.from_dict(d)
            except ValueError as e:
                shown = ", ".join(f"{k}={v!r}" for k, v in combo.items())
                bad.append(f"  combination {i} ({shown}): {e}")
                continue
            canon = cfg0.to_dict()
            params = {k: _column_value(lookup(canon, k)) for k in keys}
            for r, seed in enumerate(seed_list):
                cfg = dataclasses.replace(cfg0, seed=seed)
                text = cfg.to_json()
                runs.append(Run(i, r, params, cfg, text, config_hash(text)))
    if bad:
        raise ValueError(
            f"grid: {len(bad)} of {len(combos)} combinations are not valid SimConfigs:\n"
            + "\n".join(bad)
        )
    return runs, keys
