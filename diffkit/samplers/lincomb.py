"""LinComb: the algebra of a sampler step, written as math and evaluated in one pass.

A sampler update is a linear combination of tensors with scalar coefficients
that depend only on the schedule (host floats, float64):

    x_n = (sigma_n / sigma_t) x_t + alpha_n (1 - exp(-h)) D,   D = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev

Samplers write exactly that, over the LinComb values the sampler run hands them
(``p.x``, ``p.x0``, ``p.eps`` of a prediction, noise draws). Adding, subtracting
and scaling by Python numbers only combine coefficients on the host, merging
terms over the same tensor (x0 = (x - sigma eps) / alpha expands into x and eps,
so the x of ``(sigma_n / sigma_t) x_t`` and the x inside x0 become one term).
Nothing touches memory until a value is needed (the next model call, the
result): then :meth:`LinComb.evaluate` computes it in one pass
(:func:`diffkit.kernels.lincomb.combine`: a fused kernel on GPUs, one multiply
and an in-place add per term otherwise). Products of two LinCombs are not linear
and are refused.
"""

from __future__ import annotations

import torch

from diffkit.kernels.lincomb import combine



class LinComb:
    """sum_i c_i * tensor_i, lazy; ``terms`` is a tuple of (float coefficient, tensor) pairs."""

    __slots__ = ("terms",)

    def __init__(self, terms: tuple[tuple[float, torch.Tensor], ...]) -> None:
        self.terms = terms

    @classmethod
    def of(cls, value: LinComb | torch.Tensor) -> LinComb:
        """``value`` as a LinComb (a tensor becomes 1 * tensor)."""
        if isinstance(value, LinComb):
            return value
        if isinstance(value, torch.Tensor):
            return cls(((1.0, value),))
        raise TypeError(f"expected a tensor or a LinComb, got {type(value).__name__}")

    # -- algebra on the host ------------------------------------------------------------

    def __add__(self, other: object) -> LinComb:
        if isinstance(other, LinComb):
            added = other.terms
        elif isinstance(other, torch.Tensor):
            added = ((1.0, other),)
        else:
            return NotImplemented
        terms = list(self.terms)
        for c, t in added:
            for k, (ck, tk) in enumerate(terms):
                if tk is t:  # the same tensor: one term
                    terms[k] = (ck + c, t)
                    break
            else:
                terms.append((c, t))
        return LinComb(tuple(terms))

    __radd__ = __add__

    def __mul__(self, scale: object) -> LinComb:
        if not isinstance(scale, (float, int)) or isinstance(scale, bool):
            if isinstance(scale, (LinComb, torch.Tensor)):
                raise TypeError("a product of two tensors is not linear; scale a LinComb by a Python number")
            return NotImplemented
        return LinComb(tuple([(scale * c, t) for c, t in self.terms]))

    __rmul__ = __mul__

    def __neg__(self) -> LinComb:
        return self * -1.0

    def __sub__(self, other: object) -> LinComb:
        if isinstance(other, torch.Tensor):
            other = LinComb(((1.0, other),))
        elif not isinstance(other, LinComb):
            return NotImplemented
        return self + other * -1.0

    def __rsub__(self, other: object) -> LinComb:
        return -self + other

    def __truediv__(self, scale: object) -> LinComb:
        if not isinstance(scale, (float, int)) or isinstance(scale, bool):
            return NotImplemented
        return self * (1.0 / scale)

    def __repr__(self) -> str:
        parts = " + ".join(f"{c:.6g} * <{tuple(t.shape)} {t.dtype}>" for c, t in self.terms)
        return f"LinComb({parts})"

    # -- evaluation ------------------------------------------------------------------------

    @property
    def first(self) -> torch.Tensor:
        """A tensor of the value's shape and device."""
        return self.terms[0][1]

    def evaluate(self, out: torch.Tensor | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The value as a tensor, in ``out`` when given (it must overlap no term), else fresh of ``dtype``."""
        terms = tuple(term for term in self.terms if term[0] != 0.0) or self.terms[:1]
        if len(terms) == 1 and terms[0][0] == 1.0 and out is None and terms[0][1].dtype == (dtype or terms[0][1].dtype):
            return terms[0][1]  # the tensor itself: nothing to compute
        if torch.is_grad_enabled() and any(t.requires_grad for _, t in terms):
            out = None  # autograd follows fresh results; out= writes would cut the graph
        return combine(terms, out, dtype)
