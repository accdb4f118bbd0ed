"""Fuzzing the public entry points: random shapes, dtypes, attribute vectors and configs either
work or raise the package's own clear error naming the argument, never a raw error from deep
inside torch (a shape mismatch, a dtype assertion, an IndexError)."""
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cvae_tutorial import CVAE, CVAEConfig, ConfigError, DataError, embedded_faces
from cvae_tutorial.data import FACE_ATTRIBUTES, AttributeImages
from cvae_tutorial.flows import RealNVP
from cvae_tutorial.losses import gaussian_kl, gaussian_nll, sigma_optimal_nll

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
CLEAR_ERRORS = (ConfigError, DataError, ValueError, TypeError)
# Words of torch's own messages: a clear error of ours never reads like these.
RAW_MESSAGE = re.compile(r"mat1 and mat2|Expected .*(dtype|size|scalar type)|size of tensor a|"
                         r"not implemented for|index \d+ is out of bounds|must match the size|"
                         r"Sizes of tensors|Dimension out of range|expected scalar type|"
                         r"unsupported operand|not supported between instances|object has no "
                         r"attribute|invalid literal")


def works_or_clear_error(call, *names):
    """Run ``call``; a failure must be one of ours, naming one of ``names``."""
    try:
        return call()
    except CLEAR_ERRORS as error:
        message = str(error)
        assert not RAW_MESSAGE.search(message), \
            f"raw error leaked: {type(error).__name__}: {message}"
        assert any(name in message for name in names), f"error names none of {names}: {message}"
        return None


DTYPES = [torch.float32, torch.float64, torch.float16, torch.uint8, torch.int64, torch.bool]
values = st.one_of(st.integers(-3, 70), st.floats(-2, 70), st.just(float("nan")),
                   st.just(float("inf")), st.text(max_size=3), st.booleans(), st.none())


@FUZZ
@given(model=st.one_of(st.sampled_from(["gaussian", "sigma", "sigma_flow"]), values),
       image_size=st.one_of(st.sampled_from([16, 32, 64]), values),
       num_attributes=st.one_of(st.just(10), values), latent_dim=st.one_of(st.just(8), values),
       flow_layers=st.one_of(st.just(2), values),
       flow_scale_bound=st.one_of(st.just(3.0), values),
       min_log_sigma=st.one_of(st.just(-6.0), values))
def test_cvae_config(model, image_size, num_attributes, latent_dim, flow_layers, flow_scale_bound,
                     min_log_sigma):
    arguments = dict(model=model, image_size=image_size, num_attributes=num_attributes,
                     latent_dim=latent_dim, flow_layers=flow_layers,
                     flow_scale_bound=flow_scale_bound, min_log_sigma=min_log_sigma)
    config = works_or_clear_error(lambda: CVAEConfig(**arguments), *arguments, "model", "image")
    if config is not None:
        assert config.image_size % 16 == 0 and config.flow_scale_bound > 0
        assert np.isfinite(config.min_log_sigma)


MODELS = {name: CVAE(CVAEConfig(model=name, image_size=16, num_attributes=3, latent_dim=4,
                                base_channels=4, prior_channels=4, flow_layers=2, flow_hidden=8))
          for name in ("gaussian", "sigma", "sigma_flow")}


@FUZZ
@given(name=st.sampled_from(sorted(MODELS)), batch=st.integers(0, 3),
       x_shape=st.sampled_from([None, (3, 16, 16), (3, 32, 32), (1, 16, 16), (16, 16), (3, 16)]),
       x_dtype=st.sampled_from(DTYPES), y_columns=st.integers(0, 5), y_ndim=st.integers(1, 3),
       y_dtype=st.sampled_from(DTYPES), y_batch_offset=st.sampled_from([0, 0, 1]),
       y_fill=st.sampled_from([0.0, 1.0, 0.5, -3.0, float("nan"), float("inf")]))
