"""Training loop with resumable, atomically written checkpoints.

The data order of epoch ``e`` is a pure function of (seed, e) (a ``DistributedSampler``, which also
shards across ranks), so a run restarted from a checkpoint written mid-epoch replays exactly the
batches it had not seen yet, and the RNG states in the checkpoint make its noise identical too.
"""
from __future__ import annotations

import math
import os
import random
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import __version__
from .cvae import CVAE, CVAEConfig, ConfigError
from .data import AttributeImages, as_attribute_images, to_float
from .losses import softclip

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, truncated, or made for another model."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file that cannot be read back: truncated or damaged on disk."""


class NonFiniteLossError(FloatingPointError):
    """Training produced NaN or Inf; the message names the step and the loss terms."""


@dataclass
class TrainConfig:
    """How to train; saved with every checkpoint."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"          # "auto": CUDA when there is one, else CPU
    flip: bool = True             # random horizontal flips, as the paper
    checkpoint_every: int = 0     # also checkpoint every N steps (0: only at epoch ends)
    eval_batch_size: int = 512

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            expected = {"int": int, "float": float, "bool": bool, "str": str}[field.type]
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, field.name, value)
            if (expected is not bool and isinstance(value, bool)) or not isinstance(value, expected):
                raise ConfigError(f"TrainConfig.{field.name} must be {expected.__name__}, got "
                                  f"{type(value).__name__} {value!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr must be positive, got {self.lr}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"TrainConfig.checkpoint_every must be >= 0, got "
                              f"{self.checkpoint_every}")
        resolve_device(self.device)


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA if available, else CPU; anything else must be a device torch knows."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available; use 'cpu' or "
                          f"'auto'")
    return resolved


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically, keeping the last good one as ``path.prev``.

    A crash at any moment leaves either the old or the new file whole, never a truncated one.
    """
    path = Path(path)
    ensure_writable_folder(path.parent)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        torch.save(state, file)
        file.flush()
        os.fsync(file.fileno())
    if path.exists():
        previous = path.with_name(path.name + ".prev")
        previous_tmp = path.with_name(path.name + ".prev.tmp")
        previous_tmp.unlink(missing_ok=True)
        os.link(path, previous_tmp)
        os.replace(previous_tmp, previous)
    os.replace(temporary, path)
    return path


