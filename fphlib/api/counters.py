"""Named per-guest values of a run, for tests and notebooks that would otherwise index raw
columns: ``guest_counters(run, g).reports``."""

from types import SimpleNamespace

from ..state.layout import GF, GI


def guest_counters(run, g):
    """Guest g's values under their names.

    Parameters
    ----------
    run : SimResult or EngineState
        A result: its ``guest_summary`` row (the per-guest metrics of
        :mod:`fphlib.api.result`). An engine state (``fphlib.engine.build.build_state``, after
        ``run_chunk``): every column of ``gi`` and ``gf`` under its lower-case name
        (``reports``, ``reported_pages``, ``vmexits``, ``guest_cpu``, ``rss``, ...).
    g : int or slice
        The guest (a slice gives arrays over guests; states only).

    Returns
    -------
    types.SimpleNamespace
    """
    if hasattr(run, "guest_summary"):
        return SimpleNamespace(**run.guest_summary.set_index("guest").loc[g].to_dict())
    values = {name.lower(): run.gi[g, i] for name, i in GI._asdict().items()}
    values.update({name.lower(): run.gf[g, i] for name, i in GF._asdict().items()})
    return SimpleNamespace(**values)
