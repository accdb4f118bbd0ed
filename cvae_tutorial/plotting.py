"""Figures the chapters share: image grids (torchvision's make_grid) and training curves; and
one function per kind of figure a chapter draws, returning the figure (the chapter calls it and
``plt.show()``)."""
from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
from matplotlib.colors import SymLogNorm
from matplotlib.ticker import MaxNLocator
import numpy as np
import torch
from torchvision.utils import make_grid

from .losses import softclip


def show_images(images: torch.Tensor, title: str = "", nrow: int = 8, ax=None, padding: int = 2):
    """Show a batch (float [0, 1] or uint8, [B, 3, H, W]) as one grid on ``ax``."""
    if images.dtype == torch.uint8:
        images = images.float() / 255
    grid = make_grid(images.detach().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(12, 1.2 * nrow), 1.2 * len(images) / nrow + 0.6))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    return ax


def show_rows(rows: dict, title: str = "", nrow: int = 8):
    """One grid per named row, stacked vertically with the name as each grid's title."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(min(12, 1.2 * nrow), 1.5 * len(rows) + 0.5),
                             squeeze=False)
    for ax, (name, images) in zip(axes[:, 0], rows.items()):
        show_images(images, name, nrow=nrow, ax=ax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# Readable titles for the keys of a training history (the per-epoch dicts of training.train).
HISTORY_TITLES = {
    "train_loss": "training loss (−ELBO at the batch σ*)",
    "train_recon": "training reconstruction NLL",
    "train_kl": "training KL", "train_mse": "training MSE", "log_sigma": "log σ* (decoder)",
    "test_neg_elbo": "test −ELBO (fixed σ)", "test_recon": "test reconstruction NLL",
    "test_kl": "test KL",
}
HISTORY_UNITS = {"train_mse": "MSE per pixel", "log_sigma": "log σ*"}


def plot_histories(histories: dict, keys=("train_loss", "test_neg_elbo"), title: str = "",
                   ylabel: str = "nats per image"):
    """Curves of ``keys`` per epoch for each named history (a list of per-epoch dicts).

    Two or three panels a row, whichever leaves no row short (no empty panel), so the figure
    stays readable in the book's column (10 in wide at most).
    """
    columns = 3 if len(keys) % 3 == 0 and len(keys) % 2 else min(2, len(keys))
    rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(10 if columns == 3 else 5 * columns,
                                                     (3.3 if columns == 3 else 3.5) * rows),
                             squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        for name, history in histories.items():
            ax.plot([row["epoch"] for row in history], [row[key] for row in history], marker="o",
                    label=name)
        ax.set_title(HISTORY_TITLES.get(key, key.replace("_", " ")))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(HISTORY_UNITS.get(key, ylabel))
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# Chapter 4: the flow prior. Each function draws what a cvae_tutorial.demos function computed.

LABEL_COLOURS = ("tab:blue", "tab:orange")  # y = 0, y = 1


def plot_toy_priors(grid, panels: dict, z: torch.Tensor, y: torch.Tensor, subtitles: dict):
    """One panel per prior of the 2-D toy (``demos.toy_priors.panels``): the codes of each
    label (faint), the prior's samples, and the contours holding 50 % and 90 % of p(z|y).
    ``panels``: {title: (what of y = 0, what of y = 1)}, each with ``density`` (on ``grid``),
    ``levels`` and ``samples``; ``subtitles``: {title: a line under the title}."""
    columns = 2
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(8, 3.3 * rows + 0.5), sharex=True,
                             sharey=True, squeeze=False)
    for ax, (title, pair) in zip(axes.flat, panels.items()):
        for label, (shown, colour) in enumerate(zip(pair, LABEL_COLOURS)):
            ax.scatter(*z[y[:, 0] == label].T, s=1, c=colour, alpha=0.12, rasterized=True)
            ax.contour(*grid.axes, shown.density, levels=shown.levels, colors=colour,
                       linewidths=1.0, linestyles="--" if label == 0 else "-")
            ax.scatter(*shown.samples.T, s=3, c=colour, edgecolors="none",
                       label=f"y = {label}: codes (faint), samples, p(z|y) contours")
        ax.set_title(f"{title}\n{subtitles[title]}", fontsize=10)
    for ax in axes[-1]:
        ax.set_xlabel("$z_1$")
    for ax in axes[:, 0]:
        ax.set_ylabel("$z_2$")
    (xlim, ylim) = grid.limits  # the grid: a few N(0, I) samples fall outside
    axes[0, 0].set(xlim=xlim, ylim=ylim)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=2,
               markerscale=4, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))  # room for the legend below the panels
    return fig


def plot_flow_density(grid, log_density: torch.Tensor, correct: torch.Tensor,
                      shortcut: torch.Tensor, shown: int = 400):
    """A 2-D flow prior's log-density over its top 8 nats (the density itself is a small dark
    peak on a white page), with ``shown`` samples of each sampler."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    top = log_density.max().item()
    contours = ax.contourf(*grid.axes, log_density,
                           levels=torch.linspace(top - 8, top, 17).tolist(), cmap="Greys",
                           extend="min")
    fig.colorbar(contours, ax=ax, label="log p(z | y)")
    ax.scatter(*correct[:shown].T, s=6, c="tab:blue",
               label=r"$z = f^{-1}(\mu_p + \sigma_p\varepsilon)$")
    ax.scatter(*shortcut[:shown].T, s=6, c="tab:red",
               label=r"paper: $\hat z = \mu_p + \sigma_p\varepsilon$")
    ax.set(title="A 2-D flow prior: its density and samples from the two samplers",
           xlabel="$z_1$", ylabel="$z_2$")
    ax.legend(loc="upper right", fontsize=9)
    return fig


