"""Chapter 7's measurements of what a trained model is for, and their sentences: edits of real
faces (success, its ceiling, preservation, pixel distance; keeping the flow code or moving it
through the prior), interpolations read by the classifier, the temperature sweep, and the
answer to "which model edits best, and why?". The edits themselves are
:mod:`cvae_tutorial.editing`'s and are measured by :mod:`cvae_tutorial.evaluation.edits`; the
figures are :mod:`cvae_tutorial.plotting`'s.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from ..cvae import model_title
from ..data.images import AttributeImages, to_float, to_uint8
from ..editing import edit, edited_labels, interpolate
from ..evaluation import (attribute_accuracy, balanced_accuracy_terms, base_noise,
                          classifier_logits, format_estimate, frechet_distance,
                          mean_and_error, measure_edits, paired_difference, paired_sentence,
                          predict_attributes, rate_and_error, sample_images)

PER_IMAGE = ("success", "preserved", "pixel_distance", "reconstruction_distance")
CHANGING_SHOWN = 6  # at most this many changing attributes in an interpolation's plot


def estimate(value, digits: int = 3) -> str:
    """Per-image values (or a (mean, s.e.) pair) as 'mean ± s.e.'."""
    return format_estimate(value if isinstance(value, tuple) else mean_and_error(value),
                           f".{digits}f")


# --- edits of real faces ---------------------------------------------------------------------

@torch.no_grad()
def edit_examples(model, x: torch.Tensor, y: torch.Tensor, columns) -> list:
    """[originals, reconstructions, one edit per attribute index in ``columns``]: the images of
    one model's row of the edit figure (a tensor [n, 3, H, W] each)."""
    return [x, model.reconstruct(x, y)] + [edit(model, x, y, edited_labels(y, index))
                                           for index in columns]


def measure_model_edits(model, classifier, test_data: AttributeImages, count: int,
                        through_prior: bool = False) -> tuple:
    """(an EditOutcome per attribute, {key: per-image mean over the attributes}) for the
    first ``count`` test images: every attribute flipped, encoded and reconstructed once."""
    images, labels = test_data.images[:count], test_data.labels[:count]
    names = list(test_data.attribute_names)
    outcomes = measure_edits(model, classifier, images, labels, range(len(names)),
                             through_prior=through_prior, names=names)
    per_image = {key: torch.stack([getattr(o, key).double() for o in outcomes]).mean(0)
                 for key in PER_IMAGE}
    return outcomes, per_image


@torch.no_grad()
def reconstruction_ceiling(model, classifier, test_data: AttributeImages, count: int,
                           batch_size: int = 256) -> torch.Tensor:
    """[A]: the classifier's accuracy on the model's 8-bit reconstructions of the first
    ``count`` test images, the success of a no-op edit: an edit's ceiling."""
    images, labels = test_data.images[:count], test_data.labels[:count]
    device = next(model.parameters()).device
    reconstructions = torch.cat([
        to_uint8(model.reconstruct(to_float(images[s:s + batch_size]).to(device),
                                   labels[s:s + batch_size].to(device))).cpu()
        for s in range(0, len(images), batch_size)])
    return attribute_accuracy(classifier, reconstructions, labels)


def edits_markdown(edits: dict, ceilings: dict) -> str:
    """The edit table, one row per model: success, its ceiling, preservation and the pixel
    distances of the edit and of the reconstruction (± one s.e. over images)."""
    lines = ["| model | edit success | ceiling (no-op edit) | preservation | "
             "pixel distance | reconstruction's distance |", "|---|---|---|---|---|---|"]
    for name, (_, summary) in edits.items():
        lines.append(f"| {model_title(name)} | {estimate(summary['success'])} | "
                     f"{ceilings[name].mean():.3f} | {estimate(summary['preserved'])} | "
                     f"{estimate(summary['pixel_distance'], 4)} | "
                     f"{estimate(summary['reconstruction_distance'], 4)} |")
    return "\n".join(lines)


def success_rates(outcomes) -> tuple:
    """(rates, binomial standard errors): the success of each attribute's edit."""
    rates = [rate_and_error(o.success) for o in outcomes]
    return [r[0] for r in rates], [r[1] for r in rates]


