"""Evaluation (chapter 6): Fréchet distance, likelihood bounds, attribute classifier, the run."""
import csv
import shutil
import math

import numpy as np
import pytest
import torch
from scipy.stats import special_ortho_group

from cvae_tutorial import CVAE, CVAEConfig, ConfigError, TrainConfig, checkpoint_path, train
from cvae_tutorial.checkpoints import seed_dir
from cvae_tutorial.cvae import run_config
from cvae_tutorial.evaluation import (PAPER_FID, ClassifierConfig, attribute_accuracy,
                                      bits_per_dim, evaluate_run,
                                      importance_weighted_bound, log_importance_weights,
                                      train_attribute_classifier)
from cvae_tutorial.evaluation.classifier import (AttributeClassifier, classifier_logits,
                                                 predict_attributes)
from cvae_tutorial.evaluation.frechet import (FrechetDistanceError, frechet_distance,
                                          frechet_distance_from_statistics)
from cvae_tutorial.evaluation.likelihood import dequantize
from cvae_tutorial.losses import gaussian_log_prob


# ----------------------------------------------------------------------------------------------
# Fréchet distance
# ----------------------------------------------------------------------------------------------
def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(500, 6)) @ np.diag([1, 2, 3, 0.5, 4, 1])
    assert abs(frechet_distance(features, features)) < 1e-6


def test_frechet_distance_matches_closed_form_for_commuting_covariances():
    # Σ1 = R diag(a) Rᵀ, Σ2 = R diag(b) Rᵀ: Tr(Σ1 + Σ2 - 2(Σ1Σ2)^½) = Σ (√a - √b)²
    rotation = special_ortho_group.rvs(5, random_state=1)
    a, b = np.array([1.0, 2, 3, 4, 5]), np.array([0.5, 3, 1, 4, 9])
    mu1, mu2 = np.arange(5.0), np.arange(5.0)[::-1]
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    value = frechet_distance_from_statistics(mu1, rotation @ np.diag(a) @ rotation.T,
                                             mu2, rotation @ np.diag(b) @ rotation.T)
    assert value == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_of_samples_approaches_the_gaussians_distance():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, size=(20000, 3))
    y = rng.normal(1, 2, size=(20000, 3))
    assert frechet_distance(x, y) == pytest.approx(3 * 1 + 3 * (2 - 1) ** 2, rel=0.03)


def test_frechet_distance_is_symmetric():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 8)), rng.normal(0.3, 1.5, size=(200, 8)) @ rng.normal(size=(8, 8))
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-6)


def test_frechet_distance_with_singular_covariance_is_finite():
    rng = np.random.default_rng(4)
    low_rank = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 64))   # rank 2 in 64 dimensions
    constant = np.zeros((30, 64))
    for x, y in ((low_rank, low_rank + 0.1), (low_rank, constant), (low_rank[:10], low_rank[10:])):
        value = frechet_distance(x, y)
        assert math.isfinite(value) and value > -1e-3


def test_frechet_distance_needs_two_images():
    with pytest.raises(FrechetDistanceError, match="at least 2 images"):
        frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(FrechetDistanceError, match="dimensions differ"):
        frechet_distance(np.zeros((3, 4)), np.ones((5, 3)))


