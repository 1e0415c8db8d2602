"""Parameter sweeps: ``fphlib.sweep(grid, base=cfg, seeds=1, executor=None, cache=None)``.

``fphlib.sweep`` is this package and is callable: ``fphlib.sweep(...)`` runs
:func:`fphlib.sweep.run.sweep`, while ``fphlib.sweep.expand`` and the other helpers stay
reachable (a plain function of the same name would be replaced by the package object as soon
as anything imported ``fphlib.sweep.<module>``).

- ``grid``: expansion and validation of grids, replicate seeds (:func:`expand`);
- ``cache``: one atomically written file per run (:class:`RunCache`);
- ``run``: the executor-agnostic runner (:func:`run_task` runs on workers).
"""

import inspect
import sys
import types

from .cache import RunCache, run_key
from .grid import config_hash, expand, replicate_seeds
from .mechanisms import block_size_mechanisms
from .run import run_task
from .run import sweep as _sweep

__all__ = ["RunCache", "block_size_mechanisms", "config_hash", "expand", "replicate_seeds",
           "run_key", "run_task"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return _sweep(*args, **kwargs)


_self = sys.modules[__name__]
_self.__class__ = _CallableModule
__signature__ = inspect.signature(_sweep)
sweep = _self  # fphlib._PUBLIC resolves ``fphlib.sweep`` to this callable package
