"""An fphlib plug-in package: mechanism ``eager`` and host policy ``toggle`` (docs/plugins.md).

fphlib registers them through the entry points in this package's pyproject.toml.
"""