def plot_kl_curves(distances, curves: dict):
    """KL estimates ({name: values}) against the distance of μ_q from μ_p: a line for the
    first, markers for the others."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (name, values), style in zip(curves.items(), ["-", "o", "s"]):
        ax.plot(distances, values, style, label=name, markersize=4)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(title="KL(q || p) as μ_q moves away from μ_p (f = identity)",
           xlabel=r"distance $\|\mu_q - \mu_p\|$", ylabel="KL estimate (nats)")
    ax.legend()
    return fig


def plot_latent_projection(reference: torch.Tensor, latents: dict, distances: dict):
    """Each set of ``latents`` ({name: [N, D]}, one panel each, its Fréchet distance in the
    title) over the ``reference`` codes, projected on their two principal directions."""
    centre = reference.mean(0)
    _, _, principal = torch.linalg.svd(reference - centre, full_matrices=False)
    project = lambda z: ((z - centre) @ principal[:2].T).numpy()
    fig, axes = plt.subplots(1, len(latents), figsize=(10, 3.9), sharex=True, sharey=True,
                             squeeze=False)
    for ax, (name, z) in zip(axes[0], latents.items()):
        ax.scatter(*project(reference).T, s=4, c="grey", alpha=0.5,
                   label="test codes z ~ q(z|x,y)")
        ax.scatter(*project(z).T, s=4, c="tab:red", alpha=0.5, label="sampled z")
        ax.set_title(f"{name}\nFréchet distance {distances[name]:.2f}", fontsize=9)
        ax.set_xlabel("principal direction 1")
    axes[0, 0].set_ylabel("principal direction 2")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=2,
               markerscale=3, frameon=False)
    fig.suptitle("Where each sampler puts z, against the codes of test images with the"
                 " same labels (principal directions of the test codes)", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_attribute_accuracy(accuracies: dict, attribute_names, title: str = ""):
    """Grouped bars: per attribute, the classifier's accuracy on each named image set
    ({name: [A]}); the y-axis zoomed on the differences (it does not start at 0)."""
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(accuracies)
    where = torch.arange(len(attribute_names)).numpy()
    for offset, (name, values) in enumerate(accuracies.items()):
        ax.bar(where + offset * width, values.numpy(), width, label=name)
    ax.set_xticks(where + width * (len(accuracies) - 1) / 2, attribute_names, rotation=30,
                  ha="right")
    lowest = min(values.min().item() for values in accuracies.values())
    ax.set_ylim(max(0.0, math.floor((lowest - 0.02) * 20) / 20), 1.005)
    ax.set(title=title, xlabel="attribute", ylabel="classifier accuracy")
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


# Chapter 2: the σ-VAE

def plot_curves(x, curves: dict, title: str, xlabel: str, ylabel: str, styles: dict = None,
                log_y: bool = False, figsize=(6.5, 4)):
    """One line per named curve ({label: values at x}); ``styles`` gives a format string to
    some of them ("k:"), ``log_y`` a logarithmic y-axis."""
    styles = styles or {}
    fig, ax = plt.subplots(figsize=figsize)
    for label, values in curves.items():
        ax.plot(x, values, styles.get(label, "-"), label=label)
    if log_y:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_softclip(floor: float, sharpnesses=(1.0, 10.0)):
    """The loss's soft lower clip of log σ at ``floor`` (:func:`losses.softclip`), one curve per
    sharpness k, beside no clip and the hard clip max(a, floor)."""
    log_sigma = torch.linspace(floor - 3, floor + 4, 400)
    shown = f"{floor:g}".replace("-", "−")
    hard = f"hard clip max(a, {shown})"
    clips = {"no clip": log_sigma, hard: log_sigma.clamp_min(floor)}
    for sharpness in sharpnesses:
        clips[f"softclip, sharpness k = {sharpness:g}"] = softclip(log_sigma, floor, sharpness)
    return plot_curves(log_sigma, clips, f"Soft lower clip of log σ at {shown}",
                       "log σ* before the clip", "log σ used by the loss",
                       styles={"no clip": "k-", hard: "k:"})


def plot_output_gradients(pixel: float = 1.0):
    """The squared error's gradient at the decoder's output over the predicted mean, for a
    pixel of value ``pixel``: through an identity output, ∂/∂x̂ (x̂ − x)², and through a
    sigmoid, ∂/∂l (s(l) − x)² = 2 (s − x) s (1 − s); log y-axis."""
    mean = torch.linspace(1e-4, 1 - 1e-4, 500)  # the predicted mean s(l), or x̂
    gradients = {"identity: |2 (x̂ − x)|": (2 * (mean - pixel)).abs(),
                 "sigmoid: |2 (s − x) s (1 − s)|": (2 * (mean - pixel) * mean * (1 - mean)).abs()}
    return plot_curves(mean, gradients, "The squared error's gradient at the decoder's output",
                       f"predicted mean for a stroke pixel, x = {pixel:g}",
                       "gradient magnitude", log_y=True, figsize=(6.5, 3.8))


def plot_nll_over_sigma(sigmas, scans: dict):
    """The Gaussian NLL of a reconstruction against the decoder σ (log axis), one panel per
    scan ({what: (NLL at each σ, σ*)}), with σ* and σ = 1 marked; the y-axis spans the curve
    from its minimum to its value at the largest σ."""
    fig, axes = plt.subplots(1, len(scans), figsize=(10, 4), squeeze=False)
    for ax, (what, (nll, star)) in zip(axes[0], scans.items()):
        ax.plot(sigmas, nll, label="−log N(x; x̂, σ²I)")
        ax.axvline(star, color="C1", linestyle="--", label=f"σ* = √MSE = {star:.4f}")
        ax.axvline(1.0, color="C3", linestyle=":", label="σ = 1 (the gaussian model)")
        ax.set_xscale("log")
        span = (nll[-1] - nll.min()).item()
        ax.set_ylim(nll.min().item() - 0.1 * span, nll[-1].item() + 0.2 * span)
        ax.set(title=f"Gaussian NLL over σ, {what}", xlabel="decoder σ",
               ylabel="NLL (nats per image)")
        ax.legend(fontsize=9)
    fig.suptitle("The NLL of a σ-CVAE reconstruction is minimised at σ*² = MSE")
    fig.tight_layout()
    return fig


def _wrapped(text: str, width: int) -> str:
    return textwrap.fill(text, width, break_long_words=False)


def _bottom_legend(fig, ax, ncol: int, fontsize: int = 8, **kwargs):
    """One legend for the figure (the entries of ``ax``), below its panels in a strip as high
    as the legend, kept free by the layout: it covers no data and no axis label."""
    legend = fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=ncol,
                        fontsize=fontsize, frameon=False, **kwargs)
    height = legend.get_window_extent(fig.canvas.get_renderer()).height / fig.bbox.height
    fig.tight_layout(rect=(0, height + 0.01, 1, 1))
    return legend


# Chapter 5: training the models

def plot_sample_grid(samples: dict, title: str = "", nrow: int = 2):
    """One small grid of images per (row, column) of ``samples`` ({row: {column: images}},
    e.g. attribute sets × models): the column names once above the top row, the row names
    once at the left, so that the faces take the space (10 in wide at most)."""
    rows = list(samples)
    columns = list(samples[rows[0]])
    side = min(2.0, 9.0 / len(columns))  # inches a cell
    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                             figsize=(side * len(columns) + 1.0, side * len(rows) + 1.0))
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i, j]
            show_images(samples[row][column], "", nrow=nrow, ax=ax)
            if i == 0:
                ax.set_title(_wrapped(column, 22), fontsize=9)
            if j == 0:  # the axis back on, without its frame and ticks, for the row's name
                ax.axis("on")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.spines[:].set_visible(False)
                ax.set_ylabel(_wrapped(row.replace("_", " "), 16), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


# Chapter 6: evaluating the models. Each draws what cvae_tutorial.demos.evaluation_report or
# cvae_tutorial.study computed.

def plot_distance_curves(sizes, curves: dict, distance_name: str,
                         reference: str = "real vs real (the floor)"):
    """A distance against 1/N ({label: curve with ``values`` at ``sizes``, and ``inf`` and
    ``slope`` of its fit d² = inf + slope / N}), each with its fit dashed down to 1/N = 0 (N
    = ∞); the ``reference`` curve grey; N itself on the top axis."""
    sizes = np.asarray(sizes)
    fig, ax = plt.subplots(figsize=(8, 5))
    x_fit = np.linspace(0, 1 / sizes[0], 20)
    for label, curve in curves.items():
        grey = dict(color="grey", marker="s") if label == reference else dict(marker="o")
        line, = ax.plot(1 / sizes, curve.values, label=label, **grey)
        ax.plot(x_fit, curve.inf + curve.slope * x_fit, linestyle="--",
                color=line.get_color())
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("1 / N  (N: images per set; 0 = infinitely many)")
    ax.set_ylabel(distance_name)
    top = ax.secondary_xaxis("top", functions=(lambda v: v, lambda v: v))
    top.set_xticks(1 / sizes, [str(n) for n in sizes])
    top.set_xlabel("N")
    ax.set_title(f"{distance_name} against the sample size, and its extrapolation to N = ∞",
                 fontsize=11)
    _bottom_legend(fig, ax, ncol=2)
    return fig


def plot_balanced_accuracy(values: dict, attribute_names, ceiling, title: str = ""):
    """Grouped bars: per attribute, each model's balanced accuracy ({title: (means [A],
    errors [A])}, ± 1 s.e. bars), the classifier's on real images as a black tick (the
    ceiling) and a constant answer's 0.5 dotted."""
    many = len(attribute_names) > 12  # CelebA's 40: upright names in a smaller font
    fig, ax = plt.subplots(figsize=(10, 5.5 if many else 5))
    width = 0.8 / len(values)
    positions = np.arange(len(attribute_names))
    for i, (label, (means, errors)) in enumerate(values.items()):
        ax.bar(positions + (i - (len(values) - 1) / 2) * width, means, width, yerr=errors,
               label=label, capsize=2)
    ax.scatter(positions, ceiling, marker="_", s=150 if many else 400, color="black",
               zorder=3, label="classifier on real test images (ceiling)")
    ax.axhline(0.5, color="grey", linestyle=":", label="a constant answer (0.5)")
    ax.set_xticks(positions, attribute_names, rotation=90 if many else 30,
                  ha="center" if many else "right", fontsize=7 if many else 9)
    ax.set_ylim(0.3, 1.02)
    ax.set_xlabel("attribute")
    ax.set_ylabel("balanced accuracy vs conditioning label")
    ax.set_title(title, fontsize=11)
    _bottom_legend(fig, ax, ncol=3)
    return fig


