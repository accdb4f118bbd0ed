"""How sure a number is (chapters 5–7): the mean ± standard error of a metric, Student-t
intervals, and verdicts that name a better model only when a paired 95 % t interval allows it.

One training run is one draw: the order of two models can flip between seeds, so a table of
single numbers cannot carry a comparison. The design is paired — a training seed fixes the data
order and the evaluation noise for every model, and an edit or a temperature is scored on the
same images or labels — so a comparison is made on the per-seed (or per-image) differences:
their mean, its standard error and a t interval with n − 1 degrees of freedom. With 3 seeds the
95 % interval is the mean difference ± 4.30 s.e. (t with 2 d.o.f.), not ± 2 s.e.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95  # of every interval and verdict


def _values(values) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().double().numpy()
    return np.asarray(values if isinstance(values, np.ndarray) else list(values),
                      dtype=np.float64).ravel()


def t_quantile(dof: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t critical value: a mean ± this × s.e. covers ``confidence``."""
    return float(stats.t.ppf((1 + confidence) / 2, dof))


def mean_and_error(values) -> tuple:
    """(mean, standard error of the mean = sample std (ddof 1) / √n); the error is NaN for one
    value (one seed measures no spread)."""
    values = _values(values)
    if values.size == 0:
        raise ValueError("no values to average")
    error = values.std(ddof=1) / math.sqrt(values.size) if values.size > 1 else math.nan
    return float(values.mean()), float(error)


def rate_and_error(outcomes) -> tuple:
    """(p, √(p (1 − p) / n)): the rate of 0/1 outcomes over n independent trials (images) and its
    binomial standard error."""
    outcomes = _values(outcomes)
    if outcomes.size == 0:
        raise ValueError("a rate needs at least one outcome")
    p = float(outcomes.mean())
    return p, math.sqrt(p * (1 - p) / outcomes.size)


