"""Reading the prior-ladder study: each contrast's verdict at every budget, a verdict that moved
told from a gap that moved, and the sentences chapter 6 prints from them."""
import pytest

from cvae_tutorial import ladder, study
from cvae_tutorial.cvae import PRIORS, run_config
from cvae_tutorial.demos import ladder_report
from cvae_tutorial.evaluation.uncertainty import paired_difference


def _rows(gap_by_budget):
    """Two models over 3 seeds at each budget; b's distance is lower than a's by the gap
    (seed noise 0.1), its balanced accuracy the same as a's."""
    rows = []
    for epochs, gap in gap_by_budget.items():
        for seed, noise in enumerate((0.0, 0.1, -0.1)):
            rows.append({"epochs": epochs, "seed": seed, "model": "sigma_qxy",
                         "distance": 10.0 + noise, "balanced_accuracy": 0.8 + noise})
            rows.append({"epochs": epochs, "seed": seed, "model": "sigma_cond",
                         "distance": 10.0 - gap + noise * 1.5,
                         "balanced_accuracy": 0.8 + noise * 0.5})
    return rows


MEASURES = (("distance", True, "distance", ".2f"),
            ("balanced_accuracy", False, "balanced accuracy", ".3f"))


def test_the_budget_check_reports_each_budgets_verdict_and_whether_doubling_moved_it():
    checks = ladder.budget_check(_rows({6: 0.0, 12: 3.0, 24: 3.0}), measures=MEASURES)
    (distance, accuracy) = checks
    assert distance["orders"] == {6: 0, 12: 1, 24: 1} and distance["stable"]
    assert accuracy["orders"] == {6: 0, 12: 0, 24: 0}
    assert distance["difference"].mean == pytest.approx(-3.0)
    moved = ladder.budget_check(_rows({12: 0.0, 24: 3.0}), measures=MEASURES)[0]
    assert not moved["stable"]
    table = ladder_report.budget_markdown(checks, "FD_attr")
    assert "| prior at q(z\\|x,y): N(0, I) → conditional Gaussian | FD_attr | within noise " \
           "| better | better | -3.00 ± " in table
    sentence = ladder_report.contrast_finding(checks, checks[0]["contrast"], "FD_attr")
    assert ("— b = sigma_cond against a = sigma_qxy, at 24 epochs: b is better on FD_attr; "
            "within noise on balanced accuracy") in sentence
    assert "no verdict changed" in sentence
    assert "changed the verdict on FD_attr" in ladder_report.contrast_finding(
        ladder.budget_check(_rows({12: 0.0, 24: 3.0}), measures=MEASURES),
        checks[0]["contrast"], "FD_attr")


def test_the_study_trains_exactly_the_rungs_the_contrasts_compare():
    compared = {name for _, a, b in ladder.CONTRASTS for name in (a, b)}
    assert compared == set(study.RUNGS) and len(study.RUNGS) == len(compared)


def test_each_contrast_changes_one_choice_and_a_prior_by_one_rung():
    rungs = list(PRIORS.values())  # N(0, I), conditional Gaussian, Real NVP, conditional Real NVP
    axes = {"prior": lambda c: c.prior, "encoder": lambda c: c.encoder_sees_labels,
            "decoder": lambda c: c.likelihood}
    for label, a, b in ladder.CONTRASTS:
        first, second = run_config(a), run_config(b)
        changed = [axis for axis, read in axes.items() if read(first) != read(second)]
        assert changed == [label.split(" ")[0].rstrip(":")], (label, changed)
        if changed == ["prior"]:  # bug: a step that skips a rung (N(0, I) → Real NVP)
            assert rungs.index(second.prior) - rungs.index(first.prior) == 1, label
            assert ("q(z|x,y)" in label) == first.encoder_sees_labels, label


# --- reading the ladder in chapter 6 -----------------------------------------------------------