# ----------------------------------------------------------------------------------------------
# Likelihoods
# ----------------------------------------------------------------------------------------------
class LinearGaussian:
    """z ~ N(0, I_D), x = W z + b + σ ε: log p(x) is exact, N(b, W Wᵀ + σ² I). The encoder is a
    deliberately imperfect diagonal Gaussian near the true posterior, so ELBO < log p(x)."""

    def __init__(self, data_dim=4, latent_dim=2, sigma=0.5, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(data_dim, latent_dim, generator=g, dtype=torch.float64)
        self.b = torch.randn(data_dim, generator=g, dtype=torch.float64)
        self.decoder_log_sigma = torch.tensor(math.log(sigma), dtype=torch.float64)
        precision = torch.eye(latent_dim, dtype=torch.float64) + self.W.T @ self.W / sigma**2
        self.posterior_cov = torch.linalg.inv(precision)

    def encode(self, x, y):
        mean = (x - self.b) @ self.W @ self.posterior_cov.T / self.decoder_log_sigma.exp() ** 2
        log_std = 0.5 * torch.log(torch.diagonal(self.posterior_cov)) + math.log(1.4)
        return mean + 0.2, log_std.expand_as(mean)

    def decode(self, z, y):
        return z @ self.W.T + self.b

    def reconstruction_nll(self, x, x_hat, fixed_sigma=False):
        assert fixed_sigma, "evaluation must use the fixed decoder σ"
        return -gaussian_log_prob(x, x_hat, self.decoder_log_sigma), self.decoder_log_sigma

    def prior_log_prob(self, z, y):
        return gaussian_log_prob(z, torch.zeros_like(z), 0.0)

    def exact_log_prob(self, x):
        covariance = self.W @ self.W.T + self.decoder_log_sigma.exp() ** 2 * torch.eye(len(self.b))
        return torch.distributions.MultivariateNormal(self.b, covariance).log_prob(x)

    def sample(self, n, generator):
        z = torch.randn(n, self.W.shape[1], generator=generator, dtype=torch.float64)
        noise = torch.randn(n, len(self.b), generator=generator, dtype=torch.float64)
        return self.decode(z, None) + self.decoder_log_sigma.exp() * noise


def test_importance_weighted_bound_converges_to_exact_log_likelihood():
    toy = LinearGaussian()
    g = torch.Generator().manual_seed(1)
    x = toy.sample(64, g)
    y = torch.zeros(64, 1)
    log_w = log_importance_weights(toy, x, y, 4000, generator=g)
    exact = toy.exact_log_prob(x)
    elbo = log_w.mean(1)
    bounds = {k: importance_weighted_bound(log_w, k) for k in (1, 10, 100, 4000)}
    gap_elbo = (exact - elbo).mean().item()
    assert gap_elbo > 0.1                      # the toy's q is really imperfect
    gaps = [(exact - bounds[k]).mean().item() for k in (1, 10, 100, 4000)]
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] >= -0.01  # tightens with K
    assert abs(gaps[3]) < 0.02                             # and converges to log p(x)


def test_importance_weighted_bound_is_above_elbo_on_a_cvae():
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(model="sigma_flow", image_size=16, latent_dim=4, base_channels=8,
                            flow_hidden=16)).eval()
    model.decoder_log_sigma.fill_(math.log(0.2))
    x = dequantize(torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8),
                   torch.Generator().manual_seed(0))
    y = torch.randint(0, 2, (16, 10)).float()
    log_w = log_importance_weights(model, x, y, 200, generator=torch.Generator().manual_seed(1))
    assert log_w.shape == (16, 200) and torch.isfinite(log_w).all()
    elbo = log_w.mean(1).mean()
    iw = [importance_weighted_bound(log_w, k).mean() for k in (1, 20, 200)]
    assert elbo < iw[1] < iw[2]
    assert abs(iw[0] - elbo) < 3 * log_w.std()  # K=1 is one draw of the ELBO


