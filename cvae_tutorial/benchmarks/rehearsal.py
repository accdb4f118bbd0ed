"""A full-scale CelebA rehearsal: ``python -m cvae_tutorial.benchmarks rehearsal [options]``.

Writes a CelebA-sized folder in torchvision's layout (by default 202,599 generated 178x218 JPEGs,
CelebA's 40 attribute names, the official split of 162,770 / 19,867 / 19,962), then runs chapter
5's code path on it: the cache build (``load_dataset("celeba", ...)``), the models trained with
checkpoints (``train``; the paper's three unless ``--models``), and their evaluation
(``evaluate_run``), and prints the time of each phase. It checks a machine before CelebA is
downloaded: the times are those of the real dataset (the pictures are generated faces, so the
metrics mean nothing).

A folder written before (same image count) is reused; delete it to time the writing again.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ..checkpoints import checkpoint_path
from ..config import ConfigError, check_image_size, resolve_device
from ..cvae import CVAE, MODEL_NAMES, PAPER_MODEL_NAMES, CVAEConfig
from ..data import load_dataset
from ..data.cache import default_num_workers
from ..training.loop import TrainConfig, train
from .celeba_folder import CELEBA_SPLIT_SIZES, official_partitions, write_celeba_folder


def _written_before(root: Path, num_images: int) -> bool:
    partition = root / "celeba" / "list_eval_partition.txt"
    if not partition.exists():
        return False
    with open(partition) as lines:
        return sum(1 for _ in lines) == num_images


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m cvae_tutorial.benchmarks rehearsal",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="celeba-rehearsal",
                        help="folder for the generated celeba/, its cache and the run's "
                             "checkpoints (default: ./celeba-rehearsal)")
    parser.add_argument("--images", type=int, default=sum(CELEBA_SPLIT_SIZES),
                        help="generated JPEGs, split in the official proportions (default: "
                             "CelebA's 202,599)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES,
                        default=list(PAPER_MODEL_NAMES))
    parser.add_argument("--workers", type=int, default=None,
                        help="processes writing the JPEGs and building the cache (default: the "
                             "usable cores, at most 8)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--eval-samples", type=int, default=10_000,
                        help="generated images for the Fréchet distance (at most the test split)")
    parser.add_argument("--iw-samples", type=int, default=100,
                        help="importance samples K per test image for the IW-NLL")
    parser.add_argument("--feature-space", choices=("auto", "inception", "attribute"),
                        default="auto", help="the Fréchet distance's features (auto: FID when "
                        "pytorch-fid's Inception weights are found, else FD_attr)")
    parser.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth")
    args = parser.parse_args(argv)
    for name in ("images", "epochs", "latent_dim", "batch_size", "eval_samples", "iw_samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.images < 3:
        parser.error("--images must be at least 3 (one per split)")
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must be at least 0")
    try:
        check_image_size(args.image_size)
        args.device = str(resolve_device(args.device))
    except ConfigError as error:
        parser.error(str(error))
    partitions = official_partitions(args.images)
    args.partitions = partitions
    if args.batch_size > partitions.count(0):
        parser.error(f"--batch-size {args.batch_size} exceeds the {partitions.count(0)} training "
                     f"images; raise --images or lower --batch-size")
    if args.eval_samples > partitions.count(2):
        args.eval_samples = max(2, partitions.count(2))  # all the test split has
    return args


def main(argv=None) -> dict:
    args = _parse_args(argv)
    root = Path(args.out)
    workers = default_num_workers() if args.workers is None else args.workers
    runs = root / "runs"
    phases = {}
    print(f"rehearsal in {root}: {args.images} images ({args.partitions.count(0)} train, "
          f"{args.partitions.count(1)} valid, {args.partitions.count(2)} test) at "
          f"{args.image_size}px, models {', '.join(args.models)}, {args.epochs} epoch(s) each, "
          f"batch {args.batch_size}, device {args.device}, {workers} worker(s)", flush=True)

    started = time.perf_counter()
    if _written_before(root, args.images):
        print(f"write: {root / 'celeba'} holds {args.images} images already: reused")
    else:
        write_celeba_folder(root, args.partitions, num_workers=workers, progress=True)
        phases["write JPEGs"] = time.perf_counter() - started

    started = time.perf_counter()  # chapter 5's loading cell: the cache is built once
    train_data = load_dataset("celeba", "train", args.image_size, root, num_workers=workers)
    test_data = load_dataset("celeba", "test", args.image_size, root, num_workers=workers)
    phases["cache build and load"] = time.perf_counter() - started

    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                               device=args.device)
    for name in args.models:  # chapter 5's training cell
        started = time.perf_counter()
        model = CVAE(CVAEConfig(model=name, image_size=args.image_size,
                                num_attributes=train_data.num_attributes,
                                latent_dim=args.latent_dim))
        train(model, train_data, test_data, train_config, checkpoint_path(runs, name))
        phases[f"train {name}"] = time.perf_counter() - started

    from ..evaluation import evaluate_run  # chapter 5's evaluation cell (evaluate=True)
    started = time.perf_counter()
    floor_data = load_dataset("celeba", "valid", args.image_size, root, num_workers=workers,
                              num_images=args.eval_samples)
    evaluate_run(runs, train_data, test_data, floor_data=floor_data, models=args.models,
                 device=args.device, dataset="celeba", num_samples=args.eval_samples,
                 iw_samples=args.iw_samples,
                 feature_space=args.feature_space, inception_weights=args.inception_weights)
    phases["evaluate"] = time.perf_counter() - started

    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"\nrehearsal phases on {device} ({len(train_data)} training images, "
          f"{args.epochs} epoch(s), {args.image_size}px):")
    for phase, seconds in phases.items():
        print(f"   {phase:<22} {seconds:9.1f} s")
    print(f"   {'total':<22} {sum(phases.values()):9.1f} s")
    return phases
