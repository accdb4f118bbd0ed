"""Chapter 5 under papermill: overridden parameters are used, checkpoints land where they were
told."""
from pathlib import Path

import pytest
import torch

papermill = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "05_celeba_training.ipynb"
QUICK = dict(image_size=16, latent_dim=4, batch_size=32, train_images=128, test_images=64)


def run_chapter(tmp_path, **parameters):
    return papermill.execute_notebook(str(CHAPTER), str(tmp_path / "05_out.ipynb"),
                                      parameters=parameters, cwd=str(ROOT / "book"),
                                      progress_bar=False, kernel_name="python3")


def test_overridden_run_writes_its_checkpoints_in_out_dir_and_evaluates_them(tmp_path):
    out_dir = tmp_path / "elsewhere" / "run"
    run_chapter(tmp_path, **QUICK, epochs=1, seeds=[7, 8], models=["sigma", "sigma_flow"],
                out_dir=str(out_dir), evaluate=True, eval_samples=32, iw_samples=4)
    for seed in (7, 8):
        for model in ("sigma", "sigma_flow"):
            path = out_dir / f"seed{seed}" / model / "checkpoint.pt"
            assert path.exists(), f"no checkpoint at {path}"
            state = torch.load(path, weights_only=True)
            assert state["train_config"]["seed"] == seed
            assert state["train_config"]["epochs"] == 1
            assert state["model_config"]["model"] == model
            assert state["model_config"]["image_size"] == 16 and len(state["history"]) == 1
    assert not (out_dir / "seed7" / "gaussian").exists(), "a model not asked for was trained"
    table = (out_dir / "results.md").read_text()  # beside the checkpoints, every seed
    assert "| sigma_flow | 2 |" in table  # two seeds, their mean ± s.e.
    assert " ± " in table and (out_dir / "results.csv").exists()


# ---------------------------------------------------------------------------------------------
# Bad papermill parameters for the training chapter: the cell fails with the package's message
# ---------------------------------------------------------------------------------------------
# One failure per checking cell (the types; the lists, settings and models): the messages of
# every other bad value are tested where they are raised (test_parameters.py, test_demos.py).
@pytest.mark.parametrize("parameters, message", [
    (dict(epochs="three"), "ConfigError: epochs must be an int, got the string 'three'; with "
                           "papermill pass -p epochs 3"),
    (dict(models=["sigma", "flow"]), "ConfigError: unknown model 'flow'; use "
                                     "<likelihood>[_<prior>] with a likelihood in gaussian"),
], ids=["epochs-as-text", "unknown-model"])
def test_bad_papermill_parameters_fail_with_the_package_message(tmp_path, parameters, message):
    out_dir = tmp_path / "run"
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        run_chapter(tmp_path, **{**QUICK, "epochs": 1, "models": ["sigma"], **parameters},
                    out_dir=str(out_dir))
    assert message in str(failure.value)
    assert not out_dir.exists()  # failed in the validation cell, before any data or training


def test_unwritable_out_dir_from_papermill(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the run folder should go")
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        run_chapter(tmp_path, **QUICK, epochs=1, models=["sigma"], out_dir=str(blocker / "05"))
    assert "NotADirectoryError: cannot write to the output folder" in str(failure.value)
    assert "runs is a file, not a folder; choose another out_dir" in str(failure.value)


def test_more_eval_samples_than_test_images_fails_before_training(tmp_path):
    out_dir = tmp_path / "run"
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        run_chapter(tmp_path, **QUICK, epochs=1, models=["sigma"], out_dir=str(out_dir),
                    evaluate=True, eval_samples=100)
    assert "ConfigError: eval_samples=100 exceeds the 64 test images" in str(failure.value)
    assert not (out_dir / "sigma" / "checkpoint.pt").exists()


def test_chapter5_trains_on_your_own_csv_folder(tmp_path):
    from test_folder_data import attribute_folder

    root = attribute_folder(tmp_path / "mine", count=60)
    out_dir = tmp_path / "run"
    run_chapter(tmp_path, **QUICK, epochs=1, seeds=[0], models=["sigma_flow"],
                dataset="folder", data_dir=str(root), cache_dir=str(tmp_path / "cache"),
                out_dir=str(out_dir))
    state = torch.load(out_dir / "seed0" / "sigma_flow" / "checkpoint.pt", weights_only=True)
    assert state["data"]["attributes"] == ["bright", "wide"] and state["data"]["count"] == 54
