"""The ``qmra`` command. Errors caused by the user's input print one line and exit with code 2."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from qmra import __version__
from qmra.commands import bench, demo, evaluate, model_info, segment, synthetic, train
from qmra.errors import QmraError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qmra", description="Box-prompted video object segmentation (QMRA, AAAI 2021).")
    parser.add_argument("--version", action="version", version=f"qmra {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for module in (segment, evaluate, train, demo, bench, synthetic, model_info):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except QmraError as error:
        print(f"qmra: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("qmra: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
