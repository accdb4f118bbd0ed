"""A run killed with SIGKILL and restarted with the same command ends bit-identical to one never
stopped (CPU, fixed seed): model, optimizer, RNG states and data order all come back."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from cvae_tutorial.checkpoints import CheckpointError, load_checkpoint

# The "same command" a reader would run: seed, build the model, train with a checkpoint path.
TRAINING_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    torch.set_num_threads(1)  # the same reduction order in every process
    from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, embedded_faces, train

    out_dir = sys.argv[1]
    train_data = embedded_faces("train", 16, num_images=192)
    test_data = embedded_faces("test", 16, num_images=32)
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(model="sigma_flow", image_size=16, latent_dim=4, base_channels=8,
                            flow_hidden=16))
    config = TrainConfig(epochs=3, batch_size=16, device="cpu", checkpoint_every=1, seed=7)
    train(model, train_data, test_data, config, out_dir + "/checkpoint.pt", progress=False)
    torch.save(model.state_dict(), out_dir + "/final.pt")
""")
# The package's command line, rerun by hand after an interruption as the README says.
CLI = ["-m", "cvae_tutorial.training", "--model", "sigma_flow", "--image-size", "16",
       "--num-images", "192", "--latent-dim", "4", "--base-channels", "8", "--batch-size", "16",
       "--epochs", "3", "--checkpoint-every", "1", "--seed", "3", "--device", "cpu"]


def run_training(out_dir, command):
    """Start ``python <command> <out_dir>`` with its output going to a log file in out_dir."""
    arguments = [*command, "--out-dir", str(out_dir)] if command[0] == "-m" else \
        [*command, str(out_dir)]
    log = open(out_dir / f"log-{time.monotonic_ns()}.txt", "wb")
    process = subprocess.Popen([sys.executable, *arguments], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    process.log = log
    return process


def finish(process, timeout=300):
    process.wait(timeout=timeout)
    process.log.close()
    assert process.returncode == 0, open(process.log.name).read()[-3000:]


def wait_for_checkpoint(process, path, epoch, min_step, timeout=120):
    """Poll the checkpoint until it records (epoch, step >= min_step); the child keeps running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the training process ended before it could be killed"
        try:
            state = load_checkpoint(path)
        except (FileNotFoundError, CheckpointError):
            state = None  # not written yet
        if state and (state["epoch"], state["step_in_epoch"]) >= (epoch, min_step):
            return
        time.sleep(0.01)
    pytest.fail(f"no checkpoint at epoch {epoch}, step {min_step} within {timeout}s")


def timeless(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.mark.parametrize("how, kill_at", [("script", (1, 3)), ("cli", (0, 2))],
                         ids=["script-mid-second-epoch", "cli-mid-first-epoch"])
def test_sigkill_mid_run_then_same_command_is_bit_identical(tmp_path, how, kill_at):
    if how == "script":
        script = tmp_path / "train_run.py"
        script.write_text(TRAINING_SCRIPT)
        command, checkpoint = [str(script)], "checkpoint.pt"
    else:
        command, checkpoint = CLI, "sigma_flow/checkpoint.pt"
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    straight.mkdir(), interrupted.mkdir()
    reference = run_training(straight, command)

    child = run_training(interrupted, command)
    wait_for_checkpoint(child, interrupted / checkpoint, *kill_at)
    os.kill(child.pid, signal.SIGSTOP)  # freeze it so the checkpoint we read is the one resumed
    stopped_at = load_checkpoint(interrupted / checkpoint)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.log.close()
    assert child.returncode == -signal.SIGKILL
    # killed mid-epoch: the restart has to replay the rest of the epoch's batches and noise
    assert stopped_at["step_in_epoch"] > 0 and stopped_at["epoch"] < 3
    assert len(stopped_at["history"]) == stopped_at["epoch"]

    finish(run_training(interrupted, command))  # the same command again
    finish(reference)

    if how == "script":
        expected = torch.load(straight / "final.pt", weights_only=True)
        resumed = torch.load(interrupted / "final.pt", weights_only=True)
        assert expected.keys() == resumed.keys()
        for name in expected:
            assert torch.equal(expected[name], resumed[name]), f"{name} differs after resume"
    expected_state = load_checkpoint(straight / checkpoint)
    resumed_state = load_checkpoint(interrupted / checkpoint)
    assert (expected_state["epoch"], resumed_state["epoch"]) == (3, 3)
    for name, value in expected_state["model"].items():
        assert torch.equal(value, resumed_state["model"][name]), f"{name} differs after resume"
    assert timeless(expected_state["history"]) == timeless(resumed_state["history"])
    for a, b in zip(expected_state["optimizer"]["state"].values(),
                    resumed_state["optimizer"]["state"].values()):
        for key in a:
            assert torch.equal(a[key], b[key]), f"optimizer state {key} differs"
    assert torch.equal(expected_state["rng"]["torch"], resumed_state["rng"]["torch"])


def _attribute_run(path, attributes, num_images=32, epochs=1):
    from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, embedded_faces, train
    data = (embedded_faces("train", 16, num_images=num_images, attributes=attributes),
            embedded_faces("test", 16, num_images=16, attributes=attributes))
    model = CVAE(CVAEConfig(model="gaussian", image_size=16, num_attributes=len(attributes),
                            latent_dim=4, base_channels=8))
    return train(model, *data, TrainConfig(epochs=epochs, batch_size=16, device="cpu"), path,
                 progress=False)


@pytest.mark.parametrize("attributes, num_images, named", [
    (("Smiling", "Male"), 32, r"attributes: checkpoint \['Male', 'Smiling'\] vs now "
                              r"\['Smiling', 'Male'\]"),
    (("Eyeglasses", "Bangs"), 32, r"attributes: checkpoint \['Male', 'Smiling'\]"),
    (("Male", "Smiling"), 48, r"count: checkpoint 32 vs now 48")])
def test_resuming_on_other_data_is_a_clear_error(tmp_path, attributes, num_images, named):
    path = tmp_path / "checkpoint.pt"
    _attribute_run(path, ("Male", "Smiling"))
    saved = load_checkpoint(path)["data"]
    assert saved["attributes"] == ["Male", "Smiling"] and saved["count"] == 32
    with pytest.raises(CheckpointError, match=rf"trained on other data \(.*{named}.*new out_dir"):
        _attribute_run(path, attributes, num_images, epochs=2)
    assert load_checkpoint(path)["epoch"] == 1  # untouched
