"""Figures: readable titles and widths that fit the book's column."""
import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from cvae_tutorial.plotting import plot_histories, show_images  # noqa: E402


def test_plot_histories_wraps_panels_and_titles_them():
    history = [{"epoch": e, "train_loss": -e, "test_neg_elbo": -e, "log_sigma": -0.1 * e}
               for e in (1, 2, 3)]
    fig = plot_histories({"a": history}, keys=("train_loss", "test_neg_elbo", "log_sigma"))
    assert fig.get_size_inches()[0] <= 10
    assert all(ax.get_visible() for ax in fig.axes)  # three in a row: no empty panel
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["training loss (−ELBO at the batch σ*)",
                                                  "test −ELBO (fixed σ)", "log σ* (decoder)"]
    assert all(ax.get_xlabel() == "epoch" and ax.get_ylabel() for ax in visible)
    assert list(visible[0].lines[0].get_ydata()) == [-1, -2, -3]


def test_show_images_makes_one_grid_from_uint8_or_float():
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    ax = show_images(images, "grid", nrow=3)
    grid = ax.images[0].get_array()
    assert ax.get_title() == "grid" and grid.shape == (2 * 10 + 2, 3 * 10 + 2, 3)
    ax_float = show_images(images.float() / 255, "grid", nrow=3)
    assert (abs(ax_float.images[0].get_array() - grid) < 1e-6).all()


def test_plot_histories_leaves_no_row_short():
    history = [{"epoch": e, **{f"k{i}": float(e) for i in range(5)}} for e in (1, 2)]
    for count in (1, 2, 3, 4, 5):
        fig = plot_histories({"a": history}, keys=tuple(f"k{i}" for i in range(count)))
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert len(visible) == count and fig.get_size_inches()[0] <= 10
        assert len(fig.axes) - count <= (1 if count == 5 else 0)  # only 5 = 2 + 2 + 1
