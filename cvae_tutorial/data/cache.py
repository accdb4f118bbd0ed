"""Reading any ``(image, label)`` dataset once: into memory, or into a memory-mapped uint8 cache
file that later runs open without decoding anything (chapter 5)."""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..config import check_int
from ..files import (LockWaitTimeout, atomic_write, fingerprint, holding, remove_leftovers,
                     temporary_beside)
from ..signals import sigterm_as_interrupt
from .images import AttributeImages, DataError, sample_digest, to_uint8

CACHE_FORMAT = 2  # 2: records a digest of sampled images
ON_ERROR = ("stop", "skip")
LOCK_TIMEOUT = 3600.0  # seconds a run waits for another's cache build (a stopped one: 60)


def default_num_workers() -> int:
    """Decoding processes for cache builds: the cores this process may use, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cores or 1))


def files_fingerprint(paths) -> str:
    """A hash of file names and sizes: changes when files are added, removed or re-encoded.

    Sizes rather than modification times, so that copying a dataset does not invalidate its cache.
    """
    def name_and_size(path):
        size = os.stat(path).st_size if os.path.exists(path) else "missing"
        return f"{Path(path).name}:{size}\n".encode()

    return fingerprint(name_and_size(path) for path in paths)


def dataset_source(dataset) -> dict:
    """What defines a dataset's images, for cache keys (see :func:`build_image_cache`).

    Uses the file list of torchvision folder datasets (``samples``) or of datasets with ``files``
    and ``folder``, and the transform's description. Pass your own ``source`` for anything else.
    """
    source = {"type": type(dataset).__name__, "count": len(dataset),
              "transform": repr(getattr(dataset, "transform", None))}
    if hasattr(dataset, "samples"):
        source["files"] = files_fingerprint(path for path, _ in dataset.samples)
    elif hasattr(dataset, "files") and hasattr(dataset, "folder"):
        source["files"] = files_fingerprint(Path(dataset.folder) / name for name in dataset.files)
    return source


@dataclass
class CachedImages:
    """A built cache: uint8 images [N, 3, H, W] (memory-mapped) and labels [N, A] (the items
    left out as unreadable are in its record, and were reported when it was opened)."""

    images: Tensor
    labels: Tensor


def _cache_files(path: Path) -> dict:
    return {"images": path, "labels": path.with_suffix(".labels.npy"),
            "meta": path.with_suffix(".json")}


def _map_images(path: Path, shape: list, shared: bool = False) -> Tensor:
    """The uint8 images in the file ``path``, memory-mapped; ``shared``: writes go to the file."""
    if not shape[0]:
        return torch.empty(shape, dtype=torch.uint8)
    return torch.from_file(str(path), shared=shared, size=math.prod(shape),
                           dtype=torch.uint8).view(shape)


def _read_meta(files: dict) -> dict | None:
    """The cache's record and labels, or None (with a warning) if either is damaged."""
    try:
        meta = json.loads(files["meta"].read_text())
        labels = np.load(files["labels"], allow_pickle=False)
        shape = [int(side) for side in meta["shape"]]
        if len(shape) != 4 or labels.shape[0] != shape[0] or not isinstance(meta["skipped"], list):
            raise ValueError(f"shape {shape} and {labels.shape[0]} label rows do not fit")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        warnings.warn(f"image cache {files['images']} is damaged ({files['meta'].name} or "
                      f"{files['labels'].name}: {error}); rebuilding it", stacklevel=4)
        return None
    return {**meta, "shape": shape, "labels": labels}