def _ladder_rows(distances, budgets=(12, 24), bits=None):
    """Rows of the prior's rungs at q(z|x,y) over 3 seeds: {model: distance at the longest
    budget} (twice that at the shorter one), seed noise 0.05; bits/dim 5 minus 0.1 a
    doubling, or ``bits`` {model: value at every budget}."""
    rows = []
    for epochs in budgets:
        for name, distance in distances.items():
            for seed, noise in enumerate((0.0, 0.05, -0.05)):
                longest = epochs == budgets[-1]
                rows.append({
                    "epochs": epochs, "seed": seed, "model": name,
                    "distance": distance * (1 if longest else 2) + noise,
                    "balanced_accuracy": 0.9 + noise, "floor_distance": 0.5,
                    "bits_per_dim": (bits or {}).get(name, 5.0 - 0.1 * budgets.index(epochs))
                    + noise / 10, "distance_name": "FD_attr"})
    return rows


LADDER_MEASURES = (("distance", True, "distance", ".2f"),
                   ("balanced_accuracy", False, "balanced accuracy", ".3f"),
                   ("bits_per_dim", True, "bits/dim", ".3f"))


def test_the_provenance_report_names_command_commit_training_and_code():
    record = {"command": "python -m cvae_tutorial.study --epochs 6 12", "commit": "abc",
              "date": "2026-12-03", "machine": "CPU", "training_seconds": 5400,
              "train_images": 4096, "image_size": 32, "seeds": [0, 1], "budgets": [6, 12]}
    assert ladder_report.provenance_report(record, "measured by today's code").splitlines() == [
        "measured by: python -m cvae_tutorial.study --epochs 6 12",
        "commit abc, 2026-12-03, on CPU",
        "training 1.5 h in all; 4096 training images at 32 px, seeds [0, 1], budgets [6, 12] "
        "epochs", "code: measured by today's code"]


def test_budget_curves_average_the_seeds_of_each_budget_without_gaussian_bits():
    rows = _ladder_rows({"gaussian": 3.0, "sigma_qxy": 10.0})
    curves = ladder.budget_curves(rows, ("distance", "bits_per_dim"), ["gaussian", "sigma_qxy"])
    means, errors = curves["distance"]["sigma_qxy"]
    assert means == pytest.approx([20.0, 10.0]) and errors[0] > 0
    assert list(curves["bits_per_dim"]) == ["sigma_qxy"]
    assert ladder.at_budget(rows, 24) == [row for row in rows if row["epochs"] == 24]


def test_the_likelihood_falls_between_the_two_longest_budgets():
    rows = _ladder_rows({"gaussian": 3.0, "sigma_qxy": 10.0, "sigma_cond": 5.0},
                        budgets=(6, 12, 24), bits={"sigma_cond": 4.0})
    falls = ladder.likelihood_falls(rows, ["gaussian", "sigma_qxy", "sigma_cond"])
    assert list(falls) == ["sigma_qxy", "sigma_cond"]  # no σ = 1 model
    assert falls["sigma_qxy"].mean == pytest.approx(0.1)  # 12 epochs minus 24: a fall
    assert ladder.still_improving(falls) == ["sigma_qxy"]
    assert ladder_report.falls_sentence(falls, [6, 12, 24]) == (
        "From 12 to 24 epochs the σ-rungs' bits/dim improve by +0.000 to +0.100 on average "
        "over the seeds (a negative value is a worsening); 1 of 2 improve on average, and the "
        "improvement's 95 % interval lies above 0 for 1 of them (sigma_qxy): their "
        "likelihoods are still improving")
    flat = ladder.likelihood_falls(rows, ["sigma_cond"])
    # no fall shown is not a likelihood shown to have stopped improving
    assert ladder_report.falls_sentence(flat, [6, 12, 24]).endswith(
        "0 for 0 of them: no fall is distinguishable from 0 at these seeds")
    for row in rows:  # sigma_cond's likelihood gets worse from 12 to 24 epochs
        if row["model"] == "sigma_cond" and row["epochs"] == 24:
            row["bits_per_dim"] += 0.2
    risen = ladder.likelihood_falls(rows, ["sigma_qxy", "sigma_cond"])
    assert ladder_report.falls_sentence(risen, [6, 12, 24]).endswith(
        "improve by -0.200 to +0.100 on average over the seeds (a negative value is a "
        "worsening); 1 of 2 improve on average, and the improvement's 95 % interval lies "
        "above 0 for 1 of them (sigma_qxy): their likelihoods are still improving; it lies "
        "below 0, a likelihood getting worse, for sigma_cond")


