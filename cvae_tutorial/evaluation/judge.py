"""What the evaluation reads off an image set, in one pass per set: the attribute classifier's
0/1 readings and the distance's features (FID's Inception, or the classifier's own penultimate
layer: FD_attr). Every metric works on these readings, so no image is fed twice."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.images import to_float
from .classifier import AttributeClassifier
from .inception import weights_sha256


@dataclass(frozen=True)
class Reading:
    """The classifier's readings [N, A] (0/1) and, when asked, the features [N, D] (float64)."""

    predictions: Tensor
    features: np.ndarray | None = None


class Judge:
    """Reads uint8 images [N, 3, H, W] with ``classifier`` and the feature network (``features``;
    None: the classifier's penultimate layer, FD_attr, read in the same pass as the logits).
    ``images_read`` counts the images each network has seen (the evaluation benchmark)."""

    def __init__(self, classifier: AttributeClassifier, features: nn.Module | None = None,
                 batch_size: int = 256):
        self.classifier = classifier.eval()
        self.network = features
        self.batch_size = batch_size
        if features is None:
            dims = classifier.config.feature_dim
            self.name = "FD_attr"
            self.protocol = (f"Fréchet distance in the attribute classifier's {dims}-d "
                             f"penultimate features (not FID)")
            self.weights_sha256 = weights_sha256(classifier.state_dict())
        else:
            self.name, self.protocol = features.name, features.protocol
            self.weights_sha256 = features.weights_sha256
        self.images_read = {"classifier": 0, "feature network": 0}

    @torch.no_grad()
    def read(self, images: Tensor, features: bool = True, desc: str = "reading",
             progress: bool = False) -> Reading:
        """The readings of ``images`` (quantised uint8, as image files are)."""
        if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise TypeError(f"images must be a uint8 tensor [N, 3, H, W] (quantised as image "
                            f"files), got {getattr(images, 'dtype', type(images).__name__)} "
                            f"{tuple(getattr(images, 'shape', ()))}; use "
                            f"cvae_tutorial.data.to_uint8")
        device = next(self.classifier.parameters()).device
        predictions, chunks = [], []
        for start in tqdm(range(0, len(images), self.batch_size), desc=desc,
                          disable=not progress, unit="batch"):
            x = to_float(images[start:start + self.batch_size].to(device))
            hidden = self.classifier.features(x)
            predictions.append((self.classifier.head(hidden) > 0).float().cpu())
            self.images_read["classifier"] += len(x)
            if features:
                if self.network is not None:
                    hidden = self.network(x)
                    self.images_read["feature network"] += len(x)
                chunks.append(hidden.double().cpu())
        return Reading(torch.cat(predictions),
                       torch.cat(chunks).numpy() if features else None)
