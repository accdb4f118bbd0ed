"""The latent space of a trained model (chapter 6): regions of its own prior that no image encodes
to (the prior hole), and how many latent dimensions carry information about the image beyond its
labels (posterior collapse).

Both take codes [N, D]: the posterior and prior draws of :class:`.draws.Draws`, drawn once per
model and shared with every other metric of a results row.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .neighbours import coverage

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016: Var_x E_q[z_d] > 0.01 makes a unit active
HOLE_K = 5  # neighbours of a prior draw's ball (Naeem et al. 2020's default)


def prior_hole(codes, prior, prior_again, k: int = HOLE_K) -> float:
    """How much of the prior no code reaches: the fraction of ``prior`` draws [M, D] whose k-NN
    ball (among the prior draws) holds none of ``codes`` [N, D] — posterior *draws*
    z ~ q(z|x, y), the aggregate posterior, not the means — minus the same fraction for
    ``prior_again`` [N, D], a second prior sample of the codes' size (the floor of a sample
    against its own distribution, about 2^−k). About 0: the codes fill the prior; up to
    1 − 2^−k: the prior's samples come from regions no image encodes to. Unlike a Fréchet
    distance between Gaussian fits, it sees a ring-shaped code set with the prior's mean and
    covariance (its centre is a hole)."""
    return coverage(prior, prior_again, k) - coverage(prior, codes, k)


def active_units(posterior_means: Tensor, labels: Tensor | None = None,
                 threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """The number of latent dimensions d whose posterior mean moves with the image (Burda et al.
    2016: Var_x E_q[z_d | x] > ``threshold``).

    With ``labels`` [N, A] the variance is taken within groups of images with equal labels
    (pooled over the groups of two or more): a dimension that only tracks y, such as
    z_d = μ_p(y)_d, varies between the groups and not within them, so it is not counted — it
    carries nothing about the image that y does not say. When no two images share a label
    vector, the variance left after a least-squares regression of the means on y is used."""
    means = torch.as_tensor(posterior_means).double()
    if means.ndim != 2 or len(means) < 2:
        raise ValueError(f"posterior means must be [N >= 2, D], got {tuple(means.shape)}")
    if labels is None:
        return int((means.var(0) > threshold).sum())
    labels = torch.as_tensor(labels)
    if labels.ndim != 2 or len(labels) != len(means):
        raise ValueError(f"labels must be [N={len(means)}, A], got {tuple(labels.shape)}")
    _, group = torch.unique(labels, dim=0, return_inverse=True)
    sizes = torch.bincount(group).double()
    if not (sizes >= 2).any():  # (CelebA's 40 attributes): what y does not explain linearly
        design = torch.cat([torch.ones(len(means), 1, dtype=torch.float64), labels.double()], 1)
        dof = len(means) - torch.linalg.matrix_rank(design).item()
        if dof < 1:
            raise ValueError(f"no two of the {len(means)} images share a label vector and "
                             f"there are too few to regress out {labels.shape[1]} labels; use "
                             f"more images or labels=None")
        residuals = means - design @ torch.linalg.lstsq(design, means).solution
        return int((residuals.pow(2).sum(0) / dof > threshold).sum())
    sums = torch.zeros(len(sizes), means.shape[1], dtype=torch.float64).index_add_(0, group,
                                                                                   means)
    deviations = means - (sums / sizes[:, None])[group]
    within = deviations.pow(2).sum(0) / (sizes - 1).sum()  # pooled: Σ (n_g − 1) d.o.f.
    return int((within > threshold).sum())
