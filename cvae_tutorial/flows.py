"""Real NVP (Dinh et al. 2017) in the shape of nflows/zuko transforms.

Every transform maps ``forward(z) -> (u, logabsdet)`` and ``inverse(u) -> (z, logabsdet)``, where
``logabsdet`` is log|det| of the Jacobian of the map just applied; a flow composes transforms and
adds their log-dets. ``forward`` is the density direction (data z to base u = f(z)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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


LAYERS = ("0", "2", "4")  # the Linear layers' indices in an ``mlp``'s Sequential


class TwinMLP(nn.Module):
    """Two ``mlp`` of one shape evaluated together, as one network: the first layers as one
    Linear (their hidden units side by side), the others as batched products (``baddbmm``) over
    a leading axis of two. The same function as the two MLPs, with half of their operators.

    ``TwinMLP(first, second)`` takes its weights from two ``mlp``; :meth:`net` gives each back
    as a function with its own parameters (views into these).
    """

    def __init__(self, first: nn.Sequential, second: nn.Sequential):
        super().__init__()
        self.hidden = first[0].out_features
        pair = [dict(first.named_parameters()), dict(second.named_parameters())]
        self.weight0 = nn.Parameter(torch.cat([p["0.weight"] for p in pair]).detach().clone())
        self.bias0 = nn.Parameter(torch.cat([p["0.bias"] for p in pair]).detach().clone())
        for layer in LAYERS[1:]:  # [2, out, in] and [2, out], as two Linear layers stacked
            for kind in ("weight", "bias"):
                setattr(self, f"{kind}{layer}", nn.Parameter(
                    torch.stack([p[f"{layer}.{kind}"] for p in pair]).detach().clone()))

    def forward(self, x: Tensor) -> Tensor:
        """Both networks' outputs, stacked: [2, batch, out]."""
        h = F.relu(F.linear(x, self.weight0, self.bias0))
        h = h.view(len(x), 2, self.hidden).transpose(0, 1)
        h = F.relu(torch.baddbmm(self.bias2.unsqueeze(1), h, self.weight2.transpose(1, 2)))
        return torch.baddbmm(self.bias4.unsqueeze(1), h, self.weight4.transpose(1, 2))

    def net(self, index: int) -> "_OneOfTwin":
        return _OneOfTwin(self, index)

    @staticmethod
    def packed(state: dict, first: str, second: str) -> dict:
        """The TwinMLP entries for the ``mlp`` entries ``first + "0.weight"`` ... of ``state``
        (weights, or Adam's moments of them)."""
        packed = {"weight0": torch.cat([state[first + "0.weight"], state[second + "0.weight"]]),
                  "bias0": torch.cat([state[first + "0.bias"], state[second + "0.bias"]])}
        for layer in LAYERS[1:]:
            for kind in ("weight", "bias"):
                packed[f"{kind}{layer}"] = torch.stack([state[f"{first}{layer}.{kind}"],
                                                        state[f"{second}{layer}.{kind}"]])
        return packed


class _LinearView:
    """One Linear layer of one network of a :class:`TwinMLP`: views of its weight and bias."""

    def __init__(self, weight: Tensor, bias: Tensor):
        self.weight, self.bias = weight, bias

    def parameters(self):
        return iter((self.weight, self.bias))


class _OneOfTwin:
    """Network ``index`` of a :class:`TwinMLP` as a function, with its layers indexable as in
    the ``mlp`` it came from (``net[-1]``: the last Linear, views that write through)."""

    def __init__(self, twin: TwinMLP, index: int):
        self.twin, self.index = twin, index

    def __call__(self, x: Tensor) -> Tensor:
        return self.twin(x)[self.index]

    def __getitem__(self, position: int) -> _LinearView:
        layer = {0: "0", 2: "2", 4: "4", -1: "4"}[position]
        twin, i = self.twin, self.index
        if layer == "0":
            rows = slice(i * twin.hidden, (i + 1) * twin.hidden)
            return _LinearView(twin.weight0[rows], twin.bias0[rows])
        return _LinearView(getattr(twin, f"weight{layer}")[i], getattr(twin, f"bias{layer}")[i])

    def parameters(self):
        for position in (0, 2, 4):
            yield from self[position].parameters()


class AffineCoupling(nn.Module):
    """g1 = z1, g2 = z2 * exp(s(z1)) + t(z1); log|det| = sum s(z1).

    ``mask`` is a 0/1 vector: 1 marks the conditioning half z1 that passes through unchanged.
    s and t are two MLPs (``mlp``), evaluated together as one :class:`TwinMLP`;
    ``scale_net`` and ``shift_net`` are each of them alone.
    """

    def __init__(self, mask: Tensor, hidden: int = 64, scale_bound: float = 3.0):
        super().__init__()
        self.register_buffer("mask", mask.float())
        dim = len(mask)
        self.scale_bound = scale_bound
        self.nets = TwinMLP(mlp(dim, hidden, dim), mlp(dim, hidden, dim))

    @property
    def scale_net(self) -> _OneOfTwin:
        return self.nets.net(0)

    @property
    def shift_net(self) -> _OneOfTwin:
        return self.nets.net(1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "scale_net.0.weight" in state_dict:  # saved with two separate MLPs
            packed = TwinMLP.packed(state_dict, prefix + "scale_net.", prefix + "shift_net.")
            for key in [k for k in state_dict if k.startswith((prefix + "scale_net.",
                                                                prefix + "shift_net."))]:
                del state_dict[key]
            state_dict.update({f"{prefix}nets.{name}": value for name, value in packed.items()})
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _scale_shift(self, z1: Tensor):
        free = 1 - self.mask
        raw_scale, shift = self.nets(z1)
        return soft_clamp(raw_scale, self.scale_bound) * free, shift * free

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
