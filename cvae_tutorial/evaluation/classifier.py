"""The attribute classifier (chapter 4): a small CNN that reads the attributes off an image. It
measures attribute fidelity of samples, and its penultimate layer is the FD_attr feature space
(chapter 6) when the FID Inception's weights are not available."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from ..config import ConfigError, check_field_types, resolve_device
from ..data.batches import epoch_batches, flip_mask, load_batch
from ..data.images import AttributeImages, content_fingerprint, to_float


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
    device = resolve_device(device)
    data_key = {"attribute_names": list(train_data.attribute_names), "num_images": len(train_data),
                "fingerprint": content_fingerprint(train_data.images, train_data.labels)}
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
def classifier_logits(classifier: AttributeClassifier, images: Tensor,
                      batch_size: int = 256) -> Tensor:
    """The classifier's attribute logits [N, A] (on the CPU) for uint8 images [N, 3, H, W]."""
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (quantised as image files), got "
                        f"{getattr(images, 'dtype', type(images).__name__)}; use to_uint8")
    device = next(classifier.parameters()).device
    return torch.cat([classifier(to_float(images[start:start + batch_size].to(device))).cpu()
                      for start in range(0, len(images), batch_size)])


def predict_attributes(classifier: AttributeClassifier, images: Tensor,
                       batch_size: int = 256) -> Tensor:
    """The classifier's 0/1 reading [N, A] of uint8 images (logit > 0)."""
    return (classifier_logits(classifier, images, batch_size) > 0).float()


def attribute_accuracy(classifier: AttributeClassifier, images: Tensor, labels: Tensor,
                       batch_size: int = 256) -> Tensor:
    """Per-attribute accuracy [A] of the classifier on uint8 images against ``labels``."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} label rows")
    predictions = predict_attributes(classifier, images, batch_size)
    return (predictions == labels.cpu().float()).float().mean(0)
