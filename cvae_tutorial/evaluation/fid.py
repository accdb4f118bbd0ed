"""Fréchet distances between image sets: FID with pytorch-fid's Inception, or another named space.

pytorch-fid's style: the network comes from ``pytorch_fid.inception``; the distance is computed
here, in float64, from the eigenvalues of a symmetric matrix (no ``scipy.linalg.sqrtm``); the
functions feed the network in-memory uint8 tensors in batches (no PNG folders) and cache the
real-image statistics (chapter 6).

A distance is called "FID" only when the features are the FID Inception's 2048-d pool3 with its
real weights; any other feature space gives a Fréchet distance under another name (``FD_attr``).
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.images import to_float, to_uint8
from ..files import atomic_write

INCEPTION_WEIGHTS_ENV = "CVAE_TUTORIAL_INCEPTION_WEIGHTS"
INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's file name
FID_PROTOCOL = "pytorch-fid InceptionV3 pool3 (2048-d), images resized to 299x299 bilinearly " \
               "by pytorch-fid"


class InceptionWeightsError(FileNotFoundError):
    """The FID Inception weights were not found anywhere and could not be downloaded."""


class NonFiniteSamplesError(FloatingPointError):
    """A model whose samples hold NaN or Inf: it cannot be evaluated."""


class FrechetDistanceError(ValueError):
    """Feature sets a Fréchet distance cannot be computed from."""


# ----------------------------------------------------------------------------------------------
# The Fréchet distance
# ----------------------------------------------------------------------------------------------
def feature_statistics(features) -> tuple:
    """(mean, covariance) of features [N, D] in float64; needs N >= 2 for a covariance."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise FrechetDistanceError(f"features must be a 2-D array [N, D], got shape "
                                   f"{features.shape}")
    if len(features) < 2:
        raise FrechetDistanceError(f"a Fréchet distance needs at least 2 images per set (a "
                                   f"covariance), got {len(features)}; use more samples")
    if not np.isfinite(features).all():
        raise FrechetDistanceError("features contain NaN or Inf; check the images and the "
                                   "feature network's weights")
    return features.mean(0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix (round-off negatives clipped to 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """Tr((Σ₁Σ₂)^½) of two covariances, as Σ √max(λ, 0) over the eigenvalues λ of Σ₁^½ Σ₂ Σ₁^½.

    Σ₁Σ₂ is similar to the symmetric PSD matrix Σ₁^½ Σ₂ Σ₁^½, so their square roots have the same
    trace; a symmetric eigendecomposition is stable where ``sqrtm`` of the non-symmetric product
    needs pytorch-fid's ε-retry, and singular covariances (fewer images than dimensions) are fine.
    """
    root = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    middle = root @ np.asarray(sigma2, dtype=np.float64) @ root
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2) -> float:
    """‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) in float64 (Heusel et al. 2017), the formula of
    pytorch-fid's ``calculate_frechet_distance`` without its SciPy ``sqrtm`` call."""
    mu1, mu2 = (np.atleast_1d(np.asarray(mu, np.float64)) for mu in (mu1, mu2))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise FrechetDistanceError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise FrechetDistanceError(f"covariances {sigma1.shape} and {sigma2.shape} do not match "
                                   f"the means' dimension {len(mu1)}; pass [D, D] covariances")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] and [M, D]."""
    return frechet_distance_from_statistics(*feature_statistics(features_a),
                                            *feature_statistics(features_b))


# ----------------------------------------------------------------------------------------------
# The FID Inception and its weights
# ----------------------------------------------------------------------------------------------
def hub_weights_path() -> Path:
    """Where torch hub (and so pytorch-fid's download) keeps the weights: $TORCH_HOME/hub/..."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def _missing_weights_message(reason: str) -> str:
    return (f"FID Inception weights not found ({reason}). Put pytorch-fid's file "
            f"{INCEPTION_WEIGHTS_FILE} (from pytorch_fid.inception.FID_WEIGHTS_URL) at "
            f"{hub_weights_path()}, or anywhere and pass its path (inception_weights=...) or set "
            f"{INCEPTION_WEIGHTS_ENV}=/path/to/{INCEPTION_WEIGHTS_FILE}. Offline, use "
            f"feature_space='attribute' for a Fréchet distance in the attribute classifier's "
            f"features (FD_attr, not FID)")


def _load_state_dict(path: Path, source: str) -> dict:
    if not path.is_file():
        raise InceptionWeightsError(_missing_weights_message(f"{source} {path} does not exist"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise InceptionWeightsError(_missing_weights_message(
            f"{source} {path} is truncated or not a torch file ({type(error).__name__}); "
            f"download it again")) from error
    if not isinstance(state, dict):
        raise InceptionWeightsError(f"{path} ({source}) is not a state dict of the FID Inception")
    return state


def resolve_inception_weights(path: str | os.PathLike | None = None) -> tuple:
    """(state dict, where it came from): explicit path, then $CVAE_TUTORIAL_INCEPTION_WEIGHTS,
    then torch hub's cache, then pytorch-fid's download. Nothing found: InceptionWeightsError."""
    if path is not None:
        return _load_state_dict(Path(path).expanduser(), "the path given"), str(path)
    if os.environ.get(INCEPTION_WEIGHTS_ENV):
        env_path = Path(os.environ[INCEPTION_WEIGHTS_ENV]).expanduser()
        return _load_state_dict(env_path, f"${INCEPTION_WEIGHTS_ENV}"), str(env_path)
    cached = hub_weights_path()
    if cached.is_file():
        return _load_state_dict(cached, "torch hub's cache"), str(cached)
    from pytorch_fid import inception as fid_inception

    try:  # looked up at call time so tests can replace it with a failing one
        state = fid_inception.load_state_dict_from_url(fid_inception.FID_WEIGHTS_URL,
                                                       progress=True)
    except Exception as error:  # URLError, HTTPError, hash mismatch: all mean "not available"
        raise InceptionWeightsError(_missing_weights_message(
            f"no path given, ${INCEPTION_WEIGHTS_ENV} unset, nothing in torch hub's cache, and "
            f"the download failed: {type(error).__name__}: {error}")) from error
    return state, fid_inception.FID_WEIGHTS_URL


@contextmanager
def _weights_from(state_dict: dict):
    """Make pytorch-fid's ``fid_inception_v3()`` load ``state_dict`` instead of downloading."""
    from pytorch_fid import inception as fid_inception

    original = fid_inception.load_state_dict_from_url
    fid_inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        yield
    finally:
        fid_inception.load_state_dict_from_url = original


def random_fid_inception_state_dict(seed: int = 0) -> dict:
    """A randomly initialised state dict of the FID Inception (for tests and benchmarks only).

    pytorch-fid's FID blocks subclass torchvision's and keep their parameter shapes, so
    torchvision's Inception v3 with 1008 classes has exactly the FID network's keys.
    """
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        network = torchvision.models.inception_v3(weights=None, aux_logits=False,
                                                  num_classes=1008, init_weights=True)
        # Random convolutions over ~90 layers scale features by ~1e10; batch-norm statistics
        # from one batch of noise (momentum None: a plain average) bring them back to O(1).
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None
        network.train()
        with torch.no_grad():
            network(torch.rand(4, 3, 299, 299) * 2 - 1)
    return network.state_dict()


class InceptionFeatures(nn.Module):
    """Images float [0, 1] [B, 3, H, W] -> pool3 features [B, 2048] of pytorch-fid's InceptionV3."""

    dims = 2048

    def __init__(self, state_dict: dict, source: str = "", is_fid: bool = True):
        super().__init__()
        from pytorch_fid.inception import InceptionV3

        with _weights_from(state_dict):
            self.network = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[self.dims]],
                                       resize_input=True, normalize_input=True,
                                       use_fid_inception=True)
        self.source = source
        # only the real weights give FID; random weights give a distance under another name
        self.name = "FID" if is_fid else "FD_random_inception"
        self.protocol = FID_PROTOCOL + ("" if is_fid else ", RANDOM weights: not FID")
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images)[0].flatten(1)