def test_cvae_loss_sample_reconstruct(name, batch, x_shape, x_dtype, y_columns, y_ndim, y_dtype,
                                      y_batch_offset, y_fill):
    model = MODELS[name]
    x = None if x_shape is None else torch.rand(batch, *x_shape).to(x_dtype)
    y_shape = [batch + y_batch_offset, y_columns, 1][:y_ndim]
    y = torch.full(y_shape, y_fill).to(y_dtype) if y_dtype.is_floating_point else \
        torch.randint(0, 2, y_shape).to(y_dtype)
    samples = works_or_clear_error(lambda: model.sample(y), "attributes y")
    if samples is not None:
        assert samples.shape == (len(y), 3, 16, 16) and samples.dtype == torch.float32
        assert torch.isfinite(samples).all()
    if x is None:
        return
    terms = works_or_clear_error(lambda: model.loss_terms(x, y), "images x", "attributes y")
    if terms is not None:
        assert torch.isfinite(terms["loss"]), terms
    recon = works_or_clear_error(lambda: model.reconstruct(x, y), "images x", "attributes y")
    if recon is not None:
        assert recon.shape == x.shape


@FUZZ
@given(temperature=st.one_of(st.floats(allow_nan=True), st.integers(-2, 3), st.text(max_size=2)),
       rows=st.integers(1, 3))
def test_sampling_temperature(temperature, rows):
    model = MODELS["sigma_flow"]
    samples = works_or_clear_error(lambda: model.sample(torch.zeros(rows, 3),
                                                        temperature=temperature), "temperature")
    if samples is not None and temperature < 1e6:  # beyond that exp overflows, as it should
        assert torch.isfinite(samples).all()


@FUZZ
@given(dim=values, num_layers=values, hidden=values, scale_bound=values)
def test_real_nvp_construction(dim, num_layers, hidden, scale_bound):
    arguments = dict(dim=dim, num_layers=num_layers, hidden=hidden, scale_bound=scale_bound)
    works_or_clear_error(lambda: RealNVP(**arguments), "RealNVP", *arguments)


FLOW = RealNVP(4, num_layers=2, hidden=8)


@FUZZ
@given(shape=st.lists(st.integers(0, 5), min_size=0, max_size=3), dtype=st.sampled_from(DTYPES),
       direction=st.sampled_from(["forward", "inverse"]))
def test_real_nvp_inputs(shape, dtype, direction):
    z = torch.randn(shape).to(dtype) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
    call = FLOW if direction == "forward" else FLOW.inverse
    result = works_or_clear_error(lambda: call(z), "RealNVP")
    if result is not None:
        out, logabsdet = result
        assert out.shape == z.shape and logabsdet.shape == (len(z),)


shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4)


@FUZZ
@given(x_shape=shapes, x_hat_shape=shapes, dtype=st.sampled_from(DTYPES),
       log_sigma=st.one_of(st.floats(-10, 10), st.sampled_from(["a", None])))
def test_reconstruction_losses(x_shape, x_hat_shape, dtype, log_sigma):
    def tensor(shape):
        return torch.rand(shape).to(dtype) if dtype.is_floating_point else \
            torch.zeros(shape, dtype=dtype)
    x, x_hat = tensor(x_shape), tensor(x_hat_shape)
    nll = works_or_clear_error(lambda: gaussian_nll(x, x_hat, log_sigma), "x", "log_sigma")
    if nll is not None:
        assert nll.shape == (x_shape[0],)
    result = works_or_clear_error(lambda: sigma_optimal_nll(x, x_hat), "x")
    if result is not None:
        assert result[0].shape == (x_shape[0],) and torch.isfinite(result[1])


@FUZZ
@given(mu_shape=shapes, sigma_shape=shapes, dtype=st.sampled_from(DTYPES))
def test_gaussian_kl_inputs(mu_shape, sigma_shape, dtype):
    mu = torch.randn(mu_shape).to(dtype) if dtype.is_floating_point else torch.zeros(mu_shape)
    log_sigma = torch.randn(sigma_shape)
    kl = works_or_clear_error(lambda: gaussian_kl(mu, log_sigma), "mu_q", "log_sigma_q")
    if kl is not None:
        assert (kl >= -1e-4).all()


@FUZZ
@given(image_shape=st.lists(st.integers(0, 33), min_size=1, max_size=5),
       image_dtype=st.sampled_from(DTYPES + ["numpy", "list"]),
       label_columns=st.integers(0, 3), label_rows_offset=st.sampled_from([0, 0, 1]),
       label_fill=st.sampled_from([0.0, 1.0, -1.0, 0.5, float("nan")]),
       names=st.one_of(st.just("auto"), st.text(max_size=3),
                       st.lists(st.sampled_from(["Male", "Male", "Smiling", 3]), max_size=3)))