def test_the_per_seed_table_marks_a_missing_seed():
    rows = [row for row in _ladder_rows({"sigma_qxy": 10.0, "sigma_cond": 5.0})
            if row["epochs"] == 24 and not (row["model"] == "sigma_cond" and row["seed"] == 2)]
    lines = ladder_report.per_seed_markdown(rows, ["sigma_qxy", "sigma_cond"], [0, 1, 2],
                                    "FD_attr").splitlines()
    assert lines[0] == ("| rung | FD_attr, seed 0 | FD_attr, seed 1 | FD_attr, seed 2 | "
                        "bal. acc., seed 0 | bal. acc., seed 1 | bal. acc., seed 2 |")
    assert lines[2] == "| sigma_qxy | 10.000 | 10.050 | 9.950 | 0.900 | 0.950 | 0.850 |"
    assert lines[3] == "| sigma_cond | 5.000 | 5.050 | — | 0.900 | 0.950 | — |"


def test_a_gain_from_a_later_budget_through_the_longest_is_named_by_its_first_budget():
    rows = _ladder_rows({"sigma_qxy": 10.0, "sigma_cond": 4.0, "sigma_flow": 3.0,
                         "sigma_cflow": 2.0}, budgets=(12, 24, 48))
    for row in rows:  # the flow gains on the distance from 24 epochs on, not at 12
        if row["model"] == "sigma_flow" and row["epochs"] == 12:
            row["distance"] += 2.0
    checks = ladder.budget_check(rows, measures=LADDER_MEASURES)
    contrast = ladder.CONTRASTS[1][0]
    # bug: every budget before the longest read as a gain that came only at the last
    assert ladder_report.gains(checks, contrast, "FD_attr") == {
        "at 24 epochs and after": ["FD_attr"]}
    assert ladder_report.gains(checks, ladder.CONTRASTS[0][0], "FD_attr") == {
        "at every budget": ["FD_attr"]}
    answer = ladder_report.answer(checks, rows, "FD_attr").split("\n\n")
    assert "better at 24 epochs and after on FD_attr" in answer[2]
    assert answer[4].endswith("The flow's own gain in FD_attr holds at 24 epochs and after, "
                              "through the last doubling of the budget.")


