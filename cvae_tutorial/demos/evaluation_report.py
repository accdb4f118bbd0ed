"""Chapter 6's report of one evaluated run (the rows of ``evaluation.evaluate_run``, one per
model and seed): its tables, the shuffled-label control in image space, the distance against
the sample size, the attributes the samples carry, the paper's shortcut sampler, the tightness
of the likelihood bound, the verdicts of its one-choice comparisons and the chapter's key
points. The prior ladder's sentences are :mod:`.ladder_report`'s; the figures are
:mod:`cvae_tutorial.plotting`'s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..checkpoints import checkpoint_path, load_history, seed_dir
from ..cvae import model_title
from ..evaluation import (base_noise, bits_per_dim, dataset_log_weights, format_estimate,
                          frechet_distance, importance_weighted_bound, paired_difference,
                          paired_order, sample_images, summarize, summary_table,
                          values_by_seed, verdict)

# the two tables of the results, each: (title, columns)
RESULT_TABLES = (
    ("Likelihoods and distances",
     ("neg_elbo_nats", "iw_nll_nats", "bits_per_dim", "decoder_sigma", "distance",
      "distance_inf", "kid", "shuffled_distance", "joint_distance", "shuffled_joint_distance")),
    ("Conditioning and the latent space",
     ("attribute_accuracy", "balanced_accuracy", "flip_rate", "precision", "recall",
      "label_recall", "prior_hole", "active_units")),
)
LATENT_KEY_POINT = ("A Fréchet distance between latents alone is blind to conditioning "
                    "(shuffling the labels moves it within its noise, paired over the seeds); "
                    "the distance between (latent, labels) pairs sees it.")


def results_tables(rows: list, titles: dict) -> list:
    """The two Markdown tables of the results, mean ± s.e. over the seeds."""
    return [f"**{title}** (mean ± s.e. over the seeds)\n\n"
            + summary_table(rows, columns, titles) for title, columns in RESULT_TABLES]


def classifier_line(rows: list, seeds, models) -> str:
    """How many runs were evaluated, and the judge's own accuracy on real test images."""
    return (f"{len(seeds)} seeds x {len(models)} models; the classifier on the real test "
            f"images: accuracy {rows[0]['real_attribute_accuracy']:.3f}, balanced accuracy "
            f"{rows[0]['real_balanced_accuracy']:.3f}; latent dimensions: "
            f"{rows[0]['latent_dim']}")


# --- the shuffled-label control in image space ---------------------------------------------------

def label_shifts(rows: list) -> list:
    """The rows with ``shift`` and ``joint_shift``: how much the marginal and the joint
    distance move when the samples are drawn for shuffled labels (the same checkpoint and
    noise)."""
    return [{**row, "shift": row["shuffled_distance"] - row["distance"],
             "joint_shift": row["shuffled_joint_distance"] - row["joint_distance"]}
            for row in rows]


def shift_report(rows: list, distance_name: str) -> str:
    """Per model, both shifts (mean ± s.e. over the seeds) and whether the joint distance sees
    conditioning: its shift above the marginal one's, by the paired 95 % t interval."""
    shifted = label_shifts(rows)
    lines = [f"shift when the labels are shuffled (mean ± s.e. over the seeds): "
             f"{distance_name} (only its noise) and joint {distance_name}"]
    for name, s in summarize(shifted, ("shift", "joint_shift")).items():
        sees = paired_difference(values_by_seed(shifted, "joint_shift", name),
                                 values_by_seed(shifted, "shift", name)).sign == 1
        lines.append(f"  {model_title(name):26s} {format_estimate(s['shift']):>13s}  "
                     f"{format_estimate(s['joint_shift']):>13s}  "
                     + ("the joint distance sees conditioning" if sees
                        else "within noise of the marginal shift: blind here"))
    return "\n".join(lines)


# --- the distance against the sample size ----------------------------------------------------

@dataclass(frozen=True)
class Curve:
    """A distance at each sample size and its fit d²_N = d²_∞ + slope / N."""

    values: np.ndarray
    inf: float
    slope: float


