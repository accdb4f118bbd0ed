"""Shared fixtures: small embedded datasets and a fake CelebA folder written on the fly."""
import time
from pathlib import Path

import pytest
import torch

from cvae_tutorial.benchmarks.celeba_folder import write_celeba_folder

torch.set_num_threads(2)

# The quick loop, `pytest -m "not slow"`, leaves out what builds or executes the book (the
# tests of the built pages, the determinism and papermill runs of every chapter, and the
# notebooks under nbval when `pytest book/` asks for them) and the few unit tests marked slow
# where they are defined.
SLOW_MODULES = {"test_determinism.py", "test_chapter5_papermill.py", "test_strokes.py"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.suffix == ".ipynb" or item.path.name in SLOW_MODULES or \
                "built_book" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


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


STARTED = time.time()


def pytest_terminal_summary(terminalreporter):
    """The book build's time and each chapter's, when this session built the book."""
    report = Path(__file__).resolve().parents[1] / "_build" / "build_times.txt"
    if report.exists() and report.stat().st_mtime >= STARTED:
        terminalreporter.section("book build")
        terminalreporter.write(report.read_text())
