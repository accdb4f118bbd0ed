"""CelebA in torchvision's layout: its annotations, the per-image JPEG pipeline, and the loader
that decodes it once into the memory-mapped cache (chapter 5)."""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import torch

from ..config import check_image_size
from ..files import fingerprint
from .cache import build_image_cache, files_fingerprint
from .images import AttributeImages, DataError

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
CELEBA_CROP = 148  # the usual centre crop of the 178x218 aligned faces before resizing
ALIGNED_SIZE = (178, 218)  # img_align_celeba's images; twice that is no aligned CelebA face
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
CELEBA_FILES = ("list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba")


def celeba_folder(root: str | os.PathLike) -> Path:
    """``root/celeba`` after checking that the files torchvision's layout needs are there."""
    folder = Path(root).expanduser() / "celeba"
    missing = [str(folder / name) for name in CELEBA_FILES if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"CelebA is incomplete: missing {', '.join(missing)}. Expected torchvision's layout "
            f"{folder}/img_align_celeba/*.jpg, {folder}/list_attr_celeba.txt and "
            f"{folder}/list_eval_partition.txt; download with "
            f"cvae_tutorial.data.download_celeba({str(root)!r}) or by hand from the CelebA page")
    return folder


def download_celeba(root: str | os.PathLike) -> Path:
    """Fetch CelebA with torchvision (needs the internet and ``gdown``: ``pip install
    'cvae_tutorial[download]'``; Google Drive often rate-limits)."""
    import torchvision

    try:
        import gdown  # noqa: F401  torchvision's Google Drive downloads need it
    except ImportError:
        raise DataError("download_celeba needs gdown, which torchvision uses for Google Drive: "
                        "pip install 'cvae_tutorial[download]' (or pip install gdown)") from None

    torchvision.datasets.CelebA(str(root), split="all", target_type="attr", download=True)
    return celeba_folder(root)


def read_celeba_annotations(root: str | os.PathLike, split: str = "train"):
    """File names, {0,1} labels [N, 40] and attribute names of one official split."""
    if split not in CELEBA_SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {sorted(CELEBA_SPLITS)}")
    folder = celeba_folder(root)
    labels, names = _read_attribute_file(folder / "list_attr_celeba.txt")
    partition = _read_partition_file(folder / "list_eval_partition.txt")
    files = sorted(name for name, part in partition.items() if part == CELEBA_SPLITS[split])
    missing_labels = [name for name in files if name not in labels]
    if missing_labels:
        raise DataError(f"{len(missing_labels)} images of list_eval_partition.txt have no row in "
                        f"list_attr_celeba.txt (first: {missing_labels[0]})")
    return files, torch.tensor([labels[name] for name in files], dtype=torch.float32), names


def _read_lines(path: Path) -> list:
    """The lines of a list file read as UTF-8 (CelebA's are ASCII); another encoding is an error
    naming the file and line, not a UnicodeDecodeError (or silently wrong names)."""
    data = path.read_bytes()
    fix = "save it as UTF-8 (e.g. iconv -t UTF-8) or re-download it"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        raise DataError(f"{path} is UTF-16 (or holds NUL bytes), not UTF-8 text; {fix}")
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line} has a byte that is not UTF-8 "
                        f"({data[error.start:error.start + 1]!r}); {fix}") from None


def _no_duplicate(path: Path, name: str, number: int, seen: dict) -> None:
    """A second row for one image (whose labels would silently replace the first's) is named."""
    if name in seen:
        raise DataError(f"{path}, line {number} repeats {name} of line {seen[name]}; keep one "
                        f"row per image or re-download it")
    seen[name] = number


def _read_attribute_file(path: Path):
    """``{file: [bool] * A}`` and the attribute names; a malformed line is named, not a crash."""
    lines = _read_lines(path)
    expected = ("expected a count line, a line of attribute names, then one line per image: "
                "a file name and one 1 or -1 per attribute; re-download it")
    if len(lines) < 3 or not lines[0].strip().isdigit():
        raise DataError(f"{path} is malformed ({'empty' if not lines else 'no count line'}); "
                        f"{expected}")
    names = tuple(lines[1].split())
    labels, seen = {}, {}
    for number, line in enumerate(lines[2:], start=3):
        row = line.split()
        if not row:
            continue
        if len(row) != len(names) + 1 or any(value not in ("1", "-1", "0") for value in row[1:]):
            raise DataError(f"{path}, line {number} is malformed ({line[:60]!r}: {len(row) - 1} "
                            f"values for {len(names)} attribute names); {expected}")
        _no_duplicate(path, row[0], number, seen)
        labels[row[0]] = [value == "1" for value in row[1:]]
    if not labels:
        raise DataError(f"{path} has no image rows; {expected}")
    return labels, names


