"""Batches of an :class:`AttributeImages`: which indices (a pure function of seed and epoch), and
the images on the device, gathered ahead by a background thread while the step runs (chapter 5).
"""
from __future__ import annotations

import queue
import threading

import torch
from torch import Tensor

from ..config import ConfigError
from .images import AttributeImages, to_float


def epoch_batches(num_images: int, batch_size: int, seed: int, epoch: int,
                  rank: int = 0, world_size: int = 1):
    """This rank's index batches of one epoch: a pure function of (seed, epoch)."""
    sampler = torch.utils.data.DistributedSampler(range(num_images), num_replicas=world_size,
                                                  rank=rank, shuffle=True, seed=seed,
                                                  drop_last=True)
    sampler.set_epoch(epoch)
    indices = torch.tensor(list(sampler))
    usable = len(indices) // batch_size * batch_size  # full batches: σ* is a batch statistic
    if usable == 0:
        raise ConfigError(f"batch_size={batch_size} is larger than the {len(indices)} training "
                          f"images of each process; lower batch_size")
    return indices[:usable].view(-1, batch_size)


def flip_mask(num_images: int, seed: int, epoch: int) -> Tensor:
    """Which images are mirrored in epoch ``epoch``: also a pure function of (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.rand(num_images, generator=generator) < 0.5


def gather_batch(data: AttributeImages, indices: Tensor, flips: Tensor | None = None,
                 pin_memory: bool = False):
    """The uint8 images, labels and mirror flags of ``indices`` on the host (page-locked if
    ``pin_memory``, so the copy to the GPU can overlap the step)."""
    images = torch.empty((len(indices), *data.images.shape[1:]), dtype=torch.uint8,
                         pin_memory=pin_memory)
    torch.index_select(data.images, 0, indices, out=images)
    labels = torch.empty((len(indices), data.labels.shape[1]), pin_memory=pin_memory)
    torch.index_select(data.labels, 0, indices, out=labels)
    return images, labels, None if flips is None else flips[indices]


def batch_to_device(images: Tensor, labels: Tensor, mirror: Tensor | None,
                    device: torch.device, channels_last: bool = False):
    """uint8 images -> float [0, 1] on ``device``, mirrored there (augmentation on the device;
    flipped while still uint8, a quarter of the memory traffic of flipping floats)."""
    images = images.to(device, non_blocking=True)
    if mirror is not None:
        mirror = mirror.to(device, non_blocking=True).view(-1, 1, 1, 1)
        images = torch.where(mirror, images.flip(-1), images)
    x = to_float(images)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, labels.to(device, non_blocking=True)


def load_batch(data: AttributeImages, indices: Tensor, device: torch.device,
               flips: Tensor | None = None):
    """Images as float [0, 1] on ``device`` (flipped where ``flips``) and their labels."""
    return batch_to_device(*gather_batch(data, indices, flips), device)


def iterate_batches(data: AttributeImages, batches, device: torch.device,
                    flips: Tensor | None = None, pin_memory: bool = False,
                    channels_last: bool = False, prefetch: bool = True, depth: int = 2):
    """Yield ``(x, y)`` on ``device`` for each index batch; with ``prefetch`` a background thread
    gathers the next ``depth`` batches while the caller computes (torch ops release the GIL).

    On a GPU the thread fills page-locked host buffers and the caller issues the non-blocking copy,
    flip and conversion on the GPU; on a CPU the thread prepares the finished batch."""
    if not prefetch:
        for indices in batches:
            yield batch_to_device(*gather_batch(data, indices, flips, pin_memory), device,
                                  channels_last)
        return
    ready, stop = queue.Queue(maxsize=depth), threading.Event()

    def gather_all():
        try:
            for indices in batches:
                item = gather_batch(data, indices, flips, pin_memory)
                if device.type == "cpu":
                    item = batch_to_device(*item, device, channels_last)
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as error:  # handed to the consumer, raised there
            ready.put(error)

    worker = threading.Thread(target=gather_all, daemon=True, name="batch-prefetch")
    worker.start()
    try:
        for _ in range(len(batches)):
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            yield item if device.type == "cpu" else batch_to_device(*item, device, channels_last)
    finally:
        stop.set()
        worker.join()
