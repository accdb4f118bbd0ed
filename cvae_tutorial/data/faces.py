"""The embedded procedural faces: a CelebA-like attribute dataset drawn on the fly (chapter 1).

No files and no network: image ``i`` of a split is a pure function of (seed, split, i).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..config import check_image_size, check_int
from .images import AttributeImages, DataError, to_uint8

# The embedded faces carry these CelebA attributes (a subset, same names and meaning).
FACE_ATTRIBUTES = (
    "Male", "Smiling", "Eyeglasses", "Wearing_Hat", "Blond_Hair", "Black_Hair", "Bangs",
    "Wearing_Lipstick", "Pale_Skin", "Mustache",
)
EMBEDDED_SPLIT_SIZES = {"train": 8192, "valid": 1024, "test": 2048}
_SPLIT_OFFSET = {"train": 0, "valid": 10_000_000, "test": 20_000_000}  # disjoint index ranges


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
    Returns uint8 [B, 3, S, S]. One function of about 80 lines on purpose: it paints the layers
    back to front (background, hair, face, eyes, mouth, hat, grain), and that order reads best
    as one recipe.
    """
    check_image_size(image_size, DataError)
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
    shade = 0.6 + 0.4 * t
    canvas = torch.stack([bg_r * shade, bg_g * shade, bg_b * shade], 1)

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
        radius = torch.sqrt((x - 0.17 * side) ** 2 + (y + 0.08) ** 2)
        ring = inside(torch.abs(radius - 0.12) - 0.025)
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
    """The embedded procedural attribute-faces dataset: no files, no network (chapter 1).

    Image ``i`` of a split depends only on (seed, split, i). ``attributes`` picks columns by name.
    """
    if not isinstance(split, str) or split not in EMBEDDED_SPLIT_SIZES:
        raise DataError(f"unknown split {split!r}; use one of {sorted(EMBEDDED_SPLIT_SIZES)}")
    check_image_size(image_size, DataError)
    check_int("seed", seed, 0, DataError)
    count = EMBEDDED_SPLIT_SIZES[split] if num_images is None else \
        check_int("num_images", num_images, 1, DataError)
    labels, nuisances = face_parameters(range(_SPLIT_OFFSET[split], _SPLIT_OFFSET[split] + count),
                                        seed)
    images = torch.cat([render_faces(labels[i:i + batch_size], nuisances[i:i + batch_size],
                                     image_size) for i in range(0, count, batch_size)])
    data = AttributeImages(images, labels, FACE_ATTRIBUTES)
    return data.select_attributes(attributes) if attributes is not None else data
