"""A CelebA folder in torchvision's layout, written on the fly: the training benchmark decodes
it, and the tests use it in place of the real dataset (which needs a download)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.celeba import CELEBA_ATTRIBUTES
from ..data.faces import face_parameters, render_faces


def write_celeba_folder(root: str | os.PathLike, partitions, seed: int = 0) -> np.ndarray:
    """``root/celeba`` with one 178x218 JPEG per entry of ``partitions`` (each entry the image's
    official split: 0 train, 1 valid, 2 test) and the two label files. Returns the {0, 1} label
    matrix written (one row per image, in file order).

    The pictures are embedded faces drawn at 224 px with photo-like grain, so a JPEG costs about
    what a CelebA one does to decode (smooth regions, edges, noise), not what pure noise costs.
    """
    folder = Path(root) / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"{i + 1:06d}.jpg" for i in range(len(partitions))]
    labels = rng.integers(0, 2, size=(len(names), len(CELEBA_ATTRIBUTES)))
    for start in range(0, len(names), 64):
        count = min(64, len(names) - start)
        small = render_faces(*face_parameters(range(start, start + count), seed), 64)
        large = torch.nn.functional.interpolate(small.float(), size=224, mode="bilinear",
                                                align_corners=False)
        large = large[:, :, 3:221, 23:201].permute(0, 2, 3, 1).numpy()
        large = np.clip(large + rng.normal(0, 4, large.shape), 0, 255).astype(np.uint8)
        for name, pixels in zip(names[start:start + count], large):
            Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=95)
    rows = [f"{name} " + " ".join("1" if v else "-1" for v in row)
            for name, row in zip(names, labels)]
    (folder / "list_attr_celeba.txt").write_text(
        f"{len(names)}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n" + "\n".join(rows) + "\n")
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{name} {part}\n" for name, part in zip(names, partitions)))
    return labels
