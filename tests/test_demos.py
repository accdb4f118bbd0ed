"""The chapters' demonstrations (cvae_tutorial.demos): each function computes what its chapter
shows, on small models and data; none of them is part of the study's code digest."""
import math

import pytest
import torch
from torch import nn

from cvae_tutorial import CVAE, embedded_faces, study
from cvae_tutorial.cvae import run_config
from cvae_tutorial.data import render_faces
from cvae_tutorial.demos import kl_sign, latent_control, samplers, toy_priors
from cvae_tutorial.demos.density_grid import DensityGrid, mass_levels
from cvae_tutorial.demos.models_table import models_table


@pytest.fixture(scope="module")
def faces():
    return (embedded_faces("train", 16, num_images=96),
            embedded_faces("test", 16, num_images=48))


def flow_model(seed=0, scale=0.05, model="sigma_flow"):
    """A small untrained model whose flow (and prior) is perturbed away from the identity."""
    model = CVAE(run_config(model, image_size=16, latent_dim=4, flow_hidden=16)).initialize(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(("flow.", "prior_encoder.")):
                parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return model.eval()


class ConstantClassifier(nn.Module):
    """Reads every attribute as present, whatever the image."""

    def __init__(self, num_attributes):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.num_attributes = num_attributes

    def forward(self, x):
        return torch.ones(len(x), self.num_attributes) + 0 * self.weight


# --- the digest --------------------------------------------------------------------------------

def test_demos_decide_no_number(tmp_path):
    """Editing a demonstration leaves the study's code digest as it was; editing a digested
    module does not."""
    assert "demos" in study.NOT_DIGESTED
    package = tmp_path / "package"
    (package / "demos").mkdir(parents=True)
    (package / "losses.py").write_text("x = 1\n")
    (package / "demos" / "toy_priors.py").write_text("y = 1\n")
    before = study.code_digest(package)
    (package / "demos" / "toy_priors.py").write_text("y = 2\n")
    assert study.code_digest(package) == before
    (package / "losses.py").write_text("x = 2\n")
    assert study.code_digest(package) != before


# --- models_table ------------------------------------------------------------------------------

def test_models_table_has_a_row_per_run_with_every_bar_escaped():
    rows = models_table().splitlines()
    assert len(rows) == 2 + len(study.RUNGS)
    # 8 cells: 9 bars that are not escaped (a bare "|" in a title would split its cell)
    assert all(row.replace("\\|", "").count("|") == 9 for row in rows)
    flow = next(row for row in rows if row.startswith("| `sigma_flow` |"))
    assert "z = f⁻¹(μ_p + σ_p ε)" in flow and "Monte Carlo" in flow
    assert "σ-CVAE + flow prior" in flow and "q(z\\|x, y)" in flow
    sigma = next(row for row in rows if row.startswith("| `sigma` |"))
    assert "q(z\\|x) |" in sigma and "closed-form" in sigma and "| z = ε |" in sigma


# --- density_grid ------------------------------------------------------------------------------

def test_a_grid_integrates_a_density_to_one_and_images_rows_along_the_second_axis():
    grid = DensityGrid.spanning((-6.0, -5.0), (6.0, 7.0), 201, torch.float64)
    density = torch.exp(-0.5 * (grid.points ** 2).sum(1)) / (2 * math.pi)
    assert grid.mass(density) == pytest.approx(1.0, abs=1e-6)
    assert grid.limits == ((-6.0, 6.0), (-5.0, 7.0))
    image = grid.image(grid.points[:, 0])
    assert torch.equal(image[7], grid.axes[0])  # a row runs along the first axis
    assert torch.equal(grid.image(grid.points[:, 1])[:, 3], grid.axes[1])


def test_mass_levels_enclose_their_share_of_the_mass_lowest_first():
    grid = DensityGrid.spanning((-6.0, -6.0), (6.0, 6.0), 301, torch.float64)
    density = torch.exp(-0.5 * (grid.points ** 2).sum(1))
    levels = mass_levels(density, (0.9, 0.5))
    assert levels[0] < levels[1]
    for level, share in zip(levels, (0.9, 0.5)):
        inside = density[density >= level].sum() / density.sum()
        assert inside.item() == pytest.approx(share, abs=0.01)


# --- toy_priors --------------------------------------------------------------------------------

def test_crescents_are_a_fixed_toy_with_a_held_out_quarter():
    codes = toy_priors.crescents(per_label=500, seed=2)
    again = toy_priors.crescents(per_label=500, seed=2)
    assert torch.equal(codes.z, again.z) and torch.equal(codes.held_out, again.held_out)
    assert codes.z.shape == (1000, 2) and codes.y[:500].sum() == 0 and codes.y[500:].all()
    assert 0.2 < codes.held_out.float().mean() < 0.3
    assert len(codes.train[0]) + len(codes.test[0]) == 1000
    # y = 0 opens below (its arc lies above its centre), y = 1 opens above
    assert codes.z[:500, 1].mean() > -0.4 and codes.z[500:, 1].mean() < 0.4


@pytest.mark.parametrize("kind", list(toy_priors.TITLES))
def test_every_rung_starts_as_the_standard_normal(kind):
    prior = toy_priors.ToyPrior(kind)
    z = torch.randn(20, 2)
    expected = -0.5 * (z ** 2).sum(1) - math.log(2 * math.pi)
    for label in (0.0, 1.0):
        log_p = prior.log_prob(z, torch.full((20, 1), label))
        assert torch.allclose(log_p, expected, atol=1e-5)


def test_a_flow_rung_samples_through_the_inverse_flow():
    """f(samples) must be the base Gaussian N(μ_p, σ_p²): sampling without f⁻¹ (the paper's
    shortcut) would put f(samples) elsewhere."""
    torch.manual_seed(0)
    prior = toy_priors.ToyPrior("flow")
    with torch.no_grad():
        for parameter in prior.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape))
        y = torch.ones(4000, 1)
        samples = prior.sample(y, torch.Generator().manual_seed(1))
        u, _ = prior.flow(samples)
        mu_p, log_sigma_p = prior.base_params(y[:1])
    assert not torch.allclose(samples.mean(0), mu_p[0], atol=0.1)  # f is not the identity
    assert torch.allclose(u.mean(0), mu_p[0], atol=0.1)
    assert torch.allclose(u.std(0), log_sigma_p[0].exp(), rtol=0.05)


def test_the_ladder_fits_and_the_standard_normal_cannot_tell_the_labels_apart():
    codes = toy_priors.crescents(per_label=300, seed=2)
    priors = {title: toy_priors.ToyPrior(kind) for kind, title in toy_priors.TITLES.items()}
    before = toy_priors.held_out_scores(priors, codes)
    toy_priors.fit(priors["conditional Gaussian"], codes, steps=100, lr=3e-2)
    after = toy_priors.held_out_scores(priors, codes)
    assert after["conditional Gaussian"].all > before["conditional Gaussian"].all + 0.3
    assert after["N(0, I)"].own_minus_other == 0
    assert after["conditional Gaussian"].own_minus_other > 0
    table = toy_priors.scores_table(after).splitlines()
    assert len(table) == 2 + 4 and table[2].startswith("N(0, I)")


def test_ladder_steps_says_better_only_for_a_gain():
    scores = {title: toy_priors.Scores(value, value, value, 0.0)
              for title, value in zip(toy_priors.TITLES.values(), (-3.0, -3.5, -1.5, -1.0))}
    text = toy_priors.ladder_steps(scores)
    assert "N(0, I) -> conditional Gaussian: -0.500 nats per held-out code (no better)" in text
    assert "conditional Gaussian -> Real NVP (paper): +2.000 nats" in text
    assert text.splitlines()[0].endswith("conditional Real NVP (-1.00) > Real NVP (paper)"
                                         " (-1.50) > N(0, I) (-3.00) > conditional Gaussian"
                                         " (-3.50)")
    assert "(flow -> conditional flow) +0.500, i.e. 25% of what bending gained" in text


def test_panels_hold_each_labels_density_levels_and_samples():
    codes = toy_priors.crescents(per_label=200, seed=2)
    priors = {"N(0, I)": toy_priors.ToyPrior("standard")}
    grid, shown = toy_priors.panels(priors, codes, torch.Generator().manual_seed(0), size=40,
                                    num_samples=30)
    zero, one = shown["N(0, I)"]
    assert zero.density.shape == (40, 40) and zero.samples.shape == (30, 2)
    assert zero.levels == sorted(zero.levels) and torch.equal(zero.density, one.density)
    assert grid.limits[0][0] == pytest.approx(codes.z[:, 0].min().item() - 0.7)


