"""Metrics that see conditioning, and the latent-space metrics, on toy models whose answer is
known: one draws exactly the attributes it is asked for, one ignores them."""
import pytest
import torch
from torch import nn

from cvae_tutorial.evaluation.conditioning import (balanced_accuracy, balanced_accuracy_terms,
                                                   balanced_attribute_accuracy,
                                                   named_attribute_agreement)
from cvae_tutorial.evaluation.latents import active_units

A, SIDE = 3, 12  # attribute a is the brightness of the band of rows 4a..4a+3


class Toy(nn.Module):
    """Images whose band a is bright when attribute a is on: taken from y (``follows_y``) or
    drawn from the noise (the model ignores y). Noise comes only from ``generator``."""

    def __init__(self, follows_y: bool):
        super().__init__()
        self.follows_y = follows_y
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the toy a device

    def sample(self, y, paper_shortcut=False, generator=None):
        noise = torch.rand(len(y), 3, SIDE, SIDE, generator=generator)
        coin = torch.rand(len(y), A, generator=generator) < 0.5
        on = y.bool() if self.follows_y else coin
        bands = (0.1 + 0.8 * on.float()).repeat_interleave(SIDE // A, 1)  # [B, SIDE]
        return (bands[:, None, :, None] + 0.1 * (noise - 0.5)).clamp(0, 1)


class BandReader(nn.Module):
    """Classifier: logit of attribute a from the band's mean brightness; its features too."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return 20 * (x.mean((1, 3)).unflatten(1, (A, SIDE // A)).mean(2) - 0.5)


def _labels(n=400, seed=0):
    return (torch.rand(n, A, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def test_balanced_accuracy_of_a_constant_majority_guesser_is_one_half():
    labels = (torch.rand(1000, 4, generator=torch.Generator().manual_seed(0)) < 0.9).float()
    majority = torch.ones_like(labels)
    assert (majority == labels).float().mean() > 0.85  # plain accuracy rewards it
    torch.testing.assert_close(balanced_accuracy(majority, labels), torch.full((4,), 0.5))
    torch.testing.assert_close(balanced_accuracy(labels, labels), torch.ones(4))
    torch.testing.assert_close(balanced_accuracy(1 - labels, labels), torch.zeros(4))
    # one value missing: scored by the recall of the value present
    assert balanced_accuracy(torch.ones(5, 1), torch.ones(5, 1)).item() == 1.0


def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present():
    labels = torch.zeros(100, 4)
    labels[:90, 0] = 1  # 90 % positive, always read as positive: recalls 1 and 0
    labels[:30, 1] = 1  # read exactly
    labels[:50, 2] = 1  # the first 40 of 50 positives read, no false positive
    labels[:, 3] = 1    # one class only, 70 of 100 read right
    read = torch.zeros(100, 4)
    read[:, 0], read[:, 1], read[:40, 2], read[:70, 3] = 1, labels[:, 1], 1, 1
    # scikit-learn's balanced_accuracy_score gives 0.5, 1.0, 0.9 and 0.7 (its one recall: not
    # NaN, and not 1 as if the missing class were read right)
    torch.testing.assert_close(balanced_accuracy(read, labels),
                               torch.tensor([0.5, 1.0, 0.9, 0.7]))
    terms = balanced_accuracy_terms(read, labels)
    assert terms.shape == (100, 4)
    torch.testing.assert_close(terms.mean(0).float(), balanced_accuracy(read, labels))
    # a row's terms, averaged over attributes, average to the balanced accuracy over rows
    assert terms.mean(1).mean().item() == pytest.approx(0.775)


def test_balanced_accuracy_of_samples_sees_whether_a_model_follows_y():
    labels = _labels()
    generator = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    from cvae_tutorial.data import to_uint8

    follows = to_uint8(Toy(True).sample(labels, generator=generator()))
    ignores = to_uint8(Toy(False).sample(labels, generator=generator()))
    torch.testing.assert_close(balanced_attribute_accuracy(BandReader(), follows, labels),
                               torch.ones(A))
    blind = balanced_attribute_accuracy(BandReader(), ignores, labels)
    assert (blind - 0.5).abs().max() < 0.1


def test_named_attribute_agreement_judges_only_the_named_attributes():
    labels = torch.tensor([[1.0, 0, 0]]).expand(20, A)
    images = (Toy(True).sample(labels, generator=torch.Generator().manual_seed(0)) * 255).round()
    images = images.to(torch.uint8)
    names = ("Mustache", "Male", "Smiling")
    assert named_attribute_agreement(BandReader(), images, names, {"Mustache": 1, "Male": 0}) == 1
    assert named_attribute_agreement(BandReader(), images, names, {"Mustache": 1, "Male": 1}) == 0.5
    with pytest.raises(ValueError, match="Hat"):
        named_attribute_agreement(BandReader(), images, names, {"Hat": 1})


def test_active_units_counts_dimensions_whose_posterior_mean_varies():
    g = torch.Generator().manual_seed(0)
    means = torch.cat([torch.randn(500, 3, generator=g),           # used: variance 1
                       0.05 * torch.randn(500, 2, generator=g),    # variance 0.0025: collapsed
                       torch.full((500, 1), 3.0)], 1)              # constant: collapsed
    assert active_units(means) == 3
    assert active_units(means, threshold=0.001) == 5


def test_the_joint_distance_weighs_a_label_like_a_typical_feature_at_any_feature_scale():
    # the label scale is the features' root-mean variance (a standard deviation), so the joint
    # distance of features scaled by c is c² times that of the originals: labels and features
    # scale together. With the variance itself as the scale the labels would weigh c² too much.
    from cvae_tutorial.evaluation.conditioning import joint_frechet_distance, real_joint_statistics

    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(500, 3, generator=g) < 0.5).float()
    real = torch.randn(500, 6, generator=g).double().numpy() + labels[:, :1].double().numpy()
    fake = torch.randn(500, 6, generator=g).double().numpy()
    fake_labels = labels[torch.randperm(500, generator=g)]
    base = joint_frechet_distance(fake, fake_labels, real_joint_statistics(real, labels))
    for c in (0.1, 10.0):
        scaled = joint_frechet_distance(c * fake, fake_labels,
                                        real_joint_statistics(c * real, labels))
        assert scaled == pytest.approx(c ** 2 * base, rel=1e-6)
    assert real_joint_statistics(10 * real, labels)["scale"] == pytest.approx(
        10 * real_joint_statistics(real, labels)["scale"])
