"""Metrics that see conditioning (chapters 4 and 6): does a sample show the attributes it was
asked for? Plain accuracy rewards the majority class and a Fréchet distance against the test set
compares marginals, so neither can tell a model that follows y from one that ignores it.

- :func:`balanced_accuracy`: per attribute, the mean of the recalls of its two values (a constant
  guesser scores 0.5 whatever the base rate);
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


def balanced_accuracy(predictions: Tensor, labels: Tensor) -> Tensor:
    """Per-attribute balanced accuracy [A]: ½ (recall of 1s + recall of 0s). An attribute whose
    labels hold one value only is scored by that value's recall."""
    predictions, labels = predictions.float().cpu(), labels.float().cpu()
    if predictions.shape != labels.shape or labels.ndim != 2:
        raise ValueError(f"predictions {tuple(predictions.shape)} and labels "
                         f"{tuple(labels.shape)} must both be [N, A]")
    correct = (predictions == labels).float()
    recalls = []
    for value in (0.0, 1.0):
        mask = (labels == value).float()
        count = mask.sum(0)
        recalls.append(torch.where(count > 0, (correct * mask).sum(0) / count.clamp_min(1),
                                   torch.full_like(count, float("nan"))))
    return torch.stack(recalls).nanmean(0)


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
