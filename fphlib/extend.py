"""The one module a plug-in imports from: write your own mechanism, host policy or workload.

Everything a plug-in needs is here, under names that stay: the jit decorator, the parameter
spec, the private-state declaration, borrowed views of the state, the buddy's free lists, the
host's discard queue, the virtio report helpers, the cost indexes, the host-policy helpers,
and named accessors for every counter the summary reads, so a plug-in never indexes a raw
column of the engine's arrays. The hook contract (what each hook receives, must update, and
what "safe" means) is docs/plugins.md; a worked example is ``examples/fphlib-eager``.

Register a plug-in with :func:`fphlib.register_mechanism` (``register_policy``,
``register_workload``) or ship it as a package with an entry point in group
``fphlib.mechanisms`` (``fphlib.policies``, ``fphlib.workloads``).
"""

from . import costs as _costs
from ._jit import borrowed, jit
from .guest.buddy import (
    isolate_free_page,
    list_rotate_to_front,
    nr_free_pages,
    putback_isolated_page,
)
from .guest.mm import block_order
from .hinting.counters import (
    charge_guest_cpu,
    charge_host_cpu,
    count_events,
    count_lock_ops,
    count_report,
    count_reported_pages,
    count_vmexits,
)
from .hinting.virtio_report import isolate_into, putback_blocks, report_blocks
from .host.discard_queue import discard_due, discard_later, discard_pending
from .host.policy.ask import ask
from .host.policy.common import (
    DEFAULT_TARGET_FREE,
    check_drivable,
    guest_free_pages,
    hints_off_except,
    host_free_fraction,
    host_free_pages,
    need_pages,
)
from .host.policy.common import INTERVAL as POLICY_INTERVAL
from .registry import PluginError
from .state.access import (
    asks_seen,
    buffer_start,
    free_list_first,
    free_list_next,
    guest_pages,
    guest_running,
    hint_asked,
    hint_order,
    is_reported,
    isolated_pages,
    n_guests,
    nr_free,
    pages_asked,
    pool_capacity,
    pool_start,
    watermarks,
)
from .state.borrow import borrow_state, borrow_zone
from .state.layout import MECH_WAKE, PrivateState, private_columns
from .state.lists import list_add, list_add_tail, list_del
from .state.params import Param
from .state.rng import randint, uniform
from .state.zone import PG_REPORTED, set_page_reported
from .units import NR_ORDERS, PAGE_SIZE
from .workloads import Setup
from .workloads.common import alloc_touch, pay_debt, release, write_block

# ---------------------------------------------------------------- costs
# index of each cost in the ``cost`` vector every hook receives: cost[COST["vmexit"]] is the
# seconds of one VM exit (fphlib.costs names each default's source)
COST = dict(_costs.INDEX)
C_VMEXIT = COST["vmexit"]
C_KICK_WAKEUP = COST["kick_wakeup"]
C_ACK_IRQ = COST["ack_irq"]
C_ZONE_LOCK = COST["zone_lock"]
C_DISCARD_LATENCY = COST["discard_latency"]

__all__ = [
    "COST", "C_ACK_IRQ", "C_DISCARD_LATENCY", "C_KICK_WAKEUP", "C_VMEXIT", "C_ZONE_LOCK",
    "DEFAULT_TARGET_FREE", "MECH_WAKE", "NR_ORDERS", "PAGE_SIZE", "PG_REPORTED",
    "POLICY_INTERVAL", "Param", "PluginError", "PrivateState", "Setup",
    "alloc_touch", "block_order", "pay_debt", "pool_capacity", "pool_start", "randint",
    "release", "uniform", "write_block",
    "ask", "asks_seen", "borrow_state", "borrow_zone", "borrowed", "buffer_start",
    "charge_guest_cpu",
    "charge_host_cpu", "check_drivable", "count_events", "count_lock_ops", "count_report",
    "count_reported_pages", "count_vmexits", "discard_due", "discard_later", "discard_pending",
    "free_list_first", "free_list_next", "guest_free_pages", "guest_pages", "guest_running",
    "hint_asked", "hint_order", "hints_off_except", "host_free_fraction", "host_free_pages",
    "is_reported", "isolate_free_page", "isolate_into", "isolated_pages", "jit",
    "list_add", "list_add_tail", "list_del", "list_rotate_to_front", "n_guests", "need_pages",
    "nr_free", "nr_free_pages",
    "pages_asked", "private_columns", "putback_blocks", "putback_isolated_page",
    "report_blocks", "set_page_reported", "watermarks",
]
