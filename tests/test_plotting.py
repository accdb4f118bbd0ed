"""Figures: readable titles and widths that fit the book's column."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cvae_tutorial.plotting import (plot_attribute_accuracy, plot_flow_density,  # noqa: E402
                                    plot_histories, plot_kl_curves, plot_latent_projection,
                                    plot_toy_priors, show_images)



@pytest.fixture(autouse=True)
def close_figures():
    """Each test's figures closed after it (pyplot keeps every figure it opened)."""
    yield
    matplotlib.pyplot.close("all")


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


def test_plot_softclip_draws_the_hard_clip_and_lifts_less_at_a_larger_sharpness():
    from cvae_tutorial.losses import softclip
    from cvae_tutorial.plotting import plot_softclip

    fig = plot_softclip(-6.0, sharpnesses=(1.0, 10.0))
    opaque_and_in_the_column(fig)
    ax = fig.axes[0]
    assert ax.get_title() == "Soft lower clip of log σ at −6"
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines) == ["no clip", "hard clip max(a, −6)", "softclip, sharpness k = 1",
                           "softclip, sharpness k = 10"]
    a = torch.as_tensor(lines["no clip"].get_xdata())
    assert a.min() < -6 < a.max()  # the plotted range crosses the floor
    assert torch.equal(torch.as_tensor(lines["hard clip max(a, −6)"].get_ydata()),
                       a.clamp_min(-6))
    for k in (1.0, 10.0):
        drawn = torch.as_tensor(lines[f"softclip, sharpness k = {k:g}"].get_ydata())
        assert torch.allclose(drawn, softclip(a, -6.0, k))
    lift = [(torch.as_tensor(lines[f"softclip, sharpness k = {k}"].get_ydata()) - a)
            for k in (1, 10)]
    assert (lift[1] <= lift[0] + 1e-6).all() and (lift[1] >= -1e-6).all()


def test_plot_output_gradients_shows_the_sigmoid_passing_back_less_near_zero():
    from cvae_tutorial.plotting import plot_output_gradients

    fig = plot_output_gradients(pixel=1.0)
    opaque_and_in_the_column(fig)
    ax = fig.axes[0]
    identity, sigmoid = (torch.as_tensor(line.get_ydata()) for line in ax.lines)
    mean = torch.as_tensor(ax.lines[0].get_xdata())
    assert torch.allclose(identity, 2 * (1 - mean))
    assert torch.allclose(sigmoid, identity * mean * (1 - mean))  # the sigmoid's s (1 − s)
    assert sigmoid[0] / identity[0] < 1e-3 and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "predicted mean for a stroke pixel, x = 1"


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


# Chapters 5–7's figures, drawn from what cvae_tutorial.demos and study compute

def drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def legends_cover_no_panel(fig):
    """Every figure legend lies clear of every visible panel, its tick labels and axis labels
    included: it covers no data and no label."""
    renderer = drawn(fig)
    assert fig.legends, "the figure has no legend of its own"
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_visible():
                assert not box.overlaps(ax.get_tightbbox(renderer)), ax.get_title()


def test_plot_sample_grid_names_each_column_once_above_and_each_row_once_at_the_left():
    from cvae_tutorial.plotting import plot_sample_grid

    images = torch.rand(4, 3, 8, 8)
    samples = {f"set_{r}": {f"a model with a long title {c}": images for c in range(5)}
               for r in range(3)}
    fig = plot_sample_grid(samples, "Conditional samples")
    opaque_and_in_the_column(fig)
    axes = fig.axes
    assert len(axes) == 15 and all(len(ax.images) == 1 for ax in axes)
    assert [ax.get_title() for ax in axes[:5]] == [
        f"a model with a long\ntitle {c}" for c in range(5)]
    assert all(ax.get_title() == "" for ax in axes[5:])
    assert [axes[5 * r].get_ylabel() for r in range(3)] == ["set 0", "set 1", "set 2"]
    assert all(ax.get_ylabel() == "" for i, ax in enumerate(axes) if i % 5)
    renderer = drawn(fig)
    title = fig._suptitle.get_window_extent(renderer)
    for ax in axes[:5]:  # the figure's title above the columns' titles, over none of them
        assert not title.overlaps(ax.title.get_window_extent(renderer))
        assert title.y0 >= ax.title.get_window_extent(renderer).y1 - 1


