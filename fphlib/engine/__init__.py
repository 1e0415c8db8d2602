"""The simulation engine: one jitted loop over time (see ``fphlib.engine.loop``)."""
