"""The conditional VAE as three independent choices, and the named models built from them.

A model's name is ``<likelihood>[_<prior>]``, its encoder a third choice:

- likelihood: ``gaussian`` (decoder σ = 1), ``sigma`` (σ* = the MSE, chapter 2) or ``mse_kl``
  (the reference recipe most readers start from: MSE + a hand-tuned KL weight);
- prior p(z|y): N(0, I) (no suffix), ``cond`` (a conditional Gaussian N(μ_p(y), σ_p(y))),
  ``flow`` (a Real NVP over that Gaussian, the paper's) or ``cflow`` (a Real NVP whose couplings
  also read y);
- encoder: q(z|x,y) or q(z|x) (``CVAEConfig.encoder_sees_labels``; a run's name says it with
  ``_qxy`` / ``_qx`` where it differs from the paper's reading, :func:`run_name`).

The paper's three models are ``gaussian``, ``sigma`` and ``sigma_flow``; ``mse_kl`` is the
recipe; every other combination (the prior ladder of chapters 4-6) trains, resumes, samples,
evaluates and edits through the same code.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .config import ConfigError, check_field_types, check_image_size
from .flows import RealNVP
from .losses import (MIN_LOG_SIGMA, flow_prior_log_prob, gaussian_kl, gaussian_log_prob,
                     gaussian_nll, monte_carlo_kl, mse_kl_loss, reparameterise,
                     sigma_optimal_nll)
from .nets import Decoder, Encoder, PriorEncoder

LIKELIHOODS = ("gaussian", "sigma", "mse_kl")
# the prior's name in a model's name -> the prior
PRIORS = {"": "standard", "cond": "conditional", "flow": "flow", "cflow": "conditional_flow"}
PRIOR_TITLES = {"standard": "N(0, I) prior", "conditional": "conditional Gaussian prior",
                "flow": "Real NVP prior", "conditional_flow": "conditional Real NVP prior"}
PAPER_MODEL_NAMES = ("gaussian", "sigma", "sigma_flow")  # the paper's Table 1
MODEL_NAMES = PAPER_MODEL_NAMES + ("mse_kl",)  # the named presets
MODEL_TITLES = {"gaussian": "Gaussian CVAE (σ = 1)", "sigma": "σ-CVAE",
                "sigma_flow": "σ-CVAE + Real NVP prior",
                "mse_kl": "MSE + KL weight (PyTorch-VAE recipe)"}
# The paper's non-flow models encode q(z|x): their latent is independent of the labels.
PAPER_ENCODERS_WITHOUT_LABELS = ("gaussian", "sigma")
# The prior ladder (chapters 4-6): each neighbouring pair, and each pair joined below, differs
# in one choice. Prior at the encoder q(z|x,y): sigma_qxy -> sigma_cond -> sigma_flow ->
# sigma_cflow; encoder at a fixed prior: sigma / sigma_qxy, sigma_flow_qx / sigma_flow;
# decoder σ at a fixed prior and encoder: gaussian / sigma.
LADDER = ("gaussian", "sigma", "sigma_qxy", "sigma_cond", "sigma_flow", "sigma_cflow",
          "sigma_flow_qx")
MSE_KL_WEIGHT = 0.00025  # the PyTorch-VAE zoo's hand-tuned KL weight for its CelebA CVAE


def model_axes(model: str) -> tuple:
    """(likelihood, prior) of a model name ``<likelihood>[_<prior>]``; a clear error otherwise."""
    for likelihood in LIKELIHOODS:
        if model == likelihood:
            return likelihood, "standard"
        suffix = model[len(likelihood) + 1:]
        if model.startswith(likelihood + "_") and suffix in PRIORS and suffix:
            return likelihood, PRIORS[suffix]
    raise ConfigError(f"unknown model {model!r}; use <likelihood>[_<prior>] with a likelihood "
                      f"in {', '.join(LIKELIHOODS)} and a prior in "
                      f"{', '.join(p for p in PRIORS if p)} (none: N(0, I)), e.g. sigma_flow")


def model_title(name: str) -> str:
    """A run's title for tables and figures: the preset's, or its choices spelled out."""
    config = run_config(name)
    base = config.model
    if base in MODEL_TITLES and name == base:
        return MODEL_TITLES[base]
    likelihood = {"gaussian": "Gaussian CVAE (σ = 1)", "sigma": "σ-CVAE",
                  "mse_kl": "MSE + KL weight"}[config.likelihood]
    encoder = "q(z|x,y)" if config.encoder_sees_labels else "q(z|x)"
    return f"{likelihood}, {encoder}, {PRIOR_TITLES[config.prior]}"


@dataclass
class CVAEConfig:
    """Everything that fixes a model's architecture; saved with every checkpoint."""

    model: str = "sigma_flow"  # <likelihood>[_<prior>], see the module's docstring
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

    def __post_init__(self):
        if self.encoder_sees_labels is None:
            self.encoder_sees_labels = self.model not in PAPER_ENCODERS_WITHOUT_LABELS
        check_field_types(self)
        model_axes(self.model)
        check_image_size(self.image_size)
        for name in ("num_attributes", "latent_dim", "base_channels", "prior_channels",
                     "flow_layers", "flow_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"CVAEConfig.{name} must be at least 1, got "
                                  f"{getattr(self, name)}")
        if not 0 < self.flow_scale_bound < math.inf:
            raise ConfigError(f"CVAEConfig.flow_scale_bound must be finite and > 0, got "
                              f"{self.flow_scale_bound}")
        if not 0 <= self.kl_weight < math.inf:
            raise ConfigError(f"CVAEConfig.kl_weight must be finite and >= 0, got {self.kl_weight}")
        if not math.isfinite(self.min_log_sigma):
            raise ConfigError(f"CVAEConfig.min_log_sigma must be finite, got {self.min_log_sigma}")
        if self.prior in ("flow", "conditional_flow") and self.latent_dim < 2:
            raise ConfigError("the flow prior splits z in halves: use latent_dim >= 2")

    @property
    def likelihood(self) -> str:
        """``gaussian`` (σ = 1), ``sigma`` (σ*) or ``mse_kl``."""
        return model_axes(self.model)[0]

    @property
    def prior(self) -> str:
        """``standard`` N(0, I), ``conditional``, ``flow`` or ``conditional_flow``."""
        return model_axes(self.model)[1]

    def to_dict(self) -> dict:
        return asdict(self)


