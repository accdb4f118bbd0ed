"""The training loop (training/loop.py): its settings and data checked, a fresh run a function of
its seed, fine-tuning, and the decoder σ* a finished run keeps."""
import math

import pytest
import torch

from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, load_model, train
from cvae_tutorial.config import ConfigError

CONFIG = CVAEConfig(model="sigma_flow", image_size=16, num_attributes=10, latent_dim=4,
                    base_channels=8, flow_hidden=16)


def test_bad_train_config_values():
    with pytest.raises(ConfigError, match="TrainConfig.epochs must be int, got str"):
        TrainConfig(epochs="3")
    with pytest.raises(ConfigError, match="lr must be positive"):
        TrainConfig(lr=0.0)
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        TrainConfig(device="gpu")


def test_data_that_does_not_fit_the_model(faces16):
    train_data, test_data = faces16
    model = CVAE(CVAEConfig(image_size=16, num_attributes=3, latent_dim=4))
    with pytest.raises(ConfigError, match="10 attributes at 16px but the model expects 3"):
        train(model, train_data, test_data, TrainConfig(epochs=1, device="cpu"), progress=False)


def test_a_fresh_run_is_a_function_of_its_seed_not_of_the_global_rng(faces16):
    # Models built after different draws from torch's global generator end identical: train()
    # initialises a fresh run from config.seed (a model built without it would start elsewhere).
    train_data, test_data = faces16
    config = TrainConfig(epochs=1, batch_size=64, device="cpu", seed=7)
    finals = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        model = CVAE(CONFIG)
        history = train(model, train_data, test_data, config, progress=False)
        finals.append((model.state_dict(), history[0]["test_neg_elbo"]))
    (first, first_elbo), (second, second_elbo) = finals
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert first_elbo == second_elbo


def test_initialize_false_keeps_the_models_weights_for_fine_tuning(faces16):
    train_data, test_data = faces16
    model = CVAE(CONFIG).initialize(5)
    with torch.no_grad():
        model.decoder.head[0].bias.fill_(0.25)  # a mark that re-initialisation would erase
    config = TrainConfig(epochs=1, batch_size=64, device="cpu", lr=1e-12)
    train(model, train_data, test_data, config, progress=False, initialize=False)
    assert torch.allclose(model.decoder.head[0].bias, torch.full_like(model.decoder.head[0].bias,
                                                                      0.25), atol=1e-6)


def test_decoder_sigma_is_the_training_set_mse_with_the_final_weights(faces16, tmp_path):
    from cvae_tutorial.training.evaluate import training_set_mse

    train_data, test_data = faces16
    model = CVAE(CVAEConfig(model="sigma", image_size=16, num_attributes=10, latent_dim=4,
                            base_channels=8))
    config = TrainConfig(epochs=2, batch_size=32, device="cpu", sigma_images=64)
    history = train(model, train_data, test_data, config, tmp_path / "s.pt", progress=False)
    # the history: each epoch's mean batch MSE (the curves)
    for row in history:
        assert row["log_sigma"] == pytest.approx(0.5 * math.log(row["train_mse"]))
    # the model: the training-set MSE with the final weights, not the moving batches' mean
    sigma_squared = model.decoder_log_sigma.exp().item() ** 2
    final_mse = training_set_mse(model, train_data, 64, seed=config.seed)
    assert sigma_squared == pytest.approx(final_mse, rel=1e-5)
    assert sigma_squared != pytest.approx(history[-1]["train_mse"], rel=1e-3)
    # the first 64 images, not the whole set
    assert final_mse != pytest.approx(training_set_mse(model, train_data, len(train_data)),
                                      rel=1e-4)
    # the checkpoint keeps it: a finished run loads with the final σ
    loaded = load_model(tmp_path / "s.pt")
    assert loaded.decoder_log_sigma.item() == model.decoder_log_sigma.item()
