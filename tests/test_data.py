"""Datasets: embedded faces are deterministic; CelebA loads from a fake folder; errors are clear."""
import pytest
import torch

from cvae_tutorial.data import (CELEBA_ATTRIBUTES, FACE_ATTRIBUTES, AttributeImages, DataError,
                                as_attribute_images, embedded_faces, load_celeba, load_dataset)
from cvae_tutorial.data.images import content_fingerprint, sample_digest
from cvae_tutorial.files import fingerprint


def test_embedded_faces_are_deterministic_per_seed_and_index():
    a = embedded_faces("train", 32, num_images=40, seed=3)
    b = embedded_faces("train", 32, num_images=40, seed=3)
    c = embedded_faces("train", 32, num_images=20, seed=3)
    d = embedded_faces("train", 32, num_images=40, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.images[:20], c.images)  # image i does not depend on how many are drawn
    assert not torch.equal(a.images, d.images)
    test = embedded_faces("test", 32, num_images=40, seed=3)
    assert not torch.equal(a.images, test.images)  # splits are disjoint draws


@pytest.mark.parametrize("size", [32, 64])
def test_embedded_faces_shapes_and_names(size):
    data = embedded_faces("valid", size, num_images=8)
    assert data.images.shape == (8, 3, size, size) and data.images.dtype == torch.uint8
    assert data.attribute_names == FACE_ATTRIBUTES
    assert set(data.attribute_names) <= set(CELEBA_ATTRIBUTES)


def test_embedded_faces_have_celeba_like_correlations():
    data = embedded_faces("train", 32, num_images=4000)
    column = {name: data.labels[:, i].bool() for i, name in enumerate(FACE_ATTRIBUTES)}
    assert not (column["Mustache"] & ~column["Male"]).any()
    assert not (column["Blond_Hair"] & column["Black_Hair"]).any()
    lipstick_given_female = column["Wearing_Lipstick"][~column["Male"]].float().mean()
    lipstick_given_male = column["Wearing_Lipstick"][column["Male"]].float().mean()
    assert lipstick_given_female > 0.5 > 0.1 > lipstick_given_male


def test_attributes_change_the_picture():
    data = embedded_faces("train", 32, num_images=2000)
    smiling = data.labels[:, FACE_ATTRIBUTES.index("Smiling")].bool()
    mean_difference = (data.images[smiling].float().mean(0) - data.images[~smiling].float().mean(0))
    placebo = torch.arange(len(data)) % 2 == 0
    placebo_difference = (data.images[placebo].float().mean(0)
                          - data.images[~placebo].float().mean(0))
    # the mouth region differs by far more than two random halves of the data do
    assert mean_difference.abs().max() > 2 * placebo_difference.abs().max()


def test_select_attributes_and_unknown_name():
    data = embedded_faces("train", 32, num_images=10, attributes=["Smiling", "Male"])
    full = embedded_faces("train", 32, num_images=10)
    assert data.attribute_names == ("Smiling", "Male")
    assert torch.equal(data.labels[:, 0], full.labels[:, FACE_ATTRIBUTES.index("Smiling")])
    with pytest.raises(DataError,
                       match="unknown attribute name.*'Smilling'.*valid names are: Male"):
        full.select_attributes(["Smilling"])
    with pytest.raises(TypeError, match="list of strings"):
        full.select_attributes("Smiling")


def test_fake_celeba_folder_loads_with_official_splits(fake_celeba, tmp_path):
    root, labels = fake_celeba
    train = load_celeba(root, "train", image_size=32, cache_dir=tmp_path / "cache")
    valid = load_celeba(root, "valid", image_size=32, cache_dir=tmp_path / "cache")
    test = load_celeba(root, "test", image_size=32, cache_dir=tmp_path / "cache")
    assert (len(train), len(valid), len(test)) == (4, 2, 3)
    assert train.images.shape == (4, 3, 32, 32) and train.attribute_names == CELEBA_ATTRIBUTES
    assert torch.equal(train.labels, torch.tensor(labels[:4], dtype=torch.float32))
    assert torch.equal(test.labels, torch.tensor(labels[6:], dtype=torch.float32))
    smiling = load_dataset("celeba", "test", 32, data_dir=root, attributes=["Smiling"])
    assert smiling.labels.shape == (3, 1)


