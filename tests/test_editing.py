"""Chapter 7's tools: attribute edits, latent interpolation, edit metrics and their uncertainty."""
import pytest
import torch
from torch import nn

from cvae_tutorial import CVAE, MODEL_NAMES, CVAEConfig
from cvae_tutorial.data import to_float, to_uint8
from cvae_tutorial.editing import (edit, edited_labels, interpolate, measure_edit,
                                   transport_latents)
from cvae_tutorial.evaluation import AttributeClassifier, ClassifierConfig, attribute_accuracy
from cvae_tutorial.evaluation.draws import base_noise, sample_images
from cvae_tutorial.evaluation.uncertainty import mean_and_error, rate_and_error
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


# ----------------------------------------------------------------------------------------------
# measure_edit
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sigma", "sigma_flow"])
@pytest.mark.parametrize("index", [0, 2])
def test_a_no_op_edit_succeeds_as_often_as_the_classifier_is_right_on_reconstructions(name,
                                                                                      index):
    model = small_model(name).float()
    images, labels = batch(40)
    labels = labels.float()
    labels[:, index] = 1.0  # setting it to 1 is a no-op
    # the classifier reads quantised images: split its decisions on what it will see
    classifier = small_classifier(split=to_float(to_uint8(model.reconstruct(to_float(images),
                                                                            labels))))
    outcome = measure_edit(model, classifier, images, labels, index, value=1, batch_size=16)
    reconstructions = to_uint8(model.reconstruct(to_float(images), labels))
    accuracy = attribute_accuracy(classifier, reconstructions, labels)[index].item()
    assert 0 < accuracy < 1  # a non-trivial case: the rate could come out wrong
    assert rate_and_error(outcome.success)[0] == pytest.approx(accuracy, abs=1e-6)
    assert torch.equal(outcome.preserved, torch.ones(40, dtype=torch.float64))
    torch.testing.assert_close(outcome.pixel_distance, outcome.reconstruction_distance)
    assert outcome.added.all()


def test_a_decoder_blind_to_the_labels_fails_every_edit_it_was_right_about():
    model = small_model("sigma").float()
    with torch.no_grad():
        model.decoder.head[0].weight[:, LATENT:] = 0  # the decoder ignores y
    images, labels = batch(40, seed=1)
    labels = labels.float()
    classifier = small_classifier(split=model.reconstruct(to_float(images), labels))
    outcome = measure_edit(model, classifier, images, labels, 1)  # flip attribute 1
    reconstructions = to_uint8(model.reconstruct(to_float(images), labels))
    accuracy = attribute_accuracy(classifier, reconstructions, labels)[1].item()
    assert 0 < accuracy < 1
    # the edit is the reconstruction, so it shows the new value exactly where it showed the old
    # one wrongly
    assert rate_and_error(outcome.success)[0] == pytest.approx(1 - accuracy, abs=1e-6)
    assert torch.equal(outcome.preserved, torch.ones(40, dtype=torch.float64))
    assert torch.equal(outcome.added, labels[:, 1] == 0)


def test_an_edit_that_changes_the_image_is_measured_against_the_original():
    model, classifier = small_model("sigma").float(), small_classifier()
    images, labels = batch(16, seed=2)
    labels = labels.float()
    outcome = measure_edit(model, classifier, images, labels, 0)
    edited = to_uint8(edit(model, to_float(images), labels, edited_labels(labels, 0)))
    expected = (to_float(edited) - to_float(images)).pow(2).flatten(1).mean(1).sqrt()
    torch.testing.assert_close(outcome.pixel_distance, expected.double(), check_dtype=False)
    assert (outcome.pixel_distance - outcome.reconstruction_distance).abs().max() > 1e-4
    summary = outcome.summary()
    assert summary["images"] == 16
    assert summary["pixel_distance"] == pytest.approx(mean_and_error(outcome.pixel_distance))


class Painter(nn.Module):
    """A fake model that paints its labels: channel c is bright where y[:, c] (read by
    ``ChannelMeans``), whatever the code; with ``leak``, channel 1 also shows y[:, 0]."""

    has_flow_prior = False

    def __init__(self, leak=False):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.leak = leak

    def encode(self, x, y):
        return x.new_zeros(len(x), 1), x.new_zeros(len(x), 1)

    def decode(self, z, y):
        shown = y.clone()
        if self.leak:
            shown[:, 1] = torch.maximum(y[:, 1], y[:, 0])
        return shown[:, :, None, None].expand(-1, -1, 4, 4) * self.scale

    def reconstruct(self, x, y):
        return self.decode(self.encode(x, y)[0], y)


class ChannelMeans(nn.Module):
    """A fake classifier: attribute c is 'on' when channel c's mean is above one half."""

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        return x.mean((2, 3)) - self.offset


def images_showing(on):
    """uint8 images whose channel c is bright exactly where on[:, c]."""
    return (on.bool()[:, :, None, None].expand(-1, -1, 4, 4) * 255).to(torch.uint8)


@pytest.mark.parametrize("leak, preserved", [(False, 1.0), (True, 0.5)])
def test_preservation_counts_only_the_other_attributes_of_a_real_edit(leak, preserved):
    labels = torch.zeros(8, 3)
    labels[4:, 2] = 1
    images = images_showing(labels)
    outcome = measure_edit(Painter(leak), ChannelMeans(), images, labels, 0, value=1)
    assert outcome.success.all() and outcome.added.all()  # attribute 0 appeared: a real edit
    # of the two other attributes none changed, or (leak) attribute 1 changed with it; counting
    # the edited one too would give 2/3 or 1/3
    assert torch.equal(outcome.preserved, torch.full((8,), preserved, dtype=torch.float64))


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
    with pytest.raises(ValueError, match="^labels (?=must|contain).*" + message):  # its argument
        measure_edit(model, small_classifier().double(), images, wrong, 0)


def test_measure_edit_wants_uint8_images():
    model, classifier = small_model("sigma").float(), small_classifier()
    images, labels = batch(4)
    with pytest.raises(TypeError, match="uint8"):
        measure_edit(model, classifier, to_float(images), labels.float(), 0)


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
