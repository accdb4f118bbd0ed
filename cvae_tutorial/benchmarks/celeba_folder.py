"""A CelebA folder in torchvision's layout, written on the fly: the training benchmark decodes
it, the rehearsal trains on a CelebA-sized one, and the tests use it in place of the real dataset
(which needs a download)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..config import check_int
from ..data.celeba import CELEBA_ATTRIBUTES
from ..data.faces import face_parameters, render_faces

CELEBA_SPLIT_SIZES = (162_770, 19_867, 19_962)  # the official train / valid / test split
BLOCK = 64  # images rendered together; each block has its own noise, so workers may share them


def official_partitions(num_images: int) -> list:
    """Split indices (0 train, 1 valid, 2 test) for ``num_images`` images in CelebA's official
    proportions and order (contiguous: train, then valid, then test); exactly the official split
    for 202,599 images."""
    check_int("num_images", num_images, 3)
    total = sum(CELEBA_SPLIT_SIZES)
    train = max(1, round(num_images * CELEBA_SPLIT_SIZES[0] / total))
    valid = max(1, round(num_images * CELEBA_SPLIT_SIZES[1] / total))
    test = num_images - train - valid
    if test < 1:
        train -= 1 - test
        test = 1
    return [0] * train + [1] * valid + [2] * test


class _FaceBlocks(torch.utils.data.Dataset):
    """Item ``i`` renders and writes block ``i`` of the JPEGs (in a DataLoader worker process)
    and returns how many it wrote."""

    def __init__(self, folder: Path, names: list, seed: int):
        self.folder, self.names, self.seed = folder, names, seed

    def __len__(self) -> int:
        return -(-len(self.names) // BLOCK)

    def __getitem__(self, block: int) -> int:
        start = block * BLOCK
        names = self.names[start:start + BLOCK]
        rng = np.random.default_rng([self.seed, block])
        small = render_faces(*face_parameters(range(start, start + len(names)), self.seed), 64)
        large = torch.nn.functional.interpolate(small.float(), size=224, mode="bilinear",
                                                align_corners=False)
        large = large[:, :, 3:221, 23:201].permute(0, 2, 3, 1).numpy()
        large = np.clip(large + rng.normal(0, 4, large.shape), 0, 255).astype(np.uint8)
        for name, pixels in zip(names, large):
            Image.fromarray(pixels).save(self.folder / name, quality=95)
        return len(names)


def write_celeba_folder(root: str | os.PathLike, partitions, seed: int = 0, num_workers: int = 0,
                        progress: bool = False) -> np.ndarray:
    """``root/celeba`` with one 178x218 JPEG per entry of ``partitions`` (each entry the image's
    official split: 0 train, 1 valid, 2 test) and the two label files. Returns the {0, 1} label
    matrix written (one row per image, in file order).

    The pictures are embedded faces drawn at 224 px with photo-like grain, so a JPEG costs about
    what a CelebA one does to decode (smooth regions, edges, noise), not what pure noise costs.
    ``num_workers`` processes write blocks of 64 in parallel; the files do not depend on it.
    """
    check_int("num_workers", num_workers, 0)
    folder = Path(root) / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(partitions))]
    labels = np.random.default_rng(seed).integers(0, 2, size=(len(names), len(CELEBA_ATTRIBUTES)))
    blocks = _FaceBlocks(folder / "img_align_celeba", names, seed)
    loader = torch.utils.data.DataLoader(blocks, batch_size=None, num_workers=num_workers)
    with tqdm(total=len(names), desc=f"writing {len(names)} JPEGs", unit="img",
              disable=not progress) as bar:
        for written in loader:
            bar.update(int(written))
    rows = [f"{name} " + " ".join("1" if v else "-1" for v in row)
            for name, row in zip(names, labels)]
    (folder / "list_attr_celeba.txt").write_text(
        f"{len(names)}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n" + "\n".join(rows) + "\n")
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{name} {part}\n" for name, part in zip(names, partitions)))
    return labels
