"""Where a run starts: fresh from its seed, or from its checkpoint exactly where it stopped.

The data order of epoch ``e`` is a pure function of (seed, e), so a run restarted from a
checkpoint written mid-epoch replays exactly the batches it had not seen yet, and the RNG states
saved with it make its noise identical too (chapter 5).
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..version import __version__
from ..checkpoints import (CHECKPOINT_FORMAT, CheckpointError, check_checkpoint_matches,
                           load_resume_state, save_checkpoint)
from .distributed import distributed_world, gather_rng_states, reduce_running

RUN_DEFINING_FIELDS = ("lr", "seed", "batch_size", "flip")  # a resume must not change these


@dataclass
class Position:
    """How far a run has come: its history, the epoch and step to run next, and the epoch's
    running sums of the loss terms so far (None at an epoch's start)."""

    history: list
    epoch: int = 0
    step: int = 0
    running: dict | None = None


def check_same_run(state: dict, config, path) -> None:
    """Resuming with another lr, seed, batch size or flip would splice two runs together (and
    Adam's saved lr would silently win): a clear error instead. ``epochs`` may grow."""
    saved = state["train_config"]
    differences = [f"{name}: checkpoint {saved[name]!r} vs asked {getattr(config, name)!r}"
                   for name in RUN_DEFINING_FIELDS if saved[name] != getattr(config, name)]
    if differences:
        raise CheckpointError(f"checkpoint {path} belongs to a run with other training settings "
                              f"({'; '.join(differences)}); resume with the same settings or use "
                              f"a new out_dir")


def check_same_data(state: dict, train_fingerprint: dict, path) -> None:
    """Resuming on other data (other attributes or their order, another subset, split or
    dataset) would splice two runs together: a clear error. ``train_fingerprint``: the training
    data's :meth:`AttributeImages.fingerprint`, saved in the checkpoint as ``"data"``."""
    saved = state["data"]
    differences = [f"{key}: checkpoint {saved.get(key)!r} vs now {value!r}"
                   for key, value in train_fingerprint.items() if saved.get(key) != value]
    if differences:
        raise CheckpointError(f"checkpoint {path} was trained on other data "
                              f"({'; '.join(differences)}); resume with the same dataset, "
                              f"split, --num-images and --attributes (in that order) or use a "
                              f"new out_dir")


def check_same_course(state: dict, config, test_fingerprint: dict, path,
                      world_size: int = 1) -> None:
    """A run resumed for fewer epochs than it has trained would report the longer run under the
    shorter settings, one on another test set would mix two test sets in its history, and one
    on another number of processes would change the global batch and the data order (images
    seen twice in a resumed epoch): each is one clear error."""
    saved_world = state["world_size"]
    if saved_world != world_size:
        raise CheckpointError(
            f"checkpoint {path} was trained on {saved_world} process(es) (a global batch of "
            f"{saved_world} x {config.batch_size} images, stopped at epoch {state['epoch']}, "
            f"image {state['step_in_epoch'] * saved_world * config.batch_size} of it); resuming "
            f"on {world_size} would change the batches and the data order; resume with "
            f"torchrun --nproc_per_node={saved_world}"
            f"{' (or plain python)' if saved_world == 1 else ''} or use a new out_dir")
    if state["epoch"] > config.epochs:
        raise CheckpointError(f"checkpoint {path} has trained {state['epoch']} epochs, more than "
                              f"the epochs={config.epochs} asked; ask epochs={state['epoch']} "
                              f"(or more, to extend it) or use a new out_dir")
    saved = state["test_data"]  # the test set's fingerprint
    if saved != test_fingerprint:
        differences = [f"{key}: checkpoint {saved.get(key)!r} vs now {value!r}"
                       for key, value in test_fingerprint.items() if saved.get(key) != value]
        raise CheckpointError(f"checkpoint {path} was tested on another test set "
                              f"({'; '.join(differences)}): its history would mix the two; "
                              f"resume with the same test images (test_images) or use a new "
                              f"out_dir")


def start_or_resume(model, optimizer, config, checkpoint_path, device,
                    initialize: bool, train_fingerprint: dict | None,
                    test_fingerprint: dict | None) -> Position:
    """Load the run's checkpoint into ``model`` and ``optimizer`` if there is one (RNG states
    too; the fingerprints of the training and test data, given with every ``checkpoint_path``,
    must match the ones saved); else initialise the model from ``config.seed`` (unless not
    ``initialize``) and seed the global generators, each rank differently (its images draw their
    own noise)."""
    rank, world_size = distributed_world()
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state = load_resume_state(checkpoint_path, map_location=device)
        check_checkpoint_matches(state, model.config, checkpoint_path)
        check_same_run(state, config, checkpoint_path)
        check_same_data(state, train_fingerprint, checkpoint_path)
        check_same_course(state, config, test_fingerprint, checkpoint_path, world_size)
        optimizer.load_state_dict(state["optimizer"])
        model.load_state_dict(state["model"])
        position = Position(state["history"], state["epoch"], state["step_in_epoch"],
                            state["running"])
        set_rng_state(state["rng_ranks"][rank] if world_size > 1 else state["rng"])
        if rank > 0 and position.running is not None:
            position.running = dict.fromkeys(position.running, 0.0)  # rank 0 holds the sums
        return position
    if initialize:  # every rank starts from the same weights
        model.initialize(config.seed)
    torch.manual_seed(config.seed + rank)
    np.random.seed(config.seed + rank)
    random.seed(config.seed + rank)
    return Position([])


def save_run(path, model, optimizer, config, position: Position, device,
             train_fingerprint: dict | None, test_fingerprint: dict | None) -> None:
    """Checkpoint the run at ``position`` (rank 0 writes; under DDP with every rank's RNG state
    and the running sums reduced over the ranks), with the fingerprints of its training and test
    data (saved as ``"data"`` and ``"test_data"``). Nothing without a ``path``."""
    if path is None:
        return
    rank, world_size = distributed_world()
    rng, rng_ranks, running = rng_state(), None, position.running
    if world_size > 1:
        rng_ranks = gather_rng_states(rng, world_size)
        running = reduce_running(running, device)
    if rank == 0:
        save_checkpoint({
            "format": CHECKPOINT_FORMAT, "package_version": __version__,
            "model_config": model.config.to_dict(), "train_config": asdict(config),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "epoch": position.epoch, "step_in_epoch": position.step, "running": running,
            "history": position.history, "rng": rng, "rng_ranks": rng_ranks,
            "data": train_fingerprint, "test_data": test_fingerprint, "world_size": world_size,
            "images_seen_in_epoch": position.step * world_size * config.batch_size}, path)


def rng_state() -> dict:
    numpy_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].copy()),
                      *numpy_state[2:]],
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
