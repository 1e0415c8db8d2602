"""Command line: ``python -m fphlib {simulate,demo,trace,sweep,validate,record}`` (also
installed as ``fphlib``).

- ``simulate``: one run from a JSON/TOML config file and/or flags (flags win), prints the
  summary table and saves the results (``SimResult.save``) to ``--out``.
- ``demo``: the headline comparison (none vs balloon vs page_reporting, three 5 GiB guests
  running memhog 4 GiB on a 16 GiB host); writes ``demo_host_rss.png``,
  ``demo_summary.csv`` and ``demo_summary.md`` to ``--out``.
- ``trace``: generate a churn trace file for the ``"trace"`` workload, or check one.
- ``validate``: the model against the published results it can express
  (:mod:`fphlib.validation`); prints the table, ``--out`` writes ``validation.csv`` and
  ``validation.md``.
- ``sweep``: a parameter sweep from a TOML file (``[base]``, ``[grid]``, ``seeds``) in process,
  on local worker processes or on a dask cluster; writes ``results.parquet`` to ``--out`` and
  caches each run under ``--out``/cache so a rerun resumes; prints the mean and 95 % interval
  over the seeds of each grid point (``--csv`` writes them).
- ``record``: the live kernel (root): ``record drain|trace|first-touch|probe``
  (:mod:`fphlib.observe.cli`).
"""

import argparse
import dataclasses
import json
import os
import sys
import time
import tomllib
from pathlib import Path

from .api.config import FIELD_HELP
from .errors import UserError
from .state.params import describe
from .units import SIZE_RULE


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``prog: error: message (see --help)``, exit 2."""

    def error(self, message):
        raise UserError(message, self.prog)


def _one_line(text):
    return " ".join(str(text).split())


def _choices(name):
    """Allowed values of a choice field, as registered by the engine."""
    if name == "mechanism":
        from .hinting import MECHANISMS

        return tuple(MECHANISMS)
    if name == "policy":
        from .host.policy import POLICIES

        return tuple(POLICIES)
    if name == "host_madvise":
        from .host.backing import MADVISE_CHOICES

        return MADVISE_CHOICES
    from .workloads import WORKLOADS

    return tuple(WORKLOADS)


def _params_epilog():
    """The parameters of every workload, mechanism and policy and the cost names, for the
    help text of ``simulate``."""
    from .costs import NAMES
    from .workloads import COMMON, WORKLOADS, workload_module

    lines = ["workload parameters (--param KEY=VALUE or workload_params in the file):"]
    lines.append("  every workload:")
    lines += [f"    {line}" for line in describe(COMMON)]
    for name in WORKLOADS:
        spec = describe(workload_module(name).PARAMS)
        lines.append(f"  {name}:" + ("" if spec else " (none)"))
        lines += [f"    {line}" for line in spec]
    lines.append(f"{SIZE_RULE}; times in seconds.")
    lines.append("")
    from .hinting import REGISTRY, mechanism_module
    from .host.policy import REGISTRY as POLICY_REGISTRY
    from .host.policy import policy_module

    for title, names, module in (("mechanism", REGISTRY, mechanism_module),
                                 ("policy", POLICY_REGISTRY, policy_module)):
        lines.append(f"{title} parameters (--{title}-params JSON):")
        for name in names:
            spec = describe(module(name).PARAMS)
            lines.append(f"  {name}:" + ("" if spec else " (none)"))
            lines += [f"    {line}" for line in spec]
    lines.append("")
    lines.append("costs (--cost NAME=VALUE; seconds, guest_overhead in bytes):")
    lines.append("  " + ", ".join(NAMES))
    lines.append("")
    lines.append("examples:")
    lines.append("  python -m fphlib simulate --guests 3 --guest-mem 5GiB --host-mem 16GiB "
                 "--workload memhog --param size=4GiB --mechanism page_reporting --out out/run1")
    lines.append("  python -m fphlib simulate --config run.toml --mechanism balloon "
                 "--balloon-target 4.5GiB")
    return "\n".join(lines)


def _sim_fields():
    from .api.config import SimConfig

    out = []
    for f in dataclasses.fields(SimConfig):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append((f.name, default))
    return out


def _json_value(text):
    """A JSON literal if it parses (numbers, true/false, null, objects), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _size_value(text):
    if text.lower() == "none":
        return None
    return int(text) if text.isdigit() else text


