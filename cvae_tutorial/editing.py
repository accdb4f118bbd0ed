"""Using a trained conditional VAE (chapter 7): edit the attributes of real images, interpolate
between two images in latent space, and measure what an edit did.

An edit encodes an image with its own labels, z = μ_q(x, y), and decodes the same z with edited
labels y′: the conditional VAE's "analogy" use (Kingma et al. 2014, Sohn et al. 2015). The
measurements use the attribute classifier of chapter 6 on 8-bit images, as every metric of the
book does, and come with standard errors over images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .cvae import check_labels
from .data import to_float, to_uint8
from .evaluation.uncertainty import mean_and_error, rate_and_error


# ----------------------------------------------------------------------------------------------
# Labels and latents
# ----------------------------------------------------------------------------------------------
def edited_labels(labels: Tensor, index: int, value: float | None = None) -> Tensor:
    """A copy of ``labels`` [N, A] with attribute ``index`` set to ``value`` (0 or 1), or flipped
    (1 − y) when ``value`` is None: "add a smile" to those without one, remove it from the rest."""
    if not isinstance(labels, Tensor) or labels.ndim != 2:
        raise ValueError(f"labels must be a tensor [N, A], got "
                         f"{tuple(getattr(labels, 'shape', ())) or type(labels).__name__}")
    if isinstance(index, bool) or not isinstance(index, int) or \
            not 0 <= index < labels.shape[1]:
        raise ValueError(f"attribute index must be an int in 0..{labels.shape[1] - 1}, got "
                         f"{index!r}; look it up with cvae_tutorial.data.attribute_indices")
    if value is not None and value not in (0, 1):
        raise ValueError(f"an edited attribute value must be 0, 1 or None (flip), got {value!r}")
    edited = labels.clone()
    edited[:, index] = 1 - labels[:, index] if value is None else float(value)
    return edited


def _check_edit_labels(y: Tensor, y_new: Tensor) -> None:
    """Both label sets in [0, 1] (as ``CVAE.sample`` wants them), of one shape."""
    check_labels(y, "labels y")
    if not isinstance(y_new, Tensor) or y_new.shape != y.shape:
        raise ValueError(f"edited labels y_new must have the shape of y {tuple(y.shape)}, got "
                         f"{tuple(getattr(y_new, 'shape', ())) or type(y_new).__name__}")
    check_labels(y_new, "edited labels y_new")


@torch.no_grad()
def transport_latents(model, z: Tensor, y: Tensor, y_new: Tensor) -> Tensor:
    """Move codes z from p(z|y) to p(z|y′) keeping their base noise: z = f⁻¹(μ_p(y) + σ_p(y) ε),
    so ε = (f(z) − μ_p(y)) / σ_p(y) and z′ = f⁻¹(μ_p(y′) + σ_p(y′) ε) (``CVAE.to_base``,
    ``CVAE.from_base``; f = id for a Gaussian prior).

    For the N(0, I) prior p(z|y) does not depend on y and this is the identity.
    """
    _check_edit_labels(y, y_new)
    if model.config.prior == "standard":
        return z
    y, y_new = y.to(z.dtype), y_new.to(z.dtype)
    return model.from_base(model.to_base(z, y), y_new)


@torch.no_grad()
def edit(model, x: Tensor, y: Tensor, y_new: Tensor, through_prior: bool = False) -> Tensor:
    """Decoder means x̂′ = decode(z′, y′) for images x (float [0, 1]) with labels y.

    z = μ_q(x, y), the posterior mean, as in ``CVAE.reconstruct``; z′ = z (the code is kept and
    only the decoder's y changes) or, with ``through_prior``, z′ = ``transport_latents`` (the
    code moved through the prior's flow for y and back for y′). With y′ = y both give the
    reconstruction.
    """
    _check_edit_labels(y, y_new)
    mu_q, _ = model.encode(x, y)
    y_new = y_new.to(mu_q.dtype)
    z = transport_latents(model, mu_q, y.to(mu_q.dtype), y_new) if through_prior else mu_q
    return model.decode(z, y_new)


@torch.no_grad()
def interpolate(model, x_a: Tensor, y_a: Tensor, x_b: Tensor, y_b: Tensor, steps: int = 8,
                space: str = "z") -> tuple:
    """Decoded images along a straight line between the codes of two images.

    x_a, x_b: float images [3, H, W]; y_a, y_b: their labels [A]. The codes are the posterior
    means z_a, z_b; ``space="z"`` walks z_t = (1 − t) z_a + t z_b, ``space="u"`` (flow prior only)
    walks the flow's base space, u_t = (1 − t) f(z_a) + t f(z_b), z_t = f⁻¹(u_t). The labels are
    interpolated the same way, so t = 0 and t = 1 decode to the two reconstructions.

    Returns ``(images [steps, 3, H, W], labels [steps, A], t [steps])``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2 (the two endpoints), got {steps!r}")
    if space not in ("z", "u"):
        raise ValueError(f"space must be 'z' (latent) or 'u' (the flow's base space), got "
                         f"{space!r}")
    if space == "u" and not model.has_flow_prior:
        raise ValueError(f"space='u' needs a flow prior (e.g. model 'sigma_flow'); "
                         f"{model.config.model!r} has none, use space='z'")
    for name, image in (("x_a", x_a), ("x_b", x_b)):
        if not isinstance(image, Tensor) or image.ndim != 3:
            raise ValueError(f"{name} must be one image [3, H, W], got "
                             f"{tuple(getattr(image, 'shape', ())) or type(image).__name__}")
    x = torch.stack([x_a, x_b])
    y = torch.stack([check_labels(y_a, "labels y_a"), check_labels(y_b, "labels y_b")])
    codes, _ = model.encode(x, y)
    y = y.to(codes.dtype)
    if space == "u":
        codes, _ = model.flow(codes, model.flow_context(y))
    t = torch.linspace(0, 1, steps, dtype=codes.dtype, device=codes.device)[:, None]
    path = (1 - t) * codes[0] + t * codes[1]
    labels = (1 - t) * y[0] + t * y[1]
    if space == "u":
        path, _ = model.flow.inverse(path, model.flow_context(labels))
    return model.decode(path, labels), labels, t[:, 0]


# ----------------------------------------------------------------------------------------------
# What the attribute classifier sees
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def classifier_logits(classifier, images: Tensor, batch_size: int = 256) -> Tensor:
    """The classifier's attribute logits [N, A] (on CPU) for uint8 images [N, 3, H, W]."""
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (quantised as image files), got "
                        f"{getattr(images, 'dtype', type(images).__name__)}; use to_uint8")
    device = next(classifier.parameters()).device
    return torch.cat([classifier(to_float(images[start:start + batch_size].to(device))).cpu()
                      for start in range(0, len(images), batch_size)])


