"""The command line: ``python -m cvae_tutorial.training --help``; one process, or data-parallel
under ``torchrun --nproc_per_node=N -m cvae_tutorial.training ...`` (chapter 5)."""
from __future__ import annotations

import argparse
import math
import sys

import torch
import torch.distributed as dist

from ..checkpoints import CheckpointError, checkpoint_path
from ..config import ConfigError, available_memory, resolve_device, training_memory_floor
from ..cvae import CVAE, LIKELIHOODS, MODEL_NAMES, CVAEConfig, model_axes, run_name
from ..data import DataError, load_dataset
from ..data.faces import EMBEDDED_SPLIT_SIZES
from .distributed import distributed_world, init_distributed
from .loop import FAST_OPTION_CHOICES, NonFiniteLossError, TrainConfig, train


def _model_name(name: str) -> str:
    try:
        model_axes(name)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m cvae_tutorial.training",
        description="Train a CVAE (one of the named models or any likelihood and prior). "
                    "Under `torchrun --nproc_per_node=N -m cvae_tutorial.training ...` the "
                    "same command trains data-parallel on N processes (DDP; --batch-size is per "
                    "process). Rerunning a command resumes from OUT_DIR/<model>/checkpoint.pt.")
    parser.add_argument("--model", type=_model_name, default="sigma_flow",
                        help="<likelihood>[_<prior>]: the presets " + ", ".join(MODEL_NAMES)
                        + "; likelihoods " + ", ".join(LIKELIHOODS) + ", priors cond, flow, "
                        "cflow (none: N(0, I)), e.g. sigma_cond")
    parser.add_argument("--dataset", choices=("embedded", "celeba", "folder", "classes"),
                        default="embedded", help="folder: your images with DATA_DIR/attributes."
                        "csv (0/1 columns); classes: one subfolder of DATA_DIR per class")
    parser.add_argument("--data-dir", help="the folder that holds celeba/ (--dataset celeba) or "
                        "your images (folder, classes)")
    parser.add_argument("--image-size", type=int, default=32, help="a multiple of 16 (CelebA: 64)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out-dir", required=True, help="run folder for <model>/checkpoint.pt")
    parser.add_argument("--num-images", type=int, help="train on the first N training images")
    parser.add_argument("--attributes", nargs="+", help="attribute names (default: all)")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--encoder", choices=("paper", "x", "xy"), default="paper",
                        help="what the encoder sees: q(z|x) ('x'), q(z|x,y) ('xy'), or the "
                             "paper's reading (q(z|x) for gaussian and sigma, else q(z|x,y))")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint-every", type=int, default=0)
    parser.add_argument("--autocast", choices=FAST_OPTION_CHOICES["autocast"], default="auto")
    parser.add_argument("--channels-last", choices=FAST_OPTION_CHOICES["channels_last"],
                        default="auto")
    parser.add_argument("--adam", choices=FAST_OPTION_CHOICES["adam"], default="auto")
    parser.add_argument("--compile", nargs="?", const="default", default="auto",
                        choices=FAST_OPTION_CHOICES["compile"],
                        help="torch.compile the training step: 'default' or 'off'; bare "
                             "--compile is 'default' (auto: the flow priors on CUDA)")
    parser.add_argument("--no-prefetch", action="store_true")
    parser.add_argument("--num-workers", type=int, help="decoding processes for the image cache")
    parser.add_argument("--cache-dir", help="where the decoded-image cache goes (default: "
                        "celeba/cache beside CelebA if writable, else ~/.cache/cvae_tutorial)")
    parser.add_argument("--on-error", choices=("stop", "skip"), default="stop",
                        help="what a corrupt image file does while the cache is built")
    return parser, parser.parse_args(argv)


def _model_config(args, num_attributes: int, image_size: int) -> CVAEConfig:
    return CVAEConfig(model=args.model, image_size=image_size, num_attributes=num_attributes,
                      latent_dim=args.latent_dim, base_channels=args.base_channels,
                      encoder_sees_labels={"paper": None, "x": False, "xy": True}[args.encoder])


