"""``python -m hotsock.bench``: the same as ``hotsock bench``."""
import sys

from . import main

if __name__ == "__main__":      # not when a package walker imports it
    sys.exit(main())
