"""Runs that cannot be mixed (chapter 6): every checkpoint an evaluation reads is checked against
its folder and its run before anything is computed or written, and results.csv is merged and
written atomically, never replaced by an empty or a partial table."""
import builtins
import errno
import io
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from cvae_tutorial import CVAE, ConfigError, TrainConfig, checkpoint_path, embedded_faces, train
from cvae_tutorial.checkpoints import load_checkpoint, seed_dir
from cvae_tutorial.cvae import run_config
from cvae_tutorial.evaluation import ClassifierConfig, evaluate_run, prepare_evaluation
from cvae_tutorial.evaluation.report import write_results
from cvae_tutorial.evaluation.results import read_results
from cvae_tutorial.evaluation.runs import (RunError, check_checkpoint, check_run, locate_run,
                                           run_exists)
from cvae_tutorial.training.run_lock import run_lock

MODELS = ["gaussian", "sigma"]
SEEDS = [0, 1]
EPOCHS = 2


def settings(seed, **changes):
    return TrainConfig(**{"epochs": EPOCHS, "batch_size": 32, "seed": seed, "device": "cpu",
                          **changes})


def train_into(folder, name, data, seed, **changes):
    model = CVAE(run_config(name, image_size=16, latent_dim=4, base_channels=8, flow_hidden=16,
                            num_attributes=data[0].num_attributes))
    train(model, *data, settings(seed, **changes), checkpoint_path(seed_dir(folder, seed), name),
          progress=False)


@pytest.fixture(scope="module")
def faces(tiny_faces):
    return tiny_faces


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, faces):
    """Seeds 0 and 1 of two models, each trained to its last epoch (4 steps an epoch)."""
    folder = tmp_path_factory.mktemp("finished_run")
    for seed in SEEDS:
        for name in MODELS:
            train_into(folder, name, faces, seed)
    return folder


@pytest.fixture
def run(finished_run, tmp_path):
    """A copy of the finished run to damage."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    """A tiny evaluation; the classifier and the real statistics cached once for the module."""
    return dict(feature_space="attribute", num_samples=16, iw_samples=2, likelihood_images=8,
                flip_samples=8, classifier_config=ClassifierConfig(image_size=16, epochs=1),
                progress=False, cache_dir=tmp_path_factory.mktemp("eval_cache"))


def written(folder):
    """Every file under ``folder`` with its size and modification time."""
    return {path: (path.stat().st_size, path.stat().st_mtime_ns)
            for path in Path(folder).rglob("*") if path.is_file()}


def refused(run, faces, options, error, match, **asked):
    """evaluate_run raises ``error`` and writes nothing into the run folder."""
    before = written(run)
    with pytest.raises(error, match=match):
        evaluate_run(run, *faces, **{"models": MODELS, "seeds": SEEDS, **options, **asked})
    assert written(run) == before


class Stop(Exception):
    pass


def stop_at(epoch, step):
    def on_batch(current_epoch, current_step, indices):
        if (current_epoch, current_step) == (epoch, step):
            raise Stop
    return on_batch


def interrupted(folder, name, data, seed, epoch, step, **changes):
    """Train into seed ``seed``'s folder and stop before step ``step`` of epoch ``epoch``."""
    model = CVAE(run_config(name, image_size=16, latent_dim=4, base_channels=8, flow_hidden=16))
    path = checkpoint_path(seed_dir(folder, seed), name)
    path.unlink()
    with pytest.raises(Stop):
        train(model, *data, settings(seed, **changes), path, progress=False,
              on_batch=stop_at(epoch, step))
    return path


# ----------------------------------------------------------------------------------------------
# The run as chapter 5 leaves it passes
# ----------------------------------------------------------------------------------------------
def test_a_finished_run_passes_every_check(finished_run, faces):
    located = locate_run(finished_run, MODELS, SEEDS)
    checked = check_run(located, *faces)
    assert [(c.seed, c.model) for c in checked] == [(0, "gaussian"), (0, "sigma"),
                                                    (1, "gaussian"), (1, "sigma")]
    assert located.missing == [] and located.left_out() == ""
    assert all(c.training["epochs"] == EPOCHS for c in checked)


