"""Reading any ``(image, label)`` dataset once: into memory, or into a memory-mapped uint8 cache
file that later runs open without decoding anything (chapter 5)."""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
import warnings
from contextlib import ExitStack
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


class _DecodeOrReport(torch.utils.data.Dataset):
    """A dataset whose bad items (corrupt or missing files) come back as reports, not crashes."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            image, label = self.dataset[index]
        except (DataError, OSError) as error:  # what a broken or missing image file raises
            return index, None, None, str(error)
        image = torch.as_tensor(image)
        if image.is_floating_point():
            image = to_uint8(image)
        return index, image, torch.as_tensor(label).float(), None


def _collate_reports(items):
    good = [item for item in items if item[3] is None]
    return {"indices": torch.tensor([item[0] for item in good], dtype=torch.long),
            "images": torch.stack([item[1] for item in good]) if good else None,
            "labels": torch.stack([item[2] for item in good]) if good else None,
            "errors": [(item[0], item[3]) for item in items if item[3] is not None]}


@dataclass
class CachedImages:
    """A built cache: uint8 images [N, 3, H, W] (memory-mapped), labels [N, A], and the items
    of the source dataset left out because they could not be read (``{"index", "error"}``)."""

    images: Tensor
    labels: Tensor
    skipped: list


def _cache_files(path: Path) -> dict:
    return {"images": path, "labels": path.with_suffix(".labels.npy"),
            "meta": path.with_suffix(".json")}


def _map_images(path: Path, shape: list) -> Tensor:
    if not shape[0]:
        return torch.empty(shape, dtype=torch.uint8)
    return torch.from_file(str(path), shared=False, size=math.prod(shape),
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
    return CachedImages(images, torch.from_numpy(meta["labels"]), skipped)


def build_image_cache(dataset, path: str | os.PathLike, num_workers: int | None = None,
                      batch_size: int = 256, on_error: str = "stop",
                      source: dict | None = None,
                      lock_timeout: float = LOCK_TIMEOUT) -> CachedImages:
    """Decode a dataset of ``(image, label)`` once into a uint8 file at ``path``; memory-map it.

    ``num_workers`` decoding processes (default: the usable cores, at most 8) feed a progress bar.
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


def _worker_deaths_said(loader, workers: int):
    """The loader's batches; a decoding process that dies (the OOM killer, a /dev/shm too small
    for its batches) is one line saying what to pass, not DataLoader's RuntimeError."""
    try:
        yield from loader
    except RuntimeError as error:
        if "DataLoader worker" not in str(error):
            raise
        raise DataError(f"a decoding process died ({str(error).splitlines()[0]}): out of memory "
                        f"or a small /dev/shm; rerun with fewer decoding processes than "
                        f"{workers} (num_workers / --num-workers; 0 decodes in this "
                        f"process)") from None


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


def _decode_into(partial: Path, dataset, workers: int, batch_size: int, on_error: str,
                 name: str):
    """Decode ``dataset`` into the uint8 file ``partial``; return (shape, labels, skipped)."""
    loader = torch.utils.data.DataLoader(_DecodeOrReport(dataset), batch_size=batch_size,
                                         num_workers=workers, collate_fn=_collate_reports)
    images, labels, skipped, count = None, [], [], 0
    with tqdm(total=len(dataset), desc=f"caching {name}", unit="img") as bar:
        for batch in _worker_deaths_said(loader, workers):
            for index, error in batch["errors"]:
                if on_error == "stop":
                    raise DataError(f"{error} (item {index}); to build the cache without "
                                    f"unreadable images pass on_error='skip' "
                                    f"(--on-error skip)")
                skipped.append({"index": index, "error": error})
                bar.write(f"skipping unreadable image: {error}")
            if batch["images"] is not None:
                if images is None:  # the first readable image fixes the shape
                    image_shape = list(batch["images"].shape[1:])
                    _reserve(partial, len(dataset) * math.prod(image_shape))
                    images = torch.from_file(str(partial), shared=True,
                                             size=len(dataset) * math.prod(image_shape),
                                             dtype=torch.uint8).view(-1, *image_shape)
                images[count:count + len(batch["images"])] = batch["images"]
                count += len(batch["images"])
                labels.append(batch["labels"])
            bar.update(len(batch["indices"]) + len(batch["errors"]))
    if images is None:
        raise DataError(f"none of the {len(dataset)} images could be read (first error: "
                        f"{skipped[0]['error'] if skipped else 'empty dataset'})")
    del images  # unmap before truncating the unused tail left by skipped images
    os.truncate(partial, count * math.prod(image_shape))
    return [count, *image_shape], torch.cat(labels), skipped


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
