"""Waiting says what it waits for: a run that finds a lock held names the holder (pid, host,
since when, running or stopped), waits a stated time, then gives up saying what to do; a holder
that is gone is taken over. Every wait here is bounded."""
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from cvae_tutorial.data import DataError, build_image_cache
from cvae_tutorial.files import process_state
from cvae_tutorial.training.run_lock import RunInUseError, run_lock

from test_leftovers import ENV, start_builder  # a slow builder in another process


class Counting(torch.utils.data.Dataset):
    """The builder's images, counting how many this process decodes."""

    def __init__(self):
        self.decoded = 0

    def __len__(self):
        return 400

    def __getitem__(self, i):
        self.decoded += 1
        return torch.full((3, 16, 16), i % 250, dtype=torch.uint8), torch.tensor([i % 2])


def wait_until_stopped(process, timeout=10):
    deadline = time.monotonic() + timeout
    while process_state(process.pid) != "stopped":
        assert time.monotonic() < deadline, "SIGSTOP did not stop the holder"
        time.sleep(0.01)


def stop_and_end(process):
    process.kill()
    process.communicate(timeout=30)


def test_a_stopped_builder_is_named_and_given_up_on_after_the_stated_time(tmp_path, capfd):
    holder, target = start_builder(tmp_path)
    try:
        holder.send_signal(signal.SIGSTOP)
        wait_until_stopped(holder)
        started = time.monotonic()
        with pytest.raises(DataError) as error:
            build_image_cache(Counting(), target, num_workers=0, source={"slow": 1},
                              lock_timeout=2)
        waited = time.monotonic() - started
        assert 2 <= waited < 20
        # the lock's own message, not "cannot write ... pass a writable cache_dir" (a
        # LockWaitTimeout is an OSError: it was caught as a folder that cannot be written)
        said_waited = re.fullmatch(
            rf"the build of the image cache slow.uint8 \({re.escape(str(target))}.lock\) is "
            rf"held by pid {holder.pid} on host {re.escape(socket.gethostname())} since .*, "
            rf"stopped \(SIGSTOP\); gave up after (\d+) s; resume it \(kill -CONT "
            rf"{holder.pid}\) or end it \(kill {holder.pid}\), then rerun", str(error.value))
        assert said_waited, str(error.value)
        assert 2 <= int(said_waited[1]) <= round(waited)  # rounded: under load it may be 3 s
        said = capfd.readouterr().err
        assert said.count("waiting for the build of the image cache slow.uint8: held by pid "
                          f"{holder.pid}") == 1 and "(giving up after 2 s)" in said
    finally:
        stop_and_end(holder)


def test_a_running_builder_is_waited_for_and_its_cache_opened_without_decoding(tmp_path, capfd):
    """Two runs on one fresh cache: the second decodes nothing (the lock is taken)."""
    holder, target = start_builder(tmp_path)
    try:
        dataset = Counting()
        cached = build_image_cache(dataset, target, num_workers=0, source={"slow": 1},
                                   lock_timeout=120)
        assert dataset.decoded == 0 and len(cached.images) == 400
        assert int(cached.images[399].max()) == 399 % 250
        assert "still running" in capfd.readouterr().err
        holder.communicate(timeout=60)
        assert holder.returncode == 0
    finally:
        if holder.poll() is None:
            stop_and_end(holder)


def test_a_stopped_training_holding_the_run_lock_is_named_with_what_to_do(tmp_path):
    path = tmp_path / "checkpoint.pt"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from cvae_tutorial.training.run_lock import run_lock\n"
                               "with run_lock(sys.argv[1]):\n"
                               "    print('held', flush=True)\n    time.sleep(60)\n", str(path)],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGSTOP)
        wait_until_stopped(holder)
        with pytest.raises(RunInUseError, match=rf"is being trained by pid {holder.pid} on host "
                                                rf".* stopped \(SIGSTOP\); resume it \(kill -CONT "
                                                rf"{holder.pid}\) or end it"):
            with run_lock(path):
                pass
    finally:
        stop_and_end(holder)
    with pytest.warns(RuntimeWarning, match=rf"taking over the run lock .* left by pid "
                                            rf"{holder.pid} .*no longer running"), run_lock(path):
        pass
