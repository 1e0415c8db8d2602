"""``python -m fphlib``: see :mod:`fphlib.cli`."""

import sys

from fphlib.cli import main

if __name__ == "__main__":
    sys.exit(main())