def plot_bound_curves(curves: dict):
    """One panel per model ({title: curve with ``ks``, ``nll`` = −L_K at each K and
    ``neg_elbo``}): the importance-weighted bound against K, the negative ELBO dashed."""
    fig, axes = plt.subplots(1, len(curves), squeeze=False,
                             figsize=(min(10, 2.4 * len(curves) + 1), 4))
    for ax, (title, curve) in zip(axes[0], curves.items()):
        ax.plot(curve.ks, curve.nll, marker="o", label="IW-NLL $-\\mathcal{L}_K$")
        ax.axhline(curve.neg_elbo, color="grey", linestyle="--",
                   label="negative ELBO (mean over all K draws)")
        ax.set_xscale("log")
        ax.set_xticks(curve.ks, [str(k) if k == curve.ks[-1] or math.log10(k).is_integer()
                                 else "" for k in curve.ks])  # 1, 10, 100 and the last K
        ax.minorticks_off()
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("K (importance samples)", fontsize=9)
        ax.set_title(_wrapped(title, 22), fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0, 0].set_ylabel("nats per image")
    fig.suptitle("The importance-weighted bound tightens as K grows "
                 "(K=1 uses one draw; the dashed line averages all K)", fontsize=10)
    _bottom_legend(fig, axes[0, 0], ncol=2)
    return fig


