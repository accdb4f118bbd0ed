"""Training loop with resumable, atomically written checkpoints, fast on a GPU, data-parallel.

The data order of epoch ``e`` is a pure function of (seed, e) (a ``DistributedSampler``, which also
shards across ranks), so a run restarted from a checkpoint written mid-epoch replays exactly the
batches it had not seen yet, and the RNG states in the checkpoint make its noise identical too.

Speed (issue 5): batches are gathered from the uint8 images by a background thread into page-locked
memory and copied without blocking; the step can run in ``channels_last`` with bf16 autocast,
compiled, with a fused or foreach Adam (see :class:`TrainConfig`). Under ``torchrun`` the same
loop runs DDP: ``python -m cvae_tutorial.train --help``.
"""
from __future__ import annotations

import argparse
import math
import os
import queue
import random
import shutil
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import __version__
from .cvae import CVAE, CVAEConfig, ConfigError, check_field_types
from .data import AttributeImages, as_attribute_images, to_float
from .losses import softclip

CHECKPOINT_FORMAT = 1
FAST_OPTION_CHOICES = {"autocast": ("auto", "bf16", "off"), "channels_last": ("auto", "on", "off"),
                       "adam": ("auto", "fused", "foreach", "for-loop")}
CUDA_SYNC_INTERVAL = 25  # on a GPU, read losses back (a sync) every this many steps, not every step


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
    # Fast-step options: each can be switched and each is correct on a CPU; "auto" is on for CUDA.
    autocast: str = "auto"        # "bf16" or "off" (auto: bf16 on CUDA, off on CPU)
    channels_last: str = "auto"   # "on" or "off": NHWC convolutions (auto: on for CUDA only)
    adam: str = "auto"            # "fused", "foreach" or "for-loop" (auto: fused on CUDA, else
    #                               foreach)
    compile: bool = False         # torch.compile the loss: minutes of compiling, then a faster step
    pin_memory: bool = True       # page-locked batches, non-blocking host-to-GPU copies (CUDA)
    prefetch: bool = True         # gather the next batch in a background thread during the step

    def __post_init__(self):
        check_field_types(self)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise ConfigError(f"TrainConfig.lr must be positive and finite, got {self.lr}")
        if not 0 <= self.seed < 2**31:  # numpy's seeds stop at 2**32; ranks add their index
            raise ConfigError(f"TrainConfig.seed must be in [0, 2**31), got {self.seed}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"TrainConfig.checkpoint_every must be >= 0, got "
                              f"{self.checkpoint_every}")
        for name, choices in FAST_OPTION_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"TrainConfig.{name} must be one of {', '.join(choices)}, got "
                                  f"{getattr(self, name)!r}")
        resolve_device(self.device)

    def fast_options(self, device: torch.device) -> dict:
        """The "auto" options resolved for ``device``: autocast dtype (or None), channels_last,
        the Adam implementation, compile, and whether batches are pinned."""
        cuda = device.type == "cuda"
        return {"autocast": torch.bfloat16 if self.autocast == "bf16" or
                (self.autocast == "auto" and cuda) else None,
                "channels_last": self.channels_last == "on" or
                (self.channels_last == "auto" and cuda),
                "adam": self.adam if self.adam != "auto" else ("fused" if cuda else "foreach"),
                "compile": self.compile, "pin_memory": self.pin_memory and cuda}


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

    The corrupt file is copied to ``path.corrupt`` for inspection and the previous checkpoint
    copied over it, so ``path`` never disappears (other DDP ranks still see a run to resume, and
    the next save does not rotate the damaged file into ``.prev``). Resuming from the previous
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
        restored = path.with_name(f"{path.name}.restore-{os.getpid()}")
        shutil.copyfile(path, corrupt)
        shutil.copyfile(previous, restored)
        os.replace(restored, path)
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


def gather_batch(data: AttributeImages, indices: Tensor, flips: Tensor | None = None,
                 pin_memory: bool = False):
    """The uint8 images, labels and mirror flags of ``indices`` on the host (page-locked if
    ``pin_memory``, so the copy to the GPU can overlap the step)."""
    images = torch.empty((len(indices), *data.images.shape[1:]), dtype=torch.uint8,
                         pin_memory=pin_memory)
    torch.index_select(data.images, 0, indices, out=images)
    labels = torch.empty((len(indices), data.labels.shape[1]), pin_memory=pin_memory)
    torch.index_select(data.labels, 0, indices, out=labels)
    return images, labels, None if flips is None else flips[indices]


