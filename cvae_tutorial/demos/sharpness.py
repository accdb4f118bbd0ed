"""How sharp an image is (chapter 2): the energy of its Laplacian, the second differences between
neighbouring pixels, which is large at edges and small in smooth regions."""
from __future__ import annotations

import torch
from torch import Tensor

# the 3x3 Laplacian: a pixel's four neighbours minus four times itself
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_energy(images: Tensor) -> float:
    """The mean squared response of the Laplacian over float images [N, 3, H, W], each colour
    channel filtered on its own (no padding): the images' high-frequency content."""
    kernel = LAPLACIAN.expand(3, 1, 3, 3).to(images.dtype)
    return torch.nn.functional.conv2d(images, kernel, groups=3).pow(2).mean().item()
