"""A DDP run resumed on another number of processes (torchrun's --nproc_per_node) refuses in one
line instead of splicing its batches: 2 -> 1 at an epoch boundary and mid-epoch, and 1 -> 2."""
import shutil

import pytest
import torch
import torch.multiprocessing as mp

from cvae_tutorial import CVAE, TrainConfig, embedded_faces, train
from cvae_tutorial.checkpoints import CheckpointError, load_checkpoint

from test_distributed import BATCH, CONFIG, NUM_IMAGES, free_port, train_one_rank


def one_process(path, epochs):
    torch.manual_seed(0)
    return train(CVAE(CONFIG), embedded_faces("train", 16, num_images=NUM_IMAGES),
                 embedded_faces("test", 16, num_images=64),
                 TrainConfig(epochs=epochs, batch_size=BATCH, device="cpu", checkpoint_every=3),
                 path, progress=False)


def test_a_two_process_checkpoint_resumed_on_one_is_refused(tmp_path):
    mp.spawn(train_one_rank, args=(2, free_port(), tmp_path), nprocs=2, join=True)
    path = tmp_path / "run" / "checkpoint.pt"
    mid_epoch = tmp_path / "mid" / "checkpoint.pt"  # the save before the last: step 3 of epoch 1
    mid_epoch.parent.mkdir()
    shutil.copy(path.with_name("checkpoint.pt.prev"), mid_epoch)
    assert load_checkpoint(mid_epoch)["step_in_epoch"] == 3
    assert load_checkpoint(path)["world_size"] == 2
    for checkpoint, where in ((path, r"epoch 2, image 0"), (mid_epoch, r"epoch 1, image 192")):
        with pytest.raises(CheckpointError, match=rf"trained on 2 process\(es\) \(a global batch "
                                                  rf"of 2 x 32 images, stopped at {where} of it\);"
                                                  rf" resuming on 1 would change the batches"):
            one_process(checkpoint, epochs=3)


def test_a_one_process_checkpoint_resumed_on_two_is_refused(tmp_path):
    one_process(tmp_path / "run" / "checkpoint.pt", epochs=1)
    with pytest.raises(Exception, match=r"trained on 1 process\(es\).*resuming on 2 would change "
                                        r"the batches"):
        mp.spawn(train_one_rank, args=(2, free_port(), tmp_path), nprocs=2, join=True)
