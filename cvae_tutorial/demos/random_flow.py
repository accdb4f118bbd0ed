"""A flow far from the identity, to check its log-determinant and inverse on (chapter 3): a new
coupling's last layer starts at zero, so a new flow is exactly the identity and every check
would pass trivially; this gives those last layers random weights.
"""
from __future__ import annotations

import torch
from torch import nn

from ..flows import AffineCoupling


def randomise_last_layers(module: nn.Module, seed: int, std: float = 0.5) -> nn.Module:
    """``module`` (a flow, or one coupling) with the last layer of each coupling's network
    given N(0, std²) weights and biases, in place, drawn from one generator seeded with
    ``seed`` (so the couplings differ from each other, and a rerun gives the same flow); the
    other layers are left as they are. Returns ``module``."""
    generator = torch.Generator().manual_seed(seed)
    for coupling in module.modules():
        if isinstance(coupling, AffineCoupling):
            with torch.no_grad():
                for parameter in coupling.net[-1].parameters():
                    parameter.copy_(std * torch.randn(parameter.shape, generator=generator))
    return module