# ----------------------------------------------------------------------------------------------
# A checkpoint that is not what its folder says
# ----------------------------------------------------------------------------------------------
def test_another_models_checkpoint_copied_into_a_folder_is_refused(run, faces, options):
    shutil.copyfile(checkpoint_path(seed_dir(run, 1), "gaussian"),
                    checkpoint_path(seed_dir(run, 1), "sigma"))
    refused(run, faces, options, RunError, r"seed1/sigma/checkpoint.pt holds a gaussian model, "
                                           r"not sigma: it was copied from another model's")


def test_a_seed_folder_holding_another_seeds_checkpoint_is_refused(run, faces, options):
    shutil.copyfile(checkpoint_path(seed_dir(run, 0), "sigma"),
                    checkpoint_path(seed_dir(run, 1), "sigma"))
    refused(run, faces, options, RunError, r"seed1/sigma/checkpoint.pt was trained with seed 0 "
                                           r"but sits in the folder of seed 1")


# ----------------------------------------------------------------------------------------------
# Training that is not finished, or not alike
# ----------------------------------------------------------------------------------------------
def test_a_seed_trained_for_fewer_epochs_than_the_others_is_refused(run, faces, options):
    checkpoint_path(seed_dir(run, 1), "sigma").unlink()
    train_into(run, "sigma", faces, 1, epochs=1)  # finished, but a shorter training
    refused(run, faces, options, RunError, r"seed1/sigma/checkpoint.pt and .*seed0/sigma/"
                                           r"checkpoint.pt differ in training settings "
                                           r"\(epochs 1 vs 2\)")


def test_a_training_stopped_after_an_epoch_is_refused(run, faces, options):
    interrupted(run, "sigma", faces, 1, epoch=1, step=0)
    refused(run, faces, options, RunError, r"seed1/sigma/checkpoint.pt is not trained to the "
                                           r"end \(stopped after 1 of its 2 epochs\)")


def test_a_training_stopped_mid_epoch_is_refused(run, faces, options):
    path = interrupted(run, "gaussian", faces, 0, epoch=0, step=2, checkpoint_every=1)
    assert load_checkpoint(path)["step_in_epoch"] == 2
    refused(run, faces, options, RunError, r"seed0/gaussian/checkpoint.pt is not trained to "
                                           r"the end \(stopped in epoch 1 of 2, after step 2\)")


def test_a_checkpoint_still_being_trained_is_refused(run, faces, options):
    path = checkpoint_path(seed_dir(run, 1), "gaussian")
    with run_lock(path):  # held as train() holds it for a whole run
        refused(run, faces, options, RunError, rf"{path} is still being trained by pid "
                                               rf"{os.getpid()} on host")
    # a lock left behind by a killed training (its note still there) is no training
    path.with_name("checkpoint.pt.lock.json").write_text('{"pid": 1, "host": "h", "since": 0}')
    assert check_checkpoint(path, "gaussian", 1).model == "gaussian"


# ----------------------------------------------------------------------------------------------
# Other data
# ----------------------------------------------------------------------------------------------
def test_a_model_trained_with_another_attribute_order_is_refused(run, faces, options):
    train_data, test_data = faces
    names = list(reversed(train_data.attribute_names))
    checkpoint_path(seed_dir(run, 1), "sigma").unlink()
    train_into(run, "sigma", (train_data.select_attributes(names),
                              test_data.select_attributes(names)), 1)
    refused(run, faces, options, RunError, rf"seed1/sigma/checkpoint.pt was trained with the "
                                           rf"attributes \['{names[0]}'.*but the data have "
                                           rf"\['{train_data.attribute_names[0]}'")


