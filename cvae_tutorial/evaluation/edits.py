"""Measuring attribute edits of real images (chapter 7): does the classifier see the new value,
do the other attributes stay, and how far does the edit move the pixels? The edits themselves
are :mod:`cvae_tutorial.editing`'s; they are measured on 8-bit images, as every metric of the
book is, with standard errors over images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..cvae import check_labels
from ..data.images import to_float, to_uint8
from ..editing import edit_codes, edited_labels
from .classifier import classifier_logits
from .uncertainty import mean_and_error, rate_and_error


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
def measure_edits(model, classifier, images: Tensor, labels: Tensor, indices,
                  value: float | None = None, through_prior: bool = False,
                  batch_size: int = 256, names=None) -> list:
    """An :class:`EditOutcome` per attribute index in ``indices``: attribute a of every uint8
    image set to ``value`` (flipped when None), each edit measured on its 8-bit result as real
    images are. ``names``: the outcomes' attribute names (default: none).

    The images are encoded, reconstructed and their reconstructions read by the classifier once
    for all the edits (the code z = μ_q(x, y) does not depend on the edit)."""
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 test images, got "
                        f"{getattr(images, 'dtype', type(images).__name__)}")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many label rows as images (at least one), got {len(images)} "
                         f"images and {len(labels)} label rows")
    check_labels(labels, "labels")
    indices = list(indices)
    names = [""] * len(indices) if names is None else list(names)
    if len(names) != len(indices):
        raise ValueError(f"{len(names)} names for {len(indices)} attribute indices")
    edited = [edited_labels(labels, index, value) for index in indices]  # checks each index
    device = next(model.parameters()).device
    starts = range(0, len(images), batch_size)
    codes = [model.encode(to_float(images[s:s + batch_size].to(device)),
                          labels[s:s + batch_size].to(device))[0] for s in starts]
    batches = [(z, labels[s:s + len(z)].to(device)) for z, s in zip(codes, starts)]
    reconstructions = torch.cat([to_uint8(edit_codes(model, z, y, y)).cpu()
                                 for z, y in batches])
    seen_reconstruction = classifier_logits(classifier, reconstructions, batch_size) > 0
    reconstruction_distance = _rms(reconstructions, images)
    outcomes = []
    for index, name, new_labels in zip(indices, names, edited):
        edits = torch.cat([
            to_uint8(edit_codes(model, z, y, new_labels[s:s + len(z)].to(device),
                                through_prior)).cpu()
            for (z, y), s in zip(batches, starts)])
        seen_edit = classifier_logits(classifier, edits, batch_size) > 0
        target = new_labels[:, index].cpu() > 0.5
        others = torch.ones(labels.shape[1], dtype=torch.bool)
        others[index] = False
        same = (seen_edit == seen_reconstruction)[:, others].double()
        preserved = same.mean(1) if others.any() else torch.ones(len(images),
                                                                  dtype=torch.float64)
        outcomes.append(EditOutcome(name, seen_edit[:, index] == target, preserved,
                                    _rms(edits, images), reconstruction_distance, target))
    return outcomes


def measure_edit(model, classifier, images: Tensor, labels: Tensor, index: int,
                 value: float | None = None, through_prior: bool = False,
                 batch_size: int = 256, attribute: str = "") -> EditOutcome:
    """The :class:`EditOutcome` of one attribute edit (:func:`measure_edits` of ``[index]``)."""
    return measure_edits(model, classifier, images, labels, [index], value, through_prior,
                         batch_size, [attribute])[0]
