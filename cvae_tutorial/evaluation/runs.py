"""Which checkpoints an evaluation reads, and the check that they belong together (chapter 6).

A run folder holds ``seed<k>/<model>/checkpoint.pt`` (or ``<model>/checkpoint.pt``). Before
anything is scored, every checkpoint must be what its folder says — that model, that seed —
trained to the end and no longer training, on the data it is evaluated with; and the seeds of
a model must be one configuration. A copied file, a half-trained seed or a seed listed twice is
then one clear error instead of a number averaged into a table.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoints import (checkpoint_path, ensure_writable_folder, load_checkpoint,
                           saved_config, seed_dir, training_holder)
from ..config import ConfigError, check_int
from ..cvae import run_config, run_name
from ..data.images import AttributeImages

# The training settings that make two trainings of one model the same experiment (the rest,
# such as the device or the checkpoint interval, change only how it ran).
TRAINING_FIELDS = ("epochs", "batch_size", "lr", "flip", "sigma_images")


class RunError(ConfigError):
    """A checkpoint that does not belong in the evaluation of its run."""


@dataclass(frozen=True)
class RunEntry:
    """One asked-for checkpoint: the run name of its model, its training seed (None for a run
    without seed folders) and where it is, or would be."""

    model: str
    seed: int | None
    path: Path

    def __str__(self) -> str:
        return self.model if self.seed is None else f"seed {self.seed} of {self.model}"


@dataclass
class Run:
    """The checkpoints of a run that exist (``found``, seed by seed) and those asked for that do
    not (``missing``: empty unless they were allowed to be)."""

    folder: Path
    found: list
    missing: list = field(default_factory=list)

    def left_out(self) -> str:
        """The sentence that says what the evaluation left out ('' when nothing)."""
        if not self.missing:
            return ""
        return (f"Left out, no checkpoint in {self.folder}: "
                f"{', '.join(str(entry) for entry in self.missing)}.")


@dataclass(frozen=True)
class CheckedCheckpoint:
    """What a checked checkpoint records of how it was made (for :func:`check_consistent`)."""

    path: Path
    model: str
    seed: int | None
    model_config: dict
    training: dict
    data: dict | None


def check_list(name: str, values, kind: type = str) -> list:
    """``values`` as a list: not empty, of ``kind``, each once. A seed listed twice would count
    one training as two (n doubles, the standard error shrinks by √2)."""
    if isinstance(values, (str, int)) or values is None:
        raise ConfigError(f"{name} must be a list of {kind.__name__}s, got {values!r}")
    values = list(values)
    if not values:
        raise ConfigError(f"{name} is empty; list at least one")
    for value in values:
        if kind is int:
            check_int(f"each of {name}", value, 0)
        elif not isinstance(value, kind):
            raise ConfigError(f"{name} must hold {kind.__name__}s, got {value!r}")
    repeated = [value for index, value in enumerate(values) if value in values[:index]]
    if repeated:
        raise ConfigError(f"{name} lists {repeated[0]!r} more than once ({values}); list each "
                          f"once: a repeat would be counted as another training")
    return values


def run_entries(run_dir, models, seeds=None) -> list:
    """Where each (seed, model) of a run keeps its checkpoint, seed by seed."""
    folders = [(None, Path(run_dir))] if seeds is None else \
        [(seed, seed_dir(run_dir, seed)) for seed in seeds]
    return [RunEntry(model, seed, checkpoint_path(folder, model))
            for seed, folder in folders for model in models]


def run_exists(run_dir) -> bool:
    """Whether ``run_dir`` holds any model checkpoint at all (``<model>/checkpoint.pt`` or
    ``seed<k>/<model>/checkpoint.pt``): a chapter trains stand-in models only when it holds none;
    a run with some checkpoints but not the asked ones is an error (:func:`locate_run`)."""
    folder = Path(run_dir)
    return any(folder.glob("*/checkpoint.pt")) or any(folder.glob("seed*/*/checkpoint.pt"))


def locate_run(run_dir, models, seeds=None, allow_missing: bool = False) -> Run:
    """The checkpoints of ``models`` (run names) for each of ``seeds`` (None: a run folder without
    seed folders) in ``run_dir``.

    A missing one is a FileNotFoundError naming each that is missing, unless ``allow_missing``:
    then the run holds what exists and lists the rest in ``missing``. None at all is always an
    error. Duplicates, an empty list or an unknown model name are a ConfigError.
    """
    models = check_list("models", [models] if isinstance(models, str) else models)
    for name in models:
        run_config(name)  # an unknown name is a ConfigError here
    if seeds is not None:
        seeds = check_list("seeds", seeds, int)
    entries = run_entries(run_dir, models, seeds)
    found = [entry for entry in entries if entry.path.is_file()]
    missing = [entry for entry in entries if not entry.path.is_file()]
    if not found:
        looked = ", ".join(str(entry.path.relative_to(run_dir)) for entry in entries)
        raise FileNotFoundError(f"no checkpoint of {', '.join(models)} in {run_dir} (looked for "
                                f"{looked}); train these models first (chapter 5 writes them) "
                                f"or pass the run folder that has them")
    if missing and not allow_missing:
        raise FileNotFoundError(
            f"{run_dir} has no checkpoint for {', '.join(map(str, missing))} (no "
            f"{', '.join(str(entry.path) for entry in missing)}); train them (chapter 5, same "
            f"seeds), leave them out of seeds/models, or pass allow_missing=True to evaluate "
            f"the rest")
    return Run(Path(run_dir), found, missing)


def check_checkpoint(path, model: str | None = None, seed: int | None = None,
                     data: AttributeImages | None = None) -> CheckedCheckpoint:
    """Refuse, in one line, a checkpoint that cannot be evaluated as ``model`` (a run name) of
    training seed ``seed`` on ``data`` (the training images the evaluation is given): another
    model's, another seed's, training unfinished (fewer epochs than asked, stopped mid-epoch)
    or still running, other attributes or their order, another image size, other training data,
    or non-finite weights or decoder σ. ``None`` skips the model, seed or data checks."""
    path = Path(path)
    holder = training_holder(path)
    if holder is not None:
        raise RunError(f"{path} is still being trained by {holder}; wait for that training to "
                       f"finish, or leave this checkpoint out")
    state = load_checkpoint(path)
    config = saved_config(state)
    training = state["train_config"]
    if model is not None and run_name(config) != model:
        raise RunError(f"{path} holds a {run_name(config)} model, not {model}: it was copied "
                       f"from another model's folder; put {model}'s own checkpoint there")
    if seed is not None and training.get("seed") != seed:
        raise RunError(f"{path} was trained with seed {training.get('seed')} but sits in the "
                       f"folder of seed {seed}: it was copied from another seed's folder; train "
                       f"seed {seed} there (chapter 5) or leave that seed out")
    _check_finished(path, state, training)
    if data is not None:
        _check_data(path, state, config, data)
    _check_finite(path, state["model"])
    return CheckedCheckpoint(path, run_name(config), training.get("seed"), config.to_dict(),
                             {key: training.get(key) for key in TRAINING_FIELDS},
                             state["data"])


def _check_finished(path: Path, state: dict, training: dict) -> None:
    asked, done, step = training.get("epochs"), state["epoch"], state["step_in_epoch"]
    if step:
        stopped = f"stopped in epoch {done + 1} of {asked}, after step {step}"
    elif asked is not None and done < asked:
        stopped = f"stopped after {done} of its {asked} epochs"
    else:
        return
    raise RunError(f"{path} is not trained to the end ({stopped}); rerun the same training to "
                   f"finish it (it resumes from the checkpoint) or leave it out")


def _check_data(path: Path, state: dict, config, data: AttributeImages) -> None:
    """The model's attributes (names and order) and image size are the data's; the recorded
    fingerprint of its training images is that of the data's first as many images."""
    if config.image_size != data.image_size:
        raise RunError(f"{path} is a {config.image_size}px model but the data are "
                       f"{data.image_size}px; load the data at image_size={config.image_size}")
    recorded = state["data"]  # every checkpoint records it (training/resume.save_run)
    names = list(data.attribute_names)
    if recorded["attributes"] != names:
        raise RunError(f"{path} was trained with the attributes {recorded['attributes']}, but the "
                       f"data have {names}; load the data with attributes= in the model's order")
    if recorded["count"] > len(data):
        warnings.warn(f"{path} was trained on {recorded['count']} images, more than the "
                      f"{len(data)} given: its training data could not be checked",
                      RuntimeWarning, stacklevel=3)
        return
    digest = data.subset(recorded["count"]).fingerprint()["digest"]
    if digest != recorded["digest"]:
        raise RunError(f"{path} was trained on other images than the first {recorded['count']} "
                       f"of the data given (another dataset, split, seed or order); load the "
                       f"data it was trained on")


