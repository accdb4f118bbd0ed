"""Results over training seeds (chapters 5 and 6): the mean ± standard error of each metric per
model, and verdicts that say "A beats B" only when the uncertainty allows it.

One training run is one draw: the order of two models can flip between seeds (or between two
epochs of the same run), so a table of single numbers cannot carry a comparison.
"""
from __future__ import annotations

import math

import numpy as np

# How far apart two means must be before a verdict names a winner: their mean ± 2 s.e.
# intervals (about 95 % each, for a normal error) must not overlap.
SEPARATION = 2.0


def mean_and_error(values) -> tuple:
    """(mean, standard error of the mean = sample std / √n); the error is NaN for one value."""
    values = np.asarray(list(values), dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to average")
    error = values.std(ddof=1) / math.sqrt(values.size) if values.size > 1 else math.nan
    return float(values.mean()), float(error)


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
    """'m ± s' (or 'm' alone from one seed)."""
    mean, error, _ = estimate
    return f"{mean:{fmt}}" if math.isnan(error) else f"{mean:{fmt}} ± {error:{fmt}}"


def summary_markdown(summary: dict, columns: dict, titles: dict | None = None) -> str:
    """A Markdown table of :func:`summarize`'s output; ``columns`` maps each column to
    (header, format), ``titles`` model names to what the first column shows."""
    titles = titles or {}
    lines = ["| model | seeds | " + " | ".join(h for h, _ in columns.values()) + " |",
             "|---|---|" + "---|" * len(columns)]
    for name, estimates in summary.items():
        seeds = next(iter(estimates.values()))[2]
        cells = [format_estimate(estimates[c], fmt) for c, (_, fmt) in columns.items()]
        lines.append(f"| {titles.get(name, name)} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def separation(a: tuple, b: tuple, lower_is_better: bool | None = True) -> int:
    """+1 if estimate ``a`` is better than ``b`` beyond noise, −1 if worse, 0 within noise (the
    mean ± SEPARATION·s.e. intervals overlap, or either has no error from a single seed).
    ``lower_is_better=None``: +1 if ``a`` is higher, −1 if lower."""
    (mean_a, error_a, _), (mean_b, error_b, _) = a, b
    if math.isnan(error_a) or math.isnan(error_b):
        return 0
    if abs(mean_a - mean_b) <= SEPARATION * (error_a + error_b):
        return 0
    return 1 if (mean_a < mean_b) == bool(lower_is_better) else -1


def verdict(summary: dict, column: str, a: str, b: str, lower_is_better: bool | None,
            label: str, titles: dict | None = None, fmt: str = ".2f") -> str:
    """One sentence comparing models ``a`` and ``b`` on ``column``: an order only when
    :func:`separation` finds one, else "within noise". ``lower_is_better=None`` names the
    higher one instead of a better one (a measure with no better direction)."""
    titles = titles or {}
    side = separation(summary[a][column], summary[b][column], lower_is_better)
    if side < 0:
        a, b = b, a  # the first named is the better (or higher) one
    ea, eb = summary[a][column], summary[b][column]
    name_a, name_b = titles.get(a, a), titles.get(b, b)
    numbers = (f"{format_estimate(ea, fmt)} vs {format_estimate(eb, fmt)}, mean ± s.e. over "
               f"{ea[2]} and {eb[2]} seeds")
    if side == 0:
        return f"{label}: {name_a} vs {name_b}, within noise ({numbers})."
    order = "higher than" if lower_is_better is None else "better than"
    return (f"{label}: {name_a} is {order} {name_b} ({numbers}; the ±{SEPARATION:g} s.e. "
            f"intervals do not overlap).")
