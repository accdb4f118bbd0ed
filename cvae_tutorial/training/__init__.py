"""The training layer: ``loop`` (TrainConfig, train), ``evaluate`` (the history's one-draw test
ELBO at a fixed σ, and σ*), ``step`` (the fast step), ``resume`` (start or continue a run),
``distributed`` (DDP) and ``cli`` (``python -m cvae_tutorial.training``).
"""
from .evaluate import evaluate_neg_elbo
from .loop import NonFiniteLossError, TrainConfig, train

__all__ = ["evaluate_neg_elbo", "NonFiniteLossError", "train", "TrainConfig"]
