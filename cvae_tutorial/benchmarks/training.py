"""Training throughput, side by side in one run:
``python -m cvae_tutorial.benchmarks train [options]``.

1. Loader images/s: the per-image JPEG pipeline (``CelebAJPEGs`` + ``DataLoader`` workers) against
   the decoded uint8 cache (batches gathered by the prefetch thread), on a generated folder of
   CelebA-sized 178x218 JPEGs, so it runs anywhere.
2. Training images/s of each model at 64x64, at batch 128 (chapter 5's command; ``--batch-size``
   for others), with the fast options off and on (on: the ``TrainConfig`` defaults, resolved for
   the device and model; with ``--cpu-bf16`` on a CPU also with bf16 autocast, which "auto"
   leaves off there), through the real data path, and the same step fed one batch already on
   the device (step-only): their ratio says whether data starves the step. From the data-path
   rate, the time of one CelebA epoch (162,770 training images).
3. Forward+backward FLOPs per image (``torch.utils.flop_counter``) and the achieved fraction of
   the device's measured matmul peak in the step's dtype, and of the bf16 peak (on CUDA; a CPU
   has none measured here).

A benchmark, never a timed test: machines are shared and noisy; compare ratios from one run.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError, check_image_size, resolve_device
from ..cvae import CVAE, MODEL_NAMES, PAPER_MODEL_NAMES, CVAEConfig
from ..data.batches import epoch_batches, flip_mask, iterate_batches
from ..data.cache import default_num_workers
from ..data.celeba import CELEBA_ATTRIBUTES, CelebAJPEGs, load_celeba
from ..data.images import AttributeImages, to_float
from ..training.loop import FAST_OPTION_CHOICES, TrainConfig
from ..training.step import backward_and_step, prepare_step
from .celeba_folder import write_celeba_folder

FAST_OFF = dict(autocast="off", channels_last="off", adam="for-loop", prefetch=False,
                pin_memory=False, compile="off")
CELEBA_TRAIN_IMAGES = 162_770  # the official training split: one epoch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_throughput(root: Path, image_size: int, batch_size: int, workers: int,
                      device: torch.device, min_seconds: float = 1.0) -> dict:
    """Images/s to float batches on ``device``: JPEG decoding per image vs the uint8 cache."""
    jpegs = CelebAJPEGs(root, "train", image_size)
    loader = torch.utils.data.DataLoader(jpegs, batch_size=batch_size, shuffle=True,
                                         num_workers=workers, drop_last=True,
                                         pin_memory=device.type == "cuda")
    started, count = time.perf_counter(), 0
    for images, _ in loader:  # one epoch: every image decoded, cropped, resized
        x = to_float(images.to(device, non_blocking=True))
        x = torch.where(torch.rand(len(x), 1, 1, 1, device=device) < 0.5, x.flip(-1), x)
        count += len(x)
    synchronize(device)
    jpeg_rate = count / (time.perf_counter() - started)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache_dir:
        load_celeba(root, "train", image_size, cache_dir=cache_dir, num_workers=workers)
        build_seconds = time.perf_counter() - started
        data = load_celeba(root, "train", image_size, cache_dir=cache_dir)  # memory-mapped
        started, count, epoch = time.perf_counter(), 0, 0
        while time.perf_counter() - started < min_seconds or epoch == 0:
            batches = epoch_batches(len(data), batch_size, 0, epoch)
            for x, _ in iterate_batches(data, batches, device, flip_mask(len(data), 0, epoch),
                                        pin_memory=device.type == "cuda"):
                count += len(x)
            epoch += 1
        synchronize(device)
        cache_rate = count / (time.perf_counter() - started)
    return {"jpeg_images_per_s": jpeg_rate, "cache_images_per_s": cache_rate,
            "cache_build_s": build_seconds, "images": len(jpegs), "workers": workers}


def random_dataset(num_images: int, image_size: int, seed: int = 0) -> AttributeImages:
    """Random uint8 images with CelebA's 40 attributes: the step's cost ignores the content."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (num_images, 3, image_size, image_size), dtype=torch.uint8,
                           generator=generator)
    labels = torch.randint(0, 2, (num_images, len(CELEBA_ATTRIBUTES)), generator=generator)
    return AttributeImages(images, labels.float(), CELEBA_ATTRIBUTES)


def flops_per_image(model_config: CVAEConfig, batch_size: int = 16) -> float:
    """Forward+backward FLOPs of one training image (counted on the CPU in float32)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = CVAE(model_config)
    data = random_dataset(batch_size, model_config.image_size)
    x, y = to_float(data.images), data.labels
    with FlopCounterMode(display=False) as counter:
        model.loss_terms(x, y)["loss"].backward()
    return counter.get_total_flops() / batch_size


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int, trials: int = 5) -> float:
    """Measured FLOP/s of a large square matmul, the best of ``trials``: the device's practical
    ceiling (the best, since other work on a shared machine only ever slows a trial down)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(trials):
        synchronize(device)
        started = time.perf_counter()
        a @ b
        synchronize(device)
        best = max(best, 2 * size**3 / (time.perf_counter() - started))
    return best


