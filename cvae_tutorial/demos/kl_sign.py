"""A few training steps of a fresh model with the paper's KL sign or the correct one (chapter 4):
the paper's Monte Carlo KL is the package's estimate minus Σ_d (f(z)_d − μ_p,d)² / σ_p,d²,
unbounded below, and a model trained on it does not train.

Both runs start from the same weights and see the same batches and the same noise, so that they
differ in the sign alone. They decide no number of the study: ``training.train`` trains the
book's models.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..cvae import CVAE, CVAEConfig
from ..data.images import AttributeImages, to_float

# the steps a table shows, of those that were run
SHOWN_STEPS = (1, 2, 5, 10, 20, 40)


def train_steps(config: CVAEConfig, data: AttributeImages, paper_kl: Callable, paper_sign: bool,
                steps: int, lr: float, batch_size: int, seed: int) -> list:
    """``steps`` Adam steps of a fresh model (``CVAE(config).initialize(seed)``) on the ELBO,
    its KL term the package's (correct) estimate ``kl`` or, with ``paper_sign``, the paper's,
    ``paper_kl(model, z, y, kl)``. Returns one (paper's KL estimate, correct KL estimate, MSE)
    row per step, batch means before the step; stops at a non-finite loss, saying so."""
    model = CVAE(config).initialize(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batches = torch.Generator().manual_seed(seed)  # the batches and the noise, both runs alike
    rows = []
    for _ in range(steps):
        index = torch.randint(len(data), (batch_size,), generator=batches)
        x, y = to_float(data.images[index]), data.labels[index]
        mu_q, log_sigma_q = model.encode(x, y)
        z = mu_q + torch.exp(log_sigma_q) * torch.randn(mu_q.shape, generator=batches)
        x_hat = model.decode(z, y)
        recon, _ = model.reconstruction_nll(x, x_hat)  # σ-CVAE: the batch σ*
        kl = model.kl(z, mu_q, log_sigma_q, y)  # the package's (correct) estimate
        paper = paper_kl(model, z, y, kl)
        loss = (recon + (paper if paper_sign else kl)).mean()
        if not torch.isfinite(loss):
            print(f"non-finite loss at step {len(rows) + 1}: stopped")
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rows.append((paper.mean().item(), kl.mean().item(), ((x - x_hat) ** 2).mean().item()))
    return rows


def steps_table(runs: dict, steps: int) -> str:
    """Per run ({label: rows of :func:`train_steps`}), the paper's and the true KL and the MSE at
    the steps of ``SHOWN_STEPS`` up to ``steps``, and at ``steps``."""
    shown = sorted(set(SHOWN_STEPS + (steps,)) & set(range(1, steps + 1)))
    lines = []
    for label, rows in runs.items():
        lines += [f"trained with the {label}:",
                  f"  {'step':>5} {'paper KL (nats)':>16} {'true KL (nats)':>15} {'MSE':>8}"]
        for step in (step for step in shown if step <= len(rows)):
            paper, true, mse = rows[step - 1]
            lines.append(f"  {step:5d} {paper:16.3g} {true:15.3g} {mse:8.4f}")
    return "\n".join(lines)
