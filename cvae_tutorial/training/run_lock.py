"""One training per checkpoint: a lock held for the whole run, naming who holds it (chapter 5).

Two trainings writing one checkpoint would interleave their saves; the second one stops at once
instead, naming the holder (pid, host, since when, still running or stopped) and what to do. The
operating system releases the lock when its process dies, so a lock left behind by a killed run
is taken over (with a warning), never waited for.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..checkpoints import CheckpointError, run_lock_path
from ..files import LockWaitTimeout, holding, lock_holder


class RunInUseError(CheckpointError):
    """Another live process is training into the same checkpoint."""


@contextmanager
def run_lock(checkpoint_path):
    """Hold ``checkpoint_path.lock`` while the block runs; beside it, ``.lock.json`` says who.

    Raises :class:`RunInUseError` naming the holder if another process holds it."""
    path, lock_path = Path(checkpoint_path), run_lock_path(checkpoint_path)
    with ExitStack() as held:
        try:
            held.enter_context(holding(lock_path, f"the run lock of {path}", timeout=0))
        except LockWaitTimeout:
            holder, _, advice = lock_holder(lock_path)
            raise RunInUseError(f"{path} is being trained by {holder}; {advice}, or use "
                                f"another out_dir") from None
        yield