def _json_of(kind):
    def parse(text):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg}): {text!r}") from None
        want = dict if kind == "dict" else list
        if not isinstance(value, want):
            raise argparse.ArgumentTypeError(
                f"expected a JSON {'object' if want is dict else 'list'}, got {text!r}"
            )
        return value

    return parse


def _key_value(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, _json_value(value)


def _fmt_default(value):
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return repr(value) if isinstance(value, str) else str(value)


def _add_config_flags(parser):
    """One flag per SimConfig field; absent flags stay absent (so a config file can set it)."""
    group = parser.add_argument_group(
        "configuration (each overrides the config file; defaults are SimConfig's)"
    )
    for name, default in _sim_fields():
        kind, text = FIELD_HELP.get(name, ("json", "SimConfig field (JSON value)"))
        flag = "--" + name.replace("_", "-")
        text += f" (default: {_fmt_default(default)})"
        kw = dict(dest=name, default=argparse.SUPPRESS)
        if kind == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, help=text, **kw)
            continue
        if kind == "choice":
            choices = _choices(name)
            group.add_argument(flag, choices=choices, metavar="{" + ",".join(choices) + "}",
                               help=text, **kw)
            continue
        typ = {"size": _size_value, "int": int, "float": float, "dict": _json_of("dict"),
               "list": _json_of("list"), "json": _json_value}[kind]
        metavar = {"size": "SIZE", "int": "N", "float": "X", "dict": "JSON", "list": "JSON",
                   "json": "JSON"}[kind]
        if kind == "size":
            text = text.replace(" (default", "; SIZE is bytes or e.g. 512MiB, 4GiB (default")
        group.add_argument(flag, type=typ, metavar=metavar, help=text, **kw)
    group.add_argument("--param", dest="param", action="append", type=_key_value, default=[],
                       metavar="KEY=VALUE",
                       help="set one workload parameter (repeatable), e.g. --param size=4GiB")
    group.add_argument("--cost", dest="cost", action="append", type=_key_value, default=[],
                       metavar="KEY=VALUE",
                       help="override one cost (repeatable), e.g. --cost vmexit=1.5e-6")


def load_config_file(path):
    """Read a JSON (``.json``) or TOML (``.toml``) config file into a dict."""
    text_path = os.fspath(path)
    suffix = os.path.splitext(text_path)[1].lower()
    if suffix not in (".json", ".toml"):
        raise ValueError(f"config file {text_path!r}: unknown suffix {suffix!r}; use .json or "
                         ".toml")
    if os.path.exists(text_path) and not os.path.isfile(text_path):  # a FIFO would block
        raise ValueError(f"config file {text_path!r}: not a regular file")
    try:
        with open(text_path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"config file {text_path!r}: cannot read ({e.strerror})") from None
    try:
        if suffix == ".json":
            value = json.loads(data)
        else:
            value = tomllib.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {text_path!r}: not valid {suffix[1:].upper()}: {e}") \
            from None
    if not isinstance(value, dict):
        raise ValueError(f"config file {text_path!r}: the top level must be an object/table")
    return value


def config_from_args(args):
    """SimConfig from ``--config`` (if any) overridden by the flags given."""
    from .api.config import SimConfig

    d = load_config_file(args.config) if getattr(args, "config", None) else {}
    for name, _ in _sim_fields():
        if name in vars(args):
            d[name] = getattr(args, name)
    if args.param:
        d["workload_params"] = {**(d.get("workload_params") or {}), **dict(args.param)}
    if args.cost:
        d["costs"] = {**(d.get("costs") or {}), **dict(args.cost)}
    return SimConfig.from_dict(d)


def _progress_bar(total, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, unit="run")


