"""Real NVP (Dinh et al. 2017) in the shape of nflows/zuko transforms, optionally conditional.

Every transform maps ``forward(z, context) -> (u, logabsdet)`` and ``inverse(u, context) ->
(z, logabsdet)``, where ``logabsdet`` is log|det| of the Jacobian of the map just applied; a
flow composes transforms and adds their log-dets. ``forward`` is the density direction (data z
to base u = f(z; context)). ``context`` is ``None`` for a flow built with ``context_dim=0``, else
a [batch, context_dim] tensor (the labels y) that every coupling's network also reads.
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
    """g1 = z1, g2 = z2 * exp(s(z1, c)) + t(z1, c); log|det| = sum s(z1, c).

    ``mask`` is a 0/1 vector: 1 marks the conditioning half z1 that passes through unchanged.
    s and t come from one network (``mlp``) with twice the outputs, which reads z1 and, when
    ``context_dim > 0``, the context c: the coupling's scale and shift then depend on y.
    """

    def __init__(self, mask: Tensor, hidden: int = 64, scale_bound: float = 3.0,
                 context_dim: int = 0):
        super().__init__()
        self.register_buffer("mask", mask.float())
        dim = len(mask)
        self.scale_bound = scale_bound
        self.context_dim = context_dim
        self.net = mlp(dim + context_dim, hidden, 2 * dim)

    def _scale_shift(self, z1: Tensor, context: Tensor | None):
        free = 1 - self.mask
        inputs = z1 if context is None else torch.cat([z1, context.to(z1.dtype)], 1)
        raw_scale, shift = self.net(inputs).chunk(2, dim=1)
        return soft_clamp(raw_scale, self.scale_bound) * free, shift * free

    def forward(self, z: Tensor, context: Tensor | None = None):
        z1 = z * self.mask
        s, t = self._scale_shift(z1, context)
        return z1 + (1 - self.mask) * (z * torch.exp(s) + t), s.sum(-1)

    def inverse(self, u: Tensor, context: Tensor | None = None):
        u1 = u * self.mask
        s, t = self._scale_shift(u1, context)
        return u1 + (1 - self.mask) * ((u - t) * torch.exp(-s)), -s.sum(-1)


class RealNVP(nn.Module):
    """A stack of affine couplings with alternating masks (even/odd coordinates).

    ``context_dim``: 0 for couplings that see only z (the paper's prior), or the width of a
    context every coupling also reads (a conditional flow, as nflows' and zuko's ``context``).
    """

    def __init__(self, dim: int, num_layers: int = 4, hidden: int = 64, scale_bound: float = 3.0,
                 context_dim: int = 0):
        super().__init__()
        check_int("RealNVP dim (split in halves)", dim, 2, ValueError)
        check_int("RealNVP num_layers", num_layers, 1, ValueError)
        check_int("RealNVP hidden", hidden, 1, ValueError)
        check_int("RealNVP context_dim", context_dim, 0, ValueError)
        if isinstance(scale_bound, bool) or not isinstance(scale_bound, (int, float)) or \
                not 0 < scale_bound < math.inf:
            raise ValueError(f"RealNVP needs a finite scale_bound > 0, got {scale_bound!r}")
        even = torch.arange(dim) % 2
        self.dim, self.context_dim = dim, context_dim
        self.layers = nn.ModuleList(
            AffineCoupling(even if i % 2 == 0 else 1 - even, hidden, scale_bound, context_dim)
            for i in range(num_layers))

    def _check(self, x: Tensor, context: Tensor | None):
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
        if self.context_dim == 0:
            if context is not None:
                raise ValueError("this RealNVP takes no context (built with context_dim=0); "
                                 "pass context=None or build it with context_dim")
            return
        expected = (len(x), self.context_dim)
        if not isinstance(context, Tensor) or tuple(context.shape) != expected:
            shape = tuple(context.shape) if isinstance(context, Tensor) else context
            raise ValueError(f"this RealNVP is conditional: pass a context of shape "
                             f"[{len(x)}, {self.context_dim}] (one row per z), got {shape}")

    def forward(self, z: Tensor, context: Tensor | None = None):
        self._check(z, context)
        logabsdet = z.new_zeros(len(z))
        for layer in self.layers:
            z, layer_logabsdet = layer(z, context)
            logabsdet = logabsdet + layer_logabsdet
        return z, logabsdet

    def inverse(self, u: Tensor, context: Tensor | None = None):
        self._check(u, context)
        logabsdet = u.new_zeros(len(u))
        for layer in reversed(self.layers):
            u, layer_logabsdet = layer.inverse(u, context)
            logabsdet = logabsdet + layer_logabsdet
        return u, logabsdet
