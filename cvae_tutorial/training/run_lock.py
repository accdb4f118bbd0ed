"""One training per checkpoint: a lock held for the whole run, naming who holds it (chapter 5).

Two trainings writing one checkpoint would interleave their saves; the second one stops at once
instead. The operating system releases the lock when its process dies, so a lock left behind by a
killed run is taken over (with a warning), never waited for.
"""
from __future__ import annotations

import json
import os
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..checkpoints import CheckpointError, lock_holder_note as _holder, run_lock_files
from ..files import atomic_write, umask_mode


class RunInUseError(CheckpointError):
    """Another live process is training into the same checkpoint."""


@contextmanager
def run_lock(checkpoint_path):
    """Hold ``checkpoint_path.lock`` while the block runs; beside it, ``.lock.json`` says who.

    Raises :class:`RunInUseError` naming the holder if another process holds it."""
    path = Path(checkpoint_path)
    lock_file, info = run_lock_files(path)
    lock = FileLock(str(lock_file), mode=umask_mode())
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunInUseError(f"{path} is being trained by {_holder(info)}; wait for that run to "
                            f"finish or stop it, or use another out_dir") from None
    try:
        if info.exists():  # the lock was free, so whoever wrote this is gone
            warnings.warn(f"taking over the run lock of {path} left by {_holder(info)}, which "
                          f"is no longer running", RuntimeWarning, stacklevel=3)
        since = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
        atomic_write(info, lambda file: file.write(json.dumps(record)), "w")
        yield
    finally:
        info.unlink(missing_ok=True)
        lock.release()
