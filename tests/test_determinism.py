"""Every chapter is a function of its parameters: two executions in separate kernels print the
same numbers (wall-clock timings aside).

Each notebook runs twice at a small size (tests/chapter_runs.py), each time in its own fresh
working folder, so nothing cached by the first run is reused by the second and the printed
relative paths agree. The comparison covers everything a chapter prints or displays as text. At
these sizes no chapter may fail: a claim that does not hold is printed, not raised; the claims
themselves are checked at the chapters' default sizes by the book build (`jupyter-book build .`).
"""
import pytest

from chapter_runs import NOTEBOOKS, SMALL, printed_text, without_timings


def test_every_notebook_has_small_parameters():
    assert sorted(SMALL) == sorted(notebook.split("/")[-1] for notebook in NOTEBOOKS)


def test_wall_clock_times_are_masked_and_nothing_else():
    text = ("took 12.3 s, 4 steps\n"
            "| model | seeds | loss | training (s) |\n|---|---|---|---|\n"
            "| q(z\\|x) | 2 | 1.5 ± 0.1 | 7 ± 1 |\n\n| a (s) | b |\n|---|---|\n| 3 | 4 |")
    assert without_timings(text).split("\n") == [
        "took <time> s, 4 steps",
        "| model | seeds | loss | training (s) |", "|---|---|---|---|",
        "| q(z\\|x) | 2 | 1.5 ± 0.1 |<time>|", "", "| a (s) | b |", "|---|---|", "|<time>| 4 |"]


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_chapter_runs_to_the_end_at_a_small_size(chapter_runs, notebook):
    first = chapter_runs[notebook, 1]
    assert first.error is None, f"{notebook} failed at its small parameters: {first.error}"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_chapter_prints_the_same_numbers_twice(chapter_runs, notebook):
    first = printed_text(chapter_runs[notebook, 1].output)
    second = printed_text(chapter_runs[notebook, 2].output)
    assert first, f"{notebook} printed nothing"
    for (cell, a), (_, b) in zip(first, second):
        assert a == b, \
            f"{notebook}, cell {cell}: the two runs differ\n--- first\n{a}\n--- second\n{b}"
    assert len(first) == len(second)
