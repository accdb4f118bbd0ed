"""A full disk during the cache build is one line naming the bytes needed and the folder, said
before decoding, and leaves no partial file (never a SIGBUS from a map the disk cannot back)."""
import errno
import os
import shutil

import pytest
import torch

from cvae_tutorial.data import DataError, build_image_cache


class Images(torch.utils.data.Dataset):
    def __len__(self):
        return 100

    def __getitem__(self, i):
        return torch.full((3, 16, 16), i, dtype=torch.uint8), torch.tensor([i % 2])


def left(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_too_little_free_space_is_one_line_before_decoding(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(DataError, match=rf"the image cache needs 76,800 bytes \(0.00 GB\) in "
                                        rf"{tmp_path} but only 1,000 bytes are free; free "
                                        rf"space there or pass another cache_dir"):
        build_image_cache(Images(), tmp_path / "c.uint8", num_workers=0, batch_size=10,
                          source={"n": 100})
    assert left(tmp_path) == []


def test_a_reservation_the_disk_refuses_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    def full(fd, offset, length):
        assert length == 100 * 3 * 16 * 16  # the whole file, reserved before decoding
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(DataError, match=r"needs 76,800 bytes .* could not reserve them \(No space "
                                        r"left on device\); free space there"):
        build_image_cache(Images(), tmp_path / "c.uint8", num_workers=0, batch_size=10,
                          source={"n": 100})
    assert left(tmp_path) == []


def test_a_file_system_that_cannot_reserve_still_builds(tmp_path, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    cached = build_image_cache(Images(), tmp_path / "c.uint8", num_workers=0, batch_size=10,
                               source={"n": 100})
    assert len(cached.images) == 100 and int(cached.images[42].max()) == 42


def test_the_reservation_is_real(tmp_path):
    cached = build_image_cache(Images(), tmp_path / "c.uint8", num_workers=0, batch_size=10,
                               source={"n": 100})
    assert os.stat(tmp_path / "c.uint8").st_blocks * 512 >= 100 * 3 * 16 * 16
    assert len(cached.images) == 100


class KillsItsWorker(Images):
    def __getitem__(self, i):
        if i == 37:  # as the OOM killer would
            os.kill(os.getpid(), 9)
        return super().__getitem__(i)


def test_a_decoding_process_killed_is_one_line_and_leaves_nothing(tmp_path):
    with pytest.raises(DataError, match=r"a decoding process died \(DataLoader worker \(pid.*\d+\) "
                                        r"(is killed by signal|exited unexpectedly).*rerun "
                                        r"with fewer decoding processes than 1 \(num_workers"):
        build_image_cache(KillsItsWorker(), tmp_path / "c.uint8", num_workers=1, batch_size=10,
                          source={"n": 100})
    assert left(tmp_path) == []
