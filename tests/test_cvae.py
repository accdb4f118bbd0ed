"""The CVAEs of cvae.py (the paper's three, mse_kl, and any likelihood with any prior): training
lowers the loss, sampling behaves, each prior is the density it says, inputs are checked, and a
model's initial weights are a function of its seed."""
import math

import pytest
import torch

from cvae_tutorial import (CVAE, MODEL_NAMES, PAPER_MODEL_NAMES, CVAEConfig, ConfigError,
                           TrainConfig, train)
from cvae_tutorial.cvae import (LIKELIHOODS, PRIORS, model_axes, model_title, run_config,
                                run_name)
from cvae_tutorial.data import to_float
from cvae_tutorial.study import RUNGS


@pytest.mark.slow
@pytest.mark.parametrize("model_name", PAPER_MODEL_NAMES)  # mse_kl: test_mse_kl_trains_a_step
def test_a_few_hundred_steps_lower_the_loss(model_name, faces32):
    train_data, test_data = faces32
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(model=model_name, image_size=32, num_attributes=10, latent_dim=16))
    x, y = to_float(test_data.images[:256]), test_data.labels[:256]
    with torch.no_grad():
        torch.manual_seed(1)
        before = model.loss_terms(x, y)["loss"].item()
    history = train(model, train_data, test_data,
                    TrainConfig(epochs=13, batch_size=64, lr=2e-3, device="cpu"),  # 208 steps
                    progress=False)
    with torch.no_grad():
        torch.manual_seed(1)
        after = model.loss_terms(x, y)["loss"].item()
    # "clearly": the loss falls by a large margin (gaussian is ~P/2 log 2π + MSE/2-dominated)
    drop = before - after
    assert drop > (10 if model_name == "gaussian" else 500), (before, after)
    assert history[-1]["test_neg_elbo"] < history[0]["test_neg_elbo"]
    if model.learns_sigma:
        assert history[-1]["log_sigma"] < history[0]["log_sigma"] < 0
    # the trained decoder reads the labels: toggling Smiling changes the mouth
    smiling = test_data.labels[:64].clone()
    smiling[:, train_data.attribute_names.index("Smiling")] = 1
    neutral = smiling.clone()
    neutral[:, train_data.attribute_names.index("Smiling")] = 0
    a = model.sample(smiling, generator=torch.Generator().manual_seed(0))
    b = model.sample(neutral, generator=torch.Generator().manual_seed(0))
    assert (a - b).abs().mean() > 1e-3


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("image_size,num_attributes", [(16, 1), (32, 40), (48, 3)])
def test_any_size_divisible_by_16_and_any_number_of_attributes(model_name, image_size,
                                                             num_attributes):
    model = CVAE(CVAEConfig(model=model_name, image_size=image_size,
                            num_attributes=num_attributes, latent_dim=4, base_channels=8))
    x = torch.rand(3, 3, image_size, image_size)
    y = torch.randint(0, 2, (3, num_attributes)).float()
    terms = model.loss_terms(x, y)
    assert torch.isfinite(terms["loss"])
    terms["loss"].backward()
    assert model.reconstruct(x, y).shape == x.shape
    samples = model.sample(y)
    assert samples.shape == x.shape
    assert samples.min() >= 0 and samples.max() <= 1


def test_different_attributes_give_different_samples():
    from test_flows import randomised
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(model="sigma_flow", image_size=32, num_attributes=10, latent_dim=8))
    randomised(model.prior_encoder.head, scale=0.3)  # make p(z|y) depend on y
    y0, y1 = torch.zeros(4, 10), torch.ones(4, 10)
    a = model.sample(y0, generator=torch.Generator().manual_seed(3))
    b = model.sample(y1, generator=torch.Generator().manual_seed(3))
    c = model.sample(y0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, c)  # same noise, same labels: same images
    assert (a - b).abs().max() > 1e-3


