"""Figures the chapters share: image grids (torchvision's make_grid) and training curves."""
from __future__ import annotations

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
