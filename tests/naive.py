"""Slow, obviously-correct pure-Python twins of fphlib's jitted kernels (stumpy's pattern).

Tests compare every kernel with its twin here on random inputs. Keep each twin as plain as
possible: dicts, lists, sets and Python ints, no NumPy tricks, no shared code with fphlib.
"""

# ============================================================================ buddy allocator
# (section owned by the buddy allocator work: tests/test_buddy*.py)

# ============================================================================ xbitmap
# (section owned by the xbitmap work: tests/test_xbitmap*.py)

# ============================================================================ engine
# (section owned by the simulation engine work: tests/test_engine*.py)
