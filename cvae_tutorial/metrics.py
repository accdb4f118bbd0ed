"""Test-split metrics of the three CVAEs (DESIGN §3–4): likelihood bounds, attribute fidelity,
and the Fréchet distance of conditional samples; ``evaluate_run`` puts them beside the paper's
Table 1.

Metrics take tensors and return numbers; loading checkpoints and writing tables sit in
``evaluate_checkpoint`` / ``evaluate_run`` at the bottom.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .cvae import MODEL_NAMES, ConfigError, check_field_types
from .data import AttributeImages, to_float
from .fid import (InceptionWeightsError, data_fingerprint, feature_statistics,
                  frechet_distance_from_statistics, generated_features, load_fid_inception,
                  real_statistics, statistics_cache_path)
from .losses import gaussian_log_prob
from .train import (CHECKPOINT_FORMAT, checkpoint_path, epoch_batches, flip_mask, load_batch,
                    load_checkpoint, load_model, resolve_device, save_checkpoint)

# The paper's Table 1 FIDs. Its NLL column (-4218 ... -6702) has no stated protocol (units,
# dequantisation, σ), so it cannot be reproduced and is not compared (DESIGN §3).
PAPER_FID = {"gaussian": 300.9, "sigma": 173.5, "sigma_flow": 164.5}
PAPER_NLL_NOTE = ("the paper's NLL column (-4218 ... -6702) states no units, dequantisation or "
                  "decoder σ, so it is not reproducible and not compared")


# ----------------------------------------------------------------------------------------------
# Likelihoods: ELBO and the importance-weighted bound (Burda et al. 2016)
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def log_importance_weights(model, x: Tensor, y: Tensor, num_samples: int,
                           generator: torch.Generator | None = None,
                           max_batch: int = 4096) -> Tensor:
    """log w_k = log p(x|z_k,y) + log p(z_k|y) − log q(z_k|x,y), z_k ~ q(z|x,y); shape [B, K].

    Uses the model's fixed decoder σ (``reconstruction_nll(..., fixed_sigma=True)``), so the
    weights are those of one density, not of a σ refitted to each batch.
    """
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples (K) must be a positive int, got {num_samples!r}")
    mu_q, log_sigma_q = model.encode(x, y)
    per_chunk = max(1, min(num_samples, max_batch // max(1, len(x))))
    columns = []
    for start in range(0, num_samples, per_chunk):
        k = min(per_chunk, num_samples - start)
        mu, log_sigma = mu_q.repeat(k, 1), log_sigma_q.repeat(k, 1)  # sample-major: [k*B, D]
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(log_sigma) * eps
        x_k = x.repeat(k, *([1] * (x.ndim - 1)))
        y_k = y.repeat(k, 1)
        log_px, _ = model.reconstruction_nll(x_k, model.decode(z, y_k), fixed_sigma=True)
        log_w = -log_px + model.prior_log_prob(z, y_k) - gaussian_log_prob(z, mu, log_sigma)
        columns.append(log_w.view(k, len(x)).T)
    return torch.cat(columns, 1)


def importance_weighted_bound(log_weights: Tensor, num_samples: int | None = None) -> Tensor:
    """log (1/K) Σ_k w_k over the first K columns, per row: ≥ the ELBO, → log p(x|y) as K grows."""
    k = log_weights.shape[1] if num_samples is None else num_samples
    if not 1 <= k <= log_weights.shape[1]:
        raise ValueError(f"num_samples must be in 1..{log_weights.shape[1]}, got {k}")
    return torch.logsumexp(log_weights[:, :k], 1) - math.log(k)


def dequantize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantisation of 8-bit images: x = (x_int + u) / 256, u ~ U[0, 1)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"dequantize expects uint8 images, got {images.dtype}")
    noise = torch.rand(images.shape, generator=generator, device=images.device)
    return (images.float() + noise) / 256


def bits_per_dim(nll_nats: float | Tensor, num_dims: int):
    """Bits per dimension of 8-bit data from the NLL of dequantised x in [0, 1]:
    (NLL + P log 256) / (P log 2) (the P log 256 turns a density on [0, 1] into one on [0, 256))."""
    return (nll_nats + num_dims * math.log(256)) / (num_dims * math.log(2))


@torch.no_grad()
def dataset_log_weights(model, data: AttributeImages, num_samples: int = 100,
                        num_images: int | None = None, batch_size: int = 64, seed: int = 0,
                        progress: bool = True) -> Tensor:
    """Log importance weights [N, K] of the first ``num_images`` images of ``data``, dequantised."""
    device = next(model.parameters()).device
    count = len(data) if num_images is None else min(int(num_images), len(data))
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    rows = []
    for start in tqdm(range(0, count, batch_size), desc=f"IW bound, K={num_samples}",
                      disable=not progress, unit="batch"):
        stop = min(start + batch_size, count)
        x = dequantize(data.images[start:stop].to(device), generator)
        rows.append(log_importance_weights(model, x, data.labels[start:stop].to(device),
                                           num_samples, generator).cpu())
    model.train(was_training)
    return torch.cat(rows)


def likelihood_summary(log_weights: Tensor, num_dims: int) -> dict:
    """Negative ELBO and IW-NLL (nats per image, mean over images) and their bits/dim."""
    neg_elbo = -log_weights.mean(1).mean().item()  # ELBO = E_q[log w], here over K draws
    iw_nll = -importance_weighted_bound(log_weights).mean().item()
    return {"neg_elbo_nats": neg_elbo, "iw_nll_nats": iw_nll,
            "neg_elbo_bits_per_dim": bits_per_dim(neg_elbo, num_dims),
            "bits_per_dim": bits_per_dim(iw_nll, num_dims),
            "iw_samples": log_weights.shape[1], "likelihood_images": log_weights.shape[0]}


# ----------------------------------------------------------------------------------------------
# Attribute classifier
# ----------------------------------------------------------------------------------------------
@dataclass
class ClassifierConfig:
    """A small CNN that predicts the attributes from an image; saved with its checkpoint."""

    image_size: int = 32
    num_attributes: int = 10
    channels: int = 32
    feature_dim: int = 128
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self):
        check_field_types(self)
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name != "seed" and not value > 0:
                raise ConfigError(f"ClassifierConfig.{field.name} must be positive, got {value}")


class AttributeClassifier(nn.Module):
    """Four stride-2 convolutions, global average pooling, a ``feature_dim`` hidden layer
    (the space of FD_attr) and one logit per attribute."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        c = config.channels
        layers, in_channels = [], 3
        for out_channels in (c, 2 * c, 4 * c, 4 * c):
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
                       nn.BatchNorm2d(out_channels), nn.ReLU()]
            in_channels = out_channels
        self.convs = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                   nn.Linear(in_channels, config.feature_dim), nn.ReLU())
        self.head = nn.Linear(config.feature_dim, config.num_attributes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features [B, feature_dim] of float images in [0, 1]."""
        return self.convs(x)

    def forward(self, x: Tensor) -> Tensor:
        """Attribute logits [B, A]."""
        return self.head(self.features(x))


class ClassifierFeatures(nn.Module):
    """The classifier's penultimate layer as a feature space for a Fréchet distance: FD_attr."""

    def __init__(self, classifier: AttributeClassifier):
        super().__init__()
        self.classifier = classifier
        self.name = "FD_attr"
        self.protocol = (f"Fréchet distance in the attribute classifier's "
                         f"{classifier.config.feature_dim}-d penultimate features (not FID)")

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier.features(x)


def _classifier_state(classifier, data_key, history):
    return {"format": CHECKPOINT_FORMAT, "kind": "attribute_classifier",
            "config": asdict(classifier.config), "data": data_key,
            "model": classifier.state_dict(), "history": history}


def train_attribute_classifier(train_data: AttributeImages, config: ClassifierConfig | None = None,
                               checkpoint: str | os.PathLike | None = None, device="auto",
                               progress: bool = True) -> AttributeClassifier:
    """Train the classifier on ``train_data`` (BCE, random flips), or load it from ``checkpoint``
    when that was trained with the same config on the same data. Returns it in eval mode."""
    config = config or ClassifierConfig(image_size=train_data.image_size,
                                        num_attributes=train_data.num_attributes)
    if (config.image_size, config.num_attributes) != (train_data.image_size,
                                                      train_data.num_attributes):
        raise ConfigError(f"ClassifierConfig is for {config.num_attributes} attributes at "
                          f"{config.image_size}px but the data has {train_data.num_attributes} at "
                          f"{train_data.image_size}px")
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    data_key = {"attribute_names": list(train_data.attribute_names), "num_images": len(train_data),
                "fingerprint": data_fingerprint(train_data.images, train_data.labels)}
    classifier = AttributeClassifier(config)
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        if state.get("config") == asdict(config) and state.get("data") == data_key:
            classifier.load_state_dict(state["model"])
            return classifier.to(device).eval()
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        classifier = AttributeClassifier(config).to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=config.lr)
    batch_size = min(config.batch_size, len(train_data))
    steps = len(epoch_batches(len(train_data), batch_size, config.seed, 0))
    history = []
    classifier.train()
    with tqdm(total=config.epochs * steps, desc="training attribute classifier",
              disable=not progress, unit="step") as bar:
        for epoch in range(config.epochs):
            batches = epoch_batches(len(train_data), batch_size, config.seed, epoch)
            flips = flip_mask(len(train_data), config.seed, epoch)
            total = 0.0
            for indices in batches:
                x, y = load_batch(train_data, indices, device, flips)
                loss = nn.functional.binary_cross_entropy_with_logits(classifier(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item()
                bar.update()
                bar.set_postfix(epoch=epoch, bce=f"{loss.item():.3f}")
            history.append({"epoch": epoch + 1, "train_bce": total / len(batches)})
    classifier.eval()
    if checkpoint is not None:
        save_checkpoint(_classifier_state(classifier, data_key, history), checkpoint)
    return classifier


@torch.no_grad()
def attribute_accuracy(classifier: AttributeClassifier, images: Tensor, labels: Tensor,
                       batch_size: int = 256) -> Tensor:
    """Per-attribute accuracy [A] of the classifier on uint8 images against ``labels``."""
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (quantised), got {images.dtype}; use to_uint8")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} label rows")
    device = next(classifier.parameters()).device
    correct = torch.zeros(labels.shape[1])
    for start in range(0, len(images), batch_size):
        logits = classifier(to_float(images[start:start + batch_size].to(device))).cpu()
        correct += ((logits > 0).float() == labels[start:start + batch_size]).float().sum(0)
    return correct / len(images)


# ----------------------------------------------------------------------------------------------
# Evaluating checkpoints
# ----------------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """What every model of a run is measured with, built once (classifier, features, real stats)."""

    test_data: AttributeImages
    classifier: AttributeClassifier
    features: nn.Module
    real_mu: np.ndarray
    real_sigma: np.ndarray
    real_accuracy: Tensor
    num_samples: int
    iw_samples: int
    likelihood_images: int
    batch_size: int
    seed: int
    device: torch.device

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
    digest = hashlib.sha1()
    for tensor in module.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:10]


