"""Metrics that see conditioning (chapters 4 and 6): does a sample show the attributes it was
asked for? Plain accuracy rewards the majority class and a Fréchet distance against the test set
compares marginals, so neither can tell a model that follows y from one that ignores it.

- :func:`balanced_accuracy`: per attribute, the mean of the recalls of its values (a constant
  guesser scores 0.5 whatever the base rate), and :func:`balanced_accuracy_terms`, its per-row
  terms for paired comparisons;
- :func:`joint_frechet_distance`: a Fréchet distance between (features, labels) pairs; with the
  samples drawn for permuted labels (:mod:`.metrics`), a distance that does not move under the
  shuffle is blind to conditioning;
- :func:`named_attribute_agreement`: how well samples carry a named attribute set, judged on the
  named attributes only.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .classifier import predict_attributes
from .frechet import feature_statistics, frechet_distance_from_statistics


def balanced_accuracy_terms(predictions: Tensor, labels: Tensor) -> Tensor:
    """Each row's term [N, A] of the balanced accuracy: correct / (classes present · share of the
    row's class), so that its mean over rows is :func:`balanced_accuracy`. Two sample sets drawn
    for the same labels compare pairwise by row (chapter 7): the per-row mean over attributes,
    with ``uncertainty.paired_difference``; ``mean_and_error`` over rows gives the s.e. with the
    class counts taken as fixed."""
    predictions, labels = predictions.double().cpu(), labels.double().cpu()
    if predictions.shape != labels.shape or labels.ndim != 2 or not len(labels):
        raise ValueError(f"predictions {tuple(predictions.shape)} and labels "
                         f"{tuple(labels.shape)} must both be [N >= 1, A]")
    positive = labels > 0.5
    count = torch.where(positive, positive.sum(0), (~positive).sum(0)).double()  # [N, A]
    classes = positive.any(0).double() + (~positive).any(0).double()  # [A]: 1 or 2
    correct = ((predictions > 0.5) == positive).double()
    return correct * len(labels) / (classes * count)


def balanced_accuracy(predictions: Tensor, labels: Tensor) -> Tensor:
    """Per-attribute balanced accuracy [A], scikit-learn's definition: the mean of the recalls of
    the classes present in ``labels`` (½ (recall of 1s + recall of 0s); a constant guess scores
    0.5 whatever the base rate). An attribute whose labels hold one class only is scored by that
    class's recall, as scikit-learn does — neither NaN nor 1 by default: 1 only if every row is
    read right."""
    return balanced_accuracy_terms(predictions, labels).mean(0).float()


def balanced_attribute_accuracy(classifier: nn.Module, images: Tensor, labels: Tensor,
                                batch_size: int = 256) -> Tensor:
    """Balanced accuracy [A] of the classifier's reading of uint8 images against ``labels``."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} label rows")
    return balanced_accuracy(predict_attributes(classifier, images, batch_size), labels)


def joint_statistics(features, labels, scale: float) -> tuple:
    """(mean, covariance) of the (features, scale·labels) pairs."""
    return feature_statistics(np.concatenate([np.asarray(features, np.float64),
                                              scale * np.asarray(labels, np.float64)], 1))


def real_joint_statistics(real_features, labels) -> dict:
    """What :func:`joint_frechet_distance` needs of the real set: the label scale s (the real
    features' root-mean variance, so a label weighs like a typical feature) and the joint stats."""
    scale = float(np.sqrt(np.asarray(real_features, np.float64).var(0).mean())) or 1.0
    mu, sigma = joint_statistics(real_features, labels, scale)
    return {"scale": scale, "mu": mu, "sigma": sigma}


def joint_frechet_distance(fake_features, fake_labels, real_joint: dict) -> float:
    """Fréchet distance between Gaussians fitted to (features, s·labels) pairs: unlike the plain
    distance, it compares which images go with which labels."""
    return frechet_distance_from_statistics(
        *joint_statistics(fake_features, fake_labels, real_joint["scale"]),
        real_joint["mu"], real_joint["sigma"])


def named_attribute_agreement(classifier: nn.Module, images: Tensor, attribute_names,
                              named: dict) -> float:
    """The fraction of the named attributes (``{"Mustache": 1, "Male": 0}``) that the classifier
    reads as asked, over all images; the attributes not named are not judged (a rare set is
    about its named attributes, the others are whatever the sampler drew)."""
    names = list(attribute_names)
    unknown = [name for name in named if name not in names]
    if unknown or not named:
        raise ValueError(f"name at least one attribute, from {', '.join(names)}; got "
                         f"{', '.join(unknown) or 'none'}")
    columns = [names.index(name) for name in named]
    wanted = torch.tensor([float(value) for value in named.values()])
    readings = predict_attributes(classifier, images)[:, columns]
    return (readings == wanted).float().mean().item()
