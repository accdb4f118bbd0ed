"""Long runs that survive bad luck and bad input: corrupt checkpoints, NaNs, unwritable folders,
broken data. Each case is provoked and must end in one clear line saying what to do."""

import re

import pytest
import torch

from cvae_tutorial import (CVAE, CVAEConfig, ConfigError, TrainConfig, load_dataset,
                           load_model, train)
from cvae_tutorial.checkpoints import (CheckpointError, CorruptCheckpointError, load_checkpoint,
                                       save_checkpoint)
from cvae_tutorial.data import CelebAJPEGs, DataError
from cvae_tutorial.data.batches import epoch_batches
from cvae_tutorial.flows import RealNVP
from cvae_tutorial.losses import sigma_optimal_nll
from cvae_tutorial.training import NonFiniteLossError

CONFIG = CVAEConfig(model="sigma_flow", image_size=16, num_attributes=10, latent_dim=4,
                    base_channels=8, flow_hidden=16)


def run_config(**changes):
    settings = dict(epochs=2, batch_size=32, device="cpu", checkpoint_every=2)
    return TrainConfig(**{**settings, **changes})


def fresh_model(config=CONFIG):
    torch.manual_seed(0)
    return CVAE(config)


def assert_same_weights(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------
def test_corrupt_checkpoint_resumes_from_prev_with_a_warning(tiny_faces, tmp_path):
    train_data, test_data = tiny_faces
    straight = fresh_model()
    train(straight, train_data, test_data, run_config(epochs=3), tmp_path / "a.pt", progress=False)

    path = tmp_path / "b.pt"
    train(fresh_model(), train_data, test_data, run_config(), path, progress=False)
    path.write_bytes(path.read_bytes()[:2000])  # a disk that lost the end of the file
    resumed = fresh_model()
    with pytest.warns(RuntimeWarning, match=r"b.pt is truncated or corrupt .*resuming from the "
                                            r"previous good checkpoint .*b.pt.prev"):
        train(resumed, train_data, test_data, run_config(epochs=3), path, progress=False)
    assert_same_weights(straight, resumed)  # replaying from .prev loses nothing
    assert len((tmp_path / "b.pt.corrupt").read_bytes()) == 2000  # kept for inspection
    load_checkpoint(path), load_checkpoint(tmp_path / "b.pt.prev")  # the damage did not rotate
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_checkpoint_without_prev_says_how_to_start_over(tiny_faces, tmp_path):
    train_data, test_data = tiny_faces
    path = tmp_path / "c.pt"
    path.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(CorruptCheckpointError, match=r"truncated or corrupt.*delete .*c.pt to "
                                                     r"start over"):
        train(fresh_model(), train_data, test_data, run_config(), path, progress=False)
    with pytest.raises(CorruptCheckpointError):
        load_model(path)  # loading for evaluation never falls back silently


def test_foreign_file_and_other_model_are_clear_errors(tiny_faces, tmp_path):
    train_data, test_data = tiny_faces
    foreign = tmp_path / "state_dict.pt"
    torch.save(fresh_model().state_dict(), foreign)
    with pytest.raises(CheckpointError, match="not a cvae_tutorial checkpoint"):
        load_model(foreign)
    path = tmp_path / "d.pt"
    train(fresh_model(), train_data, test_data, run_config(epochs=1), path, progress=False)
    other = CVAEConfig(model="sigma", image_size=16, num_attributes=10, latent_dim=8)
    with pytest.raises(CheckpointError, match=r"another model \(model: checkpoint 'sigma_flow' "
                                              r"vs asked 'sigma'; latent_dim: checkpoint 4 vs "
                                              r"asked 8"):
        load_model(path, expected=other)
    assert load_model(path, expected=CONFIG).config == CONFIG
    state = load_checkpoint(path)
    assert state["package_version"] and state["model_config"] == CONFIG.to_dict()


def test_resuming_with_other_training_settings_is_a_clear_error(tiny_faces, tmp_path):
    train_data, test_data = tiny_faces
    path = tmp_path / "e.pt"
    train(fresh_model(), train_data, test_data, run_config(epochs=1), path, progress=False)
    with pytest.raises(CheckpointError, match=r"other training settings \(lr: checkpoint 0.001 vs "
                                              r"asked 0.01\); resume with the same settings"):
        train(fresh_model(), train_data, test_data, run_config(lr=1e-2), path, progress=False)


@pytest.mark.parametrize("where", ["parent is a file", "folder is a file"])
def test_unwritable_output_folder_fails_before_training(tiny_faces, tmp_path, where):
    # As root, chmod does not stop writes; a regular file where a folder should be does.
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    path = blocker / "sigma_flow" / "checkpoint.pt" if where == "parent is a file" \
        else blocker / "checkpoint.pt"
    train_data, test_data = tiny_faces
    model = fresh_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NotADirectoryError, match=r"cannot write to the output folder .*results is "
                                                 r"a file, not a folder; choose another out_dir"):
        train(model, train_data, test_data, run_config(), path, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # not one step
    with pytest.raises(NotADirectoryError, match="not a folder"):
        save_checkpoint({"format": 1}, path)


# ---------------------------------------------------------------------------------------------
# Numerical guards
# ---------------------------------------------------------------------------------------------
def test_nan_in_the_data_stops_training_naming_step_and_terms(tiny_faces, tmp_path):
    train_data, test_data = tiny_faces
    poisoned = train_data.subset(len(train_data))
    poisoned.labels = poisoned.labels.clone()
    config = run_config(checkpoint_every=1)
    third_batch = epoch_batches(len(poisoned), config.batch_size, config.seed, epoch=0)[2]
    poisoned.labels[third_batch[0], 0] = float("nan")  # a damaged label row reaching the loop
    path = tmp_path / "f.pt"
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, step 2: loss=nan, recon=\S+, kl=nan.*"
                                                 r"f.pt, is kept unchanged"):
        train(fresh_model(), poisoned, test_data, config, path, progress=False)
    kept = load_checkpoint(path)  # whole, and from before the bad step
    assert (kept["epoch"], kept["step_in_epoch"]) == (0, 2)
    assert all(torch.isfinite(value).all() for value in kept["model"].values())
    assert not list(tmp_path.glob("*.tmp"))