def _open_cache(path: Path, source: dict, on_error: str) -> CachedImages | None:
    """The finished cache at ``path`` if it was built from ``source``; None if there is none.

    A cache that exists but is stale or damaged is reported and ignored (then rebuilt).
    """
    files = _cache_files(path)
    if not all(file.exists() for file in files.values()):
        return None
    meta = _read_meta(files)
    if meta is None:
        return None
    shape = meta["shape"]
    if meta.get("format") != CACHE_FORMAT or meta.get("source") != source:
        warnings.warn(f"image cache {path} was built from other data or settings "
                      f"({meta.get('source')} != {source}); rebuilding it", stacklevel=3)
        return None
    if os.path.getsize(files["images"]) != math.prod(shape):
        warnings.warn(f"image cache {path} has {os.path.getsize(files['images'])} bytes, not the "
                      f"{math.prod(shape)} its {files['meta'].name} records; rebuilding it",
                      stacklevel=3)
        return None
    images = _map_images(path, shape)
    if meta.get("sample_digest") != sample_digest(images):
        warnings.warn(f"image cache {path} does not hold the images it was built with (its "
                      f"bytes were changed or zeroed); rebuilding it", stacklevel=3)
        return None
    skipped = meta["skipped"]
    if skipped and on_error == "stop":
        raise DataError(f"image cache {path} was built without {len(skipped)} unreadable "
                        f"image(s), first: {skipped[0]['error']}; fix or remove them and delete "
                        f"{files['meta']}, or pass on_error='skip' (--on-error skip) to use the "
                        f"cache without them")
    if skipped:
        warnings.warn(f"image cache {path} leaves out {len(skipped)} unreadable image(s), "
                      f"first: {skipped[0]['error']}", stacklevel=3)
    return CachedImages(images, torch.from_numpy(meta["labels"]))


def build_image_cache(dataset, path: str | os.PathLike, num_workers: int | None = None,
                      batch_size: int = 256, on_error: str = "stop",
                      source: dict | None = None,
                      lock_timeout: float = LOCK_TIMEOUT) -> CachedImages:
    """Decode a dataset of ``(image, label)`` once into a uint8 file at ``path``; memory-map it.

    ``num_workers`` decoding processes (default: the usable cores, at most 8; 0: this process)
    write straight into the file, so they need no shared memory (/dev/shm); processes that cannot
    start are said once and the images decoded here; one that dies is a one-line error.
    Next to the image file sit the labels (``.labels.npy``) and a JSON record of ``source``
    (default :func:`dataset_source`), the shape and the skipped items. The record is written
    last, so an interrupted build is redone; a cache whose record does not match ``source`` is
    reported and rebuilt, never used silently; a finished, matching cache is opened without
    decoding anything.

    ``on_error``: ``"stop"`` raises at the first unreadable image, naming it; ``"skip"`` leaves it
    out (its label row too, so labels stay aligned) and reports it.

    A run that finds another building the same cache says who (pid, host, since when, running
    or stopped) and waits at most ``lock_timeout`` seconds (60 for a stopped builder).
    """
    if on_error not in ON_ERROR:
        raise DataError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if num_workers is not None:
        check_int("num_workers (--num-workers)", num_workers, 0, DataError)
    path = Path(path)
    source = dataset_source(dataset) if source is None else source
    with warnings.catch_warnings(record=True) as reports:  # a finished cache needs no lock (a
        warnings.simplefilter("always")                   # read-only folder)
        cached = _open_cache(path, source, on_error)
    if cached is not None:
        for report in reports:
            warnings.warn(report.message, stacklevel=2)
        return cached
    with ExitStack() as held:  # one builder at a time; the others wait, then open its cache
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(holding(f"{path}.lock", f"the build of the image cache "
                                                      f"{path.name}", lock_timeout))
        except LockWaitTimeout as error:  # first: a TimeoutError is an OSError too
            raise DataError(str(error)) from None
        except OSError as error:
            raise DataError(f"cannot write the image cache in {path.parent} ({error}); pass a "
                            f"writable cache_dir (--cache-dir)") from error
        cached = _open_cache(path, source, on_error)
        if cached is not None:
            return cached
        remove_leftovers(path.parent)  # the partial files of killed builders
        with sigterm_as_interrupt():  # a stopped build removes its partial file
            return _build(dataset, path, source, num_workers, batch_size, on_error)


def _build(dataset, path: Path, source: dict, num_workers, batch_size, on_error):
    """Decode into private temporary files, then install them (images and labels before the
    record, each by an atomic rename), so no reader ever sees a partial cache."""
    files = _cache_files(path)
    files["meta"].unlink(missing_ok=True)  # from here on the old cache, if any, is invalid
    workers = default_num_workers() if num_workers is None else num_workers
    partial = temporary_beside(path, ".partial")
    try:
        shape, labels, skipped = _decode_into(partial, dataset, workers, batch_size, on_error,
                                              path.name)
        atomic_write(files["labels"], lambda file: np.save(file, labels.numpy(),
                                                           allow_pickle=False))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    meta = {"format": CACHE_FORMAT, "source": source, "shape": shape, "skipped": skipped,
            "sample_digest": sample_digest(_map_images(path, shape))}
    atomic_write(files["meta"], lambda file: file.write(json.dumps(meta, indent=1)), "w")
    return _open_cache(path, source, on_error)


