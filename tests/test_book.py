"""The book: notebooks committed clean, one parameters cell each, and the HTML build has it all.

The HTML tests read the test book: every page as executed at a small size by this session's
first run of it (tests/chapter_runs.py), built with `jupyter-book build`. The reader's book, at
the default sizes, is built by `jupyter-book build .` (the README's first command, which CI runs
before the tests): a failing cell or a claim that does not hold fails that build
(test_a_failing_cell_fails_the_build). `pytest book/` runs the chapters under nbval.
"""
import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chapter_runs import NOTEBOOKS, jupyter_book

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [page for page in NOTEBOOKS if Path(page).name[:2].isdigit()]


def notebook(chapter):
    return json.loads((ROOT / f"{chapter}.ipynb").read_text())


def test_seven_chapters_in_the_table_of_contents():
    assert len(CHAPTERS) == 7
    for chapter in CHAPTERS:
        assert (ROOT / f"{chapter}.ipynb").exists(), f"{chapter}.ipynb is in _toc.yml but missing"


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(chapter):
    for cell in notebook(chapter)["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{chapter}.ipynb has stale outputs: clear them (the build regenerates them)")


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_notebook_is_valid_nbformat_with_cell_ids(chapter):
    import nbformat

    nbformat.validate(nbformat.reads(json.dumps(notebook(chapter)), as_version=4))
    assert all("id" in cell for cell in notebook(chapter)["cells"]), \
        f"{chapter}.ipynb has cells without ids (nbformat 4.5): run nbformat's normalize"


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_notebook_has_exactly_one_parameters_cell(chapter):
    tagged = [cell for cell in notebook(chapter)["cells"]
              if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page_has_figures_and_math(built_book, chapter):
    page = (built_book / f"{chapter}.html").read_text()
    assert "<img" in page, f"{chapter}: no figure in the built page"
    assert re.search(r'class="math notranslate nohighlight"', page), f"{chapter}: no math"
    scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', page)
    assert any(src.split("?")[0].endswith("_static/mathjax/tex-chtml.js") for src in scripts), \
        f"{chapter}: MathJax is not loaded from the book's own _static folder"
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    remote = [src for src in scripts if re.match(r"(https?:)?//", src)]
    assert not remote, f"{chapter}: scripts from the network: {remote}"
    assert "output traceback" not in page and "Traceback (most recent call last)" not in page, \
        f"{chapter}: the page shows an error"


def test_intro_and_references_are_built(built_book):
    assert "Conditional VAEs with a normalizing-flow prior" in (built_book / "book" /
                                                                 "intro.html").read_text()
    references = (built_book / "book" / "bibliography.html").read_text()
    assert "Rybkin" in references and "Dinh" in references
    scale = re.sub(r"<[^>]+>", "", (built_book / "book" / "running_at_scale.html").read_text())
    for command in ("papermill book/05_celeba_training.ipynb", "torchrun --nproc_per_node",
                    "python -m cvae_tutorial.study",
                    "python -m cvae_tutorial.benchmarks rehearsal"):
        assert command in scale, f"running_at_scale.html lacks {command!r}"
    # chapter 5 sends its reader there instead of holding the commands itself
    assert 'href="running_at_scale.html"' in (built_book / "book" /
                                              "05_celeba_training.html").read_text()


def test_a_failing_cell_fails_the_build(tmp_path):
    """raise_on_error in _config.yml: a broken chapter cannot produce a green build."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", tmp_path / "book" / "references.bib")
    shutil.copytree(ROOT / "book" / "_ext", tmp_path / "book" / "_ext")  # local MathJax
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: broken\n")
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# Broken"},
             {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
              "source": "raise RuntimeError('this cell fails')"}]
    (tmp_path / "broken.ipynb").write_text(json.dumps({
        "cells": cells, "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}}}))
    result = subprocess.run([jupyter_book(), "build", str(tmp_path)], capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert "this cell fails" in result.stdout + result.stderr


def _annotation_accepts(annotation, value):
    """Whether a parameter's default fits its annotation (int, Optional[str], list[str], ...)."""
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "Optional":
        return value is None or _annotation_accepts(annotation.slice, value)
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "list":
        return isinstance(value, list) and all(_annotation_accepts(annotation.slice, v)
                                               for v in value)
    expected = {"int": int, "float": float, "str": str, "bool": bool}[ast.unparse(annotation)]
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected) and (expected is not int or not isinstance(value, bool))


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_papermill_sees_every_parameter_with_its_type(chapter):
    """`papermill --help-notebook` lists each assignment of the parameters cell with a type.

    Papermill reads types from annotations (`image_size: int = 32`) and skips a line it cannot
    parse (e.g. one with a second `=` in its comment), so `-p name value` would then be
    reported as an unknown parameter.
    """
    import papermill

    cell = next(cell for cell in notebook(chapter)["cells"]
                if "parameters" in cell.get("metadata", {}).get("tags", []))
    assignments = [node for node in ast.parse("".join(cell["source"])).body
                   if isinstance(node, (ast.Assign, ast.AnnAssign))]
    inspected = papermill.inspect_notebook(str(ROOT / f"{chapter}.ipynb"))
    for node in assignments:
        name = ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node.target)
        assert isinstance(node, ast.AnnAssign), \
            f"{chapter}: parameter {name} has no type annotation (write `{name}: int = ...`)"
        assert name in inspected, f"{chapter}: papermill cannot parse the line of {name}"
        assert inspected[name]["inferred_type_name"] == ast.unparse(node.annotation), \
            f"{chapter}: papermill reads {name}'s type as {inspected[name]['inferred_type_name']}"
        assert _annotation_accepts(node.annotation, ast.literal_eval(node.value)), \
            f"{chapter}: {name}'s default {ast.unparse(node.value)} is not a " \
            f"{ast.unparse(node.annotation)}"
    assert len(inspected) == len(assignments)