# --- kl_sign -----------------------------------------------------------------------------------

def no_difference(model, z, y, kl):
    return kl


def test_both_signs_start_from_the_same_weights_and_batches(faces):
    train_data, _ = faces
    config = run_config("sigma_flow", image_size=16, latent_dim=4, flow_hidden=16)
    runs = [kl_sign.train_steps(config, train_data, no_difference, paper_sign, 3, 1e-3, 8, 0)
            for paper_sign in (False, True)]
    assert len(runs[0]) == 3 and runs[0] == runs[1]  # only the sign may differ


def paper_estimate(model, z, y, kl):  # chapter 4's: the correct one minus Σ (f(z) − μ_p)²/σ_p²
    mu_p, log_sigma_p = model.prior_params(y)
    u, _ = model.flow(z)
    return kl - ((u - mu_p) ** 2 / torch.exp(2 * log_sigma_p)).sum(1)


def test_the_paper_sign_trains_on_the_paper_estimate(faces):
    train_data, _ = faces
    config = run_config("sigma_flow", image_size=16, latent_dim=4, flow_hidden=16)
    correct = kl_sign.train_steps(config, train_data, paper_estimate, False, 6, 1e-2, 8, 0)
    paper = kl_sign.train_steps(config, train_data, paper_estimate, True, 6, 1e-2, 8, 0)
    assert correct[0] == paper[0]  # the first row is measured before any step
    # trained on it, the paper's estimate falls and the true KL rises, against the correct run
    assert paper[-1][0] < correct[-1][0] - 1 and paper[-1][1] > correct[-1][1] + 1


def test_a_non_finite_loss_stops_the_steps_and_says_so(faces, capsys):
    train_data, _ = faces
    config = run_config("sigma_flow", image_size=16, latent_dim=4, flow_hidden=16)
    rows = kl_sign.train_steps(config, train_data, lambda m, z, y, kl: kl * math.nan, True, 3,
                               1e-3, 8, 0)
    assert rows == [] and "non-finite loss at step 1: stopped" in capsys.readouterr().out


def test_steps_table_shows_the_chosen_steps_that_were_run():
    rows = [(-float(step), float(step), 0.1) for step in range(1, 8)]
    text = kl_sign.steps_table({"paper's sign": rows}, 12)
    steps = [int(line.split()[0]) for line in text.splitlines()[2:]]
    assert steps == [1, 2, 5]  # 10 and 12 were asked for, but the run stopped at 7
    assert text.splitlines()[0] == "trained with the paper's sign:"


# --- samplers ----------------------------------------------------------------------------------

def test_compare_latents_gives_both_samplers_the_same_noise(faces):
    train_data, test_data = faces
    model = flow_model()
    comparison = samplers.compare_latents(model, train_data, test_data, seed=0)
    latents = comparison.latents
    assert list(latents) == [samplers.FLOOR, samplers.CORRECT, samplers.SHORTCUT,
                             samplers.STANDARD]
    with torch.no_grad():
        flowed, _ = model.flow(latents[samplers.CORRECT])
    # the shortcut is u = μ_p + σ_p ε; the correct sampler is f⁻¹(u) with the same ε
    assert torch.allclose(flowed, latents[samplers.SHORTCUT], atol=1e-4)
    assert comparison.relative_move > 0.01
    assert comparison.distances[samplers.SHORTCUT] == pytest.approx(
        samplers.latent_frechet_distance(comparison.test_codes, latents[samplers.SHORTCUT]))
    assert comparison.ratio == pytest.approx(comparison.distances[samplers.SHORTCUT]
                                             / comparison.distances[samplers.CORRECT])
    assert f"codes of {len(test_data)} test images" in comparison.table()
    assert comparison.sentence().startswith(f"the shortcut's Fréchet distance is "
                                            f"{comparison.ratio:.1f}x")


def test_an_identity_flow_makes_the_samplers_one(faces):
    train_data, test_data = faces
    model = CVAE(run_config("sigma_flow", image_size=16, latent_dim=4,
                            flow_hidden=16)).initialize(0).eval()
    comparison = samplers.compare_latents(model, train_data, test_data, seed=0)
    assert comparison.relative_move == 0
    assert torch.equal(comparison.latents[samplers.CORRECT],
                       comparison.latents[samplers.SHORTCUT])


def test_total_variance_is_the_trace_of_the_covariance():
    z = torch.randn(500, 3) * torch.tensor([1.0, 2.0, 3.0])
    assert samplers.total_variance(z) == pytest.approx(torch.cov(z.T).trace().item(), rel=1e-5)


def test_sampler_accuracies_read_the_test_images_and_both_samplers(faces):
    _, test_data = faces
    classifier = ConstantClassifier(test_data.num_attributes)
    plain, balanced = samplers.sampler_accuracies(flow_model(), classifier, test_data, seed=0)
    assert list(plain) == [samplers.CEILING, "correct sampler", "paper's shortcut"]
    share = test_data.labels.mean(0)  # "always present" is right on the share of 1s
    for name in plain:
        assert torch.allclose(plain[name], share)
        both = (share > 0) & (share < 1)  # balanced: 0.5 where both values occur
        assert torch.allclose(balanced[name][both], torch.tensor(0.5))
    table = samplers.accuracy_table(plain, test_data.attribute_names).splitlines()
    assert len(table) == 2 + test_data.num_attributes
    assert float(table[-1].split()[1]) == pytest.approx(share.mean().item(), abs=5e-4)


@pytest.mark.parametrize("shortcut, words", [(0.80, "higher than"), (0.70, "lower than"),
                                             (0.753, "close to (within 0.005)")])
def test_accuracy_sentence_names_the_direction(shortcut, words, faces):
    train_data, test_data = faces
    comparison = samplers.compare_latents(flow_model(), train_data, test_data, seed=0)
    accuracies = {"correct sampler": torch.tensor([0.75]),
                  "paper's shortcut": torch.tensor([shortcut])}
    balanced = {"correct sampler": torch.tensor([0.7]), "paper's shortcut": torch.tensor([0.6])}
    lines = samplers.accuracy_sentence(accuracies, balanced, comparison).splitlines()
    assert f"i.e. the shortcut is {words} the correct sampler" in lines[0]
    assert lines[2] == (f"correct sampler minus shortcut: plain {0.75 - shortcut:+.3f},"
                        f" balanced +0.100")


def test_attribute_set_rows_draw_the_set_and_count_it(faces):
    train_data, _ = faces
    model = CVAE(run_config("sigma_flow", image_size=16, latent_dim=4,
                            flow_hidden=16)).initialize(0).eval()
    sets = samplers.attribute_set_rows(model, ConstantClassifier(train_data.num_attributes),
                                       train_data, {"Male": dict(Male=1),
                                                    "not Smiling": dict(Smiling=0)}, 4, 0)
    male = train_data.attribute_names.index("Male")
    assert sets.counts == {"Male": int(train_data.labels[:, male].sum()),
                           "not Smiling": int((train_data.labels[:, 1] == 0).sum())}
    assert len(sets.rows) == 6 and sets.num_train == len(train_data)
    images = list(sets.rows.values())
    # the drawn faces have the set's attributes; a new flow is the identity, so the two
    # samplers, given the same noise, decode the same faces
    assert torch.equal(images[0][:1], render_faces(
        train_data.attribute_vector(Male=1)[None], *_nuisance_of_face_0(), 16))
    assert torch.equal(images[1], images[2])
    assert sets.agreements["Male", samplers.DRAWN] == 1.0  # "present", as asked
    assert sets.agreements["not Smiling", samplers.DRAWN] == 0.0
    assert "of the named attributes right" in list(sets.rows)[0]
    assert sets.counts_table().splitlines()[0].startswith("Male ")


def _nuisance_of_face_0():
    from cvae_tutorial.data import face_parameters

    return (face_parameters(range(1), 0)[1],)


