"""What a resumed run must match, or say so in one line: the settings that define it (flip
included), the number of epochs it has already trained, the test set its history was
measured on, and the number of processes that shared its batches."""
import pytest
import torch

from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, embedded_faces, train
from cvae_tutorial.checkpoints import CheckpointError, load_checkpoint
from cvae_tutorial.training import resume

CONFIG = CVAEConfig(model="sigma", image_size=16, num_attributes=10, latent_dim=4,
                    base_channels=8)


@pytest.fixture(scope="module")
def faces():
    return embedded_faces("train", 16, num_images=64), embedded_faces("test", 16, num_images=32)


def run(faces, path, test_images=32, **changes):
    settings = dict(epochs=1, batch_size=32, device="cpu")
    train_data, test_data = faces
    return train(CVAE(CONFIG), train_data, test_data.subset(test_images),
                 TrainConfig(**{**settings, **changes}), path, progress=False)


@pytest.mark.parametrize("changed, named", [
    (dict(flip=False), "flip: checkpoint True vs asked False"),
    (dict(seed=1), "seed: checkpoint 0 vs asked 1"),
    (dict(batch_size=16), "batch_size: checkpoint 32 vs asked 16"),
])
def test_resuming_with_another_defining_setting_is_refused(faces, tmp_path, changed, named):
    path = tmp_path / "checkpoint.pt"
    run(faces, path)
    with pytest.raises(CheckpointError, match=rf"other training settings \({named}\)"):
        run(faces, path, epochs=2, **changed)


def test_resuming_with_fewer_epochs_than_trained_says_so(faces, tmp_path):
    path = tmp_path / "checkpoint.pt"
    run(faces, path, epochs=2)
    with pytest.raises(CheckpointError, match=r"has trained 2 epochs, more than the epochs=1 "
                                              r"asked; ask epochs=2 \(or more"):
        run(faces, path, epochs=1)
    assert len(run(faces, path, epochs=2)) == 2  # the same epochs: the finished run, as it was


def test_resuming_on_another_test_set_is_refused_before_mixing_histories(faces, tmp_path):
    path = tmp_path / "checkpoint.pt"
    run(faces, path, test_images=32)
    with pytest.raises(CheckpointError, match=r"tested on another test set \(count: checkpoint "
                                              r"32 vs now 8.*resume with the same test images"):
        run(faces, path, test_images=8, epochs=2)
    history = run(faces, path, test_images=32, epochs=2)
    assert len(history) == 2 and load_checkpoint(path)["test_data"]["count"] == 32


@pytest.mark.parametrize("saved, now", [(2, 1), (1, 2)])
def test_resuming_on_another_number_of_processes_is_refused(faces, tmp_path, monkeypatch,
                                                            saved, now):
    """The checkpoint records its world size; another one would splice the batches (a 2-process
    run resumed on 1 halves the global batch, and mid-epoch sees images twice)."""
    path = tmp_path / "checkpoint.pt"
    run(faces, path, epochs=1)
    state = load_checkpoint(path)
    assert state["world_size"] == 1 and state["images_seen_in_epoch"] == 0
    if saved != 1:  # as a 2-process run stopped mid-epoch records it
        state.update(world_size=saved, step_in_epoch=1)
        torch.save(state, path)
    monkeypatch.setattr(resume, "distributed_world", lambda: (0, now))
    with pytest.raises(CheckpointError, match=rf"trained on {saved} process\(es\) \(a global "
                                              rf"batch of {saved} x 32 images.*resuming on {now} "
                                              rf"would change the batches.*--nproc_per_node="
                                              rf"{saved}"):
        run(faces, path, epochs=2)
