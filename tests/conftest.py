"""Shared fixtures: small embedded datasets and a fake CelebA folder written on the fly."""
import pytest
import torch

from cvae_tutorial.benchmarks.celeba_folder import write_celeba_folder

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def faces32():
    from cvae_tutorial import embedded_faces
    return embedded_faces("train", 32, num_images=1024), embedded_faces("test", 32, num_images=256)


@pytest.fixture(scope="session")
def faces16():
    from cvae_tutorial import embedded_faces
    return embedded_faces("train", 16, num_images=256), embedded_faces("test", 16, num_images=64)


@pytest.fixture
def fake_celeba(tmp_path):
    """A CelebA folder of 9 images: 4 train, 2 valid, 3 test; returns (root, {0, 1} labels)."""
    labels = write_celeba_folder(tmp_path, partitions=(0, 0, 0, 0, 1, 1, 2, 2, 2))
    return tmp_path, labels