def test_attribute_images(image_shape, image_dtype, label_columns, label_rows_offset, label_fill,
                          names):
    if image_dtype == "numpy":
        images = np.zeros(image_shape, dtype=np.uint8)
    elif image_dtype == "list":
        images = np.zeros(image_shape, dtype=np.uint8).tolist()
    else:
        images = torch.zeros(image_shape, dtype=image_dtype)
    rows = (image_shape[0] if image_shape else 0) + label_rows_offset
    labels = torch.full((rows, label_columns), label_fill)
    names = tuple(f"a{i}" for i in range(label_columns)) if names == "auto" else names
    data = works_or_clear_error(lambda: AttributeImages(images, labels, names),
                                "images", "labels", "attribute")
    if data is not None:
        assert data.images.dtype == torch.uint8 and len(data.labels) == len(data.images)
        assert set(data.labels.unique().tolist()) <= {0.0, 1.0}


@settings(max_examples=30, deadline=None)
@given(split=st.one_of(st.sampled_from(["train", "valid", "test"]), st.text(max_size=3)),
       image_size=st.one_of(st.sampled_from([16, 32]), values),
       num_images=st.one_of(st.integers(-2, 3), st.floats(0, 3), st.text(max_size=2), st.none()),
       seed=st.one_of(st.integers(-3, 2**40), st.text(max_size=2)),
       attributes=st.one_of(st.none(), st.lists(st.sampled_from(FACE_ATTRIBUTES + ("Smilng",)),
                                                max_size=3), st.text(max_size=4)))
def test_embedded_faces(split, image_size, num_images, seed, attributes):
    if num_images is None and split in ("train", "valid", "test"):
        num_images = 2  # a whole split takes seconds to draw; the None path is tested elsewhere
    data = works_or_clear_error(
        lambda: embedded_faces(split, image_size, num_images, seed, attributes),
        "split", "image_size", "num_images", "seed", "attribute")
    if data is not None:
        assert data.images.shape == (num_images, 3, image_size, image_size)
        assert data.attribute_names == tuple(attributes if attributes is not None
                                             else FACE_ATTRIBUTES)


@FUZZ
@given(epochs=st.one_of(st.just(2), values), batch_size=st.one_of(st.just(32), values),
       lr=st.one_of(st.just(1e-3), values), seed=st.one_of(st.just(0), values,
                                                             st.integers(-2**40, 2**40)),
       checkpoint_every=st.one_of(st.just(0), values), autocast=st.one_of(st.just("auto"), values))
@example(epochs=2, batch_size=32, lr=float("inf"), seed=0, checkpoint_every=0, autocast="auto")
@example(epochs=2, batch_size=32, lr=1e-3, seed=-1, checkpoint_every=0, autocast="auto")
@example(epochs=2, batch_size=32, lr=1e-3, seed=2**40, checkpoint_every=0, autocast="auto")
def test_train_config(epochs, batch_size, lr, seed, checkpoint_every, autocast):
    from cvae_tutorial import TrainConfig
    arguments = dict(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                     checkpoint_every=checkpoint_every, autocast=autocast, device="cpu")
    config = works_or_clear_error(lambda: TrainConfig(**arguments), *arguments)
    if config is not None:
        assert 0 < config.lr < float("inf") and 0 <= config.seed < 2**32
        torch.manual_seed(config.seed), np.random.seed(config.seed)  # the seeds train() sets


def test_inputs_on_another_device_than_the_model_are_a_clear_error():
    # "meta" stands in for a GPU: the same check answers before any CUDA kernel could assert
    model = CVAE(CVAEConfig(image_size=16, num_attributes=3, latent_dim=4)).to("meta")
    with pytest.raises(ValueError, match=r"attributes y is on cpu but the model is on meta; "
                                         r"move it with .to\('meta'\)"):
        model.sample(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="images x is on cpu but the model is on meta"):
        model.loss_terms(torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, device="meta"))