def load_fid_inception(weights: str | os.PathLike | None = None, device="cpu") -> InceptionFeatures:
    """The FID Inception with weights from :func:`resolve_inception_weights`, on ``device``."""
    state_dict, source = resolve_inception_weights(weights)
    try:
        return InceptionFeatures(state_dict, source).to(device)
    except RuntimeError as error:  # load_state_dict's list of missing and unexpected keys
        raise InceptionWeightsError(_missing_weights_message(
            f"{source} holds another network's weights ({str(error).splitlines()[0]})")) from error


# ----------------------------------------------------------------------------------------------
# Features of real and generated images
# ----------------------------------------------------------------------------------------------
def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def image_features(extractor: nn.Module, images: Tensor, batch_size: int = 100,
                   progress: bool = True, desc: str = "features") -> np.ndarray:
    """Features [N, D] (float64) of uint8 images [N, 3, H, W], in batches on the extractor's device."""
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError(f"images must be a uint8 tensor [N, 3, H, W] (quantised as image files), "
                        f"got {getattr(images, 'dtype', type(images).__name__)} "
                        f"{tuple(getattr(images, 'shape', ()))}; use cvae_tutorial.data.to_uint8")
    device = _device_of(extractor)
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress,
                      unit="batch"):
        batch = to_float(images[start:start + batch_size].to(device))
        chunks.append(extractor(batch).double().cpu())
    return torch.cat(chunks).numpy()


