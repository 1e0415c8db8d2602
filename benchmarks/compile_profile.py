"""Where a cold first ``simulate()`` spends its compile time: CPU seconds per jitted function.

Runs one small simulation in this process with an empty numba cache (a temporary
``NUMBA_CACHE_DIR``, so the project's cache is left alone) and lists, for every function numba
compiled, its exclusive and inclusive compile time (``numba:compile`` events, thread CPU time);
``[python]`` marks a compile for a call from Python (with numba's CPython wrapper), the rest are
compiles for jitted callers (``fphlib._jit``'s wrapper-less twins).
Use it to find what to keep out of line when the cold compile grows (README). It compiles in
this one process (``FPHLIB_COMPILE_JOBS=1``): a cold run normally shares its units with helper
processes, whose compiles this profile would not see.

    .venv/bin/python benchmarks/compile_profile.py [--mechanism page_reporting] [--top 40]
"""

import argparse
import os
import sys
import tempfile
import time
import warnings


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mechanism", default="page_reporting")
    ap.add_argument("--workload", default="churn")
    ap.add_argument("--top", type=int, default=40, help="rows to print")
    args = ap.parse_args(argv)
    if "fphlib" in sys.modules:
        raise SystemExit("run as a script: fphlib must be imported after NUMBA_CACHE_DIR is set")
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fphlib-compile-profile-")
    # every compile in this process, where it can be timed (no helper processes:
    # fphlib.engine.parallel_compile)
    os.environ["FPHLIB_COMPILE_JOBS"] = "1"
    warnings.simplefilter("ignore")
    from numba.core import event

    rows, stack = [], []

    class Listener(event.Listener):
        def on_start(self, ev):
            d = ev.data["dispatcher"]
            f = d.py_func
            # a Python call compiles the dispatcher itself (with numba's CPython wrapper),
            # a jitted caller its twin (fphlib._jit._Dispatcher.callee)
            tag = " [python]" if getattr(d, "callee", None) is not None else ""
            stack.append([f"{f.__module__}.{f.__qualname__}{tag}", time.thread_time(), 0.0])

        def on_end(self, ev):
            name, start, children = stack.pop()
            spent = time.thread_time() - start
            rows.append((name, spent, spent - children))
            if stack:
                stack[-1][2] += spent

    event.register("numba:compile", Listener())
    c0, t0 = time.process_time(), time.perf_counter()
    import fphlib

    cfg = fphlib.SimConfig(host_mem="1GiB", guests=1, guest_mem="256MiB",
                           workload=args.workload, mechanism=args.mechanism, duration_s=1)
    fphlib.simulate(cfg)
    rows.sort(key=lambda r: -r[2])
    print(f"first simulate ({args.mechanism}, {args.workload}): CPU {time.process_time() - c0:.1f}"
          f" s, wall {time.perf_counter() - t0:.1f} s; {len(rows)} compiles")
    print("  excl s  incl s  function")
    for name, incl, excl in rows[:args.top]:
        print(f"{excl:8.1f}{incl:8.1f}  {name}")


if __name__ == "__main__":
    main()
