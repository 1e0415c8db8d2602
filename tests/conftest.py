"""Shared pytest settings: Hypothesis profiles (CI runs the same profile as developers)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,  # the first example pays numba's compile or cache load
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=600)
settings.load_profile(os.environ.get("FPHLIB_HYPOTHESIS", "default"))
