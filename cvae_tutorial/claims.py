"""A chapter's claims about its own results, checked where the chapter computes them.

The prose of a chapter says what its numbers show ("both models' reconstructions are blurry").
At the chapter's default parameters such a claim must hold, so the book's build stops when one
does not; at other parameters (a reader's quick run with one epoch) it may not, and the chapter
should still run to its end. A chapter creates ``claim = Claims(check_claims)`` from its
``check_claims`` parameter and writes ``claim(condition, "the claim in words")`` where a plain
``assert`` would stop it. Exact invariants (an identity to 1e-6, a file that must exist) stay
``assert``: they hold at any parameters.
"""
from __future__ import annotations


class ClaimError(AssertionError):
    """A claim of the chapter's prose does not hold at the parameters the chapter ran with."""


class Claims:
    """``claim(holds, statement)``: True when ``holds``; otherwise, when strict, raises
    :class:`ClaimError` naming the statement, else prints one line naming it and returns False."""

    def __init__(self, strict: bool = True):
        if not isinstance(strict, bool):
            raise TypeError(f"check_claims must be True or False, got {strict!r}")
        self.strict = strict

    def __call__(self, holds, statement: str) -> bool:
        if not isinstance(statement, str) or not statement.strip():
            raise TypeError(f"a claim's statement must be a non-empty str, got {statement!r}")
        if holds:
            return True
        if self.strict:
            raise ClaimError(f"{statement} -- does not hold at these parameters; rerun at the "
                             "chapter's default parameters, or pass check_claims=False to run "
                             "on and see which claims hold")
        print(f"does not hold at these parameters: {statement}")
        return False

    def __repr__(self) -> str:
        return f"Claims(strict={self.strict})"
