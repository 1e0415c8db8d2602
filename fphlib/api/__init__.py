"""The public Python API: SimConfig, simulate, SimResult, warmup (docs/design.md §4); what a host
policy's asking cost each guest (:mod:`fphlib.api.asking`: ``SimResult.per_guest``,
``jain_index``; ``fphlib.api.simulate.with_baseline``)."""