def test_a_model_trained_on_other_images_or_another_size_is_refused(run, faces):
    checkpoint_path(seed_dir(run, 1), "sigma").unlink()
    other = embedded_faces("train", 16, num_images=128, seed=5), faces[1]
    train_into(run, "sigma", other, 1)
    with pytest.raises(RunError, match=r"seed1/sigma/checkpoint.pt was trained on other images "
                                       r"than the first 128 of the data given"):
        check_run(locate_run(run, MODELS, SEEDS), *faces)
    # the first 128 images of a larger training set are the same images: accepted
    path = checkpoint_path(seed_dir(run, 0), "sigma")
    check_checkpoint(path, "sigma", 0, embedded_faces("train", 16, num_images=256))
    with pytest.raises(RunError, match=r"is a 16px model but the data are 32px; load the data "
                                       r"at image_size=16"):
        check_checkpoint(path, "sigma", 0, embedded_faces("train", 32, num_images=128))


def test_a_checkpoint_with_a_nan_decoder_sigma_is_refused(run, faces, options):
    path = checkpoint_path(seed_dir(run, 0), "sigma")
    state = load_checkpoint(path)
    state["model"]["decoder_log_sigma"].fill_(float("nan"))
    torch.save(state, path)
    refused(run, faces, options, RunError, r"seed0/sigma/checkpoint.pt has a non-finite decoder "
                                           r"σ \(log σ = nan\)")


# ----------------------------------------------------------------------------------------------
# What is asked for: duplicates, an empty list, a missing seed
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("asked, match", [
    (dict(seeds=[0, 0]), r"seeds lists 0 more than once \(\[0, 0\]\)"),
    (dict(models=["sigma", "gaussian", "sigma"]), r"models lists 'sigma' more than once"),
    (dict(seeds=[]), r"seeds is empty; list at least one")])
def test_duplicates_or_no_seeds_are_refused_before_anything_is_written(run, faces, options,
                                                                       asked, match):
    (run / "results.csv").write_text("model,distance\nsigma,1.0\n")  # an earlier table
    refused(run, faces, options, ConfigError, match, **asked)
    assert (run / "results.csv").read_text() == "model,distance\nsigma,1.0\n"


def test_no_rows_never_replace_a_results_table(tmp_path):
    (tmp_path / "results.csv").write_text("model,distance\nsigma,1.0\n")
    with pytest.raises(ConfigError, match="no results rows to write; .*results.csv is kept"):
        write_results([], tmp_path)
    assert (tmp_path / "results.csv").read_text() == "model,distance\nsigma,1.0\n"


def test_a_missing_seed_is_an_error_unless_allowed_then_said(run, faces, options):
    refused(run, faces, options, FileNotFoundError,
            r"has no checkpoint for seed 2 of gaussian, seed 2 of sigma \(no .*seed2/gaussian/"
            r"checkpoint.pt.*\); train them.*allow_missing=True", seeds=[0, 1, 2])
    with pytest.warns(RuntimeWarning, match=r"Left out, no checkpoint in .*: seed 2 of "
                                            r"gaussian, seed 2 of sigma"):
        rows = evaluate_run(run, *faces, models=MODELS, seeds=[0, 1, 2], allow_missing=True,
                            **options)
    assert [(row["seed"], row["model"]) for row in rows] == [
        (0, "gaussian"), (0, "sigma"), (1, "gaussian"), (1, "sigma")]
    assert "Left out, no checkpoint in" in (run / "results.md").read_text()


def test_stand_in_models_only_for_a_folder_without_any_checkpoint(run, tmp_path):
    assert not run_exists(tmp_path / "nothing") and run_exists(run)
    flat = tmp_path / "flat"
    shutil.copytree(seed_dir(run, 0) / "sigma", flat / "sigma")
    assert run_exists(flat)
    with pytest.raises(FileNotFoundError, match="seed2"):  # seeds 0, 1 exist: not "no run"
        locate_run(run, MODELS, [0, 1, 2])


