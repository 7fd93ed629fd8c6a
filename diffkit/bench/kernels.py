"""The fused Triton kernels against their peers on one GPU, in one run.

Run by ``benchmarks/bench_kernels.py`` (``unavailable``, ``run``, then ``write``)::

    python benchmarks/bench_kernels.py               # needs a CUDA device and triton
    python benchmarks/bench_kernels.py --quick       # fewer shapes

(a) step update (``diffkit.kernels.lincomb``: every sampler's update is one linear
    combination of the state, model outputs, history and noise) per sampler pattern
    and state size: microseconds per step, GB/s from the bytes the update must move
    (each term read once, x_next written once), that as a % of the GPU's peak
    bandwidth, and the speedup over the eager reference and over
    ``torch.compile`` of the plain sum.
(b) attention: TFLOP/s (4 B H L^2 D flops: two matmuls) of the fused kernel and
    of SDPA with each backend forced (FLASH, EFFICIENT, MATH), the speedup of the
    kernel over each, and its max |error| against SDPA.
(c) GroupNorm + SiLU: GB/s of the minimal traffic (x read once, y written once;
    the two-pass kernel reads x twice) for the kernel, eager and torch.compile.

Times are medians of ``triton.testing.do_bench`` (CUDA events, L2 flushed
between repeats). A speedup is t_peer / t_kernel: above 1 the kernel is faster.
``attention(backend="auto")`` keeps SDPA unless (b) shows the kernel at least as
fast as SDPA's default at the U-Net's shapes; then set ``measured_faster=True`` in
``diffkit/kernels/attention.py``'s ``AutoPolicy`` (likewise (c) and
``groupnorm_silu.py``, against eager and torch.compile). Results: benchmarks/results/kernels-<machine>.json and .md.
"""

from __future__ import annotations

import json
import math
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from diffkit.bench.machine import machine_info, machine_tag
from diffkit.kernels import attention, lincomb, lincomb_ref
from diffkit.kernels.groupnorm_silu import groupnorm_silu, groupnorm_silu_ref

DEVICE = "cuda"  # tests/test_bench_gpu_scripts.py runs the same code on the CPU, under the Triton interpreter

# Vendor datasheet peaks: (HBM bandwidth in TB/s, dense fp16/bf16 tensor TFLOP/s with fp32
# accumulation). Matched in order against torch.cuda.get_device_name(); first match wins.
PEAKS = [
    ("H100 PCIe", 2.0, 756.0),
    ("H100 NVL", 3.9, 835.0),
    ("H100", 3.35, 989.0),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("GH200", None, None),  # 96 GB HBM3 and 144 GB HBM3e parts differ: look it up
    ("H200", 4.8, 989.0),
    ("A100-SXM4-80GB", 2.039, 312.0),
    ("A100 80GB PCIe", 1.935, 312.0),
    ("A100", 1.555, 312.0),  # the 40 GB parts, SXM4 and PCIe
    ("L4", 0.3, 121.0),
    ("RTX 4090", 1.008, 165.2),
    ("V100", 0.9, 125.0),  # SXM2
    ("T4", 0.32, 65.0),
]

# (name, dtypes of the terms): the memory traffic of each sampler family's update, the state first.
F32, F16 = torch.float32, torch.float16
STEP_PATTERNS = [
    ("ddim (x, eps)", (F32, F16)),
    ("dpmpp_2m (x, eps, x_prev, eps_prev)", (F32, F16, F32, F16)),
    ("dpmpp_2m_sde (x, eps, x_prev, eps_prev, noise)", (F32, F16, F32, F16, F32)),
    ("4th-order multistep in eps (x, eps, 3 history)", (F32, F16, F16, F16, F16)),
    ("dpmpp_2m, float32 eps", (F32, F32, F32, F32)),
]
STEP_SHAPES = [(1, 3, 32, 32), (16, 4, 64, 64), (64, 4, 128, 128)]
ATTENTION_CASES = [(8, 8, 64), (8, 2, 256)]  # (batch, heads, head dim): 512 channels either way
ATTENTION_LENGTHS = [256, 1024, 4096]
GROUPNORM_CASES = [((8, 128, 64, 64), 32), ((8, 256, 32, 32), 32), ((8, 512, 16, 16), 32), ((64, 128, 32, 32), 32)]


def peaks(gpu: str) -> tuple[float | None, float | None]:
    for key, tb_s, tflops in PEAKS:
        if key in gpu:
            return tb_s, tflops
    return None, None


def time_us(fn) -> float:
    from triton.testing import do_bench

    return 1e3 * do_bench(fn, warmup=25, rep=200, return_mode="median")


