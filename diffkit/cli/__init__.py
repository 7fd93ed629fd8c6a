"""``diffkit`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

Bad arguments exit with status 2 and a one-line message (no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module under diffkit.cli (imported only when used, so startup stays fast)
COMMANDS = {
    "sample": "sample",
    "samplers": "samplers",
    "demo": "demo",
    "train": "train",
    "bench": "bench",
    "generate": "generate",
    "edit": "edit",
    "inpaint": "inpaint",
}


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _available() -> dict[str, object]:
    modules = {}
    for name, module in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(f"diffkit.cli.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"diffkit.cli.{module}":
                raise
    return modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diffkit", description="Exact, fast, measured diffusion samplers.")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = _available()
    for name, module in modules.items():
        module.add_parser(sub.add_parser(name, help=module.__doc__.strip().splitlines()[0]))
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except (CliError, ValueError, TypeError, FileNotFoundError) as err:
        print(f"diffkit {args.command}: error: {err}", file=sys.stderr)
        return 2
