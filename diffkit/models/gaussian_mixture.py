"""An exact model: data from a Gaussian mixture, noised by any schedule family.

If x0 ~ sum_k pi_k N(mu_k, S_k) then x_t = alpha_t x0 + sigma_t eps is again a
mixture, sum_k pi_k N(alpha_t mu_k, C_k(t)) with C_k(t) = alpha_t^2 S_k + sigma_t^2 I.
Its score is exact, and the optimal predictions (the minimisers of the training
losses) are the posterior means:

    eps*(x, t) = sigma_t * sum_k r_k(x) C_k(t)^{-1} (x - alpha_t mu_k)
    x0*(x, t)  = sum_k r_k(x) (mu_k + alpha_t S_k C_k(t)^{-1} (x - alpha_t mu_k))
    r_k(x)     = softmax_k( log pi_k + log N(x; alpha_t mu_k, C_k(t)) )

Both are finite for every (alpha, sigma) with sigma > 0, alpha = 0 included (x0*
is then the data mean): so the mixture gives exact ground truth in every family
and every prediction type (:meth:`GaussianMixture.as_model`). With
S_k = U_k diag(s_k) U_k^T, C_k(t)^{-1} = U_k diag(1/(alpha^2 s_k + sigma^2)) U_k^T,
so each evaluation costs O(K B D^2), in the dtype of x.
"""

from __future__ import annotations

import math

import torch

from diffkit.conversions import PREDICTION_TYPES, per_sample
from diffkit.models.prediction import Predictor
from diffkit.schedules.base import Schedule


