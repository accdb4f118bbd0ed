"""Checkpoints (checkpoints.py): atomic, weights-only, resumable, checked against the model asked
for, and carrying the whole model configuration."""
import pytest
import torch

from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, load_model, train
from cvae_tutorial.checkpoints import (CHECKPOINT_FORMAT, CheckpointError,
                                       load_checkpoint)

CONFIG = CVAEConfig(model="sigma_flow", image_size=16, num_attributes=10, latent_dim=4,
                    base_channels=8, flow_hidden=16)


def _sigma_model(sees_labels):
    torch.manual_seed(0)
    return CVAE(CVAEConfig(model="sigma", image_size=16, num_attributes=3, latent_dim=4,
                           base_channels=8, encoder_sees_labels=sees_labels))


def test_checkpoint_round_trip_and_resume_is_bit_identical(faces16, tmp_path):
    train_data, test_data = faces16
    config = TrainConfig(epochs=3, batch_size=32, device="cpu", checkpoint_every=3)
    torch.manual_seed(0)
    straight = CVAE(CONFIG)
    history = train(straight, train_data, test_data, config, tmp_path / "a.pt", progress=False)

    torch.manual_seed(0)
    first = CVAE(CONFIG)
    train(first, train_data, test_data, TrainConfig(epochs=1, batch_size=32, device="cpu",
                                                    checkpoint_every=3),
          tmp_path / "b.pt", progress=False)
    torch.manual_seed(123)  # resuming must not depend on the state of the process
    resumed = CVAE(CONFIG)
    resumed_history = train(resumed, train_data, test_data, config, tmp_path / "b.pt",
                            progress=False)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    def timeless(rows):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    assert timeless(history) == timeless(resumed_history)

    loaded = load_model(tmp_path / "a.pt")
    for a, b in zip(straight.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "a.pt.prev").exists() and not list(tmp_path.glob("*.tmp"))


def test_checkpoint_for_another_model_is_a_clear_error(faces16, tmp_path):
    train_data, test_data = faces16
    train(CVAE(CONFIG), train_data, test_data, TrainConfig(epochs=1, batch_size=64, device="cpu"),
          tmp_path / "c.pt", progress=False)
    other = CVAE(CVAEConfig(model="sigma", image_size=16, num_attributes=10, latent_dim=4,
                            base_channels=8, flow_hidden=16))
    with pytest.raises(CheckpointError, match="model: checkpoint 'sigma_flow' vs asked 'sigma'"):
        train(other, train_data, test_data, TrainConfig(epochs=2, device="cpu"),
              tmp_path / "c.pt", progress=False)


def test_truncated_checkpoint_is_detected(tmp_path, faces16):
    train_data, test_data = faces16
    path = tmp_path / "d.pt"
    train(CVAE(CONFIG), train_data, test_data, TrainConfig(epochs=2, batch_size=64, device="cpu"),
          path, progress=False)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt.*d.pt.prev"):
        load_checkpoint(path)
    load_checkpoint(tmp_path / "d.pt.prev")  # the previous good one is intact


def test_encoder_option_round_trips_through_a_checkpoint(tmp_path):
    for sees_labels in (False, True):
        model = _sigma_model(sees_labels)
        path = tmp_path / f"{sees_labels}.pt"
        torch.save({"format": CHECKPOINT_FORMAT, "model_config": model.config.to_dict(),
                    "model": model.state_dict()}, path)
        loaded = load_model(path)
        assert loaded.config.encoder_sees_labels is sees_labels
        x = torch.rand(2, 3, 16, 16)
        torch.testing.assert_close(loaded.encode(x, torch.ones(2, 3)),
                                   model.encode(x, torch.ones(2, 3)))