def _read_partition_file(path: Path) -> dict:
    """``{file: split number}``; a line that is not ``<file> <0|1|2>`` is named, not a crash."""
    partition, seen = {}, {}
    for number, line in enumerate(_read_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(f"{path}, line {number} is malformed ({line[:60]!r}); expected "
                            f"'<file name> <0, 1 or 2>' (train, valid, test) on every line; "
                            f"re-download it")
        _no_duplicate(path, fields[0], number, seen)
        partition[fields[0]] = int(fields[1])
    if not partition:
        raise DataError(f"{path} is empty; expected '<file name> <0, 1 or 2>' per image; "
                        f"re-download it")
    return partition


class CelebAJPEGs(torch.utils.data.Dataset):
    """The per-image pipeline: decode one JPEG, centre-crop 148, resize. Slow; feeds the cache."""

    def __init__(self, root, split="train", image_size=64, crop=CELEBA_CROP):
        import torchvision.transforms.v2 as T

        self.files, self.labels, self.attribute_names = read_celeba_annotations(root, split)
        self.folder = celeba_folder(root) / "img_align_celeba"
        self.crop = crop
        size = check_image_size(image_size, DataError)
        self.transform = T.Compose([T.CenterCrop(crop), T.Resize(size, antialias=True)])
        self._check_plausible_size()

    def _check_plausible_size(self) -> None:
        """Images far larger than the aligned faces (the in-the-wild ones, or upscaled copies)
        would be cropped to a small, off-centre part of each: said once per folder."""
        from PIL import Image

        first = self.folder / self.files[0] if self.files else None
        if first is None or self.folder in _ANNOUNCED or not first.exists():
            return
        try:
            with Image.open(first) as image:
                width, height = image.size
        except OSError:
            return  # an unreadable image is reported when it is decoded
        if width > 2 * ALIGNED_SIZE[0] or height > 2 * ALIGNED_SIZE[1]:
            _ANNOUNCED.add(self.folder)
            warnings.warn(f"CelebA image {first} is {width}x{height} px, far larger than the "
                          f"aligned faces' {ALIGNED_SIZE[0]}x{ALIGNED_SIZE[1]}: the {self.crop}-px "
                          f"centre crop would keep a small part of each; use img_align_celeba",
                          stacklevel=3)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        from PIL import Image, UnidentifiedImageError

        path = self.folder / self.files[index]
        if not path.exists():
            raise FileNotFoundError(f"CelebA image {path} is listed in list_eval_partition.txt "
                                    f"but missing; re-extract img_align_celeba")
        try:
            with Image.open(path) as image:
                self._check_decodable(path, image)
                tensor = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"CelebA image {path} cannot be decoded ({error}); "
                            f"re-download or delete it from the lists") from error
        return self.transform(tensor).contiguous(), self.labels[index]

    def _check_decodable(self, path, image) -> None:
        """Images the crop would pad with black, or whose 16-bit pixels converting to 8-bit RGB
        would clip to white, are errors naming the file, never cached silently."""
        if image.mode not in EIGHT_BIT_MODES:
            raise DataError(f"CelebA image {path} has {image.mode} pixels (more than 8 bits per "
                            f"channel); re-encode it as an 8-bit RGB JPEG or delete it from the "
                            f"lists (or build with --on-error skip)")
        if min(image.size) < self.crop:
            raise DataError(f"CelebA image {path} is {image.size[0]}x{image.size[1]} px, smaller "
                            f"than the {self.crop}-px crop; use the aligned 178x218 faces or "
                            f"delete it from the lists (or build with --on-error skip)")


def user_cache_folder() -> Path:
    """The per-user cache for CelebA's decoded images: ``$XDG_CACHE_HOME/cvae_tutorial/celeba``
    (``~/.cache/...`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cvae_tutorial" / "celeba"


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (a probe: as root ``os.access`` always says
    yes, and a read-only mount says no only when written to)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def default_cache_folder(root, key: str) -> Path:
    """``root/celeba/cache`` when it holds this cache already or is writable; else (a read-only
    dataset folder) the per-user cache, said once."""
    beside = celeba_folder(root) / "cache"
    if (beside / f"{key}.json").exists() or _writable(beside):
        return beside
    user = user_cache_folder()
    if user not in _ANNOUNCED:
        _ANNOUNCED.add(user)
        warnings.warn(f"cannot write beside the data in {beside}; caching decoded CelebA images "
                      f"in {user} instead (choose with cache_dir / --cache-dir)", stacklevel=3)
    return user


_ANNOUNCED: set = set()


def _cache_key(split: str, image_size: int, crop: int, files) -> str:
    listing = fingerprint(["\n".join(files).encode()], 12)
    return f"celeba_{split}_{image_size}px_crop{crop}_{len(files)}_{listing}"


def load_celeba(root: str | os.PathLike, split: str = "train", image_size: int = 64,
                attributes: Sequence[str] | None = None, cache_dir: str | os.PathLike | None = None,
                num_workers: int | None = None, crop: int = CELEBA_CROP,
                on_error: str = "stop") -> AttributeImages:
    """CelebA as :class:`AttributeImages`, decoded once into a memory-mapped uint8 cache.

    The cache (in ``cache_dir``, default :func:`default_cache_folder`) is named by split, size,
    crop and the file list, and records the image files' sizes and the label files' hashes, so
    a stale cache is never used (see :func:`build_image_cache`); building it again is a no-op.
    ``on_error`` says what a corrupt JPEG does: ``"stop"`` (an error naming it) or ``"skip"``
    (left out, with its labels, and reported).
    """
    jpegs = CelebAJPEGs(root, split, image_size, crop)
    key = _cache_key(split, image_size, crop, jpegs.files)
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_folder(root, key)
    annotations = fingerprint((celeba_folder(root) / name).read_bytes()
                              for name in CELEBA_FILES[:2])
    source = {"dataset": "celeba", "split": split, "image_size": image_size, "crop": crop,
              "count": len(jpegs.files), "annotations": annotations,
              "files": files_fingerprint(jpegs.folder / name for name in jpegs.files)}
    cached = build_image_cache(jpegs, folder / f"{key}.uint8", num_workers=num_workers,
                               on_error=on_error, source=source)
    data = AttributeImages(cached.images, cached.labels, jpegs.attribute_names)
    return data.select_attributes(attributes) if attributes is not None else data
