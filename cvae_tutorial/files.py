"""Files shared between processes: never left half-written, nor left behind by a killed
process; locks that name their holder; short content fingerprints (for cache keys)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable
from collections.abc import Iterable

from filelock import FileLock, Timeout

TEMPORARY_SUFFIXES = (".tmp", ".partial")


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: what ``open`` would give a new file (``mkstemp``'s
    files are 0600, which would lock other users of a shared dataset folder out)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def temporary_beside(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A new, empty file with a unique name in ``path``'s folder (so that ``os.replace`` onto
    ``path`` is atomic), readable as the umask allows. Two processes or threads never share one."""
    path = Path(path)
    owner = f"{socket.gethostname()}.{os.getpid()}"  # who to ask whether it is still needed
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.{owner}.", suffix=suffix,
                                    dir=path.parent)
    os.close(handle)
    os.chmod(name, umask_mode())
    return Path(name)


def process_state(pid: int) -> str:
    """'running', 'stopped' (SIGSTOP, or traced) or 'gone' (no such process, or a zombie) for
    a process of this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        pass  # another user's process: it exists
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "running"  # no /proc (macOS): it exists
    return {"Z": "gone", "X": "gone", "T": "stopped", "t": "stopped"}.get(state, "running")


def remove_leftovers(folder: str | os.PathLike) -> int:
    """Remove the temporary files in ``folder`` whose owner (named in the file name by
    :func:`temporary_beside`) is a process of this host that is gone: what a ``kill -9`` or a
    lost power supply left behind. Says how much it freed; returns the bytes freed."""
    pattern = re.compile(rf"^\..+\.{re.escape(socket.gethostname())}\.(\d+)\.[a-z0-9_]+"
                         rf"({'|'.join(map(re.escape, TEMPORARY_SUFFIXES))})$")
    removed, freed = [], 0
    for entry in os.scandir(folder) if os.path.isdir(folder) else ():
        match = pattern.match(entry.name)
        if match and int(match[1]) != os.getpid() and process_state(int(match[1])) == "gone":
            try:
                size = entry.stat().st_size
                os.unlink(entry.path)
            except FileNotFoundError:
                continue  # another process removed it first
            removed.append(entry.name)
            freed += size
    if removed:
        warnings.warn(f"removed {len(removed)} temporary file(s) in {folder} left by stopped "
                      f"processes ({', '.join(removed[:3])}{', ...' if len(removed) > 3 else ''})"
                      f": {freed / 1e6:.1f} MB freed", stacklevel=2)
    return freed


def atomic_write(path: str | os.PathLike, write: Callable, mode: str = "wb") -> Path:
    """Write ``path`` by ``write(file)`` into a unique temporary file beside it, flushed to disk,
    then renamed over it. A crash at any moment leaves either the old or the new file whole, never
    a truncated one; a failed write (a full disk) removes the temporary file and keeps the old
    ``path``; concurrent writers never write into each other's temporary file.
    """
    path = Path(path)
    temporary = temporary_beside(path)
    try:
        with open(temporary, mode) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def fingerprint(chunks: Iterable[bytes], length: int | None = None) -> str:
    """The SHA-1 hex digest of ``chunks`` in order, cut to ``length`` characters (None: all 40).

    For telling data apart in cache keys, not for security."""
    digest = hashlib.sha1()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()[:length]


class LockWaitTimeout(TimeoutError):
    """A lock still held after the time a process was willing to wait for it."""


def lock_holder(lock_path: str | os.PathLike) -> tuple:
    """(who holds ``lock_path`` — pid, host, since when, and whether it still runs —, its state:
    'running', 'stopped', 'gone' or 'unknown', the one thing to do about it)."""
    try:
        held = json.loads(Path(f"{lock_path}.json").read_text())
        pid, host, since = int(held["pid"]), str(held["host"]), held["since"]
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process", "unknown", f"if no process uses it, delete {lock_path}"
    state = process_state(pid) if host == socket.gethostname() else "unknown"
    said = {"running": "still running", "stopped": "stopped (SIGSTOP)",
            "gone": "no longer running", "unknown": "on another host, not checked"}[state]
    advice = {"stopped": f"resume it (kill -CONT {pid}) or end it (kill {pid})",
              "running": f"wait for it, or end it (kill {pid}) if it hangs"}.get(
        state, f"end pid {pid} on {host} if it still runs, or delete {lock_path}")
    return f"pid {pid} on host {host} since {since}, {said}", state, advice


@contextmanager
def holding(lock_path: str | os.PathLike, what: str, timeout: float = 0.0,
            stopped_timeout: float = 60.0, poll: float = 0.5):
    """Hold the file lock ``lock_path`` while the block runs, with ``lock_path.json`` saying who
    holds it. A process that finds it held says once who holds it (and again when that
    changes) and waits at most ``timeout`` seconds — ``stopped_timeout`` for a stopped holder —
    then raises :class:`LockWaitTimeout` saying what to do. The operating system releases the
    lock of a process that dies, so a holder that is gone is taken over (with a warning)."""
    lock, started, said, stopped_since = FileLock(str(lock_path), mode=umask_mode()), \
        time.monotonic(), None, None
    while True:
        try:
            lock.acquire(timeout=0 if said is None else poll)
            break
        except Timeout:
            holder, state, advice = lock_holder(lock_path)
            waited = time.monotonic() - started
            stopped_since = (stopped_since or time.monotonic()) if state == "stopped" else None
            limit = min(timeout, stopped_timeout) if state == "stopped" else timeout
            if waited >= timeout or (stopped_since and time.monotonic() - stopped_since >= limit):
                raise LockWaitTimeout(f"{what} ({lock_path}) is held by {holder}; "
                                      f"{f'gave up after {waited:.0f} s; ' if waited >= 1 else ''}"
                                      f"{advice}, then rerun") from None
            if holder != said:
                print(f"waiting for {what}: held by {holder} (giving up after {limit:.0f} s)",
                      file=sys.stderr, flush=True)
                said = holder
    record = Path(f"{lock_path}.json")
    try:
        if record.exists():  # the lock was free, so whoever wrote this is gone
            warnings.warn(f"taking over {what} ({lock_path}) left by {lock_holder(lock_path)[0]}",
                          RuntimeWarning, stacklevel=3)
        since = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
        atomic_write(record, lambda file: file.write(json.dumps(mine)), "w")
        yield
    finally:
        record.unlink(missing_ok=True)
        lock.release()
