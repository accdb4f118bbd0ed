"""Bring your own images: a folder of image files with a CSV of binary attributes (``folder``),
or torchvision's ImageFolder layout of one subfolder per class (``classes``, one-hot labels).

Images of any size are read with PIL, centre-cropped to a square and resized to ``image_size``,
then decoded once into the memory-mapped cache (``data.cache``). Every tenth image in file-name
order is the test split.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from collections.abc import Sequence

import torch
from PIL import Image, ImageOps

from ..config import check_image_size
from ..files import fingerprint
from .cache import build_image_cache, files_fingerprint
from .celeba import user_cache_folder
from .images import AttributeImages, DataError

ATTRIBUTES_CSV = "attributes.csv"
FOLDER_KINDS = ("folder", "classes")
TEST_EVERY = 10  # image i (in file-name order) is a test image when i % 10 == 9
CSV_HELP = (f"{ATTRIBUTES_CSV} needs a header 'file,<attribute>,...' and one row per image: its "
            f"path relative to the folder, then 0 or 1 per attribute")


def read_attribute_csv(root: Path):
    """(file names, {0,1} labels [N, A], attribute names) from ``root/attributes.csv``."""
    path = root / ATTRIBUTES_CSV
    if not path.is_file():
        raise DataError(f"{path} is missing; {CSV_HELP} (or use --dataset classes for one "
                        f"subfolder per class)")
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    if not rows or len(rows[0]) < 2:
        raise DataError(f"{path} has no header with attribute names; {CSV_HELP}")
    names, files, labels = tuple(name.strip() for name in rows[0][1:]), [], []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = [cell.strip() for cell in row[1:]]
        if len(values) != len(names):
            raise DataError(f"{path}, line {number} has {len(values)} values for {len(names)} "
                            f"attributes; {CSV_HELP}")
        odd = [value for value in values if value not in ("0", "1")]
        if odd:
            raise DataError(f"{path}, line {number} has the non-binary value {odd[0]!r}; "
                            f"attributes must be 0 or 1")
        if not (root / row[0].strip()).is_file():
            raise DataError(f"{path}, line {number} names {row[0].strip()!r}, which is not a "
                            f"file in {root}; add the image or remove the row")
        files.append(row[0].strip())
        labels.append([float(value) for value in values])
    if not files:
        raise DataError(f"{path} has no image rows; {CSV_HELP}")
    if len(set(files)) != len(files):
        duplicate = next(name for name in files if files.count(name) > 1)
        raise DataError(f"{path} lists {duplicate!r} twice; keep one row per image")
    order = sorted(range(len(files)), key=files.__getitem__)
    return [files[i] for i in order], torch.tensor([labels[i] for i in order]), names


def square_image(path, image_size: int) -> torch.Tensor:
    """uint8 [3, S, S]: the image at ``path`` as RGB, centre-cropped to a square, resized."""
    from torchvision.datasets.folder import pil_loader
    from torchvision.transforms.v2.functional import pil_to_tensor

    try:
        image = pil_loader(str(path))
    except OSError as error:
        raise DataError(f"image {path} cannot be read ({error}); replace or remove it (or build "
                        f"with --on-error skip)") from error
    return pil_to_tensor(ImageOps.fit(image, (image_size, image_size), Image.BICUBIC))


class LabelledFiles(torch.utils.data.Dataset):
    """Image files with their label rows; each read as :func:`square_image` (feeds the cache)."""

    def __init__(self, folder: Path, files: Sequence[str], labels: torch.Tensor,
                 image_size: int):
        self.folder, self.files, self.labels, self.image_size = folder, list(files), labels, \
            image_size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        return square_image(self.folder / self.files[index], self.image_size), self.labels[index]


def _in_split(count: int, split: str) -> list:
    if split not in ("train", "test", "all"):
        raise DataError(f"unknown split {split!r}; use 'train', 'test' or 'all'")
    return [i for i in range(count)
            if split == "all" or (i % TEST_EVERY == TEST_EVERY - 1) == (split == "test")]


def _folder_files(root: Path, kind: str):
    """(relative file names, labels, attribute names) of the whole folder, in file-name order."""
    if kind == "folder":
        return read_attribute_csv(root)
    from torchvision.datasets import ImageFolder

    try:
        classes = ImageFolder(str(root), loader=lambda path: path)
    except FileNotFoundError as error:  # no class folders, or classes without images
        raise DataError(f"{root} is not a folder of class subfolders ({error}); put each class's "
                        f"images in root/<class name>/") from error
    files = [os.path.relpath(path, root) for path, _ in classes.samples]
    labels = torch.nn.functional.one_hot(torch.tensor(classes.targets),
                                         len(classes.classes)).float()
    return files, labels, tuple(classes.classes)


def load_image_folder(root: str | os.PathLike, kind: str = "folder", split: str = "train",
                      image_size: int = 32, attributes: Sequence[str] | None = None,
                      cache_dir: str | os.PathLike | None = None,
                      num_workers: int | None = None, on_error: str = "stop") -> AttributeImages:
    """Your own images as :class:`AttributeImages`, decoded once into a cache.

    ``kind="folder"``: ``root/attributes.csv`` (header: ``file`` and the attribute names; a row
    per image: its path under ``root`` and 0/1 values). ``kind="classes"``: ``root/<class>/``
    image files, labelled one-hot, the class names as attribute names. Every image is
    centre-cropped to a square and resized to ``image_size``, so mixed sizes are fine. The cache
    goes to ``cache_dir`` (default ``~/.cache/cvae_tutorial/folders``), keyed by the folder,
    the split, the size, the file list and sizes and the labels.
    """
    if kind not in FOLDER_KINDS:
        raise DataError(f"unknown folder kind {kind!r}; use one of {', '.join(FOLDER_KINDS)}")
    check_image_size(image_size, DataError)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; pass the folder of your images as data_dir "
                        f"(--data-dir)")
    files, labels, names = _folder_files(root, kind)
    rows = _in_split(len(files), split)
    if not rows:
        raise DataError(f"{root} has {len(files)} image(s), none in the {split} split (every "
                        f"{TEST_EVERY}th image is a test image); add images")
    files, labels = [files[i] for i in rows], labels[rows]
    dataset = LabelledFiles(root, files, labels, image_size)
    listing = fingerprint(["\n".join(files).encode(), labels.numpy().tobytes()], 12)
    source = {"dataset": kind, "root": str(root), "split": split, "image_size": image_size,
              "count": len(files), "labels": listing,
              "files": files_fingerprint(root / name for name in files)}
    folder = Path(cache_dir).expanduser() if cache_dir else user_cache_folder().parent / "folders"
    key = f"{kind}_{root.name}_{fingerprint([str(root).encode()], 8)}_{split}_{image_size}px_" \
          f"{len(files)}_{listing}"
    cached = build_image_cache(dataset, folder / f"{key}.uint8", num_workers=num_workers,
                               on_error=on_error, source=source)
    data = AttributeImages(cached.images, cached.labels, names)
    return data.select_attributes(attributes) if attributes is not None else data