def plot_ladder_budgets(budgets, curves: dict, titles: dict, floor: float,
                        log_columns=("distance",)):
    """One panel per measure ({column: {rung: (means, errors) per budget}}, titled by
    ``titles``) against the training budget (log₂ axis), ± 1 s.e.; the real-vs-real ``floor``
    dotted in the distance's panel."""
    fig, axes = plt.subplots(1, len(curves), figsize=(10, 4.4), squeeze=False)
    for ax, (column, by_rung) in zip(axes[0], curves.items()):
        for name, (means, errors) in by_rung.items():
            ax.errorbar(budgets, means, yerr=errors, marker="o", capsize=3, label=name)
        if column == "distance":
            ax.axhline(floor, color="grey", ls=":", label="real vs real")
        ax.set_xscale("log", base=2)
        if column in log_columns:  # from the floor to σ = 1's blur: a factor of tens
            ax.set_yscale("log")
        ax.set(xlabel="epochs", title=titles[column], xticks=budgets, xticklabels=budgets)
        ax.minorticks_off()
    first = axes[0, 0]
    _bottom_legend(fig, first, ncol=4, fontsize=9)
    return fig


# Chapter 7: using the model. Each draws what cvae_tutorial.demos.editing_report computed.

def plot_edit_grid(rows: dict, column_labels, title: str = ""):
    """One panel per model ({title: [originals, reconstructions, edit, …]}, tensors [n, 3,
    H, W]): each face a row, each column one of ``column_labels`` (named under the panel)."""
    count = len(next(iter(rows.values()))[0])
    fig, axes = plt.subplots(len(rows), 1, squeeze=False, layout="constrained",
                             figsize=(9, (1.1 * count + 0.7) * len(rows)))
    for ax, (name, strips) in zip(axes[:, 0], rows.items()):
        grid = torch.stack(list(strips), 1).flatten(0, 1)  # row = image, column = what
        show_images(grid, name, nrow=len(strips), ax=ax)
        ax.title.set_fontsize(11)
        ax.axis("on")  # keep the frame off but label the columns with ticks
        ax.spines[:].set_visible(False)
        width = ax.get_xlim()[1] / len(strips)
        ax.set_xticks([(i + 0.5) * width for i in range(len(strips))],
                      [label.replace("_", " ") for label in column_labels], fontsize=8)
        ax.set_yticks([])
        ax.tick_params(length=0)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_edit_success(rates: dict, ceilings: dict, attribute_names):
    """Grouped bars: per attribute, each model's edit success ({title: (rates, s.e.)}, ± 2
    s.e. bars), and its ceiling ({title: [A]}, the no-op edit) as a black tick."""
    many = len(attribute_names) > 12  # CelebA's 40: upright names in a smaller font
    fig, ax = plt.subplots(figsize=(10, 5.5 if many else 4.8))
    width = 0.8 / len(rates)
    positions = np.arange(len(attribute_names))
    for i, (label, (values, errors)) in enumerate(rates.items()):
        offset = positions + (i - (len(rates) - 1) / 2) * width
        ax.bar(offset, values, width, yerr=[2 * e for e in errors], capsize=2, label=label)
        ax.scatter(offset, ceilings[label], marker="_", s=40 if many else 120, color="black",
                   zorder=3, label="ceiling: no-op edit" if i == 0 else None)
    ax.set_xticks(positions, [a.replace("_", " ") for a in attribute_names],
                  rotation=90 if many else 30, ha="center" if many else "right",
                  fontsize=7 if many else 9)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("edit success (classifier)")
    ax.set_title("How often the classifier sees the flipped attribute after the edit",
                 fontsize=11)
    _bottom_legend(fig, ax, ncol=4)
    return fig


