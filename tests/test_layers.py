"""The layer rule of ARCHITECTURE.md, checked on every module's imports (lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "diffkit"

# What each core part may import from diffkit besides itself (ARCHITECTURE.md, "Inside the core").
CORE = {
    "conversions": set(),
    "progress": set(),
    "_deprecated": set(),
    "kernels": set(),
    "schedules": {"conversions"},
    "models": {"schedules", "conversions", "kernels"},
    "unet": {"schedules", "conversions", "kernels", "_deprecated"},
    "samplers": {"schedules", "conversions", "kernels", "progress"},
    "editing": {"samplers", "schedules", "conversions", "kernels", "progress"},
}
FILES = {"io"}


def part_of(path: Path) -> str:
    """The top-level part of diffkit a file belongs to: 'samplers', 'io', 'conversions', '__init__', ..."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def diffkit_imports(path: Path) -> set[str]:
    """The top-level diffkit parts ``path`` imports, at module level or inside functions."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names if node.module == "diffkit"]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "diffkit" and len(pieces) > 1:
                parts.add(pieces[1])
    return parts


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_only_its_layer_and_below(path):
    part = part_of(path)
    imported = diffkit_imports(path) - {part}
    if part in CORE:
        allowed = CORE[part]
    elif part in FILES:
        allowed = set(CORE)
    elif part == "__init__":
        allowed = set(CORE)  # `import diffkit` loads the core only
    else:  # an application: anything
        return
    assert imported <= allowed, f"{path.relative_to(ROOT)} imports {sorted(imported - allowed)} (layer rule)"


def test_library_never_imports_scripts_nor_edits_sys_path():
    for path in MODULES:
        text = path.read_text()
        tree = ast.parse(text)
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "benchmarks" not in imported, path
        assert "sys.path.insert" not in text and "sys.path.append" not in text, path


def test_tests_import_only_the_package():
    for path in sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(path.read_text())
        tops = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        tops |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "benchmarks" not in tops, f"{path.name} imports the benchmark scripts; import diffkit.bench instead"


def test_the_import_reader_sees_every_form(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import diffkit.io.png\nfrom diffkit import digits\n"
                      "def f():\n    from diffkit.bench.metrics import rms\n")
    assert diffkit_imports(source) == {"io", "digits", "bench"}
