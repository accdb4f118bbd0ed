"""Evaluating a run (chapter 6): every checkpoint's likelihoods, Fréchet distance, attribute
fidelity (plain and balanced accuracy, the flip test), the shuffled-label control and its latent
space (prior hole, active units) on the test split, in one table beside the paper's Table 1
(``results.csv``, ``.md``)."""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoints import load_model
from ..config import ConfigError, check_int, resolve_device
from ..cvae import PAPER_MODEL_NAMES, run_name
from ..data.images import AttributeImages
from ..files import fingerprint
from ..files import atomic_write
from .classifier import (AttributeClassifier, ClassifierConfig, ClassifierFeatures,
                         attribute_accuracy, train_attribute_classifier)
from .conditioning import (balanced_attribute_accuracy, flip_test, real_joint_statistics,
                           shuffled_label_control)
from .fid import (InceptionWeightsError, data_fingerprint, generated_features, image_features,
                  load_fid_inception, real_statistics, statistics_cache_path)
from .latents import active_units, posterior_codes, prior_hole_distance
from .likelihood import dataset_log_weights, likelihood_summary
from .results import RESULTS_CSV, merge_results, read_results, write_results_files
from .runs import check_checkpoint, check_run, locate_run, writable_results_folder
from .seeds import summarize, summary_markdown

# The paper's Table 1 FIDs. Its NLL column (-4218 ... -6702) has no stated protocol (units,
# dequantisation, σ), so it cannot be reproduced and is not compared (chapter 6).
PAPER_FID = {"gaussian": 300.9, "sigma": 173.5, "sigma_flow": 164.5}
PAPER_NLL_NOTE = ("the paper's NLL column (-4218 ... -6702) states no units, dequantisation or "
                  "decoder σ, so it is not reproducible and not compared")
# The columns of the table over seeds (mean ± s.e.): row key -> (header, format); {d} is the
# distance's name (FID or FD_attr).
SUMMARY_COLUMNS = {
    "neg_elbo_nats": ("−ELBO (nats)", ".1f"), "iw_nll_nats": ("IW-NLL (nats)", ".1f"),
    "bits_per_dim": ("bits/dim", ".3f"), "decoder_sigma": ("decoder σ", ".4f"),
    "distance": ("{d}", ".2f"), "shuffled_distance": ("{d}, shuffled labels", ".2f"),
    "joint_distance": ("joint {d}", ".2f"),
    "shuffled_joint_distance": ("joint {d}, shuffled labels", ".2f"),
    "attribute_accuracy": ("attribute acc.", ".3f"),
    "balanced_accuracy": ("balanced acc.", ".3f"), "flip_rate": ("flip rate", ".3f"),
    "prior_hole": ("prior hole", ".2f"), "active_units": ("active units", ".1f")}


@dataclass
class Evaluation:
    """What every model of a run is measured with, built once (classifier, features, real stats)."""

    test_data: AttributeImages
    classifier: AttributeClassifier
    features: nn.Module
    real_mu: np.ndarray
    real_sigma: np.ndarray
    real_joint: dict  # the real (features, labels) statistics of the shuffled-label control
    real_accuracy: Tensor
    real_balanced_accuracy: Tensor
    num_samples: int
    iw_samples: int
    likelihood_images: int
    batch_size: int
    seed: int
    device: torch.device
    flip_samples: int = 256  # labels the flip test draws for (A + 1 sample sets of that size)

    @property
    def distance_name(self) -> str:
        return self.features.name

    @property
    def protocol(self) -> str:
        return (f"{self.distance_name}: {self.num_samples} samples conditioned on the first "
                f"{self.num_samples} test labels vs those {self.num_samples} test images at "
                f"{self.test_data.image_size}x{self.test_data.image_size}, both quantised to "
                f"uint8; {self.features.protocol}. Likelihoods: {self.likelihood_images} test "
                f"images, K={self.iw_samples}, uniform dequantisation, fixed decoder σ")


