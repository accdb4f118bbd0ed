"""Image-attribute datasets: the embedded procedural faces and CelebA.

Every dataset ends up as :class:`AttributeImages`: a uint8 image tensor ``[N, 3, H, W]`` plus a
``{0, 1}`` label tensor ``[N, A]`` and the attribute names. Training indexes these tensors directly
(no per-image decoding in the loop); CelebA JPEGs are decoded once into a memory-mapped cache.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

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

# The embedded faces carry these CelebA attributes (a subset, same names and meaning).
FACE_ATTRIBUTES = (
    "Male", "Smiling", "Eyeglasses", "Wearing_Hat", "Blond_Hair", "Black_Hair", "Bangs",
    "Wearing_Lipstick", "Pale_Skin", "Mustache",
)
EMBEDDED_SPLIT_SIZES = {"train": 8192, "valid": 1024, "test": 2048}
_SPLIT_OFFSET = {"train": 0, "valid": 10_000_000, "test": 20_000_000}  # disjoint index ranges


class DataError(ValueError):
    """Bad data input: the message says what was wrong and how to fix it."""


def check_image_size(image_size: int) -> int:
    """The networks halve the image four times, so the side must be a positive multiple of 16."""
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise TypeError(f"image_size must be an int, got {type(image_size).__name__} {image_size!r}")
    if image_size < 16 or image_size % 16:
        raise DataError(f"image_size={image_size} is not supported: the encoder halves the image "
                        f"4 times, so use a multiple of 16 such as 32 or 64")
    return int(image_size)


@dataclass
class AttributeImages(torch.utils.data.Dataset):
    """Images with binary attributes: ``images`` uint8 [N, 3, H, W], ``labels`` float {0,1} [N, A]."""

    images: Tensor
    labels: Tensor
    attribute_names: tuple

    def __post_init__(self):
        for name in ("images", "labels"):
            if not isinstance(getattr(self, name), Tensor):
                raise TypeError(f"{name} must be a torch tensor, got "
                                f"{type(getattr(self, name)).__name__}; wrap it with "
                                f"torch.as_tensor or use as_attribute_images()")
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise DataError(f"images must be a uint8 tensor [N, 3, H, W], got {self.images.dtype} "
                            f"{tuple(self.images.shape)}; convert with as_attribute_images()")
        if self.images.shape[2] != self.images.shape[3]:
            raise DataError(f"images must be square, got {tuple(self.images.shape[2:])}")
        check_image_size(self.images.shape[-1])
        if self.labels.ndim != 2 or len(self.labels) != len(self.images):
            raise DataError(f"labels must be [N, A] with N={len(self.images)} rows, got "
                            f"{tuple(self.labels.shape)}")
        if not isinstance(self.attribute_names, (list, tuple)) or \
                not all(isinstance(name, str) for name in self.attribute_names):
            raise TypeError(f"attribute_names must be a list or tuple of strings, got "
                            f"{self.attribute_names!r}")
        self.attribute_names = tuple(self.attribute_names)
        if len(set(self.attribute_names)) != len(self.attribute_names):
            raise DataError(f"attribute_names must be distinct, got {self.attribute_names}")
        if self.labels.shape[1] != len(self.attribute_names):
            raise DataError(f"{self.labels.shape[1]} label columns but {len(self.attribute_names)} "
                            f"attribute names")
        self.labels = self.labels.float()
        if not ((self.labels == 0) | (self.labels == 1)).all():
            odd = self.labels[(self.labels != 0) & (self.labels != 1)].unique()[:5].tolist()
            raise DataError(f"labels must be 0 or 1, found {odd}; for CelebA's -1/1 use "
                            f"(labels > 0).float() or as_attribute_images()")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    @property
    def num_attributes(self) -> int:
        return self.labels.shape[1]

    def select_attributes(self, names: Sequence[str]) -> "AttributeImages":
        """Keep only the named attributes, in the given order."""
        columns = attribute_indices(names, self.attribute_names)
        return AttributeImages(self.images, self.labels[:, columns], tuple(names))

    def subset(self, count: int) -> "AttributeImages":
        """The first ``count`` images (all of them if there are fewer)."""
        return AttributeImages(self.images[:count], self.labels[:count], self.attribute_names)

    def attribute_vector(self, **values: int) -> Tensor:
        """A label vector with the named attributes set, e.g. ``attribute_vector(Smiling=1)``."""
        vector = torch.zeros(self.num_attributes)
        for name, value in values.items():
            vector[attribute_indices([name], self.attribute_names)[0]] = float(value)
        return vector


def attribute_indices(names: Sequence[str], valid_names: Sequence[str]) -> list:
    """Column indices of ``names``; an unknown name is an error listing the valid ones."""
    if isinstance(names, str):
        raise TypeError(f"attribute names must be a list of strings, got the string {names!r}; "
                        f"write [{names!r}]")
    unknown = [name for name in names if name not in valid_names]
    if unknown:
        raise DataError(f"unknown attribute name(s) {unknown}; valid names are: "
                        f"{', '.join(valid_names)}")
    return [list(valid_names).index(name) for name in names]


def to_float(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [0, 1]."""
    return images.float().div_(255)


