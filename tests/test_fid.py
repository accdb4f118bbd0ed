"""The FID path with a random-weights Inception (no network), weight resolution and the cache."""
import os
import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, checkpoint_path, train
from cvae_tutorial.evaluation import ClassifierConfig, evaluate_run, fid


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "random_inception.pth"
    state_dict = fid.random_fid_inception_state_dict(seed=0)
    torch.save(state_dict, path)
    return path, state_dict


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No env var, an empty torch hub, and a download that fails at once (as offline)."""
    monkeypatch.delenv(fid.INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("offline")
    from pytorch_fid import inception
    monkeypatch.setattr(inception, "load_state_dict_from_url", no_network)
    return tmp_path


def _first_conv(features):
    return features.network.blocks[0][0].conv.weight


def test_fid_inception_loads_the_weights_from_a_path(random_weights, offline):
    path, state_dict = random_weights
    features = fid.load_fid_inception(path)
    assert features.source == str(path)
    assert torch.equal(_first_conv(features), state_dict["Conv2d_1a_3x3.conv.weight"])
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    activations = fid.image_features(features, images, batch_size=2, progress=False)
    assert activations.shape == (3, 2048) and np.isfinite(activations).all()
    assert activations.std() > 0  # random features are not degenerate


def test_fid_inception_weights_from_env_var_then_hub_cache(random_weights, offline, monkeypatch):
    path, state_dict = random_weights
    monkeypatch.setenv(fid.INCEPTION_WEIGHTS_ENV, str(path))
    _, source = fid.resolve_inception_weights()
    assert source == str(path)
    monkeypatch.delenv(fid.INCEPTION_WEIGHTS_ENV)
    hub_file = fid.hub_weights_path()
    assert str(hub_file).startswith(str(offline))  # follows $TORCH_HOME
    hub_file.parent.mkdir(parents=True)
    os.symlink(path, hub_file)
    loaded, source = fid.resolve_inception_weights()
    assert source == str(hub_file)
    assert torch.equal(loaded["Conv2d_1a_3x3.conv.weight"], state_dict["Conv2d_1a_3x3.conv.weight"])


def test_no_weights_offline_is_a_clear_error(offline, monkeypatch):
    with pytest.raises(fid.InceptionWeightsError) as error:
        fid.load_fid_inception()
    message = str(error.value)
    assert fid.INCEPTION_WEIGHTS_FILE in message and str(fid.hub_weights_path()) in message
    assert fid.INCEPTION_WEIGHTS_ENV in message and "download failed" in message
    with pytest.raises(fid.InceptionWeightsError, match="does not exist"):
        fid.resolve_inception_weights(offline / "missing.pth")
    monkeypatch.setenv(fid.INCEPTION_WEIGHTS_ENV, str(offline / "missing.pth"))
    with pytest.raises(fid.InceptionWeightsError, match="CVAE_TUTORIAL_INCEPTION_WEIGHTS"):
        fid.resolve_inception_weights()


class CountingFeatures(nn.Module):
    """Channel means and standard deviations; counts how many images it has seen."""

    name = "counting"

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.images_seen = 0

    def forward(self, x):
        self.images_seen += len(x)
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1) * self.scale


def test_real_statistics_are_cached_and_keys_do_not_collide(faces32, tmp_path):
    _, test_data = faces32
    features = CountingFeatures()
    images = test_data.images[:40]
    key = dict(cache_dir=tmp_path, feature_name="counting", dataset="embedded", split="test",
               image_size=32, count=40)
    path = fid.statistics_cache_path(**key)
    mu, sigma = fid.real_statistics(features, images, path, batch_size=16, progress=False)
    assert features.images_seen == 40 and path.is_file()
    mu2, sigma2 = fid.real_statistics(features, images, path, batch_size=16, progress=False)
    assert features.images_seen == 40  # second call: loaded from the .npz
    assert np.array_equal(mu, mu2) and np.array_equal(sigma, sigma2)
    others = [fid.statistics_cache_path(**{**key, name: value}) for name, value in
              (("dataset", "celeba"), ("split", "valid"), ("image_size", 64), ("count", 41),
               ("feature_name", "FID"))]
    assert len({path, *others}) == 6


def test_whole_fid_path_with_random_inception_by_path(random_weights, offline, faces32):
    path, _ = random_weights
    train_data, test_data = faces32
    run_dir = offline / "run"
    model = CVAE(CVAEConfig(model="sigma_flow", latent_dim=4, base_channels=8, flow_hidden=16))
    train(model, train_data.subset(128), test_data.subset(16), TrainConfig(epochs=1, batch_size=64),
          checkpoint_path(run_dir, "sigma_flow"), progress=False)
    options = dict(feature_space="inception", inception_weights=path, num_samples=4,
                   iw_samples=2, likelihood_images=4, batch_size=4,
                   classifier_config=ClassifierConfig(epochs=1, channels=8), progress=False)
    rows = evaluate_run(run_dir, train_data.subset(128), test_data.subset(16),
                        models=["sigma_flow"], **options)
    assert rows[0]["distance_name"] == "FID" and np.isfinite(rows[0]["distance"])
    assert "299" in rows[0]["protocol"] and "4 samples" in rows[0]["protocol"]
    cached = list((run_dir / "eval_cache").glob("FID_embedded_test_32px_4_*.npz"))
    assert len(cached) == 1
    assert (cached[0].parent / ("joint_" + cached[0].name)).is_file()  # the shuffled control's
    with pytest.raises(fid.InceptionWeightsError):
        evaluate_run(run_dir, train_data.subset(128), test_data.subset(16), models=["sigma_flow"],
                     **{**options, "inception_weights": None})


def test_truncated_or_foreign_inception_weights_are_one_line_and_auto_falls_back(
        random_weights, offline, monkeypatch, faces32):
    from cvae_tutorial.evaluation.report import _feature_space
    from cvae_tutorial.evaluation import AttributeClassifier
    path, _ = random_weights
    truncated = offline / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(fid.InceptionWeightsError, match=r"the path given .*truncated.pth is "
                                                        r"truncated or not a torch file"):
        fid.load_fid_inception(truncated)
    monkeypatch.setenv(fid.INCEPTION_WEIGHTS_ENV, str(truncated))
    with pytest.raises(fid.InceptionWeightsError, match=r"\$CVAE_TUTORIAL_INCEPTION_WEIGHTS"):
        fid.load_fid_inception()
    foreign = offline / "resnet.pth"
    torch.save(nn.Linear(3, 2).state_dict(), foreign)
    with pytest.raises(fid.InceptionWeightsError, match=r"holds another network's weights "
                                                        r"\(Error\(s\) in loading state_dict"):
        fid.load_fid_inception(foreign)
    classifier = AttributeClassifier(ClassifierConfig(image_size=32, num_attributes=10))
    with pytest.warns(UserWarning, match="No FID: .*truncated.*Using FD_attr instead"):
        features = _feature_space("auto", truncated, classifier, torch.device("cpu"))
    assert not isinstance(features, fid.InceptionFeatures)


def test_a_damaged_statistics_cache_is_recomputed_with_a_warning(faces32, tmp_path):
    _, test_data = faces32
    features, images = CountingFeatures(), test_data.images[:40]
    path = tmp_path / "stats.npz"
    mu, sigma = fid.real_statistics(features, images, path, batch_size=16, progress=False)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match=r"stats.npz is damaged \(BadZipFile.*recomputing"):
        mu2, _ = fid.real_statistics(features, images, path, batch_size=16, progress=False)
    assert features.images_seen == 80 and np.array_equal(mu, mu2)
    assert fid.real_statistics(features, images, path, 16, False)[0].shape == mu.shape
    assert features.images_seen == 80  # rewritten whole
