"""The protocol card of an evaluation, and the reference features saved with it (chapter 6).

A distance is only comparable with another computed under the same protocol: the reference set
and its size, how the images were cropped, resized and quantised, the feature network and its
exact weights, which labels the samples were drawn for, the evaluation seed. The card lists them
beside every results table and inside the reference file, so two users (or a user and a paper)
can tell whether their numbers can be compared at all.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from ..data.celeba import CELEBA_CROP
from ..files import atomic_write, fingerprint

VERSIONED_PACKAGES = ("cvae_tutorial", "torch", "torchvision", "pytorch-fid", "numpy", "scipy")


def preprocessing(dataset: str, image_size: int) -> str:
    """How the images of ``dataset`` reach ``image_size`` px before any network sees them."""
    if dataset == "celeba":
        return (f"CelebA aligned 178x218 JPEGs, centre crop {CELEBA_CROP}x{CELEBA_CROP}, "
                f"resized to {image_size}x{image_size} by torchvision's Resize (bilinear, "
                f"antialias=True), rounded to uint8")
    if dataset == "embedded":
        return f"the package's embedded faces, drawn at {image_size}x{image_size} (no resize)"
    return f"{dataset} images as loaded by load_dataset at {image_size}x{image_size}"


def _versions() -> dict:
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True)
class ProtocolCard:
    """Everything that decides a distance's value, and the package versions it was computed with."""

    dataset: str
    image_size: int
    reference: str          # e.g. "test split, first 1000 images"
    reference_digest: str   # of those images and labels
    floor: str              # the second real set of the floor
    floor_digest: str
    num_samples: int
    preprocessing: str
    quantisation: str
    feature_network: str
    weights_sha256: str
    labels: str
    seed: int
    curve: str
    kid: str
    versions: dict = field(default_factory=_versions, compare=False)

    def decisive(self) -> dict:
        """The fields that decide the numbers (all but the package versions)."""
        fields = asdict(self)
        fields.pop("versions")
        return fields

    def key(self) -> str:
        """A short hash of :meth:`decisive`: names a reference file, tells protocols apart."""
        return fingerprint([json.dumps(self.decisive(), sort_keys=True).encode()], 12)

    def markdown(self) -> str:
        rows = [("data", f"{self.dataset} at {self.image_size}x{self.image_size}: "
                         f"{self.preprocessing}"),
                ("reference", f"{self.reference} (digest {self.reference_digest})"),
                ("real-vs-real floor", f"{self.floor} (digest {self.floor_digest}) against the "
                                       f"reference, at the same N"),
                ("samples", f"N = {self.num_samples}; {self.labels}"),
                ("quantisation", self.quantisation),
                ("features", f"{self.feature_network}; weights SHA-256 {self.weights_sha256}"),
                ("N-curve", self.curve), ("KID", self.kid), ("evaluation seed", str(self.seed)),
                ("versions", ", ".join(f"{k} {v}" for k, v in self.versions.items())),
                ("card key", self.key())]
        return "**Protocol card**\n\n" + "\n".join(f"- **{k}**: {v}" for k, v in rows) + "\n"


def reference_path(cache_dir: str | os.PathLike, card: ProtocolCard, name: str) -> Path:
    return Path(cache_dir) / f"reference_{name}_{card.key()}.npz"


def save_reference(path: str | os.PathLike, card: ProtocolCard, **features: np.ndarray) -> Path:
    """Write real-image features (float32: the networks' own precision, so nothing is lost) with
    the card that produced them, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.asarray(value, np.float32) for name, value in features.items()}
    atomic_write(path, lambda file: np.savez(
        file, card=json.dumps(asdict(card), sort_keys=True), **arrays))
    return path


def load_reference(path: str | os.PathLike, card: ProtocolCard, names) -> dict | None:
    """The saved features named ``names`` (float64), or None when there is no file, it was made
    under another protocol, or it is damaged (then with a warning; it will be recomputed)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            saved = json.loads(str(stored["card"]))
            saved.pop("versions", None)
            if saved != card.decisive():
                return None
            return {name: stored[name].astype(np.float64) for name in names}
    except Exception as error:  # BadZipFile, a missing key, a truncated array, bad JSON
        warnings.warn(f"reference file {path} is damaged ({type(error).__name__}: {error}); "
                      f"recomputing it", stacklevel=2)
        return None