def to_uint8(images: Tensor) -> Tensor:
    """float [0, 1] -> uint8, rounding as image files do (FID compares quantised images)."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8)


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


# ----------------------------------------------------------------------------------------------
# Embedded procedural faces
# ----------------------------------------------------------------------------------------------
def _face_parameters(seed: int, index: int) -> tuple:
    """Attributes and nuisances of one face, drawn from a generator keyed by (seed, index)."""
    rng = np.random.default_rng([seed, index])
    male = rng.random() < 0.45
    hair = rng.choice(3, p=[0.2, 0.3, 0.5])  # blond, black, other: exclusive as in CelebA
    attributes = {
        "Male": male,
        "Smiling": rng.random() < 0.5,
        "Eyeglasses": rng.random() < (0.2 if male else 0.08),
        "Wearing_Hat": rng.random() < 0.1,
        "Blond_Hair": hair == 0,
        "Black_Hair": hair == 1,
        "Bangs": rng.random() < (0.1 if male else 0.3),
        "Wearing_Lipstick": rng.random() < (0.03 if male else 0.7),
        "Pale_Skin": rng.random() < 0.1,
        "Mustache": male and rng.random() < 0.35,
    }
    nuisance = np.concatenate([
        rng.normal(0, 0.05, 2),          # face centre offset
        rng.normal(1.3, 0.08, 1),        # face scale
        rng.uniform(0, 1, 3),            # background colour
        rng.uniform(-1, 1, 1),           # background gradient direction
        rng.uniform(0.35, 0.85, 1),      # skin tone
        rng.uniform(0, 1, 3),            # other-hair colour, hat colour, glasses darkness
        rng.integers(0, 2**24, 1),       # pixel-noise seed (exact in float32)
    ])
    return [float(attributes[name]) for name in FACE_ATTRIBUTES], nuisance.astype(np.float32)


def face_parameters(indices, seed: int = 0):
    """Attributes [N, 10] and nuisances of the faces with these indices, for render_faces."""
    labels, nuisances = zip(*(_face_parameters(seed, int(index)) for index in indices))
    return (torch.tensor(np.array(labels), dtype=torch.float32),
            torch.from_numpy(np.stack(nuisances)))


def render_faces(labels: Tensor, nuisance: Tensor, image_size: int) -> Tensor:
    """Draw faces with the given attributes (columns of FACE_ATTRIBUTES) and nuisances.

    Resolution-independent: shapes are signed distances on a [-1, 1]^2 grid, edges anti-aliased.
    Returns uint8 [B, 3, S, S].
    """
    check_image_size(image_size)
    batch = len(labels)
    a = {name: labels[:, i].view(batch, 1, 1) for i, name in enumerate(FACE_ATTRIBUTES)}
    p = nuisance.view(batch, -1, 1, 1).unbind(1)
    (dx, dy, scale, bg_r, bg_g, bg_b, bg_dir, skin, hair_tone, hat_tone, glass_tone, noise_seed) = p
    coords = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size * 2 - 1
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    x = (x - dx) / scale
    y = (y - dy) / scale
    edge = image_size / 2  # sharpness: edges about one pixel wide at any size

    def inside(distance):  # negative inside the shape
        return torch.sigmoid(-distance * edge)

    def ellipse(cx, cy, rx, ry):
        return inside((torch.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) - 1) * torch.minimum(
            torch.as_tensor(rx), torch.as_tensor(ry)))

    def paint(canvas, mask, colour):
        colour = torch.stack([torch.as_tensor(c).expand(batch, 1, 1) for c in colour], 1)
        return canvas * (1 - mask.unsqueeze(1)) + colour * mask.unsqueeze(1)

    t = (y.expand(batch, -1, -1) * bg_dir + 1) / 2  # background gradient
    canvas = torch.stack([bg_r * (0.6 + 0.4 * t), bg_g * (0.6 + 0.4 * t), bg_b * (0.6 + 0.4 * t)], 1)

    hair_colour = [torch.where(a["Blond_Hair"] > 0, 0.95, torch.where(a["Black_Hair"] > 0, 0.08,
                                                                      0.25 + 0.35 * hair_tone)),
                   torch.where(a["Blond_Hair"] > 0, 0.8, torch.where(a["Black_Hair"] > 0, 0.06,
                                                                     0.15 + 0.2 * hair_tone)),
                   torch.where(a["Blond_Hair"] > 0, 0.35, torch.where(a["Black_Hair"] > 0, 0.06,
                                                                      0.08 + 0.1 * hair_tone))]
    male = a["Male"]
    # hair behind the head: long (to the shoulders) for women, short for men
    long_hair = ellipse(0.0, 0.15, 0.62, 0.78) * (1 - male)
    short_hair = ellipse(0.0, -0.12, 0.56, 0.6) * male
    canvas = paint(canvas, torch.maximum(long_hair, short_hair), hair_colour)

    skin = torch.where(a["Pale_Skin"] > 0, 0.97, skin)
    skin_colour = [skin, skin * 0.82, skin * 0.7]
    face = ellipse(0.0, 0.05, 0.42 + 0.04 * male, 0.55)
    canvas = paint(canvas, face, skin_colour)

    bangs = a["Bangs"] * ellipse(0.0, -0.42, 0.42, 0.2) * inside(y + 0.3)
    canvas = paint(canvas, bangs, hair_colour)

    for side in (-1, 1):
        canvas = paint(canvas, ellipse(0.17 * side, -0.08, 0.06, 0.045), [0.1, 0.1, 0.15])
        ring = inside(torch.abs(torch.sqrt((x - 0.17 * side) ** 2 + (y + 0.08) ** 2) - 0.12) - 0.025)
        glasses = 0.1 + 0.3 * glass_tone
        canvas = paint(canvas, ring * a["Eyeglasses"], [glasses, glasses, glasses])
    bridge = inside(torch.maximum(torch.abs(x) - 0.06, torch.abs(y + 0.08) - 0.02))
    canvas = paint(canvas, bridge * a["Eyeglasses"], [glasses, glasses, glasses])

    # mouth: a wide upward arc when smiling, a short straight line otherwise
    smile = a["Smiling"]
    half_width = 0.12 + 0.08 * smile
    mouth_y = 0.3 + smile * 0.08 * (1 - (x / half_width) ** 2).clamp(min=0)
    thickness = 0.03 + 0.02 * a["Wearing_Lipstick"]
    mouth = inside(torch.maximum(torch.abs(y - mouth_y) - thickness, torch.abs(x) - half_width))
    lips = a["Wearing_Lipstick"]
    canvas = paint(canvas, mouth, [0.45 + 0.4 * lips, 0.2 - 0.1 * lips, 0.2 - 0.05 * lips])

    mustache = a["Mustache"] * inside(torch.maximum(torch.abs(y - 0.22) - 0.035,
                                                    torch.abs(x) - 0.17))
    canvas = paint(canvas, mustache, [c * 0.8 for c in hair_colour])

    hat = a["Wearing_Hat"] * torch.maximum(ellipse(0.0, -0.5, 0.45, 0.3) * inside(y + 0.38),
                                           inside(torch.maximum(torch.abs(y + 0.4) - 0.05,
                                                                torch.abs(x) - 0.62)))
    hat_colour = [0.2 + 0.7 * hat_tone, 0.2 + 0.5 * (1 - hat_tone), 0.6 * hat_tone]
    canvas = paint(canvas, hat, hat_colour)

    # pixel noise: deterministic per face
    noise = torch.stack([torch.randn(canvas.shape[1:],
                                     generator=torch.Generator().manual_seed(int(seed)))
                         for seed in noise_seed.flatten().tolist()])
    canvas = canvas + 0.02 * noise
    return to_uint8(canvas)


def embedded_faces(split: str = "train", image_size: int = 32, num_images: int | None = None,
                   seed: int = 0, attributes: Sequence[str] | None = None,
                   batch_size: int = 512) -> AttributeImages:
    """The embedded procedural attribute-faces dataset (DESIGN §5): no files, no network.

    Image ``i`` of a split depends only on (seed, split, i). ``attributes`` picks columns by name.
    """
    if not isinstance(split, str) or split not in EMBEDDED_SPLIT_SIZES:
        raise DataError(f"unknown split {split!r}; use one of {sorted(EMBEDDED_SPLIT_SIZES)}")
    check_image_size(image_size)
    for name, value in (("num_images", num_images), ("seed", seed)):
        if value is not None and (isinstance(value, bool) or
                                  not isinstance(value, (int, np.integer))):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if seed < 0:
        raise DataError(f"seed must be >= 0, got {seed}")
    count = EMBEDDED_SPLIT_SIZES[split] if num_images is None else int(num_images)
    if count < 1:
        raise DataError(f"num_images must be at least 1, got {num_images}")
    labels, nuisances = face_parameters(range(_SPLIT_OFFSET[split], _SPLIT_OFFSET[split] + count),
                                        seed)
    images = torch.cat([render_faces(labels[i:i + batch_size], nuisances[i:i + batch_size],
                                     image_size) for i in range(0, count, batch_size)])
    data = AttributeImages(images, labels, FACE_ATTRIBUTES)
    return data.select_attributes(attributes) if attributes is not None else data


# ----------------------------------------------------------------------------------------------
# CelebA
# ----------------------------------------------------------------------------------------------
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
    """Fetch CelebA with torchvision (needs the internet; Google Drive often rate-limits)."""
    import torchvision

    torchvision.datasets.CelebA(str(root), split="all", target_type="attr", download=True)
    return celeba_folder(root)


def read_celeba_annotations(root: str | os.PathLike, split: str = "train"):
    """File names, {0,1} labels [N, 40] and attribute names of one official split."""
    if split not in CELEBA_SPLITS and split != "all":
        raise DataError(f"unknown split {split!r}; use one of {sorted(CELEBA_SPLITS)} or 'all'")
    folder = celeba_folder(root)
    lines = (folder / "list_attr_celeba.txt").read_text().splitlines()
    names = tuple(lines[1].split())
    rows = [line.split() for line in lines[2:] if line.strip()]
    if not rows or any(len(row) != len(names) + 1 for row in rows):
        raise DataError(f"{folder / 'list_attr_celeba.txt'} is malformed: expected a count line, "
                        f"a line of {len(names)} attribute names, then one line per image")
    labels = {row[0]: [int(v) > 0 for v in row[1:]] for row in rows}
    partition = dict(line.split() for line in
                     (folder / "list_eval_partition.txt").read_text().splitlines() if line.strip())
    wanted = set(CELEBA_SPLITS.values()) if split == "all" else {CELEBA_SPLITS[split]}
    files = sorted(name for name, part in partition.items() if int(part) in wanted)
    missing_labels = [name for name in files if name not in labels]
    if missing_labels:
        raise DataError(f"{len(missing_labels)} images of list_eval_partition.txt have no row in "
                        f"list_attr_celeba.txt (first: {missing_labels[0]})")
    return files, torch.tensor([labels[name] for name in files], dtype=torch.float32), names


class CelebAJPEGs(torch.utils.data.Dataset):
    """The per-image pipeline: decode one JPEG, centre-crop 148, resize. Slow; feeds the cache."""

    def __init__(self, root, split="train", image_size=64, crop=CELEBA_CROP):
        import torchvision.transforms.v2 as T

        self.files, self.labels, self.attribute_names = read_celeba_annotations(root, split)
        self.folder = celeba_folder(root) / "img_align_celeba"
        self.transform = T.Compose([T.CenterCrop(crop),
                                    T.Resize(check_image_size(image_size), antialias=True)])

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
                tensor = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"CelebA image {path} cannot be decoded ({error}); "
                            f"re-download or delete it from the lists") from error
        return self.transform(tensor).contiguous(), self.labels[index]


def _cache_key(split: str, image_size: int, crop: int, files) -> str:
    listing = hashlib.sha1("\n".join(files).encode()).hexdigest()[:12]
    return f"celeba_{split}_{image_size}px_crop{crop}_{len(files)}_{listing}"


def load_celeba(root: str | os.PathLike, split: str = "train", image_size: int = 64,
                attributes: Sequence[str] | None = None, cache_dir: str | os.PathLike | None = None,
                num_workers: int | None = None, crop: int = CELEBA_CROP,
                on_error: str = "stop") -> AttributeImages:
    """CelebA as :class:`AttributeImages`, decoded once into a memory-mapped uint8 cache.

    The cache (``root/celeba/cache`` unless ``cache_dir``) is named by split, size, crop and the
    file list, and records the image files' sizes and the label files' hashes, so a stale cache
    is never used (see :func:`build_image_cache`); building it again is a no-op. ``on_error``
    says what a corrupt JPEG does: ``"stop"`` (an error naming it) or ``"skip"`` (left out,
    with its labels, and reported).
    """
    jpegs = CelebAJPEGs(root, split, image_size, crop)
    folder = Path(cache_dir) if cache_dir else celeba_folder(root) / "cache"
    key = _cache_key(split, image_size, crop, jpegs.files)
    annotations = hashlib.sha1()
    for name in CELEBA_FILES[:2]:
        annotations.update((celeba_folder(root) / name).read_bytes())
    source = {"dataset": "celeba", "split": split, "image_size": image_size, "crop": crop,
              "count": len(jpegs.files), "annotations": annotations.hexdigest(),
              "files": files_fingerprint(jpegs.folder / name for name in jpegs.files)}
    cached = build_image_cache(jpegs, folder / f"{key}.uint8", num_workers=num_workers,
                               on_error=on_error, source=source)
    data = AttributeImages(cached.images, cached.labels, jpegs.attribute_names)
    return data.select_attributes(attributes) if attributes is not None else data


CACHE_FORMAT = 1
ON_ERROR = ("stop", "skip")


def default_num_workers() -> int:
    """Decoding processes for cache builds: the cores this process may use, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cores or 1))


