"""The flow prior's two samplers compared (chapter 4): the correct z = f⁻¹(μ_p + σ_p ε) and the
paper's shortcut ẑ = μ_p + σ_p ε (its §3.3), on a trained model.

- :func:`compare_latents`: where each sampler puts its latents, against the codes the encoder
  gives test images with the same labels (a Fréchet distance between latent sets: not an FID);
- :func:`sampler_accuracies`: whether the decoded samples show the requested attributes, by
  the attribute classifier, plain and balanced;
- :func:`attribute_set_rows`: samples of both samplers for chosen attribute sets beside faces
  drawn with those attributes, each row scored on its named attributes.

Text for the chapter comes with each (``table``, ``sentence``); figures from
:mod:`cvae_tutorial.plotting`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.faces import face_parameters, render_faces
from ..data.images import AttributeImages, to_float, to_uint8
from ..evaluation import (attribute_accuracy, balanced_attribute_accuracy, frechet_distance,
                          named_attribute_agreement)

FLOOR = "codes of training images (noise floor)"
CORRECT = "correct sampler z = f⁻¹(μ_p + σ_p ε)"
SHORTCUT = "paper's shortcut ẑ = μ_p + σ_p ε"
STANDARD = "N(0, I), the prior without a flow"
# the decoded samples' rows, in tables and figures
SAMPLERS = {"correct sampler": False, "paper's shortcut": True}  # label -> paper_shortcut
CEILING = "real test images (ceiling)"
DRAWN = "drawn by render_faces"


@torch.no_grad()
def posterior_codes(model, data: AttributeImages, generator: torch.Generator) -> Tensor:
    """One code z = μ + σ ε ~ q(z|x, y) per image of ``data`` (all in one batch), ε from
    ``generator`` (CPU); on the CPU."""
    device = next(model.parameters()).device
    mu, log_sigma = model.encode(to_float(data.images).to(device), data.labels.to(device))
    mu, log_sigma = mu.cpu(), log_sigma.cpu()
    return mu + torch.exp(log_sigma) * torch.randn(mu.shape, generator=generator)


def latent_frechet_distance(reference: Tensor, other: Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of latents (float64)."""
    return frechet_distance(reference.double().numpy(), other.double().numpy())


def total_variance(z: Tensor) -> float:
    """The trace of the covariance of a set of latents [N, D]."""
    return z.var(0).sum().item()


@dataclass(frozen=True)
class LatentComparison:
    """``test_codes``: one z ~ q(z|x, y) per test image; ``latents``: {name: [N, D]} the codes
    of as many training images (the noise floor), the correct sampler's and the shortcut's
    latents for the test labels (the same ε), and N(0, I) draws; ``distances``: {name: Fréchet
    distance to the test codes}; ``relative_move``: the mean ‖f(z) − z‖ / ‖z‖ over the codes."""

    test_codes: Tensor
    latents: dict
    distances: dict
    relative_move: float

    @property
    def ratio(self) -> float:
        """The shortcut's distance over the correct sampler's (a ratio of squared distances)."""
        return self.distances[SHORTCUT] / self.distances[CORRECT]

    @property
    def shortcut_variance_share(self) -> float:
        """The shortcut's total variance over the test codes'."""
        return total_variance(self.latents[SHORTCUT]) / total_variance(self.test_codes)

    def table(self) -> str:
        """The distances and the total variances, one latent set a line."""
        dim = self.test_codes.shape[1]
        lines = [f"mean ||f(z) - z|| / ||z|| over test codes: {self.relative_move:.2f}", "",
                 f"Fréchet distance in the {dim}-D latent space to the codes of"
                 f" {len(self.test_codes)} test images:"]
        lines += [f"  {name:40s} {distance:8.3f}" for name, distance in self.distances.items()]
        lines += ["", "total variance (trace of the covariance) of the test codes: "
                  f"{total_variance(self.test_codes):.1f}"]
        lines += [f"  {name:40s} {total_variance(z):8.1f}" for name, z in self.latents.items()]
        return "\n".join(lines)

    def sentence(self) -> str:
        return (f"the shortcut's Fréchet distance is {self.ratio:.1f}x the correct sampler's"
                f" (a ratio of squared distances: its latents are {math.sqrt(self.ratio):.1f}x"
                f" as far from the test codes), with {self.shortcut_variance_share:.0%} of"
                " their total variance")