def batch_to_device(images: Tensor, labels: Tensor, mirror: Tensor | None,
                    device: torch.device, channels_last: bool = False):
    """uint8 images -> float [0, 1] on ``device``, mirrored there (augmentation on the device;
    flipped while still uint8, a quarter of the memory traffic of flipping floats)."""
    images = images.to(device, non_blocking=True)
    if mirror is not None:
        mirror = mirror.to(device, non_blocking=True).view(-1, 1, 1, 1)
        images = torch.where(mirror, images.flip(-1), images)
    x = to_float(images)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, labels.to(device, non_blocking=True)


def load_batch(data: AttributeImages, indices: Tensor, device: torch.device,
               flips: Tensor | None = None):
    """Images as float [0, 1] on ``device`` (flipped where ``flips``) and their labels."""
    return batch_to_device(*gather_batch(data, indices, flips), device)


def iterate_batches(data: AttributeImages, batches, device: torch.device,
                    flips: Tensor | None = None, pin_memory: bool = False,
                    channels_last: bool = False, prefetch: bool = True, depth: int = 2):
    """Yield ``(x, y)`` on ``device`` for each index batch; with ``prefetch`` a background thread
    gathers the next ``depth`` batches while the caller computes (torch ops release the GIL).

    On a GPU the thread fills page-locked host buffers and the caller issues the non-blocking copy,
    flip and conversion on the GPU; on a CPU the thread prepares the finished batch."""
    if not prefetch:
        for indices in batches:
            yield batch_to_device(*gather_batch(data, indices, flips, pin_memory), device,
                                  channels_last)
        return
    ready, stop = queue.Queue(maxsize=depth), threading.Event()

    def gather_all():
        try:
            for indices in batches:
                item = gather_batch(data, indices, flips, pin_memory)
                if device.type == "cpu":
                    item = batch_to_device(*item, device, channels_last)
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as error:  # handed to the consumer, raised there
            ready.put(error)

    worker = threading.Thread(target=gather_all, daemon=True, name="batch-prefetch")
    worker.start()
    try:
        for _ in range(len(batches)):
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            yield item if device.type == "cpu" else batch_to_device(*item, device, channels_last)
    finally:
        stop.set()
        worker.join()


# ----------------------------------------------------------------------------------------------
# The training step
# ----------------------------------------------------------------------------------------------
class LossTerms(nn.Module):
    """``model.loss_terms`` as a module's forward, so DDP and torch.compile can wrap it."""

    def __init__(self, model: CVAE):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, y: Tensor) -> dict:
        return self.model.loss_terms(x, y)


def make_optimizer(model: nn.Module, lr: float, implementation: str) -> torch.optim.Adam:
    """Adam with the given implementation: 'fused', 'foreach' or 'for-loop'."""
    if implementation == "fused":
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=implementation == "foreach")


def prepare_step(model: CVAE, config: TrainConfig, device: torch.device,
                 optimizer: torch.optim.Optimizer | None = None):
    """Put ``model`` on ``device`` with the fast options; return ``(loss_fn, optimizer, options)``.

    ``loss_fn(x, y)`` gives ``model.loss_terms`` under autocast, compiled and DDP-wrapped as asked
    (DDP whenever a process group is initialised).
    """
    options = config.fast_options(device)
    model.to(device)
    if options["channels_last"]:
        model.to(memory_format=torch.channels_last)
    optimizer = optimizer or make_optimizer(model, config.lr, options["adam"])
    module = LossTerms(model)
    if distributed_world()[1] > 1:
        # the only buffer, σ*, is set from metrics reduced over ranks: no per-step buffer sync
        import inspect
        no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                          inspect.signature(nn.parallel.DistributedDataParallel).parameters
                          else {"broadcast_buffers": False})
        module = nn.parallel.DistributedDataParallel(
            module, device_ids=[torch.cuda.current_device() if device.index is None
                                else device.index] if device.type == "cuda" else None,
            **no_buffer_sync)
    if options["compile"]:
        module = torch.compile(module)
    dtype = options["autocast"]

    def loss_fn(x: Tensor, y: Tensor) -> dict:
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return module(x, y)

    return loss_fn, optimizer, options


