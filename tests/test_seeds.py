"""Results over seeds: mean ± standard error, and verdicts only where the intervals separate."""
import math

import numpy as np
import pytest

from cvae_tutorial.cvae import MODEL_NAMES, run_config, run_name
from cvae_tutorial.config import ConfigError
from cvae_tutorial.evaluation.seeds import (format_estimate, mean_and_error, separation,
                                            summarize, summary_markdown, verdict)


def test_mean_and_standard_error():
    mean, error = mean_and_error([1.0, 2.0, 6.0])
    assert mean == pytest.approx(3.0)
    assert error == pytest.approx(np.std([1, 2, 6], ddof=1) / math.sqrt(3))  # ddof=1, /√n
    assert math.isnan(mean_and_error([4.0])[1])
    with pytest.raises(ValueError):
        mean_and_error([])


def rows(values_a, values_b, column="nll"):
    return ([{"model": "a", column: v} for v in values_a]
            + [{"model": "b", column: v} for v in values_b])


def test_summarize_groups_rows_by_model_in_order():
    summary = summarize(rows([1, 2, 3], [10, 10.5]), ["nll"])
    assert list(summary) == ["a", "b"]
    assert summary["a"]["nll"][0] == pytest.approx(2) and summary["a"]["nll"][2] == 3
    assert summary["b"]["nll"][2] == 2


def test_a_verdict_names_a_winner_only_when_the_intervals_separate():
    far = summarize(rows([1.0, 1.1, 0.9], [5.0, 5.2, 4.8]), ["nll"])
    assert separation(far["a"]["nll"], far["b"]["nll"], lower_is_better=True) == 1
    assert separation(far["a"]["nll"], far["b"]["nll"], lower_is_better=False) == -1
    sentence = verdict(far, "nll", "a", "b", True, "NLL", {"a": "A", "b": "B"})
    assert sentence.startswith("NLL: A is better than B (1.00 ± 0.06 vs 5.00 ± 0.12")
    assert "3 and 3 seeds" in sentence
    # the better one is named first, with its own numbers first
    assert verdict(far, "nll", "a", "b", False, "x").startswith("x: b is better than a (5.00")
    assert verdict(far, "nll", "a", "b", None, "x").startswith("x: b is higher than a (5.00")
    assert separation(far["a"]["nll"], far["b"]["nll"], None) == -1
    # means 1 apart, errors ≈ 0.58 each: the ±2 s.e. intervals overlap
    close = summarize(rows([0.0, 1.0, 2.0], [1.0, 2.0, 3.0]), ["nll"])
    assert separation(close["a"]["nll"], close["b"]["nll"], True) == 0
    assert "within noise" in verdict(close, "nll", "a", "b", True, "NLL")
    # one seed has no error bar: never a winner
    single = summarize(rows([0.0], [100.0]), ["nll"])
    assert separation(single["a"]["nll"], single["b"]["nll"], True) == 0


def test_separation_threshold_is_two_standard_errors_of_each():
    a, b = (0.0, 1.0, 3), (4.1, 1.0, 3)  # 4.1 > 2·(1 + 1)
    assert separation(a, b, True) == 1
    assert separation(a, (3.9, 1.0, 3), True) == 0


def test_summary_markdown_shows_mean_and_error():
    summary = summarize(rows([1.0, 3.0], [2.0]), ["nll"])
    table = summary_markdown(summary, {"nll": ("NLL", ".1f")}, {"a": "model A"})
    assert "| model A | 2 | 2.0 ± 1.0 |" in table and "| b | 1 | 2.0 |" in table
    assert format_estimate((1.234, 0.05, 3), ".2f") == "1.23 ± 0.05"


@pytest.mark.parametrize("name", list(MODEL_NAMES) + ["gaussian_qxy", "sigma_qxy",
                                                      "sigma_flow_qx"])
def test_run_names_round_trip(name):
    config = run_config(name, image_size=16, latent_dim=4)
    assert run_name(config) == name


def test_run_names_say_which_encoder():
    assert not run_config("sigma").encoder_sees_labels  # the paper's σ-CVAE: q(z|x)
    assert run_config("sigma_qxy").encoder_sees_labels
    assert run_config("sigma_flow").encoder_sees_labels
    assert not run_config("sigma_flow_qx").encoder_sees_labels
    with pytest.raises(ConfigError, match="unknown model 'sigma_q'"):
        run_config("sigma_q")
