"""The training history's test numbers and the final σ* (chapters 2 and 5): the model's loss
terms averaged over a dataset with the decoder σ fixed, one seeded draw z ~ q(z|x,y) per image, on
the images as training sees them (x = uint8 / 255).

Each epoch's ``test_neg_elbo`` (and ``test_recon``, ``test_kl``) in the history is
:func:`evaluate_neg_elbo`'s. It is not the results' ``neg_elbo_nats`` (``evaluation.likelihood``,
chapter 6): that one is the ELBO of uniformly dequantised images (x_int + u) / 256, averaged over
K draws, the protocol of the bits per dimension; the two differ in grid and draws, so compare
each only with its own kind.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from ..cvae import CVAE
from ..data.batches import load_batch
from ..data.images import AttributeImages
from .distributed import distributed_world


@torch.no_grad()
def evaluate_neg_elbo(model: CVAE, data: AttributeImages, batch_size: int = 512,
                      seed: int = 0) -> dict:
    """Negative ELBO in nats per image of ``data`` (x = uint8 / 255, one draw per image), with the
    decoder σ fixed (chapter 2): the history's ``test_neg_elbo`` (see the module's docstring).

    Uses its own seeded noise so the number does not depend on (or disturb) the training RNG.
    Under DDP each rank evaluates every world-size-th image and the sums are reduced.
    """
    means = _dataset_means(model, data, len(data), batch_size, seed)
    return {key: means[key] for key in ("neg_elbo", "recon", "kl")}


def training_set_mse(model: CVAE, data: AttributeImages, num_images: int = 4096,
                     batch_size: int = 512, seed: int = 0) -> float:
    """The mean squared error per pixel of the reconstructions x̂ = dec(z, y), z ~ q (one seeded
    draw), over the first ``num_images`` training images (no flips), with the model's current
    weights: σ*² of the decoder that evaluation uses (chapter 2)."""
    return _dataset_means(model, data, min(num_images, len(data)), batch_size, seed)["mse"]


@torch.no_grad()
def _dataset_means(model: CVAE, data: AttributeImages, count: int, batch_size: int,
                   seed: int) -> dict:
    """Per-image means of the loss terms over the first ``count`` images, σ fixed, seeded noise."""
    device = next(model.parameters()).device
    rank, world_size = distributed_world()
    was_training = model.training
    model.eval()
    totals = {"neg_elbo": 0.0, "recon": 0.0, "kl": 0.0, "mse": 0.0}
    shard = torch.arange(rank, count, world_size)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed + rank)
        for start in range(0, len(shard), batch_size):
            x, y = load_batch(data, shard[start:start + batch_size], device)
            terms = model.loss_terms(x, y, fixed_sigma=True, check_range=False)
            terms["neg_elbo"] = terms["loss"]
            for key in totals:
                totals[key] += terms[key].item() * len(x)
    model.train(was_training)
    if world_size > 1:
        summed = torch.tensor(list(totals.values()), dtype=torch.float64, device=device)
        dist.all_reduce(summed)
        totals = dict(zip(totals, summed.tolist()))
    return {key: value / count for key, value in totals.items()}
