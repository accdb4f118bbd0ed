"""The FID network with a random-weights Inception (no network access), where its weights come
from, and the whole FID path of an evaluation."""
import os
import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, checkpoint_path, train
from cvae_tutorial.data.images import to_float
from cvae_tutorial.evaluation import ClassifierConfig, evaluate_run, inception


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "random_inception.pth"
    state_dict = inception.random_fid_inception_state_dict(seed=0)
    torch.save(state_dict, path)
    return path, state_dict


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No env var, an empty torch hub, and a download that fails at once (as offline)."""
    monkeypatch.delenv(inception.INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("offline")
    from pytorch_fid import inception as fid_inception
    monkeypatch.setattr(fid_inception, "load_state_dict_from_url", no_network)
    return tmp_path


def _first_conv(features):
    return features.network.blocks[0][0].conv.weight


def test_fid_inception_loads_the_weights_from_a_path(random_weights, offline):
    path, state_dict = random_weights
    features = inception.load_fid_inception(path)
    assert features.source == str(path)
    assert torch.equal(_first_conv(features), state_dict["Conv2d_1a_3x3.conv.weight"])
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        activations = features(to_float(images)).numpy()
    assert features.weights_sha256 == inception.weights_sha256(state_dict)
    assert activations.shape == (3, 2048) and np.isfinite(activations).all()
    assert activations.std() > 0  # random features are not degenerate


def test_fid_inception_weights_from_env_var_then_hub_cache(random_weights, offline, monkeypatch):
    path, state_dict = random_weights
    monkeypatch.setenv(inception.INCEPTION_WEIGHTS_ENV, str(path))
    _, source = inception.resolve_inception_weights()
    assert source == str(path)
    monkeypatch.delenv(inception.INCEPTION_WEIGHTS_ENV)
    hub_file = inception.hub_weights_path()
    assert str(hub_file).startswith(str(offline))  # follows $TORCH_HOME
    hub_file.parent.mkdir(parents=True)
    os.symlink(path, hub_file)
    loaded, source = inception.resolve_inception_weights()
    assert source == str(hub_file)
    assert torch.equal(loaded["Conv2d_1a_3x3.conv.weight"], state_dict["Conv2d_1a_3x3.conv.weight"])


def test_no_weights_offline_is_a_clear_error(offline, monkeypatch):
    with pytest.raises(inception.InceptionWeightsError) as error:
        inception.load_fid_inception()
    message = str(error.value)
    assert inception.INCEPTION_WEIGHTS_FILE in message
    assert str(inception.hub_weights_path()) in message
    assert inception.INCEPTION_WEIGHTS_ENV in message and "download failed" in message
    with pytest.raises(inception.InceptionWeightsError, match="does not exist"):
        inception.resolve_inception_weights(offline / "missing.pth")
    monkeypatch.setenv(inception.INCEPTION_WEIGHTS_ENV, str(offline / "missing.pth"))
    with pytest.raises(inception.InceptionWeightsError, match="CVAE_TUTORIAL_INCEPTION_WEIGHTS"):
        inception.resolve_inception_weights()


@pytest.mark.slow
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
    assert len(list((run_dir / "eval_cache").glob("reference_FID_*.npz"))) == 1
    assert inception.weights_sha256(torch.load(path)) in (run_dir / "results.md").read_text()
    with pytest.raises(inception.InceptionWeightsError):
        evaluate_run(run_dir, train_data.subset(128), test_data.subset(16), models=["sigma_flow"],
                     **{**options, "inception_weights": None})


def test_truncated_or_foreign_inception_weights_are_one_line_and_auto_falls_back(
        random_weights, offline, monkeypatch, faces32):
    from cvae_tutorial.evaluation.report import _feature_network
    path, _ = random_weights
    truncated = offline / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(inception.InceptionWeightsError, match=r"the path given .*truncated.pth is "
                                                        r"truncated or not a torch file"):
        inception.load_fid_inception(truncated)
    monkeypatch.setenv(inception.INCEPTION_WEIGHTS_ENV, str(truncated))
    with pytest.raises(inception.InceptionWeightsError, match=r"\$CVAE_TUTORIAL_INCEPTION_WEIGHTS"):
        inception.load_fid_inception()
    foreign = offline / "resnet.pth"
    torch.save(nn.Linear(3, 2).state_dict(), foreign)
    with pytest.raises(inception.InceptionWeightsError, match=r"holds another network's weights "
                                                        r"\(Error\(s\) in loading state_dict"):
        inception.load_fid_inception(foreign)
    with pytest.warns(UserWarning, match="No FID: .*truncated.*Using FD_attr instead"):
        assert _feature_network("auto", truncated, torch.device("cpu")) is None