def _finite(model, images: Tensor) -> Tensor:
    """Samples as they are, or an error: quantising would turn NaN into black pixels that FID
    and the attribute classifier then score as if the model were fine."""
    if not torch.isfinite(images).all():
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        name = getattr(getattr(model, "config", None), "model", type(model).__name__)
        raise NonFiniteSamplesError(f"model {name} produced non-finite (NaN or Inf) pixels in "
                                    f"{bad} of {len(images)} samples: its weights are damaged or "
                                    f"its training diverged; retrain it before evaluating")
    return images


@torch.no_grad()
def generated_features(model, labels: Tensor, extractor: nn.Module, batch_size: int = 100,
                       seed: int = 0, progress: bool = True, paper_shortcut: bool = False,
                       temperature: float = 1.0):
    """Features of ``model.sample(y, temperature=...)`` for every row of ``labels``, quantised
    to uint8 first exactly as real images are, so FID sees no sub-quantisation differences
    (chapter 6).

    Returns ``(features [N, D], the uint8 samples [N, 3, H, W])``.
    """
    model_device = _device_of(model)
    generator = torch.Generator(device=model_device).manual_seed(seed)
    samples = torch.cat([
        to_uint8(_finite(model, model.sample(labels[start:start + batch_size].to(model_device),
                                             paper_shortcut=paper_shortcut, generator=generator,
                                             temperature=temperature)))
        .cpu() for start in tqdm(range(0, len(labels), batch_size), desc="sampling",
                                 disable=not progress, unit="batch")])
    return image_features(extractor, samples, batch_size, progress, "features (generated)"), samples


def statistics_cache_path(cache_dir: str | os.PathLike, feature_name: str, dataset: str,
                          split: str, image_size: int, count: int, fingerprint: str = "") -> Path:
    """``cache_dir/<features>_<dataset>_<split>_<size>px_<count>[_<hash>].npz``."""
    parts = [feature_name, dataset, split, f"{image_size}px", str(count)] + \
        ([fingerprint] if fingerprint else [])
    return Path(cache_dir) / ("_".join(parts) + ".npz")


def real_statistics(extractor: nn.Module, images: Tensor, cache_path: str | os.PathLike | None,
                    batch_size: int = 100, progress: bool = True) -> tuple:
    """(mean, covariance) of the features of real uint8 images, loaded from ``cache_path`` if it
    exists, else computed and written there (atomically: a killed run leaves no half file)."""
    if cache_path is not None and Path(cache_path).is_file():
        try:
            with np.load(cache_path, allow_pickle=False) as stored:
                if int(stored["count"]) == len(images):
                    return stored["mu"], stored["sigma"]
        except Exception as error:  # zipfile.BadZipFile, a missing key, a truncated array
            warnings.warn(f"statistics cache {cache_path} is damaged ({type(error).__name__}: "
                          f"{error}); recomputing it", stacklevel=2)
    mu, sigma = feature_statistics(image_features(extractor, images, batch_size, progress,
                                                  "features (real)"))
    if cache_path is not None:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_path, lambda file: np.savez(file, mu=mu, sigma=sigma, count=len(images)))
    return mu, sigma
