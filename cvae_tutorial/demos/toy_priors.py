"""The prior ladder on a 2-D toy (chapter 4): two label groups of "codes" on interlocked
crescents, and the ladder's four priors p(z|y) fitted to them by maximum likelihood.

Each prior is log p(z|y) = log N(f(z; y); μ_p(y), σ_p(y)²) + log|det ∂f/∂z|, one rung each:
``standard`` N(0, I) (f = identity, no parameters); ``cond`` the conditional Gaussian (f =
identity); ``flow`` a Real NVP f(z) over it, the paper's prior; ``cflow`` a Real NVP whose
couplings also read y, f(z; y). The toy decides nothing about the trained models.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..flows import RealNVP
from ..losses import flow_prior_log_prob, gaussian_log_prob
from .density_grid import DensityGrid, mass_levels

# the rungs, lowest first, with their titles in tables and figures
TITLES = {"standard": "N(0, I)", "cond": "conditional Gaussian",
          "flow": "Real NVP (paper)", "cflow": "conditional Real NVP"}


@dataclass(frozen=True)
class ToyCodes:
    """2-D codes ``z`` [N, 2] with labels ``y`` [N, 1] in {0, 1}; ``held_out`` [N] marks the
    codes kept out of fitting."""

    z: Tensor
    y: Tensor
    held_out: Tensor

    @property
    def train(self) -> tuple:
        return self.z[~self.held_out], self.y[~self.held_out]

    @property
    def test(self) -> tuple:
        return self.z[self.held_out], self.y[self.held_out]


def crescents(per_label: int = 2000, seed: int = 2, held_out: float = 0.25) -> ToyCodes:
    """Codes of two labels on noisy half circles, y = 0 open below and y = 1 open above,
    interlocked (neither is Gaussian); a ``held_out`` share of them, at random, for scoring."""
    generator = torch.Generator().manual_seed(seed)

    def one_label(label):
        angle = math.pi * torch.rand(per_label, generator=generator)
        arc = 1.6 * torch.stack([angle.cos(), angle.sin()], 1)
        centre = torch.tensor([-0.9, -0.4] if label == 0 else [0.9, 0.4])
        z = centre + (arc if label == 0 else -arc)
        return z + 0.2 * torch.randn(per_label, 2, generator=generator)

    z = torch.cat([one_label(0), one_label(1)])
    y = torch.cat([torch.zeros(per_label), torch.ones(per_label)])[:, None]
    return ToyCodes(z, y, torch.rand(len(z), generator=generator) < held_out)


class ToyPrior(nn.Module):
    """p(z|y) on 2-D codes with a 0/1 label: one rung of the ladder (a key of ``TITLES``). Every
    rung starts as N(0, I): the base's weights start at zero, a new Real NVP is the identity."""

    def __init__(self, kind: str):
        super().__init__()
        if kind not in TITLES:
            raise ValueError(f"unknown rung {kind!r}; use one of {', '.join(TITLES)}")
        self.kind = kind
        self.base = nn.Linear(1, 4)  # y -> (mu_p, log sigma_p): one pair per label
        nn.init.zeros_(self.base.weight)
        nn.init.zeros_(self.base.bias)
        self.flow = None
        if kind in ("flow", "cflow"):
            self.flow = RealNVP(2, num_layers=4, hidden=32,
                                context_dim=1 if kind == "cflow" else 0)

    def base_params(self, y: Tensor) -> tuple:
        if self.kind == "standard":
            return torch.zeros(len(y), 2), torch.zeros(len(y), 2)
        return self.base(y).chunk(2, dim=1)

    def context(self, y: Tensor) -> Tensor | None:
        return y if self.kind == "cflow" else None

    def log_prob(self, z: Tensor, y: Tensor) -> Tensor:
        """log p(z|y) [N]: log N(f(z; y); μ_p(y), σ_p(y)²) + log|det ∂f/∂z|."""
        mu_p, log_sigma_p = self.base_params(y)
        if self.flow is None:
            return gaussian_log_prob(z, mu_p, log_sigma_p)
        return flow_prior_log_prob(z, self.flow, mu_p, log_sigma_p, self.context(y))

    def sample(self, y: Tensor, generator: torch.Generator) -> Tensor:
        """z = f⁻¹(μ_p + σ_p ε; y), ε ~ N(0, I); f = identity without a flow."""
        mu_p, log_sigma_p = self.base_params(y)
        u = mu_p + log_sigma_p.exp() * torch.randn(len(y), 2, generator=generator)
        return u if self.flow is None else self.flow.inverse(u, self.context(y))[0]


def fit(prior: ToyPrior, codes: ToyCodes, steps: int, lr: float) -> ToyPrior:
    """Maximum likelihood: Adam on the mean −log p(z|y) of all training codes."""
    z, y = codes.train
    optimizer = torch.optim.Adam(prior.parameters(), lr=lr)
    for _ in range(steps):
        loss = -prior.log_prob(z, y).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return prior


