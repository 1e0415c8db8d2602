"""Workloads, one module each, and their live registry (docs/plugins.md).

Every workload also takes ``boot`` (the boot footprint allocated when the guest starts: the
fractions ``boot_slab`` of it kernel slab and ``boot_cache`` page cache, the rest anonymous
memory), ``start_s`` (when
the workload begins, relative to the guest's start) and file I/O through the page cache
(``io_rate`` bytes/s, a fraction ``io_write`` of it written: dirty pages; fphlib.workloads.io).
Sizes accept ``parse_size`` strings; rates are bytes per second.

The idle footprint: an Ubuntu 20.04 cloud guest holds ~331 MiB of host RAM after boot
(242,048 + 96,556 kB, Cloud Hypervisor issue #1729; docs/costs.md §9 recommends 330 MiB).
Its split follows the /proc/meminfo of an idle 2 GB Linux server (thegeekdiary.com, "Understanding
/proc/meminfo file": used 505,684 kB = Cached + Buffers 294,412 kB (58 %), AnonPages 111,180 kB
(22 %), slab, kernel stacks, page tables and the rest 20 %) [derived]: 192 MiB page cache,
66 MiB kernel and slab, 72 MiB anonymous (fractions 0.58, 0.20). ``boot="256MiB",
boot_cache=0, boot_slab=0`` is the footprint of fphlib before these (anonymous only).

A workload module exports ``NAME``, ``PARAMS`` (a spec of :class:`fphlib.state.params.Param`,
on top of :data:`COMMON`), optionally ``STATE`` (:class:`fphlib.state.layout.PrivateState`:
per-guest columns of ``wl_i``/``wl_f``, set by ``STATE.init(params, n_pages, vcpus, ints,
floats)``), ``build(params, n_pages, rng) -> Setup`` (the pool of held blocks it needs, a trace
of operations to replay; ``rng`` a NumPy Generator of its own), ``check_params(params)``,
``estimate_events(params, n_pages, active_s)`` (an upper estimate of its page operations, for
``fphlib.api.limits``), ``runtime_s(s, g)`` (its ``workload_runtime_s``; default: from its
start to ``GF.WL_END``) and the jitted ``step(s, g, z, t, dt, cost, ovh) -> bool`` (one tick;
False when the guest was killed). A workload without ``step`` is idle after boot. Adding a
built-in = its module + its name in ``BUILTIN``; a plug-in = :func:`fphlib.register_workload`
or an entry point in group ``fphlib.workloads``.
"""

from typing import NamedTuple

import numpy as np

from ..bounds import MAX_DURATION_S, MAX_RATE, MAX_WORKLOAD_SIZE
from ..registry import (
    PluginError,
    Registry,
    check_callables,
    check_jitted,
    check_state,
    is_params_spec,
    require,
)
from ..state.layout import GF
from ..state.params import Param, effective
from ..state.units import SPECS

BUILTIN = ("idle", "memhog", "churn", "trace")

COMMON = {
    "boot": Param("size", 330 << 20, 0, MAX_WORKLOAD_SIZE, "bytes", "boot footprint "
                  "allocated when the guest starts (docs/costs.md §9: Ubuntu focal guest "
                  "after boot, CH #1729)"),
    "boot_cache": Param("float", 0.58, 0.0, 0.95, "", "fraction of the boot footprint in the "
                        "page cache [derived]"),
    "boot_slab": Param("float", 0.20, 0.0, 0.95, "", "fraction of the boot footprint in "
                       "kernel slab, stacks, page tables [derived]"),
    "start_s": Param("float", 0.0, 0.0, MAX_DURATION_S, "s", "when the workload starts, after "
                     "the guest boots"),
    "io_rate": Param("size", 0, 0, MAX_RATE, "bytes/s", "file I/O through the page cache "
                     "(0: none)"),
    # [assumption] reads dominate, 1 in 4
    "io_write": Param("float", 0.25, 0.0, 0.95, "", "fraction of the I/O that writes (dirty "
                      "pages)"),
}
STEP_ARGS = tuple(SPECS["workload_step"][0].split())  # as fphlib.state.units compiles it


class Setup(NamedTuple):
    """What a workload's ``build`` asks of the engine for one guest: ``pool`` int32 slots for
    the blocks it holds (``GI.POOL_OFF``/``GI.POOL_CAP``), and a ``trace`` of operations to
    replay, ``(t_us int64, kind int8, order int8, slot int32)`` arrays (``GI.TR_OFF``,
    ``GI.TR_N``) or None. The slots start at -1 (no block); ``pool_preset=False`` is for a
    workload that writes each slot before it reads it: its slots hold anything until then (0
    in fresh memory, which the engine leaves untouched: a large host's churn uses a tenth of
    its pool; or what the process's last run of the same size left, as the engine reuses its
    arrays).
    """

    pool: int = 0
    trace: tuple | None = None
    pool_preset: bool = True


def _check_workload(module, name):
    require(module, {
        "PARAMS": (is_params_spec, "a dict {name: fphlib.extend.Param(...)} with help"),
    })
    clash = set(module.PARAMS) & set(COMMON)
    if clash:
        raise PluginError(f"PARAMS redefines {sorted(clash)}, which every workload takes "
                          "(fphlib.workloads.COMMON)")
    check_state(module)
    check_callables(module, ("build", "check_params", "estimate_events", "runtime_s"))
    if hasattr(module, "step"):
        check_jitted(module, "step", STEP_ARGS)


REGISTRY = Registry("workload", __name__, BUILTIN, _check_workload, "fphlib.workloads")
WORKLOADS = REGISTRY  # the same live registry (older name)


def register_workload(module, replace=False):
    """Register a workload plug-in (a module, an object with its attributes, or a dotted
    module path); return its name. See docs/plugins.md."""
    return REGISTRY.register(module, replace)


def workload_module(name):
    """The module of workload ``name`` (a registered name)."""
    return REGISTRY.module(name)


def workload_spec(name):
    """Every parameter workload ``name`` takes: :data:`COMMON` and its own ``PARAMS``."""
    return {**COMMON, **workload_module(name).PARAMS}


def workload_settings(name, given):
    """Every parameter's value for workload ``name``: given, else its default."""
    return effective(workload_spec(name), given or {})


def build_rng(seed_sequence):
    """The NumPy Generator a workload's ``build`` draws from: a child of the guest's seed
    sequence, so that the engine's own random stream does not change."""
    return np.random.default_rng(seed_sequence.spawn(1)[0])


def workload_runtime_s(s, g, name):
    """Guest g's ``workload_runtime_s``: its workload's ``runtime_s(s, g)`` if it has one,
    else from the workload's start to its end (NaN while it has not ended)."""
    own = getattr(workload_module(name), "runtime_s", None)
    if own is not None:
        return own(s, g)
    return float(s.gf[g, GF.WL_END] - s.gf[g, GF.WL_START])
