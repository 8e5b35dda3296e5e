"""The ``dmaster`` command. Each subcommand lives in the module that does the work,
which provides ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, str] = {
    "demaster": "dmaster.data.generate",
    "train": "dmaster.train",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dmaster", description="Automatic music mastering by "
                                     "differentiable parameter prediction.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(subparsers.add_parser(name, help=module.HELP, description=module.HELP))
    args = parser.parse_args(argv)
    try:
        return modules[args.command].run(args)
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
