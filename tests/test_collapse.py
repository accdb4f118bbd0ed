"""Posterior collapse is said during training: one warning naming the run and the likely cause."""
import warnings


from cvae_tutorial.cvae import CVAE, CVAEConfig
from cvae_tutorial.training import TrainConfig, train
from cvae_tutorial.training.collapse import (COLLAPSE_EPOCHS, COLLAPSE_KL,
                                             PosteriorCollapseWarning, warn_on_collapse)


def collapse_warnings(kls, name="sigma_flow"):
    """The collapse warnings given while a history with these training KLs grows."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(1, len(kls) + 1):
            warn_on_collapse([{"train_kl": kl} for kl in kls[:epoch]], name)
    return [w for w in caught if issubclass(w.category, PosteriorCollapseWarning)]


def test_a_kl_near_zero_for_several_epochs_warns_once_per_streak():
    low, high = COLLAPSE_KL / 2, 20.0
    assert collapse_warnings([low] * (COLLAPSE_EPOCHS - 1) + [high] + [low] * 2) == []
    assert len(collapse_warnings([low] * (COLLAPSE_EPOCHS + 3))) == 1  # once, not every epoch
    # a streak that ends and comes back is a second warning
    assert len(collapse_warnings([low] * COLLAPSE_EPOCHS + [high] + [low] * COLLAPSE_EPOCHS)) == 2
    assert collapse_warnings([high] * 6) == []


def test_the_warning_names_the_run_and_its_likely_cause():
    (gaussian,) = collapse_warnings([0.0] * COLLAPSE_EPOCHS, "gaussian_qxy")
    assert "'gaussian_qxy'" in str(gaussian.message) and "σ of 1" in str(gaussian.message)
    (recipe,) = collapse_warnings([0.0] * COLLAPSE_EPOCHS, "mse_kl")
    assert "lower kl_weight" in str(recipe.message)


def test_training_warns_on_a_collapsed_run(faces32):
    """A KL weight far too large collapses the recipe's posterior; a σ-CVAE does not."""
    train_data, test_data = faces32
    settings = TrainConfig(epochs=COLLAPSE_EPOCHS, batch_size=32, device="cpu")
    for name, expected in (("mse_kl", 1), ("sigma", 0)):
        model = CVAE(CVAEConfig(model=name, image_size=32, num_attributes=10, latent_dim=8,
                                base_channels=8, kl_weight=100.0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = train(model, train_data.subset(512), test_data.subset(64), settings,
                            progress=False)
        said = [w for w in caught if issubclass(w.category, PosteriorCollapseWarning)]
        assert len(said) == expected, [row["train_kl"] for row in history]
        if expected:
            assert "'mse_kl'" in str(said[0].message)