def test_rare_set_verdicts_judge_only_where_the_classifier_reads_the_drawn_faces():
    agreements = {}
    for name, (drawn, correct) in {"untrusted": (0.5, 0.5), "carried": (0.9, 0.86),
                                   "short": (0.9, 0.8)}.items():
        agreements.update({(name, samplers.DRAWN): drawn, (name, "correct sampler"): correct,
                           (name, "paper's shortcut"): 0.1})
    sets = samplers.AttributeSets({"untrusted": 0, "carried": 0, "short": 0}, {}, agreements, 1)
    verdicts = samplers.rare_set_verdicts(sets, trusted=0.75).splitlines()
    assert "no verdict" in verdicts[1] and "only 50% of the time" in verdicts[1]
    assert "about as well as the drawn ones" in verdicts[3]
    assert "fall short of the drawn ones" in verdicts[5]
    assert verdicts[0].startswith("untrusted") and "paper's shortcut 10%" in verdicts[0]


# --- latent_control ----------------------------------------------------------------------------

def test_a_prior_that_ignores_y_is_untouched_by_the_shuffle(faces):
    """The σ-CVAE draws z ~ N(0, I) whatever y: with the same noise, shuffled labels give the
    very same latents, so neither distance may move."""
    train_data, test_data = faces
    model = CVAE(run_config("sigma", image_size=16, latent_dim=4)).initialize(0).eval()
    control = latent_control.latent_label_control(model, train_data, test_data, seed=0)
    assert list(control) == list(latent_control.MEASURES)
    for measure in control.values():
        assert measure.change == 0 and measure.floor > 0


def test_a_prior_that_follows_y_moves_with_the_shuffle_and_the_floor_uses_training_codes(faces):
    train_data, test_data = faces
    model = flow_model(scale=0.1, model="sigma_cond")
    control = latent_control.latent_label_control(model, train_data, test_data, seed=0)
    assert control["latents only"].change != 0
    generator = torch.Generator().manual_seed(0)
    test_codes = samplers.posterior_codes(model, test_data, generator)
    floor_codes = samplers.posterior_codes(model, train_data.subset(len(test_data)), generator)
    assert control["latents only"].floor == pytest.approx(
        samplers.latent_frechet_distance(test_codes, floor_codes))


def test_control_table_has_a_line_per_model_and_measure():
    controls = {"a model": {"latents only": latent_control.Control(0.1, 0.1, 0.2),
                            "(latent, labels) pairs": latent_control.Control(0.2, 0.5, 0.1)}}
    lines = latent_control.control_table(controls).splitlines()
    assert lines[1] == "a model:"
    assert lines[3].split() == ["(latent,", "labels)", "pairs", "0.200", "0.500", "+0.300",
                                "0.100"]


def _controls(latent_changes, pair_changes):
    """{seed: {measure: Control}} with the given shifts (right at 1.0, floor 0.05)."""
    Control = latent_control.Control
    return {seed: {"latents only": Control(1.0, 1.0 + a, 0.05),
                   "(latent, labels) pairs": Control(1.0, 1.0 + b, 0.05)}
            for seed, (a, b) in enumerate(zip(latent_changes, pair_changes))}


def test_the_shift_verdict_is_paired_over_the_seeds():
    # blind and seeing: latents-only shifts around 0, the pairs' clearly above them
    verdict = latent_control.shift_verdict(_controls([0.01, -0.02, 0.005], [0.3, 0.32, 0.29]))
    assert verdict.blind and verdict.sees_conditioning
    assert verdict.latents.pairs == 3 and verdict.beyond.mean == pytest.approx(
        (0.29 + 0.34 + 0.285) / 3)  # bug: the pairs' shift alone, not beyond the latents'
    # one seed's pairs shift above its floor is no verdict: the seeds disagree
    noisy = latent_control.shift_verdict(_controls([0.04, -0.01, 0.0], [0.11, 0.09, 0.04]))
    assert not noisy.sees_conditioning
    moved = latent_control.shift_verdict(_controls([0.2, 0.21, 0.19], [0.2, 0.21, 0.19]))
    assert not moved.blind  # bug: blind read from the pairs' shift
    lines = latent_control.verdict_lines({"flow": verdict, "noisy": noisy}).splitlines()
    assert lines[0].startswith("flow: the latents-only shift is -0.002 ± ")
    assert "within noise of zero" in lines[0] and lines[0].endswith("sees conditioning")
    assert lines[1].endswith("within noise, so not seen at this run's seeds")
    means = latent_control.seed_means(_controls([0.0, 0.3, 0.0], [0.3, 0.3, 0.0]))
    assert means["latents only"].change == pytest.approx(0.1)
    assert means["(latent, labels) pairs"].change == pytest.approx(0.2)


# --- sharpness ---------------------------------------------------------------------------------

def test_laplacian_energy_is_zero_on_smooth_images_and_sixteen_on_a_checkerboard():
    from cvae_tutorial.demos.sharpness import laplacian_energy

    ramp = torch.linspace(0, 1, 8).expand(2, 3, 8, 8).contiguous()  # linear: no curvature
    assert laplacian_energy(ramp) == pytest.approx(0, abs=1e-10)
    assert laplacian_energy(torch.full((1, 3, 8, 8), 0.7)) == 0
    rows, columns = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    checker = ((rows + columns) % 2).float().expand(1, 3, 8, 8).contiguous()
    assert laplacian_energy(checker) == pytest.approx(16.0)  # ±4 at every pixel
    one_channel = checker.clone()
    one_channel[:, 1:] = 0  # each channel filtered on its own
    assert laplacian_energy(one_channel) == pytest.approx(16.0 / 3)


# --- run_setup (chapters 5–7) ------------------------------------------------------------------

def test_training_parameters_give_a_config_per_seed_and_refuse_bad_lists():
    from cvae_tutorial import ConfigError
    from cvae_tutorial.demos import run_setup

    sizes = dict(image_size=16, latent_dim=4, epochs=2, batch_size=8, lr=1e-3, device="cpu")
    configs = run_setup.check_training_parameters(["sigma", "sigma_flow"], [0, 5], **sizes)
    assert list(configs) == [0, 5] and configs[5].seed == 5 and configs[0].epochs == 2
    for models, seeds, message in (([], [0], "models must not be empty"),
                                   (["sigma"], [], "seeds must not be empty"),
                                   (["sigma"], [1, 1], "seeds must differ"),
                                   (["sigma", "sigma"], [0], "models must differ"),
                                   (["flow"], [0], "unknown model 'flow'")):
        with pytest.raises(ConfigError, match=message):
            run_setup.check_training_parameters(models, seeds, **sizes)
    with pytest.raises(ConfigError, match="image_size=86 is not supported"):
        run_setup.check_training_parameters(["sigma"], [0], **{**sizes, "image_size": 86})


def test_evaluation_and_editing_parameters_are_checked_beyond_their_types():
    from cvae_tutorial import ConfigError
    from cvae_tutorial.demos import run_setup

    common = dict(latent_dim=4, classifier_epochs=1, seed=0, standalone_epochs=1, device="cpu")
    run_setup.check_evaluation_parameters(["sigma"], [0, 1], **common)
    with pytest.raises(ConfigError, match="seeds must differ"):
        run_setup.check_evaluation_parameters(["sigma"], [0, 0], **common)
    with pytest.raises(ConfigError, match="ClassifierConfig.epochs"):
        run_setup.check_evaluation_parameters(["sigma"], [0], **{**common,
                                                                "classifier_epochs": 0})
    with pytest.raises(ConfigError, match="TrainConfig.epochs"):
        run_setup.check_evaluation_parameters(["sigma"], [0], **{**common,
                                                                "standalone_epochs": 0})
    counts = dict(edit_images=2, num_samples=2, interpolation_steps=2)
    run_setup.check_editing_parameters(["sigma"], ["Smiling"], [0.0, 1], **counts, **common)
    for lists, changed, message in (
            ((["sigma"], ["Smiling"], [-0.1]), {}, "temperatures must be numbers >= 0"),
            ((["sigma"], ["Smiling"], [True]), {}, "temperatures must be numbers >= 0"),
            ((["sigma"], [], [1.0]), {}, "grid_attributes must not be empty"),
            ((["sigma"], ["Smiling"], [1.0]), {"edit_images": 1}, "edit_images must be an int"),
            ((["sigma"], ["Smiling"], [1.0]), {"device": "tpu"}, "unknown device")):
        with pytest.raises(ConfigError, match=message):
            run_setup.check_editing_parameters(*lists, **{**counts, **common, **changed})
    with pytest.raises(TypeError, match="interpolation_steps must be an int, got bool True"):
        run_setup.check_editing_parameters(["sigma"], ["Smiling"], [1.0],
                                           **{**counts, **common, "interpolation_steps": True})


