"""Where a training step's time goes: ``python -m cvae_tutorial.benchmarks profile [options]``.

Runs :func:`cvae_tutorial.train` (the real epoch loop: data path, loss, backward, Adam, the loss
read-back) under ``torch.profiler`` twice, for ``--steps`` and for twice as many steps, and
reports the difference per step: what one more step costs, with the run's fixed costs (set-up,
the epoch-end evaluation) cancelled out. Per step it counts aten operators, kernel launches (on a
GPU) and the calls that make the host wait for the device (``.item()``, ``bool(tensor)``,
stream/device synchronisation), apart for those inside the optimizer's step: on a CPU they
cost nothing but are the same calls, so a CPU profile already shows which a GPU step would make
(except Adam's own: its step counters live on the host unless it is fused, and the CPU's fused
kernel reads them there too).
"""
from __future__ import annotations

import argparse
from collections import Counter

import torch
from torch.profiler import ProfilerActivity, profile

from ..config import ConfigError, check_image_size, resolve_device
from ..cvae import CVAE, MODEL_NAMES, PAPER_MODEL_NAMES, CVAEConfig
from ..training.loop import FAST_OPTION_CHOICES, TrainConfig, train
from .training import random_dataset

# the calls that wait for the device on CUDA (aten::item reaches _local_scalar_dense)
SYNC_EVENTS = ("aten::_local_scalar_dense", "aten::is_nonzero", "cudaStreamSynchronize",
               "cudaDeviceSynchronize", "cudaEventSynchronize")
LAUNCH_EVENTS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx",
                 "cudaGraphLaunch")


def _count_events(model_name: str, config: TrainConfig, steps: int, image_size: int) -> Counter:
    data = random_dataset(steps * config.batch_size, image_size)
    test = random_dataset(1, image_size, seed=1)
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(model=model_name, image_size=image_size,
                            num_attributes=data.num_attributes))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if config.device.startswith("cuda") else [])
    with profile(activities=activities) as trace:
        train(model, data, test, config, progress=False)
    events = trace.events()
    optimizer_steps = [(e.time_range.start, e.time_range.end) for e in events
                       if e.name.startswith("Optimizer.step#")]
    counts = Counter(event.name for event in events)
    counts.update(f"optimizer {event.name}" for event in events if event.name in SYNC_EVENTS
                  and any(start <= event.time_range.start <= end
                          for start, end in optimizer_steps))
    return counts


def profile_step(model_name: str, config: TrainConfig, steps: int, image_size: int) -> dict:
    """Per-step counts of aten ops, kernel launches and syncs: (2n steps - n steps) / n."""
    once = _count_events(model_name, config, steps, image_size)
    twice = _count_events(model_name, config, 2 * steps, image_size)
    per_step = {name: (twice[name] - once[name]) / steps for name in twice}
    return {"aten_ops": sum(v for k, v in per_step.items() if k.startswith("aten::")),
            "kernel_launches": sum(per_step.get(k, 0) for k in LAUNCH_EVENTS),
            "syncs": {k: v for k, v in ((k, per_step.get(k, 0) - per_step.get(f"optimizer {k}", 0))
                                        for k in SYNC_EVENTS) if v},
            "optimizer_syncs": {k: per_step[f"optimizer {k}"] for k in SYNC_EVENTS
                                if per_step.get(f"optimizer {k}")},
            "top": sorted(((v, k) for k, v in per_step.items() if k.startswith("aten::")),
                          reverse=True)[:8]}


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m cvae_tutorial.benchmarks profile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES,
                        default=list(PAPER_MODEL_NAMES))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32,
                        help="images per step (the counts do not depend on it)")
    parser.add_argument("--steps", type=int, default=4, help="n: runs of n and 2n steps")
    for name, choices in FAST_OPTION_CHOICES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", choices=choices, default="auto")
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        check_image_size(args.image_size)
        args.device = str(resolve_device(args.device))
    except ConfigError as error:
        parser.error(str(error))
    return args


def main(argv=None) -> dict:
    args = _parse_args(argv)
    options = {name: getattr(args, name) for name in FAST_OPTION_CHOICES}
    config = TrainConfig(epochs=1, batch_size=args.batch_size, device=args.device, **options)
    print(f"profile on {args.device}, {args.image_size}px, batch {args.batch_size}: per step, "
          f"the difference of {2 * args.steps} and {args.steps} steps of train(); options "
          + " ".join(f"{k}={v}" for k, v in options.items()))
    results = {}
    for model_name in args.models:
        row = results[model_name] = profile_step(model_name, config, args.steps,
                                                 args.image_size)
        syncs, in_adam = (", ".join(f"{k} {v:g}" for k, v in row[key].items()) or "none"
                          for key in ("syncs", "optimizer_syncs"))
        print(f"  {model_name:<10} aten ops {row['aten_ops']:6.0f}   kernel launches "
              f"{row['kernel_launches']:5.0f}   host-device syncs: {syncs} (inside Adam's "
              f"step: {in_adam})\n"
              f"             most called: "
              + ", ".join(f"{k.removeprefix('aten::')} {v:g}" for v, k in row["top"]))
    return results
