"""Reading the prior-ladder study (chapter 6): its results and provenance, each one-choice
contrast's verdict at every budget, whether doubling the budget moved a verdict or the gap
behind it, and whether the likelihoods still fall. ``study`` writes what this module reads;
:mod:`cvae_tutorial.demos.ladder_report` puts it into the chapter's tables and sentences.
"""
from __future__ import annotations

import json
from pathlib import Path

from scipy import stats

from .config import ConfigError
from .evaluation.results import read_results
from .evaluation.uncertainty import (paired_difference, paired_order, summarize,
                                      values_by_seed)
from .study import PROVENANCE, code_digest


def load_study(results_dir) -> tuple:
    """(rows with an ``epochs`` column, provenance, a line saying whether the code that
    measured them is today's) of a study written by ``python -m cvae_tutorial.study``; a clear
    error if absent."""
    folder = Path(results_dir)
    path = folder / PROVENANCE
    if not path.exists():
        raise ConfigError(f"no study results in {folder} ({PROVENANCE} missing); run "
                          f"`python -m cvae_tutorial.study --results-dir {folder}`")
    record = json.loads(path.read_text())
    rows = []
    for epochs in record["budgets"]:
        rows += [{**row, "epochs": epochs}
                 for row in read_results(folder / f"epochs{epochs}.csv")]
    now = code_digest()
    then = set(record["training_code_digests"]) | {record["code_digest"]}
    status = ("measured by today's code (its digest matches)" if then == {now}
              else f"the package's code has changed since these results were measured "
                   f"(digest {', '.join(sorted(d[:12] for d in then))} then, {now[:12]} now): "
                   f"rerun `{record['command']}` to refresh them")
    return rows, record, status


# (what changes, model a, model b): b differs from a in that one choice
CONTRASTS = (
    ("prior at q(z|x,y): N(0, I) → conditional Gaussian", "sigma_qxy", "sigma_cond"),
    ("prior at q(z|x,y): conditional Gaussian → Real NVP", "sigma_cond", "sigma_flow"),
    ("prior at q(z|x,y): Real NVP → conditional Real NVP", "sigma_flow", "sigma_cflow"),
    ("prior at q(z|x): N(0, I) → conditional Gaussian", "sigma", "sigma_cond_qx"),
    ("prior at q(z|x): conditional Gaussian → Real NVP", "sigma_cond_qx", "sigma_flow_qx"),
    ("encoder at N(0, I): q(z|x) → q(z|x,y)", "sigma", "sigma_qxy"),
    ("encoder at the Real NVP prior: q(z|x) → q(z|x,y)", "sigma_flow_qx", "sigma_flow"),
    ("decoder: σ = 1 → σ*", "gaussian", "sigma"),
)
# (column, lower is better, name, format)
MEASURES = (
    ("bits_per_dim", True, "bits/dim", ".3f"),
    ("distance", True, "distance", ".2f"),
    ("balanced_accuracy", False, "balanced accuracy", ".3f"),
    ("flip_rate", False, "flip rate", ".3f"),
    ("precision", False, "precision", ".3f"),
    ("recall", False, "recall", ".3f"),
    ("prior_hole", True, "prior hole", ".3f"),
)


def budget_check(rows: list, contrasts=CONTRASTS, measures=MEASURES) -> list:
    """For each contrast (a → b) and measure, b's verdict against a at every budget — +1
    better, −1 worse, 0 within noise (the paired 95 % t interval over the seeds) — and the
    paired difference b − a at the longest budget (``difference``) and the one before
    (``previous``). ``gap_change`` is how far b − a itself moved between those two budgets,
    paired by seed (a seed's longer run continues its shorter one): a verdict can flip while
    that change is indistinguishable from 0, its interval's width being noisy too. A σ = 1
    model's bits/dim are on another scale (chapter 2) and are not compared; a contrast whose
    models are missing is skipped."""
    budgets = sorted({row["epochs"] for row in rows})
    by_budget = {e: at_budget(rows, e) for e in budgets}
    checks = []
    for label, a, b in contrasts:
        if not {a, b} <= {row["model"] for row in rows}:
            continue
        for column, lower, name, fmt in measures:
            if column == "bits_per_dim" and "gaussian" in (a, b):
                continue
            orders = {e: paired_order(by_budget[e], column, b, a, lower) for e in budgets}
            gaps = [_gaps(by_budget[e], column, a, b) for e in budgets[-2:]]
            zero = dict.fromkeys(gaps[-1], 0.0)
            checks.append({"contrast": label, "a": a, "b": b, "measure": name,
                           "column": column, "fmt": fmt, "orders": orders,
                           "difference": paired_difference(gaps[-1], zero),
                           "previous": paired_difference(gaps[0], zero) if len(gaps) > 1
                           else None,
                           "gap_change": paired_difference(gaps[-1], gaps[0]) if len(gaps) > 1
                           else None,
                           "stable": len(budgets) < 2 or orders[budgets[-1]] ==
                           orders[budgets[-2]]})
    return checks


