"""The FID feature network: pytorch-fid's InceptionV3 (pool3, 2048-d) and where its weights come
from. The statistics and distances computed from its features live in :mod:`.frechet`, as
pytorch-fid splits ``inception.py`` from ``fid_score.py``.

A distance is called "FID" only when the features are this network's with its real weights; any
other feature space gives a Fréchet distance under another name (``FD_attr``).
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

INCEPTION_WEIGHTS_ENV = "CVAE_TUTORIAL_INCEPTION_WEIGHTS"
INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's file name
# pytorch-fid resizes inside the network: F.interpolate(..., (299, 299), mode="bilinear",
# align_corners=False), without antialiasing (clean-fid's point: this filter moves FID).
FID_PROTOCOL = ("pytorch-fid InceptionV3 pool3 (2048-d); images resized to 299x299 inside the "
                "network by bilinear interpolation without antialiasing (align_corners=False)")


class InceptionWeightsError(FileNotFoundError):
    """The FID Inception weights were not found anywhere and could not be downloaded."""


def weights_sha256(state_dict: dict) -> str:
    """SHA-256 of a state dict's names and tensor bytes: names the weights whatever file or
    download they came from (a protocol card prints it, so two users can compare)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state_dict.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


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
        self.weights_sha256 = weights_sha256(state_dict)
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
