"""The latent space of a trained model (chapter 6): how far its aggregate posterior is from its
own prior (the prior hole), and how many latent dimensions it uses (posterior collapse)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..data.batches import load_batch
from ..data.images import AttributeImages
from .frechet import feature_statistics, frechet_distance_from_statistics

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016: Var_x E_q[z_d] > 0.01 makes a unit active


@torch.no_grad()
def posterior_codes(model, data: AttributeImages, num_images: int | None = None,
                    batch_size: int = 256, seed: int = 0) -> tuple:
    """(posterior means [N, D], one draw z ~ q(z|x, y) per image [N, D]) of the first
    ``num_images`` images of ``data`` (float images, no flips), on the CPU."""
    device = next(model.parameters()).device
    count = len(data) if num_images is None else min(int(num_images), len(data))
    generator = torch.Generator(device=device).manual_seed(seed)
    means, draws = [], []
    for start in range(0, count, batch_size):
        x, y = load_batch(data, torch.arange(start, min(start + batch_size, count)), device)
        mu, log_sigma = model.encode(x, y)
        eps = torch.randn(mu.shape, generator=generator, device=device, dtype=mu.dtype)
        means.append(mu.cpu())
        draws.append((mu + log_sigma.exp() * eps).cpu())
    return torch.cat(means), torch.cat(draws)


def active_units(posterior_means: Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """The number of latent dimensions d with Var_x E_q[z_d | x] > ``threshold`` (Burda et al.
    2016): a dimension whose posterior mean does not move with the data carries nothing."""
    if posterior_means.ndim != 2 or len(posterior_means) < 2:
        raise ValueError(f"posterior means must be [N >= 2, D], got "
                         f"{tuple(posterior_means.shape)}")
    return int((posterior_means.double().var(0) > threshold).sum())


@torch.no_grad()
def prior_hole_distance(model, data: AttributeImages, num_images: int | None = None,
                        batch_size: int = 256, seed: int = 0) -> float:
    """The latent Fréchet distance between the aggregate posterior (z ~ q(z|x, y) over the
    images) and the model's own prior (z ~ p(z|y) for the same labels). Large: regions the
    prior samples that no image encodes to, the "holes" its samples come from."""
    _, codes = posterior_codes(model, data, num_images, batch_size, seed)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    labels = data.labels[:len(codes)]
    prior = torch.cat([model.sample_latents(labels[start:start + batch_size].to(device),
                                            generator=generator).cpu()
                       for start in range(0, len(labels), batch_size)])
    return frechet_distance_from_statistics(*feature_statistics(codes.double().numpy()),
                                            *feature_statistics(prior.double().numpy()))
