"""Likelihoods of the test images: the ELBO and the importance-weighted bound (Burda et al. 2016)
of uniformly dequantised 8-bit images, and their bits per dimension (chapter 6)."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..config import check_int
from ..data.images import AttributeImages
from ..losses import gaussian_log_prob, reparameterise


@torch.no_grad()
def log_importance_weights(model, x: Tensor, y: Tensor, num_samples: int,
                           generator: torch.Generator | None = None,
                           max_batch: int = 4096, pass_size: int = 512) -> Tensor:
    """log w_k = log p(x|z_k,y) + log p(z_k|y) − log q(z_k|x,y), z_k ~ q(z|x,y); shape [B, K].

    Uses the model's fixed decoder σ (``reconstruction_nll(..., fixed_sigma=True)``), so the
    weights are those of one density, not of a σ refitted to each batch. The draws come in
    chunks of about ``max_batch`` codes (the chunks fix the generator's stream, hence the
    numbers); the networks see ``pass_size`` codes at a time (smaller passes run faster on a
    CPU, and each code's weight does not depend on its neighbours).
    """
    check_int("num_samples (K)", num_samples, 1, ValueError)
    check_int("pass_size", pass_size, 1, ValueError)
    mu_q, log_sigma_q = model.encode(x, y)
    per_chunk = max(1, min(num_samples, max_batch // max(1, len(x))))
    columns = []
    for start in range(0, num_samples, per_chunk):
        k = min(per_chunk, num_samples - start)
        mu, log_sigma = mu_q.repeat(k, 1), log_sigma_q.repeat(k, 1)  # sample-major: [k*B, D]
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = reparameterise(mu, log_sigma, eps)
        x_k = x.repeat(k, *([1] * (x.ndim - 1)))
        y_k = y.repeat(k, 1)
        log_w = torch.cat([_log_weights(model, x_k[i:i + pass_size], y_k[i:i + pass_size],
                                        z[i:i + pass_size], mu[i:i + pass_size],
                                        log_sigma[i:i + pass_size])
                           for i in range(0, len(z), pass_size)])
        columns.append(log_w.view(k, len(x)).T)
    return torch.cat(columns, 1)


def _log_weights(model, x: Tensor, y: Tensor, z: Tensor, mu: Tensor, log_sigma: Tensor):
    log_px, _ = model.reconstruction_nll(x, model.decode(z, y), fixed_sigma=True)
    return -log_px + model.prior_log_prob(z, y) - gaussian_log_prob(z, mu, log_sigma)


def importance_weighted_bound(log_weights: Tensor, num_samples: int | None = None) -> Tensor:
    """log (1/K) Σ_k w_k over the first K columns, per row: ≥ the ELBO, → log p(x|y) as K grows."""
    k = log_weights.shape[1] if num_samples is None else num_samples
    if not 1 <= k <= log_weights.shape[1]:
        raise ValueError(f"num_samples must be in 1..{log_weights.shape[1]}, got {k}")
    return torch.logsumexp(log_weights[:, :k], 1) - math.log(k)


def dequantize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantisation of 8-bit images: x = (x_int + u) / 256, u ~ U[0, 1)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"dequantize expects uint8 images, got {images.dtype}")
    noise = torch.rand(images.shape, generator=generator, device=images.device)
    return (images.float() + noise) / 256


def bits_per_dim(nll_nats: float | Tensor, num_dims: int):
    """Bits per dimension of 8-bit data from the NLL of dequantised x in [0, 1]:
    (NLL + P log 256) / (P log 2) (the P log 256 turns a density on [0, 1] into one on [0, 256)).

    The decoder's Gaussian lives on the real line (unbounded means); the mass it puts outside
    [0, 1] is lost to the data, so the result stays an upper bound on the 8-bit NLL."""
    return (nll_nats + num_dims * math.log(256)) / (num_dims * math.log(2))


@torch.no_grad()
def dataset_log_weights(model, data: AttributeImages, num_samples: int = 100,
                        num_images: int | None = None, batch_size: int = 64, seed: int = 0,
                        progress: bool = True) -> Tensor:
    """Log importance weights [N, K] of the first ``num_images`` images of ``data``, dequantised."""
    device = next(model.parameters()).device
    count = len(data) if num_images is None else min(int(num_images), len(data))
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    rows = []
    for start in tqdm(range(0, count, batch_size), desc=f"IW bound, K={num_samples}",
                      disable=not progress, unit="batch"):
        stop = min(start + batch_size, count)
        x = dequantize(data.images[start:stop].to(device), generator)
        rows.append(log_importance_weights(model, x, data.labels[start:stop].to(device),
                                           num_samples, generator).cpu())
    model.train(was_training)
    return torch.cat(rows)


def likelihood_summary(log_weights: Tensor, num_dims: int) -> dict:
    """Negative ELBO and IW-NLL (nats per image, mean over images) and their bits/dim."""
    neg_elbo = -log_weights.mean(1).mean().item()  # ELBO = E_q[log w], here over K draws
    iw_nll = -importance_weighted_bound(log_weights).mean().item()
    return {"neg_elbo_nats": neg_elbo, "iw_nll_nats": iw_nll,
            "neg_elbo_bits_per_dim": bits_per_dim(neg_elbo, num_dims),
            "bits_per_dim": bits_per_dim(iw_nll, num_dims),
            "iw_samples": log_weights.shape[1], "likelihood_images": log_weights.shape[0]}