def test_the_ladders_verdicts_sentences_and_key_points():
    rows = _ladder_rows({"sigma_qxy": 10.0, "sigma_cond": 4.0, "sigma_flow": 3.0,
                         "sigma_cflow": 2.0}, budgets=(12, 24))
    # the flow gains on the distance only at the longest budget
    for row in rows:
        if row["model"] == "sigma_flow" and row["epochs"] == 12:
            row["distance"] -= 2.0 * 3.0 - 2 * 4.0 + 0.0  # = the conditional Gaussian's
    checks = ladder.budget_check(rows, measures=LADDER_MEASURES)
    contrast = ladder.CONTRASTS[1][0]
    assert ladder_report.gains(checks, contrast, "FD_attr") == {
        "only at the last budget": ["FD_attr"]}
    assert ladder_report.gains(checks, ladder.CONTRASTS[0][0], "FD_attr") == {
        "at every budget": ["FD_attr"]}
    assert ladder_report.verdict_at_longest(checks, contrast, "distance") == \
        "better (a verdict that moved when doubled)"
    assert ladder_report.verdict_at_longest(checks, contrast, "balanced_accuracy") == "within noise"
    assert ladder_report.verdict_at_longest(checks, contrast, "flip_rate") == "not measured"
    moved = ladder.moved_verdicts(checks)
    assert [(c["contrast"], c["column"]) for c in moved] == [(contrast, "distance")]
    assert ladder_report.moved_sentence(checks) == (
        f"{len(checks)} verdicts; doubling the budget from 12 to 24 epochs changed 1 of them. "
        "In 1 of those 1 the gap b − a itself moved beyond noise (the 95 % interval of its "
        "change over the seeds excludes 0). Over all 9 verdicts, 3 gaps moved beyond noise, "
        "where chance alone gives about 0.5 (at least 3 with probability 0.0084, counting the "
        "verdicts as independent, which they are not: they share seeds and rungs). So the gaps "
        "still move.")
    # two of the gaps that moved in one step (at either encoder) are named as such
    twice = dict(moved[0], contrast="prior at q(z|x): conditional Gaussian → Real NVP")
    assert "2 of the 4 are in one step, conditional Gaussian → Real NVP. So the gaps still " \
        "move." in ladder_report.moved_sentence(checks + [twice])
    answers = ladder_report.answers_markdown(checks, "FD_attr").splitlines()
    assert len(answers) == len(ladder_report.QUESTIONS) == 8
    assert answers[1].startswith("- **What does the flow add beyond a conditional Gaussian "
                                 "prior?** prior at q(z|x,y): conditional Gaussian → Real NVP")
    assert answers[3].endswith("not measured.")  # no sigma_flow_qx in these rows
    answer = ladder_report.answer(checks, rows, "FD_attr").split("\n\n")
    assert len(answer) == 5  # no paragraph on q(z|x): these rows have none of its rungs
    assert answer[0] == ("At q(z|x,y) the ladder takes FD_attr from 10.00 (N(0, I)) to 2.00 "
                         "(the conditional Real NVP) at 24 epochs; the real-vs-real floor is "
                         "0.50.")
    # bug: the step's share given without its interval, or a gap that moved left unsaid
    assert answer[1] == ("**A prior that depends on y** (sigma_qxy → sigma_cond): 75% of that "
                         "(95 % interval 75% to 75%; FD_attr b − a = -6.00 ± 0.00); better at "
                         "every budget on FD_attr; its gap still moved from 12 to 24 epochs "
                         "(-12.00 → -6.00), so its share is a snapshot, not a limit.")
    assert answer[2].startswith("**The flow** (sigma_cond → sigma_flow): 12% of that")
    assert answer[4].startswith("So, on these data and at these budgets, the largest part of "
                                "the distance the ladder gains comes from **a prior that "
                                "depends on y** (75%). The flow's own gain in FD_attr appears "
                                "only at the last budget")
    assert answer[4].endswith(": it says how fast the flow model learns, not what it learns.")
    falls = ladder.likelihood_falls(rows, ["sigma_qxy", "sigma_cond"])
    points = ladder_report.key_points(checks, falls, "FD_attr")
    assert points[0] == ("At 24 epochs, at q(z|x,y), a prior that depends on y, against "
                         "N(0, I): better on FD_attr; within noise on balanced accuracy, "
                         "bits/dim.")
    assert points[1] == ("At 24 epochs, at q(z|x,y), the flow, beyond a conditional Gaussian: "
                         "better on FD_attr; within noise on balanced accuracy, bits/dim; "
                         "doubling the budget changed the verdict on FD_attr.")
    assert len(points) == 4  # no encoder contrast: these rows have no q(z|x) rungs
    assert points[3] == ("Doubling the training from 12 to 24 epochs changed 1 of the ladder's "
                         "9 verdicts (the gap itself moved beyond noise in 1 of those). Over "
                         "all 9, 3 gaps moved beyond noise, where chance alone gives about 0.5. "
                         "The bits/dim fall on average for 2 of 2 σ-rungs, beyond noise for 2. "
                         "So the models still change at 24 epochs (the gaps move more than "
                         "chance explains; likelihoods still improve): these answers are not "
                         "yet at convergence, and the verdicts that moved are unsettled.")