def test_plot_distance_curves_fits_each_curve_down_to_infinitely_many_samples():
    from types import SimpleNamespace

    from cvae_tutorial.plotting import plot_distance_curves

    sizes = [100, 200, 400]
    curve = SimpleNamespace(values=[7.0, 6.0, 5.5], inf=5.0, slope=200.0)
    floor = SimpleNamespace(values=[3.0, 2.0, 1.5], inf=1.0, slope=200.0)
    fig = plot_distance_curves(sizes, {"a model": curve, "real vs real (the floor)": floor},
                               "FD_attr")
    opaque_and_in_the_column(fig)
    ax = fig.axes[0]
    data, fit = ax.lines[0], ax.lines[1]
    assert list(data.get_xdata()) == pytest.approx([0.01, 0.005, 0.0025])
    assert fit.get_xdata()[0] == 0 and fit.get_ydata()[0] == 5.0  # d² at N = ∞
    assert fit.get_ydata()[-1] == pytest.approx(7.0)  # the fit through 1/N = 1/100
    assert ax.lines[2].get_color() == "grey" and ax.get_ylabel() == "FD_attr"
    legends_cover_no_panel(fig)


def test_plot_balanced_accuracy_draws_a_bar_per_model_and_attribute_and_the_ceiling():
    from cvae_tutorial.plotting import plot_balanced_accuracy

    values = {"a": ([0.9, 0.6, 0.7], [0.01, 0.02, 0.0]), "b": ([0.8, 0.5, 0.75],
                                                              [0.0, 0.0, 0.0])}
    fig = plot_balanced_accuracy(values, ["Male", "Smiling", "Bangs"], [0.95, 0.9, 0.85],
                                 "title")
    opaque_and_in_the_column(fig)
    ax = fig.axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == pytest.approx([0.9, 0.6, 0.7, 0.8, 0.5, 0.75])
    ceiling = ax.collections[-1].get_offsets()
    assert list(ceiling[:, 1]) == pytest.approx([0.95, 0.9, 0.85])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Male", "Smiling", "Bangs"]
    legends_cover_no_panel(fig)
    many = plot_balanced_accuracy({"a": ([0.7] * 40, [0.0] * 40)}, [f"A{i}" for i in range(40)],
                                  [0.9] * 40)
    assert many.axes[0].get_xticklabels()[0].get_rotation() == 90
    opaque_and_in_the_column(many)


def test_plot_bound_curves_gives_each_model_a_panel_and_titles_that_do_not_collide():
    from types import SimpleNamespace

    from cvae_tutorial.plotting import plot_bound_curves

    curves = {f"σ-CVAE, q(z|x,y), conditional Gaussian prior {i}": SimpleNamespace(
        ks=[1, 2, 5, 10], nll=[2870.0, 2869.99, 2869.98, 2869.97], neg_elbo=2870.01)
        for i in range(5)}
    fig = plot_bound_curves(curves)
    opaque_and_in_the_column(fig)
    renderer = drawn(fig)
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes]
    assert not any(a.overlaps(b) for i, a in enumerate(titles) for b in titles[i + 1:])
    ax = fig.axes[0]
    assert list(ax.lines[0].get_ydata()) == [2870.0, 2869.99, 2869.98, 2869.97]
    assert ax.lines[1].get_ydata()[0] == 2870.01 and ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "", "", "10"]
    assert ax.yaxis.get_offset_text().get_text() == ""  # no "+2.87e3" over the title
    legends_cover_no_panel(fig)


def test_plot_ladder_budgets_draws_each_rung_per_measure_and_the_floor():
    from cvae_tutorial.plotting import plot_ladder_budgets

    curves = {"distance": {"a": ([4.0, 2.0], [0.1, 0.1]), "b": ([3.0, 1.0], [0.2, 0.1])},
              "bits_per_dim": {"b": ([5.0, 4.8], [0.01, 0.01])}}
    fig = plot_ladder_budgets([12, 24], curves, {"distance": "FD_attr",
                                                 "bits_per_dim": "bits/dim"}, floor=0.5)
    opaque_and_in_the_column(fig)
    distance, bits = fig.axes
    assert distance.get_title() == "FD_attr" and distance.get_yscale() == "log"
    assert bits.get_yscale() == "linear" and bits.get_xscale() == "log"
    assert [line.get_ydata()[0] for line in distance.lines if line.get_label() ==
            "real vs real"] == [0.5]
    assert not any(line.get_label() == "real vs real" for line in bits.lines)
    assert len(fig.legends[0].get_texts()) == 3  # the floor and both rungs
    legends_cover_no_panel(fig)


def test_plot_edit_grid_labels_every_column_under_each_model():
    from cvae_tutorial.plotting import plot_edit_grid

    strips = [torch.rand(3, 3, 8, 8) for _ in range(4)]
    labels = ["original", "reconstruction", "flip Smiling", "flip Wearing_Hat"]
    fig = plot_edit_grid({"a": strips, "b": strips}, labels, "title")
    opaque_and_in_the_column(fig)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "original", "reconstruction", "flip Smiling", "flip Wearing Hat"]
    assert ax.images[0].get_array().shape[:2] == (3 * 10 + 2, 4 * 10 + 2)  # face × what


