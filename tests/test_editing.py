"""Chapter 7's model operations: attribute edits and latent interpolation (their measurement:
test_edits.py)."""
import pytest
import torch

from cvae_tutorial import CVAE, MODEL_NAMES, CVAEConfig
from cvae_tutorial.data import to_float, to_uint8
from cvae_tutorial.editing import (edit, edit_codes, edited_labels, interpolate,
                                   transport_latents)
from cvae_tutorial.evaluation import AttributeClassifier, ClassifierConfig
from cvae_tutorial.evaluation.draws import base_noise, sample_images
from test_flows import randomised

SIZE, ATTRIBUTES, LATENT = 16, 3, 4


def small_model(name, seed=0):
    """A small model whose networks depend strongly on their inputs: at init the decoder's
    images are nearly constant and the flow and the prior ignore their inputs."""
    torch.manual_seed(seed)
    model = CVAE(CVAEConfig(model=name, image_size=SIZE, num_attributes=ATTRIBUTES,
                            latent_dim=LATENT, base_channels=8, flow_hidden=16))
    randomised(model.encoder, seed + 2, scale=0.17)  # codes of std ~1, images spanning [0, 1]
    randomised(model.decoder, seed + 3, scale=0.17)
    if model.has_flow_prior:
        randomised(model.flow, seed, scale=0.3)
        randomised(model.prior_encoder.head, seed + 1, scale=0.3)
    return model.double().eval()


def small_classifier(seed=0, split=None):
    """A random classifier; with ``split`` (float images) its biases put each attribute's
    decision threshold at the median logit on them, so its decisions there are mixed."""
    torch.manual_seed(seed)
    classifier = AttributeClassifier(ClassifierConfig(image_size=SIZE, num_attributes=ATTRIBUTES,
                                                      channels=8, feature_dim=16)).eval()
    if split is not None:
        with torch.no_grad():
            logits = classifier(split.float())
            classifier.head.bias -= logits.median(0).values + 1e-4
    return classifier


def batch(count=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, SIZE, SIZE), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 2, (count, ATTRIBUTES), generator=generator).double()
    return images, labels


