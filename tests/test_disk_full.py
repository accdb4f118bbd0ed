"""A full disk during the cache build is one line naming the bytes needed and the folder, said
before decoding, and leaves no partial file (never a SIGBUS from a map the disk cannot back); a
decoding process that dies is one line too."""
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


@pytest.fixture
def build(tmp_path):
    """Builds the cache of ``dataset`` (default: the 100 images above) in tmp_path."""
    def build(dataset=None, num_workers=0):
        return build_image_cache(Images() if dataset is None else dataset, tmp_path / "c.uint8",
                                 num_workers=num_workers, batch_size=10, source={"n": 100})
    return build


@pytest.fixture
def fails_leaving_nothing(tmp_path, build):
    """Builds as ``build`` does, expecting one line matching ``message`` and no file left."""
    def fails(message, **options):
        with pytest.raises(DataError, match=message) as error:
            build(**options)
        assert "\n" not in str(error.value)
        assert left(tmp_path) == []
    return fails


def test_too_little_free_space_is_one_line_before_decoding(tmp_path, monkeypatch,
                                                           fails_leaving_nothing):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    fails_leaving_nothing(rf"the image cache needs 76,800 bytes \(0.00 GB\) in {tmp_path} but "
                          rf"only 1,000 bytes are free; free space there or pass another "
                          rf"cache_dir")


def test_a_reservation_the_disk_refuses_is_one_line_and_leaves_nothing(monkeypatch,
                                                                        fails_leaving_nothing):
    def full(fd, offset, length):
        assert length == 100 * 3 * 16 * 16  # the whole file, reserved before decoding
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    fails_leaving_nothing(r"needs 76,800 bytes .* could not reserve them \(No space left on "
                          r"device\); free space there")


def test_a_file_system_that_cannot_reserve_still_builds(monkeypatch, build):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    cached = build()
    assert len(cached.images) == 100 and int(cached.images[42].max()) == 42


def test_the_reservation_is_real(tmp_path, build):
    cached = build()
    assert os.stat(tmp_path / "c.uint8").st_blocks * 512 >= 100 * 3 * 16 * 16
    assert len(cached.images) == 100


class KillsItsWorker(Images):
    def __init__(self, victim):
        self.victim = victim

    def __getitem__(self, i):
        if i == self.victim:  # as the OOM killer would
            os.kill(os.getpid(), 9)
        return super().__getitem__(i)


def test_a_decoding_process_killed_is_one_line_and_leaves_nothing(fails_leaving_nothing):
    """Killed at several points (the error raced the cleanup: a raw error replaced the line)."""
    for victim in (7, 37, 55, 91, 99):
        fails_leaving_nothing(r"^a decoding process died .*; rerun with fewer decoding "
                              r"processes than 2 \(num_workers / --num-workers; 0 decodes in "
                              r"this process\)$", dataset=KillsItsWorker(victim), num_workers=2)
