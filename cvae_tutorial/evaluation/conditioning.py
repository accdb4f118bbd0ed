"""Metrics that see conditioning (chapters 4 and 6): does a sample show the attributes it was
asked for? Plain accuracy rewards the majority class and a Fréchet distance against the test set
compares marginals, so neither can tell a model that follows y from one that ignores it.

- :func:`balanced_accuracy`: per attribute, the mean of the recalls of its values (a constant
  guesser scores 0.5 whatever the base rate), and :func:`balanced_accuracy_terms`, its per-row
  terms for paired comparisons;
- :func:`flip_test`: same noise, one attribute flipped; how often the classifier sees the change
  in the flipped direction;
- :func:`joint_frechet_distance` and :func:`shuffled_label_control`: a Fréchet distance between
  (features, labels) pairs, and the same with the samples drawn for permuted labels; a distance
  that does not move under the shuffle is blind to conditioning;
- :func:`named_attribute_agreement`: how well samples carry a named attribute set, judged on the
  named attributes only.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..data.images import to_uint8
from .classifier import predict_attributes
from .fid import feature_statistics, frechet_distance_from_statistics, image_features


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


def _samples(model, labels: Tensor, seed: int, batch_size: int) -> Tensor:
    """uint8 samples for every row of ``labels``; the same seed gives the same noise."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.cat([to_uint8(model.sample(labels[start:start + batch_size].to(device),
                                            generator=generator)).cpu()
                      for start in range(0, len(labels), batch_size)])


@torch.no_grad()
def flip_test(model, classifier: nn.Module, labels: Tensor, seed: int = 0,
              batch_size: int = 100) -> Tensor:
    """Per attribute a [A]: the fraction of rows in which, with the same noise, the classifier
    reads a as asked both for ``labels`` and for ``labels`` with a flipped — it sees the change,
    in the flipped direction. A model that ignores y draws the same image both times, so it
    scores 0; a perfect one scores 1."""
    labels = labels.float().cpu()
    base = predict_attributes(classifier, _samples(model, labels, seed, batch_size))
    rates = []
    for a in range(labels.shape[1]):
        flipped = labels.clone()
        flipped[:, a] = 1 - flipped[:, a]
        reading = predict_attributes(classifier, _samples(model, flipped, seed, batch_size))
        rates.append(((base[:, a] == labels[:, a]) & (reading[:, a] == flipped[:, a]))
                     .float().mean())
    return torch.stack(rates)


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


@torch.no_grad()
def shuffled_label_control(model, labels: Tensor, extractor: nn.Module, real_statistics: tuple,
                           real_joint: dict, seed: int = 0, batch_size: int = 100,
                           features=None) -> dict:
    """The Fréchet distances of samples drawn for ``labels`` and of samples drawn for a
    permutation of them (same noise), both judged against the real set and ``labels``.

    Returns {"distance", "shuffled_distance"} (marginal: the samples alone, as FID) and
    {"joint_distance", "shuffled_joint_distance"} (:func:`joint_frechet_distance`). A metric
    whose shuffled value equals its plain one cannot see conditioning; the marginal one cannot
    by construction (a permutation keeps the labels' distribution). ``features``: those of the
    unshuffled samples, if already computed with the same seed.
    """
    labels = labels.float().cpu()
    permutation = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    result = {}
    for prefix, conditioned_on in (("", labels), ("shuffled_", labels[permutation])):
        if features is None or prefix:
            features = image_features(extractor, _samples(model, conditioned_on, seed,
                                                          batch_size), batch_size, progress=False)
        result[prefix + "distance"] = frechet_distance_from_statistics(
            *feature_statistics(features), *real_statistics)
        result[prefix + "joint_distance"] = joint_frechet_distance(features, labels, real_joint)
    return result


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
