"""The decoded-image cache: built once with worker processes, never used stale, corrupt JPEGs."""
import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cvae_tutorial.data import (CelebAJPEGs, DataError, as_attribute_images, build_image_cache,
                                load_celeba)


def cache_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_building_twice_is_a_no_op(fake_celeba, tmp_path, monkeypatch):
    root, labels = fake_celeba
    first = load_celeba(root, "train", 32, cache_dir=tmp_path / "cache", num_workers=2)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}

    def no_decoding(self, index):
        raise AssertionError("a finished cache must not decode again")

    monkeypatch.setattr(CelebAJPEGs, "__getitem__", no_decoding)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid cache is opened without any report
        again = load_celeba(root, "train", 32, cache_dir=tmp_path / "cache", num_workers=2)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == stamps
    assert torch.equal(first.labels, torch.tensor(labels[:4], dtype=torch.float32))


def test_workers_give_the_same_cache_as_the_per_image_pipeline(fake_celeba, tmp_path):
    root, _ = fake_celeba
    with_workers = load_celeba(root, "test", 32, cache_dir=tmp_path / "a", num_workers=2)
    in_process = load_celeba(root, "test", 32, cache_dir=tmp_path / "b", num_workers=0)
    jpegs = CelebAJPEGs(root, "test", 32)
    direct = torch.stack([jpegs[i][0] for i in range(len(jpegs))])
    assert torch.equal(with_workers.images, direct) and torch.equal(in_process.images, direct)


def test_a_changed_image_is_noticed_and_the_cache_rebuilt(fake_celeba, tmp_path):
    root, _ = fake_celeba
    before = load_celeba(root, "train", 32, cache_dir=tmp_path / "cache")
    image = root / "celeba" / "img_align_celeba" / "000003.jpg"
    Image.fromarray(np.full((218, 178, 3), 200, np.uint8)).save(image, quality=50)
    with pytest.warns(UserWarning, match="built from other data or settings"):
        after = load_celeba(root, "train", 32, cache_dir=tmp_path / "cache")
    assert torch.equal(after.images[[0, 1, 3]], before.images[[0, 1, 3]])
    assert (after.images[2].int() - 200).abs().max() <= 2 and not torch.equal(after.images[2],
                                                                             before.images[2])


def test_other_sizes_get_their_own_cache_and_a_damaged_one_is_rebuilt(fake_celeba, tmp_path):
    root, _ = fake_celeba
    small = load_celeba(root, "train", 16, cache_dir=tmp_path / "cache")
    large = load_celeba(root, "train", 32, cache_dir=tmp_path / "cache").images.clone()
    assert small.image_size == 16 and large.shape[-1] == 32
    assert len([name for name in cache_files(tmp_path / "cache") if name.endswith(".json")]) == 2
    image_file = next((tmp_path / "cache").glob("*32px*.uint8"))
    # e.g. a disk that filled up (the mapping above was copied: truncating a mapped file kills it)
    image_file.write_bytes(image_file.read_bytes()[:100])
    with pytest.warns(UserWarning, match="has 100 bytes"):
        rebuilt = load_celeba(root, "train", 32, cache_dir=tmp_path / "cache")
    assert torch.equal(rebuilt.images, large)


def test_corrupt_jpeg_stops_or_is_skipped_without_a_hole_in_the_labels(fake_celeba, tmp_path):
    root, labels = fake_celeba
    good = load_celeba(root, "train", 32, cache_dir=tmp_path / "good")
    (root / "celeba" / "img_align_celeba" / "000002.jpg").write_bytes(b"not a jpeg at all")

    with pytest.raises(DataError, match=r"000002\.jpg.*on_error='skip'"):
        load_celeba(root, "train", 32, cache_dir=tmp_path / "cache", num_workers=2)
    assert not list((tmp_path / "cache").glob("*.json"))  # no half-built cache left to reuse

    with pytest.warns(UserWarning, match=r"leaves out 1 unreadable image.*000002\.jpg"):
        skipped = load_celeba(root, "train", 32, cache_dir=tmp_path / "cache", num_workers=2,
                              on_error="skip")
    assert len(skipped) == 3
    assert torch.equal(skipped.images, good.images[[0, 2, 3]])
    assert torch.equal(skipped.labels, torch.tensor(labels[[0, 2, 3]], dtype=torch.float32))
    meta = json.loads(next((tmp_path / "cache").glob("*.json")).read_text())
    assert [item["index"] for item in meta["skipped"]] == [1]

    with pytest.raises(DataError, match="built without 1 unreadable image.*000002.jpg"):
        load_celeba(root, "train", 32, cache_dir=tmp_path / "cache")  # "stop" is the default