def distance_curves(rows: list) -> tuple:
    """(sizes N, {title: Curve}): each model's curve, the mean over its seeds with the mean
    fit, then the real-vs-real floor's (the same in every row)."""
    sizes = np.array(rows[0]["curve_sizes"])
    summary = summarize(rows, ("distance_inf", "distance_slope"))
    curves = {}
    for name, s in summary.items():
        values = np.array([r["distance_curve"] for r in rows if r["model"] == name]).mean(0)
        curves[model_title(name)] = Curve(values, s["distance_inf"][0], s["distance_slope"][0])
    floor = rows[0]
    curves["real vs real (the floor)"] = Curve(np.array(floor["floor_distance_curve"]),
                                               floor["floor_distance_inf"],
                                               floor["floor_distance_slope"])
    return sizes, curves


def n_curve_report(rows: list, distance_name: str) -> str:
    """The floor at the smallest and the chapter's N and at N = ∞, then per model the
    distance at N, at N = ∞, the share of it that is finite-sample bias, and KID."""
    sizes, floor, n = rows[0]["curve_sizes"], rows[0], rows[0]["num_samples"]
    lines = [f"the floor (two disjoint real sets): {distance_name} "
             f"{floor['floor_distance_curve'][0]:.2f} at N = {sizes[0]}, "
             f"{floor['floor_distance']:.2f} at N = {n}, extrapolated "
             f"{floor['floor_distance_inf']:.2f} ± {floor['floor_distance_inf_se']:.2f} "
             f"at N = ∞; KID {floor['floor_kid']:.3f} ± {floor['floor_kid_se']:.3f}"]
    for name, s in summarize(rows, ("distance", "distance_inf", "kid")).items():
        at_n, inf = s["distance"][0], s["distance_inf"][0]
        lines.append(f"{model_title(name):26s} {distance_name} at N = {n}: "
                     f"{format_estimate(s['distance'])}, "
                     f"at N = ∞: {format_estimate(s['distance_inf'])}"
                     f" ({100 * (at_n - inf) / at_n:.0f}% of the distance at N is bias), "
                     f"KID {format_estimate(s['kid'], '.3f')}")
    return "\n".join(lines)


def attribute_balanced_accuracy(rows: list, attributes) -> dict:
    """{model title: (means [A], standard errors [A])}: per attribute, the balanced accuracy
    of the samples against the labels they were drawn for, over the seeds (an error of 0 where
    one seed gives none)."""
    columns = [f"balanced_accuracy_{a}" for a in attributes]
    values = {}
    for name, s in summarize(rows, columns).items():
        values[model_title(name)] = (np.array([s[c][0] for c in columns]),
                                     np.array([0 if math.isnan(s[c][1]) else s[c][1]
                                               for c in columns]))
    return values


# --- the paper's shortcut sampler ------------------------------------------------------------

@dataclass(frozen=True)
class ShortcutComparison:
    """The flow model's correct sampler (the table's row: the same seed and noise) against
    the paper's shortcut ẑ = μ_p + σ_p ε, by the distance and the mean attribute accuracy."""

    correct_distance: float
    correct_accuracy: float
    shortcut_distance: float
    shortcut_accuracy: float

    def report(self, distance_name: str) -> str:
        lines = [f"{label:36s} {distance_name} {distance:7.2f}, attribute accuracy"
                 f" {accuracy:.3f}" for label, distance, accuracy in (
                     ("correct sampler f⁻¹(μ_p + σ_p ε)", self.correct_distance,
                      self.correct_accuracy),
                     ("paper's shortcut μ_p + σ_p ε", self.shortcut_distance,
                      self.shortcut_accuracy))]
        lines.append(f"the shortcut's {distance_name} is "
                     f"{self.shortcut_distance / self.correct_distance:.1f}x the correct "
                     f"sampler's; attribute accuracy {self.correct_accuracy:.3f} -> "
                     f"{self.shortcut_accuracy:.3f}")
        return "\n".join(lines)


@torch.no_grad()
def compare_shortcut(flow_model, row: dict, evaluation, seed: int) -> ShortcutComparison:
    """The shortcut's samples for the first test labels, with the evaluation's noise of
    ``seed``, read once by the judge (features and 0/1 readings), against the correct
    sampler's ``row`` of the table."""
    labels = evaluation.test_data.labels[:evaluation.num_samples]
    noise = base_noise(len(labels), flow_model.config.latent_dim, seed)
    _, samples = sample_images(flow_model, labels, noise, paper_shortcut=True)
    reading = evaluation.judge.read(samples)
    return ShortcutComparison(
        row["distance"], row["attribute_accuracy"],
        frechet_distance(reading.features, evaluation.reference),
        (reading.predictions == labels).float().mean(0).mean().item())


