"""One training per checkpoint: a second process stops at once naming the holder; a lock left by
a killed process is taken over with a warning."""
import os
import signal
import socket
import subprocess
import sys
import warnings

import pytest

from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, embedded_faces, train
from cvae_tutorial.checkpoints import load_checkpoint
from cvae_tutorial.training.run_lock import RunInUseError

CONFIG = CVAEConfig(model="gaussian", image_size=16, num_attributes=10, latent_dim=4,
                    base_channels=8)
HOLDER = """
import sys, time
from cvae_tutorial.training.run_lock import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def hold_in_another_process(path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def short_run(path):
    data = embedded_faces("train", 16, num_images=32), embedded_faces("test", 16, num_images=16)
    return train(CVAE(CONFIG), *data, TrainConfig(epochs=1, batch_size=16, device="cpu"), path,
                 progress=False)


def test_a_second_training_into_the_same_checkpoint_stops_naming_the_first(tmp_path):
    path = tmp_path / "gaussian" / "checkpoint.pt"
    path.parent.mkdir()
    holder = hold_in_another_process(path)
    try:
        with pytest.raises(RunInUseError, match=rf"{path} is being trained by pid {holder.pid} on "
                                                rf"host {socket.gethostname()} since .*use "
                                                rf"another out_dir"):
            short_run(path)
        assert not path.exists()  # it stopped before writing anything
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(tmp_path):
    path = tmp_path / "checkpoint.pt"
    holder = hold_in_another_process(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    with pytest.warns(RuntimeWarning, match=rf"taking over the run lock of .* left by pid "
                                            rf"{holder.pid} on host .*no longer running"):
        history = short_run(path)
    assert len(history) == 1 and load_checkpoint(path)["epoch"] == 1
    assert not path.with_name("checkpoint.pt.lock.json").exists()  # released at the end
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        short_run(path)  # the next run takes the lock without a word (and finds epoch 1 done)