def test_a_nan_loss_never_reaches_the_weights_in_memory(tiny_faces):
    # the step that produces a NaN loss must stop before backward/step: the model in memory
    # keeps the weights it had before that step (a caller may go on using it)
    train_data, test_data = tiny_faces
    poisoned = train_data.subset(len(train_data))
    poisoned.labels = poisoned.labels.clone()
    config = run_config(checkpoint_every=0)
    bad_step = 2
    poisoned.labels[epoch_batches(len(poisoned), config.batch_size, config.seed, 0)[bad_step][0],
                    0] = float("nan")
    model, before = fresh_model(), {}

    def snapshot(epoch, step, indices):
        before[step] = {name: value.clone() for name, value in model.state_dict().items()}

    with pytest.raises(NonFiniteLossError, match=f"step {bad_step}"):
        train(model, poisoned, test_data, config, progress=False, on_batch=snapshot)
    assert max(before) == bad_step
    assert not torch.equal(before[0]["decoder.head.0.weight"],
                           before[bad_step]["decoder.head.0.weight"])  # earlier steps did train
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[bad_step][name]), name


@pytest.mark.parametrize("bad_step", [0, 2])
def test_a_nan_loss_is_skipped_on_the_device_between_read_backs(tiny_faces, bad_step):
    # with the fused Adam (CUDA's default) the losses are read back every few steps (no sync
    # per step), so the steps after the bad one still run; the fused Adam skips them on the
    # device, and the run stops at the read-back (here the epoch's end, after step 3) naming the
    # bad step, with the weights from before it
    train_data, test_data = tiny_faces
    poisoned = train_data.subset(len(train_data))
    poisoned.labels = poisoned.labels.clone()
    config = run_config(checkpoint_every=0, adam="fused")
    poisoned.labels[epoch_batches(len(poisoned), config.batch_size, config.seed, 0)[bad_step][0],
                    0] = float("nan")
    model, before = fresh_model(), {}

    def snapshot(epoch, step, indices):
        before[step] = {name: value.clone() for name, value in model.state_dict().items()}

    with pytest.raises(NonFiniteLossError, match=f"step {bad_step}: .*weights in memory are "
                                                 f"those from before this step"):
        train(model, poisoned, test_data, config, progress=False, on_batch=snapshot)
    assert max(before) == 3  # steps after the bad one ran (skipped) until the read-back
    if bad_step > 0:
        assert not torch.equal(before[0]["decoder.head.0.weight"],
                               before[bad_step]["decoder.head.0.weight"])  # earlier steps trained
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[bad_step][name]), name


