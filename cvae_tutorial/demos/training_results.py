"""Chapter 5's training results: one row per final model and seed, the table over seeds, the
verdicts of its one-choice comparisons, the power of the rule that makes them, the chapter's
answer in words, and the labels of the conditional-sample figure (the paper's Fig. 5).
"""
from __future__ import annotations

import torch

from ..cvae import model_title
from ..data.images import AttributeImages, attribute_indices, to_float
from ..evaluation import paired_order, paired_power, verdict
from ..training import evaluate_neg_elbo

RECONSTRUCTED = 256  # test images whose reconstruction MSE the table reports
# column -> (header, format)
COLUMNS = {"neg_elbo": ("test −ELBO (nats)", ".1f"), "kl": ("test KL (nats)", ".1f"),
           "log_sigma": ("log σ", ".3f"), "recon_mse": ("test recon. MSE", ".5f"),
           "seconds": ("training (s)", ".0f")}
# (a, b, column, lower is better — None: no better direction, say the higher —, label); each
# changes one choice. The Gaussian CVAE's σ = 1 puts its −ELBO on another scale (chapter 2):
# only its MSE is compared.
COMPARISONS = (
    ("sigma", "sigma_qxy", "neg_elbo", True, "Test −ELBO, encoder q(z|x) vs q(z|x,y)"),
    ("sigma", "sigma_qxy", "kl", None, "Test KL, encoder q(z|x) vs q(z|x,y)"),
    ("sigma_qxy", "sigma_cond", "neg_elbo", True,
     "Test −ELBO, prior N(0, I) vs a conditional Gaussian"),
    ("sigma_cond", "sigma_flow", "neg_elbo", True,
     "Test −ELBO, conditional Gaussian prior vs the Real NVP over it"),
    ("gaussian", "sigma", "recon_mse", True, "Reconstruction MSE, σ = 1 vs σ*"),
    ("sigma_cond", "sigma_flow", "recon_mse", True,
     "Reconstruction MSE, conditional Gaussian prior vs the Real NVP"),
)
# Fig. 5's rows: {set name: {attribute: value}}; the others take their commoner value
ATTRIBUTE_SETS = {
    "typical face": {},
    "not Smiling": dict(Smiling=0),
    "Male, Eyeglasses": dict(Male=1, Eyeglasses=1),
    "Blond_Hair, Wearing_Lipstick": dict(Blond_Hair=1, Wearing_Lipstick=1),
    "Male, Black_Hair, Mustache": dict(Male=1, Black_Hair=1, Mustache=1),
    "Wearing_Hat": dict(Wearing_Hat=1),
}


@torch.no_grad()
def final_row(model, history: list, test_data: AttributeImages, name: str, seed: int) -> dict:
    """The training table's row of one final model (on the CPU, in eval mode): the test
    negative ELBO and KL with the decoder σ fixed at the final σ* (as chapter 6 uses it),
    log σ, the MSE of the reconstructions dec(μ_q, y) of the first :data:`RECONSTRUCTED` test
    images and the training time."""
    test = evaluate_neg_elbo(model, test_data, seed=seed)
    x, y = to_float(test_data.images[:RECONSTRUCTED]), test_data.labels[:RECONSTRUCTED]
    mse = ((model.reconstruct(x, y) - x) ** 2).mean().item()
    return {"model": name, "seed": seed, "neg_elbo": test["neg_elbo"], "kl": test["kl"],
            "log_sigma": model.decoder_log_sigma.item(), "recon_mse": mse,
            "seconds": sum(row["seconds"] for row in history)}


def seed_line(rows: list, seed: int) -> str:
    """One seed's test negative ELBOs, as training goes."""
    return (f"seed {seed}: " + ", ".join(f"{r['model']} {r['neg_elbo']:.1f}"
                                         for r in rows if r["seed"] == seed)
            + " (test negative ELBO, nats per image)")


def _present(rows: list) -> list:
    models = {row["model"] for row in rows}
    return [c for c in COMPARISONS if {c[0], c[1]} <= models]


def verdicts(rows: list, titles: dict) -> str:
    """The sentence of each comparison whose two models are in ``rows``, paired by seed."""
    return "\n".join(verdict(rows, column, a, b, lower, label, titles, fmt=COLUMNS[column][1])
                     for a, b, column, lower, label in _present(rows))


def power_sentence(seeds: int) -> str:
    """How often the paired 95 % t rule names the better model with ``seeds`` paired seeds, at
    gaps of 1, 2 and 3 standard deviations of one seed's difference (and at 2 with two more
    seeds)."""
    return (f"With {seeds} paired seeds the rule names the better model "
            + ", ".join(f"{100 * paired_power(gap, seeds):.0f} % of the time at a gap "
                        f"of {gap} SD" for gap in (1, 2, 3))
            + f"; with {seeds + 2} seeds, {100 * paired_power(2, seeds + 2):.0f} % at 2 SD"
            + " (and it names a winner where there is none 5 % of the time).")


def answer(rows: list, epochs: int) -> str:
    """The chapter's answer in words: which one-choice comparisons name a better model on this
    run (paired 95 % t interval over the seeds), and what the rest mean."""
    seeds = len({row["seed"] for row in rows})
    found, open_ = [], []
    for a, b, column, lower, label in _present(rows):
        order = paired_order(rows, column, b, a, lower)  # +1: b better (or higher)
        if order == 0:
            open_.append(label)
            continue
        winner = model_title(b if order > 0 else a)
        found.append(f"{label}: {winner} is " + ("higher" if lower is None else "better"))
    total = len(found) + len(open_)
    if not total:
        return "No comparison of the table was made: `models` holds none of its pairs."
    run = (f"On this run ({seeds} seed{'s' * (seeds != 1)} of {epochs} "
           f"epoch{'s' * (epochs != 1)})")
    within = "; ".join(open_)
    if not found:
        return (f"{run}, none of the {total} one-choice comparisons under the table names a "
                f"better model: all are within noise ({within}). These seeds cannot order "
                "the models — which is not to say they are equal (see the rule's power "
                "above).")
    text = (f"{run}, {len(found)} of the {total} one-choice comparisons under the table "
            f"name a better model: " + "; ".join(found) + ".")
    if open_:
        text += (f" The other {len(open_)} are within noise ({within}): these seeds cannot "
                 "order those models — which is not to say they are equal (see the rule's "
                 "power above).")
    return text


def attribute_set_labels(data: AttributeImages, attribute_sets=None) -> dict:
    """{set name: label vector [A]} for the figure's rows: each attribute at its most common
    value in ``data``, the named ones set (asking for Blond_Hair clears Black_Hair). Data
    without the sets' attributes (your own) get the typical vector and one row for each of
    their first five attributes."""
    sets = ATTRIBUTE_SETS if attribute_sets is None else attribute_sets
    names = list(data.attribute_names)
    if not all(name in names for values in sets.values() for name in values):
        sets = {"typical": {}, **{name: {name: 1} for name in names[:5]}}
    typical = (data.labels.mean(0) > 0.5).float()
    labels = {}
    for set_name, values in sets.items():
        y = typical.clone()
        for attribute, value in values.items():
            y[attribute_indices([attribute], names)[0]] = float(value)
            if attribute == "Blond_Hair" and "Black_Hair" in names:
                y[names.index("Black_Hair")] = 0.0
        labels[set_name] = y
    return labels