def cmd_simulate(args, parser):
    import fphlib

    from .experiments.scenarios import run_caption
    from .viz.tables import readable

    try:
        cfg = config_from_args(args)
    except ValueError as e:
        parser.error(str(e))
    if args.out is not None:
        _check_out(args.out, args.overwrite)  # before the run, not after minutes of it
    t0 = time.perf_counter()
    try:
        res = fphlib.simulate(cfg, progress=args.progress)
    except ValueError as e:  # inputs only checked when the run is built, e.g. a trace file
        parser.error(str(e))
    print(readable({cfg.mechanism: res}, caption=run_caption(cfg)))
    if args.out is not None:
        try:
            res.save(args.out, overwrite=args.overwrite)
        except FileExistsError as e:
            parser.error(f"--out: {e}")
        print(f"results written to {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _check_out(out, overwrite):
    """Refuse an --out that ``SimResult.save`` would refuse, before running anything."""
    from .api.result import is_saved_result

    if not out:
        raise UserError("--out: '' is not allowed; give a directory for the results")
    path = Path(os.path.abspath(out))
    if os.path.lexists(path):
        if path.is_symlink() or not path.is_dir():
            raise UserError(f"--out: {out}: exists and is not a directory; not replaced")
        if any(path.iterdir()):
            if not is_saved_result(path):
                raise UserError(f"--out: {out}: exists and is not an fphlib result (it holds "
                                "other files); choose a new or empty directory")
            if not overwrite:
                raise UserError(f"--out: {out}: a saved result exists; add --overwrite to "
                                "replace it")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--out: {out}: {parent} is not a directory")
    import tempfile

    try:  # a real write: os.access says yes to root on a read-only file system
        os.rmdir(tempfile.mkdtemp(prefix=".fphlib-probe-", dir=parent))
    except OSError as e:
        raise UserError(f"--out: {out}: cannot write in {parent} ({e.strerror})") from None


def _check_out_dir(out, overwrite, what):
    """Refuse an --out directory that is '', not a directory, or (without --overwrite) not
    empty: a command writes into it only the files it names, and only when asked to."""
    if not out:
        raise UserError(f"--out: '' is not allowed; give a directory for {what}")
    if os.path.lexists(out):
        if os.path.islink(out) or not os.path.isdir(out):
            raise UserError(f"--out: {out}: exists and is not a directory")
        try:
            with os.scandir(out) as entries:
                empty = not any(entries)
        except OSError as e:
            raise UserError(f"--out: {out}: cannot read ({e.strerror})") from None
        if not empty and not overwrite:
            raise UserError(f"--out: {out}: exists and is not empty; add --overwrite to write "
                            f"{what} into it (only files of the same names are replaced)")


def _check_out_file(out, overwrite, flag="--out", what="the trace file's path (.npz)"):
    """Refuse an output file path (``flag``) that is empty, a directory, in a directory that
    does not exist, or an existing file without --overwrite: before any work is done."""
    if not out:
        raise UserError(f"{flag}: '' is not allowed; give {what}")
    if os.path.isdir(out):
        raise UserError(f"{flag}: {out}: is a directory; give {what}")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UserError(f"{flag}: {out}: directory {parent} does not exist")
    if os.path.lexists(out) and not overwrite:
        raise UserError(f"{flag}: {out}: exists; add --overwrite to replace it")


def cmd_demo(args, parser):
    import matplotlib

    matplotlib.use("Agg")  # headless: `make demo` must work without a display
    import matplotlib.pyplot as plt

    import fphlib

    from .experiments.scenarios import headline_configs
    from .units import format_size
    from .viz.plots import plot_host_rss, summary_table
    from .viz.tables import readable

    configs = headline_configs(args.profile)
    if args.duration_s is not None:
        configs = _demo_for_duration(configs, args.duration_s, args.profile)
    _check_out_dir(args.out, args.overwrite, "the figures")
    os.makedirs(args.out, exist_ok=True)
    results = {}
    with _progress_bar(len(configs), "demo", args.progress) as bar:
        for mech, cfg in configs.items():
            bar.set_postfix_str(mech)
            results[mech] = fphlib.simulate(cfg)
            bar.update(1)
    fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    first = next(iter(configs.values()))
    plot_host_rss(results, ax=ax, hue="mechanism",
                  title=f"Host RSS: {first.guests} guests × {format_size(first.guest_mem)}, "
                        f"memhog {format_size(first.workload_params['size'])}, "
                        f"host {format_size(first.host_mem)}")
    png = os.path.join(args.out, "demo_host_rss.png")
    _atomic(png, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)
    table = summary_table(results)
    csv = os.path.join(args.out, "demo_summary.csv")
    _atomic(csv, lambda p: table.to_csv(p))
    md = os.path.join(args.out, "demo_summary.md")
    shown = readable(results)
    text = f"# fphlib demo ({args.profile} profile)\n\n" + shown.to_markdown()
    _atomic(md, lambda p: Path(p).write_text(text, encoding="utf-8"))
    print(shown)
    print(f"wrote {png}, {csv}, {md}")
    return 0


def cmd_validate(args, parser):
    from . import validation
    from .viz.validation import readable

    try:
        ids = validation.select(args.only or None)
    except ValueError as e:
        raise UserError(f"--only: {_one_line(e)}") from None
    if args.out is not None:
        _check_out_dir(args.out, args.overwrite, "the table")
    df = validation.table(ids, quick=args.quick, progress=args.progress)
    shown = readable(df)
    print(str(shown))
    n_live = int(df["id"].str.startswith("live/").sum())
    if args.quick and n_live < len(df):
        size = "quick sizes, not comparable" + (
            f"; the {n_live} live records as recorded" if n_live else "")
    elif n_live == len(df):
        size = "the live records: this machine's recordings"
    else:
        size = "published sizes and this machine's recordings" if n_live else "published sizes"
    print(f"{validation.verdict_counts(df)} ({size}); {df.attrs['wall_s']:.1f} s")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        csv = os.path.join(args.out, "validation.csv")
        flat = df.assign(extra=df["extra"].map(json.dumps),
                         config=df["config"].map(lambda c: json.dumps(c, sort_keys=True)))
        _atomic(csv, lambda p: flat.to_csv(p, index=False))
        md = os.path.join(args.out, "validation.md")
        text = f"# fphlib validation ({size})\n\n" + shown.to_markdown() + "\n"
        _atomic(md, lambda p: Path(p).write_text(text, encoding="utf-8"))
        print(f"wrote {csv}, {md}")
    return 0


def _demo_for_duration(configs, duration_s, profile):
    """The demo configs squeezed into ``duration_s``: guest starts and sampling scale with it,
    so that any duration the configs accept runs (``--duration-s`` named in errors)."""
    out = {}
    for mech, cfg in configs.items():
        scale = duration_s / cfg.duration_s if duration_s > 0 else 0.0
        overrides = tuple({**o, "start_s": o.get("start_s", 0.0) * scale}
                          for o in cfg.guest_overrides)
        try:
            out[mech] = dataclasses.replace(
                cfg, duration_s=duration_s, sample_s=min(cfg.sample_s, max(duration_s, 1e-3)),
                guest_overrides=overrides)
        except ValueError as e:
            raise UserError(f"--duration-s: {duration_s:g} does not fit the {profile!r} "
                            f"profile ({_one_line(e)})") from None
    return out


def _atomic(path, write):
    from ._atomic import write_file

    write_file(path, lambda p: write(str(p)))


def cmd_trace(args, parser):
    from .units import PAGE_SIZE, parse_size
    from .workloads.trace_file import generate_trace, load_trace, write_trace

    try:
        n_pages = parse_size(args.guest_mem, "--guest-mem") // PAGE_SIZE
    except ValueError as e:
        parser.error(str(e))
    if args.check:
        try:
            tr = load_trace(args.check, n_pages=n_pages)  # the rule of the trace workload
        except ValueError as e:
            print(f"fphlib trace: invalid: {_one_line(e)} (--guest-mem {args.guest_mem})",
                  file=sys.stderr)
            return 1
        n_alloc = int((tr.kind == 0).sum())
        span = (tr.t_us[-1] - tr.t_us[0]) / 1e6 if len(tr.t_us) else 0.0
        print(f"{args.check}: valid trace, {len(tr.kind)} ops ({n_alloc} allocs), "
              f"{int(tr.slot.max()) + 1 if len(tr.slot) else 0} slots, {span:.3f} s")
        return 0
    if args.out is None:
        parser.error("trace: give --out PATH to generate a trace, or --check PATH")
    _check_out_file(args.out, args.overwrite)
    from .api.config import check_number
    from .api.limits import MAX_TRACE_OPS

    try:
        check_number("--ops", args.ops, lo=1, hi=MAX_TRACE_OPS, integer=True)
        tr = generate_trace(args.ops, seed=args.seed, occupancy=args.occupancy,
                            ops_per_s=args.ops_per_s, n_pages=n_pages)
        write_trace(args.out, *tr, n_pages=n_pages)
    except ValueError as e:
        parser.error(str(e))
    print(f"wrote {args.out}: {args.ops} ops over {tr.t_us[-1] / 1e6:.3f} s "
          f"for a {args.guest_mem} guest")
    return 0


SWEEP_KEYS = ("base", "grid", "seeds")


def _flatten_grid(table, prefix=""):
    # TOML reads `workload_params.size = [...]` as a nested table; the grid wants dotted keys
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten_grid(value, name + "."))
        else:
            out[name] = value
    return out