def test_the_answer_gives_the_prior_steps_shares_where_the_encoder_does_not_see_y():
    rows = _ladder_rows({"sigma_qxy": 10.0, "sigma_cond": 4.0, "sigma_flow": 3.0,
                         "sigma_cflow": 2.0, "sigma": 13.0, "sigma_cond_qx": 5.0,
                         "sigma_flow_qx": 4.0})
    checks = ladder.budget_check(rows, measures=LADDER_MEASURES)
    # bug: the shares at q(z|x) taken of the span at q(z|x,y), or a step's a and b swapped
    assert ladder_report.answer(checks, rows, "FD_attr").split("\n\n")[5] == (
        "When the encoder does not see y, at q(z|x), the prior takes FD_attr from 13.00 "
        "(N(0, I)) to 4.00 (the Real NVP over a conditional Gaussian): a prior that depends on "
        "y (sigma → sigma_cond_qx) takes 89% of that (95 % interval 89% to 89%; FD_attr b − a "
        "= -8.00 ± 0.00, better); the flow (sigma_cond_qx → sigma_flow_qx) takes 11% of that "
        "(95 % interval 11% to 11%; FD_attr b − a = -1.00 ± 0.00, better).")


def test_the_answer_reads_the_floor_and_does_not_mistake_an_interval_for_an_effect():
    rows = _ladder_rows({"sigma_qxy": 10.0, "sigma_cond": 4.0, "sigma_flow": 3.0,
                         "sigma_cflow": 3.0, "sigma": 13.0, "sigma_cond_qx": 5.0,
                         "sigma_flow_qx": 4.0})
    for row in rows:
        row["floor_distance"] = 3.5
        if row["model"] == "sigma_flow" and row["epochs"] == 24:
            row["distance"] += (-3.0, 2.5, 0.0)[row["seed"]]  # the flow's gap, spread by seed
    checks = ladder.budget_check(rows, measures=LADDER_MEASURES)
    answer = ladder_report.answer(checks, rows, "FD_attr").split("\n\n")
    # the flow is within noise at q(z|x,y), better at q(z|x), and the encoder at the flow prior
    # within noise: a difference of intervals, not of gains
    # bug: the floor read as a bound, or the two verdicts read as an encoder effect
    assert answer[5].startswith("Below the floor sit sigma_flow, sigma_cflow. The floor "
                                "compares two sets of real faces whose labels differ")
    assert answer[6].endswith("The flow's gap in FD_attr is -1.17 at q(z|x,y) and -1.00 at "
                              "q(z|x), and the encoder makes no difference beyond noise at the "
                              "flow prior: the verdicts differ because the intervals do, which "
                              "is no evidence that the flow's gain depends on the encoder.")
    falls = ladder.likelihood_falls(rows, ["sigma_flow", "sigma_cflow"])
    points = ladder_report.key_points(checks, falls, "FD_attr")
    # couplings within noise on every measure: no effect excluded, the interval's size given
    assert points[2] == ("At 24 epochs, at q(z|x,y), couplings that read y, beyond the flow: "
                         "within noise on FD_attr, balanced accuracy, bits/dim (an effect is "
                         "not excluded, only bounded by the interval: FD_attr b − a = +0.17 ± "
                         "6.84).")
    assert points[4].startswith("At 24 epochs, the encoder seeing y, at the Real NVP prior: "
                                "within noise on FD_attr")


