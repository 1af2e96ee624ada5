"""Run hotsock's benchmark from a checkout: ``python bench/run.py [options]``.

The benchmark itself lives in the package (``hotsock.bench``) so that
``hotsock bench`` runs from an installed wheel; this script is the same
entry point for people working in the repository.  See ``--help``.
"""
import sys

from hotsock.bench import main

if __name__ == "__main__":
    sys.exit(main())