def plot_interpolations(paths: dict, title: str = ""):
    """One row per path ({title: path with ``images`` [steps, 3, H, W], ``t`` and
    ``probabilities`` {attribute: p at each step}}): the decoded strip, and beside it the
    classifier's probability of each changing attribute along t."""
    steps = len(next(iter(paths.values())).images)
    fig, axes = plt.subplots(len(paths), 2, figsize=(10, 1.7 * len(paths) + 1.2),
                             gridspec_kw={"width_ratios": [3, 2]}, squeeze=False)
    for (name, path), (strip_ax, curve_ax) in zip(paths.items(), axes):
        show_images(path.images, name, nrow=steps, ax=strip_ax)
        strip_ax.title.set_fontsize(10)
        for attribute, p in path.probabilities.items():
            curve_ax.plot(path.t, p, marker="o", markersize=3,
                          label=attribute.replace("_", " "))
        curve_ax.set_ylim(-0.02, 1.02)
        curve_ax.set_xlabel("t", fontsize=9)
        curve_ax.set_ylabel("p(attribute)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    _bottom_legend(fig, axes[0, 1], ncol=6)
    return fig


def plot_temperature_sweep(temperatures, distances: dict, accuracies: dict,
                           real_balanced: float, distance_name: str):
    """Left, each model's distance to the test images against τ ({title: values}); right, its
    balanced attribute accuracy ({title: (means, errors)}, ± 2 s.e.) and the real images'."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4))
    for label, values in distances.items():
        left.plot(temperatures, values, marker="o", label=label)
    for label, (means, errors) in accuracies.items():
        right.errorbar(temperatures, means, yerr=[2 * e for e in errors], marker="o",
                       capsize=3, label=label)
    right.axhline(real_balanced, color="black", linestyle="--", label="real test images")
    left.set_title(f"{distance_name} to the test images (lower: closer)", fontsize=11)
    right.set_title("balanced attribute accuracy (±2 s.e.)", fontsize=11)
    for ax in (left, right):
        ax.set_xlabel("temperature τ")
    _bottom_legend(fig, right, ncol=4)
    return fig


# Chapter 1: the ELBO

ELBO_SWEEP_AXES = {  # chapter 1's two sweeps of q: (the panel's title, its x-axis label)
    "q's mean": ("ELBO as q's mean moves",
                 "offset of q's mean μ₁ from the\nposterior mean (posterior sd)"),
    "q's scale": ("ELBO as q's scale changes", "log(σ₁ / posterior sd)"),
}


def plot_elbo_sweeps(log_evidence: float, sweeps: dict, kls, gaps, errors):
    """Chapter 1's figure, a 2×2 grid that fits the column. On top, a panel per sweep of q
    (two: {what moves: (its values, the Monte Carlo ELBO, its standard errors, log p(x|y) −
    KL(q ‖ posterior))}): the ELBO with ± 2 s.e. bars, the exact curve through it, log p(x|y),
    and q = posterior at 0. Below, the random encoders' gaps log p(x|y) − ELBO (± 2 s.e.)
    against their KL to the posterior, on the line gap = KL; beside it the top panels'
    legend."""
    fig, axes = plt.subplot_mosaic([["left", "right"], ["gap", "legend"]], figsize=(10, 8),
                                   layout="constrained")
    for ax, (what, (values, elbo, error, exact)) in zip((axes["left"], axes["right"]),
                                                         sweeps.items()):
        title, xlabel = ELBO_SWEEP_AXES.get(what, (f"ELBO as {what} changes", what))
        ax.axhline(log_evidence, color="black", label="log p(x|y) (exact)")
        ax.plot(values, exact, color="C1", label="log p(x|y) − KL(q ‖ posterior)")
        ax.errorbar(values, elbo, yerr=2 * error, fmt="o", color="C0", markersize=4,
                    label="Monte Carlo ELBO (± 2 s.e.)")
        ax.axvline(0, color="grey", linestyle=":", label="q = posterior")
        ax.set(title=title, xlabel=xlabel, ylabel="nats")
    axes["legend"].axis("off")
    axes["legend"].legend(*axes["left"].get_legend_handles_labels(), loc="center",
                          title="top two panels")
    gap = axes["gap"]
    limit = max(kls.max(), gaps.max()).item() * 1.05
    gap.plot([0, limit], [0, limit], color="black", linewidth=1, label="gap = KL")
    gap.errorbar(kls, gaps, yerr=2 * errors, fmt="o", markersize=4,
                 label="random encoders q")
    gap.set(title="The gap is the KL to the posterior",
            xlabel="KL(q ‖ p(z|x,y)), closed form (nats)",
            ylabel="log p(x|y) − Monte Carlo ELBO (nats)")
    gap.legend(fontsize=8)
    fig.suptitle("Linear-Gaussian CVAE: the ELBO is a lower bound\nthat touches log p(x|y)"
                 " at the posterior")
    return fig


# Chapter 3: Real NVP

def plot_jacobians(jacobians: dict, title: str = ""):
    """Jacobians side by side ({what: (matrix [D, D], a name per coordinate, or None for
    numbers)}), in symmetric-log colours, so that entries spanning orders of magnitude stay
    visible and exact zeros are white; each with its colour bar."""
    fig, axes = plt.subplots(1, len(jacobians), figsize=(10, 4.4), layout="constrained",
                             squeeze=False)
    for ax, (what, (jacobian, names)) in zip(axes[0], jacobians.items()):
        limit = jacobian.abs().max().item()
        norm = SymLogNorm(linthresh=1e-3, vmin=-limit, vmax=limit)
        image = ax.imshow(jacobian, cmap="RdBu_r", norm=norm)
        ax.set(title=f"Jacobian of {what}", xlabel="input coordinate",
               ylabel="output coordinate")
        if names:
            ax.set_xticks(range(len(names)), names, rotation=45)
            ax.set_yticks(range(len(names)), names)
        fig.colorbar(image, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_flow_fit(data, side, density, samples, losses, baseline: float, title: str = "",
                  shown: int = 2000):
    """A 2-D flow fitted by maximum likelihood, in a 2×2 grid that fits the column: the
    training ``data`` (its first ``shown`` points), the learned ``density`` on the square
    grid ``side`` × ``side``, ``samples`` drawn through the inverse, all three on that square;
    and the training NLL per mini-batch (``losses``) against the best Gaussian's test NLL
    (``baseline``)."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 9), layout="constrained")
    axes = axes.ravel()
    axes[0].scatter(*data[:shown].T, s=2, alpha=0.5)
    axes[0].set_title("training data (two moons, standardised)")
    mesh = axes[1].pcolormesh(side, side, density, cmap="viridis", shading="auto")
    fig.colorbar(mesh, ax=axes[1], label="p(z)", shrink=0.9)
    axes[1].set_title("learned density p(z) = N(f(z); 0, I)·|det ∂f/∂z|", fontsize=10)
    axes[2].scatter(*samples[:shown].T, s=2, alpha=0.5, color="C1")
    axes[2].set_title("samples z = f⁻¹(u), u ~ N(0, I)")
    low, high = side[0].item(), side[-1].item()
    for ax in axes[:3]:
        ax.set(xlim=(low, high), ylim=(low, high), aspect="equal", xlabel="z₁", ylabel="z₂")
    axes[3].plot(losses, linewidth=0.8)
    axes[3].axhline(baseline, color="black", linestyle="--", label="best Gaussian (test)")
    axes[3].set(title="training NLL per mini-batch", xlabel="step",
                ylabel="nats per point")
    axes[3].legend()
    if title:
        fig.suptitle(title)
    return fig


# The embedded faces

def plot_face_rows(rows: dict, title: str = "", column_titles=None):
    """Faces in a grid that fits the column, a row per name ({name: uint8 or [0, 1] float
    images [n, 3, H, W], the same n in every row}) with the name at its left, one panel per
    face without ticks or frame; ``column_titles`` (n of them) above the top row."""
    columns = len(next(iter(rows.values())))
    fig, axes = plt.subplots(len(rows), columns, squeeze=False, layout="constrained",
                             figsize=(10, 8.75 / columns * len(rows) + 0.6))
    for row, (name, images) in zip(axes, rows.items()):
        for ax, image in zip(row, images):
            ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=11)
    for ax, column_title in zip(axes[0], column_titles or []):
        ax.set_title(column_title, fontsize=11)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_correlations(matrix, names, title: str = "", label: str = "",
                      blank_below: float = 0.05):
    """A correlation matrix between named variables, −1 blue to +1 red, each value off the
    diagonal written in its cell (white on the dark cells, beyond ±0.5) unless its size is
    under ``blank_below``; ``label`` names the colour bar."""
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=45, ha="right", fontsize=10)
    ax.set_yticks(ticks, names, fontsize=10)
    for i in ticks:
        for j in ticks:
            if i != j and abs(matrix[i, j]) >= blank_below:
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=9,
                        color="white" if abs(matrix[i, j]) > 0.5 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label=label)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig
