"""The public Python API: SimConfig, simulate, SimResult, warmup (DESIGN §4)."""
