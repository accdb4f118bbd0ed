"""Two moons (chapter 3): a 2-D density with two curved, interleaved arms, which no single
Gaussian fits and a small flow learns in seconds.
"""
from __future__ import annotations

import math

import torch


def two_moons(count: int, noise: float = 0.08, generator: torch.Generator | None = None):
    """``count`` points [count, 2]: each on the upper arc (cos a, sin a) or the lower one
    (1 − cos a, 1/2 − sin a) with equal odds, a ~ U(0, π), plus N(0, noise²) in each
    coordinate; all drawn from ``generator``."""
    angle = math.pi * torch.rand(count, generator=generator)
    upper = torch.rand(count, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) + noise * torch.randn(count, 2, generator=generator)