def _weights_fingerprint(module: nn.Module) -> str:
    return fingerprint((tensor.detach().cpu().contiguous().numpy().tobytes()
                        for tensor in module.state_dict().values()), 10)


def prepare_evaluation(train_data: AttributeImages, test_data: AttributeImages, *,
                       dataset: str = "embedded", device="auto", feature_space: str = "auto",
                       inception_weights: str | os.PathLike | None = None,
                       num_samples: int = 1000, iw_samples: int = 100,
                       likelihood_images: int = 256, batch_size: int = 100, seed: int = 0,
                       flip_samples: int = 256,
                       cache_dir: str | os.PathLike | None = None,
                       classifier: AttributeClassifier | None = None,
                       classifier_config: ClassifierConfig | None = None,
                       progress: bool = True) -> Evaluation:
    """Train (or load) the attribute classifier, pick the feature space and compute (or load)
    the real test statistics.

    ``feature_space``: 'inception' (FID; an error says where the weights go when none are
    found), 'attribute' (FD_attr), or 'auto' (FID when the weights are found, else FD_attr with
    a warning that says why). ``flip_samples``: the flip test uses the first that many of the
    ``num_samples`` labels (it draws A + 1 sample sets, one per flipped attribute).
    """
    if feature_space not in ("auto", "inception", "attribute"):
        raise ConfigError(f"feature_space must be 'auto', 'inception' or 'attribute', got "
                          f"{feature_space!r}")
    check_int("num_samples", num_samples, 2)  # a covariance needs two images
    for name, value in (("iw_samples", iw_samples), ("likelihood_images", likelihood_images),
                        ("batch_size", batch_size), ("flip_samples", flip_samples)):
        check_int(name, value, 1)
    if num_samples > len(test_data):
        raise ConfigError(f"num_samples={num_samples} exceeds the {len(test_data)} test images "
                          f"it is compared with; lower num_samples")
    device = resolve_device(device)
    if classifier is None:
        ckpt = Path(cache_dir) / "attribute_classifier.pt" if cache_dir is not None else None
        classifier = train_attribute_classifier(train_data, classifier_config, ckpt, device,
                                                progress)
    classifier = classifier.to(device).eval()
    features = _feature_space(feature_space, inception_weights, classifier, device)
    real_images = test_data.images[:num_samples]
    key = data_fingerprint(real_images, test_data.labels[:num_samples])
    if isinstance(features, ClassifierFeatures):  # its space depends on the classifier's weights
        key += "_" + _weights_fingerprint(classifier)
    cache = None if cache_dir is None else statistics_cache_path(
        cache_dir, features.name, dataset, "test", test_data.image_size, num_samples, key)
    real_mu, real_sigma = real_statistics(features, real_images, cache, batch_size, progress)
    real_joint = _real_joint(features, real_images, test_data.labels[:num_samples], cache,
                             batch_size, progress)
    real_accuracy = attribute_accuracy(classifier, test_data.images, test_data.labels)
    real_balanced = balanced_attribute_accuracy(classifier, test_data.images, test_data.labels)
    return Evaluation(test_data, classifier, features, real_mu, real_sigma, real_joint,
                      real_accuracy, real_balanced, num_samples, iw_samples,
                      min(likelihood_images, len(test_data)), batch_size, seed, device,
                      min(flip_samples, num_samples))


def _real_joint(features: nn.Module, images: Tensor, labels: Tensor, cache: Path | None,
                batch_size: int, progress: bool) -> dict:
    """The real set's joint (features, labels) statistics, cached beside the feature statistics."""
    path = None if cache is None else cache.with_name("joint_" + cache.name)
    if path is not None and path.is_file():
        try:
            with open(path, "rb") as file, np.load(file, allow_pickle=False) as stored:
                return {"scale": float(stored["scale"]), "mu": stored["mu"],
                        "sigma": stored["sigma"]}
        except Exception as error:  # zipfile.BadZipFile, a missing key, a truncated array
            warnings.warn(f"joint statistics cache {path} is damaged ({type(error).__name__}: "
                          f"{error}); recomputing and rewriting it", RuntimeWarning,
                          stacklevel=2)
    joint = real_joint_statistics(image_features(features, images, batch_size, progress,
                                                 "features (real, joint)"), labels)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: np.savez(file, **joint))
    return joint