def test_plot_edit_success_marks_each_models_ceiling():
    from cvae_tutorial.plotting import plot_edit_success

    rates = {"a": ([0.5, 0.9], [0.05, 0.02]), "b": ([0.4, 0.8], [0.05, 0.03])}
    fig = plot_edit_success(rates, {"a": [0.9, 0.95], "b": [0.8, 0.9]}, ["Smiling", "Male"])
    opaque_and_in_the_column(fig)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.5, 0.9, 0.4, 0.8])
    ceilings = [c.get_offsets()[:, 1].tolist() for c in ax.collections
                if c.get_offsets().shape == (2, 2)]
    assert ceilings == [pytest.approx([0.9, 0.95]), pytest.approx([0.8, 0.9])]
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts.count("ceiling: no-op edit") == 1 and "a" in texts
    legends_cover_no_panel(fig)


def test_plot_interpolations_draws_each_path_and_its_probabilities():
    from types import SimpleNamespace

    from cvae_tutorial.plotting import plot_interpolations

    t = torch.linspace(0, 1, 4)
    path = SimpleNamespace(images=torch.rand(4, 3, 8, 8), t=t,
                           probabilities={"Black_Hair": t, "Smiling": 1 - t})
    fig = plot_interpolations({"one": path, "two": path}, "title")
    opaque_and_in_the_column(fig)
    strips, curves = fig.axes[0::2], fig.axes[1::2]
    assert [ax.get_title() for ax in strips] == ["one", "two"]
    assert list(curves[1].lines[1].get_ydata()) == pytest.approx([1, 2 / 3, 1 / 3, 0])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Black Hair", "Smiling"]
    legends_cover_no_panel(fig)


def test_plot_temperature_sweep_puts_distance_left_and_accuracy_right():
    from cvae_tutorial.plotting import plot_temperature_sweep

    fig = plot_temperature_sweep([0.0, 1.0], {"a": [2.0, 1.0]},
                                 {"a": ([0.9, 0.8], [0.01, 0.02])}, 0.95, "FD_attr")
    opaque_and_in_the_column(fig)
    left, right = fig.axes
    assert list(left.lines[0].get_ydata()) == [2.0, 1.0]
    assert left.get_title().startswith("FD_attr to the test images")
    assert right.lines[-1].get_ydata()[0] == 0.95  # the real images' accuracy
    assert list(right.lines[0].get_ydata()) == [0.9, 0.8]
    legends_cover_no_panel(fig)


# Chapter 1's figure

def test_plot_elbo_sweeps_draws_each_sweep_with_two_standard_errors_and_gaps_on_their_line():
    from cvae_tutorial.plotting import ELBO_SWEEP_AXES, plot_elbo_sweeps

    values = torch.linspace(-1, 1, 5)
    elbo, error = -1 - values ** 2, torch.full((5,), 0.1)
    sweeps = {"q's mean": (values, elbo, error, elbo + 0.01),
              "q's scale": (values, 2 * elbo, error, 2 * elbo)}
    kls, gaps = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.1, 1.9, 4.4])
    fig = plot_elbo_sweeps(-1.0, sweeps, kls, gaps, torch.full((3,), 0.05))
    opaque_and_in_the_column(fig)
    by_title = {ax.get_title(): ax for ax in fig.axes}
    for what, (x, elbo_, _, exact) in sweeps.items():
        title, xlabel = ELBO_SWEEP_AXES[what]
        ax = by_title[title]
        assert ax.get_xlabel() == xlabel
        assert list(ax.lines[0].get_ydata()) == [-1.0, -1.0]  # log p(x|y)
        assert ax.lines[1].get_xdata().tolist() == pytest.approx(x.tolist())
        assert ax.lines[1].get_ydata().tolist() == pytest.approx(exact.tolist())
        # the bars span ± 2 standard errors (a bar of ± 1 s.e. would be 0.2 long)
        bars = ax.containers[0].lines[2][0].get_segments()
        assert [segment[1, 1] - segment[0, 1] for segment in bars] == pytest.approx([0.4] * 5)
        assert ax.containers[0].lines[0].get_ydata().tolist() == pytest.approx(elbo_.tolist())
    # the top panels' legend in its own panel, beside the gap panel; the line gap = KL
    # reaches past the largest gap (4.4), not only past the largest KL
    legend_panel = next(ax for ax in fig.axes if ax.get_legend() and not ax.axison)
    assert len(legend_panel.get_legend().get_texts()) == 4
    gap = by_title["The gap is the KL to the posterior"]
    assert list(gap.lines[0].get_xdata()) == pytest.approx([0, 4.4 * 1.05])
    assert gap.containers[0].lines[0].get_xdata().tolist() == pytest.approx(kls.tolist())


# Chapter 3's figures

