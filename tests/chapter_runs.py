"""Every notebook of the book executed twice at a small size, each run in a fresh folder and a
fresh kernel, two at a time: the test command's only executions of the chapters.

The determinism test compares the two runs of each notebook; the first runs are the pages of the
test book (tests/test_book.py builds its HTML from them). At these sizes a chapter's claims about
its results need not hold, so they are printed rather than raised (`check_claims=False`); at the
default sizes they are checked by `jupyter-book build .`, the README's first command, which CI
runs too.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
# Every notebook page of the book, as _toc.yml names it (e.g. "book/02_sigma_vae")
NOTEBOOKS = [entry["file"] for entry in TOC["chapters"]
             if (ROOT / f"{entry['file']}.ipynb").exists()]
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
    "embedded_faces": dict(),
}
TIMING = re.compile(r"\b\d+(\.\d+)? s\b")  # "12.3 s": wall-clock, allowed to differ
CELL = re.compile(r"(?<!\\)\|")  # a Markdown table's column bar (not an escaped "\|")
TEST_BOOK = ROOT / "_build" / "test_book"  # runs/ (the executions), site/ (the test book)
TIMES = {}  # seconds of this session's chapter runs and test-book build, said at its end


@dataclass
class Run:
    notebook: str       # as _toc.yml names it
    output: Path        # the executed notebook
    error: str | None   # the failing cell's exception, if one failed


def parameters(notebook: str) -> dict:
    import papermill

    small = dict(SMALL[Path(notebook).name])
    if "check_claims" in papermill.inspect_notebook(str(ROOT / f"{notebook}.ipynb")):
        small["check_claims"] = False  # a notebook that states claims about its results
    return small


def _execute(notebook: str, folder: Path) -> Run:
    import papermill

    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{Path(notebook).name}.ipynb"
    try:
        papermill.execute_notebook(str(ROOT / f"{notebook}.ipynb"), str(output),
                                   parameters=parameters(notebook), cwd=str(folder),
                                   progress_bar=False, kernel_name="python3")
    except papermill.PapermillExecutionError as error:
        return Run(notebook, output, f"{error.ename}: {error.evalue}")
    return Run(notebook, output, None)


def _one_thread():
    # two kernels share the two cores: one torch thread each (both runs alike, so the
    # reduction order, and every printed number, is the same in both)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"


class ChapterRuns:
    """Every notebook twice, in folder/first/<name> and folder/second/<name>, the slowest first
    so that the workers finish together; started at once, in the background (the unit tests
    run meanwhile), :meth:`results` waits for them: {(notebook, 1 or 2): Run}."""

    def __init__(self, folder: Path, workers: int = 2):
        slowest_first = sorted(NOTEBOOKS, key=lambda n: -_RELATIVE_COST.get(Path(n).name, 1))
        self.started = time.perf_counter()
        self.pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                        initializer=_one_thread)
        self.futures = {(notebook, run): self.pool.submit(
            _execute, notebook, folder / ("first", "second")[run - 1] / Path(notebook).name)
            for notebook in slowest_first for run in (1, 2)}

    def results(self) -> dict:
        runs = {job: future.result() for job, future in self.futures.items()}
        TIMES.setdefault("chapter runs (from the session's start, beside the unit tests)",
                         time.perf_counter() - self.started)
        return runs

    def stop(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# seconds of one small run, measured: scheduling the long ones first
_RELATIVE_COST = {"06_fid_evaluation": 17, "04_cvae_flow_prior": 15, "05_celeba_training": 11,
                  "07_using_the_model": 11, "02_sigma_vae": 10, "03_real_nvp": 9}


def printed_text(notebook_path: Path) -> list:
    """Per code cell, what it printed to stdout and its text results, timings masked (joined:
    how the kernel splits a cell's stdout into stream messages varies from run to run)."""
    cells = json.loads(Path(notebook_path).read_text())["cells"]
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
            printed.append((index, without_timings("".join(texts))))
    return printed


def without_timings(text: str) -> str:
    """``text`` with its wall-clock times masked: "12.3 s", and the cells of a Markdown table's
    columns headed in seconds ("training (s)")."""
    lines, seconds = TIMING.sub("<time> s", text).split("\n"), set()
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        cells = CELL.split(line)
        if i == 0 or not lines[i - 1].startswith("|"):  # a table's header
            seconds = {j for j, cell in enumerate(cells) if cell.strip().endswith("(s)")}
        elif seconds and not set(line) <= set("|-: "):  # a row, not the rule under the header
            lines[i] = "|".join("<time>" if j in seconds else cell
                                for j, cell in enumerate(cells))
    return "\n".join(lines)


def jupyter_book() -> str:
    return shutil.which("jupyter-book") or str(Path(sys.executable).parent / "jupyter-book")


def build_test_book(runs: dict) -> Path:
    """The test book: every page as its first small run executed it, built by Jupyter Book
    with execution off, in TEST_BOOK/site; returns the HTML folder. (`jupyter-book build .`
    builds the reader's book, at the default sizes.)"""
    site = TEST_BOOK / "site"
    shutil.copytree(ROOT / "book", site / "book", ignore=shutil.ignore_patterns(
        "runs", "__pycache__", ".ipynb_checkpoints", "*.ipynb"))
    shutil.copy(ROOT / "_toc.yml", site / "_toc.yml")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"  # executed already, at the small size
    (site / "_config.yml").write_text(yaml.safe_dump(config))
    for page in NOTEBOOKS:
        shutil.copy(runs[page, 1].output, site / f"{page}.ipynb")
    started = time.perf_counter()
    result = subprocess.run([jupyter_book(), "build", str(site)], cwd=site,
                            capture_output=True, text=True)
    TIMES["test book build (HTML only)"] = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{result.stdout[-5000:]}\n"
                           f"{result.stderr[-5000:]}")
    return site / "_build" / "html"