def files_fingerprint(paths) -> str:
    """A hash of file names and sizes: changes when files are added, removed or re-encoded.

    Sizes rather than modification times, so that copying a dataset does not invalidate its cache.
    """
    digest = hashlib.sha1()
    for path in paths:
        size = os.stat(path).st_size if os.path.exists(path) else "missing"
        digest.update(f"{Path(path).name}:{size}\n".encode())
    return digest.hexdigest()


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
    kept_indices: Tensor
    skipped: list


def _cache_files(path: Path) -> dict:
    return {"images": path, "labels": path.with_suffix(".labels.npy"),
            "kept": path.with_suffix(".kept.npy"), "meta": path.with_suffix(".json")}


def _open_cache(path: Path, source: dict, on_error: str) -> CachedImages | None:
    """The finished cache at ``path`` if it was built from ``source``; None if there is none.

    A cache that exists but is stale or damaged is reported and ignored (then rebuilt).
    """
    files = _cache_files(path)
    if not all(file.exists() for file in files.values()):
        return None
    meta = json.loads(files["meta"].read_text())
    shape = meta.get("shape", [])
    if meta.get("format") != CACHE_FORMAT or meta.get("source") != source:
        warnings.warn(f"image cache {path} was built from other data or settings "
                      f"({meta.get('source')} != {source}); rebuilding it", stacklevel=3)
        return None
    if os.path.getsize(files["images"]) != math.prod(shape):
        warnings.warn(f"image cache {path} has {os.path.getsize(files['images'])} bytes, not the "
                      f"{math.prod(shape)} its {files['meta'].name} records; rebuilding it",
                      stacklevel=3)
        return None
    skipped = meta["skipped"]
    if skipped and on_error == "stop":
        raise DataError(f"image cache {path} was built without {len(skipped)} unreadable "
                        f"image(s), first: {skipped[0]['error']}; fix or remove them and delete "
                        f"{files['meta']}, or pass on_error='skip' to use the cache without them")
    if skipped:
        warnings.warn(f"image cache {path} leaves out {len(skipped)} unreadable image(s), "
                      f"first: {skipped[0]['error']}", stacklevel=3)
    images = torch.from_file(str(files["images"]), shared=False, size=math.prod(shape),
                             dtype=torch.uint8).view(shape) if shape[0] else \
        torch.empty(shape, dtype=torch.uint8)
    labels = torch.from_numpy(np.load(files["labels"], allow_pickle=False))
    kept = torch.from_numpy(np.load(files["kept"], allow_pickle=False))
    return CachedImages(images, labels, kept, skipped)