def fresh_compile(fn):
    """torch.compile (inductor, static shapes) of ``fn`` with dynamo's caches emptied first.

    Each case's closure would otherwise add a guarded entry to the same code object
    until dynamo's recompile limit silently leaves the peer running eagerly.
    """
    torch._dynamo.reset()
    return torch.compile(fn, dynamic=False)


def bench_step_update(quick: bool, peak_tb_s: float | None) -> list[dict]:
    rows = []
    for shape in STEP_SHAPES[:2] if quick else STEP_SHAPES:
        for name, dtypes in STEP_PATTERNS:
            terms = [(0.9 - 0.3 * k, torch.randn(shape, device=DEVICE, dtype=dtype)) for k, dtype in enumerate(dtypes)]
            fused = lambda: lincomb(terms, dtype=torch.float32)  # noqa: E731, B023
            eager = lambda: lincomb_ref(terms, dtype=torch.float32)  # noqa: E731, B023
            compiled = fresh_compile(lambda: sum(c * t.float() for c, t in terms))  # noqa: B023
            n = math.prod(shape)
            moved = n * 4 + sum(t.numel() * t.element_size() for _, t in terms)  # each term read, x_next written
            t_fused, t_eager, t_compiled = time_us(fused), time_us(eager), time_us(compiled)
            gb_s = moved / t_fused / 1e3
            rows.append({
                "pattern": name, "shape": list(shape), "elements": n, "bytes": moved,
                "us_fused": t_fused, "us_eager": t_eager, "us_compiled_ref": t_compiled,
                "gb_s": gb_s, "pct_peak_bw": None if peak_tb_s is None else 100 * gb_s / (1e3 * peak_tb_s),
                "speedup_vs_eager": t_eager / t_fused, "speedup_vs_compiled_ref": t_compiled / t_fused,
            })
            print(f"step {name:48s} {str(shape):18s} {t_fused:8.1f} us {gb_s:8.1f} GB/s  "
                  f"x{t_eager / t_fused:.2f} eager")
    return rows


