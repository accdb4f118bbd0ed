"""The protocol card and the reference features saved with it: what decides a distance is
written beside it, a reference made under another protocol is never reused, a damaged one is
recomputed."""
import dataclasses

import numpy as np
import pytest

from cvae_tutorial.evaluation import ClassifierConfig, prepare_evaluation
from cvae_tutorial.evaluation.protocol import (ProtocolCard, load_reference, preprocessing,
                                               save_reference)


def _card(**changes):
    fields = dict(dataset="embedded", image_size=32, reference="test split, first 8 images",
                  reference_digest="abc", floor="valid split", floor_digest="def", num_samples=8,
                  preprocessing="none", quantisation="uint8", feature_network="FD_attr",
                  weights_sha256="0" * 64, labels="sample i for label i", seed=0, curve="-",
                  kid="-")
    return ProtocolCard(**{**fields, **changes})


def test_every_decisive_field_changes_the_key_and_package_versions_do_not():
    card = _card()
    decisive = [f.name for f in dataclasses.fields(card) if f.name != "versions"]
    keys = {_card(**{name: 99 if isinstance(getattr(card, name), int) else "other"}).key()
            for name in decisive}
    assert len(keys) == len(decisive) and card.key() not in keys
    assert _card(versions={"torch": "0"}).key() == card.key()
    markdown = card.markdown()
    assert "weights SHA-256 " + "0" * 64 in markdown and card.key() in markdown
    assert "torch" in markdown and "valid split" in markdown


def test_celeba_preprocessing_names_the_crop_and_the_resize_filter():
    text = preprocessing("celeba", 64)
    assert "148" in text and "antialias=True" in text and "64x64" in text


def test_the_reference_is_reused_only_under_the_same_protocol(tmp_path):
    features = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    path = save_reference(tmp_path / "ref.npz", _card(), reference=features)
    loaded = load_reference(path, _card(versions={"numpy": "other"}), ("reference",))
    assert np.array_equal(loaded["reference"], features)
    assert load_reference(path, _card(seed=1), ("reference",)) is None
    assert load_reference(tmp_path / "missing.npz", _card(), ("reference",)) is None
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match=r"ref.npz is damaged \(BadZipFile.*recomputing"):
        assert load_reference(path, _card(), ("reference",)) is None


def test_prepare_evaluation_reads_the_real_images_once_then_loads_them(faces32, tmp_path):
    train, test = faces32
    options = dict(feature_space="attribute", num_samples=40, seed=0, cache_dir=tmp_path,
                   classifier_config=ClassifierConfig(epochs=1, channels=8), progress=False)
    first = prepare_evaluation(train.subset(256), test.subset(100), **options)
    assert first.judge.images_read["classifier"] == 40 + 40 + 100  # reference, floor, ceilings
    again = prepare_evaluation(train.subset(256), test.subset(100), **options)
    assert again.judge.images_read["classifier"] == 100  # only the ceilings' readings
    assert np.array_equal(first.reference, again.reference)
    assert np.array_equal(first.floor, again.floor)
    assert again.floor_row["floor_distance"] == first.floor_row["floor_distance"]
    assert first.card.key() == again.card.key()
    # the floor compares the reference with the next 40 test images, at the same N
    assert first.card.floor == "test split, images 41-80"
    other = prepare_evaluation(train.subset(256), test.subset(100),
                               floor_data=test.subset(100), **{**options, "num_samples": 30})
    assert other.card.key() != first.card.key()
    assert other.floor_row["floor_distance"] == pytest.approx(0, abs=1e-6)  # itself: no floor
    with pytest.raises(Exception, match="floor needs 60 real images besides"):
        prepare_evaluation(train.subset(256), test.subset(100),
                           **{**options, "num_samples": 60})
