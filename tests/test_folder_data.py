"""Your own images: a folder with attributes.csv, or class subfolders, through load_dataset,
the cache and the command line; bad folders are one-line errors."""
import csv

import numpy as np
import pytest
import torch
from PIL import Image

from cvae_tutorial.data import DataError, load_dataset
from cvae_tutorial.data.folder import TEST_EVERY


def write_image(path, size, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def write_csv(root, rows, header=("file", "bright", "wide")):
    with open(root / "attributes.csv", "w", newline="") as file:
        csv.writer(file).writerows([header, *rows])


def attribute_folder(root, count=40):
    """``count`` PNGs of mixed sizes; 'bright' says white (else black), 'wide' a 2:1 image."""
    rows = []
    for index in range(count):
        bright, wide = index % 2, (index // 2) % 2
        name = f"images/{index:03d}.png"
        write_image(root / name, (48 if wide else 24, 24), 255 * bright)
        rows.append([name, bright, wide])
    write_csv(root, rows)
    return root


def test_a_csv_folder_loads_with_its_header_split_and_labels(tmp_path):
    root = attribute_folder(tmp_path / "mine")
    cache = tmp_path / "cache"
    train = load_dataset("folder", "train", 16, root, cache_dir=cache)
    test = load_dataset("folder", "test", 16, root, cache_dir=cache)
    assert train.attribute_names == ("bright", "wide")
    assert (len(train), len(test)) == (40 - 40 // TEST_EVERY, 40 // TEST_EVERY)
    assert tuple(train.images.shape[1:]) == (3, 16, 16)  # mixed sizes, all cropped and resized
    # the label follows the image: bright images are white, the others black
    brightness = train.images.float().mean((1, 2, 3)) / 255
    torch.testing.assert_close(brightness, train.labels[:, 0])
    assert list(cache.glob("*.json")), "no cache was written"
    again = load_dataset("folder", "train", 16, root, cache_dir=cache,
                         attributes=["wide"])
    assert again.attribute_names == ("wide",) and torch.equal(again.images, train.images)


def test_class_subfolders_load_one_hot(tmp_path):
    root = tmp_path / "classes"
    for label, value in (("cat", 0), ("dog", 128), ("emu", 255)):
        for index in range(10):
            write_image(root / label / f"{index}.jpg", (20, 20), value)
    data = load_dataset("classes", "all", 16, root, cache_dir=tmp_path / "cache")
    assert data.attribute_names == ("cat", "dog", "emu") and len(data) == 30
    assert torch.equal(data.labels.sum(1), torch.ones(30))
    torch.testing.assert_close(data.images.float().mean((1, 2, 3)),
                               data.labels @ torch.tensor([0.0, 128, 255]), atol=2, rtol=0)


@pytest.mark.parametrize("breakage, message", [
    ("no_csv", "attributes.csv is missing"),
    ("missing_image", "line 3 names 'images/001.png', which is not a file"),
    ("non_binary", "line 2 has the non-binary value '2'"),
    ("short_row", "line 2 has 1 values for 2 attributes"),
    ("corrupt", "cannot be read"),
])
def test_bad_csv_folders_are_one_line_errors(tmp_path, breakage, message):
    root = attribute_folder(tmp_path / "mine", count=10)
    if breakage == "no_csv":
        (root / "attributes.csv").unlink()
    elif breakage == "missing_image":
        (root / "images" / "001.png").unlink()
    elif breakage in ("non_binary", "short_row"):
        write_csv(root, [["images/000.png", 2, 0] if breakage == "non_binary" else
                         ["images/000.png", 1]])
    else:
        (root / "images" / "003.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=message) as error:
        load_dataset("folder", "train", 16, root, cache_dir=tmp_path / "cache")
    assert "\n" not in str(error.value)


def test_an_empty_class_folder_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is not a folder of class subfolders") as error:
        load_dataset("classes", "train", 16, tmp_path / "empty", cache_dir=tmp_path / "cache")
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="needs data_dir"):
        load_dataset("folder", "train", 16)


def test_the_command_line_trains_on_a_csv_folder(tmp_path):
    from cvae_tutorial.checkpoints import load_model
    from cvae_tutorial.training.cli import main

    root = attribute_folder(tmp_path / "mine")
    history = main(["--dataset", "folder", "--data-dir", str(root), "--image-size", "16",
                    "--epochs", "1", "--batch-size", "8", "--latent-dim", "4",
                    "--base-channels", "8", "--model", "sigma", "--device", "cpu",
                    "--out-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache")])
    assert len(history) == 1
    model = load_model(tmp_path / "run" / "sigma" / "checkpoint.pt")
    assert model.config.num_attributes == 2
