"""The training layer: ``loop`` (TrainConfig, train), ``evaluate`` (dataset means with σ fixed),
``step`` (the fast step), ``resume`` (start or continue a run), ``distributed`` (DDP) and
``cli`` (``python -m cvae_tutorial.training``).
"""
from .evaluate import evaluate_neg_elbo
from .loop import NonFiniteLossError, TrainConfig, train

__all__ = ["evaluate_neg_elbo", "NonFiniteLossError", "train", "TrainConfig"]