def test_eval_samples_beyond_the_test_images_are_refused_only_when_evaluating(faces):
    from cvae_tutorial import ConfigError
    from cvae_tutorial.demos import run_setup

    _, test_data = faces
    run_setup.check_eval_samples(False, 10_000, test_data)
    run_setup.check_eval_samples(True, len(test_data), test_data)
    with pytest.raises(ConfigError, match=f"eval_samples=49 exceeds the {len(test_data)} test"):
        run_setup.check_eval_samples(True, len(test_data) + 1, test_data)


def test_table_titles_escape_the_bar_of_a_markdown_cell():
    from cvae_tutorial.demos import run_setup

    titles = run_setup.table_titles(["sigma", "sigma_qxy"])
    assert titles["sigma"] == "σ-CVAE" and titles["sigma_qxy"].count("\\|") == 1


@pytest.fixture(scope="module")
def stand_ins(faces, tmp_path_factory):
    """Stand-in checkpoints of two models for seeds 0 and 3, trained one epoch."""
    from cvae_tutorial.demos import run_setup

    train_data, test_data = faces
    folder = tmp_path_factory.mktemp("stand_ins") / "run"
    returned = run_setup.train_stand_ins(["sigma", "sigma_flow"], [0, 3], train_data,
                                         test_data, folder, epochs=1, latent_dim=4,
                                         device="cpu")
    return folder, returned


def test_stand_ins_are_one_checkpoint_per_model_and_seed(stand_ins):
    from cvae_tutorial.checkpoints import load_checkpoint

    folder, returned = stand_ins
    assert returned == str(folder)
    for seed in (0, 3):
        for name in ("sigma", "sigma_flow"):
            state = load_checkpoint(folder / f"seed{seed}" / name / "checkpoint.pt")
            assert state["train_config"]["seed"] == seed
            assert state["train_config"]["epochs"] == 1 and len(state["history"]) == 1
            assert state["model_config"]["image_size"] == 16
            assert state["model_config"]["latent_dim"] == 4


def test_find_checkpoints_reads_a_run_or_asks_for_stand_ins(stand_ins, tmp_path):
    from cvae_tutorial.demos import run_setup

    folder, _ = stand_ins
    found = run_setup.find_checkpoints(str(folder), ["sigma", "sigma_flow"], [0, 3],
                                       "elsewhere", 2)
    assert not found.stand_ins and found.run_dir == str(folder) and found.image_size == 16
    assert len(found.run.found) == 4 and "seeds 0, 3 (16x16)" in found.message
    empty = run_setup.find_checkpoints(str(tmp_path / "none"), ["sigma"], [0],
                                       str(tmp_path / "tiny"), 2)
    assert empty.stand_ins and empty.run is None and empty.run_dir == str(tmp_path / "tiny")
    assert empty.image_size == run_setup.STAND_IN_IMAGE_SIZE
    assert empty.message.startswith("no checkpoints in") and "(2 epochs)" in empty.message
    with pytest.raises(FileNotFoundError, match="no checkpoint for seed 1 of sigma"):
        run_setup.find_checkpoints(str(folder), ["sigma"], [0, 1], "elsewhere", 2)


# --- training_results (chapter 5) --------------------------------------------------------------

def _seed_rows(values: dict, column: str = "neg_elbo") -> list:
    """Rows of models over three seeds: {model: [value per seed]} in ``column``, the other
    columns of the training table 0."""
    from cvae_tutorial.demos import training_results

    return [{"model": name, "seed": seed, **{c: 0.0 for c in training_results.COLUMNS},
             column: value}
            for name, per_seed in values.items() for seed, value in enumerate(per_seed)]


def test_final_row_is_the_test_elbo_the_reconstruction_mse_and_the_summed_time(faces,
                                                                                monkeypatch):
    from cvae_tutorial.data import to_float
    from cvae_tutorial.demos import training_results
    from cvae_tutorial.training import evaluate_neg_elbo

    _, test_data = faces
    model = CVAE(run_config("sigma", image_size=16, latent_dim=4)).initialize(0).eval()
    monkeypatch.setattr(training_results, "RECONSTRUCTED", 8)
    history = [{"seconds": 1.5}, {"seconds": 2.0}]
    row = training_results.final_row(model, history, test_data, "sigma", seed=3)
    test = evaluate_neg_elbo(model, test_data, seed=3)
    assert row["neg_elbo"] == test["neg_elbo"] and row["kl"] == test["kl"]
    x, y = to_float(test_data.images[:8]), test_data.labels[:8]
    with torch.no_grad():
        mse = ((model.reconstruct(x, y) - x) ** 2).mean().item()
    assert row["recon_mse"] == pytest.approx(mse)  # the first 8 images, not all 48
    assert row["seconds"] == 3.5 and (row["model"], row["seed"]) == ("sigma", 3)
    assert row["log_sigma"] == model.decoder_log_sigma.item()


def test_training_verdicts_name_the_better_model_only_for_the_pairs_present():
    from cvae_tutorial.demos import training_results

    rows = _seed_rows({"sigma": [10.0, 10.5, 9.6], "sigma_qxy": [5.0, 5.4, 4.7]})
    titles = {"sigma": "A", "sigma_qxy": "B"}
    lines = training_results.verdicts(rows, titles).splitlines()
    assert len(lines) == 2  # the −ELBO and the KL of the encoder pair; no other pair
    assert lines[0].startswith("Test −ELBO, encoder q(z|x) vs q(z|x,y): B is better than A")
    assert "seed 0: sigma 10.0, sigma_qxy 5.0" in training_results.seed_line(rows, 0)


def test_power_sentence_states_the_rules_power_at_each_gap():
    from cvae_tutorial.demos import training_results
    from cvae_tutorial.evaluation import paired_power

    sentence = training_results.power_sentence(3)
    assert sentence.startswith("With 3 paired seeds the rule names the better model "
                               f"{100 * paired_power(1, 3):.0f} % of the time at a gap of 1 SD")
    assert f"with 5 seeds, {100 * paired_power(2, 5):.0f} % at 2 SD" in sentence


def test_training_answer_says_which_comparisons_found_a_winner():
    from cvae_tutorial.demos import training_results

    found = _seed_rows({"sigma": [10.0, 10.5, 9.6], "sigma_qxy": [5.0, 5.4, 4.7],
                        "sigma_cond": [5.1, 5.2, 4.6]})
    answer = training_results.answer(found, epochs=1)
    assert answer.startswith("On this run (3 seeds of 1 epoch), 1 of the 3 one-choice")
    assert "Test −ELBO, encoder q(z|x) vs q(z|x,y): σ-CVAE, q(z|x,y), N(0, I) prior is " \
           "better" in answer
    assert "The other 2 are within noise (Test KL" in answer
    kl = _seed_rows({"sigma": [1.0, 1.1, 0.9], "sigma_qxy": [3.0, 3.2, 2.9]}, "kl")
    assert "q(z|x,y), N(0, I) prior is higher" in training_results.answer(kl, epochs=2)
    none = training_results.answer(_seed_rows({"sigma": [1.0, 2.0, 3.0],
                                               "sigma_qxy": [2.0, 1.0, 3.0]}), epochs=2)
    assert "none of the 2 one-choice comparisons" in none and "all are within noise" in none
    assert "holds none of its pairs" in training_results.answer(
        _seed_rows({"sigma": [1.0, 2.0, 3.0]}), epochs=2)