def test_bad_on_error_value(fake_celeba, tmp_path):
    root, _ = fake_celeba
    with pytest.raises(DataError, match="on_error must be one of"):
        load_celeba(root, "train", 32, cache_dir=tmp_path, on_error="ignore")


def test_any_image_folder_dataset_uses_the_cache(tmp_path):
    import torchvision
    import torchvision.transforms.v2 as T

    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{i}.png")
    folder = torchvision.datasets.ImageFolder(
        tmp_path / "images", transform=T.Compose([T.PILToTensor(), T.Resize(16, antialias=True)]),
        target_transform=lambda label: torch.tensor([float(label)]))
    cache = tmp_path / "cache" / "pets16.uint8"
    data = as_attribute_images(folder, ["Dog"], cache_path=cache)
    assert data.images.shape == (6, 3, 16, 16)
    assert data.labels.flatten().tolist() == [0.0] * 3 + [1.0] * 3
    assert torch.equal(data.images, torch.stack([folder[i][0] for i in range(6)]))
    stamp = os.stat(cache).st_mtime_ns
    assert torch.equal(as_attribute_images(folder, ["Dog"], cache_path=cache).images, data.images)
    assert os.stat(cache).st_mtime_ns == stamp

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "images" / "cats" / "3.png")
    folder = torchvision.datasets.ImageFolder(folder.root, folder.transform,
                                              folder.target_transform)
    with pytest.warns(UserWarning, match="built from other data"):
        assert len(as_attribute_images(folder, ["Dog"], cache_path=cache)) == 7


def test_cache_of_unreadable_dataset_only(tmp_path):
    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            raise OSError(f"image {index} is gone")

    with pytest.raises(DataError, match="none of the 2 images could be read.*image 0 is gone"):
        build_image_cache(Broken(), tmp_path / "broken.uint8", num_workers=0, on_error="skip")


SLOW_BUILDER = '''
import sys, time, torch
from cvae_tutorial.data import build_image_cache

class Slow(torch.utils.data.Dataset):
    def __len__(self):
        return 60

    def __getitem__(self, i):
        time.sleep(0.01)
        return torch.full((3, 16, 16), i + 1, dtype=torch.uint8), torch.tensor([i % 2])

cache = build_image_cache(Slow(), sys.argv[1], num_workers=0, batch_size=8, source={"slow": 1})
whole = len(cache.images) == 60 and all(
    int(cache.images[i].min()) == int(cache.images[i].max()) == i + 1 for i in range(60))
print("WHOLE" if whole else "PARTIAL")
'''


def test_two_processes_building_one_cache_both_get_all_of_it(tmp_path):
    """Two runs started together on a fresh folder: one builds, the other waits and opens it."""
    import subprocess
    import sys
    import time
    script = tmp_path / "builder.py"
    script.write_text(SLOW_BUILDER)
    target = tmp_path / "cache" / "slow.uint8"
    builders = []
    for _ in range(2):
        builders.append(subprocess.Popen([sys.executable, str(script), str(target)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True))
        time.sleep(0.3)
    results = [builder.communicate(timeout=180) for builder in builders]
    for builder, (out, err) in zip(builders, results):
        assert builder.returncode == 0 and out.strip() == "WHOLE", err[-2000:]
    leftovers = [p.name for p in target.parent.iterdir() if p.suffix in (".partial", ".tmp")]
    assert not leftovers


def test_cache_files_are_readable_by_others_as_the_umask_allows(fake_celeba, tmp_path):
    root, _ = fake_celeba
    old = os.umask(0o022)
    try:
        load_celeba(root, "train", 16, cache_dir=tmp_path / "cache")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "cache").iterdir()}
    assert set(modes.values()) == {0o644}, modes


def test_zeroed_cache_bytes_are_noticed_and_rebuilt(fake_celeba, tmp_path):
    root, _ = fake_celeba
    built = load_celeba(root, "train", 16, cache_dir=tmp_path / "cache").images.clone()
    image_file = next((tmp_path / "cache").glob("*.uint8"))
    image_file.write_bytes(bytes(image_file.stat().st_size))  # the right size, all zeros
    with pytest.warns(UserWarning, match=r"changed or zeroed\); rebuilding"):
        rebuilt = load_celeba(root, "train", 16, cache_dir=tmp_path / "cache")
    assert torch.equal(rebuilt.images, built)