class CVAE(nn.Module):
    """q(z|x,y) (or q(z|x): ``encoder_sees_labels``), p(x|z,y) and the prior p(z|y): N(0, I), a
    conditional Gaussian N(μ_p(y), σ_p(y)), or a Real NVP over it (its couplings reading y for
    ``conditional_flow``): z = f⁻¹(μ_p(y) + σ_p(y) ε; y)."""

    def __init__(self, config: CVAEConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder(c.image_size, c.num_attributes, c.latent_dim, c.base_channels,
                               c.encoder_sees_labels)
        self.decoder = Decoder(c.image_size, c.num_attributes, c.latent_dim, c.base_channels)
        if c.prior != "standard":
            self.prior_encoder = PriorEncoder(c.num_attributes, c.latent_dim, c.prior_channels)
        if self.has_flow_prior:
            context = c.num_attributes if c.prior == "conditional_flow" else 0
            self.flow = RealNVP(c.latent_dim, c.flow_layers, c.flow_hidden, c.flow_scale_bound,
                                context)
        # log σ of the decoder at evaluation: 0 for `gaussian`; for σ-models the training loop
        # stores the σ* of the training set here (chapter 2), so likelihoods use a fixed σ.
        self.register_buffer("decoder_log_sigma", torch.zeros(()))

    def initialize(self, seed: int) -> CVAE:
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
        return self.config.likelihood != "gaussian"

    @property
    def has_flow_prior(self) -> bool:
        return self.config.prior in ("flow", "conditional_flow")

    def flow_context(self, y: Tensor) -> Tensor | None:
        """What the flow's couplings read besides z: y for ``conditional_flow``, else nothing."""
        return y if self.config.prior == "conditional_flow" else None

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
                raise ValueError(f"images x must have shape "
                                 f"[batch, {', '.join(map(str, expected))}], got {shape}")
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
        """(mu_p, log_sigma_p) of the prior's Gaussian (the flow's base): learned from y, or
        N(0, I)."""
        if self.config.prior != "standard":
            return self.prior_encoder(y)
        zeros = y.new_zeros(len(y), self.config.latent_dim)
        return zeros, zeros

    def prior_log_prob(self, z: Tensor, y: Tensor) -> Tensor:
        """log p(z|y)."""
        mu_p, log_sigma_p = self.prior_params(y)
        if self.has_flow_prior:
            return flow_prior_log_prob(z, self.flow, mu_p, log_sigma_p, self.flow_context(y))
        return gaussian_log_prob(z, mu_p, log_sigma_p)

    def kl(self, z: Tensor, mu_q: Tensor, log_sigma_q: Tensor, y: Tensor) -> Tensor:
        """KL(q(z|x,y) || p(z|y)): closed form for a Gaussian prior, one-sample Monte Carlo
        for a flow (no closed form exists)."""
        if self.has_flow_prior:
            return monte_carlo_kl(z, mu_q, log_sigma_q, self.prior_log_prob(z, y))
        return gaussian_kl(mu_q, log_sigma_q, *self.prior_params(y))

    def to_base(self, z: Tensor, y: Tensor) -> Tensor:
        """The base noise ε of codes z under p(z|y): ε = (f(z; y) − μ_p(y)) / σ_p(y) (f = id
        without a flow); ``from_base`` undoes it."""
        mu_p, log_sigma_p = self.prior_params(y)
        if self.has_flow_prior:
            z, _ = self.flow(z, self.flow_context(y))
        return (z - mu_p) * torch.exp(-log_sigma_p)

    def from_base(self, eps: Tensor, y: Tensor, paper_shortcut: bool = False) -> Tensor:
        """z = f⁻¹(μ_p(y) + σ_p(y) ε; y); ``paper_shortcut`` skips f⁻¹ as the paper's §3.3."""
        mu_p, log_sigma_p = self.prior_params(y)
        u = reparameterise(mu_p, log_sigma_p, eps)
        if self.has_flow_prior and not paper_shortcut:
            u, _ = self.flow.inverse(u, self.flow_context(y))
        return u

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
        z = reparameterise(mu_q, log_sigma_q, torch.randn_like(mu_q))
        x_hat = self.decode(z, y)
        recon, log_sigma = self.reconstruction_nll(x, x_hat, fixed_sigma)
        kl = self.kl(z, mu_q, log_sigma_q, y)
        loss = (recon + kl).mean()
        if self.config.likelihood == "mse_kl" and not fixed_sigma:  # the recipe's loss;
            # evaluated (fixed_sigma) it gives the −ELBO at σ* like the others
            loss = mse_kl_loss(x, x_hat, kl, self.config.kl_weight)
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
        """z ~ p(z|y). With a flow prior z = f⁻¹(mu_p + sigma_p ε), the correct sampler;
        ``paper_shortcut=True`` skips f⁻¹ as the paper's §3.3 does (wrong unless f = identity).
        ``noise``: the ε [batch, latent_dim] to use (the same ε for other labels pairs samples)."""
        _, y = self._check_inputs(None, y)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
                not 0 <= temperature < float("inf"):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        check_labels(y)
        shape = (len(y), self.config.latent_dim)
        if noise is None:
            eps = torch.randn(shape, generator=generator, device=y.device, dtype=y.dtype)
        elif not isinstance(noise, Tensor) or noise.shape != shape:
            raise ValueError(f"noise must be a tensor of shape {shape} (one ε per "
                             f"row of y), got {tuple(getattr(noise, 'shape', ()))}")
        else:
            eps = noise.to(y)
        return self.from_base(eps * temperature, y, paper_shortcut)

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
    paper = config.model not in PAPER_ENCODERS_WITHOUT_LABELS  # q(z|x) only for these two
    if config.encoder_sees_labels == paper:
        return config.model
    return config.model + ("_qxy" if config.encoder_sees_labels else "_qx")


def run_config(name: str, **fields) -> CVAEConfig:
    """The configuration of the run called ``name`` (a model name, or one with ``_qxy`` or
    ``_qx``: the encoder sees y, or does not); ``fields`` set the rest."""
    for suffix, sees_labels in (("_qxy", True), ("_qx", False)):
        if isinstance(name, str) and name.endswith(suffix):
            try:
                model_axes(name[:-len(suffix)])
            except ConfigError:
                continue
            return CVAEConfig(model=name[:-len(suffix)], encoder_sees_labels=sees_labels,
                              **fields)
    if not isinstance(name, str):
        raise ConfigError(f"a run's name must be a string such as 'sigma_flow', got {name!r}")
    try:
        model_axes(name)
    except ConfigError as error:
        raise ConfigError(f"{error}; a run's name may end in _qxy (the encoder sees y) or _qx "
                          f"(it does not)") from None
    return CVAEConfig(model=name, **fields)