def _check_finite(path: Path, weights: dict) -> None:
    log_sigma = weights.get("decoder_log_sigma")
    if log_sigma is not None and not math.isfinite(float(log_sigma)):
        raise RunError(f"{path} has a non-finite decoder σ (log σ = {float(log_sigma)}); its "
                       f"likelihoods would be NaN: retrain it, or leave it out")
    bad = [name for name, tensor in weights.items()
           if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise RunError(f"{path} has non-finite weights ({', '.join(bad[:3])}); retrain it or "
                       f"leave it out")


def check_consistent(checked: list) -> None:
    """Every seed of a model has that model's architecture and training settings; every
    checkpoint of the run was trained on the same data (where recorded)."""
    first = {}
    for record in checked:
        reference = first.setdefault(record.model, record)
        for what, ours, theirs in (("architecture", record.model_config,
                                    reference.model_config),
                                   ("training settings", record.training, reference.training)):
            differences = [f"{key} {ours.get(key)!r} vs {theirs.get(key)!r}"
                           for key in dict.fromkeys([*theirs, *ours])
                           if ours.get(key) != theirs.get(key)]
            if differences:
                raise RunError(f"{record.path} and {reference.path} differ in "
                               f"{what} ({'; '.join(differences)}): the seeds of one model must "
                               f"be trained alike; retrain one or leave it out")
    recorded = [record for record in checked if record.data is not None]
    for record in recorded[1:]:
        if record.data != recorded[0].data:
            raise RunError(f"{record.path} and {recorded[0].path} were trained on different "
                           f"data; a run's models must share their training data")


def check_run(run: Run, train_data: AttributeImages, test_data: AttributeImages) -> list:
    """:func:`check_checkpoint` for each checkpoint of the run against the training data, then
    :func:`check_consistent`; the test data must have the training data's attributes and size.
    Returns the checked checkpoints."""
    if (list(test_data.attribute_names), test_data.image_size) != \
            (list(train_data.attribute_names), train_data.image_size):
        raise ConfigError(f"the test data ({test_data.image_size}px, "
                          f"{list(test_data.attribute_names)}) and the training data "
                          f"({train_data.image_size}px, {list(train_data.attribute_names)}) "
                          f"differ; load both with the same image_size and attributes")
    checked = [check_checkpoint(entry.path, entry.model, entry.seed, train_data)
               for entry in run.found]
    check_consistent(checked)
    return checked


def writable_results_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and prove the results can be written there, before any evaluation."""
    try:
        return ensure_writable_folder(folder)
    except OSError as error:
        cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
        reason = cause.strerror if cause.strerror else "a file is in the way"
        raise PermissionError(f"cannot write the results into {folder} ({reason}); pass "
                              f"results_dir= a writable folder") from None
