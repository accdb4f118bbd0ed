"""Data-parallel training (DDP) on CPU with gloo: disjoint shards, same weights, one checkpoint."""
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, embedded_faces, train
from cvae_tutorial.checkpoints import load_checkpoint
from cvae_tutorial.training.cli import main

CONFIG = CVAEConfig(model="sigma_flow", image_size=16, num_attributes=10, latent_dim=4,
                    base_channels=8, flow_hidden=16)
NUM_IMAGES, BATCH, EPOCHS = 256, 32, 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_one_rank(rank, world_size, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        train_data = embedded_faces("train", 16, num_images=NUM_IMAGES)
        test_data = embedded_faces("test", 16, num_images=64)
        torch.manual_seed(0)
        model = CVAE(CONFIG)
        seen = []
        history = train(model, train_data, test_data,
                        TrainConfig(epochs=EPOCHS, batch_size=BATCH, device="cpu",
                                    checkpoint_every=3),
                        out_dir / "run" / "checkpoint.pt", progress=False,
                        on_batch=lambda epoch, step, indices: seen.append((epoch,
                                                                           indices.tolist())))
        torch.save({"model": model.state_dict(), "seen": seen, "history": history},
                   out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_train_disjoint_shards_in_lockstep(tmp_path):
    mp.spawn(train_one_rank, args=(2, free_port(), tmp_path), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]

    for epoch in range(EPOCHS):
        shards = [{i for e, batch in rank["seen"] if e == epoch for i in batch} for rank in ranks]
        assert len(shards[0]) == len(shards[1]) == NUM_IMAGES // 2
        assert not shards[0] & shards[1]  # each image trained on by one process only
        assert shards[0] | shards[1] == set(range(NUM_IMAGES))
    assert [e for e, _ in ranks[0]["seen"]] == [0] * 4 + [1] * 4  # 128 images / 32 per rank

    for name, weights in ranks[0]["model"].items():
        assert torch.equal(weights, ranks[1]["model"][name]), name  # DDP kept them in lockstep
    assert ranks[0]["history"] == ranks[1]["history"]  # metrics reduced over both ranks

    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [  # rank 0 alone writes
        "checkpoint.pt", "checkpoint.pt.lock", "checkpoint.pt.prev"]
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["epoch"] == EPOCHS and len(state["rng_ranks"]) == 2
    for name, weights in ranks[0]["model"].items():
        assert torch.equal(weights, state["model"][name]), name


def test_torchrun_command_line_writes_one_checkpoint(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={free_port()}", "-m", "cvae_tutorial.training",
               "--dataset", "embedded", "--image-size", "16", "--num-images", "128",
               "--epochs", "1", "--batch-size", "32", "--latent-dim", "4",
               "--base-channels", "8", "--out-dir", str(tmp_path / "runs")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 epochs on 2 process(es)" in result.stdout
    run = tmp_path / "runs" / "sigma_flow"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "checkpoint.pt.lock"]
    assert len(load_checkpoint(run / "checkpoint.pt")["history"]) == 1


def test_command_line_errors_are_clear(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["--dataset", "celeba", "--out-dir", str(tmp_path)])
    assert "--dataset celeba needs --data-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--autocast", "fp8", "--out-dir", str(tmp_path)])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="image_size=40 is not supported"):
        main(["--image-size", "40", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--epochs", "0", "--out-dir", str(tmp_path)])
    assert "TrainConfig.epochs must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("choice, sees_labels, run", [("paper", False, "sigma"),
                                                      ("x", False, "sigma"),
                                                      ("xy", True, "sigma_qxy")])
def test_command_line_encoder_choice_reaches_the_checkpoint(tmp_path, choice, sees_labels,
                                                            run):
    from cvae_tutorial import checkpoint_path, load_model

    main(["--model", "sigma", "--encoder", choice, "--image-size", "16", "--latent-dim", "4",
          "--base-channels", "8", "--epochs", "1", "--batch-size", "32", "--num-images", "64",
          "--device", "cpu", "--out-dir", str(tmp_path)])
    model = load_model(checkpoint_path(tmp_path, run))  # the folder names the encoder
    assert model.config.encoder_sees_labels is sees_labels
