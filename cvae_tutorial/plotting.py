"""Figures the chapters share: image grids (torchvision's make_grid) and training curves; and
one function per kind of figure a chapter draws, returning the figure (the chapter calls it and
``plt.show()``)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import torch
from torchvision.utils import make_grid


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