def test_attribute_sets_start_from_the_typical_face(faces):
    from cvae_tutorial.demos import training_results

    train_data, _ = faces
    names = list(train_data.attribute_names)
    typical = (train_data.labels.mean(0) > 0.5).float()
    labels = training_results.attribute_set_labels(train_data)
    assert list(labels) == list(training_results.ATTRIBUTE_SETS)
    assert torch.equal(labels["typical face"], typical)
    blond = labels["Blond_Hair, Wearing_Lipstick"]
    assert blond[names.index("Blond_Hair")] == 1 and blond[names.index("Black_Hair")] == 0
    assert blond[names.index("Wearing_Lipstick")] == 1
    assert labels["not Smiling"][names.index("Smiling")] == 0
    others = [i for i in range(len(names)) if names[i] not in ("Male", "Eyeglasses")]
    assert torch.equal(labels["Male, Eyeglasses"][others], typical[others])
    both = training_results.attribute_set_labels(
        train_data, {"both": {"Black_Hair": 1, "Blond_Hair": 1}})["both"]
    assert both[names.index("Black_Hair")] == 0  # blond hair asked: not black as well
    mine = training_results.attribute_set_labels(train_data, {"a set": {"Unknown": 1}})
    assert list(mine) == ["typical", *names[:5]]  # data without the names: each of five


# --- evaluation_report (chapter 6) -------------------------------------------------------------

def _evaluation_rows(models=("gaussian", "sigma", "sigma_flow"), seeds=(0, 1, 2)):
    """Results rows of chapter 6's shape: each model a step better than the one before on
    the distance (seed noise 0.1), the shuffled distances as the unshuffled ones and the
    joint distance rising under the shuffle by 1 (noise 0.1)."""
    rows = []
    for rank, name in enumerate(models):
        for seed, noise in zip(seeds, (0.0, 0.1, -0.1)):
            rows.append({
                "model": name, "seed": seed, "distance_name": "FD_attr",
                "distance": 10.0 - 3 * rank + noise, "shuffled_distance": 10.0 - 3 * rank,
                "joint_distance": 5.0 + noise, "shuffled_joint_distance": 6.0 + 2 * noise,
                "distance_inf": 8.0 - 3 * rank, "distance_slope": 200.0 + seed,
                "distance_curve": [12.0 - 3 * rank + seed, 11.0 - 3 * rank],
                "curve_sizes": [100, 200], "num_samples": 200, "kid": 0.1 * rank,
                "floor_distance": 1.5, "floor_distance_curve": [2.0, 1.5],
                "floor_distance_inf": 1.0, "floor_distance_slope": 100.0,
                "floor_distance_inf_se": 0.2, "floor_kid": 0.001, "floor_kid_se": 0.002,
                "bits_per_dim": 9.4 if name == "gaussian" else 4.5 + noise,
                "balanced_accuracy": 0.7 + 0.1 * rank, "flip_rate": 0.5, "prior_hole": 0.1,
                "active_units": 4.0, "test_kl": 10.0 * rank,
                "balanced_accuracy_Male": 0.9, "balanced_accuracy_Smiling": 0.6 + noise})
    return rows


def test_results_tables_and_the_classifier_line():
    from cvae_tutorial.demos import evaluation_report as report

    rows = [{**row, "real_attribute_accuracy": 0.91, "real_balanced_accuracy": 0.875,
             "latent_dim": 16} for row in _evaluation_rows(("sigma",), (0,))]
    line = report.classifier_line(rows, [0, 1, 2], ["sigma", "sigma_flow"])
    assert line == ("3 seeds x 2 models; the classifier on the real test images: accuracy "
                    "0.910, balanced accuracy 0.875; latent dimensions: 16")
    assert [title for title, _ in report.RESULT_TABLES] == [
        "Likelihoods and distances", "Conditioning and the latent space"]


def test_the_shift_report_says_where_the_joint_distance_sees_conditioning():
    from cvae_tutorial.demos import evaluation_report as report

    rows = _evaluation_rows(("sigma", "sigma_flow"))
    shifted = report.label_shifts(rows)
    assert shifted[1]["shift"] == pytest.approx(-0.1)  # shuffled minus the right labels
    assert shifted[1]["joint_shift"] == pytest.approx(1.1)
    assert "shift" not in rows[0]  # the rows themselves are left as they were
    lines = report.shift_report(rows, "FD_attr").splitlines()
    assert lines[0].endswith("FD_attr (only its noise) and joint FD_attr")
    assert lines[1].endswith("the joint distance sees conditioning")
    blind = [{**row, "shuffled_joint_distance": row["joint_distance"] + row["seed"] % 2}
             for row in rows]
    assert report.shift_report(blind, "FD_attr").splitlines()[1].endswith("blind here")


def test_distance_curves_average_the_seeds_and_end_with_the_floor():
    from cvae_tutorial.demos import evaluation_report as report

    sizes, curves = report.distance_curves(_evaluation_rows(("sigma",)))
    assert list(sizes) == [100, 200]
    assert list(curves) == ["σ-CVAE", "real vs real (the floor)"]
    sigma = curves["σ-CVAE"]
    assert list(sigma.values) == [12.0 + 1.0, 11.0] and sigma.slope == pytest.approx(201.0)
    assert curves["real vs real (the floor)"].inf == 1.0
    text = report.n_curve_report(_evaluation_rows(("sigma",)), "FD_attr").splitlines()
    assert text[0].startswith("the floor (two disjoint real sets): FD_attr 2.00 at N = 100, "
                              "1.50 at N = 200, extrapolated 1.00 ± 0.20 at N = ∞")
    assert "(20% of the distance at N is bias)" in text[1]  # (10 − 8) / 10


def test_attribute_balanced_accuracy_has_a_zero_error_for_a_single_seed():
    from cvae_tutorial.demos import evaluation_report as report

    values = report.attribute_balanced_accuracy(_evaluation_rows(("sigma",)),
                                                ["Male", "Smiling"])
    means, errors = values["σ-CVAE"]
    assert list(means) == pytest.approx([0.9, 0.6]) and errors[1] > 0 and errors[0] == 0
    one = report.attribute_balanced_accuracy(_evaluation_rows(("sigma",), (0,)), ["Male"])
    assert list(one["σ-CVAE"][1]) == [0]


def _recording_evaluation(test_data, num_samples):
    """A stand-in evaluation whose judge reads every image as having all attributes, its
    features the first 6 pixel values, and records the images it was given (the list)."""
    from types import SimpleNamespace

    from cvae_tutorial.evaluation.judge import Reading

    read = []

    def judge_read(images):
        read.append(images)
        return Reading(torch.ones(len(images), test_data.num_attributes),
                       images.flatten(1)[:, :6].double().numpy())

    reference = test_data.images[:num_samples].flatten(1)[:, :6].double().numpy()
    return SimpleNamespace(test_data=test_data, num_samples=num_samples, reference=reference,
                           judge=SimpleNamespace(read=judge_read)), read


def test_the_shortcut_comparison_reads_the_papers_shortcut_samples(faces):
    from cvae_tutorial.demos import evaluation_report as report
    from cvae_tutorial.evaluation import base_noise, sample_images

    _, test_data = faces
    evaluation, read = _recording_evaluation(test_data, 16)
    model = flow_model(scale=0.1)
    comparison = report.compare_shortcut(model, {"distance": 2.0, "attribute_accuracy": 0.5},
                                         evaluation, seed=4)
    labels = test_data.labels[:16]
    _, expected = sample_images(model, labels, base_noise(16, 4, 4), paper_shortcut=True)
    assert torch.equal(read[0], expected)
    assert comparison.shortcut_accuracy == pytest.approx(labels.mean().item())
    assert comparison.correct_distance == 2.0
    text = report.ShortcutComparison(2.0, 0.5, 5.0, 0.48).report("FD_attr")
    assert "the shortcut's FD_attr is 2.5x the correct sampler's; attribute accuracy " \
           "0.500 -> 0.480" in text


def test_the_bound_curve_tightens_from_the_first_draw_to_all_of_them(faces):
    from cvae_tutorial.demos import evaluation_report as report
    from cvae_tutorial.evaluation import dataset_log_weights

    assert report.bound_sizes(100) == [1, 2, 5, 10, 20, 50, 100]
    assert report.bound_sizes(4) == [1, 2, 4]
    _, test_data = faces
    model = CVAE(run_config("sigma", image_size=16, latent_dim=4)).initialize(0).eval()
    curve = report.bound_curve(model, test_data, 4, 8, seed=1)
    log_w = dataset_log_weights(model, test_data, 4, 8, seed=1, progress=False)
    assert curve.ks == [1, 2, 4] and curve.images == 8
    assert curve.nll[0] == pytest.approx(-log_w[:, 0].mean().item(), rel=1e-5)
    assert curve.neg_elbo == pytest.approx(-log_w.mean().item())
    assert curve.nll[-1] <= curve.neg_elbo
    assert curve.line("sigma", 3 * 16 * 16).startswith("sigma      on 8 images: -ELBO ")


