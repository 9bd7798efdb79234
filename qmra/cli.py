"""The ``qmra`` command. Errors caused by the user's input print one line and exit with code 2."""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn, Sequence

from qmra import __version__
from qmra.errors import QmraError
from qmra.interrupt import EXIT_INTERRUPTED, Terminated, exit_code  # noqa: F401 (EXIT_INTERRUPTED: part of the CLI's API)

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, as every other qmra error (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("qmra").strip()
        self.exit(EXIT_USAGE, f"qmra: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="qmra", description="Box-prompted video object segmentation (QMRA, AAAI 2021).")
    parser.add_argument("--version", action="version", version=f"qmra {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    # Here, not at the top: they import torch, a second or two on a cold start, and Ctrl-C then must
    # still be main's one line, not a traceback.
    from qmra.commands import batch, bench, demo, evaluate, export, model_info, segment, synthetic, train, ui

    for module in (segment, batch, export, evaluate, train, demo, bench, synthetic, model_info, ui):
        module.add_parser(commands)
    return parser


def glue_negative_values(argv: Sequence[str]) -> list[str]:
    """``--box -10,5,100,100`` → ``--box=-10,5,100,100``: argparse takes a value that starts with a
    minus sign for a flag unless it is a plain number, and no qmra flag starts with ``-`` and a digit."""
    glued: list[str] = []
    for token in argv:
        if (glued and _NEGATIVE_VALUE.match(token) and glued[-1].startswith("--") and "=" not in glued[-1]
                and glued[-1] != "--"):
            glued[-1] = f"{glued[-1]}={token}"
        else:
            glued.append(token)
    return glued


_NEGATIVE_VALUE = re.compile(r"^-[0-9.]")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(glue_negative_values(sys.argv[1:] if argv is None else argv))
        return int(args.handler(args))
    except QmraError as error:
        print(f"qmra: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as interruption:
        print(f"qmra: {'terminated' if isinstance(interruption, Terminated) else 'interrupted'}", file=sys.stderr)
        return exit_code(interruption)


if __name__ == "__main__":
    raise SystemExit(main())
