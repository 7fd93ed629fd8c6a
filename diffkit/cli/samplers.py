"""List the registered samplers with a one-line description each."""

from __future__ import annotations

import argparse


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults()


def run(args: argparse.Namespace) -> int:
    from diffkit.samplers import SAMPLERS

    width = max(len(name) for name in SAMPLERS)
    for name, info in SAMPLERS.items():
        options = ", ".join(f"{k}={v}" for k, v in info.options.items()) or "-"
        print(f"{name:<{width}}  {info.description}  [options: {options}; default spacing: {info.default_spacing}]")
    return 0
