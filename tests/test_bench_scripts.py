"""The benchmark layer: code in diffkit.bench, thin entry points in benchmarks/, peers imported on first use.

The scripts run in subprocesses from the repository root, as their docstrings say to run them;
the tests themselves import only the package.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffkit.bench import peers
from diffkit.bench.peers import kdiffusion as kdiffusion_peers
from diffkit.schedules import Linear

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("bench_overhead", "bench_kernels", "bench_end_to_end", "digits_quality", "run_full",
           "bench_diffusers_adapter", "generate_throughput", "multistep_frontier", "bench_grids", "frontier")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_library_never_imports_benchmarks_nor_edits_sys_path():
    for path in sorted((ROOT / "diffkit").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "benchmarks" for a in node.names), path
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "benchmarks", path
            elif isinstance(node, ast.Attribute) and node.attr == "path":
                assert not (isinstance(node.value, ast.Name) and node.value.id == "sys"), f"sys.path in {path}"
            elif (isinstance(node, ast.Call)
                  and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"):
                name = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else ""
                assert not str(name).startswith("benchmarks"), path


def test_entry_points_import_without_the_peer_libraries():
    # Importing a script (or the peers) must not import diffusers or k-diffusion: only running a peer does.
    code = ("import sys\n" + "".join(f"import benchmarks.{name}\n" for name in SCRIPTS)
            + "print(sorted(m for m in ('diffusers', 'k_diffusion', 'torchsde') if m in sys.modules))")
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_overhead_script_runs_and_prints_its_rows():
    pytest.importorskip("diffusers")
    result = _run("-m", "benchmarks.bench_overhead", "--steps", "2", "--repeats", "1", "--warmup", "0",
                  "--samplers", "ddim", "--brownian-steps", "0", "--no-write")
    assert result.returncode == 0, result.stderr
    rows = [line.split()[:2] for line in result.stdout.splitlines() if line.startswith("ddim ")]
    assert rows == [["ddim", "1x3x32x32"], ["ddim", "16x4x64x64"]]
    assert "wrote" not in result.stdout


def test_frontier_script_quick_run_writes_its_files(tmp_path):
    pytest.importorskip("diffusers")
    result = _run("-m", "benchmarks.frontier", "--quick", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "gmm2d-linear" in result.stdout and "wrote" in result.stdout
    assert {p.name for p in tmp_path.iterdir()} >= {"frontier.md", "frontier.json"}


def test_missing_peer_libraries_name_the_bench_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers now raises ImportError
    with pytest.raises(ImportError, match=r'pip install -e "\.\[bench\]"'):
        peers.diffusers_scheduler("ddim", Linear())
    monkeypatch.setattr(kdiffusion_peers, "k_diffusion_sampling_path", lambda: None)
    with pytest.raises(ImportError, match=r"\[bench\].*--no-deps k-diffusion"):
        kdiffusion_peers.load_k_diffusion_sampling.__wrapped__()  # past the cache of the real, loaded one
