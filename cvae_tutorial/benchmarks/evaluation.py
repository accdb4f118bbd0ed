"""``python -m cvae_tutorial.benchmarks evaluation``: how much work one results row costs.

Counts, with forward hooks, the images each network sees while :func:`evaluate_model` builds
one row (the attribute classifier, the distance's feature network, the decoder, the encoder)
and the latents drawn from the prior, and prints them with the seconds per row. Untrained tiny
models suffice: the counts depend on the protocol, not on the weights.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

import torch

from ..cvae import CVAE, run_config
from ..data import load_dataset
from ..evaluation import ClassifierConfig, evaluate_model, prepare_evaluation


def _count(counter: Counter, key: str):
    def hook(module, inputs, output):
        counter[key] += len(inputs[0])
    return hook


def count_row(model, evaluation) -> tuple:
    """(Counter of images per network and latents drawn, seconds) for one results row."""
    counts = Counter()
    hooks = [evaluation.classifier.convs.register_forward_hook(_count(counts, "classifier")),
             model.decoder.register_forward_hook(_count(counts, "decoder")),
             model.encoder.register_forward_hook(_count(counts, "encoder"))]
    if evaluation.judge.network is not None:  # FID's Inception; FD_attr reads the classifier
        hooks.append(evaluation.judge.network.register_forward_hook(
            _count(counts, "feature network")))
    sample_latents = model.sample_latents

    def counted(y, *args, **kwargs):
        counts["prior latents"] += len(y)
        return sample_latents(y, *args, **kwargs)

    model.sample_latents = counted
    started = time.perf_counter()
    try:
        evaluate_model(model, evaluation, progress=False)
    finally:
        del model.sample_latents
        for hook in hooks:
            hook.remove()
    return counts, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--model", default="sigma_flow")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    train = load_dataset("embedded", "train", args.image_size, num_images=256)
    test = load_dataset("embedded", "test", args.image_size, num_images=2 * args.num_samples)
    evaluation = prepare_evaluation(
        train, test, feature_space="attribute", num_samples=args.num_samples, iw_samples=4,
        likelihood_images=16, progress=False,
        classifier_config=ClassifierConfig(image_size=args.image_size,
                                           num_attributes=train.num_attributes, epochs=1))
    model = CVAE(run_config(args.model, image_size=args.image_size, latent_dim=8,
                            num_attributes=train.num_attributes)).initialize(0).eval()
    counts, seconds = count_row(model, evaluation)
    print(f"one results row of {args.model}, {args.num_samples} samples, "
          f"{train.num_attributes} attributes, {args.image_size} px:")
    for key in ("classifier", "feature network", "decoder", "encoder", "prior latents"):
        if key in counts:
            print(f"  {key:16s} {counts[key]:7d} images ({counts[key] / args.num_samples:.1f}"
                  f" per sample)")
    print(f"  {seconds:.2f} s per row")


if __name__ == "__main__":
    main()
