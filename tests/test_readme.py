"""Every Python block of the README runs as written: on its own (fresh namespace), from an empty folder."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example must not need (or write into) the repository
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})
    if "print(" in BLOCKS[index]:
        assert stdout.getvalue().strip()


def test_ci_runs_the_readme_test_command_verbatim():
    # .ci/run is the CI entry point; the README's command is what a reader runs: the two must not drift.
    shell = "\n".join(re.findall(r"^```bash\n(.*?)^```", README.read_text(), flags=re.S | re.M)).splitlines()
    (command,) = [line for line in shell if "pytest" in line]
    assert "ruff check ." in command and "mypy" in command
    assert command in (README.parent / ".ci" / "run").read_text().splitlines()