# --- the likelihood bound against K --------------------------------------------------------------

@dataclass(frozen=True)
class BoundCurve:
    """The IW bound −L_K at each K (the same draws, their first K) and the negative ELBO,
    the mean of log w over all of them, in nats per image of ``images`` test images."""

    ks: list
    nll: list
    neg_elbo: float
    images: int

    def line(self, name: str, pixels: int) -> str:
        return (f"{name:10s} on {self.images} images: -ELBO {self.neg_elbo:.1f}, IW-NLL K=1"
                f" {self.nll[0]:.1f}, K={self.ks[-1]} {self.nll[-1]:.1f} nats"
                f" ({bits_per_dim(self.nll[-1], pixels):.3f} bits/dim)")


def bound_sizes(iw_samples: int) -> list:
    """The K of the curve: 1, 2, 5, 10, … below ``iw_samples``, then ``iw_samples``."""
    return [k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500) if k < iw_samples] + [iw_samples]


def bound_curve(model, test_data, iw_samples: int, images: int, seed: int) -> BoundCurve:
    """The bound for growing K on the first ``images`` test images; by Jensen the bound with
    all K draws is never looser than the ELBO from them (checked)."""
    log_w = dataset_log_weights(model, test_data, iw_samples, images, seed=seed,
                                progress=False)
    ks = bound_sizes(iw_samples)
    nll = [-importance_weighted_bound(log_w, k).mean().item() for k in ks]
    neg_elbo = -log_w.mean().item()
    assert nll[-1] <= neg_elbo + 1e-6, "the IW bound is looser than the ELBO"
    return BoundCurve(ks, nll, neg_elbo, images)


# --- the verdicts --------------------------------------------------------------------------------

# (column, lower is better — None: no better direction —, label, format)
MEASURES = (
    ("distance", True, "{d}", ".2f"),
    ("distance_inf", True, "{d}∞", ".2f"),
    ("kid", True, "KID", ".3f"),
    ("bits_per_dim", True, "bits/dim", ".3f"),
    ("balanced_accuracy", False, "balanced accuracy", ".3f"),
    ("flip_rate", False, "flip rate", ".3f"),
    ("prior_hole", True, "prior hole", ".3f"),
    ("active_units", None, "active units", ".1f"),
)
COMPARISONS = (  # each changes one choice
    ("2. σ = 1 vs σ*", "gaussian", "sigma"),
    ("3. The encoder, q(z|x) vs q(z|x,y), at N(0, I)", "sigma", "sigma_qxy"),
    ("4. A prior that depends on y, N(0, I) vs conditional Gaussian", "sigma_qxy",
     "sigma_cond"),
    ("5. The flow, conditional Gaussian vs Real NVP over it", "sigma_cond", "sigma_flow"),
)


def add_test_kl(rows: list, run_dir) -> None:
    """Each row gets ``test_kl``: the KL term on the test images at the end of its training,
    from its checkpoint's history."""
    for row in rows:
        row["test_kl"] = load_history(
            checkpoint_path(seed_dir(run_dir, row["seed"]), row["model"]))[-1]["test_kl"]


def paper_order(rows: list) -> str:
    """Whether the paper's order by FID (Gaussian CVAE worst, flow prior best) 'holds', 'is
    contradicted' or 'is not resolved (within noise)' on the distance, step by step."""
    present = {row["model"] for row in rows}
    steps = [(a, b) for a, b in (("gaussian", "sigma"), ("sigma", "sigma_flow"))
             if {a, b} <= present]
    sides = [paired_order(rows, "distance", b, a, True) for a, b in steps]
    if sides and all(s == 1 for s in sides):
        return "holds"
    return ("is contradicted" if any(s == -1 for s in sides)
            else "is not resolved (within noise)")


