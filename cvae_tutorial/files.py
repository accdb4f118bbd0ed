"""Files that are never left half-written, and short content fingerprints (for cache keys)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Iterable


def atomic_write(path: str | os.PathLike, write: Callable, mode: str = "wb") -> Path:
    """Write ``path`` by ``write(file)`` into ``path.<pid>.tmp``, flushed to disk, then renamed
    over it. A crash at any moment leaves either the old or the new file whole, never a truncated
    one; the process id keeps processes that write the same file (DDP ranks) apart.
    """
    path = Path(path)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(temporary, mode) as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return path


def fingerprint(chunks: Iterable[bytes], length: int | None = None) -> str:
    """The SHA-1 hex digest of ``chunks`` in order, cut to ``length`` characters (None: all 40).

    For telling data apart in cache keys, not for security."""
    digest = hashlib.sha1()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()[:length]
