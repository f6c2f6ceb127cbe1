"""``python -m vstage``: the same command line as the ``vstage`` console script."""

from __future__ import annotations

import sys

from bots.cli import main

if __name__ == "__main__":
    sys.exit(main())