def _check_count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


def prepare_evaluation(train_data: AttributeImages, test_data: AttributeImages, *,
                       dataset: str = "embedded", device="auto", feature_space: str = "auto",
                       inception_weights: str | os.PathLike | None = None,
                       num_samples: int = 1000, iw_samples: int = 100,
                       likelihood_images: int = 256, batch_size: int = 100, seed: int = 0,
                       cache_dir: str | os.PathLike | None = None,
                       classifier: AttributeClassifier | None = None,
                       classifier_config: ClassifierConfig | None = None,
                       progress: bool = True) -> Evaluation:
    """Train (or load) the attribute classifier, pick the feature space and compute (or load)
    the real test statistics.

    ``feature_space``: 'inception' (FID; an error says where the weights go when none are
    found), 'attribute' (FD_attr), or 'auto' (FID when the weights are found, else FD_attr with
    the reason printed).
    """
    if feature_space not in ("auto", "inception", "attribute"):
        raise ConfigError(f"feature_space must be 'auto', 'inception' or 'attribute', got "
                          f"{feature_space!r}")
    _check_count("num_samples", num_samples, 2)  # a covariance needs two images
    _check_count("iw_samples", iw_samples)
    _check_count("likelihood_images", likelihood_images)
    _check_count("batch_size", batch_size)
    if num_samples > len(test_data):
        raise ConfigError(f"num_samples={num_samples} exceeds the {len(test_data)} test images "
                          f"it is compared with; lower num_samples")
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    if classifier is None:
        ckpt = Path(cache_dir) / "attribute_classifier.pt" if cache_dir is not None else None
        classifier = train_attribute_classifier(train_data, classifier_config, ckpt, device,
                                                progress)
    classifier = classifier.to(device).eval()
    features = None
    if feature_space in ("auto", "inception"):
        try:
            features = load_fid_inception(inception_weights, device)
        except InceptionWeightsError as error:
            if feature_space == "inception":
                raise
            print(f"No FID: {error}\nUsing FD_attr instead.")
    if features is None:
        features = ClassifierFeatures(classifier)
    real_images = test_data.images[:num_samples]
    fingerprint = data_fingerprint(real_images, test_data.labels[:num_samples])
    if isinstance(features, ClassifierFeatures):  # its space depends on the classifier's weights
        fingerprint += "_" + _weights_fingerprint(classifier)
    cache = None if cache_dir is None else statistics_cache_path(
        cache_dir, features.name, dataset, "test", test_data.image_size, num_samples, fingerprint)
    real_mu, real_sigma = real_statistics(features, real_images, cache, batch_size, progress)
    real_accuracy = attribute_accuracy(classifier, test_data.images, test_data.labels)
    return Evaluation(test_data, classifier, features, real_mu, real_sigma, real_accuracy,
                      num_samples, iw_samples, min(likelihood_images, len(test_data)), batch_size,
                      seed, device)


