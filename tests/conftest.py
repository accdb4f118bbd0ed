"""Shared fixtures: small embedded datasets, a fake CelebA folder written on the fly, and the
chapters' runs (started in the background when a selected test reads them)."""
import shutil

import pytest
import torch

from chapter_runs import TEST_BOOK, TIMES, ChapterRuns, build_test_book
from cvae_tutorial.benchmarks.celeba_folder import write_celeba_folder

THREADS = 2  # the machine's two cores
torch.set_num_threads(THREADS)

# The quick loop, `pytest -m "not slow"`, leaves out what builds or executes the book (the
# tests of the built pages, the determinism and papermill runs of every chapter, and the
# notebooks under nbval when `pytest book/` asks for them) and the few unit tests marked slow
# where they are defined.
SLOW_MODULES = {"test_determinism.py", "test_chapter5_papermill.py", "test_strokes.py"}
SLOW_FIXTURES = {"built_book", "chapter_runs"}


def _reads_the_chapter_runs(item) -> bool:
    return bool(SLOW_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.suffix == ".ipynb" or item.path.name in SLOW_MODULES or \
                _reads_the_chapter_runs(item):
            item.add_marker(pytest.mark.slow)
    # the tests that read the chapter runs go last, so the unit tests run while they execute
    items.sort(key=_reads_the_chapter_runs)


BACKGROUND = {}  # the session's ChapterRuns, when a selected test reads them


def pytest_collection_finish(session):
    if not session.config.option.collectonly and any(map(_reads_the_chapter_runs,
                                                         session.items)):
        shutil.rmtree(TEST_BOOK, ignore_errors=True)
        BACKGROUND["runs"] = ChapterRuns(TEST_BOOK / "runs")
        # its two workers hold a core each: meanwhile the unit tests, and the kernels and
        # commands they start, take one thread (a team of two beside them would wait at every
        # parallel step for a core to come free)
        torch.set_num_threads(1)
        BACKGROUND["env"] = pytest.MonkeyPatch()
        BACKGROUND["env"].setenv("OMP_NUM_THREADS", "1")


def pytest_sessionfinish():
    if "runs" in BACKGROUND:
        BACKGROUND.pop("runs").stop()


@pytest.fixture(scope="session")
def chapter_runs():
    """Every notebook executed twice at a small size (tests/chapter_runs.py), once per session:
    {(notebook, 1 or 2): Run}; the runs stay in _build/test_book/runs for a person to open."""
    runs = BACKGROUND["runs"].results()
    torch.set_num_threads(THREADS)  # the cores are free again
    BACKGROUND.pop("env").undo()
    return runs


@pytest.fixture(scope="session")
def built_book(chapter_runs):
    """The HTML folder of the test book (tests/chapter_runs.py: build_test_book)."""
    return build_test_book(chapter_runs)


@pytest.fixture(scope="session")
def faces32():
    from cvae_tutorial import embedded_faces
    return embedded_faces("train", 32, num_images=1024), embedded_faces("test", 32, num_images=256)


@pytest.fixture(scope="session")
def tiny_faces():
    """128 training and 32 test faces at 16 px: the runs that are checked, not measured."""
    from cvae_tutorial import embedded_faces
    return embedded_faces("train", 16, num_images=128), embedded_faces("test", 16, num_images=32)


@pytest.fixture(scope="session")
def faces16():
    from cvae_tutorial import embedded_faces
    return embedded_faces("train", 16, num_images=256), embedded_faces("test", 16, num_images=64)


@pytest.fixture
def fake_celeba(tmp_path):
    """A CelebA folder of 9 images: 4 train, 2 valid, 3 test; returns (root, {0, 1} labels)."""
    labels = write_celeba_folder(tmp_path, partitions=(0, 0, 0, 0, 1, 1, 2, 2, 2))
    return tmp_path, labels


def pytest_terminal_summary(terminalreporter):
    if TIMES:
        terminalreporter.section("the chapters and the test book")
        terminalreporter.write("".join(f"{what}: {seconds:.0f} s\n"
                                       for what, seconds in TIMES.items()))
