"""The chapters' exercise checks: right answers pass, plausible wrong ones are rejected with a
one-line nudge, None means "not answered yet", and an unknown key names the known ones."""
import math

import numpy as np
import pytest
import torch

from cvae_tutorial.exercises import EXERCISES, check

# key -> (the right answer, worked out here by hand, and a plausible wrong one)
ANSWERS = {
    "1.1": (0.5 * (0.25 - 2 * math.log(0.5)), 0.25),              # wrong: the mean term only
    "1.2": (2.0, 1.0),                                            # wrong: δ/2, not δ²/2
    "1.3": (0.5 * (3 - 2 * math.log(2)), 2 * 0.5 * (3 - 2 * math.log(2))),  # wrong: total
    "2.1": (8 + 0.5 * math.log2(2 * math.pi), 9.0),
    "2.2": (math.sqrt(0.075 / 4), 0.075 / 4),                     # wrong: σ*², not σ*
    "2.3": (math.sqrt(0.00025 * 3072 / 2), 0.00025 * 3072 / 2),   # wrong: σ², not σ
    "3.1": (24 * math.log(2), 48 * math.log(2)),                  # wrong: both halves
    "3.2": (1 / 16, 1 / 256),                                     # wrong: all 8 layers
    "3.3": (-math.log(2 * math.pi) - 1, -math.log(2 * math.pi)),
    "4.1": (-1.5, 0.5),                                           # wrong: the true KL
    "4.2": (0.49265245087, 0.0),                                  # wrong: the paper's flow
    "5.1": (4.302653, 1.96),                                      # wrong: the normal's
    "5.2": (10, 3),                                               # wrong: the book's seeds
    "6.1": (2.0, 1.0 + 1 + 2 - 2 * math.sqrt(2)),                 # wrong: σ, not σ², inside
    "6.2": (8.0, 9.0),                                            # wrong: FD_1000 itself
    "6.3": (0.5, 0.9),                                            # wrong: plain accuracy
    "7.1": (0.0, 0.1),
    "7.2": (math.sqrt(0.1875 / 256), 0.1875 / 256),               # wrong: the variance
    "7.3": (1, 16),
}


def test_every_exercise_is_tested():
    assert set(ANSWERS) == set(EXERCISES)


@pytest.mark.parametrize("key", sorted(ANSWERS))
def test_the_right_answer_passes(key, capsys):
    assert check(key, ANSWERS[key][0]) is True
    assert capsys.readouterr().out == f"Exercise {key}: right.\n"


@pytest.mark.parametrize("key", sorted(ANSWERS))
def test_a_plausible_wrong_answer_is_rejected_in_one_line(key, capsys):
    wrong = ANSWERS[key][1]
    with pytest.raises(AssertionError) as raised:
        check(key, wrong)
    message = str(raised.value)
    assert message.startswith(f"Exercise {key}: {float(wrong)!r} is not ")
    assert "\n" not in message and "; " in message  # what was checked; then the nudge
    if not float(ANSWERS[key][0]).is_integer():  # (small integers occur in any sentence)
        assert f"{ANSWERS[key][0]:.4g}" not in message  # a nudge, not the answer
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("key", sorted(ANSWERS))
def test_none_is_not_answered_yet(key, capsys):
    assert check(key, None) is False
    name = "answer_" + key.replace(".", "_")
    assert capsys.readouterr().out == (f"Exercise {key}: not answered yet — set {name} and "
                                       f"run this cell again.\n")


def test_an_unknown_key_names_the_known_ones():
    with pytest.raises(KeyError) as raised:
        check("9.9", 1.0)
    assert "9.9" in str(raised.value) and all(key in str(raised.value) for key in EXERCISES)


@pytest.mark.parametrize("answer", [torch.tensor(9.325748), np.float64(9.325748), 9.3257])
def test_one_element_tensors_and_numpy_numbers_count_as_numbers(answer):
    assert check("2.1", answer) is True


@pytest.mark.parametrize("answer", ["9.33", [9.33], torch.ones(2), True, math.nan])
def test_what_is_not_one_right_number_is_rejected(answer):
    with pytest.raises(AssertionError, match=r"^Exercise 2\.1: "):
        check("2.1", answer)


def test_the_tolerance_is_a_bound_not_a_formality():
    expected = EXERCISES["2.1"].expected()
    assert check("2.1", expected + 0.9 * EXERCISES["2.1"].tolerance)
    with pytest.raises(AssertionError):
        check("2.1", expected + 2 * EXERCISES["2.1"].tolerance)


def test_checking_leaves_the_readers_random_state_alone():
    """4.2's checker builds a flow under its own seed: the chapter's later draws do not move."""
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    check("4.2", ANSWERS["4.2"][0])
    assert torch.equal(torch.rand(3), expected)