def easiest_and_hardest(edits: dict) -> str:
    """Per model, the attribute whose edit succeeds most often and least often."""
    lines = []
    for name, (outcomes, _) in edits.items():
        worst = min(outcomes, key=lambda o: rate_and_error(o.success)[0])
        best = max(outcomes, key=lambda o: rate_and_error(o.success)[0])
        lines.append(f"{name:10s} easiest edit {best.attribute} "
                     f"{estimate(rate_and_error(best.success))}, hardest {worst.attribute} "
                     f"{estimate(rate_and_error(worst.success))}")
    return "\n".join(lines)


def kept_vs_moved_report(kept: dict, moved: dict) -> str:
    """The flow model's two edits, keeping the posterior code or moving it through the
    prior: each measure side by side and compared image by image."""
    lines = []
    for key, label, higher in (("success", "edit success", True),
                               ("preserved", "preservation", True),
                               ("pixel_distance", "pixel distance", False)):
        digits = 4 if key == "pixel_distance" else 3
        lines.append(f"{label:15s} code kept {estimate(kept[key], digits)}, moved through "
                     f"the prior {estimate(moved[key], digits)}")
        lines.append("  " + paired_sentence(label, "keeping the code", kept[key],
                                            "moving it", moved[key], not higher,
                                            f".{digits}f", "images"))
    return "\n".join(lines)


def largest_success_change(kept_outcomes, moved_outcomes) -> tuple:
    """(attribute index, success moved − kept) where moving the code changes the success of
    an edit most, in either direction."""
    changes = [rate_and_error(m.success)[0] - rate_and_error(k.success)[0]
               for k, m in zip(kept_outcomes, moved_outcomes)]
    index = max(range(len(changes)), key=lambda i: abs(changes[i]))
    return index, changes[index]


@torch.no_grad()
def kept_and_moved_rows(model, test_data: AttributeImages, index: int, count: int = 8) -> dict:
    """{row title: images}: the first ``count`` test images, their edit of attribute ``index``
    with the code kept, and with the code moved through the prior."""
    device = next(model.parameters()).device
    x = to_float(test_data.images[:count]).to(device)
    y = test_data.labels[:count].to(device)
    y_new = edited_labels(y, index)
    return {"originals (test images)": x, "code kept": edit(model, x, y, y_new),
            "code moved through the prior": edit(model, x, y, y_new, through_prior=True)}


# --- interpolation -------------------------------------------------------------------------------

def interpolation_pair(test_data: AttributeImages) -> tuple:
    """([0, partner], changing attributes): the first test face and the first face whose
    labels differ from it in at least two attributes (face 1 if none), and the attributes that
    differ between them (at most :data:`CHANGING_SHOWN`; the first attribute if none)."""
    labels, names = test_data.labels, list(test_data.attribute_names)
    differing = (labels != labels[0]).sum(1)
    partner = int(torch.argmax((differing >= 2).int())) if (differing >= 2).any() else 1
    pair = [0, min(partner, len(test_data) - 1)]
    changing = [a for a, va, vb in zip(names, labels[pair[0]], labels[pair[1]]) if va != vb]
    return pair, (changing or names[:1])[:CHANGING_SHOWN]


def crossings(probabilities: torch.Tensor) -> int:
    """How often a probability along a path crosses 0.5 (from one step to the next)."""
    above = (probabilities > 0.5).int()
    return int((above[1:] != above[:-1]).sum())


@dataclass(frozen=True)
class DecodedPath:
    """One decoded path: its images, t along it, and per changing attribute the classifier's
    probability at each step and how often it crosses 0.5."""

    images: torch.Tensor
    t: torch.Tensor
    probabilities: dict
    crossings: dict


@torch.no_grad()
def interpolation_paths(trained: dict, test_data: AttributeImages, pair, changing, steps: int,
                        classifier) -> dict:
    """{title: DecodedPath}: for each model the straight line between the two faces' codes
    (their labels moving along the same line), and for the flow model also the line in its
    base space u = f(z); each read by the classifier."""
    names = list(test_data.attribute_names)
    paths = {f"{model_title(name)}, line in z": (name, "z") for name in trained}
    if "sigma_flow" in trained:
        paths[f"{model_title('sigma_flow')}, line in u = f(z)"] = ("sigma_flow", "u")
    read = {}
    for title, (name, space) in paths.items():
        device = next(trained[name].parameters()).device
        x_a, x_b = to_float(test_data.images[pair]).to(device)
        y_a, y_b = test_data.labels[pair].to(device)
        images, _, t = interpolate(trained[name], x_a, y_a, x_b, y_b, steps, space)
        probabilities = torch.sigmoid(classifier_logits(classifier, to_uint8(images)))
        curves = {a: probabilities[:, names.index(a)].cpu() for a in changing}
        read[title] = DecodedPath(images, t.cpu(), curves,
                                  {a: crossings(p) for a, p in curves.items()})
    return read