@torch.no_grad()
def compare_latents(model, train_data: AttributeImages, test_data: AttributeImages,
                    seed: int) -> LatentComparison:
    """The latents of each sampler, for the test labels, against the test codes. The codes and
    the N(0, I) draws take their noise from one generator seeded with ``seed`` (test codes,
    then training codes, then N(0, I)); both samplers share ε from ``seed + 1``."""
    generator = torch.Generator().manual_seed(seed)
    test_codes = posterior_codes(model, test_data, generator)
    flowed, _ = model.flow(test_codes.to(next(model.parameters()).device))
    relative_move = ((flowed.cpu() - test_codes).norm(dim=1)
                     / test_codes.norm(dim=1)).mean().item()
    latents = {FLOOR: posterior_codes(model, train_data.subset(len(test_data)), generator)}
    for name, shortcut in ((CORRECT, False), (SHORTCUT, True)):
        latents[name] = model.sample_latents(
            test_data.labels.to(next(model.parameters()).device), paper_shortcut=shortcut,
            generator=torch.Generator().manual_seed(seed + 1)).cpu()
    latents[STANDARD] = torch.randn(test_codes.shape, generator=generator)
    distances = {name: latent_frechet_distance(test_codes, z) for name, z in latents.items()}
    return LatentComparison(test_codes, latents, distances, relative_move)


@torch.no_grad()
def sampler_accuracies(model, classifier, test_data: AttributeImages, seed: int) -> tuple:
    """({row: per-attribute accuracy [A]}, {row: balanced accuracy [A]}) of the classifier's
    reading of the real test images (the ceiling) and of each sampler's decoded samples for the
    test labels (the same ε, from ``seed + 1``)."""
    images = {CEILING: test_data.images}
    for label, shortcut in SAMPLERS.items():
        images[label] = to_uint8(model.sample(test_data.labels, paper_shortcut=shortcut,
                                              generator=torch.Generator().manual_seed(seed + 1)))
    plain = {name: attribute_accuracy(classifier, batch, test_data.labels)
             for name, batch in images.items()}
    balanced = {name: balanced_attribute_accuracy(classifier, batch, test_data.labels)
                for name, batch in images.items()}
    return plain, balanced


def accuracy_table(accuracies: dict, attribute_names) -> str:
    """Per attribute (and their mean), one column per row of ``accuracies``."""
    lines = [f"{'attribute':18s}" + "".join(f"{name:>28s}" for name in accuracies)]
    for index, attribute in enumerate(attribute_names):
        lines.append(f"{attribute:18s}" + "".join(f"{values[index].item():28.3f}"
                                                  for values in accuracies.values()))
    lines.append(f"{'mean':18s}" + "".join(f"{values.mean().item():28.3f}"
                                           for values in accuracies.values()))
    return "\n".join(lines)


def accuracy_sentence(accuracies: dict, balanced: dict, comparison: LatentComparison) -> str:
    """The two samplers' mean accuracies in words (the shortcut higher, lower or within 0.005
    of the correct sampler), beside their latent distances; then the balanced accuracies and
    the gap between the samplers on each measure."""
    correct = accuracies["correct sampler"].mean().item()
    shortcut = accuracies["paper's shortcut"].mean().item()
    if shortcut > correct + 0.005:
        verdict = "higher than"
    elif shortcut < correct - 0.005:
        verdict = "lower than"
    else:
        verdict = "close to (within 0.005)"
    gap = {name: (values["correct sampler"].mean() - values["paper's shortcut"].mean()).item()
           for name, values in (("plain", accuracies), ("balanced", balanced))}
    return "\n".join([
        f"mean attribute accuracy: correct sampler {correct:.3f}, paper's shortcut"
        f" {shortcut:.3f}, i.e. the shortcut is {verdict} the correct sampler; Fréchet"
        f" distance in latent space: correct {comparison.distances[CORRECT]:.2f},"
        f" shortcut {comparison.distances[SHORTCUT]:.2f}",
        "mean balanced accuracy: " + ", ".join(
            f"{name} {values.mean().item():.3f}" for name, values in balanced.items()),
        f"correct sampler minus shortcut: plain {gap['plain']:+.3f},"
        f" balanced {gap['balanced']:+.3f}"])


