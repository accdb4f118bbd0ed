"""config.py: the shared checks (an int that is no bool, the image side, a config's field types)
and the device, each a one-line error naming the value."""
from __future__ import annotations  # field types as strings, as the package's configs have them

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from cvae_tutorial.config import (ConfigError, check_field_types, check_image_size, check_int,
                                  resolve_device)
from cvae_tutorial.data import DataError


def test_check_int_takes_ints_at_or_above_the_minimum_and_returns_plain_ints():
    assert check_int("epochs", 3, 1) == 3
    assert check_int("epochs", 1, 1) == 1  # the minimum itself is allowed
    assert check_int("seed", -4) == -4  # no minimum: any int
    value = check_int("count", np.int64(7), 0)
    assert value == 7 and type(value) is int


@pytest.mark.parametrize("value, kind", [(True, "bool"), (2.0, "float"), ("3", "str"),
                                         (None, "NoneType")])
def test_check_int_refuses_what_is_no_int_naming_its_type(value, kind):
    with pytest.raises(TypeError, match=rf"^epochs must be an int, got {kind} "):
        check_int("epochs", value, 1)


def test_check_int_below_the_minimum_raises_the_error_asked_for():
    with pytest.raises(ConfigError, match=r"^epochs must be an int >= 1, got 0$"):
        check_int("epochs", 0, 1)
    with pytest.raises(DataError, match="num_images must be an int >= 1, got -2"):
        check_int("num_images", -2, 1, DataError)


def test_image_sizes_are_positive_multiples_of_16():
    assert [check_image_size(size) for size in (16, 32, 48, 64, 128)] == [16, 32, 48, 64, 128]
    assert type(check_image_size(np.int64(32))) is int
    for size in (0, 8, 24, 33, -16):
        with pytest.raises(ConfigError, match=rf"image_size={size} is not supported: .* halves "
                                              rf"the image 4 times, so use a multiple of 16"):
            check_image_size(size)
    with pytest.raises(DataError, match="image_size=20"):
        check_image_size(20, DataError)
    with pytest.raises(TypeError, match="image_size must be an int, got bool"):
        check_image_size(True)


@dataclass
class _Config:
    steps: int = 1
    rate: float = 0.5
    flag: bool = False
    name: str = "a"
    sees: bool | None = False  # "| None": resolved before the check, as CVAEConfig does


def test_field_types_are_checked_against_the_annotations_and_ints_become_floats():
    config = _Config(rate=2)
    check_field_types(config)
    assert config.rate == 2.0 and type(config.rate) is float
    check_field_types(_Config(flag=True, sees=True))
    for fields, named in [(dict(steps=True), "_Config.steps must be int, got bool True"),
                          (dict(steps=1.5), "_Config.steps must be int, got float 1.5"),
                          (dict(rate="0.1"), "_Config.rate must be float, got str '0.1'"),
                          (dict(rate=True), "_Config.rate must be float, got bool True"),
                          (dict(flag=1), "_Config.flag must be bool, got int 1"),
                          (dict(name=3), "_Config.name must be str, got int 3")]:
        with pytest.raises(ConfigError, match=rf"^{named}$"):
            check_field_types(_Config(**fields))


def test_resolve_device(monkeypatch):
    device = torch.device("cpu")
    assert resolve_device(device) is device
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^unknown device 'gpu'; use 'auto', 'cpu' or 'cuda'$"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match="device 'cuda:0' asked for but CUDA is not available"):
        resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
