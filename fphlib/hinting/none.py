"""Mechanism ``"none"``: the baseline. The guest never tells the host anything, so host RSS
only grows (pages are backed on first touch and never discarded). Nothing to run."""
