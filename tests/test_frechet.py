"""The package's Fréchet distance against pytorch-fid's (and without SciPy's ``sqrtm(disp=...)``),
its N-curve and extrapolation to N = ∞, and KID."""
import inspect

import numpy as np
import pytest
import scipy.linalg
import torch

from cvae_tutorial.data.images import to_float
from cvae_tutorial.evaluation import frechet
from cvae_tutorial.evaluation.frechet import (frechet_curve, frechet_distance,
                                              frechet_distance_from_statistics, kernel_distance,
                                              unbiased_mmd2)


def _pytorch_fid(*statistics):
    from pytorch_fid.fid_score import calculate_frechet_distance
    import warnings

    with warnings.catch_warnings():  # SciPy 1.16-1.17 warn that `disp` goes away
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(calculate_frechet_distance(*statistics))


def _random_spd(rng, dim):
    a = rng.normal(size=(dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


@pytest.mark.parametrize("dim", [2, 8, 64, 256])
def test_frechet_distance_matches_pytorch_fid_on_random_spd_covariances(dim):
    rng = np.random.default_rng(dim)
    statistics = (rng.normal(size=dim), _random_spd(rng, dim),
                  rng.normal(0.5, 1, size=dim), _random_spd(rng, dim))
    ours, theirs = frechet_distance_from_statistics(*statistics), _pytorch_fid(*statistics)
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_frechet_distance_matches_pytorch_fid_on_real_features(faces32):
    # real faces through the (untrained) attribute classifier, up to its last linear layer before
    # the ReLU (dead ReLU units would make the covariances singular), split in two halves
    from cvae_tutorial.evaluation.classifier import AttributeClassifier, ClassifierConfig

    train, test = faces32
    with torch.random.fork_rng():
        torch.manual_seed(0)
        classifier = AttributeClassifier(ClassifierConfig(feature_dim=32)).eval()
    with torch.no_grad():
        features = classifier.convs[:-1](to_float(train.images[:600])).double().numpy()
    a, b = features[:300], features[300:]
    # pytorch-fid's own statistics (fid_score.calculate_activation_statistics): np.mean, np.cov
    statistics = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert np.linalg.matrix_rank(statistics[1]) == features.shape[1]
    ours, theirs = frechet_distance(a, b), _pytorch_fid(*statistics)
    assert ours > 0 and ours == pytest.approx(theirs, rel=1e-6)


@pytest.fixture
def scipy_without_disp(monkeypatch):
    """SciPy 1.18's ``sqrtm``: the ``disp`` argument is gone (a TypeError when passed)."""
    original = scipy.linalg.sqrtm

    def sqrtm(matrix, **kwargs):
        if "disp" in kwargs:
            raise TypeError("sqrtm() got an unexpected keyword argument 'disp'")
        return original(matrix, **kwargs)

    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm)
    import pytorch_fid.fid_score

    monkeypatch.setattr(pytorch_fid.fid_score.linalg, "sqrtm", sqrtm)


def test_frechet_distance_works_on_a_scipy_without_disp(scipy_without_disp):
    rng = np.random.default_rng(7)
    statistics = (rng.normal(size=16), _random_spd(rng, 16), rng.normal(size=16),
                  _random_spd(rng, 16))
    with pytest.raises(TypeError, match="disp"):  # the stand-in really is SciPy 1.18's sqrtm
        _pytorch_fid(*statistics)
    x, y = rng.normal(size=(200, 16)), rng.normal(1, 2, size=(300, 16))
    assert frechet_distance(x, y) > 0
    assert np.isfinite(frechet_distance_from_statistics(*statistics))


def test_no_caller_in_the_package_uses_pytorch_fid_or_sqrtm_for_the_distance():
    import cvae_tutorial.benchmarks.fid as bench
    import cvae_tutorial.evaluation.conditioning as conditioning
    import cvae_tutorial.evaluation.latents as latents
    import cvae_tutorial.evaluation.metrics as metrics
    import cvae_tutorial.evaluation.report as report

    for module in (frechet, bench, report, conditioning, latents, metrics):
        source = inspect.getsource(module)
        assert "fid_score" not in source and "sqrtm(" not in source
    assert conditioning.frechet_distance_from_statistics is frechet_distance_from_statistics
    for module in (bench, metrics):
        assert module.frechet_distance is frechet_distance


def test_frechet_distance_rejects_covariances_of_another_dimension():
    with pytest.raises(frechet.FrechetDistanceError, match="do not match"):
        frechet_distance_from_statistics(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))


def test_the_curve_of_two_samples_of_one_gaussian_falls_as_one_over_n_to_zero():
    # the bias of FD at finite N: two sets from the same distribution score > 0, about b/N
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    curve = frechet_curve(a, b, sizes=[100, 200, 500, 1000, 2000], repeats=4, seed=1)
    assert list(curve.distances) == sorted(curve.distances, reverse=True)
    assert curve.distances[0] > 4 * curve.distances[-1] > 0
    assert abs(curve.infinite) < 3 * curve.infinite_se + 0.01 and curve.slope > 0


def test_the_extrapolation_recovers_the_true_distance_of_two_gaussians():
    # N(0, I) vs N(0.5, I) in 8-d: FD_∞ = 8 × 0.25 = 2, while FD at N = 100 is well above it
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3000, 8)), rng.normal(0.5, 1, size=(3000, 8))
    curve = frechet_curve(a, b, sizes=[100, 300, 1000, 3000], repeats=4)
    assert curve.distances[0] > 2.1
    assert curve.infinite == pytest.approx(2.0, abs=max(0.1, 3 * curve.infinite_se))


def test_curve_sizes_need_two_sizes_and_enough_images():
    assert frechet.curve_sizes(4) == [2, 3, 4]
    assert frechet.curve_sizes(1000)[-1] == 1000 and frechet.curve_sizes(1000)[0] == 50
    with pytest.raises(frechet.FrechetDistanceError, match="two sizes"):
        frechet_curve(np.zeros((10, 2)), np.zeros((10, 2)), sizes=[5, 5])
    with pytest.raises(frechet.FrechetDistanceError, match="3 images or more"):
        frechet.curve_sizes(2)


def _brute_force_mmd2(a, b):
    def k(x, y):
        return (x @ y / len(x) + 1) ** 3
    m, n = len(a), len(b)
    within_a = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_b = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    across = sum(k(x, y) for x in a for y in b) / (m * n)
    return within_a + within_b - 2 * across


def test_unbiased_mmd2_is_the_definition_without_the_diagonal():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(12, 5)), rng.normal(0.3, 1, size=(9, 5))
    assert unbiased_mmd2(a, b) == pytest.approx(_brute_force_mmd2(a, b), rel=1e-10)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    # with the diagonal k(x, x) kept, KID of one distribution would be clearly positive
    rng = np.random.default_rng(3)
    same = [kernel_distance(rng.normal(size=(400, 16)), rng.normal(size=(400, 16)), 100, s)
            for s in range(10)]
    assert abs(np.mean([m for m, _ in same])) < 3 * np.mean([se for _, se in same]) / np.sqrt(10)
    shifted, shifted_se = kernel_distance(rng.normal(size=(400, 16)),
                                          rng.normal(0.5, 1, size=(400, 16)), 100)
    assert shifted > 5 * shifted_se > 0
    one_block = kernel_distance(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)), 100)
    assert np.isfinite(one_block[0]) and np.isnan(one_block[1])
