"""CelebA's list files and images as a user's copy may have them: another encoding, a repeated
row, an extra value, images far larger than the aligned faces, more images asked than a split
holds. Each is one line naming the file (and line), or a warning said once."""
import warnings

import pytest
import torch
from PIL import Image

from cvae_tutorial.data import DataError, load_celeba, load_dataset, read_celeba_annotations


def rewrite(path, change):
    path.write_bytes(change(path.read_bytes()))


@pytest.mark.parametrize("file, change, named", [
    ("list_attr_celeba.txt", lambda b: b.replace(b"000002.jpg", b"00000\xe9.jpg"),
     r"list_attr_celeba.txt, line 4 has a byte that is not UTF-8 \(b'\\xe9'\)"),
    ("list_eval_partition.txt", lambda b: b.replace(b"000003.jpg", b"00000\xff.jpg"),
     r"list_eval_partition.txt, line 3 has a byte that is not UTF-8"),
    ("list_attr_celeba.txt", lambda b: b.decode().encode("utf-16"),
     r"list_attr_celeba.txt is UTF-16 \(or holds NUL bytes\), not UTF-8 text"),
    ("list_eval_partition.txt", lambda b: b.decode().encode("utf-16-le"),
     r"list_eval_partition.txt is UTF-16"),
])
def test_a_list_file_in_another_encoding_names_file_and_line(fake_celeba, file, change, named):
    root, _ = fake_celeba
    rewrite(root / "celeba" / file, change)
    with pytest.raises(DataError, match=named + r".*save it as UTF-8"):
        read_celeba_annotations(root, "train")


def test_a_utf8_byte_order_mark_is_read_as_utf8(fake_celeba):
    root, labels = fake_celeba
    rewrite(root / "celeba" / "list_eval_partition.txt", lambda b: b"\xef\xbb\xbf" + b)
    files, read, _ = read_celeba_annotations(root, "train")
    assert files[0] == "000001.jpg" and torch.equal(read, torch.tensor(labels[:4]).float())


def test_a_duplicate_image_row_of_other_labels_is_an_error_naming_both_lines(fake_celeba):
    root, _ = fake_celeba
    path = root / "celeba" / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    flipped = lines[2].split()[0] + " " + " ".join(
        "-1" if value == "1" else "1" for value in lines[2].split()[1:])
    path.write_text("\n".join([*lines, flipped]) + "\n")
    with pytest.raises(DataError, match=r"list_attr_celeba.txt, line 12 repeats 000001.jpg of "
                                        r"line 3; keep one row per image"):
        read_celeba_annotations(root, "train")


def test_a_duplicate_partition_row_is_an_error(fake_celeba):
    root, _ = fake_celeba
    path = root / "celeba" / "list_eval_partition.txt"
    path.write_text(path.read_text() + "000001.jpg 2\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt, line 10 repeats 000001.jpg"):
        read_celeba_annotations(root, "test")


@pytest.mark.parametrize("extra", [" 1", " -1 1"])
def test_an_attribute_row_with_an_extra_value_names_file_and_line(fake_celeba, extra):
    root, _ = fake_celeba
    path = root / "celeba" / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[4] += extra
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"list_attr_celeba.txt, line 5 is malformed .*"
                                        rf"{40 + extra.count(' ')} values for 40 attribute names"):
        read_celeba_annotations(root, "train")


def test_corrected_labels_are_used_not_the_cached_ones(fake_celeba, tmp_path):
    """The cache key holds the label files' hash: a corrected list_attr_celeba.txt (same images)
    gives its labels, not the stale cached ones."""
    root, labels = fake_celeba
    cache = tmp_path / "cache"
    before = load_celeba(root, "train", 16, cache_dir=cache)
    assert torch.equal(before.labels, torch.tensor(labels[:4]).float())
    path = root / "celeba" / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    row = lines[2].split()
    lines[2] = " ".join([row[0], *("-1" if value == "1" else "1" for value in row[1:])])
    path.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        after = load_celeba(root, "train", 16, cache_dir=cache)
    assert torch.equal(after.labels[0], 1 - torch.tensor(labels[0]).float())
    assert torch.equal(after.labels[1:], before.labels[1:])


def test_more_images_asked_than_the_split_holds_is_said(fake_celeba, tmp_path):
    root, _ = fake_celeba
    with pytest.warns(UserWarning, match=r"num_images=100 \(--num-images\) is more than the 4 "
                                         r"images of the train split; using all 4"):
        data = load_dataset("celeba", "train", 16, root, num_images=100,
                            cache_dir=tmp_path / "cache")
    assert len(data) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_dataset("celeba", "train", 16, root, num_images=3,
                                cache_dir=tmp_path / "cache")) == 3


def test_images_ten_times_the_aligned_size_are_warned_about_once(fake_celeba, tmp_path):
    root, _ = fake_celeba
    folder = root / "celeba" / "img_align_celeba"
    for path in folder.iterdir():
        Image.open(path).resize((1780, 2180)).save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_celeba(root, "train", 16, cache_dir=tmp_path / "cache")
        load_celeba(root, "test", 16, cache_dir=tmp_path / "cache")
    said = [str(w.message) for w in caught if "far larger than the aligned" in str(w.message)]
    assert len(said) == 1 and "is 1780x2180 px" in said[0], [str(w.message) for w in caught]


def test_aligned_size_images_are_not_warned_about(fake_celeba, tmp_path):
    root, _ = fake_celeba
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_celeba(root, "train", 16, cache_dir=tmp_path / "cache")
