"""Experiments: ready-made multi-run studies that return tidy DataFrames (docs/design.md §4).

- :func:`admission` / :func:`admission_table`: how many guests a host admits, launched one
  after another, before one is OOM-killed or the host starts swapping (Nitesh Narayan Lal's
  v8 cover letter, docs/references.md §2.1 and §8 #1).
- :func:`reproduce_v37`: live migration of an idle guest with and without the free page hint
  (Wei Wang's v37 cover letter, docs/references.md §4.1 and §8 #3).
- :func:`memhog_sequence`: guests run memhog in turn on a host with swap; runtimes and swap
  (Nitesh Narayan Lal's v10/v11 cover letters).
- :func:`overcommit`: the ESX idle memory tax story (busy and idle guests, tau = 0 vs 0.75);
  :func:`policy_grid`: guest count x host policy with what asking cost.
- :func:`cooperation`: uncooperative guests x host policy x mechanism; who pays for a guest
  that does not answer (the seed thread's "can the host rely on a guest?").
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
from .cooperation import COOPERATION_COLUMNS, cooperation, cooperation_config
from .migration import reproduce_v37, v37_config
from .policies import (
    memhog_sequence,
    overcommit,
    overcommit_config,
    policy_grid,
    sequence_config,
)

__all__ = [
    "DEFAULT_INTERVAL_S",
    "FATES",
    "PUBLISHED",
    "V8_HOST_MEM",
    "admission",
    "admission_table",
    "COOPERATION_COLUMNS",
    "cooperation",
    "cooperation_config",
    "v8_admission_kwargs",
    "reproduce_v37",
    "v37_config",
    "memhog_sequence",
    "overcommit",
    "overcommit_config",
    "policy_grid",
    "sequence_config",
]