@pytest.mark.parametrize("damage", ["truncated json", "json list", "truncated labels"])
def test_a_damaged_record_or_label_file_is_rebuilt_with_a_warning(fake_celeba, tmp_path, damage):
    root, labels = fake_celeba
    built = load_celeba(root, "train", 16, cache_dir=tmp_path / "cache")
    images = built.images.clone()
    suffix, content = {"truncated json": (".json", None), "json list": (".json", b"[1, 2]"),
                       "truncated labels": (".labels.npy", None)}[damage]
    target = next(p for p in (tmp_path / "cache").iterdir() if p.name.endswith(suffix))
    target.write_bytes(content if content is not None else target.read_bytes()[:20])
    with pytest.warns(UserWarning, match="is damaged .*rebuilding it"):
        rebuilt = load_celeba(root, "train", 16, cache_dir=tmp_path / "cache")
    assert torch.equal(rebuilt.images, images)
    assert torch.equal(rebuilt.labels, torch.tensor(labels[:4], dtype=torch.float32))


@pytest.mark.parametrize("bad", ["60x60 jpeg", "16-bit png named .jpg"])
def test_undersized_or_16_bit_images_stop_naming_the_file_or_are_skipped(fake_celeba, tmp_path,
                                                                          bad):
    root, labels = fake_celeba
    image = root / "celeba" / "img_align_celeba" / "000002.jpg"
    if bad == "60x60 jpeg":
        Image.fromarray(np.full((60, 60, 3), 128, np.uint8)).save(image, quality=90)
        named = r"is 60x60 px, smaller than the 148-px crop"
    else:
        Image.fromarray(np.full((218, 178), 30000, np.uint16)).save(image, format="PNG")
        named = r"has I;16\w? pixels \(more than 8 bits per channel\)"
    with pytest.raises(DataError, match=rf"000002.jpg {named}.*on-error skip"):
        load_celeba(root, "train", 16, cache_dir=tmp_path / "cache", num_workers=0)
    with pytest.warns(UserWarning, match=rf"leaves out 1 unreadable image.*000002.jpg {named}"):
        kept = load_celeba(root, "train", 16, cache_dir=tmp_path / "cache", num_workers=0,
                           on_error="skip")
    assert torch.equal(kept.labels, torch.tensor(labels[:4], dtype=torch.float32)[[0, 2, 3]])


def test_a_read_only_dataset_folder_caches_in_the_user_cache_said_once(fake_celeba, tmp_path,
                                                                        monkeypatch):
    from cvae_tutorial.data import load_dataset
    root, _ = fake_celeba
    (root / "celeba" / "cache").write_bytes(b"")  # nothing can be created in celeba/cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.warns(UserWarning, match=r"cannot write beside the data .*caching decoded "
                                         r"CelebA images in .*xdg/cvae_tutorial/celeba.*cache_dir"):
        data = load_dataset("celeba", "train", 16, root)
    assert len(data) == 4 and list((tmp_path / "xdg" / "cvae_tutorial" / "celeba").glob("*.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        load_dataset("celeba", "test", 16, root)


def test_cache_dir_goes_through_load_dataset_and_the_command_line(fake_celeba, tmp_path):
    from cvae_tutorial.data import load_dataset
    from cvae_tutorial.training.cli import main
    root, _ = fake_celeba
    load_dataset("celeba", "valid", 16, root, cache_dir=tmp_path / "mine")
    assert [p.name.split("_")[1] for p in (tmp_path / "mine").glob("*.json")] == ["valid"]
    main(["--dataset", "celeba", "--data-dir", str(root), "--image-size", "16", "--epochs", "1",
          "--batch-size", "4", "--latent-dim", "4", "--base-channels", "8", "--device", "cpu",
          "--model", "gaussian", "--out-dir", str(tmp_path / "run"),
          "--cache-dir", str(tmp_path / "cli")])
    assert sorted(p.name.split("_")[1] for p in (tmp_path / "cli").glob("*.json")) == \
        ["test", "train"]
    assert not (root / "celeba" / "cache").exists()
