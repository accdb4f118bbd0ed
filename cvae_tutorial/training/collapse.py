"""Posterior collapse, said while training: a KL near zero for several epochs means the decoder
has learnt to ignore z (chapter 2), and the run's samples will not depend on it."""
from __future__ import annotations

import warnings

COLLAPSE_KL = 0.5    # nats per image: below this the codes carry (next to) nothing about x
COLLAPSE_EPOCHS = 3  # this many epochs in a row, so a slow first epoch is no alarm

LIKELY_CAUSES = {
    "gaussian": "a decoder σ of 1 is far wider than the pixel noise, so z saves less "
                "reconstruction cost than its KL costs; the σ-CVAE (model 'sigma') learns σ",
    "mse_kl": "the KL weight is too large for these images; lower kl_weight",
}
DEFAULT_CAUSE = ("the decoder found the images' mean (or what y alone tells) cheaper than "
                 "using z; try a lower learning rate or more images")


class PosteriorCollapseWarning(RuntimeWarning):
    """The training KL has stayed near zero: the model ignores its latent code."""


def warn_on_collapse(history: list, name: str) -> None:
    """One warning when the last ``COLLAPSE_EPOCHS`` epochs of ``history`` (``train`` rows)
    all have a training KL below ``COLLAPSE_KL`` and the epoch before did not: once per streak.
    ``name``: the run's name (``cvae.run_name``)."""
    if len(history) < COLLAPSE_EPOCHS:
        return
    low = [row["train_kl"] < COLLAPSE_KL for row in history]
    streak_before = len(low) > COLLAPSE_EPOCHS and low[-COLLAPSE_EPOCHS - 1]
    if not all(low[-COLLAPSE_EPOCHS:]) or streak_before:
        return
    model = name.split("_qx")[0]
    warnings.warn(f"posterior collapse in {name!r}: the training KL has been below "
                  f"{COLLAPSE_KL} nats per image for {COLLAPSE_EPOCHS} epochs (now "
                  f"{history[-1]['train_kl']:.3g}), so the decoder ignores z; likely cause: "
                  f"{LIKELY_CAUSES.get(model, DEFAULT_CAUSE)}", PosteriorCollapseWarning,
                  stacklevel=2)
