"""``python -m hotsock``: the ``hotsock`` command (see :mod:`hotsock.cli`)."""
import sys

from hotsock.cli import main

if __name__ == "__main__":
    sys.exit(main())