def evaluate_model(model, evaluation: Evaluation, progress: bool = True) -> dict:
    """One row of the results table for a loaded model."""
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
    distance = frechet_distance_from_statistics(*feature_statistics(generated), ev.real_mu,
                                                ev.real_sigma)
    accuracy = attribute_accuracy(ev.classifier, samples, labels)
    row = {"model": name, **likelihoods,
           "decoder_sigma": math.exp(model.decoder_log_sigma.item()),
           "distance_name": ev.distance_name, "distance": distance,
           "paper_fid": PAPER_FID.get(name, float("nan")),
           "attribute_accuracy": accuracy.mean().item(),
           "real_attribute_accuracy": ev.real_accuracy.mean().item(),
           "num_samples": ev.num_samples, "protocol": ev.protocol}
    row.update({f"accuracy_{attr}": value.item()
                for attr, value in zip(data.attribute_names, accuracy)})
    return row


def evaluate_checkpoint(path: str | os.PathLike, train_data: AttributeImages,
                        test_data: AttributeImages, *, evaluation: Evaluation | None = None,
                        progress: bool = True, **options) -> dict:
    """The results row of one checkpoint; ``options`` go to :func:`prepare_evaluation`."""
    model = load_model(path)
    evaluation = evaluation or prepare_evaluation(train_data, test_data, progress=progress,
                                                  **options)
    return evaluate_model(model, evaluation, progress)