def verdict_report(rows: list, titles: dict, *, distance_name: str, dataset: str,
                   image_size: int, uniform_bits: float,
                   shortcut: ShortcutComparison | None = None, shortcut_seed: int = 0) -> str:
    """The numbered verdicts: the paper's order, each one-choice comparison on every measure
    (bits/dim not against σ = 1, another scale), the test KL of every model, the models
    worse than a uniform density, and the shortcut sampler."""
    same_protocol = dataset == "celeba" and distance_name == "FID"
    lines = ["1. The paper's order of its three models by FID (Gaussian CVAE worst, flow "
             f"prior best) {paper_order(rows)} on {distance_name}, {dataset} at "
             f"{image_size}x{image_size}"
             + ("." if same_protocol else ": another data set and feature space than the "
                "paper's CelebA FID, so this neither reproduces nor refutes its Table 1.")]
    summary = summarize(rows, [m[0] for m in MEASURES] + ["test_kl"])
    for heading, a, b in COMPARISONS:
        if not {a, b} <= set(summary):
            continue
        lines.append(f"\n{heading} ({model_title(a)} vs {model_title(b)}):")
        for column, lower, label, fmt in MEASURES:
            if column == "bits_per_dim" and "gaussian" in (a, b):
                continue  # σ = 1: another scale for likelihoods (chapter 2), no contest
            lines.append("   " + verdict(rows, column, a, b, lower,
                                         label.format(d=distance_name), titles, fmt))
    lines.append("\n6. KL term on the test images at the end of training (nats per image): "
                 + ", ".join(f"{model_title(n)} {format_estimate(s['test_kl'], '.1f')}"
                             for n, s in summary.items()))
    for n, s in summary.items():
        if s["bits_per_dim"][0] > uniform_bits:
            lines.append(f"   {model_title(n)}: {s['bits_per_dim'][0]:.3f} bits/dim is "
                         f"above {uniform_bits:.0f}, worse than a uniform density on each "
                         "pixel's 8-bit bin.")
    if shortcut is not None:
        lines.append(f"7. Flow prior (seed {shortcut_seed}), correct sampler vs the paper's "
                     f"shortcut: {distance_name} {shortcut.correct_distance:.2f} vs "
                     f"{shortcut.shortcut_distance:.2f}, attribute accuracy "
                     f"{shortcut.correct_accuracy:.3f} vs {shortcut.shortcut_accuracy:.3f}.")
    return "\n".join(lines)


def run_key_points(floor_row: dict, distance_name: str, outcome: str,
                   latent_verdict=None) -> list:
    """The key points of the chapter's own run: a distance read against its floor (the
    ladder's ``floor_row``), the paper's order (``outcome`` of :func:`paper_order`), and,
    where the flow model's latent control ran (its ``latent_control.ShiftVerdict`` over the
    seeds), what a latent distance can see — the claim when its numbers bear it out, else
    those numbers."""
    points = [f"A distance is read against its floor: two disjoint sets of real faces score "
              f"{floor_row['floor_distance']:.2f} ({distance_name}, in the features of the "
              f"prior-ladder study's classifier) at N = {floor_row['num_samples']}, and FD "
              f"falls with N, so only distances in the same features and at the same N, or "
              f"FD∞ and KID, compare.",
              f"The paper's order of its three models by the distance {outcome} in this "
              f"chapter's short run."]
    if latent_verdict is None:
        return points
    if latent_verdict.blind and latent_verdict.sees_conditioning:
        return points + [LATENT_KEY_POINT]
    latents, beyond = latent_verdict.latents, latent_verdict.beyond
    return points + [
        f"A latent distance alone cannot see conditioning (a shuffle keeps the mix of "
        f"labels); for the flow model, the latents-only shift was {latents.mean:+.3f} ± "
        f"{latents.half_width:.3f} and the (latent, labels) pairs' shift beyond it "
        f"{beyond.mean:+.3f} ± {beyond.half_width:.3f} (95 % t over {beyond.pairs} seeds): "
        + ("the pairs' distance did not see conditioning at these seeds."
           if latent_verdict.blind else "the latents-only distance moved beyond its noise "
           "at these seeds.")]


def key_points_box(points) -> str:
    """A MyST "Key points" admonition, one bullet a point."""
    return ("```{admonition} Key points\n:class: tip\n"
            + "\n".join(f"- {point}" for point in points) + "\n```")
