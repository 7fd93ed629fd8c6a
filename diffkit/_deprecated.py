"""Import paths of diffkit 0.1 that moved in 0.2, kept working with a DeprecationWarning until 0.3.

Imports nothing from diffkit at import time, so any layer may use it. Two tables:
``MODULES`` (a whole module moved: the old name becomes an alias module holding
the public names of its new homes) and ``NAMES`` (names that left a package that
still exists, e.g. ``diffkit.unet.load_unet``, resolved by the package's
module ``__getattr__``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

REMOVED_IN = "0.3"

MODULES: dict[str, tuple[str, ...]] = {
    "diffkit.tensorfile": ("diffkit.io.tensorfile",),
    "diffkit.png": ("diffkit.io.png",),
    "diffkit.pretrained": ("diffkit.io.pretrained", "diffkit.io.tensorfile", "diffkit.digits.pretrained"),
    "diffkit.data": ("diffkit.digits.data",),
    "diffkit.evaluate": ("diffkit.digits.evaluate",),
    "diffkit.train": ("diffkit.digits.train",),
    "diffkit.unet.checkpoint": ("diffkit.io.weights", "diffkit.unet.state_dict"),
}

NAMES: dict[str, dict[str, str]] = {
    "diffkit.unet": {name: "diffkit.io.weights" for name in
                     ("load_diffusers_unet", "load_unet", "load_weights", "save_unet", "save_weights")},
}


def _warn(old: str, new: str, stacklevel: int) -> None:
    warnings.warn(f"{old} moved to {new}; the old path will be removed in diffkit {REMOVED_IN}",
                  DeprecationWarning, stacklevel=stacklevel)


def moved_attribute(package: str, name: str) -> object:
    """For a package's module ``__getattr__``: the moved ``name``, with a warning, else AttributeError."""
    target = NAMES.get(package, {}).get(name)
    if target is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    _warn(f"{package}.{name}", f"{target}.{name}", stacklevel=4)
    return getattr(importlib.import_module(target), name)


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Builds ``diffkit.<old>`` from the public names of its new modules (last one wins on a clash)."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001  (importlib's protocol)
        return importlib.util.spec_from_loader(fullname, self) if fullname in MODULES else None

    def create_module(self, spec):  # noqa: ANN001
        return None

    def exec_module(self, module: ModuleType) -> None:
        targets = MODULES[module.__name__]
        _warn(module.__name__, " and ".join(targets), stacklevel=3)
        for target in targets:
            new = importlib.import_module(target)
            public = getattr(new, "__all__", [n for n in vars(new) if not n.startswith("_")])
            for name in public:
                setattr(module, name, getattr(new, name))


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
