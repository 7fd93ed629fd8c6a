"""Shared fixtures: schedules and analytic models (float64 ground truth)."""

from __future__ import annotations

import contextlib
import os

import pytest
import torch
from hypothesis import settings

from diffkit.io.pretrained import save_pretrained
from diffkit.kernels._backend import triton_on
from diffkit.models import GaussianMixture, exact_sample
from diffkit.schedules import Cosine, Linear
from diffkit.unet import UNet, UNetConfig

# Property and fuzz tests draw the same examples on every run (a seed from each test's hash), so a run of
# the suite, CI's included, is reproducible; HYPOTHESIS_PROFILE=explore draws fresh random examples to
# look for new failures (pin what it finds as a plain test, as tests/test_fuzz_files.py does).
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# A tiny class-conditional digits U-Net: the CLI commands' model in tests (untrained: shapes and plumbing only).
TINY = UNetConfig(in_channels=1, channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                  resolution=8, groups=4, dropout=0.0, num_classes=10)  # fmt: skip

# Import triton (if installed) under TRITON_INTERPRET=1 before any test module can import it
# otherwise: its own jitted helpers run in the CPU interpreter only when imported that way.
# The variable is restored on exit, so only the kernel tests (fixture ``kernels_run``) interpret.
with triton_on("cpu"):
    pass


@pytest.fixture(scope="session")
def linear():
    return Linear()


@pytest.fixture(scope="session")
def cosine():
    return Cosine()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A pretrained file of the TINY U-Net (seed 0) and the Linear schedule."""
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    torch.manual_seed(0)
    save_pretrained(path, UNet.from_config(TINY), Linear())
    return path


@pytest.fixture(scope="session")
def gmm2d(linear):
    return GaussianMixture.two_d(linear)


@pytest.fixture(scope="session")
def gmm8d(linear):
    return GaussianMixture.random(linear, dim=8, components=3, seed=1)


@pytest.fixture(scope="session")
def ode_reference(gmm8d, linear):
    """(x_T, the exact probability-flow ODE solution from it) for the 8-D mixture: the empirical orders' target."""
    x_T = noise((48, 8), seed=5)
    return x_T, exact_sample(gmm8d, linear, x_T)


def noise(shape, seed=0, dtype=torch.float64):
    """Standard normal x_T from a fixed seed."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_data_statistics(x, mixture):
    """Samples ``x`` [n, D] have the mixture's mean, covariance and mode frequencies, within sampling error.

    5 standard errors of the sample mean and of each mode's frequency at n samples, plus a
    small allowance for the discretisation bias; sample covariance entries have standard
    error ~ sqrt(2 / n) var, which 0.03 absolute covers with margin.
    """
    n = x.shape[0]
    cov = mixture.covariance()
    mean_se = (torch.diag(cov) / n).sqrt()
    torch.testing.assert_close(x.mean(0), mixture.mean(), atol=(5 * mean_se).max().item() + 0.01, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.03, rtol=0.05)
    freq = mixture.assign_modes(x).bincount(minlength=len(mixture.weights)).double() / n
    mode_se = (mixture.weights * (1 - mixture.weights) / n).sqrt()
    torch.testing.assert_close(freq, mixture.weights, atol=(5 * mode_se).max().item() + 0.01, rtol=0)


MEMORY_HEADROOM = 1 << 30  # what a fuzzed input may make diffkit allocate: the bad inputs ask for 8 GB and up


@contextlib.contextmanager
def bounded_memory(headroom: int = MEMORY_HEADROOM):
    """Cap this process's address space at its current size plus ``headroom`` (Linux), restored on exit.

    Inside, an input that makes diffkit allocate gigabytes fails with MemoryError or torch's
    "can't allocate memory" RuntimeError instead of swapping the machine to a halt, and a test
    that accepts only ValueError/TypeError fails on it. Where the cap cannot be set, no cap.
    """
    try:
        import resource

        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = size + headroom if hard == resource.RLIM_INFINITY else min(size + headroom, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError, StopIteration):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