def crossings_report(paths: dict) -> str:
    """Per path, how often each changing attribute crosses p = 0.5 (once: a clean change)."""
    return "\n".join(f"{title}: each changing attribute crosses p = 0.5 "
                     f"{', '.join(f'{a} {n}x' for a, n in path.crossings.items())} along the "
                     "path" for title, path in paths.items())


# --- temperature ---------------------------------------------------------------------------------

@torch.no_grad()
def temperature_sweep(trained: dict, temperatures, evaluation, seed: int) -> dict:
    """{(model, τ): (distance to the test images, per-row share of the balanced accuracy)}
    of samples for the first test labels at each temperature (the same noise throughout),
    each read once by the judge."""
    labels = evaluation.test_data.labels[:evaluation.num_samples]
    sweep = {}
    for name, model in trained.items():
        for tau in temperatures:
            noise = base_noise(len(labels), model.config.latent_dim, seed)
            _, samples = sample_images(model, labels, noise, temperature=float(tau))
            reading = evaluation.judge.read(samples)  # features and 0/1 readings, one pass
            sweep[name, tau] = (frechet_distance(reading.features, evaluation.reference),
                                balanced_accuracy_terms(reading.predictions, labels).mean(1))
    return sweep


def real_balanced_accuracy(classifier, test_data: AttributeImages, count: int) -> float:
    """The classifier's balanced accuracy on the first ``count`` real test images."""
    labels = test_data.labels[:count]
    return balanced_accuracy_terms(predict_attributes(classifier, test_data.images[:count]),
                                   labels).mean().item()


def sweep_markdown(sweep: dict, distance_name: str) -> str:
    """The sweep as a table: per model and τ, the distance and the balanced accuracy."""
    lines = [f"| model | τ | {distance_name} | balanced attribute accuracy |",
             "|---|---|---|---|"]
    for (name, tau), (distance, accuracy) in sweep.items():
        lines.append(f"| {model_title(name)} | {tau} | {distance:.2f} | {estimate(accuracy)} |")
    return "\n".join(lines)


def sweep_curves(sweep: dict, temperatures) -> tuple:
    """The sweep per model title along ``temperatures``: ({title: distances}, {title: (mean
    balanced accuracies, their standard errors over the label rows)})."""
    models = dict.fromkeys(name for name, _ in sweep)
    distances, accuracies = {}, {}
    for name in models:
        estimates = [mean_and_error(sweep[name, t][1]) for t in temperatures]
        distances[model_title(name)] = [sweep[name, t][0] for t in temperatures]
        accuracies[model_title(name)] = ([e[0] for e in estimates], [e[1] for e in estimates])
    return distances, accuracies


def chapter6_comparison(sweep: dict, run_dir, run_seed: int, distance_name: str) -> list:
    """Lines setting each model's distance at τ = 1 beside chapter 6's for the same seed, when
    chapter 6 evaluated this run (its results.csv) in the same feature space; else none."""
    results = Path(run_dir, "results.csv")
    if not any(tau == 1.0 for _, tau in sweep) or not results.exists():
        return []
    with open(results) as file:
        chapter6 = {row["model"]: row for row in csv.DictReader(file)
                    if row.get("seed", str(run_seed)) == str(run_seed)}
    models = dict.fromkeys(name for name, _ in sweep)
    return [f"{name:10s} τ = 1: {distance_name} {sweep[name, 1.0][0]:.2f} here, "
            f"{float(chapter6[name]['distance']):.2f} in chapter 6's table"
            for name in models
            if name in chapter6 and chapter6[name]["distance_name"] == distance_name]


# --- the answer ----------------------------------------------------------------------------------

