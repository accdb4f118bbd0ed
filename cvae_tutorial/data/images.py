"""The container every dataset ends up as: uint8 images ``[N, 3, H, W]``, ``{0, 1}`` labels
``[N, A]`` and the attribute names. Training indexes these tensors directly (no per-image
decoding in the loop).
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import torch
from torch import Tensor

from ..config import check_image_size
from ..files import fingerprint


class DataError(ValueError):
    """Bad data input: the message says what was wrong and how to fix it."""


@dataclass
class AttributeImages(torch.utils.data.Dataset):
    """Images with binary attributes: ``images`` uint8 [N, 3, H, W], ``labels`` float {0, 1}
    [N, A]."""

    images: Tensor
    labels: Tensor
    attribute_names: tuple

    def __post_init__(self):
        for name in ("images", "labels"):
            if not isinstance(getattr(self, name), Tensor):
                raise TypeError(f"{name} must be a torch tensor, got "
                                f"{type(getattr(self, name)).__name__}; wrap it with "
                                f"torch.as_tensor or use as_attribute_images()")
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise DataError(f"images must be a uint8 tensor [N, 3, H, W], got {self.images.dtype} "
                            f"{tuple(self.images.shape)}; convert with as_attribute_images()")
        if self.images.shape[2] != self.images.shape[3]:
            raise DataError(f"images must be square, got {tuple(self.images.shape[2:])}")
        check_image_size(self.images.shape[-1], DataError)
        if self.labels.ndim != 2 or len(self.labels) != len(self.images):
            raise DataError(f"labels must be [N, A] with N={len(self.images)} rows, got "
                            f"{tuple(self.labels.shape)}")
        if not isinstance(self.attribute_names, (list, tuple)) or \
                not all(isinstance(name, str) for name in self.attribute_names):
            raise TypeError(f"attribute_names must be a list or tuple of strings, got "
                            f"{self.attribute_names!r}")
        self.attribute_names = tuple(self.attribute_names)
        if len(set(self.attribute_names)) != len(self.attribute_names):
            raise DataError(f"attribute_names must be distinct, got {self.attribute_names}")
        if self.labels.shape[1] != len(self.attribute_names):
            raise DataError(f"{self.labels.shape[1]} label columns but {len(self.attribute_names)} "
                            f"attribute names")
        self.labels = self.labels.float()
        if not ((self.labels == 0) | (self.labels == 1)).all():
            odd = self.labels[(self.labels != 0) & (self.labels != 1)].unique()[:5].tolist()
            raise DataError(f"labels must be 0 or 1, found {odd}; for CelebA's -1/1 use "
                            f"(labels > 0).float() or as_attribute_images()")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    @property
    def num_attributes(self) -> int:
        return self.labels.shape[1]

    def select_attributes(self, names: Sequence[str]) -> AttributeImages:
        """Keep only the named attributes, in the given order."""
        columns = attribute_indices(names, self.attribute_names)
        return AttributeImages(self.images, self.labels[:, columns], tuple(names))

    def subset(self, count: int) -> AttributeImages:
        """The first ``count`` images (all of them if there are fewer)."""
        return AttributeImages(self.images[:count], self.labels[:count], self.attribute_names)

    def fingerprint(self) -> dict:
        """What a checkpoint records of its training data: the attribute names, the count and a
        digest of the labels and of sampled images (which tells another source, split, subset
        or attribute order apart), so that resuming on other data is an error (chapter 5)."""
        return {"attributes": list(self.attribute_names), "count": len(self),
                "image_size": self.image_size,
                "digest": content_fingerprint(self.images, self.labels)}

    def attribute_vector(self, **values: int) -> Tensor:
        """A label vector with the named attributes set, e.g. ``attribute_vector(Smiling=1)``."""
        vector = torch.zeros(self.num_attributes)
        for name, value in values.items():
            vector[attribute_indices([name], self.attribute_names)[0]] = float(value)
        return vector


def sample_digest(images: Tensor) -> str:
    """A hash of up to 256 evenly spaced images: cheap enough to check on every open, and it
    tells a set of images whose bytes were zeroed or replaced from the one it was taken of."""
    if not len(images):
        return fingerprint([])
    rows = torch.linspace(0, len(images) - 1, min(len(images), 256)).long().unique()
    return fingerprint(images[int(row)].contiguous().numpy().tobytes() for row in rows)


def content_fingerprint(images: Tensor, labels: Tensor | None = None, length: int = 16) -> str:
    """The package's one fingerprint of a data set's content: a hash of its labels (when given,
    as float32) and of :func:`sample_digest`'s images. Checkpoints record it (training data) and
    the evaluation keys its caches by it (the classifier's data, the real statistics)."""
    chunks = [] if labels is None else [labels.float().contiguous().numpy().tobytes()]
    return fingerprint(chunks + [sample_digest(images).encode()], length)


def attribute_indices(names: Sequence[str], valid_names: Sequence[str]) -> list:
    """Column indices of ``names``; an unknown name is an error listing the valid ones."""
    if isinstance(names, str):
        raise TypeError(f"attribute names must be a list of strings, got the string {names!r}; "
                        f"write [{names!r}]")
    unknown = [name for name in names if name not in valid_names]
    if unknown:
        raise DataError(f"unknown attribute name(s) {unknown}; valid names are: "
                        f"{', '.join(valid_names)}")
    return [list(valid_names).index(name) for name in names]


def to_float(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [0, 1]."""
    return images.float().div_(255)


def to_uint8(images: Tensor) -> Tensor:
    """float [0, 1] -> uint8, rounding as image files do (FID compares quantised images)."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8)
