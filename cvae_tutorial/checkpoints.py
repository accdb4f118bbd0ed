"""Checkpoints: one file per run and model, written atomically, read back safely.

A checkpoint holds the model's configuration and weights (all :func:`load_model` needs) and,
for training, the optimizer, the position in the run and the RNG states (chapter 5 resumes
from it). Written with ``atomic_write`` and the last good one kept as ``.prev``, so a crash or
a full disk never leaves a run without a whole checkpoint.
"""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from .cvae import CVAE, CVAEConfig
from .files import atomic_write, lock_holder, temporary_beside

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, truncated, or made for another model."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file that cannot be read back: truncated or damaged on disk."""


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically, keeping the last good one as ``path.prev``.

    A crash at any moment leaves either the old or the new file whole, never a truncated one.
    """
    path = Path(path)
    ensure_writable_folder(path.parent)
    _keep_previous(path)
    try:
        return atomic_write(path, lambda file: torch.save(state, file))
    except (OSError, RuntimeError) as error:  # a full disk, a file-size limit (torch: RuntimeError)
        kept = f"the last checkpoint {path} is kept" if path.exists() else "nothing was written"
        raise CheckpointError(f"could not write checkpoint {path} ({error}); {kept}; free disk "
                              f"space (or raise the file-size limit) and rerun to resume"
                              ) from error


def _keep_previous(path: Path) -> None:
    """Give the checkpoint at ``path``, if any, the second name ``path.prev`` (a hard link:
    nothing is copied). Saves of other processes may replace ``path`` meanwhile: each name
    always holds some whole checkpoint."""
    previous = path.with_name(path.name + ".prev")
    while path.exists():
        # owner-named (host, pid), so a run killed here has its leftover removed next time
        previous_tmp = temporary_beside(previous)
        previous_tmp.unlink()
        try:
            os.link(path, previous_tmp)
        except FileNotFoundError:  # another save replaced path after the kernel found it: the
            continue               # replaced file cannot be linked; rotate the new one instead
        try:
            os.replace(previous_tmp, previous)
        finally:  # also when .prev already is path (a save interrupted after this rotation):
            previous_tmp.unlink(missing_ok=True)  # rename between two links of a file is a no-op
        return


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


def saved_config(state: dict) -> CVAEConfig:
    """The model configuration of a checkpoint."""
    return CVAEConfig(**state["model_config"])


def check_checkpoint_matches(state: dict, config: CVAEConfig, path) -> None:
    """A checkpoint for another architecture is a clear error, not a state-dict shape dump."""
    saved = saved_config(state).to_dict()
    wanted = config.to_dict()
    differences = [f"{key}: checkpoint {saved.get(key)!r} vs asked {value!r}"
                   for key, value in wanted.items() if saved.get(key) != value]
    if differences:
        raise CheckpointError(f"checkpoint {path} was written for another model "
                              f"({'; '.join(differences)}); use a new out_dir or the matching "
                              f"configuration")


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
        shutil.copyfile(path, corrupt)
        with open(previous, "rb") as good:
            atomic_write(path, lambda file: shutil.copyfileobj(good, file))
        warnings.warn(f"{error.args[0].split(';')[0]}; resuming from the previous good checkpoint "
                      f"{previous} (epoch {state['epoch']}, step {state['step_in_epoch']}); the "
                      f"damaged file is kept as {corrupt}", RuntimeWarning, stacklevel=3)
        return state


def checkpoint_path(run_dir: str | os.PathLike, model_name: str) -> Path:
    """Where a run keeps the checkpoint of one model: ``run_dir/<model>/checkpoint.pt``."""
    return Path(run_dir) / model_name / "checkpoint.pt"


def run_lock_path(checkpoint_path: str | os.PathLike) -> Path:
    """The lock a training holds on its checkpoint for the whole run (``checkpoint.pt.lock``;
    beside it ``checkpoint.pt.lock.json`` names the holder, ``files.holding``)."""
    path = Path(checkpoint_path)
    return path.with_name(path.name + ".lock")


def training_holder(checkpoint_path: str | os.PathLike) -> str | None:
    """Who is training into ``checkpoint_path`` right now, or None when nobody is (the operating
    system frees the lock of a process that died, so a lock left by a killed run is no holder)."""
    lock_file = run_lock_path(checkpoint_path)
    if not lock_file.exists():
        return None
    lock = FileLock(str(lock_file))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return lock_holder(lock_file)[0]
    except OSError:  # a lock file this user cannot open: the note is all there is to go on
        return lock_holder(lock_file)[0] if Path(f"{lock_file}.json").exists() else None
    lock.release()
    return None


def seed_dir(out_dir: str | os.PathLike, seed: int) -> Path:
    """The run folder of one training seed when a chapter trains several: ``out_dir/seed<k>``."""
    return Path(out_dir) / f"seed{seed}"


def load_model(path: str | os.PathLike, map_location="cpu",
               expected: CVAEConfig | None = None) -> CVAE:
    """The trained model stored in a checkpoint, in eval mode.

    With ``expected``, a checkpoint written for another configuration is a clear error.
    """
    state = load_checkpoint(path, map_location)
    if expected is not None:
        check_checkpoint_matches(state, expected, path)
    model = CVAE(saved_config(state))
    model.load_state_dict(state["model"])
    return model.eval()


def load_history(path: str | os.PathLike) -> list:
    """The per-epoch history stored in a checkpoint."""
    return load_checkpoint(path)["history"]
