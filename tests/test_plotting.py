"""Figures: readable titles and widths that fit the book's column."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from cvae_tutorial.plotting import (plot_attribute_accuracy, plot_flow_density,  # noqa: E402
                                    plot_histories, plot_kl_curves, plot_latent_projection,
                                    plot_toy_priors, show_images)


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


# Chapter 4's figures, drawn from what cvae_tutorial.demos computes

def opaque_and_in_the_column(fig):
    """Readable in the book's column (10 in wide at most) and on a dark page (an opaque
    white background, not a transparent one)."""
    assert fig.get_size_inches()[0] <= 10
    assert fig.patch.get_alpha() in (None, 1) and fig.patch.get_facecolor()[:3] == (1, 1, 1)


def test_plot_toy_priors_draws_a_panel_per_prior_on_the_whole_grid():
    from cvae_tutorial.demos import toy_priors

    codes = toy_priors.crescents(per_label=100, seed=2)
    priors = {title: toy_priors.ToyPrior(kind) for kind, title in toy_priors.TITLES.items()}
    grid, panels = toy_priors.panels(priors, codes, torch.Generator().manual_seed(0), size=30,
                                     num_samples=20)
    fig = plot_toy_priors(grid, panels, codes.z, codes.y,
                          {title: f"score of {title}" for title in panels})
    opaque_and_in_the_column(fig)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == [f"{t}\nscore of {t}" for t in panels]
    assert axes[0].get_xlim() == grid.limits[0] and axes[0].get_ylim() == grid.limits[1]
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 2
    # codes, samples of each label: 4 point sets a panel
    assert all(len(ax.collections) >= 4 for ax in axes)


def test_plot_flow_density_shows_each_sampler_and_a_colour_bar():
    from cvae_tutorial.demos.density_grid import DensityGrid

    grid = DensityGrid.spanning((-3, -3), (3, 3), 20)
    log_density = grid.image(-0.5 * (grid.points ** 2).sum(1))
    correct, shortcut = torch.randn(500, 2), torch.randn(500, 2)
    fig = plot_flow_density(grid, log_density, correct, shortcut, shown=50)
    opaque_and_in_the_column(fig)
    ax, colour_bar = fig.axes
    points = [c.get_offsets() for c in ax.collections if len(c.get_offsets()) == 50]
    assert len(points) == 2 and (points[0] == correct[:50].numpy()).all()
    assert colour_bar.get_ylabel() == "log p(z | y)"
    assert [t.get_text() for t in ax.get_legend().get_texts()][1].startswith("paper")


def test_plot_kl_curves_plots_every_estimate_against_the_distance():
    distances = torch.linspace(0, 6, 5)
    curves = {"closed form": [0, 1, 2, 3, 4], "estimate": [0, 1, 2, 3, 5], "paper": [0, -1, -2,
                                                                                    -3, -4]}
    fig = plot_kl_curves(distances, curves)
    opaque_and_in_the_column(fig)
    ax = fig.axes[0]
    lines = [line for line in ax.lines if line.get_label() in curves]
    assert [line.get_label() for line in lines] == list(curves)
    assert list(lines[2].get_ydata()) == curves["paper"]
    assert lines[0].get_linestyle() == "-" and lines[1].get_marker() == "o"


def test_plot_latent_projection_uses_the_first_two_principal_directions():
    reference = torch.randn(400, 4) * torch.tensor([0.1, 5.0, 0.2, 1.0]) + 3
    latents = {"a": torch.randn(100, 4), "b": torch.randn(100, 4)}
    fig = plot_latent_projection(reference, latents, {"a": 0.5, "b": 2.0})
    opaque_and_in_the_column(fig)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["a\nFréchet distance 0.50",
                                               "b\nFréchet distance 2.00"]
    projected = axes[0].collections[0].get_offsets()
    assert abs(projected.mean(0)).max() < 1e-4  # centred on the reference codes
    # the first direction is the widest (σ = 5), the second the next (σ = 1)
    assert projected[:, 0].std() == pytest.approx(5.0, rel=0.15)
    assert projected[:, 1].std() == pytest.approx(1.0, rel=0.15)


def test_plot_attribute_accuracy_groups_a_bar_per_set_and_zooms_on_the_differences():
    accuracies = {"real": torch.tensor([0.9, 0.95, 0.8]), "model": torch.tensor([0.85, 0.9,
                                                                                 0.7])}
    fig = plot_attribute_accuracy(accuracies, ["A", "B", "C"], "title")
    opaque_and_in_the_column(fig)
    ax = fig.axes[0]
    assert len(ax.patches) == 6 and ax.get_title() == "title"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "C"]
    assert 0.6 <= ax.get_ylim()[0] <= 0.68 and ax.get_ylim()[1] == pytest.approx(1.005)
    heights = [patch.get_height() for patch in ax.patches]
    assert heights[3:] == pytest.approx([0.85, 0.9, 0.7])


# Chapter 2's figures

def test_plot_curves_draws_each_curve_with_its_style_and_scale():
    from cvae_tutorial.plotting import plot_curves

    x = torch.linspace(0.1, 1, 10)
    curves = {"a": x, "b": x ** 2, "c": x ** 3}
    fig = plot_curves(x, curves, "t", "x", "y", styles={"a": "k:"}, log_y=True)
    opaque_and_in_the_column(fig)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["a", "b", "c"]
    assert ax.lines[0].get_linestyle() == ":" and ax.lines[0].get_color() == "k"
    assert ax.lines[1].get_linestyle() == "-" and ax.get_yscale() == "log"
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("t", "x", "y")
    assert plot_curves(x, curves, "t", "x", "y").axes[0].get_yscale() == "linear"


def test_plot_nll_over_sigma_marks_sigma_star_and_one_and_spans_the_curve():
    from cvae_tutorial.plotting import plot_nll_over_sigma

    sigmas = torch.logspace(-2, 0.5, 50)
    nll = (torch.log(sigmas) + 0.01 / sigmas ** 2) * 100  # its minimum at σ = 0.1·√2
    fig = plot_nll_over_sigma(sigmas, {"one": (nll, 0.1414), "two": (nll * 2, 0.1414)})
    opaque_and_in_the_column(fig)
    for ax, scale in zip(fig.axes, (1, 2)):
        assert ax.get_xscale() == "log"
        marks = [line.get_xdata()[0] for line in ax.lines[1:]]
        assert marks == [0.1414, 1.0]
        low, high = ax.get_ylim()
        assert low < scale * nll.min().item() and high > scale * nll[-1].item()
    assert fig.axes[1].get_title() == "Gaussian NLL over σ, two"
