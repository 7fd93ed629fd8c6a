"""The integrations are an application layer: the core never imports them, and a missing dependency names the extra."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_core_never_imports_the_integrations():
    """Neither the core nor ``import diffkit`` reaches the application layer (nor diffusers or greenlet through it)."""
    core = [ROOT / "diffkit" / name for name in ("__init__.py", "_deprecated.py", "conversions.py", "schedules",
                                                 "samplers", "models", "kernels")]
    files = [p for c in core for p in ([c] if c.is_file() else c.rglob("*.py"))]
    assert len(files) > 20 and not [p for p in files if "diffkit.integrations" in p.read_text()]


@pytest.mark.parametrize("missing, module", [("diffusers", "diffkit.integrations.diffusers"),
                                             ("greenlet", "diffkit.integrations.coroutine")])
def test_missing_dependency_names_the_extra(monkeypatch, missing, module):
    monkeypatch.setitem(sys.modules, missing, None)  # import of it raises ImportError
    for name in [m for m in sys.modules if m.startswith("diffkit.integrations.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=r'pip install "diffkit\[diffusers\]"'):
        importlib.import_module(module)