def test_flow_sampler_inverts_the_flow_and_the_paper_shortcut_does_not():
    from test_flows import randomised
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(model="sigma_flow", image_size=16, num_attributes=3, latent_dim=4))
    randomised(model.flow, scale=0.1)
    model.double()
    y = torch.randint(0, 2, (512, 3)).double()
    z = model.sample_latents(y, generator=torch.Generator().manual_seed(0))
    shortcut = model.sample_latents(y, paper_shortcut=True,
                                    generator=torch.Generator().manual_seed(0))
    # f(z) is the base sample mu_p + sigma_p * eps, which the shortcut returns directly
    torch.testing.assert_close(model.flow(z)[0], shortcut)
    assert (z - shortcut).abs().mean() > 0.05


def test_gaussian_and_sigma_priors_ignore_the_labels():
    model = CVAE(CVAEConfig(model="sigma", image_size=16, num_attributes=3, latent_dim=4))
    z = torch.randn(5, 4)
    torch.testing.assert_close(model.prior_log_prob(z, torch.zeros(5, 3)),
                               model.prior_log_prob(z, torch.ones(5, 3)))


def test_bad_model_inputs_are_clear_errors():
    with pytest.raises(ConfigError, match=r"unknown model 'flow'; use <likelihood>\[_<prior>\]"
                                          r" with a likelihood in gaussian, sigma, mse_kl"):
        CVAEConfig(model="flow")
    with pytest.raises(ConfigError, match="latent_dim must be int, got str"):
        CVAEConfig(latent_dim="32")
    with pytest.raises(ValueError, match="multiple of 16"):
        CVAEConfig(image_size=40)
    model = CVAE(CVAEConfig(image_size=16, num_attributes=3, latent_dim=4))
    with pytest.raises(ValueError, match=r"shape \[batch, 3\]"):
        model.sample(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"images x must have shape \[batch, 3, 16, 16\]"):
        model.loss_terms(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3))
    with pytest.raises(TypeError, match="float in"):
        model.loss_terms(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.zeros(2, 3))


def _small(model="sigma_flow"):
    torch.manual_seed(0)
    return CVAE(CVAEConfig(model=model, image_size=16, num_attributes=2, latent_dim=4,
                           base_channels=8, flow_hidden=16))


@pytest.mark.parametrize("value", [5.0, 1e30, -0.5])
def test_sample_rejects_labels_outside_0_1(value):
    model = _small()
    with pytest.raises(ValueError, match=r"attributes y must be in \[0, 1\]"):
        model.sample(torch.tensor([[1.0, value]]))
    assert model.sample(torch.tensor([[0.0, 0.5]])).shape == (1, 3, 16, 16)  # between: fine


def test_loss_terms_rejects_images_outside_0_1():
    model = _small()
    x, y = torch.rand(2, 3, 16, 16), torch.ones(2, 2)
    with pytest.raises(ValueError, match=r"images x must be in \[0, 1\], got values in \[0\.\d+, "
                                         r"25\d.*to_float"):
        model.loss_terms(x * 255, y)
    assert torch.isfinite(model.loss_terms(x, y)["loss"])


def test_decode_with_the_wrong_latent_width_names_it():
    model = _small()
    with pytest.raises(ValueError, match=r"latents z must have shape \[batch, 4\].*got \(2, 7\)"):
        model.decode(torch.zeros(2, 7), torch.ones(2, 2))


def test_a_model_with_nan_samples_is_an_error_naming_it():
    from cvae_tutorial.evaluation.draws import NonFiniteSamplesError, base_noise, sample_images
    model = _small("gaussian").eval()
    with torch.no_grad():
        model.decoder.head[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteSamplesError, match=r"model gaussian produced non-finite .* in "
                                                    r"4 of 4 samples.*retrain"):
        sample_images(model, torch.ones(4, 2), base_noise(4, model.config.latent_dim, 0))