def _reserve(partial: Path, size: int) -> None:
    """Give ``partial`` its ``size`` bytes on disk before decoding into its memory map: a full
    disk is then one line now, not hours later a write into a map the file system cannot back
    (which kills the process with SIGBUS)."""
    folder = partial.parent
    needed = f"the image cache needs {size:,} bytes ({size / 1e9:.2f} GB) in {folder}"
    fix = "free space there or pass another cache_dir (--cache-dir)"
    free = shutil.disk_usage(folder).free
    if free < size:
        raise DataError(f"{needed} but only {free:,} bytes are free; {fix}")
    with open(partial, "r+b") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, size)
        except AttributeError:  # no posix_fallocate (macOS): a sparse file, as before
            file.truncate(size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # ENOSPC, EFBIG, EDQUOT
                raise DataError(f"{needed} and could not reserve them ({error.strerror}); "
                                f"{fix}") from None
            file.truncate(size)  # a file system that cannot reserve: sparse


def _decoded(dataset, index: int):
    """(uint8 image, float label, None) for item ``index``, or (None, None, what was wrong) for
    a corrupt or missing file."""
    try:
        image, label = dataset[index]
    except (DataError, OSError) as error:  # what a broken or missing image file raises
        return None, None, str(error)
    image = torch.as_tensor(image)
    return (to_uint8(image) if image.is_floating_point() else image,
            torch.as_tensor(label).float(), None)


class _Decoder:
    """Decodes items straight into their rows of the cache file and returns only their labels
    and errors: no image crosses between processes, so decoding processes need no shared
    memory (/dev/shm, often 1 or 64 MB in containers, where torch's DataLoader hung)."""

    def __init__(self, dataset, partial: Path, shape: list, label_shape: list):
        self.dataset, self.partial, self.shape, self.label_shape = \
            dataset, str(partial), shape, label_shape
        self.rows = None  # mapped in the process that decodes, on its first item

    def __getstate__(self):
        return {**self.__dict__, "rows": None}

    def __call__(self, indices: range):
        if self.rows is None:
            self.rows = _map_images(self.partial, self.shape, shared=True)
        done, labels, errors = [], [], []
        for index in indices:
            image, label, error = _decoded(self.dataset, index)
            if error is None and (list(image.shape) != self.shape[1:]
                                  or list(label.shape) != self.label_shape):
                error = (f"an image of {list(image.shape)}, not {self.shape[1:]} as the first"
                         if list(image.shape) != self.shape[1:] else
                         f"labels of {list(label.shape)}, not {self.label_shape} as the first's")
            if error is not None:
                errors.append((index, error))
                continue
            self.rows[index] = image
            done.append(index)
            labels.append(label.numpy())  # numpy, not torch: sent by value, not in /dev/shm
        return done, np.array(labels, np.float32).reshape(-1, *self.label_shape), errors


_decoder = None  # a decoding process's _Decoder


def _start_decoding(decoder: _Decoder, parent: int):
    global _decoder
    _decoder = decoder
    torch.set_num_threads(1)  # one core per process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C ends the build in the main process

    def end_with_the_parent():  # a builder killed (kill -9) leaves no process running on
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=end_with_the_parent, daemon=True).start()


def _decode_chunk(indices: range):
    return _decoder(indices)


@contextmanager
def _decoding(decoder: _Decoder, count: int, workers: int, chunk: int):
    """The results of ``decoder`` over ``count`` items in chunks of ``chunk``, in order, by
    ``workers`` processes (0: in this one). Processes that cannot start (a full /dev/shm, too
    many processes) are said in one line and the items decoded here; one that dies (the OOM
    killer) is one line saying what to pass."""
    chunks = [range(start, min(start + chunk, count)) for start in range(0, count, chunk)]
    workers, pool = min(workers, len(chunks)), None
    if workers:
        try:
            pool = ProcessPoolExecutor(workers, initializer=_start_decoding,
                                       initargs=(decoder, os.getpid()))
            results = pool.map(_decode_chunk, chunks)  # starts the processes
        except OSError as error:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            pool = None
            warnings.warn(f"cannot start {workers} decoding processes ({error}); decoding in "
                          f"this process (--num-workers 0 says so)", stacklevel=1)
    if pool is None:
        yield map(decoder, chunks)
        return
    try:
        yield results
    except BrokenProcessPool:
        raise DataError(f"a decoding process died (killed: out of memory, or a crash in the "
                        f"image decoder); rerun with fewer decoding processes than {workers} "
                        f"(num_workers / --num-workers; 0 decodes in this process)") from None
    finally:  # also at Ctrl-C or an unreadable image: no more chunks are started
        pool.shutdown(cancel_futures=True)


