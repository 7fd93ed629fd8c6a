"""``diffkit`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

Every error is one line on stderr and exit status 2, raised before the work starts where it can
be known then (arguments, paths, files, sizes). Ctrl-C ends with one line and status 130. Every
subcommand takes ``--threads`` (default: $OMP_NUM_THREADS if set, else 1; see ``args.default_threads``).
"""

from __future__ import annotations

import importlib
import sys

from diffkit.cli.args import CliError, HelpFormatter, Parser, UsageError, available_cores, default_threads, integer
from diffkit.cli.args import one_line

__all__ = ["CliError", "main"]

# subcommand name -> module under diffkit.cli (imported only when used, so startup stays fast)
COMMANDS = {
    "sample": "sample",
    "fit-timesteps": "fit_timesteps",
    "samplers": "samplers",
    "demo": "demo",
    "train": "train",
    "bench": "bench",
    "generate": "generate",
    "edit": "edit",
    "inpaint": "inpaint",
}
EXIT_ERROR = 2  # argparse's status for a bad command line; every diffkit error uses it
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


def _available() -> dict[str, object]:
    modules = {}
    for name, module in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(f"diffkit.cli.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"diffkit.cli.{module}":
                raise
    return modules


def build_parser() -> tuple[Parser, dict[str, object]]:
    """The ``diffkit`` parser with every available subcommand, and those subcommands' modules."""
    import diffkit

    parser = Parser(prog="diffkit", description="Exact, fast, measured diffusion samplers.",
                    formatter_class=HelpFormatter)  # fmt: skip
    parser.add_argument("--version", action="version", version=f"diffkit {diffkit.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = _available()
    for name, module in modules.items():
        doc = module.__doc__.strip()
        command = sub.add_parser(name, help=doc.splitlines()[0], description=doc, formatter_class=HelpFormatter)
        module.add_parser(command)
        command.add_argument("--threads", type=integer(1, available_cores()), default=default_threads(),
                             help="torch CPU threads ($OMP_NUM_THREADS if set, else 1: more threads collapse when "
                                  "another process holds a core)")  # fmt: skip
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        print(f"{err.prog}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    import torch

    torch.set_num_threads(args.threads)
    try:
        return int(modules[args.command].run(args) or 0)
    except (CliError, ValueError, TypeError) as err:
        message = one_line(err)
    except OSError as err:  # a disk that filled up, a pipe closed by the reader, ...
        message = one_line(f"{err.strerror or err}: {err.filename}" if err.filename else err.strerror or err)
    except KeyboardInterrupt as err:  # the subcommand may say how to continue (train: --resume)
        print(f"diffkit {args.command}: {one_line(err) or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"diffkit {args.command}: error: {message}", file=sys.stderr)
    return EXIT_ERROR
