"""The conditional VAE in the paper's three settings, ``gaussian``, ``sigma`` and ``sigma_flow``,
and the reference recipe most readers start from, ``mse_kl`` (MSE + a hand-tuned KL weight)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .config import ConfigError, check_field_types, check_image_size
from .flows import RealNVP
from .losses import (MIN_LOG_SIGMA, flow_prior_log_prob, gaussian_kl, gaussian_log_prob,
                     gaussian_nll, monte_carlo_kl, mse_kl_loss, sigma_optimal_nll)
from .nets import Decoder, Encoder, PriorEncoder

PAPER_MODEL_NAMES = ("gaussian", "sigma", "sigma_flow")  # the paper's Table 1
MODEL_NAMES = PAPER_MODEL_NAMES + ("mse_kl",)
MODEL_TITLES = {"gaussian": "Gaussian CVAE (σ = 1)", "sigma": "σ-CVAE",
                "sigma_flow": "σ-CVAE + Real NVP prior",
                "mse_kl": "MSE + KL weight (PyTorch-VAE recipe)"}
# The paper's non-flow models encode q(z|x): their latent is independent of the labels.
PAPER_ENCODERS_WITHOUT_LABELS = ("gaussian", "sigma")
# A run's name (``run_name``) is its model's, with "_qxy" where the encoder sees y against the
# paper's reading (the ablation of chapters 5 and 6) and "_qx" where it does not although the
# paper's does.
MODEL_TITLES.update({"gaussian_qxy": "Gaussian CVAE, q(z|x,y)", "sigma_qxy": "σ-CVAE, q(z|x,y)"})
MSE_KL_WEIGHT = 0.00025  # the PyTorch-VAE zoo's hand-tuned KL weight for its CelebA CVAE


@dataclass
class CVAEConfig:
    """Everything that fixes a model's architecture; saved with every checkpoint."""

    model: str = "sigma_flow"
    image_size: int = 32
    num_attributes: int = 10
    latent_dim: int = 32
    base_channels: int = 32
    prior_channels: int = 16
    flow_layers: int = 4
    flow_hidden: int = 128
    flow_scale_bound: float = 3.0
    min_log_sigma: float = MIN_LOG_SIGMA
    # True: q(z|x,y), the encoder sees the labels; False: q(z|x). None: the paper's reading —
    # q(z|x) for its non-flow models (Fig. 1, middle; App. A), q(z|x,y) for the flow model and
    # for the ``mse_kl`` recipe, whose encoder sees the labels.
    encoder_sees_labels: bool | None = None
    kl_weight: float = MSE_KL_WEIGHT  # ``mse_kl`` only: the weight of the KL beside the MSE
    # The decoder's output: unbounded means ("identity", chapter 2), the only one built; a
    # checkpoint saved before this field existed had sigmoid means and is refused on loading.
    decoder_means: str = "identity"

    def __post_init__(self):
        if self.encoder_sees_labels is None:
            self.encoder_sees_labels = self.model not in PAPER_ENCODERS_WITHOUT_LABELS
        check_field_types(self)
        if self.model not in MODEL_NAMES:
            raise ConfigError(f"unknown model {self.model!r}; use one of {', '.join(MODEL_NAMES)}")
        if self.decoder_means != "identity":
            raise ConfigError(f"CVAEConfig.decoder_means must be 'identity' (unbounded means, "
                              f"chapter 2), got {self.decoder_means!r}")
        check_image_size(self.image_size)
        for name in ("num_attributes", "latent_dim", "base_channels", "prior_channels",
                     "flow_layers", "flow_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"CVAEConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.flow_scale_bound < math.inf:
            raise ConfigError(f"CVAEConfig.flow_scale_bound must be finite and > 0, got "
                              f"{self.flow_scale_bound}")
        if not 0 <= self.kl_weight < math.inf:
            raise ConfigError(f"CVAEConfig.kl_weight must be finite and >= 0, got {self.kl_weight}")
        if not math.isfinite(self.min_log_sigma):
            raise ConfigError(f"CVAEConfig.min_log_sigma must be finite, got {self.min_log_sigma}")
        if self.model == "sigma_flow" and self.latent_dim < 2:
            raise ConfigError("the flow prior splits z in halves: use latent_dim >= 2")

    def to_dict(self) -> dict:
        return asdict(self)


class CVAE(nn.Module):
    """q(z|x,y) (or q(z|x): ``encoder_sees_labels``), p(x|z,y) and the prior: N(0, I) or, for
    ``sigma_flow``, the Real NVP prior."""

    def __init__(self, config: CVAEConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder(c.image_size, c.num_attributes, c.latent_dim, c.base_channels,
                               c.encoder_sees_labels)
        self.decoder = Decoder(c.image_size, c.num_attributes, c.latent_dim, c.base_channels)
        if c.model == "sigma_flow":
            self.prior_encoder = PriorEncoder(c.num_attributes, c.latent_dim, c.prior_channels)
            self.flow = RealNVP(c.latent_dim, c.flow_layers, c.flow_hidden, c.flow_scale_bound)
        # log σ of the decoder at evaluation: 0 for `gaussian`; for σ-models the training loop
        # stores the σ* of the training set here (chapter 2), so likelihoods use a fixed σ.
        self.register_buffer("decoder_log_sigma", torch.zeros(()))

    def initialize(self, seed: int) -> "CVAE":
        """Set every parameter and buffer to the initial value that ``seed`` gives, in place.

        The values do not depend on anything drawn from torch's global generator before (it is
        left untouched), so a run is a function of its seed: ``train`` calls this on every fresh
        run. Device, dtype and memory format of the parameters are kept.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = CVAE(self.config)
        self.load_state_dict(fresh.state_dict())
        return self

    @property
    def learns_sigma(self) -> bool:
        """Whether the decoder σ is σ*, stored from the training set for evaluation. True for
        ``mse_kl`` too: its loss has no σ of its own, so its likelihoods are those of a Gaussian
        decoder at the training-set σ*, as for the σ-models (σ = 1 would be no fairer a guess)."""
        return self.config.model != "gaussian"

    @property
    def has_flow_prior(self) -> bool:
        return self.config.model == "sigma_flow"

    def _check_inputs(self, x: Tensor | None, y: Tensor, check_range: bool = True):
        """Clear errors for bad inputs; returns (x, y) as the parameters' float dtype.

        ``check_range``: images must lie in [0, 1] (one pass over them, and a sync on a GPU;
        the training loop's batches are uint8 / 255 by construction and skip it)."""
        c = self.config
        parameter = self.decoder.head[0].weight
        if not isinstance(y, Tensor):
            raise TypeError(f"attributes y must be a tensor [batch, {c.num_attributes}], "
                            f"got {type(y).__name__}")
        if y.ndim != 2 or y.shape[1] != c.num_attributes:
            hint = "; for one vector use y.unsqueeze(0)" if y.ndim == 1 else ""
            raise ValueError(f"attributes y must have shape [batch, {c.num_attributes}], got "
                             f"{tuple(y.shape)}{hint}")
        if y.is_complex():
            raise TypeError(f"attributes y must be real, got {y.dtype}")
        for name, tensor in (("attributes y", y), ("images x", x)):
            if isinstance(tensor, Tensor) and tensor.device != parameter.device:
                raise ValueError(f"{name} is on {tensor.device} but the model is on "
                                 f"{parameter.device}; move it with .to({str(parameter.device)!r})")
        y = y.to(parameter.dtype)
        if x is not None:
            expected = (3, c.image_size, c.image_size)
            if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != expected:
                shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"images x must have shape [batch, {', '.join(map(str, expected))}]"
                                 f", got {shape}")
            if not x.is_floating_point():
                raise TypeError(f"images x must be float in [0, 1], got {x.dtype}; "
                                f"use cvae_tutorial.data.to_float")
            if len(x) != len(y):
                raise ValueError(f"{len(x)} images x but {len(y)} attribute vectors y")
            if len(x) == 0:
                raise ValueError("images x is an empty batch; pass at least one image")
            if check_range and (x.min() < 0 or x.max() > 1):
                raise ValueError(f"images x must be in [0, 1], got values in "
                                 f"[{x.min().item():.4g}, {x.max().item():.4g}]; for uint8 or "
                                 f"0-255 images use cvae_tutorial.data.to_float")
            x = x.to(parameter.dtype)
        return x, y

    def encode(self, x: Tensor, y: Tensor):
        """(mu_q, log_sigma_q) of q(z|x,y)."""
        x, y = self._check_inputs(x, y)
        return self.encoder(x, y)

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        """Decoder means x̂ for latents z [batch, latent_dim]: unbounded, near [0, 1] once
        trained (``data.to_uint8`` clamps them for display)."""
        width = self.config.latent_dim
        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != width:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"latents z must have shape [batch, {width}] (this model's "
                             f"latent_dim), got {shape}")
        return self.decoder(z, y)

    def prior_params(self, y: Tensor):
        """(mu_p, log_sigma_p) of the base Gaussian of the prior: learned from y, or N(0, I)."""
        if self.has_flow_prior:
            return self.prior_encoder(y)
        zeros = y.new_zeros(len(y), self.config.latent_dim)
        return zeros, zeros

    def prior_log_prob(self, z: Tensor, y: Tensor) -> Tensor:
        """log p(z|y)."""
        mu_p, log_sigma_p = self.prior_params(y)
        if self.has_flow_prior:
            return flow_prior_log_prob(z, self.flow, mu_p, log_sigma_p)
        return gaussian_log_prob(z, mu_p, log_sigma_p)

    def kl(self, z: Tensor, mu_q: Tensor, log_sigma_q: Tensor, y: Tensor) -> Tensor:
        """KL(q(z|x,y) || p(z|y)): closed form for N(0, I), one-sample Monte Carlo for the flow."""
        if self.has_flow_prior:
            return monte_carlo_kl(z, mu_q, log_sigma_q, self.prior_log_prob(z, y))
        return gaussian_kl(mu_q, log_sigma_q)

    def reconstruction_nll(self, x: Tensor, x_hat: Tensor, fixed_sigma: bool = False):
        """(-log p(x|z,y) per image, log σ used).

        σ = 1 for ``gaussian``. σ-models use the batch σ* in training and, with ``fixed_sigma``,
        the stored training-set σ* (``decoder_log_sigma``) so that test likelihoods are honest.
        """
        if self.learns_sigma and not fixed_sigma:
            return sigma_optimal_nll(x, x_hat, self.config.min_log_sigma)
        return gaussian_nll(x, x_hat, self.decoder_log_sigma), self.decoder_log_sigma

    def loss_terms(self, x: Tensor, y: Tensor, fixed_sigma: bool = False,
                   check_range: bool = True) -> dict:
        """Negative ELBO and its parts, averaged over the batch (nats per image); images x in
        [0, 1] (``check_range=False`` skips that check, for batches in range by construction).

        For ``mse_kl`` in training, ``loss`` is the recipe's MSE + weighted KL (not nats);
        ``recon`` and ``kl`` are still the ELBO's terms at the batch σ*.
        """
        x, y = self._check_inputs(x, y, check_range)
        mu_q, log_sigma_q = self.encoder(x, y)
        z = mu_q + torch.exp(log_sigma_q) * torch.randn_like(mu_q)
        x_hat = self.decode(z, y)
        recon, log_sigma = self.reconstruction_nll(x, x_hat, fixed_sigma)
        kl = self.kl(z, mu_q, log_sigma_q, y)
        loss = (recon + kl).mean()
        if self.config.model == "mse_kl" and not fixed_sigma:  # trains on the recipe's loss;
            # evaluated (fixed_sigma) it gives the −ELBO at σ* like the others
            loss = mse_kl_loss(x, x_hat, mu_q, log_sigma_q, self.config.kl_weight)
        return {"loss": loss, "recon": recon.mean(), "kl": kl.mean(),
                "log_sigma": log_sigma.detach(),
                "mse": ((x - x_hat) ** 2).mean().detach()}

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor) -> Tensor:
        """Decoder mean at the posterior mean."""
        x, y = self._check_inputs(x, y)
        mu_q, _ = self.encode(x, y)
        return self.decode(mu_q, y)

    @torch.no_grad()
    def sample_latents(self, y: Tensor, paper_shortcut: bool = False,
                       generator: torch.Generator | None = None,
                       temperature: float = 1.0, noise: Tensor | None = None) -> Tensor:
        """z ~ p(z|y). With the flow prior z = f⁻¹(mu_p + sigma_p ε), the correct sampler;
        ``paper_shortcut=True`` skips f⁻¹ as the paper's §3.3 does (wrong unless f = identity).
        ``noise``: the ε [batch, latent_dim] to use (the same ε for other labels pairs samples)."""
        _, y = self._check_inputs(None, y)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
                not 0 <= temperature < float("inf"):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        check_labels(y)
        mu_p, log_sigma_p = self.prior_params(y)
        if noise is None:
            eps = torch.randn(mu_p.shape, generator=generator, device=mu_p.device,
                              dtype=mu_p.dtype)
        elif not isinstance(noise, Tensor) or noise.shape != mu_p.shape:
            raise ValueError(f"noise must be a tensor of shape {tuple(mu_p.shape)} (one ε per "
                             f"row of y), got {tuple(getattr(noise, 'shape', ()))}")
        else:
            eps = noise.to(mu_p)
        u = mu_p + torch.exp(log_sigma_p) * eps * temperature
        if self.has_flow_prior and not paper_shortcut:
            u, _ = self.flow.inverse(u)
        return u

    @torch.no_grad()
    def sample(self, y: Tensor, paper_shortcut: bool = False,
               generator: torch.Generator | None = None, temperature: float = 1.0,
               noise: Tensor | None = None) -> Tensor:
        """Decoder means x̂ (unbounded, as :meth:`decode`) for z ~ p(z|y), one per row of ``y``."""
        z = self.sample_latents(y, paper_shortcut, generator, temperature, noise)
        return self.decode(z, y.to(z.dtype))


