"""Every chapter is a function of its parameters: two executions in separate kernels print the
same numbers (wall-clock timings aside).

Each chapter runs twice at a small size, each time in its own fresh working folder (so nothing
cached by the first run is reused by the second, and the printed relative paths agree). The
comparison covers everything a chapter prints or displays as text, including an error, if a small
size makes a result check fail: determinism is the property tested here; the claims themselves are
checked at the chapters' default sizes by the book build (tests/test_book.py).
"""
import json
import re
from pathlib import Path

import pytest

papermill = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "01_elbo": dict(num_samples=2000, num_random_encoders=5),
    "02_sigma_vae": dict(image_size=16, num_train_images=512, num_test_images=64, latent_dim=4,
                         epochs=1, out_dir="runs/02"),
    "03_real_nvp": dict(num_points=512, steps=200),
    "04_cvae_flow_prior": dict(image_size=16, train_images=512, test_images=128, latent_dim=4,
                               epochs=1, mc_samples=2000, classifier_epochs=1, out_dir="runs/04"),
    "05_celeba_training": dict(image_size=16, latent_dim=4, epochs=1, batch_size=32,
                               train_images=256, test_images=64, out_dir="runs/05",
                               seeds=[0, 1]),
    "06_fid_evaluation": dict(run_dir="runs/none", standalone_dir="runs/06", standalone_epochs=1,
                              train_images=256, test_images=64, num_samples=64, iw_samples=4,
                              likelihood_images=16, classifier_epochs=1, latent_dim=4,
                              seeds=[0, 1],
                              ladder_dir=str(ROOT / "book" / "results" / "ladder")),
    "07_using_the_model": dict(run_dir="runs/none", standalone_dir="runs/07",
                               standalone_epochs=1, train_images=256, test_images=64,
                               edit_images=32, num_samples=64, classifier_epochs=1,
                               latent_dim=4),
}
CHAPTERS = sorted(path.stem for path in (ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
TIMING = re.compile(r"\b\d+(\.\d+)? s\b")  # "12.3 s": wall-clock, allowed to differ


def printed_text(notebook_path: Path) -> list:
    """Per code cell, what it printed to stdout and its text results, timings masked (joined:
    how the kernel splits a cell's stdout into stream messages varies from run to run)."""
    cells = json.loads(notebook_path.read_text())["cells"]
    printed = []
    for index, cell in enumerate(cells):
        texts = []
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream" and output["name"] == "stdout":
                text = "".join(output["text"])
            elif output["output_type"] in ("execute_result", "display_data"):
                data = output["data"]
                text = "".join(data.get("text/markdown", data.get("text/plain", "")))
            elif output["output_type"] == "error":
                text = f"{output['ename']}: {output['evalue']}"
            else:
                continue
            texts.append(text)
        if texts:
            printed.append((index, TIMING.sub("<time> s", "".join(texts))))
    return printed


def execute(chapter: str, folder: Path) -> list:
    folder.mkdir(parents=True)
    output = folder / f"{chapter}.ipynb"
    try:
        papermill.execute_notebook(str(ROOT / "book" / f"{chapter}.ipynb"), str(output),
                                   parameters=SMALL[chapter], cwd=str(folder),
                                   progress_bar=False, kernel_name="python3")
    except papermill.PapermillExecutionError:
        pass  # compared below like any other output: both runs must fail the same way
    return printed_text(output)


def test_every_chapter_has_small_parameters():
    assert sorted(SMALL) == CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_prints_the_same_numbers_twice(chapter, tmp_path):
    first = execute(chapter, tmp_path / "first")
    second = execute(chapter, tmp_path / "second")
    assert first, f"{chapter} printed nothing"
    for (cell, a), (_, b) in zip(first, second):
        assert a == b, \
            f"{chapter}, cell {cell}: the two runs differ\n--- first\n{a}\n--- second\n{b}"
    assert len(first) == len(second)