# ----------------------------------------------------------------------------------------------
# edit
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("through_prior", [False, True])
def test_an_edit_with_unchanged_labels_is_the_reconstruction(name, through_prior):
    model = small_model(name)
    images, labels = batch()
    x = to_float(images).double()
    torch.testing.assert_close(edit(model, x, labels, labels.clone(), through_prior),
                               model.reconstruct(x, labels), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_an_edit_keeps_the_posterior_code_and_decodes_it_with_the_new_labels(name):
    model = small_model(name)
    images, labels = batch()
    x = to_float(images).double()
    new = edited_labels(labels, 1)
    mu, _ = model.encode(x, labels)
    edited = edit(model, x, labels, new)
    torch.testing.assert_close(edited, model.decode(mu, new))
    assert (edited - model.reconstruct(x, labels)).abs().max() > 1e-4  # the labels matter


@pytest.mark.parametrize("through_prior", [False, True])
def test_an_edit_of_codes_is_the_edit_of_the_images_they_encode(through_prior):
    model = small_model("sigma_flow")
    images, labels = batch()
    x = to_float(images).double()
    new = edited_labels(labels, 2)
    mu, _ = model.encode(x, labels)
    torch.testing.assert_close(edit_codes(model, mu, labels, new, through_prior),
                               edit(model, x, labels, new, through_prior), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="^edited labels y_new .*must be in"):
        edit_codes(model, mu, labels, 2 * new)


def test_the_flow_prior_edit_through_the_prior_moves_the_code():
    model = small_model("sigma_flow")
    images, labels = batch()
    x = to_float(images).double()
    new = edited_labels(labels, 0)
    kept, moved = edit(model, x, labels, new), edit(model, x, labels, new, through_prior=True)
    assert (kept - moved).abs().max() > 1e-4


def test_an_edit_through_the_prior_moves_the_code_from_y_to_y_new():
    model = small_model("sigma_flow")
    images, labels = batch()
    x = to_float(images).double()
    new = edited_labels(labels, 0)
    mu, _ = model.encode(x, labels)
    forward = model.decode(transport_latents(model, mu, labels, new), new)
    backward = model.decode(transport_latents(model, mu, new, labels), new)  # y′ back to y
    assert (forward - backward).abs().max() > 1e-4  # the direction matters here
    torch.testing.assert_close(edit(model, x, labels, new, through_prior=True), forward,
                               rtol=0, atol=1e-9)


def test_transport_maps_a_prior_sample_for_y_to_the_sample_for_y_new_with_the_same_noise():
    model = small_model("sigma_flow")
    _, labels = batch()
    new = edited_labels(labels, 2)
    z = model.sample_latents(labels, generator=torch.Generator().manual_seed(3))
    z_new = model.sample_latents(new, generator=torch.Generator().manual_seed(3))
    assert (z - z_new).abs().max() > 1e-3  # y matters to the prior here
    torch.testing.assert_close(transport_latents(model, z, labels, new), z_new, rtol=0, atol=1e-9)


def test_transport_is_the_identity_for_the_standard_normal_prior():
    model = small_model("sigma")
    _, labels = batch()
    z = torch.randn(len(labels), LATENT, dtype=torch.float64)
    assert torch.equal(transport_latents(model, z, labels, 1 - labels), z)


def test_edited_labels_flips_or_sets_one_column_and_copies():
    labels = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert torch.equal(edited_labels(labels, 0), torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    assert torch.equal(edited_labels(labels, 1, 0), torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    assert torch.equal(labels, torch.tensor([[0.0, 1.0], [1.0, 1.0]]))  # input untouched


@pytest.mark.parametrize("bad, message", [(dict(index=5), "index must be an int in 0..1"),
                                          (dict(index=True), "index must be an int"),
                                          (dict(index=0, value=0.5), "must be 0, 1 or None")])
def test_bad_edits_are_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        edited_labels(torch.zeros(2, 2), **bad)


def test_edited_labels_of_another_shape_are_a_clear_error():
    model = small_model("sigma")
    images, labels = batch()
    with pytest.raises(ValueError, match="must have the shape of y"):
        edit(model, to_float(images).double(), labels, labels[:, :2])


BAD_LABELS = [(2.0, r"must be in \[0, 1\]"), (float("nan"), "contain NaN"),
              (-1.0, r"CelebA's raw -1/1 labels use \(labels > 0\)")]


@pytest.mark.parametrize("bad, message", BAD_LABELS)
def test_edits_refuse_labels_outside_zero_one_as_sampling_does(bad, message):
    model = small_model("sigma_flow")
    images, labels = batch(4)
    x = to_float(images).double()
    wrong = labels.clone()
    wrong[1, 2] = bad
    with pytest.raises(ValueError, match=message):
        model.sample(wrong)
    for through_prior in (False, True):
        with pytest.raises(ValueError, match="^labels y .*" + message):
            edit(model, x, wrong, labels, through_prior)
        with pytest.raises(ValueError, match="^edited labels y_new .*" + message):
            edit(model, x, labels, wrong, through_prior)
    with pytest.raises(ValueError, match="^labels y_b .*" + message):
        interpolate(model, x[0], labels[0], x[1], wrong[1])


# ----------------------------------------------------------------------------------------------
# interpolate
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, space", [("gaussian", "z"), ("sigma", "z"),
                                         ("sigma_flow", "z"), ("sigma_flow", "u")])
def test_interpolation_endpoints_decode_to_the_two_reconstructions(name, space):
    model = small_model(name)
    images, labels = batch(2)
    x = to_float(images).double()
    path, path_labels, t = interpolate(model, x[0], labels[0], x[1], labels[1], 5, space)
    reconstructions = model.reconstruct(x, labels)
    assert path.shape == (5, 3, SIZE, SIZE) and path_labels.shape == (5, ATTRIBUTES)
    torch.testing.assert_close(path[[0, -1]], reconstructions, rtol=0, atol=1e-9)
    torch.testing.assert_close(path_labels[[0, -1]], labels)
    torch.testing.assert_close(t, torch.linspace(0, 1, 5, dtype=torch.float64))
    assert (path[2] - reconstructions).abs().flatten(1).amax(1).min() > 1e-4  # a new image


def test_interpolation_in_the_base_space_is_a_different_path_from_z():
    model = small_model("sigma_flow")
    images, labels = batch(2)
    x = to_float(images).double()
    in_z, _, _ = interpolate(model, x[0], labels[0], x[1], labels[1], 5, "z")
    in_u, _, _ = interpolate(model, x[0], labels[0], x[1], labels[1], 5, "u")
    assert (in_z[2] - in_u[2]).abs().max() > 1e-5


def test_interpolating_in_u_without_a_flow_or_with_one_step_is_a_clear_error():
    images, labels = batch(2)
    x = to_float(images).double()
    with pytest.raises(ValueError, match="needs a flow prior"):
        interpolate(small_model("sigma"), x[0], labels[0], x[1], labels[1], 5, "u")
    with pytest.raises(ValueError, match="steps must be an int >= 2"):
        interpolate(small_model("sigma"), x[0], labels[0], x[1], labels[1], 1)


# ----------------------------------------------------------------------------------------------
# temperature reaches the sampler
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sigma", "sigma_flow"])
def test_samples_at_temperature_zero_give_one_image_per_label(name):
    model = small_model(name).float()
    labels = torch.ones(6, ATTRIBUTES)
    noise = base_noise(6, model.config.latent_dim, 0)
    _, cold = sample_images(model, labels, noise, temperature=0.0)
    _, warm = sample_images(model, labels, noise)
    assert (cold == cold[0]).all()
    assert not (warm == warm[0]).all()
    mean_image = to_uint8(model.decode(model.sample_latents(labels[:1], temperature=0.0),
                                       labels[:1]))
    assert torch.equal(cold[:1], mean_image)