def build_image_cache(dataset, path: str | os.PathLike, num_workers: int | None = None,
                      batch_size: int = 256, on_error: str = "stop",
                      source: dict | None = None) -> CachedImages:
    """Decode a dataset of ``(image, label)`` once into a uint8 file at ``path``; memory-map it.

    ``num_workers`` decoding processes (default: the usable cores, at most 8) feed a progress bar.
    Next to the image file sit the labels (``.labels.npy``), the source indices kept
    (``.kept.npy``) and a JSON record of ``source`` (default :func:`dataset_source`), the shape and
    the skipped items. The record is written last, so an interrupted build is redone; a cache
    whose record does not match ``source`` is reported and rebuilt, never used silently; a
    finished, matching cache is opened without decoding anything.

    ``on_error``: ``"stop"`` raises at the first unreadable image, naming it; ``"skip"`` leaves it
    out (its label row too, so labels stay aligned) and reports it.
    """
    if on_error not in ON_ERROR:
        raise DataError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    path = Path(path)
    source = dataset_source(dataset) if source is None else source
    cached = _open_cache(path, source, on_error)
    if cached is not None:
        return cached
    files = _cache_files(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the cache folder {path.parent} ({error}); pass a "
                        f"writable cache_dir") from error
    files["meta"].unlink(missing_ok=True)  # from here on the old cache, if any, is invalid
    workers = default_num_workers() if num_workers is None else num_workers
    loader = torch.utils.data.DataLoader(_DecodeOrReport(dataset), batch_size=batch_size,
                                         num_workers=workers, collate_fn=_collate_reports)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    images, labels, kept, skipped, count = None, [], [], [], 0
    with tqdm(total=len(dataset), desc=f"caching {path.name}", unit="img") as bar:
        for batch in loader:
            for index, error in batch["errors"]:
                if on_error == "stop":
                    partial.unlink(missing_ok=True)
                    raise DataError(f"{error} (item {index}); to build the cache without "
                                    f"unreadable images pass on_error='skip'")
                skipped.append({"index": index, "error": error})
                bar.write(f"skipping unreadable image: {error}")
            if batch["images"] is not None:
                if images is None:  # the first readable image fixes the shape
                    image_shape = list(batch["images"].shape[1:])
                    images = torch.from_file(str(partial), shared=True,
                                             size=len(dataset) * math.prod(image_shape),
                                             dtype=torch.uint8).view(-1, *image_shape)
                images[count:count + len(batch["images"])] = batch["images"]
                count += len(batch["images"])
                labels.append(batch["labels"])
                kept.append(batch["indices"])
            bar.update(len(batch["indices"]) + len(batch["errors"]))
    if images is None:
        raise DataError(f"none of the {len(dataset)} images could be read (first error: "
                        f"{skipped[0]['error'] if skipped else 'empty dataset'})")
    del images  # unmap before truncating the unused tail left by skipped images
    os.truncate(partial, count * math.prod(image_shape))
    np.save(files["labels"], torch.cat(labels).numpy(), allow_pickle=False)
    np.save(files["kept"], torch.cat(kept).numpy(), allow_pickle=False)
    os.replace(partial, path)
    meta = {"format": CACHE_FORMAT, "source": source, "shape": [count, *image_shape],
            "skipped": skipped}
    temporary = files["meta"].with_name(files["meta"].name + ".tmp")
    temporary.write_text(json.dumps(meta, indent=1))
    os.replace(temporary, files["meta"])
    return _open_cache(path, source, on_error)


def load_dataset(name: str = "embedded", split: str = "train", image_size: int = 32,
                 data_dir: str | os.PathLike | None = None,
                 attributes: Sequence[str] | None = None, num_images: int | None = None,
                 seed: int = 0, num_workers: int | None = None,
                 on_error: str = "stop") -> AttributeImages:
    """One entry point for the notebooks: ``name`` is 'embedded' or 'celeba'.

    ``num_workers`` and ``on_error`` concern CelebA's cache (see :func:`load_celeba`)."""
    if name == "embedded":
        return embedded_faces(split, image_size, num_images, seed, attributes)
    if name == "celeba":
        if data_dir is None:
            raise DataError("dataset 'celeba' needs data_dir, the folder that holds celeba/")
        data = load_celeba(data_dir, split, image_size, attributes, num_workers=num_workers,
                           on_error=on_error)
        return data.subset(num_images) if num_images is not None else data
    raise DataError(f"unknown dataset {name!r}; use 'embedded' or 'celeba'")
