"""Loss terms of the CVAEs, per image (summed over pixels or latent dimensions), and the
reference recipe's per-pixel MSE + weighted KL (:func:`mse_kl_loss`).

Scales are carried as log standard deviations (``log_sigma``), as the networks output them.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)
MIN_LOG_SIGMA = -6.0  # the σ-VAE reference implementation's soft lower clip


def softclip(x: Tensor, minimum: float, sharpness: float = 10.0) -> Tensor:
    """A smooth max(x, minimum): minimum + softplus(sharpness (x - minimum)) / sharpness.

    The σ-VAE reference uses sharpness 1, which moves log σ* up by softplus's offset
    (0.13 at log σ = -4); at 10 the clip leaves σ* exact wherever log σ* > minimum + 1.
    """
    return minimum + torch.nn.functional.softplus(x - minimum, beta=sharpness)


def check_batch(name: str, x) -> Tensor:
    """``x`` must be a float tensor [batch, ...]: the losses sum over all but the first
    dimension."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        kind = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a float tensor, got {kind}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape [batch, ...] with at least 2 dimensions, got "
                         f"{tuple(x.shape)}")
    return x


def check_broadcasts(name: str, value, target: Tensor, target_name: str) -> None:
    """``value`` (a number or tensor) must broadcast against ``target``."""
    if isinstance(value, bool) or not isinstance(value, (Tensor, np.ndarray, numbers.Real)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    shape = tuple(getattr(value, "shape", ()))
    try:
        torch.broadcast_shapes(shape, target.shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(shape)} does not match {target_name} of shape "
                         f"{tuple(target.shape)}") from None


def check_reconstruction(x, x_hat) -> None:
    """``x`` and its reconstruction ``x_hat``: float tensors [batch, ...] of the same shape."""
    check_batch("x", x)
    check_batch("x_hat", x_hat)
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {tuple(x.shape)} and "
                         f"{tuple(x_hat.shape)}")


def reparameterise(mu: Tensor, log_sigma: Tensor, eps: Tensor) -> Tensor:
    """z = μ + σ ε, a draw from N(μ, σ²) for standard normal noise ε that gradients flow through
    to μ and log σ (the reparameterisation trick, chapter 1)."""
    return mu + torch.exp(log_sigma) * eps


def gaussian_log_prob(x: Tensor, mu: Tensor, log_sigma: Tensor | float) -> Tensor:
    """log N(x; mu, sigma^2 I) summed over all but the batch dimension."""
    check_batch("x", x)
    check_broadcasts("mu", mu, x, "x")
    check_broadcasts("log_sigma", log_sigma, x, "x")
    log_sigma = torch.as_tensor(log_sigma, dtype=x.dtype, device=x.device)
    elementwise = -0.5 * LOG_2PI - log_sigma - 0.5 * ((x - mu) * torch.exp(-log_sigma)) ** 2
    return elementwise.flatten(1).sum(1)


def gaussian_nll(x: Tensor, x_hat: Tensor, log_sigma: Tensor | float = 0.0) -> Tensor:
    """-log N(x; x_hat, sigma^2 I) per image: (P/2) log(2 pi sigma^2) + |x - x_hat|^2 / (2 sigma^2).

    ``log_sigma = 0`` is the unit-variance decoder of the plain Gaussian CVAE.
    """
    check_reconstruction(x, x_hat)
    return -gaussian_log_prob(x, x_hat, log_sigma)


def optimal_log_sigma(x: Tensor, x_hat: Tensor, min_log_sigma: float = MIN_LOG_SIGMA) -> Tensor:
    """log σ* with σ*² = the MSE over the whole batch (Rybkin et al. 2021), soft-clipped below.

    The clamp keeps log(0) finite for a perfect reconstruction; softclip keeps σ* > exp(min).
    """
    check_reconstruction(x, x_hat)
    if x.numel() == 0:
        raise ValueError(f"x and x_hat must not be empty, got shape {tuple(x.shape)}: σ* is the "
                         f"MSE over the batch")
    return log_sigma_from_mse(((x - x_hat) ** 2).mean(), min_log_sigma)