class GaussianMixture:
    """Analytic model ``model(x, t) -> eps*`` for Gaussian-mixture data; x has shape [B, *event_shape].

    ``as_model(prediction_type)`` gives the same exact model predicting x0, v or the flow velocity.
    """

    def __init__(
        self,
        schedule: Schedule,  # the forward process whose marginals the model is exact for
        weights: torch.Tensor,  # [K] mixture weights, positive, summing to 1
        means: torch.Tensor,  # [K, D] component means
        covariances: torch.Tensor,  # [K, D, D] symmetric positive-definite component covariances
        event_shape: tuple[int, ...] | None = None,  # shape of one sample; defaults to (D,)
    ) -> None:
        weights = torch.as_tensor(weights, dtype=torch.float64)
        means = torch.as_tensor(means, dtype=torch.float64)
        covariances = torch.as_tensor(covariances, dtype=torch.float64)
        if means.ndim != 2:
            raise ValueError(f"means must have shape [K, D], got {tuple(means.shape)}")
        K, D = means.shape
        if weights.shape != (K,) or not bool((weights > 0).all()) or abs(float(weights.sum()) - 1) > 1e-6:
            raise ValueError(f"weights must be {K} positive numbers summing to 1, got {weights.tolist()}")
        if covariances.shape != (K, D, D):
            raise ValueError(f"covariances must have shape [K, D, D]=[{K}, {D}, {D}], got {tuple(covariances.shape)}")
        if not torch.allclose(covariances, covariances.transpose(1, 2)):
            raise ValueError("covariances must be symmetric")
        evals, evecs = torch.linalg.eigh(covariances)
        if not bool((evals > 0).all()):
            raise ValueError("covariances must be positive definite")
        event_shape = (D,) if event_shape is None else tuple(event_shape)
        if math.prod(event_shape) != D:
            raise ValueError(f"event_shape {event_shape} must hold D={D} values")
        self.schedule = schedule
        self.weights, self.means, self.covariances = weights / weights.sum(), means, covariances
        self.event_shape = event_shape
        self._evals, self._evecs = evals, evecs

    @property
    def dim(self) -> int:
        """D, the number of values in one sample."""
        return self.means.shape[1]

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps*(x, t) in x's dtype; t is a float tensor [B] in the schedule's time."""
        return self.posterior_means(x, t)[1]

    def posterior_means(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0*, eps*): E[x0 | x_t = x] and E[eps | x_t = x], in x's dtype."""
        B = x.shape[0]
        n = self._noisy(x, t)
        resp = torch.softmax(n["log_joint"], dim=-1)  # [B, K]
        precision_z = torch.einsum("bke,kde->bkd", n["z"] / n["diag"], n["evecs"])  # C^-1 (x - alpha mu)
        eps = n["sigma"].view(B, 1) * torch.einsum("bk,bkd->bd", resp, precision_z)
        shrunk = torch.einsum("bke,kde->bkd", n["evals"] * n["z"] / n["diag"], n["evecs"])  # S C^-1 (x - alpha mu)
        x0 = torch.einsum("bk,bkd->bd", resp, self.means.to(x.device, x.dtype) + n["alpha"] * shrunk)
        return x0.reshape(x.shape), eps.reshape(x.shape)

    def log_posterior(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log p(component k | x_t = x), [B, K]: the exact noise-aware classifier of the components."""
        return torch.log_softmax(self._noisy(x, t)["log_joint"], dim=-1)

    def classifier_log_prob(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | int) -> torch.Tensor:
        """log p(y | x_t = x), [B], for component labels ``y`` ([B] or one int): ClassifierGuidance's ``log_prob``.

        With it at scale 1, guidance turns the mixture's eps into component y's exactly
        (grad log p(x_t) + grad log p(y | x_t) = grad log p(x_t | y)).
        """
        y = torch.as_tensor(y, device=x.device).expand(x.shape[0]).long()
        return self.log_posterior(x, t).gather(1, y.view(-1, 1)).squeeze(1)

    def _noisy(self, x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """The noisy mixture at (x, t) in each component's eigenbasis.

        z = U^T (x - alpha mu), diag = alpha^2 s + sigma^2.
        """
        B = x.shape[0]
        dt = x.dtype
        y = x.reshape(B, 1, self.dim)
        alpha = self.schedule.alpha(t).to(device=x.device, dtype=dt).view(B, 1, 1)
        sigma = self.schedule.sigma(t).to(device=x.device, dtype=dt).view(B, 1, 1)
        evecs = self._evecs.to(device=x.device, dtype=dt)  # [K, D, D]
        evals = self._evals.to(x.device, dt)  # [K, D]
        diag = alpha**2 * evals + sigma**2  # [B, K, D]
        centred = y - alpha * self.means.to(x.device, dt)  # [B, K, D]
        z = torch.einsum("bkd,kde->bke", centred, evecs)
        log_joint = torch.log(self.weights.to(x.device, dt)) - 0.5 * ((z * z / diag).sum(-1) + diag.log().sum(-1))
        return {"alpha": alpha, "sigma": sigma, "evecs": evecs, "evals": evals, "diag": diag, "z": z,
                "log_joint": log_joint}

    def as_model(self, prediction_type: str = "epsilon") -> Predictor:
        """The exact model predicting ``prediction_type`` (epsilon, sample, v_prediction, flow)."""
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; allowed: {', '.join(PREDICTION_TYPES)}")

        def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            x0, eps = self.posterior_means(x, t)
            if prediction_type == "epsilon":
                return eps
            if prediction_type == "sample":
                return x0
            if prediction_type == "flow":
                return eps - x0
            alpha = per_sample(self.schedule.alpha(t).to(x.device), x)
            sigma = per_sample(self.schedule.sigma(t).to(x.device), x)
            return alpha * eps - sigma * x0  # v

        return Predictor(predict, prediction_type)

    # -- ground truth of the data -----------------------------------------------------

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples of x0 (float64), shape [n, *event_shape]."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        root = self._evecs * self._evals.sqrt().unsqueeze(1)  # U diag(sqrt s): S = root root^T
        x = self.means[k] + torch.einsum("nde,ne->nd", root[k], z)
        return x.reshape((n,) + self.event_shape)

    def mean(self) -> torch.Tensor:
        """Mean of the data distribution, [D]."""
        return self.weights @ self.means

    def covariance(self) -> torch.Tensor:
        """Covariance of the data distribution, [D, D] (law of total covariance)."""
        mu = self.mean()
        d = self.means - mu
        return torch.einsum("k,kde->de", self.weights, self.covariances + d.unsqueeze(2) * d.unsqueeze(1))

    def conditional(self, known: torch.Tensor, x_known: torch.Tensor) -> "GaussianMixture":
        """The data's law given the coordinates where ``known`` is true: a mixture over the other coordinates.

        ``known`` (bool) and ``x_known`` have the event shape (or [D]). Per component, with
        K the known and U the unknown coordinates (the Gaussian conditional):

            mu_k' = mu_U + S_UK S_KK^-1 (x_K - mu_K),   S_k' = S_UU - S_UK S_KK^-1 S_KU
            pi_k' = pi_k N(x_K; mu_K, S_KK) / sum_j pi_j N(x_K; mu_j, S_jj)

        The result's samples are the unknown coordinates in flattened order: the exact answer
        of inpainting. Weights are floored at 1e-300 (components that far away keep no mass).
        """
        known = torch.as_tensor(known, dtype=torch.bool).reshape(-1)
        x_k = torch.as_tensor(x_known, dtype=torch.float64).reshape(-1)
        if known.shape != (self.dim,) or x_k.shape != (self.dim,) or bool(known.all()) or not bool(known.any()):
            raise ValueError(f"known and x_known must hold D={self.dim} values, with some known and some not")
        K, U = known.nonzero().squeeze(1), (~known).nonzero().squeeze(1)
        S = self.covariances
        S_kk, S_uk, S_uu = S[:, K][:, :, K], S[:, U][:, :, K], S[:, U][:, :, U]
        d = (x_k[K] - self.means[:, K]).unsqueeze(2)  # [K, |K|, 1]
        gain = torch.linalg.solve(S_kk, S_uk.transpose(1, 2)).transpose(1, 2)  # S_UK S_KK^-1
        means = self.means[:, U] + (gain @ d).squeeze(2)
        covariances = S_uu - gain @ S_uk.transpose(1, 2)
        covariances = (covariances + covariances.transpose(1, 2)) / 2
        log_w = torch.log(self.weights) - 0.5 * ((d.transpose(1, 2) @ torch.linalg.solve(S_kk, d)).reshape(-1)
                                                  + torch.logdet(S_kk))
        weights = torch.softmax(log_w, dim=0).clamp_min(1e-300)
        return GaussianMixture(self.schedule, weights / weights.sum(), means, covariances)

    def assign_modes(self, x0: torch.Tensor) -> torch.Tensor:
        """Index of the most probable component for each sample (under the clean data), [n]."""
        y = x0.reshape(x0.shape[0], 1, self.dim).to(torch.float64)
        z = torch.einsum("bkd,kde->bke", y - self.means, self._evecs)
        log_prob = torch.log(self.weights) - 0.5 * ((z * z / self._evals).sum(-1) + self._evals.log().sum(-1))
        return log_prob.argmax(dim=-1)

    # -- ready-made mixtures ----------------------------------------------------------

    @classmethod
    def two_d(cls, schedule: Schedule) -> "GaussianMixture":
        """Three well separated, unequal 2-D modes (weights 0.5/0.3/0.2, anisotropic covariances)."""
        means = torch.tensor([[-1.2, -0.6], [1.1, 0.9], [0.9, -1.3]])
        covariances = torch.tensor(
            [[[0.04, 0.015], [0.015, 0.02]], [[0.01, 0.0], [0.0, 0.05]], [[0.02, -0.01], [-0.01, 0.02]]]
        )
        return cls(schedule, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), means, covariances)

    @classmethod
    def random(cls, schedule: Schedule, dim: int = 64, components: int = 4, seed: int = 0) -> "GaussianMixture":
        """A reproducible random mixture in ``dim`` dimensions with unequal weights and full covariances."""
        g = torch.Generator().manual_seed(seed)
        weights = torch.rand(components, generator=g, dtype=torch.float64) + 0.5
        means = torch.randn(components, dim, generator=g, dtype=torch.float64) * (1.5 / math.sqrt(dim))
        a = torch.randn(components, dim, dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
        covariances = 0.05 * (a @ a.transpose(1, 2)) / 4 + 0.01 * torch.eye(dim, dtype=torch.float64)
        return cls(schedule, weights / weights.sum(), means, covariances)

    @classmethod
    def image(cls, schedule: Schedule, shape: tuple[int, int, int] = (1, 16, 16), components: int = 4,
              seed: int = 0, pixel_noise: float = 0.02) -> "GaussianMixture":
        """Image-shaped data [C, H, W]: smooth, spatially correlated components, as natural images are.

        Component k has covariance v_k exp(-|p - q|^2 / (2 l_k^2)) between pixels p, q (the same
        field in every channel, channels correlated 0.8), correlation lengths l_k from 1.5 to 4
        pixels, plus independent pixel noise of std ``pixel_noise``: a few large eigenvalues and
        a flat floor, the spectrum of a smooth image. The means are smooth random fields
        (length 4 pixels) of amplitude about 0.5.
        """
        C, H, W = shape
        g = torch.Generator().manual_seed(seed)
        yx = torch.cartesian_prod(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64))
        dist2 = torch.cdist(yx, yx).pow(2)  # [HW, HW]
        channels = 0.2 * torch.eye(C, dtype=torch.float64) + 0.8  # correlation between channels

        def field(length: float, variance: float) -> torch.Tensor:
            return torch.kron(channels, variance * torch.exp(-dist2 / (2 * length**2)))

        D = C * H * W
        lengths = torch.linspace(1.5, 4.0, components, dtype=torch.float64)
        variances = 0.1 + 0.2 * torch.rand(components, generator=g, dtype=torch.float64)
        floor = pixel_noise**2 * torch.eye(D, dtype=torch.float64)
        covariances = torch.stack([field(float(length), float(v)) + floor for length, v in zip(lengths, variances)])
        evals, evecs = torch.linalg.eigh(field(4.0, 0.25) + 1e-9 * torch.eye(D, dtype=torch.float64))
        z = torch.randn(components, D, generator=g, dtype=torch.float64)
        means = (z * evals.clamp(min=0).sqrt()) @ evecs.T
        weights = torch.rand(components, generator=g, dtype=torch.float64) + 0.5
        return cls(schedule, weights / weights.sum(), means, covariances, event_shape=shape)
