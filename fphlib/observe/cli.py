"""``python -m fphlib record drain|trace|first-touch``: live-kernel recordings from the shell.

Each subcommand calls one function of :mod:`fphlib.observe` and saves what it recorded as a
recording directory (``--out``; atomic, read back with ``fphlib.observe.load_recording``).
A missing piece of the machine (not root, no tracefs, no kpageflags) or a bad option is one
line on stderr, exit code 2.
"""

import argparse

from ..errors import UserError
from ..units import SIZE_RULE


def add_parser(sub):
    """Add the ``record`` command and its three subcommands to ``sub`` (argparse)."""
    p = sub.add_parser(
        "record", help="record the live kernel (root): drain, trace, first-touch",
        description="Record the Linux guest fphlib runs on (fphlib.observe; needs root): "
                    "'drain' frees memory and samples how much the kernel has reported, "
                    "'trace' runs a command under the kmem tracepoints and writes an fphlib "
                    "trace file, 'first-touch' times touching memory the host discarded "
                    "against memory still backed. 'python -m fphlib record probe' lists what "
                    "this machine offers.",
    )
    rsub = p.add_subparsers(dest="what", metavar="WHAT", required=True,
                            parser_class=type(p))

    q = rsub.add_parser("probe", help="what this machine offers (root, tracefs, kpageflags, "
                                      "balloon features, reporting order)")
    q.set_defaults(func=cmd_probe, parser=q)

    q = rsub.add_parser("drain", help="free memory and record the reported-bytes curve",
                        description="A child process touches --free of memory and exits; "
                                    "/proc/kpageflags is sampled every --interval-s for "
                                    "--duration-s: reported and free bytes over time, and "
                                    "the buddyinfo the drain starts from.")
    q.add_argument("--free", default="4GiB", metavar="SIZE",
                   help=f"memory the child touches and frees (default 4GiB). {SIZE_RULE}")
    q.add_argument("--duration-s", type=float, default=60.0, metavar="X",
                   help="seconds to sample after the exit (default 60)")
    q.add_argument("--interval-s", type=float, default=0.5, metavar="X",
                   help="sampling period, seconds (default 0.5)")
    _out(q)
    q.set_defaults(func=cmd_drain, parser=q)

    q = rsub.add_parser("trace", help="run a command under the kmem tracepoints",
                        description="Run COMMAND with the kmem page allocator tracepoints on "
                                    "(its process tree, or --system) and save the recording "
                                    "(an fphlib trace file, trace.npz, the buddyinfo samples "
                                    "and the provenance) to --out. Put the command after --: "
                                    "record trace --out DIR -- make -j2",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--system", action="store_true",
                   help="record every process, not only COMMAND's process tree")
    q.add_argument("--strict", action="store_true",
                   help="fail (exit 1) when the kernel lost events, instead of saving an "
                        "incomplete recording")
    _out(q)
    q.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="the command and its arguments")
    q.set_defaults(func=cmd_trace, parser=q)

    q = rsub.add_parser("first-touch", help="time touching discarded vs backed memory",
                        description="Touch --size of memory, free it, wait until the kernel "
                                    "reported it (the host discarded it), touch again "
                                    "(discarded); then free and touch at once (backed).")
    q.add_argument("--size", default="2GiB", metavar="SIZE",
                   help=f"memory touched each time (default 2GiB). {SIZE_RULE}")
    q.add_argument("--repeats", type=int, default=3, metavar="N",
                   help="repeats of each case (default 3)")
    _out(q)
    q.set_defaults(func=cmd_first_touch, parser=q)


def _out(q):
    q.add_argument("--out", metavar="DIR", required=True,
                   help="recording directory to write (new, empty, or an earlier recording "
                        "with --overwrite)")
    q.add_argument("--overwrite", action="store_true",
                   help="replace the recording saved at --out (never anything else)")


def _run(parser, fn, *args, **kw):
    """Call ``fn``; a machine that lacks something or a bad value is a one-line error."""
    from ._common import ObserveError

    try:
        return fn(*args, **kw)
    except (ObserveError, ValueError) as e:
        raise UserError(" ".join(str(e).split()), parser.prog) from None


def _save(parser, rec, args):
    path = _run(parser, rec.save, args.out, overwrite=args.overwrite)
    print(f"saved {path}")


def cmd_probe(args, parser):
    from .machine import probe

    print(probe())
    return 0


def cmd_drain(args, parser):
    from .drain import record_drain

    rec = _run(parser, record_drain, free=args.free, duration_s=args.duration_s,
               interval_s=args.interval_s)
    print(rec)
    _save(parser, rec, args)
    return 0


def cmd_trace(args, parser):
    import os
    import tempfile

    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UserError("COMMAND: give the command to record after --, e.g. "
                        "'record trace --out DIR -- make -j2'", parser.prog)
    from .trace import record_trace

    with tempfile.TemporaryDirectory(prefix="fphlib-trace-") as tmp:
        rec = _run(parser, record_trace, argv, out=os.path.join(tmp, "trace.npz"),
                   scope="system" if args.system else "tree", strict=args.strict)
        print(rec)
        _save(parser, rec, args)
    return 0 if rec.complete else 1


def cmd_first_touch(args, parser):
    from .touch import first_touch

    rec = _run(parser, first_touch, size=args.size, repeats=args.repeats)
    print(rec)
    _save(parser, rec, args)
    return 0