def test_non_finite_gradients_under_a_finite_loss_stop_the_run_too(tiny_faces, monkeypatch):
    # the fused Adam skips an update whose gradients are not finite even when the loss is; the
    # skip is read back with the losses, so training never stalls silently
    train_data, test_data = tiny_faces
    original, calls = CVAE.loss_terms, []

    def poisoned_gradient(self, x, y, **options):
        terms = original(self, x, y, **options)
        calls.append(1)
        if len(calls) == 2:  # step 1: d/dw sqrt(0 * w) = 0 * inf = NaN, the loss stays finite
            weight = self.decoder.head[0].weight
            terms["loss"] = terms["loss"] + torch.sqrt(weight[0, 0] * 0)
        return terms

    monkeypatch.setattr(CVAE, "loss_terms", poisoned_gradient)
    model, before = fresh_model(), {}

    def snapshot(epoch, step, indices):
        before[step] = {name: value.clone() for name, value in model.state_dict().items()}

    with pytest.raises(NonFiniteLossError, match=r"non-finite gradients \(finite loss\) at "
                                                 r"epoch 0, step 1: loss=-?\d"):
        train(model, train_data, test_data, run_config(checkpoint_every=0, adam="fused"),
              progress=False, on_batch=snapshot)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[1][name]), name


def test_exploding_learning_rate_stops_training(tiny_faces, tmp_path):
    train_data, test_data = tiny_faces
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at epoch 0, step \d+: loss=.*"
                                                 r"Lower the learning rate"):
        train(fresh_model(), train_data, test_data, run_config(lr=1e8), tmp_path / "g.pt",
              progress=False)
    with pytest.raises(NonFiniteLossError, match="no checkpoint was being written"):
        train(fresh_model(), train_data, test_data, run_config(lr=1e8), progress=False)


def test_a_run_stopped_by_a_nan_closes_its_progress_bar(tiny_faces):
    """A bar left open is drawn again when Python exits: a stray 'training gaussian: 25%' line
    after the run's error (the error's traceback keeps the bar alive until then)."""
    from tqdm.auto import tqdm
    train_data, test_data = tiny_faces
    with pytest.raises(NonFiniteLossError) as stopped:
        train(fresh_model(), train_data, test_data, run_config(lr=1e8), progress=True)
    assert stopped.value.__traceback__ is not None  # the bar's frames are still referenced
    assert [bar.desc for bar in tqdm._instances if bar.desc.startswith("training")] == []


def test_sigma_optimal_loss_is_finite_on_perfect_reconstructions_of_flat_images():
    for value in (0.0, 1.0):  # MSE exactly 0, also where sigmoid outputs saturate
        x = torch.full((4, 3, 16, 16), value)
        x_hat = x.clone().requires_grad_()
        nll, log_sigma = sigma_optimal_nll(x, x_hat)
        assert torch.isfinite(nll).all() and torch.isfinite(log_sigma)
        nll.sum().backward()
        assert torch.isfinite(x_hat.grad).all()


def test_an_epoch_of_perfect_reconstructions_stores_a_finite_sigma(tiny_faces, monkeypatch):
    train_data, test_data = tiny_faces
    original = CVAE.loss_terms

    def perfect(self, x, y, fixed_sigma=False, check_range=True):
        terms = original(self, x, y, fixed_sigma, check_range)
        return {**terms, "mse": torch.zeros_like(terms["mse"])}

    monkeypatch.setattr(CVAE, "loss_terms", perfect)
    model = fresh_model(CVAEConfig(model="sigma", image_size=16, latent_dim=4, base_channels=8))
    history = train(model, train_data, test_data, run_config(epochs=1), progress=False)
    assert history[0]["log_sigma"] == pytest.approx(model.config.min_log_sigma)


