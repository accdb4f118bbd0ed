"""Shared fixtures: small embedded datasets and a fake CelebA folder written on the fly."""
import numpy as np
import pytest
import torch
from PIL import Image

from cvae_tutorial.data import CELEBA_ATTRIBUTES

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def faces32():
    from cvae_tutorial import embedded_faces
    return embedded_faces("train", 32, num_images=1024), embedded_faces("test", 32, num_images=256)


def write_fake_celeba(root, partitions=(0, 0, 0, 0, 1, 1, 2, 2, 2), seed=0):
    """A tiny CelebA in torchvision's layout: 178x218 JPEGs plus the two label files.

    Returns the {0,1} label matrix written (one row per image, in file order).
    """
    rng = np.random.default_rng(seed)
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(partitions))]
    labels = rng.integers(0, 2, size=(len(names), len(CELEBA_ATTRIBUTES)))
    for name in names:
        pixels = rng.integers(0, 256, size=(218, 178, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=90)
    rows = [f"{name} " + " ".join("1" if v else "-1" for v in row)
            for name, row in zip(names, labels)]
    (folder / "list_attr_celeba.txt").write_text(
        f"{len(names)}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n" + "\n".join(rows) + "\n")
    (folder / "list_eval_partition.txt").write_text(
        "\n".join(f"{name} {part}" for name, part in zip(names, partitions)) + "\n")
    return labels


@pytest.fixture
def fake_celeba(tmp_path):
    labels = write_fake_celeba(tmp_path)
    return tmp_path, labels