def test_the_papers_order_holds_is_contradicted_or_is_not_resolved():
    from cvae_tutorial.demos import evaluation_report as report

    rows = _evaluation_rows()
    assert report.paper_order(rows) == "holds"
    reversed_ = [{**row, "distance": -row["distance"]} for row in rows]
    assert report.paper_order(reversed_) == "is contradicted"
    flat = [{**row, "distance": 1.0 + 0.1 * row["seed"] * (-1) ** len(row["model"])}
            for row in rows]
    assert report.paper_order(flat) == "is not resolved (within noise)"
    half = [{**row, "distance": (7.3, 6.7, 7.0)[row["seed"]]}  # as the σ-CVAE's 7 ± 0.1
            if row["model"] == "sigma_flow" else row for row in rows]
    assert report.paper_order(half) == "is not resolved (within noise)"  # one step of two
    assert report.paper_order(_evaluation_rows(("sigma_cond",))) == \
        "is not resolved (within noise)"


def test_the_verdict_report_numbers_each_comparison_it_can_make():
    from cvae_tutorial.demos import evaluation_report as report

    rows = _evaluation_rows(("gaussian", "sigma", "sigma_qxy"))
    titles = {name: name for name in ("gaussian", "sigma", "sigma_qxy")}
    text = report.verdict_report(rows, titles, distance_name="FD_attr", dataset="embedded",
                                 image_size=32, uniform_bits=8.0)
    assert text.startswith("1. The paper's order of its three models by FID (Gaussian CVAE "
                           "worst, flow prior best) holds on FD_attr, embedded at 32x32: "
                           "another data set")
    blocks = text.split("\n\n")
    assert blocks[1].startswith("2. σ = 1 vs σ*") and blocks[2].startswith("3. The encoder")
    assert "bits/dim" not in blocks[1] and "   bits/dim: " in blocks[2]
    assert "   FD_attr∞: " in blocks[1] and len(blocks) == 4
    assert blocks[3].startswith("6. KL term on the test images at the end of training")
    assert "Gaussian CVAE (σ = 1): 9.400 bits/dim is above 8" in blocks[3]
    assert "σ-CVAE: 4.500" not in blocks[3]
    shortcut = report.ShortcutComparison(2.0, 0.5, 5.0, 0.48)
    with_shortcut = report.verdict_report(rows, titles, distance_name="FID",
                                          dataset="celeba", image_size=64, uniform_bits=8.0,
                                          shortcut=shortcut, shortcut_seed=2)
    assert "celeba at 64x64.\n" in with_shortcut
    assert with_shortcut.endswith("7. Flow prior (seed 2), correct sampler vs the paper's "
                                  "shortcut: FID 2.00 vs 5.00, attribute accuracy 0.500 vs "
                                  "0.480.")


def test_the_test_kl_comes_from_each_checkpoints_history(stand_ins):
    from cvae_tutorial.checkpoints import load_history
    from cvae_tutorial.demos import evaluation_report as report

    folder, _ = stand_ins
    rows = [{"model": "sigma_flow", "seed": 3}, {"model": "sigma", "seed": 0}]
    report.add_test_kl(rows, folder)
    assert rows[0]["test_kl"] == load_history(folder / "seed3" / "sigma_flow" /
                                              "checkpoint.pt")[-1]["test_kl"]
    assert rows[1]["test_kl"] != rows[0]["test_kl"]


def test_run_key_points_state_the_latent_control_only_as_its_numbers_allow():
    from cvae_tutorial.demos import evaluation_report as report

    floor = {"floor_distance": 1.96, "num_samples": 1000}
    points = report.run_key_points(floor, "FD_attr", "holds")
    assert len(points) == 2 and ("score 1.96 (FD_attr, in the features of the prior-ladder "
                                 "study's classifier) at N = 1000") in points[0]
    assert points[1] == ("The paper's order of its three models by the distance holds in "
                         "this chapter's short run.")
    seen = latent_control.shift_verdict(_controls([0.01, -0.02, 0.005], [0.3, 0.32, 0.29]))
    assert report.run_key_points(floor, "FD_attr", "holds", seen)[2] == \
        report.LATENT_KEY_POINT
    unseen = latent_control.shift_verdict(_controls([0.04, -0.01, 0.0], [0.11, 0.09, 0.04]))
    point = report.run_key_points(floor, "FD_attr", "holds", unseen)[2]
    assert "latents-only shift was +0.010 ± " in point
    assert point.endswith("the pairs' distance did not see conditioning at these seeds.")
    moved = latent_control.shift_verdict(_controls([0.2, 0.21, 0.19], [0.4, 0.42, 0.38]))
    assert "latents-only distance moved" in report.run_key_points(floor, "FD_attr", "holds",
                                                                   moved)[2]
    box = report.key_points_box(["one", "two"])
    assert box == "```{admonition} Key points\n:class: tip\n- one\n- two\n```"


# --- editing_report and explorer (chapter 7) ---------------------------------------------------

def _outcome(name, success, preserved=None, pixel=0.1):
    from cvae_tutorial.evaluation.edits import EditOutcome

    success = torch.tensor(success, dtype=torch.bool)
    preserved = torch.ones(len(success), dtype=torch.float64) if preserved is None else \
        torch.tensor(preserved, dtype=torch.float64)
    distances = torch.full((len(success),), pixel, dtype=torch.float64)
    return EditOutcome(name, success, preserved, distances, distances - 0.05,
                       torch.ones(len(success), dtype=torch.bool))


def test_estimates_read_per_image_values_or_a_pair():
    from cvae_tutorial.demos import editing_report as report

    assert report.estimate((0.5, 0.01)) == "0.500 ± 0.010"
    assert report.estimate(torch.tensor([1.0, 3.0]), 2) == "2.00 ± 1.00"


def test_edit_examples_and_the_measured_edits_of_one_model(faces):
    from cvae_tutorial.data import to_float
    from cvae_tutorial.demos import editing_report as report
    from cvae_tutorial.editing import edit, edited_labels

    _, test_data = faces
    model = CVAE(run_config("sigma", image_size=16, latent_dim=4)).initialize(0).eval()
    x, y = to_float(test_data.images[:3]), test_data.labels[:3]
    strips = report.edit_examples(model, x, y, [1, 4])
    assert len(strips) == 4 and torch.equal(strips[0], x)
    assert torch.equal(strips[1], model.reconstruct(x, y))
    assert torch.equal(strips[3], edit(model, x, y, edited_labels(y, 4)))
    classifier = ConstantClassifier(test_data.num_attributes)
    outcomes, per_image = report.measure_model_edits(model, classifier, test_data, 7)
    assert [o.attribute for o in outcomes] == list(test_data.attribute_names)
    assert len(per_image["success"]) == 7  # the first 7 images
    expected = torch.stack([o.preserved.double() for o in outcomes]).mean(0)
    assert torch.equal(per_image["preserved"], expected)  # each image: mean over attributes
    ceiling = report.reconstruction_ceiling(model, classifier, test_data, 10, batch_size=3)
    assert torch.allclose(ceiling, test_data.labels[:10].mean(0))  # reads every one as 1
    assert torch.equal(ceiling, report.reconstruction_ceiling(model, classifier, test_data, 10))


def test_edit_tables_and_sentences():
    from cvae_tutorial.demos import editing_report as report

    outcomes = [_outcome("Smiling", [1, 1, 0, 1]), _outcome("Wearing_Hat", [0, 0, 0, 1])]
    per_image = {"success": torch.tensor([0.5, 0.5, 0.0, 1.0], dtype=torch.float64),
                 "preserved": torch.ones(4, dtype=torch.float64),
                 "pixel_distance": torch.full((4,), 0.1, dtype=torch.float64),
                 "reconstruction_distance": torch.full((4,), 0.05, dtype=torch.float64)}
    edits = {"sigma": (outcomes, per_image)}
    table = report.edits_markdown(edits, {"sigma": torch.tensor([0.8, 0.6])}).splitlines()
    assert table[2].startswith("| σ-CVAE | 0.500 ± 0.204 | 0.700 | 1.000 ± 0.000 | 0.1000 ± ")
    rates, errors = report.success_rates(outcomes)
    assert rates == [0.75, 0.25] and errors[0] == pytest.approx((0.75 * 0.25 / 4) ** 0.5)
    assert report.easiest_and_hardest(edits) == (
        "sigma      easiest edit Smiling 0.750 ± 0.217, hardest Wearing_Hat 0.250 ± 0.217")
    index, change = report.largest_success_change(
        outcomes, [_outcome("Smiling", [1, 1, 1, 1]), _outcome("Wearing_Hat", [0, 0, 0, 0])])
    assert (index, change) == (0, 0.25)  # the first of two equal moves, in either direction
    index, change = report.largest_success_change(
        outcomes, [_outcome("Smiling", [1, 1, 0, 1]), _outcome("Wearing_Hat", [0, 0, 0, 0])])
    assert (index, change) == (1, -0.25)