def evaluate_run(run_dir: str | os.PathLike, train_data: AttributeImages,
                 test_data: AttributeImages, models=MODEL_NAMES, *, device="auto",
                 progress: bool = True, **options) -> list:
    """Evaluate ``run_dir/<model>/checkpoint.pt`` for each model; write ``run_dir/results.csv``
    and ``results.md`` (beside the paper's Table 1) and return the rows.

    The attribute classifier and the cached real statistics go to ``run_dir/eval_cache``.
    """
    run_dir = Path(run_dir)
    models = [models] if isinstance(models, str) else list(models)
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; use names from {MODEL_NAMES}")
    missing = [str(checkpoint_path(run_dir, m)) for m in models
               if not checkpoint_path(run_dir, m).exists()]
    if missing:
        raise FileNotFoundError(f"no checkpoint at {', '.join(missing)}; train these models first "
                                f"(chapter 5 writes them) or pass the run folder that has them")
    options.setdefault("cache_dir", run_dir / "eval_cache")
    evaluation = prepare_evaluation(train_data, test_data, device=device, progress=progress,
                                    **options)
    rows = [evaluate_checkpoint(checkpoint_path(run_dir, m), train_data, test_data,
                                evaluation=evaluation, progress=progress) for m in models]
    write_results(rows, run_dir)
    return rows


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------
def results_markdown(rows: list) -> str:
    """The results as a Markdown table next to the paper's Table 1 FIDs, with the protocol."""
    if not rows:
        raise ValueError("no results rows to format")
    name = rows[0]["distance_name"]
    lines = [f"| model | −ELBO (nats) | IW-NLL (nats, K={rows[0]['iw_samples']}) | bits/dim | "
             f"decoder σ | {name} (ours) | FID (paper) | attribute acc. (samples) | "
             f"attribute acc. (real test) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['neg_elbo_nats']:.1f} | {r['iw_nll_nats']:.1f} | "
                     f"{r['bits_per_dim']:.3f} | {r['decoder_sigma']:.4f} | {r['distance']:.2f} | "
                     f"{r['paper_fid']:.1f} | {r['attribute_accuracy']:.3f} | "
                     f"{r['real_attribute_accuracy']:.3f} |")
    notes = [f"Protocol: {rows[0]['protocol']}.",
             f"The paper's FIDs come from another, unstated protocol; "
             f"{'they are not comparable with ' + name + ', a different feature space' if name != 'FID' else 'compare orderings, not values'}.",
             f"NLL: {PAPER_NLL_NOTE}."]
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def write_results(rows: list, folder: str | os.PathLike) -> tuple:
    """Write ``results.csv`` (every column) and ``results.md`` into ``folder``; return both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    csv_path, md_path = folder / "results.csv", folder / "results.md"
    with open(csv_path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(results_markdown(rows))
    return csv_path, md_path
