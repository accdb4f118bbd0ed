"""One draw per model: the noise that pairs the control sets, posterior draws, and the counts of
work a results row costs."""
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cvae_tutorial import CVAE, CVAEConfig
from cvae_tutorial.data import to_uint8
from cvae_tutorial.evaluation.draws import (NonFiniteSamplesError, base_noise, draw, posterior,
                                            sample_images)
from cvae_tutorial.evaluation.judge import Judge
from cvae_tutorial.evaluation.metrics import attribute_fidelity, distances, read_draws
from cvae_tutorial.evaluation.conditioning import real_joint_statistics

A, SIDE = 3, 12  # attribute a is the brightness of the band of rows 4a..4a+3


class Toy(nn.Module):
    """Band a is bright when attribute a is on: taken from y (``follows_y``) or from the sign of
    the latent's coordinate a (the model ignores y)."""

    def __init__(self, follows_y: bool):
        super().__init__()
        self.follows_y = follows_y
        self.config = SimpleNamespace(latent_dim=A, model="toy")
        self.anchor = nn.Parameter(torch.zeros(()))

    def sample_latents(self, y, paper_shortcut=False, temperature=1.0, noise=None):
        return noise.clone()

    def decode(self, z, y):
        on = y.bool() if self.follows_y else z > 0
        bands = (0.1 + 0.8 * on.float()).repeat_interleave(SIDE // A, 1)  # [B, SIDE]
        texture = 0.05 * torch.sin(z.sum(1))[:, None, None, None]  # the noise shows a little
        return (bands[:, None, :, None] + texture).expand(-1, 3, -1, SIDE).clamp(0, 1)

    def encode(self, x, y):
        return x.mean((1, 3))[:, ::SIDE // A], torch.full((len(x), A), math.log(3.0))


class BandClassifier(nn.Module):
    """Features: the bands' brightness; logits: 20 × (brightness − ½)."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(feature_dim=A)
        self.anchor = nn.Parameter(torch.zeros(()))

    def features(self, x):
        return x.mean((1, 3)).unflatten(1, (A, SIDE // A)).mean(2)

    def head(self, h):
        return 20 * (h - 0.5)


def _labels(n=400, seed=0):
    return (torch.rand(n, A, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def _images(labels):
    return torch.zeros(len(labels), 3, SIDE, SIDE, dtype=torch.uint8)


def test_base_noise_is_the_same_for_any_count_prefix_and_seed_only():
    assert torch.equal(base_noise(10, 4, 3)[:5], base_noise(5, 4, 3))
    assert not torch.equal(base_noise(5, 4, 3), base_noise(5, 4, 4))


def test_the_control_sets_share_the_samples_noise():
    labels = _labels(40)
    draws = draw(Toy(False), _images(labels), labels, flip_count=10, seed=1, batch_size=7)
    # a model that ignores y draws the very same images for shuffled and flipped labels
    assert torch.equal(draws.shuffled, draws.samples)
    assert all(torch.equal(f, draws.samples[:10]) for f in draws.flipped)
    assert len(draws.flipped) == A and torch.equal(draws.latents, base_noise(40, A, 1))
    assert sorted(draws.permutation.tolist()) == list(range(40))


def test_draws_do_not_depend_on_the_batch_size():
    model = CVAE(CVAEConfig(model="sigma_flow", latent_dim=4, base_channels=8, flow_hidden=16,
                            num_attributes=A, image_size=16)).initialize(0).eval()
    labels = _labels(12)
    images = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8)
    one, other = (draw(model, images, labels, 5, seed=2, batch_size=b) for b in (12, 5))
    assert torch.equal(one.samples, other.samples) and torch.equal(one.flipped[1],
                                                                    other.flipped[1])
    torch.testing.assert_close(one.posterior_draws, other.posterior_draws)


def test_posterior_draws_are_scaled_by_sigma_not_its_square():
    # the toy encoder's σ is 3: a draw μ + σ² ε would spread 9 around the mean
    labels = _labels(4000)
    means, codes = posterior(Toy(True), _images(labels), labels, seed=0)
    assert (codes - means).std().item() == pytest.approx(3.0, rel=0.05)


def test_non_finite_samples_are_one_error_naming_the_model():
    class Broken(Toy):
        def decode(self, z, y):
            return torch.full((len(z), 3, SIDE, SIDE), float("nan"))
    labels = _labels(4)
    with pytest.raises(NonFiniteSamplesError, match="model toy produced non-finite .* 4 of 4"):
        sample_images(Broken(True), labels, base_noise(4, A, 0))


def _evaluation(labels, real):
    """What the metrics read of an evaluation, for the toys."""
    return SimpleNamespace(test_data=SimpleNamespace(attribute_names=["a", "b", "c"]),
                           reference=real,
                           real_joint=None if real is None else real_joint_statistics(real, labels),
                           curve_sizes=[50, 100, 200], kid_block=100, seed=0)


def test_the_flip_test_is_one_for_a_model_that_follows_y_and_zero_for_one_that_ignores_it():
    labels, judge = _labels(200), Judge(BandClassifier())
    ev = _evaluation(labels, None)
    for follows, rate in ((True, 1.0), (False, 0.0)):
        draws = draw(Toy(follows), _images(labels), labels, 100, seed=3)
        row = attribute_fidelity(None, draws, read_draws(judge, draws), ev)
        assert row["flip_rate"] == rate and row["flip_samples"] == 100
        assert all(row[f"flip_rate_{a}"] == rate for a in "abc")
    assert row["balanced_accuracy"] == pytest.approx(0.5, abs=0.1)  # ignoring y: chance


def test_the_joint_distance_sees_a_shuffle_and_the_marginal_one_does_not():
    labels, judge = _labels(200), Judge(BandClassifier())
    real_draws = draw(Toy(True), _images(labels), labels, 1, seed=9)
    ev = _evaluation(labels, judge.read(real_draws.samples).features)
    rows = {}
    for follows in (True, False):
        draws = draw(Toy(follows), _images(labels), labels, 1, seed=3)
        rows[follows] = distances(None, draws, read_draws(judge, draws), ev)
    follows, ignores = rows[True], rows[False]
    assert follows["shuffled_joint_distance"] > 10 * follows["joint_distance"] + 0.01
    assert ignores["shuffled_joint_distance"] == pytest.approx(ignores["joint_distance"])
    assert follows["shuffled_distance"] == pytest.approx(follows["distance"], abs=0.01)
    assert follows["kid"] < ignores["kid"] and follows["distance_inf"] < ignores["distance_inf"]


def test_judge_reads_each_image_once_and_fd_attr_needs_no_second_network():
    judge = Judge(BandClassifier())
    images = to_uint8(torch.rand(30, 3, SIDE, SIDE))
    reading = judge.read(images)
    assert reading.predictions.shape == (30, A) and reading.features.shape == (30, A)
    assert judge.images_read == {"classifier": 30, "feature network": 0}
    assert judge.read(images, features=False).features is None
    with pytest.raises(TypeError, match="uint8"):
        judge.read(images.float())