def test_flow_scales_stay_bounded_however_large_the_scale_weights():
    torch.manual_seed(0)
    dim, layers, bound = 6, 4, 2.0
    flow = RealNVP(dim, num_layers=layers, hidden=16, scale_bound=bound)
    with torch.no_grad():  # scale nets gone wild (raw outputs ~1e5), shift nets ordinary
        for parameter in flow.parameters():
            parameter.normal_(0, 0.3)
        for coupling in flow.layers:  # the first half of the outputs is the raw log-scale
            coupling.net[-1].weight[:dim].normal_(0, 3e4)
            coupling.net[-1].bias[:dim].normal_(0, 3e4)
    # float64: with shifts of this size float32 round-off alone reaches ~1e-3 in the round trip
    flow = flow.double()
    z = torch.randn(256, dim, dtype=torch.float64) * 5
    u, logabsdet = flow(z)
    assert logabsdet.abs().max() <= layers * (dim // 2) * bound + 1e-3
    assert torch.isfinite(u).all()
    back, inverse_logabsdet = flow.inverse(u)
    torch.testing.assert_close(back, z, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(inverse_logabsdet, -logabsdet)


# ---------------------------------------------------------------------------------------------
# Bad data input
# ---------------------------------------------------------------------------------------------
def test_missing_celeba_from_the_notebook_entry_point(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CelebA is incomplete: missing .*"
                                                r"list_attr_celeba.txt.*download_celeba"):
        load_dataset("celeba", data_dir=tmp_path)
    with pytest.raises(DataError, match="needs data_dir"):
        load_dataset("celeba")


@pytest.mark.parametrize("damage", ["truncated", "not a jpeg", "empty"])
def test_corrupted_jpeg_names_the_file(fake_celeba, damage):
    root, _ = fake_celeba
    jpegs = CelebAJPEGs(root, "train", image_size=32)
    victim = jpegs.folder / jpegs.files[1]
    data = victim.read_bytes()
    victim.write_bytes({"truncated": data[:len(data) // 3], "not a jpeg": b"<html>quota</html>",
                        "empty": b""}[damage])
    jpegs[0]  # the others still decode
    with pytest.raises(DataError, match=rf"CelebA image \S*{jpegs.files[1]} cannot be decoded "
                                        rf".*; re-download"):
        jpegs[1]


def test_unknown_attribute_name_lists_the_valid_ones():
    with pytest.raises(DataError, match=r"unknown attribute name\(s\) \['Smilng'\]; valid names "
                                        r"are: Male, Smiling"):
        load_dataset("embedded", attributes=["Smilng"], num_images=4)
    with pytest.raises(TypeError, match=r"write \['Smiling'\]"):
        load_dataset("embedded", attributes="Smiling", num_images=4)


@pytest.mark.parametrize("size", [86, 30, 8])
def test_image_size_the_architecture_cannot_take(size):
    # a model's bad field is a ConfigError like every other one; bad data input a DataError
    with pytest.raises(ConfigError, match=rf"image_size={size} is not supported.*multiple of 16"):
        CVAEConfig(image_size=size)
    with pytest.raises(DataError, match=rf"image_size={size} is not supported"):
        load_dataset("embedded", image_size=size, num_images=2)


# ---------------------------------------------------------------------------------------------
# FID with fewer than 2 images
# ---------------------------------------------------------------------------------------------
def test_frechet_distance_of_one_generated_image_is_a_clear_error(tiny_faces):
    from cvae_tutorial.data import to_float
    from cvae_tutorial.evaluation.draws import base_noise, sample_images
    from cvae_tutorial.evaluation.frechet import FrechetDistanceError, frechet_distance
    from cvae_tutorial.evaluation.report import prepare_evaluation

    train_data, test_data = tiny_faces
    torch.manual_seed(0)
    features = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 8))
    model = fresh_model()
    _, sample = sample_images(model, test_data.labels[:1],
                              base_noise(1, model.config.latent_dim, 0))
    with torch.no_grad():
        real = features(to_float(test_data.images)).numpy()
        generated = features(to_float(sample)).numpy()
    with pytest.raises(FrechetDistanceError, match=r"at least 2 images per set \(a covariance\), "
                                                   r"got 1; use more samples"):
        frechet_distance(generated, real)
    with pytest.raises(ValueError, match="num_samples must be an int >= 2, got 1"):
        prepare_evaluation(train_data, test_data, num_samples=1, progress=False)


def test_command_line_nan_loss_and_negative_workers_are_one_line(fake_celeba, tmp_path):
    from cvae_tutorial.training.cli import main
    small = ["--model", "gaussian", "--image-size", "16", "--latent-dim", "4", "--epochs", "1",
             "--base-channels", "8", "--batch-size", "16", "--device", "cpu"]
    with pytest.raises(SystemExit, match=r"^error: non-finite loss at epoch 0, step \d+: .*Lower "
                                         r"the learning rate") as stopped:
        main(small + ["--lr", "1e30", "--num-images", "64", "--out-dir", str(tmp_path / "a")])
    assert isinstance(stopped.value.__cause__, NonFiniteLossError)
    root, _ = fake_celeba
    with pytest.raises(SystemExit, match=r"^error: num_workers \(--num-workers\) must be an int "
                                         r">= 0, got -1"):
        main(small + ["--dataset", "celeba", "--data-dir", str(root), "--num-workers", "-1",
                      "--out-dir", str(tmp_path / "b")])


def test_command_line_image_size_beyond_memory_is_one_line_before_allocating(tmp_path):
    """--image-size 4096 was an out-of-memory traceback (under the limit set here, which keeps
    the unfixed code from taking the machine's memory: an allocation refused)."""
    import os
    import resource
    import subprocess
    import sys

    def at_most_8_gb():
        resource.setrlimit(resource.RLIMIT_DATA, (8 * 2**30, 8 * 2**30))

    with open(tmp_path / "err", "w+") as err:
        run = subprocess.Popen([sys.executable, "-m", "cvae_tutorial.training", "--image-size",
                                "4096", "--device", "cpu", "--out-dir", str(tmp_path / "run")],
                               stdout=subprocess.DEVNULL, stderr=err, preexec_fn=at_most_8_gb)
        _, status, usage = os.wait4(run.pid, 0)
        run.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        said = err.read()
    assert run.returncode == 1 and "Traceback" not in said, said[-3000:]
    assert re.fullmatch(r"error: --image-size 4096 needs at "
                        r"least \d+\.\d GB of memory on cpu \(weights and Adam's state, the "
                        r"activations of a batch of 128, the embedded images\) but \d+\.\d GB "
                        r"are available; pass --image-size \d+ or less", said.splitlines()[-1])
    assert usage.ru_maxrss * 1024 < 2e9  # nothing big was allocated


def test_the_largest_image_size_that_fits_is_suggested(monkeypatch, tmp_path):
    from cvae_tutorial.training import cli
    monkeypatch.setattr(cli, "available_memory", lambda device: 8 * 10**9)
    args = ["--image-size", "4096", "--device", "cpu", "--out-dir", str(tmp_path), "--dataset",
            "folder", "--data-dir", str(tmp_path), "--batch-size", "64"]
    with pytest.raises(SystemExit) as stopped:
        cli.main(args)
    said = str(stopped.value)
    need, fits = re.search(r"needs at least (\S+) GB .* pass --image-size (\d+) or less",
                           said).groups()
    assert float(need) > 8
    parsed = cli._parse_args(args)[1]
    assert cli._memory_shortfall(parsed, torch.device("cpu"), int(fits)) is None
    assert cli._memory_shortfall(parsed, torch.device("cpu"), 2 * int(fits)) is not None
    assert not list(tmp_path.iterdir())  # refused before the data or the run folder


def test_the_memory_floor_is_below_what_training_really_takes(tmp_path):
    """The floor only refuses what cannot fit: a real run's peak memory is above it."""
    import subprocess
    import sys
    script = (
        "import resource, torch\n"
        "torch.set_num_threads(1)\n"
        "from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, embedded_faces, train\n"
        "from cvae_tutorial.config import training_memory_floor\n"
        "data, test = embedded_faces('train', 128, num_images=128), "
        "embedded_faces('test', 128, num_images=8)\n"
        "model = CVAE(CVAEConfig(model='sigma', image_size=128, latent_dim=32))\n"
        "weights = sum(p.numel() for p in model.parameters())\n"
        "before = int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()\n"
        "train(model, data, test, TrainConfig(epochs=1, batch_size=64, device='cpu', "
        "sigma_images=8, eval_batch_size=8, prefetch=False), progress=False)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(peak - before, training_memory_floor(128, 64, 32, weights) - 4 * weights)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rise, floor_less_weights = map(int, run.stdout.split())  # the weights were there before
    assert rise > floor_less_weights > 0


FILE_SIZE_LIMIT = """
import resource, signal, sys, torch
from cvae_tutorial.checkpoints import CheckpointError, save_checkpoint
path = sys.argv[1]
save_checkpoint({"format": 1, "weights": torch.zeros(10)}, path)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
try:
    save_checkpoint({"format": 1, "weights": torch.zeros(100_000)}, path)
except CheckpointError as error:
    print(error)
"""


def test_a_checkpoint_that_cannot_be_written_keeps_the_last_and_leaves_no_tmp(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "checkpoint.pt"
    result = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"could not write checkpoint {path} (")
    assert f"the last checkpoint {path} is kept; free disk space" in result.stdout
    assert load_checkpoint(path)["weights"].shape == (10,)  # the last good one, whole
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_the_command_line_starts_without_runpy_warnings():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "cvae_tutorial.training", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--cache-dir" in result.stdout
    assert "unpredictable behaviour" not in result.stderr and "Warning" not in result.stderr
