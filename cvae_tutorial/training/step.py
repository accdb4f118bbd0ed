"""The training step: the model's loss on the device, under autocast, compiled and DDP-wrapped as
asked, and the Adam that steps it (the fast options of :class:`TrainConfig`, chapter 5)."""
from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn

from ..cvae import CVAE
from .distributed import distributed_world


class LossTerms(nn.Module):
    """``model.loss_terms`` as a module's forward, so DDP and torch.compile can wrap it."""

    def __init__(self, model: CVAE):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, y: Tensor) -> dict:
        return self.model.loss_terms(x, y, check_range=False)  # uint8 / 255: in range


def make_optimizer(model: nn.Module, lr: float, implementation: str) -> torch.optim.Adam:
    """Adam with the given implementation: 'fused', 'foreach' or 'for-loop'."""
    if implementation == "fused":
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=implementation == "foreach")


def can_skip_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether :func:`guarded_step` skips a non-finite step without a sync (the fused Adam)."""
    return all(group.get("fused") for group in optimizer.param_groups)


def guarded_step(optimizer: torch.optim.Optimizer, loss: Tensor) -> Tensor | None:
    """``optimizer.step()``, skipped on the device from the first non-finite ``loss`` (or
    gradient) on.

    The fused Adam takes a ``found_inf`` flag on the device (the one ``torch.amp.GradScaler``
    sets): when it is 1 the kernel leaves the weights, moments and step count as they were. The
    flag stays set, so the weights in memory remain those from before the first non-finite loss
    until the loop reads the losses back and stops the run; no host-device sync per step. The
    gradients' norm is checked too: under DDP they are averaged over the ranks, so every rank
    skips the same steps. Returns this step's flag (1.0: non-finite), on the device, for the
    loop to read back with the losses. Other optimizers cannot skip on the device (None): the
    loop checks their loss before each step instead.
    """
    if can_skip_on_device(optimizer):
        finite = torch.isfinite(loss.detach())
        if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
            grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                     if p.grad is not None]
            finite = finite & torch.isfinite(torch.nn.utils.get_total_norm(grads))
        bad = (~finite).float()
        previous = getattr(optimizer, "found_inf", None)
        optimizer.found_inf = bad if previous is None else torch.maximum(previous, bad)
        optimizer.step()
        return bad
    optimizer.step()
    return None


def backward_and_step(optimizer: torch.optim.Optimizer, loss: Tensor) -> Tensor | None:
    """One update from ``loss``: clear the gradients, backpropagate, :func:`guarded_step`
    (returns its flag)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return guarded_step(optimizer, loss)


def prepare_step(model: CVAE, config, device: torch.device,
                 optimizer: torch.optim.Optimizer | None = None):
    """Put ``model`` on ``device`` with the fast options; return ``(loss_fn, optimizer, options)``.

    ``loss_fn(x, y)`` gives ``model.loss_terms`` under autocast, compiled and DDP-wrapped as asked
    (DDP whenever a process group is initialised).
    """
    options = config.fast_options(device, model.config.model)
    model.to(device)
    if options["channels_last"]:
        model.to(memory_format=torch.channels_last)
    optimizer = optimizer or make_optimizer(model, config.lr, options["adam"])
    module = LossTerms(model)
    if distributed_world()[1] > 1:
        # the only buffer, σ*, is set from metrics reduced over ranks: no per-step buffer sync
        no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                          inspect.signature(nn.parallel.DistributedDataParallel).parameters
                          else {"broadcast_buffers": False})
        module = nn.parallel.DistributedDataParallel(
            module, device_ids=[torch.cuda.current_device() if device.index is None
                                else device.index] if device.type == "cuda" else None,
            **no_buffer_sync)
    if options["compile"] != "off":
        module = torch.compile(module, mode=options["compile"])
    dtype = options["autocast"]

    def loss_fn(x: Tensor, y: Tensor) -> dict:
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return module(x, y)

    return loss_fn, optimizer, options