class TrainingSetup:
    """One model with one set of options, ready to time its training step."""

    def __init__(self, model_name: str, config: TrainConfig, data: AttributeImages):
        self.device = resolve_device(config.device)
        torch.manual_seed(0)
        model = CVAE(CVAEConfig(model=model_name, image_size=data.image_size,
                                num_attributes=data.num_attributes))
        self.loss_fn, self.optimizer, options = prepare_step(model, config, self.device)
        self.options = {k: (str(v).replace("torch.", "") if v is not None else "off")
                        for k, v in options.items()}
        self.stream = self._endless_batches(data, config, options)
        self.resident = None

    def _endless_batches(self, data, config, options):
        epoch = 0
        while True:  # the real data path: prefetching, pinning, flips, channels_last
            batches = epoch_batches(len(data), config.batch_size, 0, epoch)
            yield from iterate_batches(data, batches, self.device,
                                       flip_mask(len(data), 0, epoch), options["pin_memory"],
                                       options["channels_last"], config.prefetch)
            epoch += 1

    def step(self, x, y):
        terms = self.loss_fn(x, y)
        backward_and_step(self.optimizer, terms["loss"])  # as the training loop steps
        return terms["loss"].detach()

    def seconds(self, steps: int, resident: bool = False) -> float:
        """Wall time of ``steps`` steps fed by the data path, or by one batch on the device."""
        if steps == 0:
            return 0.0
        synchronize(self.device)
        started = time.perf_counter()
        for _ in range(steps):
            if resident:
                loss = self.step(*self.resident)
            else:
                x, y = next(self.stream)
                loss = self.step(x, y)
                self.resident = (x, y)
        synchronize(self.device)
        elapsed = time.perf_counter() - started
        if not math.isfinite(loss.item()):
            raise FloatingPointError("non-finite loss while benchmarking")
        return elapsed


