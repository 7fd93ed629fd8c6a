"""What holds for every kernel whatever the machine: imports without Triton, fallbacks, torch.compile.

Also home of ``kernels_run``, the fixture that the kernel test modules import.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from diffkit.kernels import attention, lincomb
from diffkit.kernels._backend import interpreting, triton_installed, triton_on, use_triton
from diffkit.kernels.groupnorm_silu import groupnorm_silu

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# Import triton now, at collection, before anything else can: on the CPU its own jitted
# helpers (tl.sum, tl.randn) run under the interpreter only if it was imported under it.
with triton_on(DEVICE):
    pass


@pytest.fixture(scope="module")
def kernels_run():
    """For the kernel test modules: kernels run on CUDA when there is one, else through Triton's CPU interpreter."""
    if not triton_installed():
        pytest.skip("triton is not installed")
    with triton_on(DEVICE) as ready:
        if not ready:  # conftest imports triton the right way first, so this is a real failure
            pytest.fail("triton was imported before TRITON_INTERPRET=1 was set; the kernels cannot be checked")
        yield


def assert_error_within_eager(got: torch.Tensor, eager: torch.Tensor, exact: torch.Tensor) -> None:
    """A kernel's error against float64 stays within eager PyTorch's at the same precision, measured in this run.

    Two statistics, each with one rounding of the output added. The RMS error averages
    thousands of independent roundings and concentrates: the kernel's stays within 2x
    eager's on any CPU. The maximum is one extreme draw of them, and it moves by 2-3x
    between machines as eager's BLAS changes its reduction order (Intel vs AMD), so it
    gets 8x: still orders of magnitude below what one wrong element (an indexing or
    masking bug) costs. Both bounds scale with the eager error of the same inputs, so
    they need no constant that one CPU happens to meet.
    """
    assert got.dtype == eager.dtype and got.shape == exact.shape, (got.dtype, eager.dtype, got.shape, exact.shape)
    if exact.numel() == 0:
        return
    half_ulp = torch.finfo(got.dtype).eps / 2
    err_got, err_eager = got.double() - exact, eager.double() - exact
    rms = lambda t: t.pow(2).mean().sqrt().item()  # noqa: E731
    rms_got, rms_eager = rms(err_got), rms(err_eager)
    assert rms_got <= 2 * rms_eager + half_ulp * rms(exact), ("rms", rms_got, rms_eager)
    max_got, max_eager = err_got.abs().max().item(), err_eager.abs().max().item()
    assert max_got <= 8 * max_eager + half_ulp * exact.abs().max().item(), ("max", max_got, max_eager)


def count_launches(monkeypatch, *kernels: str) -> dict[str, int]:
    """Launches of each ``diffkit.kernels.<kernel>`` Triton kernel from now on (its ``_launch``), by name."""
    counts = dict.fromkeys(kernels, 0)
    for name in kernels:
        module = sys.modules[f"diffkit.kernels.{name}"]

        def counted(*args, _launch=module._launch, _name=name, **kwargs):
            counts[_name] += 1
            return _launch(*args, **kwargs)

        monkeypatch.setattr(module, "_launch", counted)
    return counts


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        cwd=Path(__file__).resolve().parents[1],  # the repository root: `import diffkit` without an install
    )


def test_import_is_lazy_and_a_late_interpreter_falls_back():
    done = run_python("""
        import os, sys
        import torch
        import diffkit.kernels
        import diffkit.kernels.groupnorm_silu
        from diffkit.kernels import lincomb, lincomb_ref
        from diffkit.kernels._backend import use_triton
        assert "triton" not in sys.modules, "importing diffkit.kernels imported triton"
        import triton  # without TRITON_INTERPRET: tl.sum & co. cannot be interpreted any more
        os.environ["TRITON_INTERPRET"] = "1"
        x = torch.randn(3, 4)
        assert not use_triton(x)
        terms = [(0.5, x), (0.25, torch.randn(3, 4))]
        assert torch.equal(lincomb(terms), lincomb_ref(terms))
    """)
    assert done.returncode == 0, done.stderr


def test_without_triton_every_launcher_falls_back_to_its_reference():
    # sys.modules["triton"] = None makes `import triton` fail as if it were not installed;
    # TRITON_INTERPRET=1 asks for the kernels, which must then fall back, not crash.
    done = run_python("""
        import sys
        sys.modules["triton"] = None
        import torch
        from diffkit.kernels import attention, attention_ref, lincomb, lincomb_ref
        from diffkit.kernels._backend import use_triton
        from diffkit.kernels.groupnorm_silu import groupnorm_silu, groupnorm_silu_ref
        x = torch.randn(2, 4, 3, 3)
        assert not use_triton(x)
        terms = [(0.5, x), (0.1, torch.randn(2, 4, 3, 3))]
        assert torch.equal(lincomb(terms), lincomb_ref(terms))
        q = torch.randn(1, 2, 5, 32)
        assert torch.equal(attention(q, q, q, backend="triton"), attention_ref(q, q, q))
        assert torch.equal(groupnorm_silu(x, 2, backend="triton"), groupnorm_silu_ref(x, 2))
    """, TRITON_INTERPRET="1")
    assert done.returncode == 0, done.stderr