def _memory_shortfall(args, device: torch.device, image_size: int) -> tuple | None:
    """(bytes needed, bytes available, where) if training at ``image_size`` cannot fit in memory,
    else None. The need is a lower bound (:func:`config.training_memory_floor`, one attribute
    where they are not named yet), so a size that fits is never refused."""
    with torch.device("meta"):  # the shapes of the weights only: nothing is allocated
        model = CVAE(_model_config(args, len(args.attributes) if args.attributes else 1,
                                   image_size))
    step = training_memory_floor(image_size, args.batch_size, args.base_channels,
                                 sum(weight.numel() for weight in model.parameters()))
    # the embedded images are rendered into memory; the others are memory-mapped from disk
    trained_on = min(args.num_images or math.inf, EMBEDDED_SPLIT_SIZES["train"])
    images = 3 * image_size**2 * (trained_on + EMBEDDED_SPLIT_SIZES["test"]) \
        if args.dataset == "embedded" else 0
    cpu = torch.device("cpu")
    needs = [(device, step + images)] if device.type == "cpu" else [(device, step), (cpu, images)]
    for where, need in needs:
        available = available_memory(where)
        if available is not None and need > available:
            return need, available, where
    return None


def _check_memory(args, device: torch.device) -> None:
    """An --image-size (or --batch-size) too large for this machine is one line, said before
    anything big is allocated (it was an out-of-memory traceback), with the size that fits."""
    short = _memory_shortfall(args, device, args.image_size)
    if short is None:
        return
    need, available, where = short
    sizes = [16 * 2**k for k in range(12) if 16 * 2**k < args.image_size]
    fits = next((size for size in reversed(sizes)
                 if _memory_shortfall(args, device, size) is None), None)
    fix = f"pass --image-size {fits} or less" if fits else "pass a smaller --batch-size"
    held = ", the embedded images" if args.dataset == "embedded" else ""
    raise ConfigError(f"--image-size {args.image_size} needs at least {need / 1e9:.1f} GB of "
                      f"memory on {where} (weights and Adam's state, the activations of a batch "
                      f"of {args.batch_size}{held}) but {available / 1e9:.1f} GB are available; "
                      f"{fix}")


def main(argv=None) -> list:
    """Train one model from the command line; return its history."""
    parser, args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.dataset != "embedded" and not args.data_dir:
        parser.error(f"--dataset {args.dataset} needs --data-dir, the folder that holds "
                     f"{'celeba/' if args.dataset == 'celeba' else 'your images'}")
    try:
        config = TrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
            device=args.device, checkpoint_every=args.checkpoint_every, autocast=args.autocast,
            channels_last=args.channels_last, adam=args.adam, compile=args.compile,
            prefetch=not args.no_prefetch)
        config.device = init_distributed(config.device)
    except ConfigError as error:
        parser.error(str(error))
    rank, world_size = distributed_world()
    try:
        _check_memory(args, resolve_device(config.device))
        def load(split, count):
            return load_dataset(args.dataset, split, args.image_size, args.data_dir,
                                args.attributes, count, num_workers=args.num_workers,
                                on_error=args.on_error, cache_dir=args.cache_dir)
        if world_size > 1 and rank > 0:
            dist.barrier()  # rank 0 builds the CelebA cache; the others then open it
        train_data, test_data = load("train", args.num_images), load("test", None)
        if world_size > 1 and rank == 0:
            dist.barrier()
        model_config = _model_config(args, train_data.num_attributes, args.image_size)
        model = CVAE(model_config)  # train() initialises it from --seed
        # the run's name says what the encoder sees: sigma (the paper's) or sigma_qxy
        path = checkpoint_path(args.out_dir, run_name(model_config))
        history = train(model, train_data, test_data, config, path, progress=rank == 0)
    except (ConfigError, DataError, CheckpointError, NonFiniteLossError, FileNotFoundError,
            PermissionError, NotADirectoryError) as error:
        raise SystemExit(f"error: {error}") from error
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (signals.sigterm_as_interrupt)
        print(f"stopped ({stop or 'Ctrl-C'}); the last checkpoint in {args.out_dir} is whole: "
              f"rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    if rank == 0:
        last = history[-1]
        print(f"{run_name(model_config)}: {len(history)} epochs on {world_size} process(es), "
              f"train loss {last['train_loss']:.1f}, test negative ELBO "
              f"{last['test_neg_elbo']:.1f} nats; checkpoint {path}")
    return history
