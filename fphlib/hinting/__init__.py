"""Hinting mechanisms, one module each; the engine dispatches on the id registered here.

A later mechanism adds its module, an entry below and a branch in
``fphlib.engine.loop`` (``hinting_v8``, ``hinting_bitmap``, ``xbitmap_hints``,
``free_page_hint`` are planned, DESIGN §3.4).
"""

MECH_NONE = 0
MECH_PAGE_REPORTING = 1
MECH_BALLOON = 2

MECHANISMS = {
    "none": MECH_NONE,
    "page_reporting": MECH_PAGE_REPORTING,
    "balloon": MECH_BALLOON,
}
