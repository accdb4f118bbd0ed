"""Evaluating a run (chapter 6): every checkpoint's likelihoods, distances (at N, extrapolated
to N = ∞, KID, against the real-vs-real floor), attribute fidelity, the shuffled-label control and
its latent space on the test split, in one table beside the paper's Table 1 (``results.csv``,
``.md``), with the protocol card.

:func:`prepare_evaluation` builds what every model is measured against once (the classifier, the
reference and floor features); :func:`evaluate_model` draws from a model once
(:func:`~.draws.draw`), reads each image set once (:class:`~.judge.Judge`) and computes every
column of :data:`~.metrics.METRICS` from those tensors.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..checkpoints import load_model
from ..config import ConfigError, check_int, resolve_device
from ..cvae import PAPER_MODEL_NAMES, run_name
from ..data.images import AttributeImages
from .classifier import AttributeClassifier, ClassifierConfig, train_attribute_classifier
from .conditioning import balanced_accuracy, real_joint_statistics
from .draws import draw
from .frechet import curve_sizes
from .inception import InceptionWeightsError, load_fid_inception
from .judge import Judge
from .metrics import COLUMNS, METRICS, floor_columns, read_draws
from .protocol import (ProtocolCard, load_reference, preprocessing, reference_path,
                       save_reference)
from .results import RESULTS_CSV, merge_results, read_results, write_results_files
from .runs import check_run, locate_run, writable_results_folder
from .uncertainty import summarize, summary_markdown

# The paper's Table 1 FIDs. Its NLL column (-4218 ... -6702) has no stated protocol (units,
# dequantisation, σ), so it cannot be reproduced and is not compared (chapter 6).
PAPER_FID = {"gaussian": 300.9, "sigma": 173.5, "sigma_flow": 164.5}
PAPER_NLL_NOTE = ("the paper's NLL column (-4218 ... -6702) states no units, dequantisation or "
                  "decoder σ, so it is not reproducible and not compared")


@dataclass
class Evaluation:
    """What every model of a run is measured against, built once."""

    test_data: AttributeImages
    judge: Judge
    card: ProtocolCard
    reference: np.ndarray     # features [N, D] of the first N test images
    floor: np.ndarray         # features [N, D] of N other real images (the floor)
    real_joint: dict          # the reference's joint (features, labels) statistics
    real_accuracy: Tensor     # [A] the classifier on the real test images: the ceilings
    real_balanced_accuracy: Tensor
    num_samples: int
    iw_samples: int
    likelihood_images: int
    batch_size: int
    seed: int
    device: torch.device
    flip_samples: int
    curve_sizes: list
    kid_block: int
    floor_row: dict | None = None  # the floor's columns, the same in every row

    def __post_init__(self):
        if self.floor_row is None:
            self.floor_row = floor_columns(self)

    @property
    def classifier(self) -> AttributeClassifier:
        return self.judge.classifier

    @property
    def distance_name(self) -> str:
        return self.judge.name

    @property
    def protocol(self) -> str:
        return (f"{self.distance_name}: {self.num_samples} samples conditioned on the first "
                f"{self.num_samples} test labels vs those {self.num_samples} test images at "
                f"{self.test_data.image_size}x{self.test_data.image_size}, both quantised to "
                f"uint8; {self.judge.protocol}. Likelihoods: {self.likelihood_images} test "
                f"images, K={self.iw_samples}, uniform dequantisation, fixed decoder σ")


def prepare_evaluation(train_data: AttributeImages, test_data: AttributeImages, *,
                       floor_data: AttributeImages | None = None,
                       dataset: str = "embedded", device="auto", feature_space: str = "auto",
                       inception_weights: str | os.PathLike | None = None,
                       num_samples: int = 1000, iw_samples: int = 100,
                       likelihood_images: int = 256, batch_size: int = 256, seed: int = 0,
                       flip_samples: int = 256, kid_block: int = 100,
                       cache_dir: str | os.PathLike | None = None,
                       classifier: AttributeClassifier | None = None,
                       classifier_config: ClassifierConfig | None = None,
                       progress: bool = True) -> Evaluation:
    """Train (or load) the attribute classifier, pick the feature space and read (or load) the
    real images' features.

    ``feature_space``: 'inception' (FID; an error says where the weights go when none are
    found), 'attribute' (FD_attr), or 'auto' (FID when the weights are found, else FD_attr with
    a warning that says why). The reference is the first ``num_samples`` test images; the floor
    compares it with ``num_samples`` other real images: ``floor_data`` (e.g. the validation
    split), else the next ``num_samples`` test images. ``flip_samples``: the flip test uses the
    first that many labels. ``kid_block``: KID's block size (its s.e. needs two blocks).
    ``batch_size``: images per pass of a model and of the judge's networks (a CPU runs a few
    large passes faster than many small ones; lower it when memory is short).
    """
    if feature_space not in ("auto", "inception", "attribute"):
        raise ConfigError(f"feature_space must be 'auto', 'inception' or 'attribute', got "
                          f"{feature_space!r}")
    check_int("num_samples", num_samples, 2)  # a covariance needs two images
    for name, value in (("iw_samples", iw_samples), ("likelihood_images", likelihood_images),
                        ("batch_size", batch_size), ("flip_samples", flip_samples),
                        ("kid_block", kid_block)):
        check_int(name, value, 1)
    if num_samples > len(test_data):
        raise ConfigError(f"num_samples={num_samples} exceeds the {len(test_data)} test images "
                          f"it is compared with; lower num_samples")
    if floor_data is None:
        if len(test_data) < 2 * num_samples:
            raise ConfigError(f"the real-vs-real floor needs {num_samples} real images besides "
                              f"the {num_samples} reference ones, but the test split has "
                              f"{len(test_data)}; pass floor_data (e.g. the validation split) "
                              f"or lower num_samples")
        floor_data, floor_name = (AttributeImages(test_data.images[num_samples:],
                                                  test_data.labels[num_samples:],
                                                  test_data.attribute_names),
                                  f"test split, images {num_samples + 1}-{2 * num_samples}")
    else:
        floor_name = f"another split, first {num_samples} images"
    if len(floor_data) < num_samples:
        raise ConfigError(f"floor_data has {len(floor_data)} images, fewer than num_samples="
                          f"{num_samples}; pass a larger set or lower num_samples")
    device = resolve_device(device)
    if classifier is None:
        ckpt = Path(cache_dir) / "attribute_classifier.pt" if cache_dir is not None else None
        classifier = train_attribute_classifier(train_data, classifier_config, ckpt, device,
                                                progress)
    judge = Judge(classifier.to(device).eval(),
                  _feature_network(feature_space, inception_weights, device), batch_size)
    reference_set, floor_set = test_data.subset(num_samples), floor_data.subset(num_samples)
    sizes = curve_sizes(num_samples)
    card = ProtocolCard(
        dataset=dataset, image_size=test_data.image_size,
        reference=f"test split, first {num_samples} images",
        reference_digest=reference_set.fingerprint()["digest"], floor=floor_name,
        floor_digest=floor_set.fingerprint()["digest"], num_samples=num_samples,
        preprocessing=preprocessing(dataset, test_data.image_size),
        quantisation="real and generated images rounded to uint8 in memory, as image files "
                     "are; no file round trip (no PNG/JPEG encoding)",
        feature_network=judge.protocol, weights_sha256=judge.weights_sha256,
        labels=f"sample i is drawn for the labels of reference image i; the flip test uses "
               f"the first {min(flip_samples, num_samples)}",
        seed=seed, curve=f"FD at N = {', '.join(map(str, sizes))} (same N of samples and "
                         f"reference images, random subsets), fit FD_N = FD∞ + b/N",
        kid=f"unbiased MMD², kernel (x·y/d + 1)³, mean ± s.e. over disjoint blocks of "
            f"{kid_block}")
    path = None if cache_dir is None else reference_path(cache_dir, card, judge.name)
    stored = None if path is None else load_reference(path, card, ("reference", "floor"))
    if stored is None:
        stored = {"reference": judge.read(reference_set.images, desc="features (reference)",
                                          progress=progress).features,
                  "floor": judge.read(floor_set.images, desc="features (floor)",
                                      progress=progress).features}
        if path is not None:
            save_reference(path, card, **stored)
    real = judge.read(test_data.images, features=False).predictions
    return Evaluation(
        test_data, judge, card, stored["reference"], stored["floor"],
        real_joint_statistics(stored["reference"], reference_set.labels),
        (real == test_data.labels).float().mean(0), balanced_accuracy(real, test_data.labels),
        num_samples, iw_samples, min(likelihood_images, len(test_data)), batch_size, seed,
        device, min(flip_samples, num_samples), sizes, kid_block)


def _feature_network(feature_space: str, inception_weights, device: torch.device):
    """The FID Inception where asked and found; None (the classifier's features: FD_attr) else."""
    if feature_space in ("auto", "inception"):
        try:
            return load_fid_inception(inception_weights, device)
        except InceptionWeightsError as error:
            if feature_space == "inception":
                raise
            warnings.warn(f"No FID: {error}. Using FD_attr instead.", stacklevel=3)
    return None


def evaluate_model(model, evaluation: Evaluation, progress: bool = True) -> dict:
    """One row of the results table for a loaded model: draw once, read each set once, and
    compute every metric of :data:`~.metrics.METRICS` from those tensors.

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
    draws = draw(model, data.images[:ev.num_samples], data.labels[:ev.num_samples],
                 ev.flip_samples, ev.seed, ev.batch_size, progress)
    readings = read_draws(ev.judge, draws)
    row = {"model": run_name(model.config),
           "encoder_sees_labels": model.config.encoder_sees_labels,
           "distance_name": ev.distance_name,
           "paper_fid": PAPER_FID.get(model.config.model, float("nan")),
           "real_attribute_accuracy": ev.real_accuracy.mean().item(),
           "real_balanced_accuracy": ev.real_balanced_accuracy.mean().item(),
           "num_samples": ev.num_samples, "protocol": ev.protocol, "card_key": ev.card.key()}
    for metric in METRICS:
        row.update(metric(model, draws, readings, ev))
    row.update(ev.floor_row)
    return row


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
         "protocol": evaluation.protocol, "distance_name": evaluation.distance_name,
         "card_key": evaluation.card.key()}
        for entry in run.found], folder / RESULTS_CSV)
    rows = []
    for entry in run.found:
        row = evaluate_model(load_model(entry.path), evaluation, progress)
        rows.append(row if entry.seed is None else {"seed": entry.seed, **row})
    write_results(rows, folder, evaluation.card, notes=[run.left_out()])
    return rows


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------
def results_markdown(rows: list, card: ProtocolCard | None = None) -> str:
    """The results as a Markdown table next to the paper's Table 1 FIDs: one line per model,
    the mean ± s.e. over its seeds (or its value, from one run); then the real-vs-real floor,
    how to read the columns and the protocol card."""
    if not rows:
        raise ValueError("no results rows to format")
    return (summary_table(rows) + "\n" + floor_line(rows[0]) + "\n\n"
            + "\n\n".join(_notes(rows)) + "\n" + ("\n" + card.markdown() if card else ""))


def floor_line(row: dict) -> str:
    """The distances between two disjoint real sets at the same N: a perfect model's values."""
    name = row["distance_name"]
    return (f"Real-vs-real floor (two disjoint real sets of N = {row['num_samples']}): "
            f"{name} {float(row['floor_distance']):.2f}, {name}∞ "
            f"{float(row['floor_distance_inf']):.2f} ± {float(row['floor_distance_inf_se']):.2f}, "
            f"KID {float(row['floor_kid']):.3f} ± {float(row['floor_kid_se']):.3f}.")


def summary_table(rows: list, columns=tuple(COLUMNS), titles: dict | None = None) -> str:
    """Mean ± s.e. over the seeds of each model, for ``columns`` (keys of COLUMNS)."""
    name = rows[0]["distance_name"]
    chosen = {c: (COLUMNS[c].header.format(d=name), COLUMNS[c].fmt) for c in columns}
    return summary_markdown(summarize(rows, chosen), chosen, titles)


def _notes(rows: list) -> list:
    """The protocol and how to read the columns, under every results table."""
    name = rows[0]["distance_name"]
    paper = ", ".join(f"{model} {fid}" for model, fid in PAPER_FID.items())
    comparable = (f"they are not comparable with {name}, a different feature space"
                  if name != "FID" else "compare orderings, and values only under the same "
                  "protocol card (N, resolution, resize filter, reference split)")
    notes = [f"Protocol: {rows[0]['protocol']}.", f"The paper's Table 1 FIDs: {paper}.",
             f"The paper's FIDs come from another, unstated protocol; {comparable}.",
             f"NLL: {PAPER_NLL_NOTE}.",
             f"{name} is biased upward at finite N; {name}∞ extrapolates the N-curve to "
             f"N = ∞ (Chong & Forsyth 2020), KID is unbiased at any N (Bińkowski et al. 2018); "
             f"the floor is what two real sets score. "
             "Balanced accuracy: the mean of the two recalls per attribute (a constant guess "
             "scores 0.5). Flip rate: same noise, one attribute flipped, the fraction of "
             "samples in which the classifier sees the change in the flipped direction. "
             "Shuffled labels: samples drawn for permuted labels; a distance that does not move "
             "cannot see conditioning; the joint distance fits (features, labels) pairs. Prior "
             "hole: the fraction of p(z|y) draws whose 5-NN ball holds no q(z|x,y) draw, "
             "minus that of a second prior sample (0: the codes fill the prior). Active "
             "units: latent dimensions with Var_x E_q[z] > 0.01 within images of equal "
             "labels (Burda et al. 2016; a dimension that only tracks y is not counted)."]
    if len({row.get("seed") for row in rows}) > 1:
        notes.append("Each cell: the mean ± standard error over the training seeds (one "
                     "checkpoint per seed; the same evaluation noise and test images).")
    return notes


def write_results(rows: list, folder: str | os.PathLike, card: ProtocolCard | None = None,
                  notes=()) -> tuple:
    """Merge ``rows`` into ``folder/results.csv`` (a row of the same seed and model is
    replaced, the others are kept: :func:`results.merge_results`) and write ``results.md`` of
    the merged table, with ``notes`` and the protocol ``card`` under it; both atomically.
    Return both paths.

    No rows is an error that leaves the files as they are."""
    if not rows:
        raise ConfigError(f"no results rows to write; {Path(folder) / RESULTS_CSV} is kept as "
                          f"it is")
    csv_path = Path(folder) / RESULTS_CSV
    merged = merge_results(read_results(csv_path), rows, csv_path)
    markdown = results_markdown(merged, card) + "".join(f"\n{note}\n" for note in notes if note)
    return write_results_files(merged, markdown, folder)