def fit_ladder(codes: ToyCodes, seed: int) -> dict:
    """{title: fitted prior} for the four rungs, from ``torch.manual_seed(seed)``: N(0, I) has
    nothing to fit, the conditional Gaussian 200 steps at lr 0.03, the flows 400 at 0.005 (on
    one thread: networks this small run faster on one than on several)."""
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        priors = {TITLES["standard"]: ToyPrior("standard"),
                  TITLES["cond"]: fit(ToyPrior("cond"), codes, steps=200, lr=3e-2)}
        for kind in ("flow", "cflow"):
            priors[TITLES[kind]] = fit(ToyPrior(kind), codes, steps=400, lr=5e-3)
    finally:
        torch.set_num_threads(threads)
    return priors


@dataclass(frozen=True)
class Scores:
    """A prior's held-out mean log p(z|y) in nats per code: over all codes, over those of
    y = 0 and of y = 1, and the mean of log p(z|y) − log p(z|other label)."""

    all: float
    label_0: float
    label_1: float
    own_minus_other: float


@torch.no_grad()
def held_out_scores(priors: dict, codes: ToyCodes) -> dict:
    """{title: Scores} of each prior on the held-out codes."""
    z, y = codes.test
    scores = {}
    for title, prior in priors.items():
        right, wrong = prior.log_prob(z, y), prior.log_prob(z, 1 - y)
        per_label = [right[y[:, 0] == label].mean().item() for label in (0, 1)]
        scores[title] = Scores(right.mean().item(), *per_label, (right - wrong).mean().item())
    return scores


def scores_table(scores: dict) -> str:
    """The held-out scores as a fixed-width table, one prior a line."""
    lines = ["held-out mean log p(z|y), nats per code;"
             " last column: log p(z|y) - log p(z|other label)",
             f"{'prior':22s} {'all':>7s} {'y=0':>7s} {'y=1':>7s} {'own - other':>12s}"]
    for title, s in scores.items():
        lines.append(f"{title:22s} {s.all:7.3f} {s.label_0:7.3f} {s.label_1:7.3f}"
                     f" {s.own_minus_other:12.3f}")
    return "\n".join(lines)


def ladder_steps(scores: dict) -> str:
    """What each step up the ladder gains, in words: the ranking by held-out log p(z|y), the
    gain of each step, how well each rung tells the labels apart, and how much of the flow's
    gain bending per label adds."""
    titles = list(scores)
    held_out = {title: scores[title].all for title in titles}
    ranking = sorted(titles, key=held_out.get, reverse=True)
    lines = ["held-out log p(z|y), best first: "
             + " > ".join(f"{title} ({held_out[title]:.2f})" for title in ranking)]
    for lower, higher in zip(titles, titles[1:]):
        gain = held_out[higher] - held_out[lower]
        lines.append(f"{lower} -> {higher}: {gain:+.3f} nats per held-out code"
                     f" ({'better' if gain > 0 else 'no better'})")
    lines.append("own label minus other label, nats per code: " + ", ".join(
        f"{title} {s.own_minus_other:.2f}" for title, s in scores.items()))
    flow_gain = held_out[TITLES["flow"]] - held_out[TITLES["cond"]]
    context_gain = held_out[TITLES["cflow"]] - held_out[TITLES["flow"]]
    lines.append(f"bending (Gaussian -> flow) gains {flow_gain:.3f} nats; bending per label"
                 f" (flow -> conditional flow) {context_gain:+.3f}, i.e."
                 f" {context_gain / flow_gain:.0%} of what bending gained")
    return "\n".join(lines)


@dataclass(frozen=True)
class Panel:
    """What the figure draws of one prior and one label: p(z|y) on the grid ([rows, columns],
    with the levels that hold 90 % and 50 % of its mass) and samples from the prior."""

    density: Tensor
    levels: list
    samples: Tensor


@torch.no_grad()
def panels(priors: dict, codes: ToyCodes, generator: torch.Generator, size: int = 160,
           margin: float = 0.7, num_samples: int = 300) -> tuple:
    """(grid, {title: (Panel of y = 0, Panel of y = 1)}): each prior's density on a grid that
    spans the codes with ``margin`` to spare, and ``num_samples`` samples per label."""
    grid = DensityGrid.spanning(codes.z.min(0).values - margin, codes.z.max(0).values + margin,
                                size)
    shown = {}
    for title, prior in priors.items():
        pair = []
        for label in (0, 1):
            y = torch.full((len(grid.points), 1), float(label))
            density = grid.image(prior.log_prob(grid.points, y).exp())
            samples = prior.sample(torch.full((num_samples, 1), float(label)), generator)
            pair.append(Panel(density, mass_levels(density), samples))
        shown[title] = tuple(pair)
    return grid, shown