def answer_report(summaries: dict, ceilings: dict, flow_comparison, sweep: dict, temperatures,
                  *, images: int, dataset: str, attributes: int, distance_name: str) -> str:
    """Every measurement of the chapter restated with its comparisons: each model's edits,
    every pair of models image by image, the flow code kept or moved, and per model the
    temperature that the distance prefers and the balanced accuracy at the extremes."""
    names = list(summaries)
    lines = [f"Edit success and preservation on {images} {dataset} test images per "
             f"attribute (mean over {attributes} attributes, ± one s.e. over images):"]
    for name in names:
        s = summaries[name]
        lines.append(f"  {model_title(name):26s} success {estimate(s['success'])} (ceiling "
                     f"{ceilings[name].mean():.3f}), preservation {estimate(s['preserved'])}, "
                     f"pixel distance {estimate(s['pixel_distance'], 4)} (reconstruction "
                     f"{estimate(s['reconstruction_distance'], 4)})")
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for key, label in (("success", "  success"), ("preserved", "  preservation")):
                lines.append(paired_sentence(label, a, summaries[a][key], b, summaries[b][key],
                                             False, ".3f", "images"))
    if flow_comparison is not None:
        kept, moved = flow_comparison
        lines.append("Flow prior, keeping the posterior code vs moving it through the prior:")
        for key, label in (("success", "  success"), ("preserved", "  preservation")):
            lines.append(paired_sentence(label, "kept", kept[key], "moved", moved[key], False,
                                         ".3f", "images"))
    low, high = min(temperatures), max(temperatures)
    for name in names:
        cold, warm = sweep[name, low][1], sweep[name, high][1]
        closest = min(temperatures, key=lambda t, name=name: sweep[name, t][0])
        lines.append(f"Temperature, {model_title(name)}: {distance_name} lowest at "
                     f"τ = {closest} ({sweep[name, closest][0]:.2f}); balanced accuracy "
                     f"τ = {low} {estimate(cold)} vs τ = {high} {estimate(warm)}.")
        lines.append(paired_sentence("  balanced accuracy", f"τ = {low}", cold, f"τ = {high}",
                                     warm, False, ".3f", "label rows"))
    return "\n".join(lines)


def best_editor(summaries: dict, ceilings: dict) -> str:
    """Which model edits best, and why, in words: the model whose edits succeed more often
    than every other model's (paired over the same images) with preservation no worse, if
    any; and each model's ceiling minus success, the gap that says why."""
    names = list(summaries)

    def beats(a, b, key):  # +1: a above b (paired 95 % t interval over images), else 0/-1
        return paired_difference(summaries[a][key], summaries[b][key]).sign

    best = [a for a in names if all(beats(a, b, "success") > 0 and beats(a, b, "preserved") >= 0
                                    for b in names if b != a)]
    gaps = {name: ceilings[name].mean().item() - summaries[name]["success"].mean().item()
            for name in names}
    gap_text = ", ".join(f"{model_title(n)} {gaps[n]:.3f}" for n in names)
    if best:
        return (f"{model_title(best[0])} edits best: its edits succeed more often than every "
                f"other model's, with preservation no worse. Ceiling minus success: "
                f"{gap_text} — the smaller the gap, the more the decoder takes the attribute "
                f"from y.")
    return (f"No model edits best on both counts with these images: no model's success beats "
            f"every other's with its preservation no worse. Ceiling minus success: "
            f"{gap_text}.")


def keep_or_move(flow_comparison) -> str:
    """The answer to the chapter's second question in words: for the flow prior, is keeping
    the posterior code or moving it through the prior the better edit (success, then
    preservation, paired over images)?"""
    if flow_comparison is None:
        return "No flow model was measured, so keeping against moving its code is not asked."
    kept, moved = flow_comparison
    signs = {key: paired_difference(kept[key], moved[key]).sign
             for key in ("success", "preserved")}
    if signs["success"] == 0 and signs["preserved"] == 0:
        return ("For the flow prior, keeping the posterior code and moving it through the "
                "prior are within noise of each other on success and preservation: keeping "
                "it, the simpler edit that needs no flow, loses nothing here.")
    better = {key: ("keeping the code" if sign > 0 else "moving it") for key, sign in
              signs.items() if sign}
    said = "; ".join(f"{better[key]} is better on {label}"
                     for key, label in (("success", "success"), ("preserved", "preservation"))
                     if key in better)
    return f"For the flow prior, the two edits differ: {said} (paired over images)."
