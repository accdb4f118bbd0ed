"""The training layer: ``loop`` (TrainConfig, train), ``step`` (the fast step), ``resume``
(start or continue a run), ``distributed`` (DDP) and ``cli`` (``python -m cvae_tutorial.training``).
"""
from .loop import NonFiniteLossError, TrainConfig, evaluate_neg_elbo, train

__all__ = ["evaluate_neg_elbo", "NonFiniteLossError", "train", "TrainConfig"]
