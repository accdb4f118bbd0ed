"""Decoding processes never hang the cache build: a small /dev/shm (64 MB is Docker's default, 1 MB
is common in CI containers) is not needed at all, a full one or processes that cannot start fall
back to decoding in this process with one line, and processes whose builder was killed end."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from cvae_tutorial.data import DataError, build_image_cache
from cvae_tutorial.files import holding, process_state

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

BUILD = textwrap.dedent('''
    import os, sys, time, warnings, torch
    from cvae_tutorial.data import build_image_cache

    class Faces(torch.utils.data.Dataset):  # 800 images of 64 px: 9.8 MB, 786 KB a batch
        def __len__(self):
            return 800

        def __getitem__(self, i):
            if sys.argv[2] == "slow":
                open(os.path.join(sys.argv[3], str(os.getpid())), "w").close()
                time.sleep(0.02)
            return torch.full((3, 64, 64), i % 251, dtype=torch.uint8), torch.tensor([i % 2])

    warnings.simplefilter("always")
    cache = build_image_cache(Faces(), sys.argv[1], num_workers=2, batch_size=64, source={})
    assert all(int(cache.images[i].max()) == int(cache.images[i].min()) == i % 251
               for i in range(800))
    print("WHOLE", len(cache.images))
''')

IN_A_SMALL_SHM = "mount -t tmpfs -o size=1M tmpfs /dev/shm && {fill}exec \"$@\""


def can_mount_a_small_shm():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    tried = subprocess.run(["unshare", "--mount", "sh", "-c", IN_A_SMALL_SHM.format(fill=""),
                            "sh", "true"], capture_output=True)
    return tried.returncode == 0


needs_a_small_shm = pytest.mark.skipif(
    not can_mount_a_small_shm(), reason="mounting a 1 MB /dev/shm needs root (a private mount "
    "namespace: unshare --mount)")


def build_in_a_small_shm(tmp_path, fill):
    script = tmp_path / "build.py"
    script.write_text(BUILD)
    command = ["unshare", "--mount", "sh", "-c", IN_A_SMALL_SHM.format(fill=fill), "sh",
               sys.executable, str(script), str(tmp_path / "c.uint8"), "quick"]
    try:  # the bug was a wait without end: 120 s is 20 times what the build takes here
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=ENV)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the build hung in a 1 MB /dev/shm: {str(expired.stderr)[-1000:]}")


@needs_a_small_shm
def test_a_1_mb_dev_shm_does_not_stop_decoding_processes(tmp_path):
    built = build_in_a_small_shm(tmp_path, fill="")
    assert built.returncode == 0 and built.stdout.split() == ["WHOLE", "800"], built.stderr[-2000:]
    assert "decoding in this process" not in built.stderr  # the processes did the work


@needs_a_small_shm
def test_a_full_dev_shm_decodes_in_this_process_said_in_one_line(tmp_path):
    built = build_in_a_small_shm(tmp_path, fill="cat /dev/zero > /dev/shm/full 2>/dev/null; ")
    assert built.returncode == 0 and built.stdout.split() == ["WHOLE", "800"], built.stderr[-2000:]
    said = [line for line in built.stderr.splitlines() if "decoding in this process" in line]
    assert len(said) == 1 and "cannot start 2 decoding processes (" in said[0], built.stderr


def test_processes_that_cannot_start_decode_in_this_process(tmp_path, monkeypatch):
    import concurrent.futures

    def refused(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")  # fork's EAGAIN: too many processes

    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit", refused)
    with pytest.warns(UserWarning, match=r"^cannot start 3 decoding processes \(\[Errno 11\] "
                                         r"Resource temporarily unavailable\); decoding in this "
                                         r"process \(--num-workers 0 says so\)$"):
        cached = build_image_cache(Images(), tmp_path / "c.uint8", num_workers=3, batch_size=7,
                                   source={})
    assert [int(image.max()) for image in cached.images] == list(range(30))


class Images(torch.utils.data.Dataset):
    def __init__(self, odd=None):
        self.odd = odd

    def __len__(self):
        return 30

    def __getitem__(self, i):
        side = 12 if i == self.odd else 16
        return torch.full((3, side, side), i, dtype=torch.uint8), torch.tensor([i % 2])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_an_image_of_another_size_is_named_or_skipped(tmp_path, num_workers):
    with pytest.raises(DataError, match=r"^an image of \[3, 12, 12\], not \[3, 16, 16\] as the "
                                        r"first \(item 13\); to build the cache without"):
        build_image_cache(Images(odd=13), tmp_path / "c.uint8", num_workers=num_workers,
                          batch_size=4, source={})
    with pytest.warns(UserWarning, match=r"leaves out 1 unreadable image\(s\), first: an image "):
        cached = build_image_cache(Images(odd=13), tmp_path / "c.uint8",
                                   num_workers=num_workers, batch_size=4, source={},
                                   on_error="skip")
    kept = [i for i in range(30) if i != 13]
    assert [int(image.max()) for image in cached.images] == kept
    assert cached.labels.flatten().tolist() == [i % 2 for i in kept]


def test_the_decoding_processes_of_a_killed_builder_end_and_release_the_lock(tmp_path):
    script = tmp_path / "build.py"
    script.write_text(BUILD)
    pids = tmp_path / "pids"
    pids.mkdir()
    with open(tmp_path / "stderr", "w") as stderr:  # not a pipe: orphans would hold it open
        builder = subprocess.Popen([sys.executable, str(script), str(tmp_path / "c.uint8"),
                                    "slow", str(pids)], env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
    workers = set()
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2:
            assert builder.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "stderr").read_text()[-2000:]
            time.sleep(0.05)
            workers = {int(p.name) for p in pids.iterdir()} - {builder.pid}
        builder.send_signal(signal.SIGKILL)
        builder.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(process_state(pid) != "gone" for pid in workers):
            assert time.monotonic() < deadline, "the decoding processes outlived their builder"
            time.sleep(0.1)
    finally:
        for pid in workers:
            if process_state(pid) != "gone":
                os.kill(pid, signal.SIGKILL)
    with pytest.warns(UserWarning, match=r"removed 1 temporary file\(s\) .*: 9.8 MB freed"):
        cached = build_image_cache(Images(), tmp_path / "other.uint8", num_workers=0,
                                   source={}, lock_timeout=0)  # its partial file, removed
    assert len(cached.images) == 30
    with pytest.warns(RuntimeWarning, match=rf"taking over .* left by pid {builder.pid} .*no "
                                            rf"longer running"):
        with holding(f"{tmp_path / 'c.uint8'}.lock", "the killed build's lock", timeout=0):
            pass  # free: not held by an orphaned decoding process (they share its file)
