"""The ``dmaster`` command. Each subcommand lives in the module that does the work, which
provides ``add_arguments(parser)`` and ``run(args) -> int``; only the chosen one is imported."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("dmaster.apps.demo",
             "degrade a bundled clip of real music, master it with the shipped model, print what it found"),
    "master": ("dmaster.apps.master", "master audio files or folders: estimate what degraded them and undo it"),
    "demaster": ("dmaster.apps.demaster",
                 "degrade a folder of mastered music into (original, degraded) pairs with known parameters"),
    "train": ("dmaster.apps.train", "train the parameter estimator or the U-Net baseline"),
    "evaluate": ("dmaster.apps.evaluate", "score a model on a folder written by 'dmaster demaster'"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="dmaster", description="Automatic music mastering by "
                                     "differentiable parameter prediction.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {name: subparsers.add_parser(name, help=text, description=text)
               for name, (_, text) in COMMANDS.items()}
    module = None
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        module.add_arguments(parsers[argv[0]])
    args = parser.parse_args(argv)
    try:
        return module.run(args)
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
