"""A 2-D grid to evaluate a density on: integrate it (does it hold mass one?), draw its contours
and find the levels that enclose a given share of its mass (chapter 4's 2-D flow and toy)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class DensityGrid:
    """``size`` × ``size`` points spanning [low, high] per axis; ``points`` [size², 2] run along
    the first axis fastest (meshgrid "xy"), so ``image`` turns values at them into a
    [size, size] picture with rows along the second axis, as ``contour`` expects."""

    axes: tuple    # (first-axis values [size], second-axis values [size])
    points: Tensor  # [size * size, 2]

    @classmethod
    def spanning(cls, low, high, size: int, dtype=torch.float32) -> DensityGrid:
        """A grid from ``low`` to ``high`` (two numbers each, or tensors of two)."""
        axes = tuple(torch.linspace(float(low[i]), float(high[i]), size, dtype=dtype)
                     for i in range(2))
        points = torch.stack(torch.meshgrid(*axes, indexing="xy"), -1).reshape(-1, 2)
        return cls(axes, points)

    @property
    def cell_area(self) -> float:
        return ((self.axes[0][1] - self.axes[0][0]) * (self.axes[1][1] - self.axes[1][0])).item()

    @property
    def limits(self) -> tuple:
        """((x low, x high), (y low, y high)): the plot limits that show the whole grid."""
        return tuple((axis[0].item(), axis[-1].item()) for axis in self.axes)

    def image(self, values: Tensor) -> Tensor:
        """Values at ``points`` as a [rows = second axis, columns = first axis] picture."""
        return values.reshape(len(self.axes[1]), len(self.axes[0]))

    def mass(self, density: Tensor) -> float:
        """The integral of a density given at ``points``, by the sum over the cells."""
        return (density.sum() * self.cell_area).item()


def mass_levels(density: Tensor, masses=(0.9, 0.5)) -> list:
    """The density values whose upper level sets hold these shares of the grid's mass, lowest
    first (the order ``contour`` wants its levels in)."""
    ordered = density.flatten().sort(descending=True).values
    cumulative = ordered.cumsum(0) / ordered.sum()
    return sorted(ordered[torch.searchsorted(cumulative, m)].item() for m in masses)