def _gap_rows(gaps_by_budget):
    """The prior's rungs at q(z|x,y) over 3 seeds: every rung's distance is 10 at every budget
    but N(0, I)'s (20) and the flow's, which lies below the conditional Gaussian's by the given
    per-seed gaps; the conditional flow's lies 2 below the flow's."""
    rows = []
    for epochs, gaps in gaps_by_budget.items():
        for seed, gap in enumerate(gaps):
            for name in ("sigma_qxy", "sigma_cond", "sigma_flow", "sigma_cflow"):
                distance = {"sigma_qxy": 20.0, "sigma_flow": 10.0 + gap,
                            "sigma_cflow": 8.0 + gap}.get(name, 10.0)
                rows.append({"epochs": epochs, "seed": seed, "model": name,
                             "distance": distance, "floor_distance": 0.5})
    return rows


def test_a_verdict_that_flips_while_its_gap_holds_is_told_from_one_whose_gap_moved():
    distance_only = (("distance", True, "distance", ".2f"),)
    # the same mean gap, -1, at both budgets: too spread at 12 epochs to name a winner
    held = ladder.budget_check(_gap_rows({12: (-1.0, -0.2, -1.8), 24: (-1.0, -0.9, -1.1)}),
                              measures=distance_only)
    flow = next(c for c in held if c["contrast"] == ladder.CONTRASTS[1][0])
    assert flow["orders"] == {12: 0, 24: 1} and not flow["stable"]
    assert flow["previous"].mean == pytest.approx(-1.0)
    assert flow["gap_change"].mean == pytest.approx(0.0) and not ladder.gap_moved(flow)
    # the gap grows from about 0 to -3: the models changed
    grown = ladder.budget_check(_gap_rows({12: (0.0, 0.05, -0.05), 24: (-3.0, -3.05, -2.95)}),
                               measures=distance_only)
    flow = next(c for c in grown if c["contrast"] == ladder.CONTRASTS[1][0])
    # bug: the change taken as shorter minus longer, or the longest budget against itself
    assert flow["gap_change"].mean == pytest.approx(-3.0) and ladder.gap_moved(flow)
    assert ladder_report.moved_sentence(held) == (
        "3 verdicts; doubling the budget from 12 to 24 epochs changed 1 of them. In 0 of those "
        "1 the gap b − a itself moved beyond noise (the 95 % interval of its change over the "
        "seeds excludes 0). In the other 1 we cannot tell whether the gap moved: with 3 seeds "
        "that interval is wide, and a verdict can flip because the width of its own interval "
        "is noisy. Those verdicts are unsettled. Over all 3 verdicts no gap moved beyond "
        "noise.")
    # of the 3 gaps only the flow's moved; by chance alone one or more would, 1 − 0.95³
    assert ladder.gap_moves_by_chance(grown)[0] == 1
    assert ladder.gap_moves_by_chance(grown)[2] == pytest.approx(1 - 0.95 ** 3)
    lines = ladder_report.moved_markdown(held, "FD_attr").splitlines()
    assert len(lines) == 3  # the header, its rule, the one verdict that moved
    assert lines[2] == ("| prior at q(z\\|x,y): conditional Gaussian → Real NVP | FD_attr | "
                        "within noise | better | -1.00 ± 1.99 | -1.00 ± 0.25 | +0.00 ± 1.74 | "
                        "not distinguishable from 0 |")
    assert "| **yes** |" in ladder_report.moved_markdown(grown, "FD_attr")
    # a gap that moved under a verdict that held ("better" at both budgets) is listed too
    kept = ladder.budget_check(_gap_rows({12: (-1.0, -1.05, -0.95), 24: (-3.0, -3.05, -2.95)}),
                               measures=distance_only)
    assert not ladder.moved_verdicts(kept)
    # bug: the table lists only the verdicts that changed, hiding the gaps that still move
    assert ladder_report.moved_markdown(kept, "FD_attr").splitlines()[2:] == [
        "| prior at q(z\\|x,y): conditional Gaussian → Real NVP | FD_attr | better | better | "
        "-1.00 ± 0.12 | -3.00 ± 0.12 | -2.00 ± 0.00 | **yes** |"]
    assert ladder_report.answer(held, _gap_rows({12: (-1.0, -0.2, -1.8),
                                                24: (-1.0, -0.9, -1.1)}), "FD_attr").endswith(
        "appears only at the last budget, and the change of its gap between the last two "
        "budgets is not distinguishable from 0: these seeds do not settle whether the flow "
        "gains there.")
    falls = {"sigma_flow": paired_difference({0: 0.0, 1: 0.1}, {0: 0.0, 1: 0.1})}
    assert ladder_report.key_points(held, falls, "FD_attr")[-1].endswith(
        "beyond noise for 0. No change beyond noise and chance, but the verdicts that moved are "
        "unsettled at these seeds; more seeds would settle them.")
    # a likelihood that gets worse beyond noise is a model that still changes (it overfits)
    worse = {"sigma_flow": paired_difference({0: 5.0, 1: 5.0, 2: 5.0}, {0: 5.2, 1: 5.3, 2: 5.25})}
    assert ladder.getting_worse(worse) == ["sigma_flow"]
    assert ladder_report.key_points(held, worse, "FD_attr")[-1].endswith(
        "beyond noise for 0, and rise beyond noise for 1. So the models still change at 24 "
        "epochs (likelihoods get worse on the test images, the models fitting their training "
        "images closer): these answers are not yet at convergence, and the verdicts that moved "
        "are unsettled.")