def _feature_space(feature_space: str, inception_weights, classifier: AttributeClassifier,
                   device: torch.device) -> nn.Module:
    """The FID Inception where asked and found; else the classifier's features (FD_attr)."""
    if feature_space in ("auto", "inception"):
        try:
            return load_fid_inception(inception_weights, device)
        except InceptionWeightsError as error:
            if feature_space == "inception":
                raise
            warnings.warn(f"No FID: {error}. Using FD_attr instead.", stacklevel=3)
    return ClassifierFeatures(classifier)


def evaluate_model(model, evaluation: Evaluation, progress: bool = True) -> dict:
    """One row of the results table for a loaded model.

    Likelihoods use the model's fixed decoder σ: σ = 1 for ``gaussian``, the training-set σ* for
    the σ-models and for ``mse_kl``, whose loss has no σ of its own.
    """
    ev = evaluation
    data = ev.test_data
    if (model.config.image_size, model.config.num_attributes) != (data.image_size,
                                                                  data.num_attributes):
        raise ConfigError(f"model {model.config.model} is for {model.config.num_attributes} "
                          f"attributes at {model.config.image_size}px but the test data has "
                          f"{data.num_attributes} at {data.image_size}px; load the matching data")
    model = model.to(ev.device).eval()
    name = model.config.model
    log_w = dataset_log_weights(model, data, ev.iw_samples, ev.likelihood_images, seed=ev.seed,
                                progress=progress)
    likelihoods = likelihood_summary(log_w, 3 * data.image_size ** 2)
    labels = data.labels[:ev.num_samples]
    generated, samples = generated_features(model, labels, ev.features, ev.batch_size, ev.seed,
                                            progress)
    control = shuffled_label_control(model, labels, ev.features, (ev.real_mu, ev.real_sigma),
                                     ev.real_joint, ev.seed, ev.batch_size, features=generated)
    accuracy = attribute_accuracy(ev.classifier, samples, labels)
    row = {"model": run_name(model.config), "encoder_sees_labels": model.config.encoder_sees_labels,
           **likelihoods, "decoder_sigma": math.exp(model.decoder_log_sigma.item()),
           "distance_name": ev.distance_name, "distance": control["distance"],
           "paper_fid": PAPER_FID.get(name, float("nan")),
           "attribute_accuracy": accuracy.mean().item(),
           "real_attribute_accuracy": ev.real_accuracy.mean().item(),
           "num_samples": ev.num_samples, "protocol": ev.protocol}
    row.update({f"accuracy_{attr}": value.item()
                for attr, value in zip(data.attribute_names, accuracy)})
    row.update(_conditioning_columns(model, ev, samples, labels, control))
    row.update(_latent_columns(model, ev))
    return row


def _conditioning_columns(model, ev: Evaluation, samples: Tensor, labels: Tensor,
                          control: dict) -> dict:
    """Balanced accuracy, the flip test and the shuffled-label control (chapter 6)."""
    balanced = balanced_attribute_accuracy(ev.classifier, samples, labels)
    flips = flip_test(model, ev.classifier, labels[:ev.flip_samples], ev.seed, ev.batch_size)
    columns = {"balanced_accuracy": balanced.mean().item(),
               "real_balanced_accuracy": ev.real_balanced_accuracy.mean().item(),
               "flip_rate": flips.mean().item(), "flip_samples": ev.flip_samples,
               "shuffled_distance": control["shuffled_distance"],
               "joint_distance": control["joint_distance"],
               "shuffled_joint_distance": control["shuffled_joint_distance"]}
    for attr, value, flip in zip(ev.test_data.attribute_names, balanced, flips):
        columns[f"balanced_accuracy_{attr}"] = value.item()
        columns[f"flip_rate_{attr}"] = flip.item()
    return columns