def test_flow_prior_depends_on_the_labels_after_a_few_steps():
    # the prior encoder starts at N(0, I) for every y; a few steps of training must make
    # p(z|y) differ between label vectors, or the prior is not conditional at all
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(model="sigma_flow", image_size=16, num_attributes=3, latent_dim=4,
                            base_channels=8, flow_hidden=16))
    x, y = torch.rand(32, 3, 16, 16), torch.randint(0, 2, (32, 3)).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        model.loss_terms(x, y)["loss"].backward()
        optimizer.step()
    y0, y1 = torch.zeros(5, 3), torch.tensor([[1.0, 0, 1]]).expand(5, 3)
    z = torch.randn(5, 4)
    mu0, log_sigma0 = model.prior_params(y0)
    mu1, log_sigma1 = model.prior_params(y1)
    assert (mu0 - mu1).abs().max() > 1e-3 or (log_sigma0 - log_sigma1).abs().max() > 1e-3
    assert (model.prior_log_prob(z, y0) - model.prior_log_prob(z, y1)).abs().max() > 1e-3
    generator = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert (model.sample_latents(y0, generator=generator())
            - model.sample_latents(y1, generator=generator())).abs().max() > 1e-3


def _encoder_outputs(sees_labels):
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(model="sigma", image_size=16, num_attributes=3, latent_dim=4,
                            base_channels=8, encoder_sees_labels=sees_labels))
    x = torch.rand(6, 3, 16, 16)
    return model, model.encode(x, torch.zeros(6, 3)), model.encode(x, torch.ones(6, 3))


def test_encoder_without_labels_is_q_z_given_x_and_with_them_q_z_given_x_y():
    _, (mu0, log_sigma0), (mu1, log_sigma1) = _encoder_outputs(sees_labels=False)
    torch.testing.assert_close(mu0, mu1, rtol=0, atol=0)
    torch.testing.assert_close(log_sigma0, log_sigma1, rtol=0, atol=0)
    model, (mu0, _), (mu1, _) = _encoder_outputs(sees_labels=True)
    assert (mu0 - mu1).abs().max() > 1e-4
    # the default is the paper's reading: q(z|x) for its non-flow models, q(z|x,y) otherwise
    assert [CVAEConfig(model=name).encoder_sees_labels for name in MODEL_NAMES] == [
        name not in ("gaussian", "sigma") for name in MODEL_NAMES]


def test_initialize_depends_on_the_seed_and_leaves_the_global_rng_alone():
    a, b, c = _small(), _small(), _small()
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    for model, seed in ((a, 3), (b, 3), (c, 4)):
        model.initialize(seed)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's random stream is undisturbed
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name
    assert not torch.equal(a.encoder.head.weight, c.encoder.head.weight)