def check_labels(y: Tensor, name: str = "attributes y") -> Tensor:
    """Labels to condition on must be finite and in [0, 1] (1: present, 0: absent, between:
    interpolate); anything else — NaN, CelebA's raw -1/1 — would decode garbage. Returns ``y``."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(y).__name__}")
    if not torch.isfinite(y).all():
        raise ValueError(f"{name} contain NaN or Inf; use 0/1 values")
    if ((y < 0) | (y > 1)).any():
        hint = "; for CelebA's raw -1/1 labels use (labels > 0).float()" if (y == -1).any() \
            else ""
        raise ValueError(f"{name} must be in [0, 1] (1: present, 0: absent, between: "
                         f"interpolate), got values in [{y.min().item():.4g}, "
                         f"{y.max().item():.4g}]{hint}")
    return y


def run_name(config: CVAEConfig) -> str:
    """The name of a model's run: ``sigma`` for the paper's σ-CVAE, ``sigma_qxy`` for the same
    model with an encoder that sees y (the inverse of :func:`run_config`)."""
    paper = config.model not in PAPER_ENCODERS_WITHOUT_LABELS
    if config.encoder_sees_labels == paper:
        return config.model
    return config.model + ("_qxy" if config.encoder_sees_labels else "_qx")


def run_config(name: str, **fields) -> CVAEConfig:
    """The configuration of the run called ``name`` (a model name, or one with ``_qxy`` or
    ``_qx``: the encoder sees y, or does not); ``fields`` set the rest."""
    for suffix, sees_labels in (("_qxy", True), ("_qx", False)):
        if name.endswith(suffix) and name[:-len(suffix)] in MODEL_NAMES:
            return CVAEConfig(model=name[:-len(suffix)], encoder_sees_labels=sees_labels,
                              **fields)
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown model {name!r}; use one of {', '.join(MODEL_NAMES)}, "
                          f"optionally ending in _qxy (the encoder sees y) or _qx (it does not)")
    return CVAEConfig(model=name, **fields)