def log_sigma_from_mse(mse: Tensor, min_log_sigma: float = MIN_LOG_SIGMA,
                       dtype: torch.dtype | None = None) -> Tensor:
    """log σ* = ½ log MSE (σ*² = MSE maximises the Gaussian likelihood), soft-clipped below.

    The clamp keeps log(0) finite for a perfect reconstruction. ``dtype``: the precision of the
    clip (training takes the log of its float64 epoch mean, then clips in the model's float32).
    """
    log_sigma = 0.5 * torch.log(mse.clamp_min(1e-30))
    return softclip(log_sigma if dtype is None else log_sigma.to(dtype), min_log_sigma)


def sigma_optimal_nll(x: Tensor, x_hat: Tensor, min_log_sigma: float = MIN_LOG_SIGMA):
    """The Gaussian NLL at the batch-optimal σ*: (P/2) log MSE + (P/2)(1 + log 2π) when unclipped.

    Returns ``(nll per image, log σ*)``.
    """
    log_sigma = optimal_log_sigma(x, x_hat, min_log_sigma)
    return gaussian_nll(x, x_hat, log_sigma), log_sigma


def gaussian_kl(mu_q: Tensor, log_sigma_q: Tensor, mu_p: Tensor | float = 0.0,
                log_sigma_p: Tensor | float = 0.0) -> Tensor:
    """Closed-form KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)), summed over latent dimensions."""
    check_batch("mu_q", mu_q)
    for name, value in (("log_sigma_q", log_sigma_q), ("mu_p", mu_p),
                        ("log_sigma_p", log_sigma_p)):
        check_broadcasts(name, value, mu_q, "mu_q")
    mu_p = torch.as_tensor(mu_p, dtype=mu_q.dtype, device=mu_q.device)
    log_sigma_p = torch.as_tensor(log_sigma_p, dtype=mu_q.dtype, device=mu_q.device)
    variance_ratio = torch.exp(2 * (log_sigma_q - log_sigma_p))
    mean_term = ((mu_q - mu_p) * torch.exp(-log_sigma_p)) ** 2
    return 0.5 * (variance_ratio + mean_term - 1 - 2 * (log_sigma_q - log_sigma_p)).sum(-1)


def flow_prior_log_prob(z: Tensor, flow, mu_p: Tensor, log_sigma_p: Tensor,
                        context: Tensor | None = None) -> Tensor:
    """log p(z|y) = log N(f(z); mu_p(y), sigma_p(y)^2) + log|det df/dz|, with f = f(·; y) when
    the flow reads a ``context``."""
    u, logabsdet = flow(z, context)
    return gaussian_log_prob(u, mu_p, log_sigma_p) + logabsdet


def monte_carlo_kl(z: Tensor, mu_q: Tensor, log_sigma_q: Tensor, log_prob_prior: Tensor) -> Tensor:
    """One-sample estimate of KL(q || p): log q(z|x,y) - log p(z|y) for z drawn from q.

    With the flow prior this is (chapter 4)
    sum_d [log σ_p - log σ_q + (f(z) - μ_p)²/(2σ_p²) - ε²/2] - log|det ∂f/∂z|,
    the quadratic term entering with +, not the - of the paper's §2.3.
    """
    return gaussian_log_prob(z, mu_q, log_sigma_q) - log_prob_prior


def mse_kl_loss(x: Tensor, x_hat: Tensor, kl: Tensor, kl_weight: float) -> Tensor:
    """The reference recipe's loss (the PyTorch-VAE model zoo's CVAE on CelebA): the MSE averaged
    over every pixel of the batch plus ``kl_weight`` times the batch mean of the KL per image
    (``kl``, [batch]: KL(q(z|x,y) ‖ N(0, I)) in the recipe, whatever prior the model has here).

    In its terms, with log_var = 2 log σ_q: mse(x̂, x) + w · mean_b[−½ Σ_d (1 + log_var − μ² −
    e^log_var)]. A hand-tuned w stands in for the decoder variance: it is the 2σ²/P that turns
    the Gaussian NLL at a fixed σ into a mean MSE (chapter 2), set once by hand instead of σ*.
    """
    check_reconstruction(x, x_hat)
    return ((x - x_hat) ** 2).mean() + kl_weight * kl.mean()