def training_throughput(model_name: str, configs: dict, data: AttributeImages, rounds: int,
                        steps: int, warmup: int) -> dict:
    """Images/s of each named config, through the data path and step-only (a resident batch).

    The configs take turns, round after round, and each reports its median round: on a shared
    machine the load drifts, and interleaving lets every config see the same drift.
    """
    setups = {label: TrainingSetup(model_name, config, data) for label, config in configs.items()}
    for setup in setups.values():
        setup.seconds(warmup)
    times = {label: {"data": [], "resident": []} for label in setups}
    for _ in range(rounds):
        for label, setup in setups.items():
            times[label]["data"].append(setup.seconds(steps))
            times[label]["resident"].append(setup.seconds(steps, resident=True))
    results = {}
    for label, setup in setups.items():
        batch = configs[label].batch_size
        results[label] = {
            "images_per_s": steps * batch / float(np.median(times[label]["data"])),
            "step_only_images_per_s": steps * batch / float(np.median(times[label]["resident"])),
            "options": setup.options}
    return results


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m cvae_tutorial.benchmarks train",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--jpeg-images", type=int, default=1024,
                        help="generated 178x218 JPEGs for the loader comparison")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader/cache workers (default: the usable cores, at most 8)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", "--batch-sizes", dest="batch_sizes", type=int, nargs="+",
                        default=[128], help="batch sizes to time (default: 128, chapter 5's)")
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES,
                        default=list(PAPER_MODEL_NAMES))
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds in which the off and on settings take turns (median kept)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per setting and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--compile", nargs="?", const="default", default="auto",
                        choices=FAST_OPTION_CHOICES["compile"],
                        help="compile mode of the 'on' setting (bare --compile: 'default'; auto: "
                             "TrainConfig's choice for the model and device)")
    parser.add_argument("--cpu-bf16", action="store_true",
                        help="on a CPU also time the 'on' setting with bf16 autocast")
    parser.add_argument("--matmul-size", type=int, default=2048)
    args = parser.parse_args(argv)
    for name in ("jpeg_images", "image_size", "rounds", "steps", "matmul_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    args.batch_sizes = sorted(set(args.batch_sizes))
    if min(args.batch_sizes) < 1:
        parser.error("--batch-size must be at least 1")
    if args.jpeg_images < min(args.batch_sizes):
        parser.error(f"--jpeg-images ({args.jpeg_images}) must be at least --batch-size "
                     f"({min(args.batch_sizes)}) for one full batch")
    try:
        check_image_size(args.image_size)
        args.device = resolve_device(args.device)
    except ConfigError as error:
        parser.error(str(error))
    return args


def main(argv=None) -> dict:
    args = _parse_args(argv)
    device = args.device
    workers = default_num_workers() if args.workers is None else args.workers
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; {os.cpu_count()} cores visible")
    results = {"device": name}

    with tempfile.TemporaryDirectory() as root:
        write_celeba_folder(root, [0] * args.jpeg_images, num_workers=workers)
        loader = loader_throughput(Path(root), args.image_size, min(args.batch_sizes), workers,
                                   device)
    results["loader"] = loader
    print(f"\n1. loader, {loader['images']} CelebA-sized JPEGs -> {args.image_size}px, "
          f"{workers} worker(s):\n"
          f"   per-image JPEG pipeline {loader['jpeg_images_per_s']:10.0f} images/s\n"
          f"   uint8 cache             {loader['cache_images_per_s']:10.0f} images/s   "
          f"ratio {loader['cache_images_per_s'] / loader['jpeg_images_per_s']:.1f}x "
          f"(cache built once in {loader['cache_build_s']:.1f} s)")

    peak_dtypes = (torch.float32, torch.bfloat16) if device.type == "cuda" else (torch.float32,)
    peaks = {str(dtype).replace("torch.", ""): matmul_peak(device, dtype, args.matmul_size)
             for dtype in peak_dtypes}
    flops = {model_name: flops_per_image(CVAEConfig(model=model_name, image_size=args.image_size,
                                                    num_attributes=len(CELEBA_ATTRIBUTES)))
             for model_name in args.models}
    results["training"] = {}
    for batch_size in args.batch_sizes:
        data = random_dataset(8 * batch_size, args.image_size)
        results["training"][batch_size] = rows = {}
        for model_name in args.models:
            settings = [("off", FAST_OFF), ("on", {"compile": args.compile})]
            if args.cpu_bf16 and device.type == "cpu":  # "auto" keeps float32 on a CPU
                settings.append(("on+bf16", {"compile": args.compile, "autocast": "bf16"}))
            configs = {label: TrainConfig(batch_size=batch_size, device=str(device), **options)
                       for label, options in settings}
            rows[model_name] = {"flops_per_image": flops[model_name],
                                **training_throughput(model_name, configs, data, args.rounds,
                                                      args.steps, args.warmup)}
            for dtype in peak_dtypes:  # the load drifts: keep the best peak seen during the run
                name = str(dtype).replace("torch.", "")
                peaks[name] = max(peaks[name], matmul_peak(device, dtype, args.matmul_size))
    results["matmul_peak_flops"] = peaks

    for batch_size, rows in results["training"].items():
        _print_training(rows, peaks, batch_size, args)
    return results


def _print_training(rows: dict, peaks: dict, batch_size: int, args) -> None:
    """Step 2./3. of the report for one batch size: images/s, data-path share, the CelebA
    epoch's time and the fractions of the matmul peaks."""
    epoch_images = CELEBA_TRAIN_IMAGES // batch_size * batch_size  # full batches only
    print(f"\n2./3. training at {args.image_size}px, batch {batch_size}, median of "
          f"{args.rounds} interleaved rounds of {args.steps} steps; matmul peak "
          + ", ".join(f"{k} {v / 1e12:.3f} TFLOP/s" for k, v in peaks.items())
          + ("" if "bfloat16" in peaks else " (bf16 peak: not measured on a CPU)"))
    for model_name, row in rows.items():
        flops = row["flops_per_image"]
        print(f"   {model_name:<10} {flops / 1e9:6.2f} GFLOP/image (fwd+bwd)")
        for label in [key for key in row if key != "flops_per_image"]:
            r = row[label]
            peak = peaks["bfloat16" if r["options"]["autocast"] == "bfloat16"
                         and "bfloat16" in peaks else "float32"]
            r["fraction_of_peak"] = flops * r["images_per_s"] / peak
            r["fraction_of_bf16_peak"] = (flops * r["images_per_s"] / peaks["bfloat16"]
                                          if "bfloat16" in peaks else None)
            r["celeba_epoch_s"] = epoch_images / r["images_per_s"]
            bf16 = "n/a" if r["fraction_of_bf16_peak"] is None else \
                f"{r['fraction_of_bf16_peak']:.1%}"
            print(f"     fast {label:<7} {r['images_per_s']:8.0f} images/s "
                  f"(step only {r['step_only_images_per_s']:8.0f}; data path keeps "
                  f"{r['images_per_s'] / r['step_only_images_per_s']:4.0%}), CelebA epoch "
                  f"{r['celeba_epoch_s']:7.0f} s, {r['fraction_of_peak']:6.1%} of matmul peak, "
                  f"{bf16} of bf16 peak   "
                  + " ".join(f"{k}={v}" for k, v in r["options"].items()))
        print("     speed-up vs off: " + ", ".join(
            f"{label} {row[label]['images_per_s'] / row['off']['images_per_s']:.2f}x"
            for label in row if label not in ("flops_per_image", "off")))
