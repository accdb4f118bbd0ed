"""The chapters' demonstrations (cvae_tutorial.demos): each function computes what its chapter
shows, on small models and data; none of them is part of the study's code digest."""
import math

import pytest
import torch
from torch import nn

from cvae_tutorial import CVAE, embedded_faces, study
from cvae_tutorial.cvae import LADDER, run_config
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
    assert len(rows) == 2 + len(LADDER)
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
        assert measure.change == 0 and not measure.sees_conditioning and measure.floor > 0


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
    assert controls["a model"]["(latent, labels) pairs"].sees_conditioning


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
