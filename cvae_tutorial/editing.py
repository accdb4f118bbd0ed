"""Using a trained conditional VAE (chapter 7): edit the attributes of real images and
interpolate between two images in latent space. These are model operations; what an edit did is
measured in :mod:`cvae_tutorial.evaluation.edits`.

An edit encodes an image with its own labels, z = μ_q(x, y), and decodes the same z with edited
labels y′: the conditional VAE's "analogy" use (Kingma et al. 2014, Sohn et al. 2015).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .cvae import check_labels


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
    return edit_codes(model, mu_q, y, y_new, through_prior)


@torch.no_grad()
def edit_codes(model, z: Tensor, y: Tensor, y_new: Tensor, through_prior: bool = False) -> Tensor:
    """The decoding half of :func:`edit`: decode(z′, y′) for posterior codes z = μ_q(x, y) of
    images with labels y, so that many edits of one image set encode it once."""
    _check_edit_labels(y, y_new)
    y_new = y_new.to(z.dtype)
    if through_prior:
        z = transport_latents(model, z, y.to(z.dtype), y_new)
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
