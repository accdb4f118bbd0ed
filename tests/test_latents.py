"""Metrics that see what they name, on toys whose answer is known: a prior hole that a Gaussian
fit cannot see, active units that a label alone does not make, and precision / recall that tell
mode collapse from diversity."""
import math

import pytest
import torch

from cvae_tutorial import CVAE, CVAEConfig, embedded_faces
from cvae_tutorial.evaluation.frechet import feature_statistics, frechet_distance_from_statistics
from cvae_tutorial.evaluation.draws import base_noise, draw
from cvae_tutorial.evaluation.latents import active_units, prior_hole
from cvae_tutorial.evaluation.metrics import latent_space
from cvae_tutorial.evaluation.neighbours import (coverage, knn_radii, precision_recall,
                                                 within_label_precision_recall)
from test_flows import randomised


def normal(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def ring(n, d, seed):
    """Points on the sphere of radius √d: mean 0 and covariance I, as N(0, I), but a hole at 0."""
    u = normal(n, d, seed)
    return u / u.norm(dim=1, keepdim=True) * math.sqrt(d)


@pytest.mark.parametrize("d, least", [(2, 0.5), (8, 0.08)])
def test_a_ring_of_codes_under_the_standard_normal_prior_leaves_a_hole(d, least):
    codes, prior, again = ring(1000, d, 0), normal(1000, d, 1), normal(1000, d, 2)
    # the old measure, a Fréchet distance between Gaussian fits, is blind to it
    assert frechet_distance_from_statistics(*feature_statistics(codes.numpy()),
                                            *feature_statistics(prior.numpy())) < 0.1 * d
    assert prior_hole(codes, prior, again) > least
    # codes drawn from the prior itself leave none
    assert abs(prior_hole(normal(1000, d, 3), prior, again)) < 0.03


def small_model(latent_dim=4, model="sigma"):
    torch.manual_seed(0)
    return CVAE(CVAEConfig(model=model, image_size=16, num_attributes=10,
                           latent_dim=latent_dim, base_channels=8)).eval()


@pytest.fixture(scope="module")
def faces():
    return embedded_faces("test", 16, num_images=600)


def model_prior_hole(model, faces, seed=0):
    """The results row's prior hole of ``model`` on ``faces``, from one draw of it."""
    draws = draw(model, faces.images, faces.labels, flip_count=1, seed=seed)
    return latent_space(model, draws, None, None)["prior_hole"], draws


def test_the_prior_hole_uses_posterior_draws_not_means(faces):
    # a collapsed posterior, q(z|x) ≈ N(0, I) for every image: its draws fill the prior, its
    # means sit at the origin (bug: scoring the means reports a hole of almost 1)
    model = small_model()
    original = model.encode
    model.encode = lambda x, y: (0.05 * torch.tanh(original(x, y)[0]),
                                 torch.zeros_like(original(x, y)[1]))
    hole, draws = model_prior_hole(model, faces)
    assert abs(hole) < 0.05
    assert prior_hole(draws.posterior_means, draws.latents, draws.prior_again) > 0.5
    assert hole == pytest.approx(prior_hole(draws.posterior_draws, draws.latents,
                                            draws.prior_again))
    # the same posterior moved 3 away from the prior in every dimension: a hole
    model.encode = lambda x, y: (3 + 0.05 * torch.tanh(original(x, y)[0]),
                                 torch.zeros_like(original(x, y)[1]))
    assert model_prior_hole(model, faces)[0] > 0.5


def test_the_prior_draws_follow_the_models_prior(faces):
    # both prior sets of a draw are the model's correct sampler, z = f⁻¹(μ_p(y) + σ_p(y) ε),
    # for the test labels in order, on independent noise (bug: the shortcut, shuffled labels,
    # or the samples' own ε for the floor's second sample, which would make it score 0)
    model = small_model(model="sigma_flow")
    randomised(model.prior_encoder.head, 1, scale=0.3)  # at init μ_p(y) is constant
    randomised(model.flow, 2, scale=0.3)  # and f the identity
    labels = faces.labels[:128]
    draws = draw(model, faces.images[:128], labels, flip_count=1, seed=4, batch_size=48)
    for latents, seed in ((draws.latents, 4), (draws.prior_again, 6)):
        expected = model.sample_latents(labels, noise=base_noise(128, 4, seed))
        torch.testing.assert_close(latents, expected)
        shortcut = model.sample_latents(labels, paper_shortcut=True,
                                        noise=base_noise(128, 4, seed))
        assert (latents - shortcut).abs().max() > 0.1
        shuffled = model.sample_latents(labels.flip(0), noise=base_noise(128, 4, seed))
        assert (latents - shuffled).abs().max() > 0.1
    assert (draws.latents - draws.prior_again).abs().max() > 1


def test_active_units_within_labels_do_not_count_a_dimension_that_only_tracks_y(faces):
    model = small_model(model="sigma_flow")
    randomised(model.prior_encoder.head, 1, scale=0.3)  # at init μ_p(y) is constant
    labels = faces.labels
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mu_p = model.prior_params(labels)[0].double()
    mu_p = mu_p / mu_p.std(0)  # a unit variance over the images, from y alone
    assert (mu_p.var(0) > 0.5).all()
    means = torch.cat([torch.randn(len(labels), 2, generator=g, dtype=torch.float64),  # x
                       mu_p[:, :2],                                                    # y only
                       mu_p[:, 2:3] + 0.3 * torch.randn(len(labels), 1, generator=g,
                                                        dtype=torch.float64),          # y and x
                       0.05 * torch.randn(len(labels), 1, generator=g,
                                          dtype=torch.float64)], 1)                    # neither
    assert active_units(means) == 5  # the plain count includes the two y-only dimensions
    assert active_units(means, labels) == 3
    # a linear regression on y would not remove μ_p(y), a network of y: grouping does
    y1 = torch.cat([torch.ones(len(labels), 1), labels], 1).double()
    residual = mu_p[:, :2] - y1 @ torch.linalg.lstsq(y1, mu_p[:, :2]).solution
    assert (residual.var(0) > 0.01).any()


def test_active_units_within_labels_on_toy_groups():
    g = torch.Generator().manual_seed(1)
    labels = (torch.rand(2000, 3, generator=g) < 0.5).float()
    signal = torch.sin(3 * labels @ torch.tensor([1.0, 2.0, 4.0])) + 2 * labels[:, 0] * labels[:, 1]
    means = torch.stack([torch.randn(2000, generator=g), signal,
                         signal + 0.5 * torch.randn(2000, generator=g)], 1)
    assert active_units(means) == 3 and active_units(means, labels) == 2
    assert active_units(means, labels, threshold=0.5) == 1  # within variances 1 and 0.25
    with pytest.raises(ValueError, match="share a label vector"):
        active_units(means[:3], torch.eye(3))
    with pytest.raises(ValueError, match="labels must be"):
        active_units(means, labels[:10])


# ----------------------------------------------------------------------------------------------
# k-NN radii, coverage, precision and recall
# ----------------------------------------------------------------------------------------------
def test_knn_radii_are_the_kth_neighbour_distance_without_the_point_itself():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    torch.testing.assert_close(knn_radii(points, 1), torch.tensor([1.0, 1.0, 2.0, 4.0],
                                                                  dtype=torch.float64))
    torch.testing.assert_close(knn_radii(points, 2), torch.tensor([3.0, 2.0, 3.0, 6.0],
                                                                  dtype=torch.float64))
    with pytest.raises(ValueError, match="k=4 needs at least k \\+ 1 = 5 points"):
        knn_radii(points, 4)


def modes(n, seed, only=None):
    """A mixture of 8 unit Gaussians at 4·e_i in 8-d (``only``: all from mode ``only``)."""
    g = torch.Generator().manual_seed(seed)
    which = torch.full((n,), only) if only is not None else torch.randint(0, 8, (n,), generator=g)
    return 4 * torch.eye(8)[which] + torch.randn(n, 8, generator=g)


def test_precision_and_recall_tell_mode_collapse_from_diversity():
    real = modes(800, 0)
    precision, recall = precision_recall(real, modes(800, 1))
    assert precision > 0.75 and recall > 0.75  # the real distribution: both high
    precision, recall = precision_recall(real, modes(800, 2, only=0))
    assert precision > 0.75 and recall < 0.25  # one mode of eight: realistic, not diverse
    # samples off the data: neither
    precision, recall = precision_recall(real, modes(800, 3) + 10)
    assert precision < 0.05 and recall < 0.05


def test_coverage_of_a_sample_of_the_same_distribution_is_about_one_minus_two_to_the_minus_k():
    assert coverage(normal(1000, 4, 0), normal(1000, 4, 1), k=5) == pytest.approx(
        1 - 2 ** -5, abs=0.03)
    assert coverage(modes(800, 0), modes(800, 2, only=0)) < 0.2  # 7 of 8 modes left empty
    with pytest.raises(ValueError, match="NaN"):
        coverage(normal(10, 2, 0), torch.full((3, 2), float("nan")))


def labelled(n, seed, spread=1.0, shuffle_labels=False):
    """Features at 4·[y, 1 − y] + spread·noise for 3 binary attributes (8 label sets); with
    ``shuffle_labels`` each feature row is returned with another row's labels."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, 3, generator=g) < 0.5).float()
    features = 4 * torch.cat([labels, 1 - labels], 1) + spread * torch.randn(n, 6, generator=g)
    if shuffle_labels:
        labels = labels[torch.randperm(n, generator=g)]
    return features, labels


def test_within_label_precision_and_recall_see_on_label_but_alike_samples():
    real, real_labels = labelled(1600, 0)
    fake, fake_labels = labelled(1600, 1)
    scores = within_label_precision_recall(real, real_labels, fake, fake_labels)
    assert scores["precision"] > 0.75 and scores["recall"] > 0.75
    assert scores["label_sets"] == 8 and scores["rows"] == 1600
    # on-label but alike: every sample for y near the same point
    alike, alike_labels = labelled(1600, 2, spread=0.05)
    scores = within_label_precision_recall(real, real_labels, alike, alike_labels)
    assert scores["precision"] > 0.75 and scores["recall"] < 0.25
    # varied but blind to y: pooled scores are high, within labels the samples are off
    blind, blind_labels = labelled(1600, 3, shuffle_labels=True)
    assert min(precision_recall(real, blind)) > 0.75
    assert within_label_precision_recall(real, real_labels, blind, blind_labels)[
        "precision"] < 0.3
    with pytest.raises(ValueError, match="no label vector has more than k=3"):
        within_label_precision_recall(real[:8], real_labels[:8], fake[:8], fake_labels[:8])
