"""Experiments: ready-made multi-run studies that return tidy DataFrames (DESIGN §4).

- :func:`admission` / :func:`admission_table`: how many guests a host admits, launched one
  after another, before one is OOM-killed or the host starts swapping (Nitesh Narayan Lal's
  v8 cover letter, reference/kernel-mechanisms.md §2.1 and §8 #1).
- :func:`reproduce_v37`: live migration of an idle guest with and without the free page hint
  (Wei Wang's v37 cover letter, reference/kernel-mechanisms.md §4.1 and §8 #3).
"""

from .admission import (
    DEFAULT_INTERVAL_S,
    FATES,
    PUBLISHED,
    V8_HOST_MEM,
    admission,
    admission_table,
    v8_admission_kwargs,
)
from .migration import reproduce_v37, v37_config

__all__ = [
    "DEFAULT_INTERVAL_S",
    "FATES",
    "PUBLISHED",
    "V8_HOST_MEM",
    "admission",
    "admission_table",
    "v8_admission_kwargs",
    "reproduce_v37",
    "v37_config",
]
