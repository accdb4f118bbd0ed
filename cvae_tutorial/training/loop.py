"""The training loop: :class:`TrainConfig`, :func:`train` and the per-epoch test ELBO (chapter 5).

A run is a function of its settings and resumable at any step (``resume``); batches are gathered
ahead by a background thread (``data.batches``); the step can run in ``channels_last`` with bf16
autocast, compiled, with a fused or foreach Adam (``step``); under ``torchrun`` the same loop
runs DDP (``distributed``): ``python -m cvae_tutorial.training --help``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..checkpoints import ensure_writable_folder
from ..config import ConfigError, check_field_types, resolve_device
from ..cvae import CVAE, model_axes, run_name
from ..data.batches import epoch_batches, flip_mask, iterate_batches
from ..data.cache import as_attribute_images
from ..data.images import AttributeImages
from ..files import remove_leftovers
from ..losses import log_sigma_from_mse
from ..signals import sigterm_as_interrupt
from .collapse import warn_on_collapse
from .distributed import LOGGED_TERMS, distributed_world, reduce_running
from .evaluate import evaluate_neg_elbo, training_set_mse
from .resume import Position, save_run, start_or_resume
from .run_lock import run_lock
from .step import backward_and_step, can_skip_on_device, make_optimizer, prepare_step

FAST_OPTION_CHOICES = {"autocast": ("auto", "bf16", "off"), "channels_last": ("auto", "on", "off"),
                       "adam": ("auto", "fused", "foreach", "for-loop"),
                       "compile": ("auto", "off", "default")}
MEAN_IMAGES = 4096  # evenly spaced training images whose mean colour the decoder starts at
LOSS_READ_INTERVAL = 25  # read the losses back (a sync on a GPU) every this many steps, not every
#                          step, where the optimizer can skip a non-finite step on the device


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
    sigma_images: int = 4096      # training images whose MSE sets the final decoder σ*
    # Fast-step options: each can be switched and each is correct on a CPU; "auto" turns an option
    # on only on CUDA, and only where it measured faster there (``fast_options``).
    autocast: str = "auto"        # "bf16" or "off" (auto: see fast_options; off on a CPU)
    channels_last: str = "auto"   # "on" or "off": NHWC convolutions (auto: on for CUDA only)
    adam: str = "auto"            # "fused", "foreach" or "for-loop" (auto: fused on CUDA, else
    #                               foreach)
    compile: str = "auto"         # torch.compile the loss: "off" or "default". Minutes of
    #                               compiling, then a faster step (auto: see fast_options)
    pin_memory: bool = True       # page-locked batches, non-blocking host-to-GPU copies (CUDA)
    prefetch: bool = True         # gather the next batch in a background thread during the step

    def __post_init__(self):
        check_field_types(self)
        for name in ("epochs", "batch_size", "eval_batch_size", "sigma_images"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be at least 1, got "
                                  f"{getattr(self, name)}")
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

    def fast_options(self, device: torch.device, model: str | None = None) -> dict:
        """The "auto" options resolved for ``device`` and the ``model`` (its name): autocast
        dtype (or None), channels_last, the Adam implementation, the compile mode ("off" or
        "default"), and whether batches are pinned.

        On CUDA "auto" turns an option on only where one H100 measured it faster at 64x64 (the
        README's Performance section gives the ratios): the flow priors are compiled; bf16
        autocast is on for the convolutional models, and for a flow prior only when compiled or
        at batch >= 2048 (eager, each small Linear of the flow pays a cast).
        """
        cuda = device.type == "cuda"
        # measured on sigma_flow; the other flow priors share its many small Linear layers
        flow = model is not None and model_axes(model)[1] in ("flow", "conditional_flow")
        compile_mode = self.compile if self.compile != "auto" else \
            ("default" if cuda and flow else "off")
        bf16_pays = not flow or compile_mode != "off" or self.batch_size >= 2048
        return {"autocast": torch.bfloat16 if self.autocast == "bf16" or
                (self.autocast == "auto" and cuda and bf16_pays) else None,
                "channels_last": self.channels_last == "on" or
                (self.channels_last == "auto" and cuda),
                "adam": self.adam if self.adam != "auto" else ("fused" if cuda else "foreach"),
                "compile": compile_mode, "pin_memory": self.pin_memory and cuda}


def _check_finite(terms: dict, epoch: int, step: int, checkpoint_path,
                  skipped: float = 0.0) -> None:
    """Stop the run at a non-finite loss, or at a step whose update the fused Adam skipped on
    the device (``skipped``: its gradients were not finite)."""
    if math.isfinite(terms["loss"]) and not skipped:
        return
    what = "loss" if not math.isfinite(terms["loss"]) else "gradients (finite loss)"
    values = ", ".join(f"{key}={value:.4g}" for key, value in terms.items())
    if checkpoint_path is None:
        kept = "no checkpoint was being written"
    elif Path(checkpoint_path).exists():
        kept = f"the checkpoint written before this step, {checkpoint_path}, is kept unchanged"
    else:
        kept = f"no checkpoint was written to {checkpoint_path} yet"
    raise NonFiniteLossError(f"non-finite {what} at epoch {epoch}, step {step}: {values}; {kept};"
                             f" the weights in memory are those from before this step."
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
    train_data, test_data = _checked_data(model, train_data, test_data)
    device = resolve_device(config.device)
    rank, world_size = distributed_world()
    with sigterm_as_interrupt():  # docker stop, Slurm, Kubernetes: cleanup runs as for Ctrl-C
        if checkpoint_path is not None and rank == 0:
            ensure_writable_folder(Path(checkpoint_path).parent)  # fail now, not after an epoch
            with run_lock(checkpoint_path):  # one training per checkpoint
                remove_leftovers(Path(checkpoint_path).parent)  # temporaries of killed runs
                return _train(model, train_data, test_data, config, device, checkpoint_path,
                              progress, on_batch, initialize)
        return _train(model, train_data, test_data, config, device, checkpoint_path, progress,
                      on_batch, initialize)


def _train(model, train_data, test_data, config, device, checkpoint_path, progress, on_batch,
           initialize) -> list:
    rank, world_size = distributed_world()
    model.to(device)
    optimizer = make_optimizer(model, config.lr,
                               config.fast_options(device, model.config.model)["adam"])
    train_fingerprint, test_fingerprint = (train_data.fingerprint(), test_data.fingerprint()) \
        if checkpoint_path is not None else (None, None)
    position = start_or_resume(model, optimizer, config, checkpoint_path, device, initialize,
                               train_fingerprint, test_fingerprint)
    if initialize and not position.history and position.step == 0:  # a fresh run
        model.decoder.start_at(channel_means(train_data).to(device))
    loss_fn, optimizer, options = prepare_step(model, config, device, optimizer)
    steps_per_epoch = len(epoch_batches(len(train_data), config.batch_size, config.seed, 0,
                                        rank, world_size))
    # closed on every exit: a bar an error leaves open is drawn again when Python exits
    with tqdm(total=config.epochs * steps_per_epoch,
              initial=position.epoch * steps_per_epoch + position.step,
              desc=f"training {run_name(model.config)}", disable=not progress or rank > 0,
              unit="step") as bar:
        run = _Run(model, train_data, test_data, config, device, loss_fn, optimizer, options,
                   checkpoint_path, on_batch, bar, _sync_interval(optimizer), train_fingerprint,
                   test_fingerprint)
        model.train()
        while position.epoch < config.epochs:
            _train_epoch(run, position)
    return position.history


def channel_means(data: AttributeImages, count: int = MEAN_IMAGES) -> Tensor:
    """The mean of each colour channel in [0, 1] over ``count`` evenly spaced images."""
    rows = torch.linspace(0, len(data) - 1, min(count, len(data))).long().unique()
    return data.images[rows].double().mean((0, 2, 3)).div(255).float()


def _sync_interval(optimizer: torch.optim.Optimizer) -> int:
    """Steps between loss read-backs. With the fused Adam (CUDA's default), which skips a
    non-finite step on the device (``step.guarded_step``), one read per group of steps; with the
    others every step, so a NaN stops the run before the update that would spread it (a sync per
    step on a GPU; nothing on a CPU)."""
    return LOSS_READ_INTERVAL if can_skip_on_device(optimizer) else 1


def _checked_data(model, train_data, test_data) -> tuple:
    """Both datasets as :class:`AttributeImages` that fit the model, or a clear error."""
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
    return train_data, test_data


@dataclass
class _Run:
    """What stays fixed while a run trains."""

    model: CVAE
    train_data: AttributeImages
    test_data: AttributeImages
    config: TrainConfig
    device: torch.device
    loss_fn: Callable
    optimizer: torch.optim.Optimizer
    options: dict
    checkpoint_path: str | os.PathLike | None
    on_batch: Callable | None
    bar: tqdm
    sync_interval: int
    train_fingerprint: dict | None  # the training data's, saved with each checkpoint
    test_fingerprint: dict | None  # and the test set's (its ELBOs fill the history)

    def save(self, position: Position) -> None:
        save_run(self.checkpoint_path, self.model, self.optimizer, self.config, position,
                 self.device, self.train_fingerprint, self.test_fingerprint)


class _EpochSums:
    """The running sums of the loss terms over an epoch; the terms of each step are kept on the
    device and read back (a sync on a GPU) every ``sync_interval`` steps."""

    def __init__(self, run: _Run, epoch: int, running: dict | None):
        self.run, self.epoch, self.pending = run, epoch, []
        self.running = running or {"loss": 0.0, "recon": 0.0, "kl": 0.0, "mse": 0.0, "steps": 0,
                                   "seconds": 0.0}

    def add(self, step: int, terms: dict) -> None:
        """Keep a step's loss terms; with ``sync_interval`` 1 read them back at once (before
        the step's update: a non-finite loss stops the run before it spreads)."""
        self.pending.append([step, torch.stack([terms[key].detach().float()
                                                for key in LOGGED_TERMS]), None])
        if self.run.sync_interval == 1:
            self.read_back()

    def stepped(self, skipped: Tensor | None) -> None:
        """After the step's update: keep the flag of an update skipped on the device (read back
        with the losses) and read back every ``sync_interval`` steps."""
        if skipped is not None:
            self.pending[-1][2] = skipped
        if len(self.pending) >= self.run.sync_interval:
            self.read_back()

    def read_back(self) -> None:
        if not self.pending:
            return
        values = torch.stack([row if skipped is None else torch.cat([row, skipped.reshape(1)])
                              for _, row, skipped in self.pending]).tolist()
        for (step, _, _), row in zip(self.pending, values):
            terms = dict(zip(LOGGED_TERMS, row))
            _check_finite(terms, self.epoch, step, self.run.checkpoint_path,
                          row[len(LOGGED_TERMS)] if len(row) > len(LOGGED_TERMS) else 0.0)
            for key, value in terms.items():
                self.running[key] += value
            self.running["steps"] += 1
        self.run.bar.set_postfix(epoch=self.epoch, loss=f"{values[-1][0]:.1f}")
        self.pending.clear()


def _train_epoch(run: _Run, position: Position) -> None:
    """The rest of epoch ``position.epoch`` from step ``position.step``, then its record."""
    config, epoch, rank_world = run.config, position.epoch, distributed_world()
    started = time.perf_counter()
    batches = epoch_batches(len(run.train_data), config.batch_size, config.seed, epoch,
                            *rank_world)
    flips = flip_mask(len(run.train_data), config.seed, epoch) if config.flip else None
    sums = _EpochSums(run, epoch, position.running)
    stream = iterate_batches(run.train_data, batches[position.step:], run.device, flips,
                             run.options["pin_memory"], run.options["channels_last"],
                             config.prefetch)
    for step, (x, y) in enumerate(stream, start=position.step):
        if run.on_batch is not None:
            run.on_batch(epoch, step, batches[step])
        terms = run.loss_fn(x, y)
        sums.add(step, terms)
        sums.stepped(backward_and_step(run.optimizer, terms["loss"]))
        run.bar.update()
        if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 \
                and step + 1 < len(batches):
            sums.read_back()
            sums.running["seconds"] += time.perf_counter() - started
            started = time.perf_counter()
            position.step, position.running = step + 1, sums.running
            run.save(position)
    sums.read_back()
    sums.running["seconds"] += time.perf_counter() - started
    _end_epoch(run, position, sums.running)


def _end_epoch(run: _Run, position: Position, running: dict) -> None:
    """Record the epoch (training means, σ*, test ELBO), move to the next one and checkpoint."""
    model = run.model
    totals = reduce_running(running, run.device) if distributed_world()[1] > 1 else running
    record = {key: totals[key] / totals["steps"] for key in LOGGED_TERMS}
    if model.learns_sigma:  # the epoch's mean batch σ*, for the curves and the test ELBO
        _set_log_sigma(model, record["mse"])
    test = evaluate_neg_elbo(model, run.test_data, run.config.eval_batch_size, run.config.seed)
    position.history.append({"epoch": position.epoch + 1,
                             **{f"train_{k}": v for k, v in record.items()},
                             "log_sigma": model.decoder_log_sigma.item(),
                             **{f"test_{k}": v for k, v in test.items()},
                             "seconds": totals["seconds"]})
    if distributed_world()[0] == 0:
        warn_on_collapse(position.history, run_name(model.config))
    if model.learns_sigma and position.epoch + 1 >= run.config.epochs:
        # The σ evaluation uses: σ*² = the training-set MSE with the final weights, computed once
        # (the batch MSEs were taken while the weights moved). The history keeps the training
        # records, so a run extended by more epochs repeats the shorter run's rows exactly.
        _set_log_sigma(model, training_set_mse(model, run.train_data, run.config.sigma_images,
                                               run.config.eval_batch_size, run.config.seed))
    position.epoch, position.step, position.running = position.epoch + 1, 0, None
    run.save(position)


def _set_log_sigma(model: CVAE, mse: float) -> None:
    model.decoder_log_sigma.fill_(log_sigma_from_mse(
        torch.tensor(mse, dtype=torch.float64), model.config.min_log_sigma,
        model.decoder_log_sigma.dtype).item())

