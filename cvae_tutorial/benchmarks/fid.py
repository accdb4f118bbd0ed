"""FID benchmark: images/second of the Inception feature pass, and what the saved reference
features save, measured side by side in one run.

    python -m cvae_tutorial.benchmarks fid [--images 64] [--batch-size 32] [--image-size 32]
                                      [--device auto] [--inception-weights PATH]

Without the real FID weights (offline) it uses a randomly initialised FID Inception and says so:
the speed is the same network's, the distances are not FID.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError, check_image_size, resolve_device
from ..data.faces import embedded_faces
from ..data.images import to_float
from ..evaluation.frechet import frechet_distance
from ..evaluation.inception import (InceptionFeatures, InceptionWeightsError, load_fid_inception,
                                    random_fid_inception_state_dict)
from ..evaluation.protocol import ProtocolCard, load_reference, save_reference
from .training import synchronize


@torch.no_grad()
def _features(network, images, batch_size: int, device) -> np.ndarray:
    return torch.cat([network(to_float(images[i:i + batch_size].to(device))).double().cpu()
                      for i in range(0, len(images), batch_size)]).numpy()


def _timed_distance(network, real, fake, path, card, batch_size: int, device) -> tuple:
    """Seconds for the reference features (read by the network, or loaded from the reference
    file once it exists), the generated features and the Fréchet distance; and the distance."""
    clock = [time.perf_counter()]

    def lap():
        synchronize(device)
        clock.append(time.perf_counter())
        return clock[-1] - clock[-2]
    stored = load_reference(path, card, ("reference",))
    if stored is None:
        stored = {"reference": _features(network, real, batch_size, device)}
        save_reference(path, card, **stored)
    real_seconds = lap()
    fake_features = _features(network, fake, batch_size, device)
    fake_seconds = lap()
    distance = frechet_distance(fake_features, stored["reference"])
    return real_seconds, fake_seconds, lap(), distance


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cvae_tutorial.benchmarks fid",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64, help="real and generated images each")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--inception-weights", default=None,
                        help="FID Inception weights (else env var, hub cache, download, random)")
    args = parser.parse_args(argv)
    if args.images < 2:
        parser.error("--images must be at least 2 (a covariance needs two images)")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        check_image_size(args.image_size)
        device = resolve_device(args.device)
    except ConfigError as error:
        parser.error(str(error))

    try:
        features = load_fid_inception(args.inception_weights, device)
        weights_note = f"real FID weights from {features.source}"
    except InceptionWeightsError as error:
        features = InceptionFeatures(random_fid_inception_state_dict(), "random",
                                     is_fid=False).to(device)
        weights_note = ("RANDOM Inception weights (real ones not found: distances below are not "
                        f"FID; the speed is the same network's). {str(error).split('. ')[0]}")
    real = embedded_faces("test", args.image_size, num_images=args.images).images
    fake = embedded_faces("valid", args.image_size, num_images=args.images).images  # stand-in
    print(f"device: {device}; torch threads: {torch.get_num_threads()}; {weights_note}")
    print(f"{args.images} real + {args.images} generated images at {args.image_size}px, "
          f"batch {args.batch_size}, resized to 299 bilinearly by pytorch-fid")

    _features(features, real[:args.batch_size], args.batch_size, device)  # warm-up
    card = ProtocolCard("embedded", args.image_size, "test split", "-", "-", "-", args.images,
                        "-", "uint8", features.protocol, features.weights_sha256, "-", 0, "-",
                        "-")
    with tempfile.TemporaryDirectory() as cache_dir:
        cache = Path(cache_dir) / "reference.npz"
        timings = {label: _timed_distance(features, real, fake, cache, card, args.batch_size,
                                          device)
                   for label in ("cold: reads the reference", "warm: loads the .npz")}
        size = cache.stat().st_size
    (cold_real, *_, cold_d), (warm_real, *_, warm_d) = timings.values()
    assert np.isclose(cold_d, warm_d), "the cached statistics must give the same distance"
    print(f"{'':28s}{'real stats (s)':>15s}{'generated (s)':>15s}{'Fréchet (s)':>13s}"
          f"{'total (s)':>11s}{'feature pass':>16s}")
    for label, (real_seconds, fake_seconds, frechet_seconds, _) in timings.items():
        total = real_seconds + fake_seconds + frechet_seconds
        print(f"{label:28s}{real_seconds:15.3f}{fake_seconds:15.3f}{frechet_seconds:13.3f}"
              f"{total:11.3f}{args.images / fake_seconds:11.1f} img/s")
    totals = [sum(t[:3]) for t in timings.values()]
    print(f"feature pass on the cold real set: {args.images / cold_real:.1f} images/s")
    print(f"the reference file saves {cold_real - warm_real:.2f} s of {totals[0]:.2f} s per "
          f"evaluated model ({totals[0] / totals[1]:.2f}x); cache file {size / 1e6:.1f} MB")
    print(f"{features.name} = {warm_d:.2f} between the test split and a stand-in generated set "
          f"(the valid split); {features.protocol}")