def test_mse_kl_trains_on_the_recipes_loss_and_evaluates_at_sigma_star(faces16):
    from torch.nn import functional as F

    train_data, test_data = faces16
    torch.manual_seed(0)
    config = CVAEConfig(model="mse_kl", image_size=16, num_attributes=10, latent_dim=4,
                        base_channels=8)
    model = CVAE(config)
    assert not model.has_flow_prior and config.kl_weight == 0.00025
    x, y = to_float(train_data.images[:32]), train_data.labels[:32]
    torch.manual_seed(1)
    terms = model.loss_terms(x, y)
    torch.manual_seed(1)  # the same z: rebuild the recipe's loss from the model's own outputs
    mu, log_sigma = model.encode(x, y)
    x_hat = model.decode(mu + log_sigma.exp() * torch.randn_like(mu), y)
    log_var = 2 * log_sigma
    kld = torch.mean(-0.5 * torch.sum(1 + log_var - mu ** 2 - log_var.exp(), dim=1))
    torch.testing.assert_close(terms["loss"], F.mse_loss(x_hat, x) + 0.00025 * kld)
    before = [p.detach().clone() for p in model.parameters()]
    train(model, train_data, test_data,
          TrainConfig(epochs=3, batch_size=64, lr=3e-3, device="cpu"), progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    torch.manual_seed(1)
    with torch.no_grad():  # the recipe's loss (MSE scale) fell on the same batch and noise
        assert model.loss_terms(x, y)["loss"] < 0.9 * terms["loss"]
    # evaluated with the training-set σ* (it has no σ of its own), in nats like the others
    assert model.decoder_log_sigma.item() < 0
    from cvae_tutorial.training.evaluate import training_set_mse
    assert math.exp(2 * model.decoder_log_sigma.item()) == pytest.approx(
        training_set_mse(model, train_data), rel=1e-5)
    with torch.no_grad():
        evaluated = model.loss_terms(x, y, fixed_sigma=True)
    torch.testing.assert_close(evaluated["loss"], evaluated["recon"] + evaluated["kl"])
    assert abs(evaluated["loss"]) > 10  # nats per image, not a per-pixel MSE


def test_the_decoder_means_are_unbounded_and_the_likelihood_is_the_gaussian_density():
    """Means outside [0, 1] reach the loss unclamped, and the reconstruction term is the
    Gaussian density on the real line at those means (σ = 1 for ``gaussian``, σ* for ``sigma``).
    A sigmoid or a clamp in front of the loss would bring the means back into [0, 1]."""
    from torch.distributions import Normal

    for name, mean in (("gaussian", 1.7), ("sigma", -0.3)):
        model = CVAE(CVAEConfig(model=name, image_size=16, num_attributes=3, latent_dim=4,
                                base_channels=8))
        last = model.decoder.deconvs[-1]
        torch.nn.init.zeros_(last.weight)
        model.decoder.start_at(torch.full((3,), mean))  # every mean is `mean`, whatever z
        x, y = torch.rand(5, 3, 16, 16), torch.ones(5, 3)
        torch.testing.assert_close(model.decode(torch.randn(5, 4), y),
                                   torch.full((5, 3, 16, 16), mean))
        terms = model.loss_terms(x, y)
        torch.testing.assert_close(terms["mse"], ((x - mean) ** 2).mean())
        sigma = terms["log_sigma"].exp()
        if name == "sigma":  # σ*² is the batch MSE
            torch.testing.assert_close(sigma ** 2, ((x - mean) ** 2).mean(), rtol=1e-4, atol=0)
        density = Normal(torch.tensor(mean), sigma).log_prob(x).flatten(1).sum(1)
        torch.testing.assert_close(terms["recon"], -density.mean())


# ---------------------------------------------------------------------------------------------
# Every likelihood with every prior
# ---------------------------------------------------------------------------------------------
ALL_MODELS = [likelihood + ("_" + prior if prior else "") for likelihood in LIKELIHOODS
              for prior in PRIORS]


def test_a_model_name_is_its_likelihood_and_prior_and_a_run_name_adds_the_encoder():
    assert len(ALL_MODELS) == 12
    assert [model_axes(name) for name in ("sigma", "sigma_cond", "sigma_flow", "gaussian_cflow",
                                         "mse_kl", "mse_kl_flow")] == [
        ("sigma", "standard"), ("sigma", "conditional"), ("sigma", "flow"),
        ("gaussian", "conditional_flow"), ("mse_kl", "standard"), ("mse_kl", "flow")]
    for name in RUNGS:  # the ladder's runs round-trip through their names
        assert run_name(run_config(name)) == name
    config = run_config("sigma_flow_qx")
    assert (config.model, config.prior, config.encoder_sees_labels) == ("sigma_flow", "flow",
                                                                        False)
    assert run_config("sigma_cond").encoder_sees_labels  # the flow model with f = id
    assert model_title("sigma_cflow") == "σ-CVAE, q(z|x,y), conditional Real NVP prior"
    for bad in ("sigma_", "sigmaflow", "sigma_flow_flow", "flow_sigma", "sigma_qxy_flow"):
        with pytest.raises(ConfigError, match="unknown model"):
            run_config(bad)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_combination_trains_saves_samples_and_edits(name, tmp_path):
    from cvae_tutorial.checkpoints import load_model
    from cvae_tutorial.editing import edit, edited_labels
    model = CVAE(CVAEConfig(model=name, image_size=16, num_attributes=3, latent_dim=4,
                            base_channels=8, flow_hidden=8, prior_channels=4))
    assert hasattr(model, "prior_encoder") == (model.config.prior != "standard")
    assert hasattr(model, "flow") == model.has_flow_prior
    x, y = torch.rand(4, 3, 16, 16), torch.randint(0, 2, (4, 3)).float()
    terms = model.loss_terms(x, y)
    terms["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    path = tmp_path / "checkpoint.pt"
    data = embedded_small()
    train(model, data, data, TrainConfig(epochs=1, batch_size=8, device="cpu"), path,
          progress=False)
    loaded = load_model(path)
    assert loaded.config == model.config
    noise = torch.randn(4, 4)
    torch.testing.assert_close(loaded.sample(y, noise=noise), model.sample(y, noise=noise))
    assert edit(loaded, x, y, edited_labels(y, 0)).shape == x.shape


def embedded_small():
    from cvae_tutorial import embedded_faces
    return embedded_faces("train", 16, num_images=16, attributes=("Male", "Smiling",
                                                                  "Eyeglasses"))


def _randomised_prior(name, seed=0):
    from test_flows import randomised
    model = CVAE(CVAEConfig(model=name, image_size=16, num_attributes=3, latent_dim=4,
                            base_channels=8, flow_hidden=8)).double()
    if model.config.prior != "standard":
        randomised(model.prior_encoder.head, seed, scale=0.3)
    if model.has_flow_prior:
        randomised(model.flow, seed + 1, scale=0.2)
    return model


@pytest.mark.parametrize("name", ["sigma", "sigma_cond", "sigma_flow", "sigma_cflow"])
def test_each_prior_samples_what_its_density_says_and_the_kl_is_its_expectation(name):
    # KL(q || p) = E_q[log q − log p]: the model's KL (closed form for Gaussian priors, one
    # Monte Carlo draw for flows) must average to the same value over many draws of z
    model = _randomised_prior(name)
    generator = torch.Generator().manual_seed(0)
    y = torch.tensor([[1.0, 0.0, 1.0]]).expand(20000, -1)
    mu_q = torch.full((20000, 4), 0.3, dtype=torch.float64)
    log_sigma_q = torch.full((20000, 4), -0.5, dtype=torch.float64)
    z = mu_q + torch.exp(log_sigma_q) * torch.randn(mu_q.shape, generator=generator,
                                                     dtype=torch.float64)
    y = y.double()
    kl = model.kl(z, mu_q, log_sigma_q, y)
    from cvae_tutorial.losses import gaussian_log_prob
    expected = (gaussian_log_prob(z, mu_q, log_sigma_q) - model.prior_log_prob(z, y))
    assert abs(kl.mean() - expected.mean()) < 4 * expected.std() / 20000 ** 0.5
    # from_base inverts to_base, and the samples' base noise is the ε they were drawn with
    eps = torch.randn(20000, 4, generator=generator, dtype=torch.float64)
    samples = model.sample_latents(y, noise=eps)
    torch.testing.assert_close(model.to_base(samples, y), eps, atol=1e-6, rtol=1e-6)


def test_only_the_conditional_priors_depend_on_y_and_cflow_also_through_its_couplings():
    z = torch.randn(6, 4, dtype=torch.float64)
    y0, y1 = torch.zeros(6, 3, dtype=torch.float64), torch.ones(6, 3, dtype=torch.float64)
    for name, depends in (("sigma", False), ("sigma_cond", True), ("sigma_flow", True),
                          ("sigma_cflow", True)):
        model = _randomised_prior(name)
        moved = (model.prior_log_prob(z, y0) - model.prior_log_prob(z, y1)).abs().max()
        assert (moved > 1e-3) == depends, name
    # with the base Gaussian at N(0, I) for every y, only cflow's couplings still see y
    for name, depends in (("sigma_flow", False), ("sigma_cflow", True)):
        model = _randomised_prior(name)
        torch.nn.init.zeros_(model.prior_encoder.head.weight)
        torch.nn.init.zeros_(model.prior_encoder.head.bias)
        moved = (model.prior_log_prob(z, y0) - model.prior_log_prob(z, y1)).abs().max()
        assert (moved > 1e-3) == depends, name
