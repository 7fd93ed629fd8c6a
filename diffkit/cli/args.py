"""What every subcommand's arguments share: one-line errors, defaults in --help, range-checked values.

Argument types here reject a bad value while the command line is parsed, before anything is
loaded or run, with a message that says what is allowed. The checks that need a loaded file
(a label against the model's classes, a batch size against the dataset) are in the subcommands.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes 64-bit seeds
_SHOWN = 40  # characters of a rejected value repeated in its error message


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class UsageError(CliError):
    """A command line argparse refused; ``prog`` is the (sub)command it belongs to."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) raised to ``diffkit.cli.main``, which exits 2."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(self.prog, message)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the docstring examples as written and appends each option's default to its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if unset or "default" in text or not action.option_strings:
            return text
        listed = isinstance(action.default, (list, tuple))
        default = ",".join(map(str, action.default)).replace("%", "%%") if listed else "%(default)s"
        return f"{text} (default: {default})"


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    return f"{'<' if hi_open else '<='} {_num(hi)}" if hi is not None else ""


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a base-10 integer within [minimum, maximum] (either end may be open-ended)."""
    allowed = f"an integer {_range(minimum, maximum)}".rstrip()

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:  # also integers of 4,300+ digits
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {_shown(text)}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {_shown(text)}")
        return value

    parse.__name__ = "integer"
    return parse


def real(
    minimum: float | None = None, maximum: float | None = None, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite float within the given bounds (never nan or inf)."""
    allowed = f"a finite number {_range(minimum, maximum, lo_open, hi_open)}".rstrip()

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {_shown(text)}") from None
        low_bad = minimum is not None and (value <= minimum if lo_open else value < minimum)
        high_bad = maximum is not None and (value >= maximum if hi_open else value > maximum)
        if not math.isfinite(value) or low_bad or high_bad:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {_shown(text)}")
        return value

    parse.__name__ = "number"
    return parse


def integer_list(minimum: int, maximum: int) -> Callable[[str], tuple[int, ...]]:
    """An argparse type: comma- or space-separated integers, each within [minimum, maximum]."""
    one = integer(minimum, maximum)

    def parse(text: str) -> tuple[int, ...]:
        values = tuple(one(v) for v in text.replace(",", " ").split())
        if not values:
            raise argparse.ArgumentTypeError(f"expected integers in [{minimum}, {maximum}], got {_shown(text)}")
        return values

    parse.__name__ = "integer list"
    return parse


def default_threads() -> int:
    """The CLI's torch thread count: $OMP_NUM_THREADS when it is a positive integer (at most the cores), else 1.

    One thread, not torch's one per core: with another process busy on a core, torch's threads
    wait on each other and a run takes several times longer (README, "Threads").
    """
    value = os.environ.get("OMP_NUM_THREADS", "")
    return min(int(value), available_cores()) if value.isascii() and value.isdigit() and int(value) > 0 else 1


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (after resolving links), whether or not it exists yet."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, ValueError):
        return False


def one_line(message: object) -> str:
    """``message`` on one line: error texts from deeper layers may hold newlines."""
    return " ".join(str(message).split())


def require_suffix(flag: str, path: str, suffixes: Sequence[str]) -> None:
    """CliError unless ``path`` ends in one of ``suffixes`` (case-insensitive)."""
    if not path.lower().endswith(tuple(suffixes)):
        raise CliError(f"{flag} must end in {' or '.join(suffixes)}; got {path!r}")
