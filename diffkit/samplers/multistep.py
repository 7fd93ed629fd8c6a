"""Coefficients shared by the multistep samplers: past predictions, interpolated and integrated over a step.

A multistep sampler keeps the model's predictions at the last few visited points
and, on each step, replaces the prediction inside the step's exact integral by
the polynomial through them (Adams-Bashforth). In the variance-exploding
variables x_k = x / alpha and sigma_k = exp(-lambda) the probability-flow ODE is
dx_k / dsigma_k = eps, so with the Lagrange basis l_j of the nodes s_j = s(lambda_j)
in an interpolation variable s (j = 0 the current point, 1, 2, ... earlier ones)
and sum_j l_j = 1, a step to n is, multiplied by alpha_n:

    x_n = alpha_n x0_0 + sigma_n eps_0 + sum_{j>=1} w_j (eps_j - eps_0)
    w_j = alpha_n * integral of l_j(s) dsigma_k over the step
        = -sigma_n * integral_{lambda_0}^{lambda_n} l_j(s(lambda)) exp(lambda_n - lambda) dlambda

with no division by alpha_0: the form holds from zero SNR. The first two terms are
DDIM (the first-order step); the sum is the multistep correction. Which variable
s the polynomial lives in is what tells iPNDM's variable-step form (s = sigma_k),
DEIS's tAB (s = a time) and diffusers' DEIS (s = log sigma_k = -lambda) apart.

A node at s = +-inf (a point at zero SNR: sigma_k = inf, lambda = -inf) leaves
the basis: as a node recedes to infinity the interpolant through the others is
the limit, so the step after a start from zero SNR is one order lower, finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from diffkit.samplers.lincomb import LinComb
from diffkit.samplers.model_calls import Prediction
from diffkit.samplers.timetable import Point

# Gauss-Legendre on the step in lambda: exact for polynomials of degree 47, and the integrands
# (polynomials in exp(-lambda), lambda or a smooth time, times exp(lambda_n - lambda)) are entire
# or analytic in a strip around the real axis, so 24 nodes reach float64 rounding (tests/test_samplers_multistep.py).
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(24)


def lagrange_basis(nodes: Sequence[float], s: np.ndarray) -> np.ndarray:
    """l_j(s) for each node j (rows) at the points ``s`` (columns)."""
    basis = np.ones((len(nodes), len(s)))
    for j, sj in enumerate(nodes):
        for k, sk in enumerate(nodes):
            if k != j:
                basis[j] *= (s - sk) / (sj - sk)
    return basis


def eps_adams_weights(
    lams: Sequence[float], lam_next: float, sigma_next: float, variable: Callable[[np.ndarray], np.ndarray]
) -> list[float]:
    """w_1, w_2, ... of the module docstring, for nodes at half log-SNRs ``lams`` (current first).

    ``variable`` maps lambda to the interpolation variable s (vectorised). Nodes where
    s is infinite get w_j = 0 and leave the basis. With one node there are no weights
    (the step may then be infinite); otherwise the step must be finite (lambda_0 > -inf).
    """
    if len(lams) == 1:
        return []
    s_nodes = variable(np.asarray(lams, dtype=np.float64))
    keep = [j for j, s in enumerate(s_nodes) if math.isfinite(s)]
    half = 0.5 * (lam_next - lams[0])
    lam = lams[0] + half * (1.0 + _GL_NODES)
    basis = lagrange_basis([s_nodes[j] for j in keep], variable(lam))
    integrals = basis @ (_GL_WEIGHTS * np.exp(lam_next - lam)) * half
    weights = dict(zip(keep, (-sigma_next * integrals).tolist()))
    return [weights.get(j, 0.0) for j in range(1, len(lams))]


def eps_adams_update(p: Prediction, to: Point, eps_earlier: Sequence[LinComb], weights: Sequence[float]) -> LinComb:
    """x_n = alpha_n x0_0 + sigma_n eps_0 + sum_{j>=1} w_j (eps_j - eps_0), the update of the module docstring."""
    x = to.alpha * p.x0 + to.sigma * p.eps
    for w_j, eps_j in zip(weights, eps_earlier):
        x = x + w_j * (eps_j - p.eps)
    return x


def unipc_rhos(r: Sequence[float], h: float, B: float, order: int) -> tuple[list[float], list[float]]:
    """UniPC's (rho_p, rho_c) for an order-``order`` step (Zhao et al. 2023, Algorithm 2 / diffusers).

    With phi-function values g_i = i! * h phi_{i+1}(-h) (the recursion below, from
    h phi_1 = e^-h - 1), rows R_i = (r_1^i, ..., r_{p-1}^i, 1^i) and b_i = g_i / B(h)
    for i = 0..p-1: rho_c solves R rho = b, rho_p the system without the last row and
    column; the paper's closed forms replace order-2 rho_p and order-1 rho_c by 1/2.
    """
    nodes = np.append(np.asarray(r, dtype=np.float64), 1.0)
    R = np.vander(nodes, order, increasing=True).T
    terms, h_phi, factorial = [], math.expm1(-h) / -h - 1.0, 1.0
    for i in range(1, order + 1):
        terms.append(h_phi * factorial / B)
        factorial *= i + 1
        h_phi = h_phi / -h - 1.0 / factorial
    b = np.asarray(terms)
    rho_p = [0.5] if order == 2 else np.linalg.solve(R[:-1, :-1], b[:-1]).tolist() if order > 2 else []
    rho_c = [0.5] if order == 1 else np.linalg.solve(R, b).tolist()
    return rho_p, rho_c


# Gauss-Laguerre for the step to the data, in u = lambda - lambda_0 on [0, inf) against exp(-u): exact where the
# basis is a polynomial in lambda (DEIS logrho), ~1e-14 where it is one in sigma_k = sigma_k,0 exp(-u) (iPNDM), and
# <= 1e-9 relative for DEIS's VP-SDE time (tests/test_samplers_multistep.py, against adaptive quadrature).
_GLAG_NODES, _GLAG_WEIGHTS = np.polynomial.laguerre.laggauss(64)


def adams_to_data_weights(lams: Sequence[float], variable: Callable[[np.ndarray], np.ndarray],
                          fixed: Sequence[float] | None = None) -> list[float]:
    """w_1, w_2, ... of the step from the current node to the data (sigma_k = 0, alpha = 1).

    The step's integral is finite there although lambda_n = inf: with nodes at half log-SNRs
    ``lams`` (current first; nodes where ``variable`` is infinite leave the basis),

        w_j = integral_{sigma_k,0}^{0} l_j(s) dsigma_k = -sigma_k,0 integral_0^inf l_j(s(lambda_0 + u)) e^-u du

    so x_0 = x0_0 + sum_{j>=1} w_j (eps_j - eps_0). With ``fixed`` Adams-Bashforth
    coefficients c_j (equal steps) instead: w_j = -sigma_k,0 c_j.
    """
    if len(lams) == 1:
        return []
    s0 = math.exp(-lams[0])
    if fixed is not None:
        return [-s0 * c for c in fixed[1:]]
    s_nodes = variable(np.asarray(lams, dtype=np.float64))
    keep = [j for j, s in enumerate(s_nodes) if math.isfinite(s)]
    basis = lagrange_basis([s_nodes[j] for j in keep], variable(lams[0] + _GLAG_NODES))
    weights = dict(zip(keep, (-s0 * (basis @ _GLAG_WEIGHTS)).tolist()))
    return [weights.get(j, 0.0) for j in range(1, len(lams))]