def test_a_gain_that_comes_and_goes_and_a_loss_are_named():
    rows = _ladder_rows({"sigma_qxy": 10.0, "sigma_cond": 4.0, "sigma_flow": 3.0,
                         "sigma_cflow": 2.0}, budgets=(6, 12, 24))
    for row in rows:
        if row["model"] == "sigma_flow" and row["epochs"] == 12:
            row["distance"] += 3.0  # the flow: better at 6, worse at 12, better at 24
        if row["model"] == "sigma_cond":
            row["balanced_accuracy"] -= 0.1  # the flow: better on it at every budget
        if row["model"] == "sigma_flow" and row["epochs"] == 24:
            row["bits_per_dim"] += 0.5  # the flow: worse on bits/dim at the longest
    checks = ladder.budget_check(rows, measures=LADDER_MEASURES)
    contrast = ladder.CONTRASTS[1][0]
    # bug: a gain at the longest budget after one at a shorter budget read as "only at the last"
    assert ladder_report.gains(checks, contrast, "FD_attr") == {
        "at every budget": ["balanced accuracy"],
        "at the last budget (on and off before)": ["FD_attr"]}
    assert ladder_report.losses(checks, contrast, "FD_attr") == ["bits/dim"]
    flow_step = ladder_report.answer(checks, rows, "FD_attr").split("\n\n")[2]
    assert flow_step.endswith("better at every budget on balanced accuracy; better at the last "
                              "budget (on and off before) on FD_attr; worse at 24 epochs on "
                              "bits/dim; its gap still moved from 12 to 24 epochs (+1.00 → "
                              "-1.00), so its share is a snapshot, not a limit.")


def test_a_ladder_that_gains_no_distance_gives_no_step_a_share():
    rows = _ladder_rows({"sigma_qxy": 2.0, "sigma_cond": 3.0, "sigma_flow": 4.0,
                         "sigma_cflow": 5.0})
    checks = ladder.budget_check(rows, measures=LADDER_MEASURES)
    steps = ladder_report.answer(checks, rows, "FD_attr").split("\n\n")
    # bug: shares of a negative span, the worst step named the largest part of a gain
    assert steps[1].startswith("**A prior that depends on y** (sigma_qxy → sigma_cond): "
                               "(FD_attr b − a = +1.00 ± 0.00)")
    assert steps[4].startswith("So, on these data and at these budgets, the ladder does not "
                               "lower FD_attr at q(z|x,y), and no step has a share of a gain.")

