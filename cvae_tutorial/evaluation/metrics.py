"""The columns of a results row, each computed once from a model's :class:`~.draws.Draws` and
their readings (chapter 6). A metric is one function ``(model, draws, readings, evaluation) ->
{column: value}`` in :data:`METRICS` and its columns in :data:`COLUMNS`; nothing else changes
to add one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .conditioning import balanced_accuracy, joint_frechet_distance
from .frechet import frechet_curve, frechet_distance, kernel_distance
from .latents import active_units, prior_hole
from .likelihood import dataset_log_weights, likelihood_summary
from .neighbours import precision_recall, within_label_precision_recall


@dataclass(frozen=True)
class Column:
    """How a column is shown over seeds: its header ({d}: the distance's name), its number
    format, and whether lower is better (None: neither, e.g. a count)."""

    header: str
    fmt: str
    lower_is_better: bool | None


COLUMNS = {
    # the likelihoods of dequantised test images, (x_int + u) / 256, averaged over K importance
    # draws (likelihood.py); not the training history's test_neg_elbo (one draw of x / 255)
    "neg_elbo_nats": Column("−ELBO (nats)", ".1f", True),
    "iw_nll_nats": Column("IW-NLL (nats)", ".1f", True),
    "bits_per_dim": Column("bits/dim", ".3f", True),
    "decoder_sigma": Column("decoder σ", ".4f", None),
    "distance": Column("{d}", ".2f", True),
    "distance_inf": Column("{d}∞", ".2f", True),
    "kid": Column("KID ({d} features)", ".3f", True),
    "shuffled_distance": Column("{d}, shuffled labels", ".2f", None),
    "joint_distance": Column("joint {d}", ".2f", True),
    "shuffled_joint_distance": Column("joint {d}, shuffled labels", ".2f", None),
    "attribute_accuracy": Column("attribute acc.", ".3f", False),
    "balanced_accuracy": Column("balanced acc.", ".3f", False),
    "flip_rate": Column("flip rate", ".3f", False),
    "precision": Column("precision", ".3f", False),
    "recall": Column("recall", ".3f", False),
    "label_recall": Column("recall within labels", ".3f", False),
    "prior_hole": Column("prior hole", ".3f", True),
    "active_units": Column("active units", ".1f", None),
}


def likelihoods(model, draws, readings, ev) -> dict:
    """−ELBO, the importance-weighted bound and bits/dim on the first test images."""
    data = ev.test_data
    log_w = dataset_log_weights(model, data, ev.iw_samples, ev.likelihood_images, seed=ev.seed,
                                progress=False)
    return {**likelihood_summary(log_w, 3 * data.image_size ** 2),
            "decoder_sigma": math.exp(model.decoder_log_sigma.item())}


def distances(model, draws, readings, ev) -> dict:
    """The distance at N, its N-curve's FD∞, KID, and the shuffled-label control (marginal and
    joint): a marginal distance cannot see conditioning, a joint one can."""
    fake, shuffled = readings["samples"].features, readings["shuffled"].features
    curve = frechet_curve(fake, ev.reference, ev.curve_sizes, seed=ev.seed)
    kid, kid_se = kernel_distance(fake, ev.reference, ev.kid_block, ev.seed)
    return {"distance": frechet_distance(fake, ev.reference),
            "distance_inf": curve.infinite, "distance_inf_se": curve.infinite_se,
            "distance_slope": curve.slope, "distance_curve": list(curve.distances),
            "kid": kid, "kid_se": kid_se,
            "shuffled_distance": frechet_distance(shuffled, ev.reference),
            "joint_distance": joint_frechet_distance(fake, draws.labels, ev.real_joint),
            "shuffled_joint_distance": joint_frechet_distance(shuffled, draws.labels,
                                                              ev.real_joint)}


def attribute_fidelity(model, draws, readings, ev) -> dict:
    """Plain and balanced accuracy of the samples against their labels, and the flip test: the
    same ε with one attribute flipped, how often the classifier sees the change in the flipped
    direction (a model that ignores y scores 0)."""
    labels, predictions = draws.labels, readings["samples"].predictions
    accuracy = (predictions == labels).float().mean(0)
    balanced = balanced_accuracy(predictions, labels)
    count = len(draws.flipped[0]) if draws.flipped else 0
    base = predictions[:count]
    flips = torch.stack([
        ((base[:, a] == labels[:count, a])
         & (readings["flipped"][a].predictions[:, a] == 1 - labels[:count, a])).float().mean()
        for a in range(labels.shape[1])])
    row = {"attribute_accuracy": accuracy.mean().item(),
           "balanced_accuracy": balanced.mean().item(), "flip_rate": flips.mean().item(),
           "flip_samples": count}
    for name, acc, bal, flip in zip(ev.test_data.attribute_names, accuracy, balanced, flips):
        row.update({f"accuracy_{name}": acc.item(), f"balanced_accuracy_{name}": bal.item(),
                    f"flip_rate_{name}": flip.item()})
    return row


def diversity(model, draws, readings, ev) -> dict:
    """Precision and recall in the distance's features (Kynkäänniemi et al. 2019): are the
    samples on the real manifold, and do they cover it — pooled, and within each label set
    (samples for y against the real images labelled y: "on-label but alike" is high precision,
    low recall there)."""
    fake = readings["samples"].features
    precision, recall = precision_recall(ev.reference, fake)
    try:
        within = within_label_precision_recall(ev.reference, draws.labels, fake, draws.labels)
    except ValueError:  # no label set repeats often enough (e.g. CelebA's 40 attributes)
        within = {"precision": math.nan, "recall": math.nan, "label_sets": 0}
    return {"precision": precision, "recall": recall, "label_precision": within["precision"],
            "label_recall": within["recall"], "label_sets": within["label_sets"]}


def latent_space(model, draws, readings, ev) -> dict:
    """The prior hole (k-NN coverage of the prior by the test images' posterior draws, against a
    second prior sample) and the active units within label groups."""
    try:
        units = active_units(draws.posterior_means, draws.labels)
    except ValueError:  # fewer images than it takes to separate the image from y: not measured
        units = math.nan
    try:
        hole = prior_hole(draws.posterior_draws, draws.latents, draws.prior_again)
    except ValueError:  # fewer codes than its k-NN balls need: not measured
        hole = math.nan
    return {"prior_hole": hole, "active_units": units,
            "latent_dim": model.config.latent_dim}


METRICS = (likelihoods, distances, attribute_fidelity, diversity, latent_space)


def read_draws(judge, draws) -> dict:
    """The readings every metric uses, one pass per image set: features where a distance needs
    them, the classifier's readings everywhere."""
    return {"samples": judge.read(draws.samples), "shuffled": judge.read(draws.shuffled),
            "flipped": [judge.read(images, features=False) for images in draws.flipped]}


def floor_columns(ev) -> dict:
    """The same distances between two disjoint real sets of the same N: the value a perfect
    model would get (for FD it is above 0 at finite N: the bias)."""
    curve = frechet_curve(ev.floor, ev.reference, ev.curve_sizes, seed=ev.seed)
    kid, kid_se = kernel_distance(ev.floor, ev.reference, ev.kid_block, ev.seed)
    return {"floor_distance": frechet_distance(ev.floor, ev.reference),
            "floor_distance_inf": curve.infinite, "floor_distance_inf_se": curve.infinite_se,
            "floor_distance_slope": curve.slope,
            "floor_distance_curve": list(curve.distances), "floor_kid": kid,
            "floor_kid_se": kid_se, "curve_sizes": list(curve.sizes)}