def ensure_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and prove a file can be written there, before hours of training.

    A write probe, not ``os.access``: as root every permission check passes.
    """
    folder = Path(folder)
    blocker = next((parent for parent in (folder, *folder.parents)
                    if parent.exists() and not parent.is_dir()), None)
    if blocker is not None:
        raise NotADirectoryError(f"cannot write to the output folder {folder}: {blocker} is a "
                                 f"file, not a folder; choose another out_dir")
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"cannot write to the output folder {folder} "
                              f"({error.strerror or error}); choose another out_dir") from error
    return folder


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain data, no arbitrary code)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train first or check the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        previous = path.with_name(path.name + ".prev")
        hint = (f"the previous good checkpoint is {previous}: move it to {path} to resume from it"
                if previous.exists() else f"delete {path} to start over")
        raise CorruptCheckpointError(f"checkpoint {path} is truncated or corrupt "
                              f"({type(error).__name__}); {hint}") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a cvae_tutorial checkpoint (format "
                              f"{CHECKPOINT_FORMAT}); it was written by something else")
    return state


def check_checkpoint_matches(state: dict, config: CVAEConfig, path) -> None:
    """A checkpoint for another architecture is a clear error, not a state-dict shape dump."""
    saved = state["model_config"]
    wanted = config.to_dict()
    differences = [f"{key}: checkpoint {saved.get(key)!r} vs asked {value!r}"
                   for key, value in wanted.items() if saved.get(key) != value]
    if differences:
        raise CheckpointError(f"checkpoint {path} was written for another model "
                              f"({'; '.join(differences)}); use a new out_dir or the matching "
                              f"configuration")


RUN_DEFINING_FIELDS = ("lr", "seed", "batch_size", "flip")  # a resume must not change these


def check_same_run(state: dict, config: TrainConfig, path) -> None:
    """Resuming with another lr, seed, batch size or flip would splice two runs together (and
    Adam's saved lr would silently win): a clear error instead. ``epochs`` may grow."""
    saved = state.get("train_config", {})
    differences = [f"{name}: checkpoint {saved[name]!r} vs asked {getattr(config, name)!r}"
                   for name in RUN_DEFINING_FIELDS
                   if name in saved and saved[name] != getattr(config, name)]
    if differences:
        raise CheckpointError(f"checkpoint {path} belongs to a run with other training settings "
                              f"({'; '.join(differences)}); resume with the same settings or use "
                              f"a new out_dir")


def load_resume_state(path: str | os.PathLike, map_location="cpu") -> dict:
    """The checkpoint to resume from; if it is corrupt, the previous good one, with a warning.

    The corrupt file is kept as ``path.corrupt`` for inspection. Resuming from the previous
    checkpoint replays a few more steps and still ends bit-identical on CPU.
    """
    path = Path(path)
    try:
        return load_checkpoint(path, map_location)
    except CorruptCheckpointError as error:
        previous = path.with_name(path.name + ".prev")
        if not previous.exists():
            raise
        state = load_checkpoint(previous, map_location)
        corrupt = path.with_name(path.name + ".corrupt")
        os.replace(path, corrupt)
        warnings.warn(f"{error.args[0].split(';')[0]}; resuming from the previous good checkpoint "
                      f"{previous} (epoch {state['epoch']}, step {state['step_in_epoch']}); the "
                      f"damaged file is kept as {corrupt}", RuntimeWarning, stacklevel=3)
        return state


def checkpoint_path(run_dir: str | os.PathLike, model_name: str) -> Path:
    """Where a run keeps the checkpoint of one model: ``run_dir/<model>/checkpoint.pt``."""
    return Path(run_dir) / model_name / "checkpoint.pt"


def load_model(path: str | os.PathLike, map_location="cpu",
               expected: CVAEConfig | None = None) -> CVAE:
    """The trained model stored in a checkpoint, in eval mode.

    With ``expected``, a checkpoint written for another configuration is a clear error.
    """
    state = load_checkpoint(path, map_location)
    if expected is not None:
        check_checkpoint_matches(state, expected, path)
    model = CVAE(CVAEConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval()


def load_history(path: str | os.PathLike) -> list:
    """The per-epoch history stored in a checkpoint."""
    return load_checkpoint(path)["history"]


def _rng_state() -> dict:
    numpy_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].copy()),
                      *numpy_state[2:]],
            "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def epoch_batches(num_images: int, batch_size: int, seed: int, epoch: int,
                  rank: int = 0, world_size: int = 1):
    """This rank's index batches of one epoch: a pure function of (seed, epoch)."""
    sampler = torch.utils.data.DistributedSampler(range(num_images), num_replicas=world_size,
                                                  rank=rank, shuffle=True, seed=seed,
                                                  drop_last=True)
    sampler.set_epoch(epoch)
    indices = torch.tensor(list(sampler))
    usable = len(indices) // batch_size * batch_size  # full batches: σ* is a batch statistic
    if usable == 0:
        raise ConfigError(f"batch_size={batch_size} is larger than the {len(indices)} training "
                          f"images of each process; lower batch_size")
    return indices[:usable].view(-1, batch_size)


def flip_mask(num_images: int, seed: int, epoch: int) -> Tensor:
    """Which images are mirrored in epoch ``epoch``: also a pure function of (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.rand(num_images, generator=generator) < 0.5


def load_batch(data: AttributeImages, indices: Tensor, device: torch.device,
               flips: Tensor | None = None):
    """Images as float [0, 1] on ``device`` (flipped where ``flips``) and their labels."""
    x = to_float(data.images[indices].to(device, non_blocking=True))
    if flips is not None:
        mirror = flips[indices].to(device).view(-1, 1, 1, 1)
        x = torch.where(mirror, x.flip(-1), x)
    return x, data.labels[indices].to(device, non_blocking=True)


@torch.no_grad()
def evaluate_neg_elbo(model: CVAE, data: AttributeImages, batch_size: int = 512,
                      seed: int = 0) -> dict:
    """Test negative ELBO in nats per image, with the decoder σ fixed (DESIGN §3).

    Uses its own seeded noise so the number does not depend on (or disturb) the training RNG.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals = {"neg_elbo": 0.0, "recon": 0.0, "kl": 0.0}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(data), batch_size):
            x, y = load_batch(data, torch.arange(start, min(start + batch_size, len(data))), device)
            terms = model.loss_terms(x, y, fixed_sigma=True)
            totals["neg_elbo"] += terms["loss"].item() * len(x)
            totals["recon"] += terms["recon"].item() * len(x)
            totals["kl"] += terms["kl"].item() * len(x)
    model.train(was_training)
    return {key: value / len(data) for key, value in totals.items()}