def load_sweep_file(path):
    """``(base SimConfig, grid, seeds)`` from a sweep TOML/JSON file; ValueError if bad."""
    from .api.config import SimConfig

    d = load_config_file(path)
    for key in d:
        if key not in SWEEP_KEYS:
            raise ValueError(f"sweep file {os.fspath(path)!r}: unknown key {key!r}; allowed: "
                             f"{', '.join(SWEEP_KEYS)} ([base] = SimConfig fields, [grid] = "
                             "field -> list of values or [[grid]] tables, seeds = N)")
    base = d.get("base", {})
    if not isinstance(base, dict):
        raise ValueError(f"base: {base!r} is not allowed; expected a table of SimConfig fields")
    if "grid" not in d:
        raise ValueError(f"sweep file {os.fspath(path)!r}: no [grid] table (field -> list of "
                         "values)")
    grid = d["grid"]
    if isinstance(grid, dict):
        grid = _flatten_grid(grid)
    elif isinstance(grid, list):
        grid = [_flatten_grid(g) if isinstance(g, dict) else g for g in grid]
    return SimConfig.from_dict(base), grid, d.get("seeds", 1)


def cmd_sweep(args, parser):
    import fphlib

    from .api.config import check_number
    from .api.limits import MAX_SWEEP_RUNS_RAISED, MAX_WORKERS
    from .sweep.grid import expand

    try:
        if args.workers is not None:
            check_number("--workers", args.workers, lo=1, hi=MAX_WORKERS, integer=True)
        if args.max_runs is not None:
            check_number("--max-runs", args.max_runs, lo=1, hi=MAX_SWEEP_RUNS_RAISED,
                         integer=True)
        base, grid, seeds = load_sweep_file(args.grid)
        if args.seeds is not None:
            seeds = args.seeds
        # counted, then every combination checked, before any run
        runs, _ = expand(grid, base, seeds, max_runs=args.max_runs, progress=args.progress)
    except ValueError as e:
        parser.error(str(e))
    _check_out_dir(args.out, args.overwrite, "the sweep")
    if args.csv is not None:
        _check_out_file(args.csv, args.overwrite, "--csv", "a CSV file's path")
    out = Path(args.out)
    if os.path.lexists(out / "cache") and not (out / "cache").is_dir():
        raise UserError(f"--out: {out / 'cache'}: exists and is not a directory; the sweep "
                        "caches its runs there")
    out.mkdir(parents=True, exist_ok=True)
    _atomic(str(out / "sweep.toml"), lambda p: Path(p).write_bytes(Path(args.grid).read_bytes()))
    ran = {"base": base.to_dict(), "grid": grid, "seeds": seeds}
    _atomic(str(out / "sweep.json"), lambda p: Path(p).write_text(json.dumps(ran, indent=1)))
    executor = client = None
    try:
        if args.scheduler:
            try:
                from distributed import Client
            except ImportError:
                print("fphlib sweep: --scheduler needs dask.distributed "
                      "(pip install 'fphlib[dask]')", file=sys.stderr)
                return 2
            try:
                executor = client = Client(args.scheduler, timeout=30)
            except (OSError, TimeoutError) as e:
                print(f"fphlib sweep: cannot reach the scheduler {args.scheduler!r}: "
                      f"{_one_line(e)}", file=sys.stderr)
                return 2
        elif args.workers and args.workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            executor = ProcessPoolExecutor(args.workers)
        t0 = time.perf_counter()
        try:
            df = fphlib.sweep(grid, base=base, seeds=seeds, executor=executor,
                              cache=out / "cache", progress=args.progress,
                              max_runs=args.max_runs)
        except ValueError as e:  # the cache directory or one of its entries
            parser.error(str(e))
    finally:
        if client is not None:
            client.close()
        elif executor is not None:
            executor.shutdown()
    results = out / "results.parquet"
    _atomic(str(results), lambda p: df.to_parquet(p, index=False))
    failed = df.attrs["failed"]
    print(f"{len(df)} runs ({df.attrs['computed']} computed, {df.attrs['cached']} cached, "
          f"{failed} failed) in {time.perf_counter() - t0:.1f} s; wrote {results}")
    _print_sweep_summary(df, base, seeds, args.csv)
    if failed:
        first = df.loc[df["error"].notna(), "error"].iloc[0]
        print(f"fphlib sweep: {failed} runs failed, e.g.: {first}", file=sys.stderr)
        return 1
    return 0


