"""``python -m hotsock.bench``: the same as ``hotsock bench``."""
import sys

from . import main

sys.exit(main())