def test_kept_against_moved_compares_each_measure_image_by_image():
    from cvae_tutorial.demos import editing_report as report

    kept = {"success": torch.tensor([1.0, 1.0, 0.0, 1.0]), "preserved": torch.ones(4),
            "pixel_distance": torch.tensor([0.10, 0.11, 0.12, 0.10])}
    moved = {**kept, "pixel_distance": kept["pixel_distance"] + 0.05}
    lines = report.kept_vs_moved_report(kept, moved).splitlines()
    assert lines[0].startswith("edit success    code kept 0.750 ± 0.250, moved through")
    assert "within noise" in lines[1]
    assert "keeping the code is better than moving it, lower by 0.0500" in lines[5]
    assert report.keep_or_move(None).startswith("No flow model")
    assert "within noise of each other" in report.keep_or_move((kept, kept))
    always = {**kept, "success": torch.ones(4)}
    worse = {**kept, "success": 0.01 * torch.arange(4)}
    assert report.keep_or_move((always, worse)) == (
        "For the flow prior, the two edits differ: keeping the code is better on success "
        "(paired over images).")


def test_kept_and_moved_rows_are_the_same_image_for_a_standard_normal_prior(faces):
    from cvae_tutorial.demos import editing_report as report

    _, test_data = faces
    model = CVAE(run_config("sigma", image_size=16, latent_dim=4)).initialize(0).eval()
    rows = report.kept_and_moved_rows(model, test_data, 2, count=5)
    assert list(rows) == ["originals (test images)", "code kept",
                          "code moved through the prior"]
    assert rows["code kept"].shape == (5, 3, 16, 16)
    assert torch.allclose(rows["code kept"], rows["code moved through the prior"])
    flow = report.kept_and_moved_rows(flow_model(scale=0.2), test_data, 2, count=5)
    assert not torch.allclose(flow["code kept"], flow["code moved through the prior"])


def test_the_interpolation_pair_and_its_crossings(faces):
    from cvae_tutorial.demos import editing_report as report

    _, test_data = faces
    pair, changing = report.interpolation_pair(test_data)
    labels, names = test_data.labels, list(test_data.attribute_names)
    assert pair[0] == 0 and (labels[pair[1]] != labels[0]).sum() >= 2
    assert all((labels[i] != labels[0]).sum() < 2 for i in range(1, pair[1]))
    assert changing == [a for i, a in enumerate(names)
                        if labels[0, i] != labels[pair[1], i]][:report.CHANGING_SHOWN]
    assert report.crossings(torch.tensor([0.2, 0.6, 0.4, 0.7, 0.8])) == 3
    assert report.crossings(torch.tensor([0.6, 0.9])) == 0
    trained = {"sigma": CVAE(run_config("sigma", image_size=16, latent_dim=4)).initialize(0),
               "sigma_flow": flow_model()}
    paths = report.interpolation_paths(trained, test_data, pair, changing, 5,
                                       ConstantClassifier(test_data.num_attributes))
    assert list(paths) == ["σ-CVAE, line in z", "σ-CVAE + Real NVP prior, line in z",
                           "σ-CVAE + Real NVP prior, line in u = f(z)"]
    path = paths["σ-CVAE, line in z"]
    assert path.images.shape == (5, 3, 16, 16) and list(path.probabilities) == changing
    assert all(n == 0 for n in path.crossings.values())  # the classifier never changes
    assert report.crossings_report({"a path": path}).startswith(
        f"a path: each changing attribute crosses p = 0.5 {changing[0]} 0x")


def test_the_temperature_sweep_samples_each_temperature_with_the_same_noise(faces, tmp_path):
    from cvae_tutorial.demos import editing_report as report
    from cvae_tutorial.evaluation import balanced_accuracy_terms, base_noise, sample_images

    _, test_data = faces
    evaluation, read = _recording_evaluation(test_data, 12)
    model = flow_model(scale=0.1)
    sweep = report.temperature_sweep({"sigma_flow": model}, [0.0, 1.0], evaluation, seed=2)
    assert list(sweep) == [("sigma_flow", 0.0), ("sigma_flow", 1.0)]
    labels = test_data.labels[:12]
    _, cold = sample_images(model, labels, base_noise(12, 4, 2), temperature=0.0)
    assert torch.equal(read[0], cold) and not torch.equal(read[0], read[1])
    distance, accuracy = sweep["sigma_flow", 1.0]
    assert accuracy.shape == (12,) and distance >= 0
    distances, accuracies = report.sweep_curves(sweep, [0.0, 1.0])
    title = "σ-CVAE + Real NVP prior"
    assert distances[title] == [sweep["sigma_flow", 0.0][0], distance]
    assert accuracies[title][0][1] == pytest.approx(accuracy.mean().item())
    table = report.sweep_markdown(sweep, "FD_attr").splitlines()
    assert table[0] == "| model | τ | FD_attr | balanced attribute accuracy |"
    assert table[3].startswith(f"| {title} | 1.0 | {distance:.2f} | ")
    assert report.chapter6_comparison(sweep, tmp_path, 0, "FD_attr") == []  # no table
    (tmp_path / "results.csv").write_text(
        "model,seed,distance_name,distance\nsigma_flow,0,FD_attr,3.25\n"
        "sigma_flow,1,FD_attr,7.5\nsigma,0,FD_attr,1.0\n")  # seed 0's row, not the last
    assert report.chapter6_comparison(sweep, tmp_path, 0, "FD_attr") == [
        f"sigma_flow τ = 1: FD_attr {distance:.2f} here, 3.25 in chapter 6's table"]
    assert report.chapter6_comparison(sweep, tmp_path, 0, "FID") == []  # another space
    assert report.chapter6_comparison({("sigma_flow", 0.5): (1.0, accuracy)}, tmp_path, 0,
                                      "FD_attr") == []
    classifier = ConstantClassifier(test_data.num_attributes)
    terms = balanced_accuracy_terms(torch.ones(12, test_data.num_attributes), labels)
    assert report.real_balanced_accuracy(classifier, test_data, 12) == \
        pytest.approx(terms.mean().item())  # the first 12 test images, read as all 1


def test_the_answer_report_and_which_model_edits_best():
    from cvae_tutorial.demos import editing_report as report

    def summary(success, preserved=1.0):
        return {"success": torch.tensor(success, dtype=torch.float64),
                "preserved": torch.full((len(success),), preserved, dtype=torch.float64),
                "pixel_distance": torch.full((len(success),), 0.1, dtype=torch.float64),
                "reconstruction_distance": torch.full((len(success),), 0.05,
                                                      dtype=torch.float64)}

    summaries = {"sigma": summary([0.9, 0.8, 0.95, 0.85]), "gaussian": summary([0.2, 0.3,
                                                                              0.25, 0.1])}
    ceilings = {"sigma": torch.tensor([0.95, 0.95]), "gaussian": torch.tensor([0.9, 0.9])}
    answer = report.best_editor(summaries, ceilings)
    assert answer.startswith("σ-CVAE edits best: its edits succeed more often")
    assert "Ceiling minus success: σ-CVAE 0.075, Gaussian CVAE (σ = 1) 0.687" in answer
    worse_kept = {**summaries, "sigma": summary([0.9, 0.8, 0.95, 0.85], preserved=0.5)}
    worse_kept["sigma"]["preserved"][0] = 0.4
    assert report.best_editor(worse_kept, ceilings).startswith("No model edits best")
    sweep = {(name, tau): (1.0 + tau, torch.tensor([0.5, 0.6, 0.7]) + tau)
             for name in summaries for tau in (0.0, 1.0)}
    text = report.answer_report(summaries, ceilings, None, sweep, [0.0, 1.0], images=4,
                                dataset="embedded", attributes=2, distance_name="FD_attr")
    lines = text.splitlines()
    assert lines[0] == ("Edit success and preservation on 4 embedded test images per "
                        "attribute (mean over 2 attributes, ± one s.e. over images):")
    assert "success: sigma is better than gaussian" in lines[3]
    assert "Flow prior" not in text
    assert "Temperature, σ-CVAE: FD_attr lowest at τ = 0.0 (1.00); balanced accuracy " \
           "τ = 0.0 0.600 ± 0.058 vs τ = 1.0 1.600 ± 0.058." in text
    with_flow = report.answer_report(summaries, ceilings, (summaries["sigma"],
                                                           summaries["sigma"]),
                                     sweep, [0.0, 1.0], images=4, dataset="embedded",
                                     attributes=2, distance_name="FD_attr")
    assert "Flow prior, keeping the posterior code vs moving it through the prior:" \
        in with_flow