def test_log_importance_weights_do_not_depend_on_how_many_codes_a_pass_holds():
    # the draws come in chunks of max_batch codes; the networks' passes only split the work
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(model="sigma_flow", image_size=16, latent_dim=4, base_channels=8,
                            flow_hidden=16)).eval().double()
    x = dequantize(torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8),
                   torch.Generator().manual_seed(0)).double()
    y = torch.randint(0, 2, (6, 10)).double()
    weights = [log_importance_weights(model, x, y, 9, torch.Generator().manual_seed(1),
                                      max_batch=24, pass_size=size) for size in (512, 5, 1)]
    torch.testing.assert_close(weights[1], weights[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(weights[2], weights[0], rtol=0, atol=1e-10)
    assert weights[0].std(1).min() > 1e-3  # K different draws per image, not one repeated
    with pytest.raises(ValueError, match="pass_size must be an int >= 1"):
        log_importance_weights(model, x, y, 9, pass_size=0)


def test_bits_per_dim_of_a_uniform_density_is_eight():
    # the uniform density on [0, 1]^P has NLL 0 nats; on 8-bit data that is exactly 8 bits/dim
    assert bits_per_dim(0.0, 3 * 32 * 32) == pytest.approx(8.0)
    assert bits_per_dim(-3 * 32 * 32 * math.log(2), 3 * 32 * 32) == pytest.approx(7.0)


def test_dequantize_stays_inside_each_pixel_bin():
    images = torch.tensor([0, 1, 128, 255], dtype=torch.uint8).view(1, 1, 1, 4).expand(50, 3, 4, 4)
    x = dequantize(images.contiguous(), torch.Generator().manual_seed(0))
    assert ((x * 256).floor() == images.float()).all()
    with pytest.raises(TypeError, match="uint8"):
        dequantize(images.float())


def test_dequantize_spreads_uniformly_within_each_bin():
    # x·256 − x_int must be U[0, 1): mean 1/2, variance 1/12, no mass at the bin edge
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    x = dequantize(images, torch.Generator().manual_seed(0))
    offsets = (x * 256 - images.float()).flatten()
    assert offsets.mean().item() == pytest.approx(0.5, abs=0.01)
    assert offsets.var().item() == pytest.approx(1 / 12, abs=0.003)
    assert (offsets < 1e-3).float().mean() < 0.01
    histogram = torch.histc(offsets, bins=10, min=0, max=1) / len(offsets)
    assert (histogram - 0.1).abs().max() < 0.01


def test_log_importance_weights_rejects_bad_k():
    with pytest.raises(ValueError, match=r"num_samples \(K\) must be an int >= 1, got 0"):
        log_importance_weights(LinearGaussian(), torch.zeros(2, 4, dtype=torch.float64),
                               torch.zeros(2, 1), 0)


# ----------------------------------------------------------------------------------------------
# Attribute classifier
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier_and_data(tmp_path_factory):
    from cvae_tutorial import embedded_faces
    train_data = embedded_faces("train", 32, num_images=2048)
    held_out = embedded_faces("valid", 32, num_images=512)
    path = tmp_path_factory.mktemp("classifier") / "attribute_classifier.pt"
    config = ClassifierConfig(epochs=3)
    return train_attribute_classifier(train_data, config, path, "cpu", progress=False), \
        train_data, held_out, path


def test_attribute_classifier_beats_chance_on_held_out_faces(classifier_and_data):
    classifier, _, held_out, _ = classifier_and_data
    accuracy = attribute_accuracy(classifier, held_out.images, held_out.labels)
    positive = held_out.labels.mean(0)
    majority = torch.maximum(positive, 1 - positive)  # best constant guess per attribute
    assert accuracy.mean() > majority.mean() + 0.08
    smiling = held_out.attribute_names.index("Smiling")  # balanced: chance is 0.5
    assert accuracy[smiling] > 0.75


def test_attribute_classifier_checkpoint_is_reused(classifier_and_data):
    classifier, train_data, _, path = classifier_and_data
    written = path.stat().st_mtime_ns
    again = train_attribute_classifier(train_data, ClassifierConfig(epochs=3), path, "cpu",
                                       progress=False)
    assert path.stat().st_mtime_ns == written  # loaded, not retrained
    for a, b in zip(classifier.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_attribute_classifier_config_errors(faces32):
    with pytest.raises(ConfigError, match="epochs must be int"):
        ClassifierConfig(epochs="3")
    with pytest.raises(ConfigError, match="at 64px"):
        train_attribute_classifier(faces32[0], ClassifierConfig(image_size=64))


def test_classifier_logits_are_the_classifiers_reading_of_the_uint8_images_in_any_batches():
    torch.manual_seed(0)
    classifier = AttributeClassifier(ClassifierConfig(image_size=16, num_attributes=3,
                                                      channels=8, feature_dim=16)).eval()
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = classifier(images.float() / 255)  # pixels in [0, 1], every image once
    logits = classifier_logits(classifier, images, batch_size=4)
    torch.testing.assert_close(logits, expected)
    assert torch.equal(predict_attributes(classifier, images, batch_size=3),
                       (logits > 0).float())
    assert 0 < predict_attributes(classifier, images).mean() < 1  # not a constant reading
    with pytest.raises(TypeError, match="uint8"):
        classifier_logits(classifier, images.float() / 255)


# ----------------------------------------------------------------------------------------------
# evaluate_run on tiny checkpoints
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, faces16):
    train_data, test_data = faces16
    run_dir = tmp_path_factory.mktemp("run")
    for name in ("gaussian", "sigma", "sigma_flow", "mse_kl", "sigma_qxy"):
        model = CVAE(run_config(name, image_size=16, latent_dim=4, base_channels=8,
                                flow_hidden=16))
        train(model, train_data, test_data, TrainConfig(epochs=1, batch_size=64),
              checkpoint_path(run_dir, name), progress=False)
    return run_dir, train_data, test_data


def test_evaluate_run_writes_table_with_attribute_distance(tiny_run):
    run_dir, train_data, test_data = tiny_run
    options = dict(feature_space="attribute", num_samples=32, iw_samples=5, likelihood_images=16,
                   classifier_config=ClassifierConfig(image_size=16, epochs=1), progress=False)
    rows = evaluate_run(run_dir, train_data, test_data, **options)
    assert [row["model"] for row in rows] == ["gaussian", "sigma", "sigma_flow"]
    for row in rows:
        assert row["distance_name"] == "FD_attr"  # never called FID
        assert row["iw_nll_nats"] <= row["neg_elbo_nats"] + 1e-6
        assert math.isfinite(row["distance"]) and 0 <= row["attribute_accuracy"] <= 1
        assert row["paper_fid"] == PAPER_FID[row["model"]]
        assert "32 samples" in row["protocol"]
    assert rows[0]["decoder_sigma"] == 1.0 and rows[1]["decoder_sigma"] < 1.0
    assert [row["encoder_sees_labels"] for row in rows] == [False, False, True]  # the paper's
    for row in rows:  # the conditioning and latent columns
        assert 0 <= row["balanced_accuracy"] <= 1 and 0 <= row["real_balanced_accuracy"] <= 1
        assert 0 <= row["flip_rate"] <= 1 and 0 <= row["active_units"] <= row["latent_dim"] == 4
        assert row["flip_samples"] == 32  # min(flip_samples=256, num_samples)
        for key in ("shuffled_distance", "joint_distance", "shuffled_joint_distance"):
            assert math.isfinite(row[key]) and row[key] > -1e-6, key
        assert -1 <= row["prior_hole"] <= 1  # a difference of two uncovered fractions
        names = test_data.attribute_names
        assert row["balanced_accuracy"] == pytest.approx(
            np.mean([row[f"balanced_accuracy_{a}"] for a in names]))
        assert row["flip_rate"] == pytest.approx(np.mean([row[f"flip_rate_{a}"] for a in names]))
    with open(run_dir / "results.csv") as file:
        table = list(csv.DictReader(file))
    assert [r["model"] for r in table] == ["gaussian", "sigma", "sigma_flow"]
    assert float(table[2]["distance"]) == pytest.approx(rows[2]["distance"])
    markdown = (run_dir / "results.md").read_text()
    assert "FD_attr" in markdown and "300.9" in markdown and "not reproducible" in markdown
    assert "| FID" not in markdown
    assert "balanced acc." in markdown and "flip rate" in markdown and "FD_attr∞" in markdown
    assert "FD_attr, shuffled labels" in markdown and "prior hole" in markdown
    # the scale: the floor of two disjoint real sets of the same N, and the protocol card
    assert f"Real-vs-real floor (two disjoint real sets of N = 32): FD_attr " \
           f"{rows[0]['floor_distance']:.2f}" in markdown
    assert "**Protocol card**" in markdown and "test split, first 32 images" in markdown
    assert "images 33-64" in markdown and rows[0]["card_key"] in markdown
    for row in rows:
        assert row["floor_distance"] == rows[0]["floor_distance"] > 0  # the bias at N = 32
        assert math.isfinite(row["distance_inf"]) and math.isfinite(row["kid"])
        assert len(row["distance_curve"]) == len(row["curve_sizes"]) >= 2
    # the cached classifier and statistics give the same row again
    row, = evaluate_run(run_dir, train_data, test_data, models=["sigma_flow"],
                        results_dir=run_dir / "again", cache_dir=run_dir / "eval_cache",
                        **options)
    assert row["distance"] == pytest.approx(rows[2]["distance"])
    assert row["iw_nll_nats"] == pytest.approx(rows[2]["iw_nll_nats"])
    for key in ("flip_rate", "shuffled_joint_distance", "prior_hole", "balanced_accuracy"):
        assert row[key] == pytest.approx(rows[2][key]), key


def test_evaluate_run_over_seeds_reports_mean_and_standard_error(tiny_run, tmp_path):
    run_dir, train_data, test_data = tiny_run
    for name in ("sigma", "sigma_qxy"):
        shutil.copytree(run_dir / name, seed_dir(tmp_path, 0) / name)  # trained with seed 0
        # seed 1 is another training (a copy of seed 0's would be refused: its seed is 0)
        model = CVAE(run_config(name, image_size=16, latent_dim=4, base_channels=8,
                                flow_hidden=16))
        train(model, train_data, test_data, TrainConfig(epochs=1, batch_size=64, seed=1),
              checkpoint_path(seed_dir(tmp_path, 1), name), progress=False)
    options = dict(feature_space="attribute", num_samples=32, iw_samples=5, likelihood_images=16,
                   classifier_config=ClassifierConfig(image_size=16, epochs=1), progress=False)
    rows = evaluate_run(tmp_path, train_data, test_data, models=["sigma", "sigma_qxy"],
                        seeds=[0, 1], **options)
    assert [(r["seed"], r["model"]) for r in rows] == [(0, "sigma"), (0, "sigma_qxy"),
                                                       (1, "sigma"), (1, "sigma_qxy")]
    assert rows[0]["neg_elbo_nats"] != rows[2]["neg_elbo_nats"]  # two trainings
    assert rows[1]["neg_elbo_nats"] != rows[3]["neg_elbo_nats"]
    markdown = (tmp_path / "results.md").read_text()
    mean = (rows[0]["neg_elbo_nats"] + rows[2]["neg_elbo_nats"]) / 2
    error = abs(rows[0]["neg_elbo_nats"] - rows[2]["neg_elbo_nats"]) / 2  # s.e. of two values
    assert f"| sigma | 2 | {mean:.1f} ± {error:.1f} |" in markdown
    assert "standard error over the training seeds" in markdown
    with open(tmp_path / "results.csv") as file:
        assert [r["seed"] for r in csv.DictReader(file)] == ["0", "0", "1", "1"]
    with pytest.raises(FileNotFoundError, match="seed2"):
        evaluate_run(tmp_path, train_data, test_data, models=["sigma"], seeds=[2], **options)


def test_evaluate_run_takes_the_mse_kl_recipe_at_its_training_set_sigma(tiny_run):
    run_dir, train_data, test_data = tiny_run
    options = dict(feature_space="attribute", num_samples=32, iw_samples=5, likelihood_images=16,
                   classifier_config=ClassifierConfig(image_size=16, epochs=1), progress=False,
                   cache_dir=run_dir / "eval_cache")
    (row,) = evaluate_run(run_dir, train_data, test_data, models=["mse_kl"], **options)
    assert row["model"] == "mse_kl" and math.isnan(row["paper_fid"])
    assert 0 < row["decoder_sigma"] < 1  # σ* of the training set, not σ = 1
    assert row["iw_nll_nats"] <= row["neg_elbo_nats"] + 1e-6


def test_evaluate_run_errors_are_clear(tiny_run, tmp_path):
    run_dir, train_data, test_data = tiny_run
    with pytest.raises(FileNotFoundError, match="train these models first"):
        evaluate_run(tmp_path, train_data, test_data)
    with pytest.raises(ConfigError, match="unknown model"):
        evaluate_run(run_dir, train_data, test_data, models=["vae"])
    with pytest.raises(ConfigError, match="num_samples must be an int >= 2"):
        evaluate_run(run_dir, train_data, test_data, num_samples=1)
    with pytest.raises(ConfigError, match="feature_space"):
        evaluate_run(run_dir, train_data, test_data, feature_space="clip")
