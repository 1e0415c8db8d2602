"""``idle``: the boot footprint only (allocated by ``workloads.common.boot`` at guest start).

An idle Linux guest also frees and allocates a little all the time; the model keeps it
perfectly still so that any RSS change comes from the mechanism under test.
"""

NAME = "idle"
PARAMS = {}
