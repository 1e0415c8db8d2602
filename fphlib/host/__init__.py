"""The host: lazy backing of guest memory, THP, swap, OOM killer, and the cost model."""