# ----------------------------------------------------------------------------------------------
# Where the results go
# ----------------------------------------------------------------------------------------------
@contextmanager
def read_only(folder, monkeypatch):
    """Writes into ``folder`` itself fail as in a read-only folder: chmod, and for root (whom
    chmod does not stop) the calls that create or open files for writing refuse it."""
    folder = Path(folder)

    def inside(path):
        return Path(path).parent == folder

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    real_open, real_io_open = os.open, io.open

    def os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def io_open(path, mode="r", *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and inside(path) and set(mode) & set("wax+"):
            refuse(path)
        return real_io_open(path, mode, *args, **kwargs)

    folder.chmod(0o555)
    try:
        if os.geteuid() == 0:
            with monkeypatch.context() as patch:
                patch.setattr(os, "open", os_open)
                patch.setattr(io, "open", io_open)
                patch.setattr(builtins, "open", io_open)
                yield
        else:
            yield
    finally:
        folder.chmod(0o755)


def test_a_read_only_run_folder_is_one_line_naming_results_dir(run, faces, tmp_path,
                                                               monkeypatch):
    tiny = dict(feature_space="attribute", num_samples=16, iw_samples=2, likelihood_images=8,
                flip_samples=8, classifier_config=ClassifierConfig(image_size=16, epochs=1),
                progress=False)  # the caches go with the results by default
    before = written(run)
    with read_only(run, monkeypatch):
        with pytest.raises(PermissionError, match=rf"cannot write the results into {run} "
                                                  rf"\(Permission denied\); pass results_dir= a "
                                                  rf"writable folder"):
            evaluate_run(run, *faces, models=MODELS, seeds=SEEDS, **tiny)
        rows = evaluate_run(run, *faces, models=MODELS, seeds=SEEDS,
                            results_dir=tmp_path / "elsewhere", **tiny)
    assert written(run) == before
    table = read_results(tmp_path / "elsewhere" / "results.csv")
    assert [(r["seed"], r["model"]) for r in table] == [(r["seed"], r["model"]) for r in rows]
    assert (tmp_path / "elsewhere" / "eval_cache" / "attribute_classifier.pt").is_file()


def test_re_evaluating_one_model_keeps_the_other_rows(run, faces, options):
    first = evaluate_run(run, *faces, models=MODELS, seeds=SEEDS, **options)
    again = evaluate_run(run, *faces, models=["sigma"], seeds=SEEDS, **options)
    assert [(r["seed"], r["model"]) for r in again] == [(0, "sigma"), (1, "sigma")]
    table = read_results(run / "results.csv")
    assert [(r["seed"], r["model"]) for r in table] == [(r["seed"], r["model"]) for r in first]
    for kept, row in zip(table, first):  # the gaussian rows as they were, every column
        if row["model"] == "gaussian":
            assert kept.keys() == row.keys()
            for key, value in row.items():
                assert kept[key] == pytest.approx(value, nan_ok=True) \
                    if isinstance(value, float) else kept[key] == value, key
    assert "| gaussian | 2 |" in (run / "results.md").read_text()  # both seeds still averaged
    # a table of another protocol is not merged into: refused before the evaluation
    before = written(run)
    with pytest.raises(ConfigError, match=r"results.csv holds rows for gaussian from another "
                                          r"protocol .*pass results_dir= another folder"):
        evaluate_run(run, *faces, models=["sigma"], seeds=SEEDS, **{**options,
                                                                      "num_samples": 8})
    assert written(run) == before


# ----------------------------------------------------------------------------------------------
# Damaged caches
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "missing key"])
def test_a_damaged_reference_file_is_recomputed_with_a_warning(faces, tmp_path, damage):
    tiny = dict(feature_space="attribute", num_samples=16, batch_size=16, progress=False,
                classifier_config=ClassifierConfig(image_size=16, epochs=1),
                cache_dir=tmp_path)
    first = prepare_evaluation(*faces, **tiny)
    (path,) = tmp_path.glob("reference_*.npz")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        np.savez(path, mu=np.zeros(3))
    with pytest.warns(Warning, match=rf"reference file {path} is damaged"):
        again = prepare_evaluation(*faces, **tiny)
    np.testing.assert_allclose(again.reference, first.reference)
    np.testing.assert_allclose(again.floor, first.floor)
    for key in ("mu", "sigma"):
        np.testing.assert_allclose(again.real_joint[key], first.real_joint[key])
    with np.load(path) as stored:  # rewritten whole
        assert {"card", "reference", "floor"} <= set(stored.files)
