"""Everything a results row needs drawn from a model, drawn once (chapter 6).

For the first N test images and their labels: the conditional samples (sample i for the labels
of test image i), the same noise decoded for permuted labels (the shuffled-label control) and,
for the first F rows, for the labels with one attribute flipped (the flip test); the prior
latents they decode, and the posterior codes of the test images themselves. Each metric of
:mod:`.metrics` is a function of these tensors, so no model is sampled twice for one row.

The noise comes from a CPU generator seeded with ``seed``: the same draws on any device and in
any batch size, and the same ε for every model of a run (a seed pairs the models).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..data.images import to_float, to_uint8
from ..losses import reparameterise


class NonFiniteSamplesError(FloatingPointError):
    """A model whose samples hold NaN or Inf: it cannot be evaluated."""


@dataclass(frozen=True)
class Draws:
    """A model's draws for one results row (CPU tensors; images quantised to uint8)."""

    labels: Tensor            # [N, A] the test labels the samples are conditioned on
    latents: Tensor           # [N, D] z ~ p(z|y) behind ``samples``
    samples: Tensor           # [N, 3, H, W] uint8
    permutation: Tensor       # [N] the shuffled-label control's labels: labels[permutation]
    shuffled: Tensor          # [N, 3, H, W] uint8, the same ε as ``samples``
    flipped: tuple            # per attribute a: [F, 3, H, W] uint8, labels[:F] with a flipped
    posterior_means: Tensor   # [N, D] E q(z|x, y) of the first N test images
    posterior_draws: Tensor   # [N, D] one z ~ q(z|x, y) per test image
    prior_again: Tensor       # [N, D] a second, independent z ~ p(z|y) (the prior hole's floor)


def base_noise(count: int, latent_dim: int, seed: int) -> Tensor:
    """ε [count, latent_dim] ~ N(0, I): row i is the same for every model, device, batch size
    and count (NumPy's generator fills rows in order; torch.randn's vectorised path does not)."""
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((count, latent_dim),
                                                                        np.float32))


def _finite(model, images: Tensor) -> Tensor:
    """Samples as they are, or an error: quantising would turn NaN into black pixels that the
    distance and the classifier then score as if the model were fine."""
    if not torch.isfinite(images).all():
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        raise NonFiniteSamplesError(f"model {model.config.model} produced non-finite (NaN or "
                                    f"Inf) pixels in {bad} of {len(images)} samples: its weights "
                                    f"are damaged or its training diverged; retrain it")
    return images


@torch.no_grad()
def sample_images(model, labels: Tensor, noise: Tensor, batch_size: int = 256,
                  temperature: float = 1.0, paper_shortcut: bool = False) -> tuple:
    """(latents [N, D], uint8 samples [N, 3, H, W]) decoded from ``noise`` for ``labels``."""
    device = next(model.parameters()).device
    latents, images = [], []
    for start in range(0, len(labels), batch_size):
        y = labels[start:start + batch_size].to(device)
        z = model.sample_latents(y, paper_shortcut, temperature=temperature,
                                 noise=noise[start:start + batch_size].to(device))
        latents.append(z.cpu())
        images.append(to_uint8(_finite(model, model.decode(z, y.to(z.dtype)))).cpu())
    return torch.cat(latents), torch.cat(images)


@torch.no_grad()
def posterior(model, images: Tensor, labels: Tensor, seed: int, batch_size: int = 256) -> tuple:
    """(means, one draw z = μ + σ ε) of q(z|x, y) for uint8 ``images`` (ε from ``seed``)."""
    device = next(model.parameters()).device
    means, log_sigmas = [], []
    for start in range(0, len(images), batch_size):
        mu, log_sigma = model.encode(to_float(images[start:start + batch_size].to(device)),
                                     labels[start:start + batch_size].to(device))
        means.append(mu.cpu())
        log_sigmas.append(log_sigma.cpu())
    mu, log_sigma = torch.cat(means), torch.cat(log_sigmas)
    return mu, reparameterise(mu, log_sigma, base_noise(len(mu), mu.shape[1], seed).to(mu))


def flipped(labels: Tensor, attribute: int) -> Tensor:
    """``labels`` with one attribute's 0 and 1 swapped."""
    result = labels.clone()
    result[:, attribute] = 1 - result[:, attribute]
    return result


@torch.no_grad()
def draw(model, images: Tensor, labels: Tensor, flip_count: int, seed: int = 0,
         batch_size: int = 256, progress: bool = False) -> Draws:
    """Every tensor of :class:`Draws` for test ``images`` (uint8) and their ``labels``."""
    labels = labels.float().cpu()
    noise = base_noise(len(labels), model.config.latent_dim, seed)
    permutation = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    steps = tqdm(total=2 + labels.shape[1] + 1, desc=f"drawing {model.config.model}",
                 disable=not progress, unit="set")
    latents, samples = sample_images(model, labels, noise, batch_size)
    steps.update()
    _, shuffled = sample_images(model, labels[permutation], noise, batch_size)
    steps.update()
    flips = []
    for attribute in range(labels.shape[1]):
        flips.append(sample_images(model, flipped(labels[:flip_count], attribute),
                                   noise[:flip_count], batch_size)[1])
        steps.update()
    means, codes = posterior(model, images, labels, seed + 1, batch_size)
    device = next(model.parameters()).device
    again = base_noise(len(labels), model.config.latent_dim, seed + 2)
    prior_again = torch.cat([model.sample_latents(labels[i:i + batch_size].to(device),
                                                  noise=again[i:i + batch_size].to(device)).cpu()
                             for i in range(0, len(labels), batch_size)])
    steps.update()
    steps.close()
    return Draws(labels, latents, samples, permutation, shuffled, tuple(flips), means, codes,
                 prior_again)