def test_kernels_compile_for_a_gpu_without_one():
    # Compiling to sm_90 machine code checks what the interpreter does not (the typing of
    # loop-carried values, tl.dot's shape rules, shared memory per config). A fresh process:
    # this one imported triton for the interpreter.
    if not triton_installed():
        pytest.skip("triton is not installed")
    done = run_python("""
        import sys
        import triton
        import triton.language as tl
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource

        import diffkit.kernels
        combine = sys.modules["diffkit.kernels.lincomb"]._kernel().fn
        attention = sys.modules["diffkit.kernels.attention"]._kernel().fn
        stats, apply = sys.modules["diffkit.kernels.groupnorm_silu"]._kernels()

        def build(fn, types, constants, **options):
            signature = {name: types.get(name, "i32") for name in fn.arg_names}
            signature.update({name: "constexpr" for name in constants})
            kernel = triton.compile(ASTSource(fn, signature, constants), target=GPUTarget("cuda", 90, 32),
                                    options=options)
            print(fn.__name__, "shared memory", kernel.metadata.shared)

        f32 = lambda *names: {name: "fp32" for name in names}
        for n, term in ((1, "fp32"), (3, "fp16"), (8, "bf16")):
            build(combine, {"out_ptr": "*fp32", **{f"t{k}_ptr": f"*{term}" for k in range(8)},
                            **f32(*(f"c{k}" for k in range(8)))}, {"N": n, "BLOCK": 1024}, num_warps=4)
        for dtype, dot, head_dim in (("fp16", tl.float16, 64), ("bf16", tl.bfloat16, 256)):
            build(attention, {"q_ptr": f"*{dtype}", "k_ptr": f"*{dtype}", "v_ptr": f"*{dtype}", "o_ptr": f"*{dtype}",
                              "qk_scale": "fp32"},
                  {"HEAD_DIM": head_dim, "DOT_DTYPE": dot, "DOT_PRECISION": "tf32", "BLOCK_M": 64, "BLOCK_N": 32},
                  num_warps=4, num_stages=2)
        build(stats, {"x_ptr": "*bf16", "part_ptr": "*fp32"}, {"BLOCK": 1024}, num_warps=4)
        build(apply, {"x_ptr": "*bf16", "w_ptr": "*fp32", "b_ptr": "*fp32", "part_ptr": "*fp32", "y_ptr": "*bf16",
                      "eps": "fp32"},
              {"HAS_WEIGHT": True, "HAS_BIAS": True, "SPLIT_POW2": 16, "BLOCK": 1024}, num_warps=4)
    """, TRITON_INTERPRET="0")
    assert done.returncode == 0, done.stderr


def test_cpu_tensors_use_the_reference_unless_interpreting():
    if interpreting():
        pytest.skip("TRITON_INTERPRET=1 is set for the whole session")
    assert not use_triton(torch.zeros(1))


def test_kernels_compile_without_graph_breaks():
    # The custom ops stay opaque nodes; a linear combination is plain ops that inductor fuses itself.
    def update(x, eps, q):
        x_next = lincomb([(0.5, x), (-0.25, eps)]) + lincomb([(1.0, x), (2.0, eps), (0.1, x)])
        h = groupnorm_silu(x_next, 2, backend="triton")
        return h, attention(q, q, q, backend="triton")

    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    x, eps, q = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3), torch.randn(1, 2, 5, 32)
    torch.compile(update, fullgraph=True, backend=capture)(x, eps, q)
    (graph,) = graphs
    for op in ("groupnorm_silu", "fused_attention"):
        assert f"torch.ops.diffkit.{op}" in graph.code, f"{op} is not one opaque node"
    # aot_eager runs the fake implementations and functionalisation as inductor does, in a
    # fraction of the time (inductor's C++ build takes seconds per graph on 2 cores).
    compiled = torch.compile(update, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(x, eps, q), update(x, eps, q)):
        torch.testing.assert_close(got, want)


def test_custom_op_fakes_match_the_real_outputs():
    x = torch.randn(2, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.diffkit.groupnorm_silu.default, (x, 2, None, None, 1e-5))
    q = torch.randn(1, 5, 2, 32).transpose(1, 2)
    torch.library.opcheck(torch.ops.diffkit.fused_attention.default, (q, q, q))


def test_switches_for_benchmarks(kernels_run):
    from diffkit.kernels import fused_attention, reference_kernels
    from diffkit.kernels.attention import fused_attention_enabled

    x = torch.randn(5)
    assert use_triton(x)
    with reference_kernels():
        assert not use_triton(x)
    assert use_triton(x)
    assert not fused_attention_enabled()
    with fused_attention():
        assert fused_attention_enabled()
        with fused_attention(False):
            assert not fused_attention_enabled()
    assert not fused_attention_enabled()