@dataclass(frozen=True)
class Difference:
    """The paired difference a − b: its mean, standard error, degrees of freedom (pairs − 1),
    number of pairs and the ``confidence`` t interval (NaN with fewer than 2 pairs)."""

    mean: float
    error: float
    dof: int
    pairs: int
    low: float
    high: float
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def sign(self) -> int:
        """+1 if the interval lies above 0, −1 below, 0 if it holds 0 or there are < 2 pairs."""
        if self.pairs < 2 or not math.isfinite(self.low) or not math.isfinite(self.high):
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def paired_difference(a, b, confidence: float = CONFIDENCE) -> Difference:
    """The mean difference a − b over the pairs both sides share, with its t interval.

    ``a`` and ``b``: dicts {seed: value} — paired by key, over the seeds both hold (a seed in one
    arm only is dropped) — or equal-length sequences / tensors paired by position (the same
    images or labels scored twice).
    """
    if isinstance(a, dict) != isinstance(b, dict):
        raise TypeError("pass two dicts {seed: value} or two sequences, not one of each")
    if isinstance(a, dict):
        shared = [key for key in a if key in b]
        a, b = [a[key] for key in shared], [b[key] for key in shared]
    a, b = _values(a), _values(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values must match one to one, got {a.size} and {b.size}")
    differences = a - b
    pairs = differences.size
    if pairs == 0:
        return Difference(math.nan, math.nan, 0, 0, math.nan, math.nan, confidence)
    mean, error = mean_and_error(differences)
    if pairs < 2:
        return Difference(mean, math.nan, 0, pairs, math.nan, math.nan, confidence)
    half = t_quantile(pairs - 1, confidence) * error
    return Difference(mean, error, pairs - 1, pairs, mean - half, mean + half, confidence)


def paired_power(effect_in_sd: float, pairs: int, confidence: float = CONFIDENCE) -> float:
    """The chance that the paired t rule names the true winner when the mean difference is
    ``effect_in_sd`` standard deviations of a single pair's difference (noncentral t)."""
    if pairs < 2:
        return 0.0
    dof, critical = pairs - 1, t_quantile(pairs - 1, confidence)
    shift = effect_in_sd * math.sqrt(pairs)
    return float(stats.nct.sf(critical, dof, abs(shift)))


def values_by_seed(rows: list, column: str, model: str, key: str = "model") -> dict:
    """{seed: value of ``column``} over the rows of ``model`` (a row with no seed: key None);
    a seed twice is an error, as it would count one training twice."""
    values = {}
    for row in rows:
        if row[key] != model:
            continue
        seed = row.get("seed")
        if seed in values:
            raise ValueError(f"model {model!r} has two rows for seed {seed!r}; a training seed "
                             f"counts once: drop the duplicate (check seeds and models)")
        values[seed] = float(row[column])
    return values


def paired_order(rows: list, column: str, a: str, b: str, lower_is_better: bool | None = True,
                 key: str = "model") -> int:
    """+1 if model ``a`` is better than ``b`` on ``column`` (the paired t interval over the
    seeds both share excludes 0), −1 if worse, 0 otherwise. ``lower_is_better=None``: +1 if
    ``a`` is higher."""
    side = paired_difference(values_by_seed(rows, column, a, key),
                             values_by_seed(rows, column, b, key)).sign
    return side if lower_is_better is None else (-side if lower_is_better else side)


def difference_phrase(difference: Difference, fmt: str = ".2f", unit: str = "seeds",
                      signed: bool = False) -> str:
    """'12.3 ± 4.1 (95 % t interval, paired over 3 seeds, 2 d.o.f.)': the mean difference
    (its size, or with ``signed`` its sign too) ± the interval's half-width."""
    mean = f"{difference.mean:+{fmt}}" if signed else f"{abs(difference.mean):{fmt}}"
    return (f"{mean} ± {difference.half_width:{fmt}} ({difference.confidence * 100:g} % t "
            f"interval, paired over {difference.pairs} {unit}, {difference.dof} d.o.f.)")


def paired_sentence(label: str, name_a: str, a, name_b: str, b, lower_is_better: bool | None,
                    fmt: str = ".2f", unit: str = "seeds") -> str:
    """One sentence comparing the paired values ``a`` and ``b`` (see :func:`paired_difference`):
    a winner only when the t interval of a − b excludes 0, else "within noise"; fewer than two
    pairs are "not compared". ``lower_is_better=None`` names the higher one, not a better one."""
    difference = paired_difference(a, b)
    if difference.pairs < 2:
        return (f"{label}: {name_a} vs {name_b} not compared (needs ≥ 2 paired {unit}; "
                f"{difference.pairs} paired).")
    if not math.isfinite(difference.mean):
        return f"{label}: {name_a} vs {name_b} not compared (a value is NaN)."
    if difference.sign == 0:
        return (f"{label}: {name_a} vs {name_b}, within noise: {name_a} minus {name_b} = "
                f"{difference_phrase(difference, fmt, unit, signed=True)}.")
    higher, lower = (name_a, name_b) if difference.sign > 0 else (name_b, name_a)
    if lower_is_better is None:
        return (f"{label}: {higher} is higher than {lower} by "
                f"{difference_phrase(difference, fmt, unit)}.")
    better, worse = (lower, higher) if lower_is_better else (higher, lower)
    direction = "lower" if lower_is_better else "higher"
    return (f"{label}: {better} is better than {worse}, {direction} by "
            f"{difference_phrase(difference, fmt, unit)}.")


def verdict(rows: list, column: str, a: str, b: str, lower_is_better: bool | None, label: str,
            titles: dict | None = None, fmt: str = ".2f", key: str = "model") -> str:
    """One sentence comparing models ``a`` and ``b`` on ``column`` of the results ``rows`` (one
    per model and seed), paired by seed: see :func:`paired_sentence`."""
    titles = titles or {}
    return paired_sentence(label, titles.get(a, a), values_by_seed(rows, column, a, key),
                           titles.get(b, b), values_by_seed(rows, column, b, key),
                           lower_is_better, fmt)


# ----------------------------------------------------------------------------------------------
# Tables over seeds
# ----------------------------------------------------------------------------------------------
def summarize(rows: list, columns, key: str = "model") -> dict:
    """{model: {column: (mean, s.e., n)}} over the rows of each model (one row per seed), in
    the order the models first appear."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return {name: {column: (*mean_and_error(float(r[column]) for r in group), len(group))
                   for column in columns}
            for name, group in groups.items()}


def format_estimate(estimate: tuple, fmt: str = ".2f") -> str:
    """'mean ± s.e.' (or 'mean' alone from one seed); the ± is one standard error."""
    mean, error = estimate[:2]
    return f"{mean:{fmt}}" if math.isnan(error) else f"{mean:{fmt}} ± {error:{fmt}}"


def summary_markdown(summary: dict, columns: dict, titles: dict | None = None) -> str:
    """A Markdown table of :func:`summarize`'s output (cells: mean ± one s.e.); ``columns`` maps
    each column to (header, format), ``titles`` model names to what the first column shows."""
    titles = titles or {}
    lines = ["| model | seeds | " + " | ".join(h for h, _ in columns.values()) + " |",
             "|---|---|" + "---|" * len(columns)]
    for name, estimates in summary.items():
        seeds = next(iter(estimates.values()))[2]
        cells = [format_estimate(estimates[c], fmt) for c, (_, fmt) in columns.items()]
        lines.append(f"| {titles.get(name, name)} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