def bench_attention(quick: bool, peak_tflops: float | None) -> list[dict]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    rows = []
    backends = {"sdpa": None, "flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "math": SDPBackend.MATH}
    for dtype in (torch.float16, torch.bfloat16):
        for batch, heads, head_dim in ATTENTION_CASES:
            for length in ATTENTION_LENGTHS[:2] if quick else ATTENTION_LENGTHS:
                q, k, v = (torch.randn(batch, heads, length, head_dim, device=DEVICE, dtype=dtype) for _ in range(3))
                flops = 4 * batch * heads * length * length * head_dim
                t_fused = time_us(partial(attention, q, k, v, backend="triton"))
                row = {"dtype": str(dtype).removeprefix("torch."), "batch": batch, "heads": heads,
                       "head_dim": head_dim, "length": length, "us_triton": t_fused,
                       "tflops_triton": flops / t_fused / 1e6,
                       "max_abs_err_vs_sdpa": (attention(q, k, v, backend="triton").float()
                                               - F.scaled_dot_product_attention(q, k, v).float()).abs().max().item()}
                if peak_tflops is not None:
                    row["pct_peak_triton"] = 100 * row["tflops_triton"] / peak_tflops
                for name, backend in backends.items():
                    try:
                        if backend is None:
                            t = time_us(partial(F.scaled_dot_product_attention, q, k, v))
                        else:
                            with sdpa_kernel(backend):
                                t = time_us(partial(F.scaled_dot_product_attention, q, k, v))
                    except RuntimeError as err:  # the backend does not take this shape/dtype
                        row[f"us_{name}"] = None
                        row[f"why_not_{name}"] = str(err).splitlines()[0][:200]
                        continue
                    row[f"us_{name}"] = t
                    row[f"tflops_{name}"] = flops / t / 1e6
                    row[f"speedup_vs_{name}"] = t / t_fused
                rows.append(row)
                print(f"attention {row['dtype']:8s} B{batch} H{heads} D{head_dim} L{length:5d} "
                      f"{row['tflops_triton']:7.1f} TFLOP/s  x{row.get('speedup_vs_sdpa') or float('nan'):.2f} sdpa")
                del q, k, v
                torch.cuda.empty_cache()
    return rows


def bench_groupnorm_silu(quick: bool, peak_tb_s: float | None) -> list[dict]:
    rows = []
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        for shape, groups in GROUPNORM_CASES[:2] if quick else GROUPNORM_CASES:
            x = torch.randn(shape, device=DEVICE, dtype=dtype)
            w, b = torch.randn(2, shape[1], device=DEVICE, dtype=dtype)
            t_fused = time_us(lambda: groupnorm_silu(x, groups, w, b, backend="triton"))  # noqa: B023
            t_eager = time_us(lambda: groupnorm_silu_ref(x, groups, w, b))  # noqa: B023
            t_compiled = time_us(fresh_compile(lambda: groupnorm_silu_ref(x, groups, w, b)))  # noqa: B023
            moved = 2 * x.numel() * x.element_size()
            gb_s = moved / t_fused / 1e3
            rows.append({
                "dtype": str(dtype).removeprefix("torch."), "shape": list(shape), "groups": groups, "bytes": moved,
                "us_triton": t_fused, "us_eager": t_eager, "us_compiled": t_compiled, "gb_s": gb_s,
                "pct_peak_bw": None if peak_tb_s is None else 100 * gb_s / (1e3 * peak_tb_s),
                "speedup_vs_eager": t_eager / t_fused, "speedup_vs_compiled": t_compiled / t_fused,
                "max_abs_err_vs_eager": (groupnorm_silu(x, groups, w, b, backend="triton").float()
                                         - groupnorm_silu_ref(x, groups, w, b).float()).abs().max().item(),
            })
            print(f"groupnorm_silu {rows[-1]['dtype']:8s} {str(shape):18s} {gb_s:8.1f} GB/s  "
                  f"x{t_eager / t_fused:.2f} eager  x{t_compiled / t_fused:.2f} compiled")
    return rows


def fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# Fused kernels on {m['gpu']}",
        "",
        f"torch {m['torch']}, triton {result['triton']}, {m['date_utc']}. Peak bandwidth "
        f"{fmt(result['peak_tb_s'])} TB/s, peak dense 16-bit tensor {fmt(result['peak_tflops'], '.0f')} TFLOP/s "
        f"(vendor datasheet{'' if result['peak_tb_s'] else '; unknown device: no % of peak'}). "
        "Speedup = t_peer / t_kernel (above 1: the kernel is faster). Command: `python benchmarks/bench_kernels.py`.",
        "",
        "## Step update",
        "",
        "| pattern | shape | us/step | GB/s | % peak BW | vs eager | vs compiled ref |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["step_update"]:
        lines.append(f"| {r['pattern']} | {tuple(r['shape'])} | {r['us_fused']:.1f} | {r['gb_s']:.0f} | "
                     f"{fmt(r['pct_peak_bw'], '.0f')} | {r['speedup_vs_eager']:.2f} | "
                     f"{r['speedup_vs_compiled_ref']:.2f} |")
    lines += ["", "## Attention", "",
              "| dtype | B | H | D | L | triton TFLOP/s | vs sdpa | vs flash | vs efficient | vs math "
              "| max err vs sdpa |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["attention"]:
        vs = " | ".join(fmt(r.get(f"speedup_vs_{n}")) for n in ("sdpa", "flash", "efficient", "math"))
        lines.append(f"| {r['dtype']} | {r['batch']} | {r['heads']} | {r['head_dim']} | {r['length']} | "
                     f"{r['tflops_triton']:.1f} | {vs} | {r['max_abs_err_vs_sdpa']:.1e} |")
    lines += ["", "## GroupNorm + SiLU", "",
              "| dtype | shape | groups | GB/s | % peak BW | vs eager | vs compiled | max err vs eager |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["groupnorm_silu"]:
        lines.append(f"| {r['dtype']} | {tuple(r['shape'])} | {r['groups']} | {r['gb_s']:.0f} | "
                     f"{fmt(r['pct_peak_bw'], '.0f')} | {r['speedup_vs_eager']:.2f} | {r['speedup_vs_compiled']:.2f} | "
                     f"{r['max_abs_err_vs_eager']:.1e} |")
    return "\n".join(lines) + "\n"


def unavailable() -> str:
    """'' when this machine can run the benchmark, else why nothing can be measured here."""
    if not torch.cuda.is_available():
        return ("a CUDA device is required (the kernels' speed is only meaningful on a GPU); "
                "none is visible here, so nothing was measured.")
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed (pip install 'diffkit[triton]'); nothing was measured."
    return ""


def run(quick: bool = False) -> dict:
    """Every section on the current GPU (see ``unavailable``); the result that ``write`` stores."""
    import triton

    info = machine_info("cuda")
    peak_tb_s, peak_tflops = peaks(info["gpu"])
    if peak_tb_s is None:
        print(f"unknown device {info['gpu']!r}: no peak on record, % of peak left out", file=sys.stderr)
    return {
        "machine": info, "triton": triton.__version__, "peak_tb_s": peak_tb_s, "peak_tflops": peak_tflops,
        "step_update": bench_step_update(quick, peak_tb_s),
        "attention": bench_attention(quick, peak_tflops),
        "groupnorm_silu": bench_groupnorm_silu(quick, peak_tb_s),
    }


def write(result: dict, out_dir: str | Path) -> Path:
    """``out_dir/kernels-<machine>.json`` and ``.md``; returns their common stem."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"kernels-{machine_tag(result['machine'])}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(result))
    return stem