@dataclass(frozen=True)
class AttributeSets:
    """Per attribute set: ``counts`` {set: training images that have it}; ``rows`` {row title:
    uint8 images} (drawn faces, correct sampler, shortcut); ``agreements`` {(set, row label):
    share of the named attributes the classifier reads as asked}."""

    counts: dict
    rows: dict
    agreements: dict
    num_train: int

    def counts_table(self) -> str:
        return "\n".join(f"{name:34s} {count:5d} of {self.num_train} training images"
                         for name, count in self.counts.items())


@torch.no_grad()
def attribute_set_rows(model, classifier, train_data: AttributeImages, attribute_sets: dict,
                       per_row: int, seed: int) -> AttributeSets:
    """For each {set name: {attribute: 0 or 1}}: ``per_row`` faces drawn with those attributes
    (render_faces; nuisances of faces 0 … per_row − 1 of ``seed``) and both samplers' samples
    (the same ε, from ``seed + 2``); attributes not named are 0."""
    _, nuisances = face_parameters(range(per_row), seed)
    names = list(train_data.attribute_names)
    counts, rows, agreements = {}, {}, {}
    for name, values in attribute_sets.items():
        y = train_data.attribute_vector(**values).expand(per_row, -1).contiguous()
        wanted = torch.tensor([float(v) for v in values.values()])
        columns = [names.index(a) for a in values]
        counts[name] = int((train_data.labels[:, columns] == wanted).all(1).sum())
        images = {DRAWN: render_faces(y, nuisances, train_data.image_size)}
        for label, shortcut in SAMPLERS.items():
            images[label] = to_uint8(model.sample(
                y, paper_shortcut=shortcut, generator=torch.Generator().manual_seed(seed + 2)))
        for label, batch in images.items():
            agreement = named_attribute_agreement(classifier, batch, names, values)
            rows[f"{name}: {label} (classifier: {agreement:.0%} of the named"
                 " attributes right)"] = batch
            agreements[name, label] = agreement
    return AttributeSets(counts, rows, agreements, len(train_data))


def rare_set_verdicts(sets: AttributeSets, trusted: float = 0.75) -> str:
    """Per set, in words: does the correct sampler carry the named attributes about as well as
    the drawn faces (within 0.05)? No verdict where the classifier reads the drawn faces' named
    attributes less than ``trusted`` of the time: there the judge fails, not the model."""
    lines = []
    for name in sets.counts:
        drawn = sets.agreements[name, DRAWN]
        correct = sets.agreements[name, "correct sampler"]
        shortcut = sets.agreements[name, "paper's shortcut"]
        if drawn < trusted:
            verdict = (f"no verdict: the classifier reads the named attributes of the drawn"
                       f" faces only {drawn:.0%} of the time (it never saw this set)")
        elif correct >= drawn - 0.05:
            verdict = ("the correct sampler's faces carry the set about as well as the"
                       " drawn ones")
        else:
            verdict = "the correct sampler's faces fall short of the drawn ones"
        lines += [f"{name:28s} named attributes read as asked: drawn faces {drawn:.0%},"
                  f" correct sampler {correct:.0%}, paper's shortcut {shortcut:.0%}",
                  f"{'':28s} -> {verdict}"]
    return "\n".join(lines)