def test_the_explorer_starts_typical_and_draws_the_same_noise(faces):
    from cvae_tutorial.demos import explorer

    train_data, _ = faces
    names = list(train_data.attribute_names)
    start = explorer.start("sigma", names, train_data.labels)
    assert start["model_name"] == "sigma" and start["temperature"] == 0.7
    assert [start[a] for a in names] == (train_data.labels.mean(0) > 0.5).tolist()
    model = flow_model(scale=0.1)
    ticked = {names[0]: True}
    first = explorer.samples(model, names, ticked, 0.7, seed=3, count=4)
    assert torch.equal(first, explorer.samples(model, names, ticked, 0.7, seed=3, count=4))
    cold = explorer.samples(model, names, ticked, 0.0, seed=3, count=4)
    assert torch.allclose(cold[0], cold[3]) and not torch.allclose(first[0], first[3])
    assert explorer.title("M", 0.7, names, ticked) == \
        f"M, τ = 0.70\nattributes on: {names[0].replace('_', ' ')}"
    assert explorer.title("M", 0.7, names, {}).endswith("attributes on: none")


def test_the_live_explorer_redraws_with_every_setting():
    pytest.importorskip("ipywidgets")
    from cvae_tutorial.demos import explorer

    names = ["Smiling", "Male"]
    drawn = []
    settings = dict(model_name="b", temperature=0.7, Smiling=True, Male=False)
    box = explorer.explorer(lambda **s: drawn.append(s), ["a", "b"], names, settings)
    header, boxes, _, _ = box.children
    header.children[1].value = 1.2  # the τ slider
    assert drawn == [{**settings, "temperature": 1.2}]
    boxes.children[1].value = True  # Male
    assert drawn[-1] == {**settings, "temperature": 1.2, "Male": True}
    assert header.children[0].value == "b" and len(boxes.children) == 2


# --- toy_parameters and random_flow (chapters 1 and 3) -----------------------------------------

def test_check_positive_names_the_first_value_that_is_not_above_zero():
    from cvae_tutorial import ConfigError
    from cvae_tutorial.demos.toy_parameters import check_positive

    check_positive(steps=1, lr=1e-9, scale=0.5)
    for bad in (0, -1, -0.5, float("nan")):  # zero and NaN too: a `< 0` or `<= 0` test
        with pytest.raises(ConfigError, match=f"^lr must be positive, got {bad!r}$"):
            check_positive(steps=3, lr=bad, batch_size=0)  # lr, the first bad one
    with pytest.raises(ConfigError, match="batch_size must be positive, got 0"):
        check_positive(steps=3, lr=0.1, batch_size=0)


def test_randomise_last_layers_moves_a_new_flow_away_from_the_identity_reproducibly():
    from cvae_tutorial.demos.random_flow import randomise_last_layers
    from cvae_tutorial.flows import RealNVP

    torch.manual_seed(0)
    flow = RealNVP(4, num_layers=3, hidden=32)
    before = {name: p.clone() for name, p in flow.named_parameters()}
    assert randomise_last_layers(flow, seed=5) is flow
    z = torch.randn(10, 4)
    u, logabsdet = flow(z)
    assert not torch.allclose(u, z) and (logabsdet.abs() > 1e-3).all()
    for name, parameter in flow.named_parameters():
        last = name.split(".")[-2] == str(len(flow.layers[0].net) - 1)
        if last:  # weights and biases, each drawn anew: no zero left, none repeated
            assert (parameter != 0).all(), name
        else:  # the hidden layers as they were
            assert torch.equal(parameter, before[name]), name
    lasts = [coupling.net[-1] for coupling in flow.layers]
    assert not torch.equal(lasts[0].weight, lasts[1].weight)  # one generator for all
    assert not torch.equal(lasts[0].bias, lasts[1].bias)
    weights = torch.cat([layer.weight.flatten() for layer in lasts])
    assert weights.std().item() == pytest.approx(0.5, rel=0.1)  # std = 0.5
    again = randomise_last_layers(RealNVP(4, num_layers=3, hidden=32), seed=5)
    assert torch.equal(again.layers[2].net[-1].weight, lasts[2].weight)
    other = randomise_last_layers(RealNVP(4, num_layers=3, hidden=32), seed=6)
    assert not torch.equal(other.layers[2].net[-1].weight, lasts[2].weight)


def test_two_moons_lie_on_their_two_arcs_and_repeat_with_the_generator():
    from cvae_tutorial.demos.two_moons import two_moons

    points = two_moons(2000, noise=0.0, generator=torch.Generator().manual_seed(0))
    assert points.shape == (2000, 2)
    upper = (points - torch.tensor([0.0, 0.0])).norm(dim=1)  # on the unit arc about (0, 0)
    lower = (points - torch.tensor([1.0, 0.5])).norm(dim=1)  # or about (1, 1/2)
    on_upper = (upper - 1).abs() < 1e-5
    assert (on_upper | ((lower - 1).abs() < 1e-5)).all()
    assert (points[on_upper, 1] >= -1e-6).all() and (points[~on_upper, 1] <= 0.5 + 1e-6).all()
    assert 0.45 < on_upper.float().mean() < 0.55  # each arm about half the points
    again = two_moons(2000, noise=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(points, again)
    noisy = two_moons(2000, noise=0.08, generator=torch.Generator().manual_seed(0))
    assert 0.05 < (noisy - points).std() < 0.11  # the noise is drawn after the arcs


def test_elbo_sweeps_move_only_the_first_coordinate_of_mean_or_scale():
    from cvae_tutorial.demos.elbo_sweeps import sweep_first_coordinate

    mean = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    log_sigma = torch.tensor([math.log(0.5), 0.1, -0.2], dtype=torch.float64)
    seen = []

    def elbo(mu, log_s):  # stands in for the Monte Carlo estimate: records each q
        seen.append((mu.clone(), log_s.clone()))
        return 10.0 - float(((mu - mean) ** 2).sum()), 0.01

    def kl(mu, log_s):
        return float(((mu - mean) ** 2).sum() + ((log_s - log_sigma) ** 2).sum())

    sweeps = sweep_first_coordinate(elbo, kl, mean, log_sigma, log_evidence=10.0)
    assert list(sweeps) == ["q's mean", "q's scale"]
    offsets, estimate, error, exact = sweeps["q's mean"]
    assert offsets.dtype == torch.float64 and len(offsets) == 21 and offsets[10] == 0
    for value, (mu, log_s) in zip(offsets, seen[:21]):  # the mean moves in posterior sds
        assert torch.allclose(mu, mean + torch.tensor([value * 0.5, 0, 0], dtype=mu.dtype))
        assert torch.equal(log_s, log_sigma)
    assert torch.allclose(estimate, 10.0 - (0.5 * offsets) ** 2) and (error == 0.01).all()
    assert torch.allclose(exact, 10.0 - (0.5 * offsets) ** 2)
    factors, _, _, exact = sweeps["q's scale"]
    assert factors[0] == -1.5 and factors[-1] == 1.5 and abs(factors[10]) < 1e-12
    for value, (mu, log_s) in zip(factors, seen[21:]):  # the scale moves, the mean stays
        assert torch.equal(mu, mean)
        assert torch.allclose(log_s, log_sigma + torch.tensor([value, 0, 0], dtype=mu.dtype))
    assert torch.allclose(exact, 10.0 - factors ** 2)
