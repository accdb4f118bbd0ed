"""Before chapters 5–7 compute anything: their parameters checked beyond the types that
:func:`cvae_tutorial.parameters.check_parameters` checks, chapter 5's checkpoints found, or tiny
stand-in models trained when there are none. One function per job, so that a chapter's first
cells are the steps a reader should learn, and a bad parameter still fails in seconds, before
any data is read, with one line naming it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..checkpoints import checkpoint_path, load_model, seed_dir
from ..config import ConfigError, check_int
from ..cvae import CVAE, model_title, run_config
from ..data.images import AttributeImages
from ..evaluation import ClassifierConfig
from ..evaluation.runs import Run, locate_run, run_exists
from ..training import TrainConfig, train

STAND_IN_IMAGE_SIZE = 32  # the embedded faces' size when chapter 5's run is not there
STAND_IN_BATCH_SIZE = 64


def _non_empty(**lists) -> None:
    for name, values in lists.items():
        if not values:
            raise ConfigError(f"{name} must not be empty; with papermill pass a YAML list")


def _distinct(**lists) -> None:
    for name, values in lists.items():
        if len(set(values)) != len(values):
            raise ConfigError(f"{name} must differ from each other, got {values}")


def _check_models(models, **fields) -> None:
    for name in models:  # an unknown name or a bad size: the package's ConfigError
        run_config(name, **fields)


def check_training_parameters(models, seeds, *, image_size: int, latent_dim: int, epochs: int,
                              batch_size: int, lr: float, device: str) -> dict:
    """Chapter 5: ``models`` and ``seeds`` not empty, each listed once, the training settings
    and every model's configuration valid; returns {seed: TrainConfig}."""
    _non_empty(models=models, seeds=seeds)
    _distinct(models=models, seeds=seeds)
    configs = {seed: TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                 device=device) for seed in seeds}
    _check_models(models, image_size=image_size, latent_dim=latent_dim)
    return configs


def _check_stand_ins(epochs: int, device: str) -> None:
    TrainConfig(epochs=epochs, batch_size=STAND_IN_BATCH_SIZE, device=device)


def check_evaluation_parameters(models, seeds, *, latent_dim: int, classifier_epochs: int,
                                seed: int, standalone_epochs: int, device: str) -> None:
    """Chapter 6: ``models`` and ``seeds`` not empty and each listed once; the classifier's
    settings, the stand-ins' training settings and every model's configuration valid."""
    _non_empty(models=models, seeds=seeds)
    _distinct(models=models, seeds=seeds)
    ClassifierConfig(epochs=classifier_epochs, seed=seed)
    _check_stand_ins(standalone_epochs, device)
    _check_models(models, latent_dim=latent_dim)


def check_editing_parameters(models, grid_attributes, temperatures, *, edit_images: int,
                             num_samples: int, interpolation_steps: int, latent_dim: int,
                             classifier_epochs: int, seed: int, standalone_epochs: int,
                             device: str) -> None:
    """Chapter 7: the lists not empty, the temperatures numbers ≥ 0, the counts ints ≥ 2 (a
    count that is no int is a TypeError, as everywhere in the package); the classifier's
    settings, the stand-ins' training settings and every model's configuration valid."""
    _non_empty(models=models, grid_attributes=grid_attributes, temperatures=temperatures)
    _distinct(models=models)
    if any(isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0
           for t in temperatures):
        raise ConfigError(f"temperatures must be numbers >= 0, got {temperatures!r}")
    for name, value in (("edit_images", edit_images), ("num_samples", num_samples),
                        ("interpolation_steps", interpolation_steps)):
        check_int(name, value, minimum=2)
    ClassifierConfig(epochs=classifier_epochs, seed=seed)
    _check_stand_ins(standalone_epochs, device)
    _check_models(models, latent_dim=latent_dim)


def check_eval_samples(evaluate: bool, eval_samples: int, test_data: AttributeImages) -> None:
    """Chapter 5 with ``evaluate``: the Fréchet distance compares as many samples as test
    images, so more samples than test images is an error found now, not after the training."""
    if evaluate and eval_samples > len(test_data):
        raise ConfigError(f"eval_samples={eval_samples} exceeds the {len(test_data)} test "
                          "images; lower eval_samples or raise test_images")


def table_titles(models) -> dict:
    """{run name: its title for a Markdown table}: a "|" in a title, as in q(z|x,y), would end
    the table's cell, so it is escaped."""
    return {name: model_title(name).replace("|", "\\|") for name in models}


@dataclass(frozen=True)
class Checkpoints:
    """Where a chapter reads its models: chapter 5's ``run`` in ``run_dir`` at its
    ``image_size``, or (``stand_ins``) none there, so tiny models are to be trained in
    ``run_dir`` (the chapter's ``standalone_dir``) at :data:`STAND_IN_IMAGE_SIZE`."""

    run_dir: str
    image_size: int
    stand_ins: bool
    run: Run | None
    message: str


def find_checkpoints(run_dir, models, seeds, standalone_dir, standalone_epochs: int
                     ) -> Checkpoints:
    """Chapter 5's checkpoints of ``models`` × ``seeds`` in ``run_dir``; a folder holding none
    at all means stand-ins in ``standalone_dir``. A folder with some checkpoints but not the
    asked ones is an error naming what is missing (:func:`locate_run`)."""
    if not run_exists(run_dir):
        return Checkpoints(str(standalone_dir), STAND_IN_IMAGE_SIZE, True, None,
                           f"no checkpoints in {run_dir}: training tiny models "
                           f"({standalone_epochs} epochs) in {standalone_dir}")
    run = locate_run(run_dir, models, seeds)  # a missing model or seed: one line
    image_size = load_model(run.found[0].path).config.image_size
    return Checkpoints(str(run_dir), image_size, False, run,
                       f"reading chapter 5's checkpoints in {run_dir}, seeds "
                       f"{', '.join(map(str, seeds))} ({image_size}x{image_size})")


def train_stand_ins(models, seeds, train_data: AttributeImages, test_data: AttributeImages,
                    folder, *, epochs: int, latent_dim: int, device: str = "auto") -> str:
    """Tiny models, one per model and seed, in ``folder/seed<k>/<model>/checkpoint.pt`` (a
    finished one is only loaded): they keep a chapter executable without chapter 5's run and
    say nothing about well-trained models. Returns ``folder`` (as a str, as the chapters
    pass their folders)."""
    for seed in seeds:
        for name in models:
            model = CVAE(run_config(name, image_size=train_data.image_size,
                                    latent_dim=latent_dim,
                                    num_attributes=train_data.num_attributes))
            config = TrainConfig(epochs=epochs, batch_size=STAND_IN_BATCH_SIZE, seed=seed,
                                 device=device)
            train(model, train_data, test_data, config,
                  checkpoint_path(seed_dir(folder, seed), name), progress=False)
    return str(folder)
