"""Claims: a false claim stops a strict chapter with the statement and what to do, and a
non-strict one prints one line and runs on; a true claim says nothing either way."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cvae_tutorial import study
from cvae_tutorial.claims import ClaimError, Claims

ROOT = Path(__file__).resolve().parents[1]
STATEMENT = "the σ-CVAE reconstructs the test faces with a lower MSE than the gaussian model"


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("holds", [True, 1, np.bool_(True), torch.tensor(True),
                                   torch.tensor(2.0) > 1])
def test_a_true_claim_returns_true_and_prints_nothing(strict, holds, capsys):
    assert Claims(strict)(holds, STATEMENT) is True
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("holds", [False, 0, np.bool_(False), torch.tensor(False),
                                   torch.tensor(2.0) < 1])
def test_a_false_claim_stops_a_strict_chapter(holds, capsys):
    with pytest.raises(ClaimError) as raised:
        Claims(strict=True)(holds, STATEMENT)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(STATEMENT)
    assert "does not hold at these parameters" in message
    assert "default parameters" in message and "check_claims=False" in message
    assert capsys.readouterr() == ("", "")


def test_a_claim_error_is_an_assertion_error():
    """What a plain assert raised before, so code that caught that still catches this."""
    assert issubclass(ClaimError, AssertionError)


def test_strict_is_the_default():
    with pytest.raises(ClaimError):
        Claims()(False, STATEMENT)


@pytest.mark.parametrize("holds", [False, 0, np.bool_(False), torch.tensor(False)])
def test_a_false_claim_prints_one_line_and_runs_on_when_not_strict(holds, capsys):
    assert Claims(strict=False)(holds, STATEMENT) is False
    printed = capsys.readouterr()
    assert printed.out == f"does not hold at these parameters: {STATEMENT}\n"
    assert printed.err == ""


def test_each_false_claim_prints_its_own_line(capsys):
    claim = Claims(False)
    results = [claim(False, "first"), claim(True, "second"), claim(False, "third")]
    assert results == [False, True, False]
    assert capsys.readouterr().out.splitlines() == [
        "does not hold at these parameters: first", "does not hold at these parameters: third"]


@pytest.mark.parametrize("strict", ["False", 0, None, np.bool_(False)])
def test_check_claims_must_be_a_bool(strict):
    """papermill's -p check_claims False arrives as a bool; a string "False" would be truthy
    and check every claim while saying it does not."""
    with pytest.raises(TypeError, match="check_claims"):
        Claims(strict)


@pytest.mark.parametrize("statement", ["", "  ", None, 3])
def test_a_claim_needs_a_statement(statement):
    with pytest.raises(TypeError, match="statement"):
        Claims(False)(True, statement)


def test_a_claim_with_an_ambiguous_condition_raises():
    """Several values are no one verdict: the chapter must say .all() or .any()."""
    with pytest.raises(RuntimeError):
        Claims(False)(torch.tensor([True, False]), STATEMENT)


def test_claims_decide_no_number():
    """The study's code digest leaves claims.py out: rewording a claim does not flag the
    measured results as made by other code."""
    assert "claims.py" in study.NOT_DIGESTED


def test_claims_do_not_change_the_code_digest(tmp_path):
    package = tmp_path / "package"
    package.mkdir()
    (package / "losses.py").write_text("x = 1\n")
    (package / "claims.py").write_text("y = 1\n")
    before = study.code_digest(package)
    (package / "claims.py").write_text("y = 2\n")
    assert study.code_digest(package) == before
    (package / "losses.py").write_text("x = 2\n")
    assert study.code_digest(package) != before


def chapter_code(path: Path) -> list:
    cells = json.loads(path.read_text())["cells"]
    return [("".join(c["source"]), c["metadata"].get("tags", [])) for c in cells
            if c["cell_type"] == "code"]


CLAIMING = sorted(path for path in (ROOT / "book").glob("*.ipynb")
                  if any(re.search(r"^\s*claim\(", source, re.M)
                         for source, _ in chapter_code(path)))


def test_some_chapters_make_claims():
    assert len(CLAIMING) >= 3


@pytest.mark.parametrize("path", CLAIMING, ids=lambda p: p.stem)
def test_a_chapter_that_claims_has_the_parameter_and_creates_its_claims(path):
    cells = chapter_code(path)
    parameters = [source for source, tags in cells if "parameters" in tags]
    assert len(parameters) == 1
    assert re.search(r"^check_claims: bool = True\b", parameters[0], re.M), \
        f"{path.name}: no 'check_claims: bool = True' in the parameters cell"
    assert any("claim = Claims(check_claims)" in source for source, _ in cells), \
        f"{path.name}: no 'claim = Claims(check_claims)'"