def test_jupyterlab_renders_myst():
    """jupyterlab-myst shows {cite} and other roles rendered in JupyterLab; an extension built
    against another JupyterLab is listed but not loaded (marked X instead of OK)."""
    result = subprocess.run([str(Path(sys.executable).parent / "jupyter"), "labextension", "list"],
                            capture_output=True, text=True)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # no colours
    line = next((line for line in listing.splitlines() if "jupyterlab-myst v" in line), None)
    assert line is not None, "jupyterlab-myst is not installed: pip install -r requirements.txt"
    assert re.search(r"jupyterlab-myst v\S+ enabled\s+OK", line), \
        f"jupyterlab-myst does not load in this JupyterLab: {line.strip()}"


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_code_fits_the_page_column(chapter):
    """Code cells at most 88 columns: longer lines scroll sideways in the HTML column."""
    for cell in notebook(chapter)["cells"]:
        if cell["cell_type"] == "code":
            for line in "".join(cell["source"]).splitlines():
                assert len(line) <= 88, f"{chapter}, cell {cell['id']}: {len(line)} columns: {line}"


def _displays(statement) -> bool:
    """A cell's last statement shows its value under the cell: an expression that is not a
    call of print, display or plt.show."""
    if not isinstance(statement, ast.Expr):
        return False
    call = statement.value
    name = getattr(call.func, "attr", getattr(call.func, "id", None)) if isinstance(
        call, ast.Call) else None
    return name not in ("print", "display", "show")


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_a_cell_hidden_from_the_page_shows_nothing_under_it(chapter):
    """A cell whose input the page hides (the checks of the text's claims) must not leave a
    bare value such as the True a claim returns: the page would show it with nothing above."""
    for cell in notebook(chapter)["cells"]:
        if "remove-input" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]).rstrip()
            statements = ast.parse(source).body
            assert source.endswith(";") or not _displays(statements[-1]), (
                f"{chapter}, cell {cell['id']}: its last line's value would show on the page "
                "under a hidden cell; end it with ';'")