def _check_finite(terms: dict, epoch: int, step: int, checkpoint_path) -> None:
    if not torch.isfinite(terms["loss"]):
        values = ", ".join(f"{key}={float(value.detach()):.4g}" for key, value in terms.items())
        if checkpoint_path is None:
            kept = "no checkpoint was being written"
        elif Path(checkpoint_path).exists():
            kept = f"the checkpoint written before this step, {checkpoint_path}, is kept unchanged"
        else:
            kept = f"no checkpoint was written to {checkpoint_path} yet"
        raise NonFiniteLossError(f"non-finite loss at epoch {epoch}, step {step}: {values}; {kept}."
                                 f" Lower the learning rate (in a new out_dir) or check the data "
                                 f"for NaNs")


def train(model: CVAE, train_data, test_data, config: TrainConfig | None = None,
          checkpoint_path: str | os.PathLike | None = None, progress: bool = True) -> list:
    """Train ``model``; return the history (one dict per epoch).

    With ``checkpoint_path`` the run is resumable: if the file exists the run continues from it
    (the same call after an interruption finishes the same run), and it is rewritten atomically at
    every epoch end (and every ``config.checkpoint_every`` steps).
    """
    config = config or TrainConfig()
    if not isinstance(model, CVAE):
        raise TypeError(f"model must be a cvae_tutorial CVAE, got {type(model).__name__}")
    train_data = as_attribute_images(train_data)
    test_data = as_attribute_images(test_data)
    for name, data in (("train_data", train_data), ("test_data", test_data)):
        if data.num_attributes != model.config.num_attributes or \
                data.image_size != model.config.image_size:
            raise ConfigError(f"{name} has {data.num_attributes} attributes at "
                              f"{data.image_size}px but the model expects "
                              f"{model.config.num_attributes} at {model.config.image_size}px")
    device = resolve_device(config.device)
    if checkpoint_path is not None:
        ensure_writable_folder(Path(checkpoint_path).parent)  # fail now, not after an epoch
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    history, epoch, step, running = [], 0, 0, None

    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state = load_resume_state(checkpoint_path, map_location=device)
        check_checkpoint_matches(state, model.config, checkpoint_path)
        check_same_run(state, config, checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, epoch, step, running = (state["history"], state["epoch"],
                                         state["step_in_epoch"], state["running"])
        _set_rng_state(state["rng"])
    else:
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)

    def checkpoint(epoch_, step_, running_):
        if checkpoint_path is not None:
            save_checkpoint({
                "format": CHECKPOINT_FORMAT, "package_version": __version__,
                "model_config": model.config.to_dict(), "train_config": asdict(config),
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch_, "step_in_epoch": step_, "running": running_,
                "history": history, "rng": _rng_state()}, checkpoint_path)

    steps_per_epoch = len(epoch_batches(len(train_data), config.batch_size, config.seed, 0))
    bar = tqdm(total=config.epochs * steps_per_epoch, initial=epoch * steps_per_epoch + step,
               desc=f"training {model.config.model}", disable=not progress, unit="step")
    model.train()
    while epoch < config.epochs:
        started = time.perf_counter()
        batches = epoch_batches(len(train_data), config.batch_size, config.seed, epoch)
        flips = flip_mask(len(train_data), config.seed, epoch) if config.flip else None
        running = running or {"loss": 0.0, "recon": 0.0, "kl": 0.0, "mse": 0.0, "steps": 0,
                              "seconds": 0.0}
        for step in range(step, len(batches)):
            x, y = load_batch(train_data, batches[step], device, flips)
            terms = model.loss_terms(x, y)
            _check_finite(terms, epoch, step, checkpoint_path)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            for key in ("loss", "recon", "kl", "mse"):
                running[key] += terms[key].item()
            running["steps"] += 1
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{terms['loss'].item():.1f}")
            if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 \
                    and step + 1 < len(batches):
                running["seconds"] += time.perf_counter() - started
                started = time.perf_counter()
                checkpoint(epoch, step + 1, running)
        running["seconds"] += time.perf_counter() - started
        record = {key: running[key] / running["steps"] for key in ("loss", "recon", "kl", "mse")}
        if model.learns_sigma:  # the training-set σ* = sqrt(mean MSE), fixed for evaluation
            log_sigma = torch.tensor(0.5 * math.log(max(record["mse"], 1e-30)))  # MSE 0: finite
            model.decoder_log_sigma.fill_(softclip(log_sigma, model.config.min_log_sigma).item())
        test = evaluate_neg_elbo(model, test_data, config.eval_batch_size, config.seed)
        history.append({"epoch": epoch + 1, **{f"train_{k}": v for k, v in record.items()},
                        "log_sigma": model.decoder_log_sigma.item(),
                        **{f"test_{k}": v for k, v in test.items()},
                        "seconds": running["seconds"]})
        epoch, step, running = epoch + 1, 0, None
        checkpoint(epoch, 0, None)
    bar.close()
    return history
