"""The bottom layer: the configuration error, the argument checks every layer shares, the device.

Each check gives one line that names the value, says what was wrong and what to pass instead.
"""
from __future__ import annotations

import re
from dataclasses import fields
from numbers import Integral
from pathlib import Path

import torch

NUM_DOWNSAMPLINGS = 4  # the encoder's stride-2 convolutions (chapter 2): the side divides by 16


class ConfigError(ValueError):
    """A configuration value of the wrong type or out of range."""


def check_int(name: str, value, minimum: int | None = None, error: type = ConfigError) -> int:
    """``value`` must be an int (a bool is not one: papermill's ``epochs=True`` is no 1) and, with
    ``minimum``, at least that; a wrong type raises TypeError, a value too small ``error``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise error(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_image_size(image_size, error: type = ConfigError) -> int:
    """The networks halve the image four times, so the side must be a positive multiple of 16."""
    check_int("image_size", image_size)
    side = 2 ** NUM_DOWNSAMPLINGS
    if image_size < side or image_size % side:
        raise error(f"image_size={image_size} is not supported: the encoder halves the image "
                    f"{NUM_DOWNSAMPLINGS} times, so use a multiple of {side} such as 32 or 64")
    return int(image_size)


def check_field_types(config) -> None:
    """Check a config dataclass's values against its annotations (int, float, bool or str).

    An int is accepted (and converted) where a float is expected; a bool is never an int here,
    so papermill's or a user's ``epochs=True`` is an error, not 1.
    """
    for field in fields(config):
        value = getattr(config, field.name)
        # "bool | None": None is resolved in __post_init__ before this check
        kind = field.type.removesuffix(" | None")
        expected = {"int": int, "float": float, "bool": bool, "str": str}[kind]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            setattr(config, field.name, value)
        if (expected is not bool and isinstance(value, bool)) or not isinstance(value, expected):
            raise ConfigError(f"{type(config).__name__}.{field.name} must be {expected.__name__}, "
                              f"got {type(value).__name__} {value!r}")


def resolve_device(device) -> torch.device:
    """'auto' -> CUDA if available, else CPU; anything else must be a device torch knows."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available; use 'cpu' or "
                          f"'auto'")
    return resolved


def available_memory(device: torch.device) -> int | None:
    """Bytes this process may still allocate on ``device``: CUDA's free memory; on a CPU the
    kernel's MemAvailable, less where a cgroup (a container's limit) allows less. None where
    unknown (then nothing is refused)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available = int(re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M)[1]) * 1024
    except (OSError, TypeError):  # no /proc (macOS)
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        return available if limit == "max" else min(available, int(limit) - used)
    except (OSError, ValueError):  # no cgroup v2 limit
        return available


def training_memory_floor(image_size: int, batch_size: int, base_channels: int,
                          parameters: int) -> int:
    """Bytes a training step needs at the least when its backward starts (from the second step
    on): three float32 per parameter (the weight, Adam's two moments) and per image of the batch
    the activations backward keeps, two bytes each (bf16, the smallest): the image, one tensor
    per encoder convolution, the same shapes in the decoder, its output. A lower bound, so a size
    it refuses cannot fit."""
    convs = sum(base_channels * 2**i * (image_size // 2**(i + 1))**2
                for i in range(NUM_DOWNSAMPLINGS))
    return 3 * 4 * parameters + 2 * batch_size * 2 * (3 * image_size**2 + convs)
