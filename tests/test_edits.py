"""Measuring chapter 7's edits (evaluation/edits.py): success against its ceiling, preservation
of the other attributes, pixel distances, and many edits of one image set measured at once."""
import pytest
import torch
from torch import nn

from cvae_tutorial.data import to_float, to_uint8
from cvae_tutorial.editing import edit, edited_labels
from cvae_tutorial.evaluation import attribute_accuracy
from cvae_tutorial.evaluation.edits import measure_edit, measure_edits
from cvae_tutorial.evaluation.uncertainty import mean_and_error, rate_and_error
from test_editing import LATENT, BAD_LABELS, batch, small_classifier, small_model


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




def test_measure_edit_wants_uint8_images():
    model, classifier = small_model("sigma").float(), small_classifier()
    images, labels = batch(4)
    with pytest.raises(TypeError, match="uint8"):
        measure_edit(model, classifier, to_float(images), labels.float(), 0)


@pytest.mark.parametrize("name, through_prior", [("sigma", False), ("sigma_flow", False),
                                                  ("sigma_flow", True)])
def test_many_edits_measured_at_once_are_each_edit_measured_on_its_own_images(name,
                                                                           through_prior):
    # the reference reads each edit as chapter 7 shows it: edit(), rounded to 8 bits, classified
    model = small_model(name).float()
    images, labels = batch(40, seed=3)
    labels = labels.float()
    x = to_float(images)
    classifier = small_classifier(split=to_float(to_uint8(model.reconstruct(x, labels))))
    outcomes = measure_edits(model, classifier, images, labels, [2, 0, 1],
                             through_prior=through_prior, batch_size=16, names=["c", "a", "b"])
    reconstructions = to_uint8(model.reconstruct(x, labels))
    seen_reconstruction = classifier(to_float(reconstructions)) > 0
    for outcome, index, name in zip(outcomes, [2, 0, 1], "cab"):
        new = edited_labels(labels, index)
        edited = to_uint8(edit(model, x, labels, new, through_prior))
        seen = classifier(to_float(edited)) > 0
        others = [a for a in range(3) if a != index]
        assert outcome.attribute == name
        assert torch.equal(outcome.success, seen[:, index] == (new[:, index] > 0.5))
        assert torch.equal(outcome.added, new[:, index] > 0.5)
        torch.testing.assert_close(outcome.preserved, (seen == seen_reconstruction)[:, others]
                                   .double().mean(1))
        torch.testing.assert_close(outcome.pixel_distance,
                                   (to_float(edited) - x).pow(2).flatten(1).mean(1).sqrt())
        torch.testing.assert_close(outcome.reconstruction_distance,
                                   (to_float(reconstructions) - x).pow(2).flatten(1).mean(1)
                                   .sqrt())
    # a non-trivial case: some edits succeed, others do not
    assert 0 < torch.cat([o.success for o in outcomes]).double().mean() < 1


def test_many_edits_encode_each_image_once():
    model = small_model("sigma").float()
    images, labels = batch(40)
    encoded = []
    original = model.encode
    model.encode = lambda x, y: encoded.append(len(x)) or original(x, y)
    measure_edits(model, small_classifier(), images, labels.float(), range(3), batch_size=16)
    assert encoded == [16, 16, 8]  # one pass over the images for three edits


def test_bad_attribute_lists_are_clear_errors():
    model, classifier = small_model("sigma").float(), small_classifier()
    images, labels = batch(4)
    with pytest.raises(ValueError, match="attribute index must be an int in 0..2"):
        measure_edits(model, classifier, images, labels.float(), [0, 3])
    with pytest.raises(ValueError, match="1 names for 2 attribute indices"):
        measure_edits(model, classifier, images, labels.float(), [0, 1], names=["a"])


@pytest.mark.parametrize("bad, message", BAD_LABELS)
def test_measuring_an_edit_refuses_labels_outside_zero_one(bad, message):
    images, labels = batch(4)
    wrong = labels.clone()
    wrong[1, 2] = bad
    with pytest.raises(ValueError, match="^labels (?=must|contain).*" + message):  # its argument
        measure_edit(small_model("sigma_flow"), small_classifier().double(), images, wrong, 0)


