"""Chapter 1's figure: the ELBO as q leaves the posterior along one coordinate, beside the exact
curve log p(x|y) − KL(q ‖ posterior) that the gap identity predicts.
"""
from __future__ import annotations

import torch

MEAN_OFFSETS = (-2.5, 2.5, 21)  # linspace: from, to, points; in posterior standard deviations
LOG_SCALE_FACTORS = (-1.5, 1.5, 21)


def sweep_first_coordinate(elbo, kl_to_posterior, mean, log_sigma, log_evidence: float) -> dict:
    """q is the posterior N(mean, exp(log_sigma)²) with its first coordinate moved: its mean by
    each of :data:`MEAN_OFFSETS` posterior standard deviations ("q's mean"), or its log standard
    deviation by each of :data:`LOG_SCALE_FACTORS` ("q's scale"); the other coordinates stay at
    the posterior. ``elbo(mu, log_sigma)`` gives (Monte Carlo ELBO, its standard error),
    ``kl_to_posterior(mu, log_sigma)`` the KL in closed form. Returns {what moves: (its values,
    ELBO, standard errors, log p(x|y) − KL(q ‖ posterior))}, each a tensor over the values."""
    first = torch.zeros_like(mean)
    first[0] = 1.0
    offsets, factors = (torch.linspace(*grid, dtype=mean.dtype)
                        for grid in (MEAN_OFFSETS, LOG_SCALE_FACTORS))
    moves = {"q's mean": (offsets, lambda v: (mean + first * v * log_sigma[0].exp(), log_sigma)),
             "q's scale": (factors, lambda v: (mean, log_sigma + first * v))}
    sweeps = {}
    for what, (values, make_q) in moves.items():
        rows = []
        for value in values:
            mu_q, log_sigma_q = make_q(value)
            estimate, error = elbo(mu_q, log_sigma_q)
            rows.append((estimate, error, log_evidence - kl_to_posterior(mu_q, log_sigma_q)))
        sweeps[what] = (values, *torch.tensor(rows, dtype=mean.dtype).T)
    return sweeps