# ----------------------------------------------------------------------------------------------
# Measuring an edit
# ----------------------------------------------------------------------------------------------
@dataclass
class EditOutcome:
    """Per-image results of one attribute edit over a set of test images.

    ``success``: the classifier sees the edited value y′[a] on the edited image. ``preserved``:
    the fraction of the other attributes on which the classifier decides the same for the edit
    as for the reconstruction. ``pixel_distance``: RMS pixel difference (in [0, 1] units) between
    the edit and the original image; ``reconstruction_distance``: the same for the
    reconstruction, the floor an edit cannot go below on average. ``added``: y′[a] = 1.
    """

    attribute: str
    success: Tensor
    preserved: Tensor
    pixel_distance: Tensor
    reconstruction_distance: Tensor
    added: Tensor

    def summary(self) -> dict:
        """Success rate, mean preservation and mean distances, each with its s.e. over images."""
        return {"attribute": self.attribute, "images": len(self.success),
                "success": rate_and_error(self.success),
                "preserved": mean_and_error(self.preserved),
                "pixel_distance": mean_and_error(self.pixel_distance),
                "reconstruction_distance": mean_and_error(self.reconstruction_distance)}


def _rms(a: Tensor, b: Tensor) -> Tensor:
    return (to_float(a) - to_float(b)).pow(2).flatten(1).mean(1).sqrt()


@torch.no_grad()
def measure_edit(model, classifier, images: Tensor, labels: Tensor, index: int,
                 value: float | None = None, through_prior: bool = False,
                 batch_size: int = 256, attribute: str = "") -> EditOutcome:
    """Edit attribute ``index`` of every uint8 image (set to ``value``, or flipped when None) and
    measure the edit on the 8-bit result, as real images are measured."""
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 test images, got "
                        f"{getattr(images, 'dtype', type(images).__name__)}")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many label rows as images (at least one), got {len(images)} "
                         f"images and {len(labels)} label rows")
    check_labels(labels, "labels")
    device = next(model.parameters()).device
    new_labels = edited_labels(labels, index, value)
    reconstructions, edits = [], []
    for start in range(0, len(images), batch_size):
        x = to_float(images[start:start + batch_size].to(device))
        y = labels[start:start + batch_size].to(device)
        y_new = new_labels[start:start + batch_size].to(device)
        reconstructions.append(to_uint8(model.reconstruct(x, y)).cpu())
        edits.append(to_uint8(edit(model, x, y, y_new, through_prior)).cpu())
    reconstructions, edits = torch.cat(reconstructions), torch.cat(edits)
    seen_edit = classifier_logits(classifier, edits, batch_size) > 0
    seen_reconstruction = classifier_logits(classifier, reconstructions, batch_size) > 0
    target = new_labels[:, index].cpu() > 0.5
    others = torch.ones(labels.shape[1], dtype=torch.bool)
    others[index] = False
    same = (seen_edit == seen_reconstruction)[:, others].double()
    preserved = same.mean(1) if others.any() else torch.ones(len(images), dtype=torch.float64)
    return EditOutcome(attribute, seen_edit[:, index] == target, preserved,
                       _rms(edits, images), _rms(reconstructions, images), target)
