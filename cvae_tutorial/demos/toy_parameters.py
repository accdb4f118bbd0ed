"""The toy chapters' parameters (chapters 1 and 3) checked beyond the types that
:func:`cvae_tutorial.parameters.check_parameters` checks: a size, a count or a scale must be
above zero. A bad one fails in the chapter's first cell, with one line naming it.
"""
from __future__ import annotations

from ..config import ConfigError


def check_positive(**values) -> None:
    """Each named value above zero, else a ConfigError naming the first that is not:
    ``'<name> must be positive, got <value>'`` (NaN is not positive either)."""
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")
