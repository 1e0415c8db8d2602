"""The engine state layout, the hooks to mechanisms and policies, and parameter specs: the
bottom floor every other part of the simulator imports."""