def _latent_columns(model, ev: Evaluation) -> dict:
    """The prior hole and the active units, over the first ``num_samples`` test images."""
    means, _ = posterior_codes(model, ev.test_data, ev.num_samples, seed=ev.seed)
    return {"prior_hole": prior_hole_distance(model, ev.test_data, ev.num_samples,
                                              seed=ev.seed),
            "active_units": active_units(means), "latent_dim": model.config.latent_dim}


def evaluate_checkpoint(path: str | os.PathLike, train_data: AttributeImages,
                        test_data: AttributeImages, *, evaluation: Evaluation | None = None,
                        progress: bool = True, **options) -> dict:
    """The results row of one checkpoint (checked first: trained to the end, on these data,
    finite; :func:`runs.check_checkpoint`); ``options`` go to :func:`prepare_evaluation`."""
    check_checkpoint(path, data=train_data)
    model = load_model(path)
    evaluation = evaluation or prepare_evaluation(train_data, test_data, progress=progress,
                                                  **options)
    return evaluate_model(model, evaluation, progress)


def evaluate_run(run_dir: str | os.PathLike, train_data: AttributeImages,
                 test_data: AttributeImages, models=PAPER_MODEL_NAMES, *, seeds=None,
                 allow_missing: bool = False, results_dir: str | os.PathLike | None = None,
                 device="auto", progress: bool = True, **options) -> list:
    """Evaluate ``run_dir/<model>/checkpoint.pt`` for each model — or, with ``seeds``, each
    seed's ``run_dir/seed<k>/<model>/checkpoint.pt`` (rows get a ``seed``) — with one
    classifier and one set of real statistics; merge the rows into ``results.csv`` and write
    ``results.md`` (beside the paper's Table 1; mean ± s.e. over seeds) in ``results_dir``
    (default ``run_dir``), and return the rows.

    Before anything is computed or written, every checkpoint is checked against its folder and
    the run (:mod:`runs`): the model and seed it records, training finished and not running,
    the data's attributes, image size and images, one configuration per model. A missing one is
    an error naming it; with ``allow_missing`` the rest are evaluated and a warning and
    ``results.md`` say what was left out. ``models`` are run names (``sigma``, or ``sigma_qxy``
    for its ablation). The attribute classifier and the cached real statistics go to
    ``cache_dir`` (default ``results_dir/eval_cache``).
    """
    run = locate_run(run_dir, models, seeds, allow_missing)
    check_run(run, train_data, test_data)
    folder = writable_results_folder(run_dir if results_dir is None else results_dir)
    if run.missing:
        warnings.warn(run.left_out(), RuntimeWarning, stacklevel=2)
    options.setdefault("cache_dir", folder / "eval_cache")
    evaluation = prepare_evaluation(train_data, test_data, device=device, progress=progress,
                                    **options)
    # a results.csv of another protocol is refused now, not after the evaluation
    merge_results(read_results(folder / RESULTS_CSV), [
        {**({} if entry.seed is None else {"seed": entry.seed}), "model": entry.model,
         "protocol": evaluation.protocol, "distance_name": evaluation.distance_name}
        for entry in run.found], folder / RESULTS_CSV)
    rows = []
    for entry in run.found:
        row = evaluate_model(load_model(entry.path), evaluation, progress)
        rows.append(row if entry.seed is None else {"seed": entry.seed, **row})
    write_results(rows, folder, notes=[run.left_out()])
    return rows


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------
def results_markdown(rows: list) -> str:
    """The results as a Markdown table next to the paper's Table 1 FIDs, with the protocol: one
    line per model, or, for rows of several seeds, the mean ± s.e. over them."""
    if not rows:
        raise ValueError("no results rows to format")
    name = rows[0]["distance_name"]
    if len({row.get("seed") for row in rows}) > 1:
        return summary_table(rows) + "\n" + "\n\n".join(_notes(rows)) + "\n"
    lines = [f"| model | −ELBO (nats) | IW-NLL (nats, K={rows[0]['iw_samples']}) | bits/dim | "
             f"decoder σ | {name} (ours) | FID (paper) | attribute acc. (samples) | "
             f"attribute acc. (real test) | balanced acc. (samples) | balanced acc. (real "
             f"test) | flip rate | {name}, shuffled labels | joint {name} | joint {name}, "
             f"shuffled labels | prior hole | active units |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['neg_elbo_nats']:.1f} | {r['iw_nll_nats']:.1f} | "
                     f"{r['bits_per_dim']:.3f} | {r['decoder_sigma']:.4f} | {r['distance']:.2f} | "
                     f"{r['paper_fid']:.1f} | {r['attribute_accuracy']:.3f} | "
                     f"{r['real_attribute_accuracy']:.3f} | {r['balanced_accuracy']:.3f} | "
                     f"{r['real_balanced_accuracy']:.3f} | {r['flip_rate']:.3f} | "
                     f"{r['shuffled_distance']:.2f} | {r['joint_distance']:.2f} | "
                     f"{r['shuffled_joint_distance']:.2f} | {r['prior_hole']:.2f} | "
                     f"{r['active_units']} of {r['latent_dim']} |")
    return "\n".join(lines) + "\n\n" + "\n\n".join(_notes(rows)) + "\n"


