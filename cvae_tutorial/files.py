"""Files that are never left half-written, and short content fingerprints (for cache keys)."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable


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
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    os.chmod(name, umask_mode())
    return Path(name)


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
