"""The data layer: every dataset as :class:`AttributeImages` (uint8 images, {0, 1} labels).

``images`` (the container), ``faces`` (the embedded procedural faces), ``celeba`` (CelebA),
``folder`` (your own images: a CSV of attributes, or class subfolders), ``cache`` (decode any
dataset once), ``batches`` (the index batches and device batches that training and evaluation
draw).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from .batches import epoch_batches, flip_mask, iterate_batches, load_batch
from .cache import as_attribute_images, build_image_cache, dataset_source
from .celeba import (CELEBA_ATTRIBUTES, CelebAJPEGs, download_celeba, load_celeba,
                     read_celeba_annotations)
from .folder import FOLDER_KINDS, load_image_folder
from .faces import FACE_ATTRIBUTES, embedded_faces, face_parameters, render_faces
from .images import AttributeImages, DataError, attribute_indices, to_float, to_uint8


__all__ = ["as_attribute_images", "attribute_indices", "AttributeImages", "build_image_cache",
           "CELEBA_ATTRIBUTES", "CelebAJPEGs", "DataError", "dataset_source", "download_celeba",
           "embedded_faces", "epoch_batches", "FACE_ATTRIBUTES", "face_parameters", "flip_mask",
           "iterate_batches", "load_batch", "load_celeba", "load_dataset", "load_image_folder",
           "read_celeba_annotations", "render_faces", "to_float", "to_uint8"]


def load_dataset(name: str = "embedded", split: str = "train", image_size: int = 32,
                 data_dir: str | os.PathLike | None = None,
                 attributes: Sequence[str] | None = None, num_images: int | None = None,
                 seed: int = 0, num_workers: int | None = None,
                 on_error: str = "stop",
                 cache_dir: str | os.PathLike | None = None) -> AttributeImages:
    """One entry point for the notebooks: ``name`` is 'embedded', 'celeba', or for your own
    images in ``data_dir`` 'folder' (with attributes.csv) or 'classes' (class subfolders).

    ``num_workers``, ``on_error`` and ``cache_dir`` concern the cache of the image files (see
    :func:`load_celeba`, :func:`load_image_folder`)."""
    if name == "embedded":
        return embedded_faces(split, image_size, num_images, seed, attributes)
    if name == "celeba":
        if data_dir is None:
            raise DataError("dataset 'celeba' needs data_dir, the folder that holds celeba/")
        data = load_celeba(data_dir, split, image_size, attributes, cache_dir=cache_dir,
                           num_workers=num_workers, on_error=on_error)
        return _first(data, num_images, split)
    if name in FOLDER_KINDS:
        if data_dir is None:
            raise DataError(f"dataset {name!r} needs data_dir, the folder of your images")
        data = load_image_folder(data_dir, name, split, image_size, attributes, cache_dir,
                                 num_workers, on_error)
        return _first(data, num_images, split)
    raise DataError(f"unknown dataset {name!r}; use 'embedded', 'celeba', 'folder' or "
                    f"'classes'")


def _first(data: AttributeImages, num_images: int | None, split: str) -> AttributeImages:
    """The first ``num_images`` images; asking for more than the split holds is said."""
    if num_images is not None and num_images > len(data):
        warnings.warn(f"num_images={num_images} (--num-images) is more than the {len(data)} "
                      f"images of the {split} split; using all {len(data)}", stacklevel=3)
    return data.subset(num_images) if num_images is not None else data
