"""The package's Fréchet distance against pytorch-fid's, and without SciPy's ``sqrtm(disp=...)``."""
import inspect

import numpy as np
import pytest
import scipy.linalg
import torch

from cvae_tutorial.evaluation import fid
from cvae_tutorial.evaluation.fid import frechet_distance, frechet_distance_from_statistics


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
    features = fid.image_features(classifier.convs[:-1], train.images[:600], progress=False)
    a, b = features[:300], features[300:]
    statistics = (*fid.feature_statistics(a), *fid.feature_statistics(b))
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
    import cvae_tutorial.evaluation.report as report

    for module in (fid, bench, report, conditioning, latents):
        source = inspect.getsource(module)
        assert "fid_score" not in source and "sqrtm(" not in source
    for module in (bench, conditioning, latents):
        assert module.frechet_distance_from_statistics is frechet_distance_from_statistics


def test_frechet_distance_rejects_covariances_of_another_dimension():
    with pytest.raises(fid.FrechetDistanceError, match="do not match"):
        frechet_distance_from_statistics(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
