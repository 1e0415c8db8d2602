"""The simulation engine: one jitted loop over time (see ``fphlib.engine.loop``)."""

from .cache import refresh as _refresh

_refresh()