def test_plot_jacobians_centres_the_colours_on_zero_and_names_only_the_named_coordinates():
    from cvae_tutorial.plotting import plot_jacobians

    coupling = torch.tensor([[1.0, 0.0], [-0.5, 2.0]])  # lower triangular, largest |·| 2
    dense = torch.tensor([[0.1, -3.0], [0.2, 1.0]])
    fig = plot_jacobians({"one": (coupling, ["z₁[0]", "z₂[1]"]), "two": (dense, None)},
                         "title")
    opaque_and_in_the_column(fig)
    assert len(fig.axes) == 4 and fig._suptitle.get_text() == "title"  # two colour bars
    one, two = fig.axes[:2]
    assert (one.get_title(), two.get_title()) == ("Jacobian of one", "Jacobian of two")
    for ax, limit in ((one, 2.0), (two, 3.0)):
        norm = ax.images[0].norm
        # symmetric about zero, so an exact zero is the colour map's white middle
        assert (norm.vmin, norm.vmax) == (-limit, limit) and norm(0.0) == pytest.approx(0.5)
    drawn(fig)
    assert [t.get_text() for t in one.get_xticklabels()] == ["z₁[0]", "z₂[1]"]
    assert [t.get_text() for t in one.get_yticklabels()] == ["z₁[0]", "z₂[1]"]
    assert not any("z" in t.get_text() for t in two.get_xticklabels())


def test_plot_flow_fit_shows_data_density_and_samples_on_the_grid_and_the_loss_curve():
    from cvae_tutorial.plotting import plot_flow_fit

    side = torch.linspace(-2.0, 2.0, 11)
    density = torch.rand(11, 11)
    data, samples = torch.randn(50, 2), torch.randn(40, 2)
    losses = [3.0, 2.5, 2.2]
    fig = plot_flow_fit(data, side, density, samples, losses, 2.7, "fit", shown=30)
    opaque_and_in_the_column(fig)
    data_ax, density_ax, samples_ax, loss_ax = fig.axes[:4]
    assert (data_ax.collections[0].get_offsets() == data[:30].numpy()).all()
    assert (samples_ax.collections[0].get_offsets() == samples[:30].numpy()).all()
    assert density_ax.collections[0].get_array().flatten().tolist() == \
        pytest.approx(density.flatten().tolist())
    for ax in (data_ax, density_ax, samples_ax):  # the same square, equal axes
        assert ax.get_xlim() == (-2.0, 2.0) and ax.get_ylim() == (-2.0, 2.0)
        assert ax.get_aspect() == 1.0 and ax.get_xlabel() == "z₁"
    assert list(loss_ax.lines[0].get_ydata()) == losses
    assert list(loss_ax.lines[1].get_ydata()) == [2.7, 2.7]  # the best Gaussian
    assert fig._suptitle.get_text() == "fit"


# The embedded faces' figures

def test_plot_face_rows_names_each_row_at_its_left_and_titles_the_top_row():
    from cvae_tutorial.plotting import plot_face_rows

    faces = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    rows = {"Smiling": faces, "Male": faces.flip(0), "Bangs": faces.float() / 255}
    fig = plot_face_rows(rows, "title", column_titles=["off", "on", "on", "on"])
    opaque_and_in_the_column(fig)
    axes = fig.axes
    assert len(axes) == 12 and all(len(ax.images) == 1 for ax in axes)
    assert [axes[4 * r].get_ylabel() for r in range(3)] == list(rows)
    assert all(ax.get_ylabel() == "" for i, ax in enumerate(axes) if i % 4)
    assert [ax.get_title() for ax in axes[:4]] == ["off", "on", "on", "on"]
    assert all(ax.get_title() == "" for ax in axes[4:])
    assert (axes[5].images[0].get_array() == faces[2].permute(1, 2, 0).numpy()).all()
    assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in axes)
    assert fig._suptitle.get_text() == "title"
    assert plot_face_rows(rows).axes[0].get_title() == ""  # no column titles asked


def test_plot_correlations_writes_each_value_off_the_diagonal_from_the_threshold_up():
    from cvae_tutorial.plotting import plot_correlations

    matrix = torch.tensor([[1.0, 0.05, -0.7], [0.05, 1.0, 0.01], [-0.7, 0.01, 1.0]])
    fig = plot_correlations(matrix, ["a", "b", "c"], "title", "phi")
    opaque_and_in_the_column(fig)
    ax, colour_bar = fig.axes
    written = {(text.get_position(), text.get_text(), text.get_color()) for text in ax.texts}
    # 0.05 itself is written (|phi| < 0.05 is left blank), the diagonal is not, and
    # the strong -0.70 in white on its dark cell
    assert written == {((1, 0), "0.05", "black"), ((0, 1), "0.05", "black"),
                       ((2, 0), "-0.70", "white"), ((0, 2), "-0.70", "white")}
    assert ax.images[0].get_clim() == (-1, 1) and colour_bar.get_ylabel() == "phi"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_title() == "title"
