"""The shuffled-label control in latent space (chapter 6, beside its image-space twin): is a
Fréchet distance between a model's prior latents and the codes of test images blind to
conditioning?

The model's correct sampler draws one latent per test label vector; the control draws them
again with the same ε for the same labels in a shuffled order. A distance between latent clouds
alone cannot move beyond its noise under the shuffle (the mix of labels is the same); the
distance between (latent, labels) pairs (``evaluation.joint_frechet_distance``, the labels
scaled so that one weighs like a typical latent dimension) can. Like the image-space control,
it is read over the training seeds, paired: the latents-only shift within noise of zero, and
the pairs' shift above the latents-only one (the paired 95 % t interval). Beside them, the
floor: the same distance for the codes of as many training images, with their own labels (the
distance two samples of codes have; not the noise of the shuffle).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.images import AttributeImages
from ..evaluation import (joint_frechet_distance, mean_and_error, paired_difference,
                          real_joint_statistics)
from ..evaluation.uncertainty import Difference, difference_phrase
from .samplers import latent_frechet_distance, posterior_codes

MEASURES = ("latents only", "(latent, labels) pairs")


@dataclass(frozen=True)
class Control:
    """One distance to the test codes under the control: for the samples drawn for the right
    labels, for those drawn for the shuffled labels, and the noise floor."""

    right: float
    shuffled: float
    floor: float

    @property
    def change(self) -> float:
        return self.shuffled - self.right


@torch.no_grad()
def latent_label_control(model, train_data: AttributeImages, test_data: AttributeImages,
                         seed: int) -> dict:
    """{measure: Control} for the two ``MEASURES``. Noise: the test codes, then the floor's
    training codes from one generator seeded with ``seed``; the samples' ε from ``seed + 1``
    (the same for both label orders); the permutation from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    test_codes = posterior_codes(model, test_data, generator)
    floor_data = train_data.subset(len(test_data))
    floor_codes = posterior_codes(model, floor_data, generator)
    device = next(model.parameters()).device
    permutation = torch.randperm(len(test_data), generator=torch.Generator().manual_seed(seed))
    right, shuffled = (model.sample_latents(labels.to(device),
                                            generator=torch.Generator().manual_seed(seed + 1))
                       .cpu() for labels in (test_data.labels, test_data.labels[permutation]))
    real_joint = real_joint_statistics(test_codes.double().numpy(), test_data.labels.numpy())

    def joint(z, labels):
        return joint_frechet_distance(z.double().numpy(), labels.numpy(), real_joint)

    return {
        "latents only": Control(latent_frechet_distance(test_codes, right),
                                latent_frechet_distance(test_codes, shuffled),
                                latent_frechet_distance(test_codes, floor_codes)),
        "(latent, labels) pairs": Control(joint(right, test_data.labels),
                                          joint(shuffled, test_data.labels),
                                          joint(floor_codes, floor_data.labels)),
    }


def seed_means(by_seed: dict) -> dict:
    """{seed: {measure: Control}} -> {measure: Control} of the means over the seeds."""
    def mean(measure, field):
        return mean_and_error([getattr(c[measure], field) for c in by_seed.values()])[0]
    return {measure: Control(*(mean(measure, field) for field in ("right", "shuffled",
                                                                   "floor")))
            for measure in MEASURES}


@dataclass(frozen=True)
class ShiftVerdict:
    """One model's control over the seeds, paired by seed: the latents-only shift (shuffled −
    right) and the pairs' shift beyond it."""

    latents: Difference
    beyond: Difference

    @property
    def blind(self) -> bool:
        """The latents-only shift is within noise of zero."""
        return self.latents.sign == 0

    @property
    def sees_conditioning(self) -> bool:
        """The pairs' shift lies above the latents-only shift."""
        return self.beyond.sign == 1


def shift_verdict(by_seed: dict) -> ShiftVerdict:
    """The :class:`ShiftVerdict` of {seed: {measure: Control}}."""
    alone, pairs = MEASURES
    return ShiftVerdict(
        paired_difference({s: c[alone].shuffled for s, c in by_seed.items()},
                          {s: c[alone].right for s, c in by_seed.items()}),
        paired_difference({s: c[pairs].change for s, c in by_seed.items()},
                          {s: c[alone].change for s, c in by_seed.items()}))


def verdict_lines(verdicts: dict) -> str:
    """{model title: ShiftVerdict} as one line per model, each saying what its numbers show."""
    lines = []
    for title, v in verdicts.items():
        latents = difference_phrase(v.latents, ".3f", signed=True)
        beyond = difference_phrase(v.beyond, ".3f", signed=True)
        lines.append(f"{title}: the latents-only shift is {latents}, "
                     + ("within noise of zero" if v.blind else "not within noise of zero")
                     + f"; the pairs' shift beyond it is {beyond}: "
                     + ("the pairs' distance sees conditioning" if v.sees_conditioning
                        else "within noise, so not seen at this run's seeds"))
    return "\n".join(lines)


def control_table(controls: dict) -> str:
    """{model title: {measure: Control}} as one table: per model and measure the distance for
    the right labels, for the shuffled ones, the change and the floor."""
    lines = [f"  {'':24s} {'right labels':>13s} {'shuffled':>9s} {'change':>7s}"
             f" {'floor':>12s}"]
    for title, control in controls.items():
        lines.append(f"{title}:")
        for measure, c in control.items():
            lines.append(f"  {measure:24s} {c.right:13.3f} {c.shuffled:9.3f} {c.change:+7.3f}"
                         f" {c.floor:12.3f}")
    return "\n".join(lines)