def distributed_world():
    """(rank, world size) of this process: (0, 1) unless a process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def evaluate_neg_elbo(model: CVAE, data: AttributeImages, batch_size: int = 512,
                      seed: int = 0) -> dict:
    """Test negative ELBO in nats per image, with the decoder σ fixed (DESIGN §3).

    Uses its own seeded noise so the number does not depend on (or disturb) the training RNG.
    Under DDP each rank evaluates every world-size-th image and the sums are reduced.
    """
    device = next(model.parameters()).device
    rank, world_size = distributed_world()
    was_training = model.training
    model.eval()
    totals = {"neg_elbo": 0.0, "recon": 0.0, "kl": 0.0}
    shard = torch.arange(rank, len(data), world_size)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed + rank)
        for start in range(0, len(shard), batch_size):
            x, y = load_batch(data, shard[start:start + batch_size], device)
            terms = model.loss_terms(x, y, fixed_sigma=True)
            totals["neg_elbo"] += terms["loss"].item() * len(x)
            totals["recon"] += terms["recon"].item() * len(x)
            totals["kl"] += terms["kl"].item() * len(x)
    model.train(was_training)
    if world_size > 1:
        summed = torch.tensor(list(totals.values()), dtype=torch.float64, device=device)
        dist.all_reduce(summed)
        totals = dict(zip(totals, summed.tolist()))
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
          checkpoint_path: str | os.PathLike | None = None, progress: bool = True,
          on_batch: Callable[[int, int, Tensor], None] | None = None,
          initialize: bool = True) -> list:
    """Train ``model``; return the history (one dict per epoch).

    A run is a function of its settings: a fresh run starts from the weights ``config.seed``
    gives (:meth:`CVAE.initialize`), whatever the model held or the global RNG drew before;
    ``initialize=False`` keeps the model's current weights instead (fine-tuning).

    With ``checkpoint_path`` the run is resumable: if the file exists the run continues from it
    (the same call after an interruption finishes the same run), and it is rewritten atomically at
    every epoch end (and every ``config.checkpoint_every`` steps).

    Inside an initialised process group (``torchrun``) the run is data-parallel: each rank trains
    on its own shard of every epoch (``batch_size`` images per rank and step), DDP averages the
    gradients, the logged metrics are reduced across ranks, and only rank 0 writes the checkpoint
    and shows progress. ``on_batch(epoch, step, indices)`` is called before each step with the
    training-set indices of the batch (for logging or inspection).
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
    rank, world_size = distributed_world()
    if checkpoint_path is not None and rank == 0:
        ensure_writable_folder(Path(checkpoint_path).parent)  # fail now, not after an epoch
    model.to(device)
    optimizer = make_optimizer(model, config.lr, config.fast_options(device)["adam"])
    history, epoch, step, running = [], 0, 0, None

    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state = load_resume_state(checkpoint_path, map_location=device)
        check_checkpoint_matches(state, model.config, checkpoint_path)
        check_same_run(state, config, checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, epoch, step, running = (state["history"], state["epoch"],
                                         state["step_in_epoch"], state["running"])
        rank_states = state.get("rng_ranks") or [state["rng"]]
        _set_rng_state(rank_states[rank] if len(rank_states) == world_size else state["rng"])
        if rank > 0 and running is not None:
            running = dict.fromkeys(running, 0.0)  # rank 0 carries the reduced sums so far
    else:
        if initialize:  # every rank starts from the same weights
            model.initialize(config.seed)
        torch.manual_seed(config.seed + rank)  # ranks draw different noise for their images
        np.random.seed(config.seed + rank)
        random.seed(config.seed + rank)
    loss_fn, optimizer, options = prepare_step(model, config, device, optimizer)

    def checkpoint(epoch_, step_, running_):
        if checkpoint_path is None:
            return
        rng, rng_ranks = _rng_state(), None
        if world_size > 1:  # every rank's RNG state, and the metric sums over all ranks
            rng_ranks = _gather_rng_states(rng, world_size)
            running_ = _reduce_running(running_, device)
        if rank == 0:
            save_checkpoint({
                "format": CHECKPOINT_FORMAT, "package_version": __version__,
                "model_config": model.config.to_dict(), "train_config": asdict(config),
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch_, "step_in_epoch": step_, "running": running_,
                "history": history, "rng": rng, "rng_ranks": rng_ranks}, checkpoint_path)

    steps_per_epoch = len(epoch_batches(len(train_data), config.batch_size, config.seed, 0,
                                        rank, world_size))
    bar = tqdm(total=config.epochs * steps_per_epoch, initial=epoch * steps_per_epoch + step,
               desc=f"training {model.config.model}", disable=not progress or rank > 0,
               unit="step")
    # Losses are read back in groups (one GPU sync per group, not per step); on a CPU after every
    # step, so a NaN stops the run before the optimizer step that would spread it.
    sync_interval = CUDA_SYNC_INTERVAL if device.type == "cuda" else 1
    model.train()
    while epoch < config.epochs:
        started = time.perf_counter()
        batches = epoch_batches(len(train_data), config.batch_size, config.seed, epoch,
                                rank, world_size)
        flips = flip_mask(len(train_data), config.seed, epoch) if config.flip else None
        running = running or {"loss": 0.0, "recon": 0.0, "kl": 0.0, "mse": 0.0, "steps": 0,
                              "seconds": 0.0}
        pending = []  # (step, loss terms) not read back yet

        def read_back():
            if not pending:
                return
            values = torch.stack([torch.stack([terms[key].float() for key in LOGGED_TERMS])
                                  for _, terms in pending]).tolist()
            for (step_, terms), row in zip(pending, values):
                if not math.isfinite(row[0]):
                    _check_finite(terms, epoch, step_, checkpoint_path)
                for key, value in zip(LOGGED_TERMS, row):
                    running[key] += value
                running["steps"] += 1
            bar.set_postfix(epoch=epoch, loss=f"{values[-1][0]:.1f}")
            pending.clear()

        stream = iterate_batches(train_data, batches[step:], device, flips,
                                 options["pin_memory"], options["channels_last"], config.prefetch)
        for step, (x, y) in enumerate(stream, start=step):
            if on_batch is not None:
                on_batch(epoch, step, batches[step])
            terms = loss_fn(x, y)
            if sync_interval == 1:
                _check_finite(terms, epoch, step, checkpoint_path)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            pending.append((step, {key: value.detach() for key, value in terms.items()}))
            if len(pending) >= sync_interval:
                read_back()
            bar.update()
            if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 \
                    and step + 1 < len(batches):
                read_back()
                running["seconds"] += time.perf_counter() - started
                started = time.perf_counter()
                checkpoint(epoch, step + 1, running)
        read_back()
        running["seconds"] += time.perf_counter() - started
        totals = _reduce_running(running, device) if world_size > 1 else running
        record = {key: totals[key] / totals["steps"] for key in LOGGED_TERMS}
        if model.learns_sigma:  # the training-set σ* = sqrt(mean MSE), fixed for evaluation
            log_sigma = torch.tensor(0.5 * math.log(max(record["mse"], 1e-30)))  # MSE 0: finite
            model.decoder_log_sigma.fill_(softclip(log_sigma, model.config.min_log_sigma).item())
        test = evaluate_neg_elbo(model, test_data, config.eval_batch_size, config.seed)
        history.append({"epoch": epoch + 1, **{f"train_{k}": v for k, v in record.items()},
                        "log_sigma": model.decoder_log_sigma.item(),
                        **{f"test_{k}": v for k, v in test.items()},
                        "seconds": totals["seconds"]})
        epoch, step, running = epoch + 1, 0, None
        checkpoint(epoch, 0, None)
    bar.close()
    return history


LOGGED_TERMS = ("loss", "recon", "kl", "mse")


def _gather_rng_states(rng: dict, world_size: int) -> list:
    """Every rank's RNG state (sent as torch.save bytes: all_gather_object cannot carry the
    tensors inside these states, and bytes read back with weights_only=True stay safe)."""
    import io

    buffer = io.BytesIO()
    torch.save(rng, buffer)
    gathered = [None] * world_size
    dist.all_gather_object(gathered, buffer.getvalue())
    return [torch.load(io.BytesIO(data), weights_only=True) for data in gathered]


def _reduce_running(running: dict | None, device: torch.device) -> dict | None:
    """Running sums added over all ranks (seconds: the slowest rank's)."""
    if running is None:
        return None
    keys = [*LOGGED_TERMS, "steps"]
    summed = torch.tensor([float(running[key]) for key in keys], dtype=torch.float64,
                          device=device)
    dist.all_reduce(summed)
    seconds = torch.tensor([running["seconds"]], dtype=torch.float64, device=device)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    reduced = dict(zip(keys, summed.tolist()))
    reduced["steps"] = int(reduced["steps"])
    return {**reduced, "seconds": seconds.item()}


# ----------------------------------------------------------------------------------------------
# Command line: one process, or data-parallel under torchrun
# ----------------------------------------------------------------------------------------------
def _parse_args(argv):
    from .cvae import MODEL_NAMES

    parser = argparse.ArgumentParser(
        prog="python -m cvae_tutorial.train",
        description="Train one of the three CVAEs. Under `torchrun --nproc_per_node=N -m "
                    "cvae_tutorial.train ...` the same command trains data-parallel on N "
                    "processes (DDP; --batch-size is per process). Rerunning a command resumes "
                    "from OUT_DIR/<model>/checkpoint.pt.")
    parser.add_argument("--model", choices=MODEL_NAMES, default="sigma_flow")
    parser.add_argument("--dataset", choices=("embedded", "celeba"), default="embedded")
    parser.add_argument("--data-dir", help="the folder that holds celeba/ (for --dataset celeba)")
    parser.add_argument("--image-size", type=int, default=32, help="a multiple of 16 (CelebA: 64)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out-dir", required=True, help="run folder for <model>/checkpoint.pt")
    parser.add_argument("--num-images", type=int, help="train on the first N training images")
    parser.add_argument("--attributes", nargs="+", help="attribute names (default: all)")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint-every", type=int, default=0)
    parser.add_argument("--autocast", choices=FAST_OPTION_CHOICES["autocast"], default="auto")
    parser.add_argument("--channels-last", choices=FAST_OPTION_CHOICES["channels_last"],
                        default="auto")
    parser.add_argument("--adam", choices=FAST_OPTION_CHOICES["adam"], default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step")
    parser.add_argument("--no-prefetch", action="store_true")
    parser.add_argument("--num-workers", type=int, help="decoding processes for the CelebA cache")
    parser.add_argument("--on-error", choices=("stop", "skip"), default="stop",
                        help="what a corrupt CelebA JPEG does while the cache is built")
    return parser, parser.parse_args(argv)


def _init_distributed(device_option: str):
    """Join the torchrun process group (env://) when there are several processes.

    Returns the device this process trains on: its own GPU (LOCAL_RANK) with NCCL, else the CPU
    with gloo. One process (plain `python -m` or torchrun with one) is the single-device path.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return device_option
    if "MASTER_ADDR" not in os.environ:
        raise ConfigError(f"WORLD_SIZE={world_size} but MASTER_ADDR is not set: start several "
                          f"processes with torchrun --nproc_per_node=N -m cvae_tutorial.train")
    cuda = resolve_device(device_option).type == "cuda"
    if cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"process {local_rank} has no GPU of its own (this machine has "
                              f"{torch.cuda.device_count()}); use --nproc_per_node <= the GPU "
                              f"count")
        torch.cuda.set_device(local_rank)
        device_option = f"cuda:{local_rank}"
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    return device_option


def main(argv=None) -> list:
    from .data import DataError, load_dataset

    parser, args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.dataset == "celeba" and not args.data_dir:
        parser.error("--dataset celeba needs --data-dir, the folder that holds celeba/")
    try:
        config = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
            device=args.device, checkpoint_every=args.checkpoint_every, autocast=args.autocast,
            channels_last=args.channels_last, adam=args.adam, compile=args.compile,
            prefetch=not args.no_prefetch)
        config.device = _init_distributed(config.device)
    except ConfigError as error:
        parser.error(str(error))
    rank, world_size = distributed_world()
    try:
        def load(split, count):
            return load_dataset(args.dataset, split, args.image_size, args.data_dir,
                                args.attributes, count, num_workers=args.num_workers,
                                on_error=args.on_error)
        if world_size > 1 and rank > 0:
            dist.barrier()  # rank 0 builds the CelebA cache; the others then open it
        train_data, test_data = load("train", args.num_images), load("test", None)
        if world_size > 1 and rank == 0:
            dist.barrier()
        model_config = CVAEConfig(model=args.model, image_size=args.image_size,
                                  num_attributes=train_data.num_attributes,
                                  latent_dim=args.latent_dim, base_channels=args.base_channels)
        model = CVAE(model_config)  # train() initialises it from --seed
        path = checkpoint_path(args.out_dir, args.model)
        history = train(model, train_data, test_data, config, path, progress=rank == 0)
    except (ConfigError, DataError, CheckpointError, FileNotFoundError, PermissionError,
            NotADirectoryError) as error:
        raise SystemExit(f"error: {error}") from error
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    if rank == 0:
        last = history[-1]
        print(f"{args.model}: {len(history)} epochs on {world_size} process(es), train loss "
              f"{last['train_loss']:.1f}, test negative ELBO {last['test_neg_elbo']:.1f} nats; "
              f"checkpoint {path}")
    return history


if __name__ == "__main__":
    # `python -m` runs a second copy of this file as __main__; use the package's one, so that
    # its classes (TrainConfig, the errors) are the ones everything else imports
    from cvae_tutorial.train import main as package_main
    package_main()
