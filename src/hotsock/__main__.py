"""The ``hotsock`` command (also ``python -m hotsock``)."""
import argparse
import json
import sys


def _info(args):
    from . import features
    info = features()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:22} {value}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="hotsock", description="Fast BSD socket I/O for Python: tools and benchmarks.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    # bench parses its own options (see hotsock.bench), so they pass through.
    commands.add_parser("bench", add_help=False,
                        help="datagram throughput against the stdlib and plain C")
    info = commands.add_parser("info", help="what this build and system provide")
    info.add_argument("--json", action="store_true", help="print as JSON")
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        from . import bench as bench_module
        return bench_module.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return _info(args)


if __name__ == "__main__":
    sys.exit(main())
