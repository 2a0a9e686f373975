"""`puppetry-train`: the trainer's command line, one subcommand per module.

Each subcommand module offers `add_parser(subparsers)`, which registers its
arguments and sets `run` (a function of the parsed arguments returning an exit
code) as a default. Adding a subcommand is one import and one entry in
COMMANDS. Library errors become a one-line message and exit code 1 here, and
nowhere else.
"""

from __future__ import annotations

import argparse
import logging
import sys

from engine.errors import PuppetryError
from trainer import evaluate, loop, preview
from trainer.methods import rift

COMMANDS = (
    preview,
    loop,  # train, resume, export
    evaluate,  # evaluate a run or a package (PuppetGAN's table)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puppetry-train",
        description="Train, evaluate and export Puppetry models, and preview their training data.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "evaluate" and rift.is_rift_target(args.target):
            return rift.run_evaluate(args)  # RIFT's guided-translation table (trainer/evaluate_guided.py)
        return args.run(args)
    except PuppetryError as error:
        print(f"puppetry-train {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"puppetry-train {args.command}: interrupted", file=sys.stderr)
        return loop.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
