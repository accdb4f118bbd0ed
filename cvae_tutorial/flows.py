"""Real NVP (Dinh et al. 2017) in the shape of nflows/zuko transforms.

Every transform maps ``forward(z) -> (u, logabsdet)`` and ``inverse(u) -> (z, logabsdet)``, where
``logabsdet`` is log|det| of the Jacobian of the map just applied; a flow composes transforms and
adds their log-dets. ``forward`` is the density direction (data z to base u = f(z)).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .config import check_int


def soft_clamp(x: Tensor, bound: float) -> Tensor:
    """bound * tanh(x / bound): identity near 0, never beyond ±bound (zuko's log-scale clamp)."""
    return bound * torch.tanh(x / bound)


def mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    """Two hidden layers; the last layer starts at zero so a new coupling is the identity."""
    net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                        nn.Linear(hidden, hidden), nn.ReLU(),
                        nn.Linear(hidden, out_features))
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class AffineCoupling(nn.Module):
    """g1 = z1, g2 = z2 * exp(s(z1)) + t(z1); log|det| = sum s(z1).

    ``mask`` is a 0/1 vector: 1 marks the conditioning half z1 that passes through unchanged.
    """

    def __init__(self, mask: Tensor, hidden: int = 64, scale_bound: float = 3.0):
        super().__init__()
        self.register_buffer("mask", mask.float())
        dim = len(mask)
        self.scale_bound = scale_bound
        self.scale_net = mlp(dim, hidden, dim)
        self.shift_net = mlp(dim, hidden, dim)

    def _scale_shift(self, z1: Tensor):
        free = 1 - self.mask
        s = soft_clamp(self.scale_net(z1), self.scale_bound) * free
        t = self.shift_net(z1) * free
        return s, t

    def forward(self, z: Tensor):
        z1 = z * self.mask
        s, t = self._scale_shift(z1)
        return z1 + (1 - self.mask) * (z * torch.exp(s) + t), s.sum(-1)

    def inverse(self, u: Tensor):
        u1 = u * self.mask
        s, t = self._scale_shift(u1)
        return u1 + (1 - self.mask) * ((u - t) * torch.exp(-s)), -s.sum(-1)


class RealNVP(nn.Module):
    """A stack of affine couplings with alternating masks (even/odd coordinates)."""

    def __init__(self, dim: int, num_layers: int = 4, hidden: int = 64, scale_bound: float = 3.0):
        super().__init__()
        check_int("RealNVP dim (split in halves)", dim, 2, ValueError)
        check_int("RealNVP num_layers", num_layers, 1, ValueError)
        check_int("RealNVP hidden", hidden, 1, ValueError)
        if isinstance(scale_bound, bool) or not isinstance(scale_bound, (int, float)) or \
                not 0 < scale_bound < math.inf:
            raise ValueError(f"RealNVP needs a finite scale_bound > 0, got {scale_bound!r}")
        even = torch.arange(dim) % 2
        self.dim = dim
        self.layers = nn.ModuleList(
            AffineCoupling(even if i % 2 == 0 else 1 - even, hidden, scale_bound)
            for i in range(num_layers))

    def _check(self, x: Tensor):
        if not isinstance(x, Tensor) or not x.is_floating_point():
            kind = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"RealNVP expects a float tensor, got {kind}")
        dtype = self.layers[0].mask.dtype
        if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"RealNVP's parameters are {dtype} but the input is {x.dtype}; "
                            f"convert with .to({dtype}) (or the flow with .to({x.dtype}))")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"RealNVP over {self.dim} dimensions expects a [batch, {self.dim}] "
                             f"tensor, got shape {tuple(x.shape)}")

    def forward(self, z: Tensor):
        self._check(z)
        logabsdet = z.new_zeros(len(z))
        for layer in self.layers:
            z, layer_logabsdet = layer(z)
            logabsdet = logabsdet + layer_logabsdet
        return z, logabsdet

    def inverse(self, u: Tensor):
        self._check(u)
        logabsdet = u.new_zeros(len(u))
        for layer in reversed(self.layers):
            u, layer_logabsdet = layer.inverse(u)
            logabsdet = logabsdet + layer_logabsdet
        return u, logabsdet