def summary_table(rows: list, columns=tuple(SUMMARY_COLUMNS), titles: dict | None = None) -> str:
    """Mean ± s.e. over the seeds of each model, for ``columns`` (keys of SUMMARY_COLUMNS)."""
    name = rows[0]["distance_name"]
    chosen = {c: (SUMMARY_COLUMNS[c][0].format(d=name), SUMMARY_COLUMNS[c][1]) for c in columns}
    return summary_markdown(summarize(rows, chosen), chosen, titles)


def _notes(rows: list) -> list:
    """The protocol and how to read the columns, under every results table."""
    name = rows[0]["distance_name"]
    paper = ", ".join(f"{model} {fid}" for model, fid in PAPER_FID.items())
    notes = [f"Protocol: {rows[0]['protocol']}.", f"The paper's Table 1 FIDs: {paper}.",
             f"The paper's FIDs come from another, unstated protocol; "
             f"{'they are not comparable with ' + name + ', a different feature space' if name != 'FID' else 'compare orderings, not values'}.",
             f"NLL: {PAPER_NLL_NOTE}.",
             "Balanced accuracy: the mean of the two recalls per attribute (a constant guess "
             "scores 0.5). Flip rate: same noise, one attribute flipped, the fraction of "
             "samples in which the classifier sees the change in the flipped direction. "
             "Shuffled labels: samples drawn for permuted labels; a distance that does not move "
             "cannot see conditioning; the joint distance fits (features, labels) pairs. Prior "
             "hole: latent Fréchet distance between q(z|x,y) codes and p(z|y) samples. Active "
             "units: latent dimensions with Var_x E_q[z] > 0.01 (Burda et al. 2016)."]
    if len({row.get("seed") for row in rows}) > 1:
        notes.append("Each cell: the mean ± standard error over the training seeds (one "
                     "checkpoint per seed; the same evaluation noise and test images).")
    return notes


def write_results(rows: list, folder: str | os.PathLike, notes=()) -> tuple:
    """Merge ``rows`` into ``folder/results.csv`` (a row of the same seed and model is
    replaced, the others are kept: :func:`results.merge_results`) and write ``results.md`` of
    the merged table with ``notes`` under it; both atomically. Return both paths.

    No rows is an error that leaves the files as they are."""
    if not rows:
        raise ConfigError(f"no results rows to write; {Path(folder) / RESULTS_CSV} is kept as "
                          f"it is")
    csv_path = Path(folder) / RESULTS_CSV
    merged = merge_results(read_results(csv_path), rows, csv_path)
    markdown = results_markdown(merged) + "".join(f"\n{note}\n" for note in notes if note)
    return write_results_files(merged, markdown, folder)
