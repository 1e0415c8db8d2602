"""The hook that ``__free_one_page`` calls after placing a freed block (engine dispatch).

Only ``page_reporting`` listens today (``page_reporting_notify_free``); later mechanisms that
react to frees in the buddy add their branch here.
"""

from .._jit import jit
from ..engine.layout import PI_MECH
from . import MECH_PAGE_REPORTING
from .page_reporting import page_reporting_notify_free


@jit(inline="always")
def notify_free(s, g, order, t):
    """Called with the final (merged) order of every block freed into the buddy."""
    if s.pi[PI_MECH] == MECH_PAGE_REPORTING:
        page_reporting_notify_free(s, g, order, t)
