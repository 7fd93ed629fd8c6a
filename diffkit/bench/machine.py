"""Name the machine results were measured on: CPU model, cores, threads, library versions.

The one description of the machine for every benchmark: ``machine_info`` (a JSON-able dict),
``machine_tag`` (for file names), ``cpu_model`` and ``peak_gflops_fp32``.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU model string from /proc/cpuinfo (plus family/model numbers), else platform.processor()."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    fields = {}
    for key in ("model name", "cpu family", "model", "flags"):
        m = re.search(rf"^{key}\s*:\s*(.*)$", text, re.MULTILINE)
        fields[key] = m.group(1).strip() if m else ""
    isa = [f for f in ("avx512f", "avx512_bf16", "amx_tile", "avx2") if f in fields["flags"].split()]
    return (f"{fields['model name']} (family {fields['cpu family']} model {fields['model']}; "
            f"{', '.join(isa) or 'no avx'})")


def peak_gflops_fp32(threads: int) -> tuple[float | None, str]:
    """Nominal fp32 peak of ``threads`` cores: clock x SIMD lanes x 2 (FMA) x FMA units; None if unknown.

    Assumes 2 FMA units per core (server Xeons since Skylake-SP) and the clock /proc/cpuinfo
    reports (base clock under a hypervisor; turbo would raise the true peak).
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, "unknown"
    mhz = re.search(r"^cpu MHz\s*:\s*([0-9.]+)", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    if not mhz or not flags:
        return None, "unknown"
    lanes = 16 if "avx512f" in flags.group(1).split() else 8 if "avx2" in flags.group(1).split() else 4
    ghz = float(mhz.group(1)) / 1e3
    peak = threads * ghz * lanes * 2 * 2
    return peak, (f"{threads} thread(s) x {ghz:.2f} GHz x {lanes} fp32 lanes x 2 (FMA) x 2 FMA units = "
                  f"{peak:.0f} GFLOP/s, nominal")


def machine_info(device: str = "cpu") -> dict:
    """A JSON-able description of where the numbers come from."""
    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "gpu": torch.cuda.get_device_name(torch.device(device))
        if device.startswith("cuda") and torch.cuda.is_available() else None,
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,  # shared machines
    }
    info["peak_gflops_fp32"], info["peak_note"] = peak_gflops_fp32(torch.get_num_threads())
    for module in ("numpy", "scipy", "diffusers"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def machine_tag(info: dict) -> str:
    """A short file-name-safe tag such as ``cpu-intel-xeon-processor-2c-1t``."""
    if info.get("gpu"):
        name = info["gpu"]
    else:
        name = info["cpu"].split("(family")[0].replace("(R)", "").replace("(TM)", "").replace("CPU", "")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{info['device'].split(':')[0]}-{slug}-{info['cpu_count']}c-{info['torch_threads']}t"