def _print_sweep_summary(df, base, seeds, csv):
    """Print the per-grid-point summary of a sweep (mean and 95 % interval over the seeds);
    ``csv``: also write its numbers there (one row per grid point)."""
    from .experiments.scenarios import run_caption
    from .sweep.summary import seed_summary
    from .viz.tables import readable_seed_summary

    summary = seed_summary(df)
    keys = ", ".join(df.attrs["keys"])
    print(readable_seed_summary(summary, caption=f"{keys} around {run_caption(base)}, "
                                                 f"{seeds} seed(s) per point"))
    if csv:
        _atomic(csv, lambda p: summary.to_csv(p, index=False))
        print(f"wrote {csv}")


def build_parser():
    """The argparse parser of ``python -m fphlib``."""
    parser = _Parser(
        prog="python -m fphlib",
        description="fphlib: a workbench for guest free page hinting in KVM.",
        epilog="Run 'python -m fphlib COMMAND --help' for the options of each command.",
    )
    from . import __version__
    from .api import limits

    parser.add_argument("--version", action="version", version=f"fphlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)

    p = sub.add_parser(
        "simulate", help="run one simulation from a config file and/or flags",
        description="Run one simulation. Settings come from --config (JSON or TOML, keys = "
                    "SimConfig fields) and are overridden by the flags below; unset fields "
                    "take SimConfig's defaults. Prints the summary table; --out saves the "
                    "results (SimResult.save; read back with fphlib.SimResult.load).",
        epilog=_params_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="JSON (.json) or TOML (.toml) config file")
    p.add_argument("--out", metavar="DIR", help="directory to save the results in (new, "
                   "empty, or an earlier result with --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the result saved at --out (never anything else)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False,
                   help="show a progress bar on stderr (default: off)")
    _add_config_flags(p)
    p.set_defaults(func=cmd_simulate, parser=p)

    from .experiments.scenarios import PROFILES

    p = sub.add_parser(
        "demo", help="headline comparison: none vs balloon vs page_reporting",
        description="The headline comparison: three guests running memhog on one host under "
                    "no hinting, a classic balloon and free page reporting. The full profile "
                    "is three 5 GiB guests, memhog 4 GiB each, on a 16 GiB host. Writes "
                    "demo_host_rss.png, demo_summary.csv and demo_summary.md to --out.",
    )
    p.add_argument("--out", metavar="DIR", default="out",
                   help="output directory: new or empty, or any with --overwrite (default: out)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out (replacing the demo's files there)")
    p.add_argument("--profile", choices=PROFILES, default="full",
                   help="size: smoke (seconds), demo (Binder-sized) or full (headline sizes; "
                        "default)")
    p.add_argument("--duration-s", type=float, default=None, metavar="X",
                   help="override the simulated time in seconds (default: the profile's)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar on stderr (default: on)")
    p.set_defaults(func=cmd_demo, parser=p)

    p = sub.add_parser(
        "trace", help="generate a churn trace file (or --check one)",
        description="Generate a churn trace (.npz, format in data/README.md) for the 'trace' "
                    "workload: steady alloc/free around a target occupancy with a kernel-like "
                    "order mix and Poisson arrival times. --check validates an existing file.",
    )
    p.add_argument("--out", metavar="PATH", help="trace file to write (.npz); an existing "
                   "file only with --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the file at --out")
    p.add_argument("--check", metavar="PATH", help="validate PATH instead of generating")
    p.add_argument("--ops", type=int, default=100_000, metavar="N",
                   help=f"number of ops, at most {limits.MAX_TRACE_OPS:,} (default: 100000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument("--occupancy", type=float, default=0.6, metavar="X",
                   help="target fraction of guest memory allocated, in (0, 1) (default: 0.6)")
    p.add_argument("--ops-per-s", type=float, default=10_000.0, metavar="X",
                   help="mean op rate per second (default: 10000)")
    p.add_argument("--guest-mem", default="4GiB", metavar="SIZE",
                   help="guest size the occupancy refers to; --check: slots must be below "
                        f"its pages, as in the trace workload (default: 4GiB). {SIZE_RULE}")
    p.set_defaults(func=cmd_trace, parser=p)

    p = sub.add_parser(
        "validate", help="the model against published results (fphlib.validation)",
        description="Run the published results of docs/references.md §8 that the "
                    "model can express (admission, will-it-scale overhead, live migration, "
                    "ESX's idle memory tax) and the free page reporting drain; print "
                    "published vs fphlib values, the tolerance each rule accepts, and "
                    "pass/fail. The published sizes take "
                    "a few minutes; --quick runs small sizes in seconds (not comparable).",
    )
    p.add_argument("--quick", action="store_true",
                   help="small sizes (tests, a first look); the verdicts are not comparable")
    p.add_argument("--only", action="append", metavar="CASE",
                   help="a case id or prefix of fphlib.validation.CASES, e.g. "
                        "'migration/8GiB' or 'admission' (repeatable; default: all)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="also write validation.csv and validation.md to DIR (new or empty, "
                        "or any with --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out (replacing the two files there)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False,
                   help="show a progress bar on stderr (default: off)")
    p.set_defaults(func=cmd_validate, parser=p)

    p = sub.add_parser(
        "sweep", help="run a parameter sweep from a TOML file (resumable)",
        description="Run every combination of [grid] on top of [base] (SimConfig fields), "
                    "seeds replicates each, in process, on --workers local processes or on a "
                    "dask cluster (--scheduler). Writes DIR/results.parquet (one row per run), "
                    "DIR/sweep.toml and DIR/sweep.json (what it ran); each run is cached "
                    "under DIR/cache, so rerunning an interrupted sweep with --overwrite "
                    "computes only what is missing. At most --max-runs runs (default "
                    f"{limits.MAX_SWEEP_RUNS:,}), counted before anything runs.",
        epilog="example GRID.toml:\n"
               "  seeds = 3\n"
               "  [base]\n"
               "  host_mem = \"2GiB\"\n  guest_mem = \"512MiB\"\n  workload = \"churn\"\n"
               "  mechanism = \"page_reporting\"\n  duration_s = 10\n"
               "  [grid]\n"
               "  hint_order = [7, 8, 9, 10]\n"
               "  workload_params.target = [0.3, 0.6]   # dotted key into a dict field\n"
               "zipped combinations instead of a product: [[grid]] tables, one per run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", metavar="GRID.toml", help="sweep file: [base], [grid], seeds")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="output directory (results.parquet, cache/): new or empty; an "
                        "earlier sweep's only with --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out: an earlier sweep's DIR is resumed "
                        "(its cached runs are reused, results.parquet replaced)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local worker processes, at most "
                            f"{limits.MAX_WORKERS} (default: 1 = in this process)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="dask.distributed scheduler, e.g. tcp://10.0.0.1:8786")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="replicates per combination (overrides the file's seeds; at most "
                        f"{limits.MAX_SEEDS:,})")
    p.add_argument("--max-runs", type=int, default=None, metavar="N",
                   help="the most runs (combinations x seeds) the sweep may have, counted "
                        f"before anything is expanded (default: {limits.MAX_SWEEP_RUNS:,}, "
                        f"at most {limits.MAX_SWEEP_RUNS_RAISED:,})")
    p.add_argument("--csv", metavar="PATH", default=None,
                   help="also write the per-grid-point summary (mean and 95 %% interval over "
                        "the seeds of each metric) to PATH as CSV")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar on stderr (default: on)")
    p.set_defaults(func=cmd_sweep, parser=p)

    from .observe.cli import add_parser as add_record

    add_record(sub)
    return parser


def main(argv=None):
    """Entry point of ``python -m fphlib`` and the ``fphlib`` script; returns the exit code.

    User errors (flags, files, I/O) print one line naming the flag or file and return 2;
    Ctrl-C returns 130 with one line.
    """
    parser = build_parser()
    prog = parser.prog
    try:
        args = parser.parse_args(argv)
        prog = args.parser.prog
        return args.func(args, args.parser)
    except UserError as e:
        print(f"{e.prog or prog}: error: {_one_line(e)} (see --help)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a file or directory the user named: no traceback
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"{prog}: error: {where}{e.strerror or _one_line(e)} (see --help)",
              file=sys.stderr)
        return 2