def _gaps(rows: list, column: str, a: str, b: str) -> dict:
    """{seed: b − a} over the seeds both models hold."""
    values_a, values_b = values_by_seed(rows, column, a), values_by_seed(rows, column, b)
    return {seed: values_b[seed] - values_a[seed] for seed in values_a if seed in values_b}


def at_budget(rows: list, epochs: int) -> list:
    """The rows of one budget."""
    return [row for row in rows if row["epochs"] == epochs]


def budget_curves(rows: list, columns, models) -> dict:
    """{column: {model: (means, standard errors)}}, one value per budget (increasing) over
    the seeds; a σ = 1 model's bits/dim are left out (another scale, chapter 2)."""
    budgets = sorted({row["epochs"] for row in rows})
    curves = {}
    for column in columns:
        by_budget = [summarize(at_budget(rows, e), [column]) for e in budgets]
        curves[column] = {name: ([s[name][column][0] for s in by_budget],
                                 [s[name][column][1] for s in by_budget])
                          for name in models
                          if not (column == "bits_per_dim" and name == "gaussian")}
    return curves


def likelihood_falls(rows: list, models) -> dict:
    """{σ-model: the paired difference of its bits/dim at the second-longest budget minus the
    longest} over the seeds (a seed's longer run continues its shorter one): > 0 is a fall."""
    budgets = sorted({row["epochs"] for row in rows})
    shorter, longer = at_budget(rows, budgets[-2]), at_budget(rows, budgets[-1])
    return {name: paired_difference(values_by_seed(shorter, "bits_per_dim", name),
                                    values_by_seed(longer, "bits_per_dim", name))
            for name in models if name != "gaussian"}


def still_improving(falls: dict) -> list:
    """The models whose fall's 95 % t interval lies above 0."""
    return [name for name, fall in falls.items() if fall.sign > 0]


def getting_worse(falls: dict) -> list:
    """The models whose fall's 95 % t interval lies below 0: a likelihood on the test images
    that got worse (the models fit their training images ever closer)."""
    return [name for name, fall in falls.items() if fall.sign < 0]


def falling_on_average(falls: dict) -> list:
    """The models whose bits/dim fall on average (whatever their interval)."""
    return [name for name, fall in falls.items() if fall.mean > 0]


def moved_verdicts(checks: list) -> list:
    """The checks whose verdict changed when the last budget doubled."""
    return [check for check in checks if not check["stable"]]


def gap_moved(check: dict) -> bool:
    """Did b − a itself change beyond noise when the last budget doubled (the paired 95 % t
    interval of its change over the seeds excludes 0)?"""
    return check["gap_change"] is not None and check["gap_change"].sign != 0


def gap_moves_by_chance(checks: list) -> tuple:
    """(how many of the checks' gaps moved beyond noise, how many a 95 % rule flags by chance
    alone if no gap moved, the binomial chance of flagging at least that many), counting the
    checks as independent — which they are not quite: they share seeds and rungs."""
    moved = sum(gap_moved(check) for check in checks)
    rate = 1 - checks[0]["gap_change"].confidence
    return moved, rate * len(checks), float(stats.binom.sf(moved - 1, len(checks), rate))


def distance_check(checks: list, contrast: str) -> dict:
    """The check of one contrast on the distance."""
    return next(c for c in checks if c["contrast"] == contrast and c["column"] == "distance")