def test_missing_celeba_folder_names_the_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "celeba" / "list_attr_celeba.txt")):
        load_celeba(tmp_path, "train", 32)


@pytest.mark.parametrize("missing", ["list_attr_celeba.txt", "list_eval_partition.txt"])
def test_partial_celeba_folder_names_the_missing_file(fake_celeba, missing):
    root, _ = fake_celeba
    (root / "celeba" / missing).unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_celeba(root, "train", 32)
    assert str(root / "celeba" / missing) in str(error.value)
    other = {"list_attr_celeba.txt", "list_eval_partition.txt"} - {missing}
    assert f"missing {root / 'celeba' / other.pop()}" not in str(error.value)


def test_bad_image_sizes_and_splits():
    with pytest.raises(DataError, match="multiple of 16"):
        embedded_faces("train", 40, num_images=2)
    with pytest.raises(TypeError, match="image_size must be an int"):
        embedded_faces("train", "32", num_images=2)
    with pytest.raises(DataError, match="unknown split 'val'"):
        embedded_faces("val", 32, num_images=2)
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")


def test_any_dataset_of_image_label_pairs_converts():
    images = torch.rand(10, 3, 16, 16)
    labels = torch.randint(0, 2, (10, 5)) * 2 - 1  # {-1, 1} as CelebA's files
    data = as_attribute_images(torch.utils.data.TensorDataset(images, labels))
    assert data.images.dtype == torch.uint8 and data.labels.min() == 0
    assert data.attribute_names == tuple(f"attribute_{i}" for i in range(5))
    with pytest.raises(DataError, match="uint8"):
        AttributeImages(images, labels, "abcde")


def test_download_without_gdown_names_the_extra(tmp_path, monkeypatch):
    import sys
    from cvae_tutorial.data import DataError, download_celeba
    monkeypatch.setitem(sys.modules, "gdown", None)  # as if it were not installed
    with pytest.raises(DataError, match=r"needs gdown.*pip install 'cvae_tutorial\[download\]'"):
        download_celeba(tmp_path)
    assert not list(tmp_path.iterdir())  # nothing started


@pytest.mark.parametrize("file, damage, named", [
    ("list_attr_celeba.txt", lambda t: t.replace(" -1", " x", 1), r"list_attr_celeba.txt, line 3 "),
    ("list_attr_celeba.txt", lambda t: "", r"list_attr_celeba.txt is malformed \(empty\)"),
    ("list_attr_celeba.txt", lambda t: t.split("\n", 1)[1],
     r"list_attr_celeba.txt is malformed \(no count line\)"),
    ("list_eval_partition.txt", lambda t: t.replace(" 0", " train", 1),
     r"list_eval_partition.txt, line 1 is malformed .*'<file name> <0, 1 or 2>'"),
    ("list_eval_partition.txt", lambda t: t.replace(" 0", " 0 extra", 1),
     r"list_eval_partition.txt, line 1 is malformed"),
    ("list_eval_partition.txt", lambda t: "", r"list_eval_partition.txt is empty")])
def test_malformed_celeba_lists_name_the_file_and_line(fake_celeba, file, damage, named):
    root, _ = fake_celeba
    path = root / "celeba" / file
    path.write_text(damage(path.read_text()))
    with pytest.raises(DataError, match=named + r".*re-download it"):
        load_celeba(root, "train", 16)


def test_one_content_fingerprint_tells_data_sets_apart():
    data = embedded_faces("test", 16, num_images=100)
    key = content_fingerprint(data.images, data.labels)
    assert data.fingerprint()["digest"] == key  # checkpoints and caches use the same one
    # the value of earlier checkpoints: they still resume
    assert key == fingerprint([data.labels.numpy().tobytes(),
                               sample_digest(data.images).encode()], 16)
    changed = data.images.clone()
    changed[37, 0, 5, 5] ^= 1  # one bit of one image
    reordered = data.select_attributes(list(reversed(data.attribute_names)))
    others = [content_fingerprint(changed, data.labels),
              content_fingerprint(data.images[:99], data.labels[:99]),
              content_fingerprint(data.images, reordered.labels),
              content_fingerprint(data.images)]
    assert len({key, *others}) == 5
    assert content_fingerprint(data.images.clone(), data.labels.clone()) == key
