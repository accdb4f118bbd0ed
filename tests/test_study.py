"""The prior-ladder study: a doubled budget continues its own run, every budget is evaluated,
and the results carry a provenance that flags them once the code changes."""
import itertools
import json
import subprocess
import sys
import time

import pytest
import torch

from cvae_tutorial import ladder, study
from cvae_tutorial.checkpoints import checkpoint_path, load_checkpoint, seed_dir
from cvae_tutorial.training.run_lock import run_lock

ARGS = ["--models", "sigma_cond", "sigma_cflow", "--seeds", "0", "1", "--epochs", "1", "2",
        "--image-size", "16", "--latent-dim", "4", "--batch-size", "16", "--train-images",
        "64", "--test-images", "64", "--num-samples", "24", "--iw-samples", "2",
        "--likelihood-images", "4", "--classifier-epochs", "1", "--feature-space",
        "attribute", "--device", "cpu"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    argv = ["--out-dir", str(root / "runs"), "--results-dir", str(root / "results"), *ARGS,
            "--note", "trained as one process"]
    assert study.main(argv) == 0
    return root, argv


def test_the_doubled_budget_continues_the_first_run(measured):
    root, _ = measured
    for seed in (0, 1):
        short, long = (load_checkpoint(checkpoint_path(
            seed_dir(study.budget_dir(root / "runs", epochs), seed), "sigma_cflow"))
            for epochs in (1, 2))
        assert len(short["history"]) == 1 and len(long["history"]) == 2
        assert long["history"][0] == short["history"][0]  # the same first epoch, not a rerun
        assert any(not torch.equal(a, b) for a, b in zip(short["model"].values(),
                                                          long["model"].values()))


def test_every_budget_model_and_seed_has_a_row_and_the_provenance_is_today(measured):
    root, argv = measured
    rows, record, status = ladder.load_study(root / "results")
    assert sorted((r["epochs"], r["model"], r["seed"]) for r in rows) == sorted(
        (e, m, s) for e in (1, 2) for m in ("sigma_cond", "sigma_cflow") for s in (0, 1))
    assert record["command"] == "python -m cvae_tutorial.study " + " ".join(argv[:-2])
    assert record["notes"] == ["trained as one process"]
    assert record["training_torch_threads"] == [torch.get_num_threads()]
    assert record["code_digest"] == study.code_digest() and "matches" in status
    assert record["training_code_digests"] == [study.code_digest()]
    assert record["budgets"] == [1, 2] and record["training_seconds"] > 0
    assert all(key in record for key in ("commit", "machine", "date"))


def test_a_run_records_the_code_its_process_started_with(tmp_path, monkeypatch, tiny_faces):
    # a file of the package edited on disk while a long study trains changes nothing the
    # process runs (it imported its code at the start), so its records keep the start's digest
    digests = iter(["at the start"] + ["edited on disk since"] * 10)
    monkeypatch.setattr(study, "code_digest", lambda: next(digests))
    train_data, test_data = tiny_faces
    study.train_ladder(["sigma"], [0], [1, 2], train_data, test_data, tmp_path, image_size=16,
                       latent_dim=4, batch_size=32, lr=1e-3, device="cpu", progress=False)
    for epochs in (1, 2):
        path = checkpoint_path(seed_dir(study.budget_dir(tmp_path, epochs), 0), "sigma")
        record = json.loads(path.with_name(study.TRAINED_BY).read_text())
        assert record["epochs"] == epochs and record["code_digests"] == ["at the start"]


def test_runs_trained_in_two_processes_are_the_runs_trained_in_one(measured, tmp_path, capsys):
    root, _ = measured
    threads = torch.get_num_threads()
    torch.set_num_threads(2 * threads)  # shared out, each process gets the fixture's threads
    try:
        assert study.main(["--out-dir", str(tmp_path), "--results-dir", str(tmp_path / "r"),
                           *ARGS, "--jobs", "2", "--train-only"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "8/8" in capsys.readouterr().err  # one bar: 4 runs of 2 epochs, each counted
    for epochs, seed, name in itertools.product((1, 2), (0, 1), ("sigma_cond", "sigma_cflow")):
        one, two = (checkpoint_path(seed_dir(study.budget_dir(out, epochs), seed), name)
                    for out in (root / "runs", tmp_path))
        weights = load_checkpoint(one)["model"], load_checkpoint(two)["model"]
        assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
        record = json.loads(two.with_name(study.TRAINED_BY).read_text())
        assert record["epochs"] == epochs and record["torch_threads"] == [threads]


def test_an_error_in_one_process_stops_the_study_in_one_line(tmp_path, capsys):
    # this process trains one of the runs, so the study's process for it cannot
    held = checkpoint_path(seed_dir(study.budget_dir(tmp_path, 1), 1), "sigma_cflow")
    held.parent.mkdir(parents=True)
    with run_lock(held):
        assert study.main(["--out-dir", str(tmp_path), "--results-dir", str(tmp_path / "r"),
                           *ARGS, "--jobs", "2"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {held} is being trained by ")
    assert not (tmp_path / "r").exists()  # nothing evaluated


def test_a_stopped_study_stops_every_process_and_each_run_resumes(tmp_path):
    # SIGTERM (docker stop, Slurm) to a study of two processes: both runs end through their
    # cleanup, the study says so in one line, and nothing is left training or holding a lock
    argv = [*ARGS[ARGS.index("--image-size"):], "--models", "sigma", "sigma_cond", "--seeds",
            "0", "--epochs", "400", "--jobs", "2", "--out-dir", str(tmp_path),
            "--results-dir", str(tmp_path / "r")]
    study_process = subprocess.Popen([sys.executable, "-m", "cvae_tutorial.study", *argv],
                                     stderr=subprocess.PIPE, text=True)
    paths = [checkpoint_path(seed_dir(study.budget_dir(tmp_path, 400), 0), name)
             for name in ("sigma", "sigma_cond")]
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in paths) and time.monotonic() < deadline:
        time.sleep(0.2)  # until both runs have written a checkpoint
    study_process.terminate()
    errors = study_process.communicate(timeout=60)[1]  # a process left behind would hang here
    assert study_process.returncode == 130 and "Traceback" not in errors
    assert errors.strip().splitlines()[-1].startswith("stopped (terminated by SIGTERM); every "
                                                      f"checkpoint in {tmp_path} is whole")
    for path in paths:
        with run_lock(path):  # free: no process trains it any more
            assert 0 < len(load_checkpoint(path)["history"]) < 400


def test_results_from_other_code_are_flagged(measured, tmp_path):
    root, _ = measured
    results = tmp_path / "results"
    results.mkdir()
    for path in (root / "results").iterdir():
        (results / path.name).write_bytes(path.read_bytes())
    record = json.loads((results / study.PROVENANCE).read_text())
    for key, value in (("code_digest", "0" * 64), ("training_code_digests", ["1" * 64])):
        (results / study.PROVENANCE).write_text(json.dumps({**record, key: value}))
        _, _, status = ladder.load_study(results)
        assert status.startswith("the package's code has changed") and "rerun" in status


def test_the_digest_sees_a_training_module_but_not_the_benchmarks(tmp_path):
    package = tmp_path / "pkg"
    (package / "training").mkdir(parents=True)
    (package / "benchmarks").mkdir()
    (package / "training" / "loop.py").write_text("a = 1\n")
    (package / "benchmarks" / "fid.py").write_text("b = 1\n")
    before = study.code_digest(package)
    (package / "benchmarks" / "fid.py").write_text("b = 2\n")
    assert study.code_digest(package) == before
    (package / "training" / "loop.py").write_text("a = 2\n")
    assert study.code_digest(package) != before


def test_bad_study_arguments_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        study.main(["--out-dir", "x", "--results-dir", "y", "--epochs", "4", "2"])
    assert "--epochs must be increasing budgets" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study.main(["--out-dir", "x", "--results-dir", "y", "--seeds", "0", "0"])
    assert "each seed and model once" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study.main(["--out-dir", "x", "--results-dir", "y", "--models", "sigma_flw"])
    assert "unknown model 'sigma_flw'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study.main(["--out-dir", "x", "--results-dir", "y", "--jobs", "0"])
    assert "--epochs and --jobs must be at least 1" in capsys.readouterr().err
    with pytest.raises(Exception, match="no study results in .*provenance.json missing"):
        ladder.load_study(tmp_path)