def _decode_into(partial: Path, dataset, workers: int, batch_size: int, on_error: str,
                 name: str):
    """Decode ``dataset`` into the uint8 file ``partial``; return (shape, labels, skipped)."""
    def stop_or_skip(index, error):
        if on_error == "stop":
            raise DataError(f"{error} (item {index}); to build the cache without unreadable "
                            f"images pass on_error='skip' (--on-error skip)")

    first, first_error = None, "empty dataset"  # the first readable item fixes the shape of
    for index in range(len(dataset)):            # the file, reserved before decoding
        image, label, error = _decoded(dataset, index)
        if error is None:
            first = image, label
            break
        stop_or_skip(index, error)
        first_error = first_error if index else error
    if first is None:
        raise DataError(f"none of the {len(dataset)} images could be read (first error: "
                        f"{first_error})")
    shape, label_shape = [len(dataset), *first[0].shape], list(first[1].shape)
    _reserve(partial, math.prod(shape))
    labels = np.zeros((len(dataset), *label_shape), np.float32)
    decoded = np.zeros(len(dataset), bool)
    skipped = []
    decoder = _Decoder(dataset, partial, shape, label_shape)
    with tqdm(total=len(dataset), desc=f"caching {name}", unit="img") as bar, \
            _decoding(decoder, len(dataset), workers, batch_size) as results:
        for done, chunk_labels, errors in results:
            for index, error in errors:
                stop_or_skip(index, error)
                skipped.append({"index": index, "error": error})
                bar.write(f"skipping unreadable image: {error}")
            labels[done], decoded[done] = chunk_labels, True
            bar.update(len(done) + len(errors))
    del decoder  # its map of the file
    kept = np.flatnonzero(decoded)
    if skipped:  # close the gaps the skipped items left, in place, in order
        images = _map_images(partial, shape, shared=True)
        for start in range(0, len(kept), 1024):
            rows = torch.from_numpy(kept[start:start + 1024])
            images[start:start + len(rows)] = images[rows]
        del images  # unmap before truncating the unused tail
        os.truncate(partial, len(kept) * math.prod(shape[1:]))
    with open(partial, "rb") as file:  # on disk before the record says the cache is whole
        os.fsync(file.fileno())
    return [len(kept), *shape[1:]], torch.from_numpy(labels[kept]), skipped


def as_attribute_images(dataset, attribute_names: Sequence[str] | None = None,
                        batch_size: int = 256, num_workers: int = 0,
                        cache_path: str | os.PathLike | None = None,
                        on_error: str = "stop") -> AttributeImages:
    """Any map-style dataset of ``(image, labels)`` as :class:`AttributeImages`.

    Images may be uint8 [3, H, W] or float in [0, 1]; labels a {0,1} (or {-1,1}) vector.
    Reads the dataset once, with a progress bar, so training never decodes again. With
    ``cache_path`` the decoded images go to a memory-mapped cache file that later runs reuse
    (:func:`build_image_cache`: keyed by :func:`dataset_source`, corrupt files per ``on_error``).
    """
    if isinstance(dataset, AttributeImages):
        return dataset
    if cache_path is not None:
        cached = build_image_cache(dataset, cache_path, num_workers, batch_size, on_error)
        images, labels = cached.images, cached.labels
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size,
                                             num_workers=num_workers)
        image_batches, label_batches = [], []
        for image_batch, label_batch in tqdm(loader, desc="reading dataset", leave=False):
            if image_batch.is_floating_point():
                image_batch = to_uint8(image_batch)
            image_batches.append(image_batch)
            label_batches.append(torch.as_tensor(label_batch).float())
        images, labels = torch.cat(image_batches), torch.cat(label_batches)
    if (labels < 0).any():
        labels = (labels > 0).float()  # {-1, 1} -> {0, 1}
    names = attribute_names or tuple(f"attribute_{i}" for i in range(labels.shape[1]))
    return AttributeImages(images, labels, tuple(names))
