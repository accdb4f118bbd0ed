"""Chapter 6's words for the prior-ladder study (read by :mod:`cvae_tutorial.ladder`): the
budget check as tables, each contrast's finding, the questions the ladder answers and its
answer in a paragraph per step, what doubling the budget moved, and the key points.
"""
from __future__ import annotations

from collections import Counter

from ..evaluation.uncertainty import summarize
from ..ladder import (CONTRASTS, at_budget, distance_check, falling_on_average, gap_moved,
                      gap_moves_by_chance, getting_worse, moved_verdicts, still_improving)

WORDS = {1: "better", -1: "worse", 0: "within noise"}


def _table_cell(text: str) -> str:
    """``text`` for a Markdown table cell: its | escaped (q(z|x,y) would split the cell)."""
    return text.replace("|", "\\|")


def measure_name(check: dict, distance_name: str = "distance") -> str:
    """A check's measure as the tables name it: the distance by its feature space's name."""
    return distance_name if check["column"] == "distance" else check["measure"]


def budget_markdown(checks: list, distance_name: str = "distance") -> str:
    """The budget check as a Markdown table: each verdict at each budget, the difference at
    the longest, and whether doubling the last budget changed the verdict."""
    budgets = list(checks[0]["orders"])
    lines = ["| what changes (a → b) | measure | " + " | ".join(f"{e} epochs" for e in budgets)
             + f" | b − a at {budgets[-1]} | doubling changed it |",
             "|---|---|" + "---|" * len(budgets) + "---|---|"]
    for check in checks:
        d = check["difference"]
        measure = measure_name(check, distance_name)
        contrast = _table_cell(check["contrast"])
        lines.append(f"| {contrast} | {measure} | "
                     + " | ".join(WORDS[o] for o in check["orders"].values())
                     + f" | {d.mean:+{check['fmt']}} ± {d.half_width:{check['fmt']}} | "
                     + ("no" if check["stable"] else "**yes**") + " |")
    return "\n".join(lines)


def contrast_finding(checks: list, contrast: str, distance_name: str = "distance") -> str:
    """One sentence from the budget check of one contrast (a → b), at the longest budget: on
    which measures b is better than a, worse, within noise, and which verdicts moved when the
    budget doubled."""
    mine = [c for c in checks if c["contrast"] == contrast]
    if not mine:
        return f"{contrast}: not measured."
    last = list(mine[0]["orders"])[-1]
    moved = [measure_name(c, distance_name) for c in moved_verdicts(mine)]
    stability = (f"doubling the budget changed the verdict on {', '.join(moved)}" if moved
                 else "no verdict changed when the budget doubled")
    a, b = mine[0]["a"], mine[0]["b"]
    return (f"{contrast} — b = {b} against a = {a}, at {last} epochs: b is "
            f"{_sorted_verdicts(mine, distance_name)} ({stability}).")


def _sorted_verdicts(checks: list, distance_name: str) -> str:
    """"better on …; worse on …; within noise on …" at the longest budget (empty parts left
    out)."""
    last = list(checks[0]["orders"])[-1]

    def names(side):
        return [measure_name(c, distance_name) for c in checks if c["orders"][last] == side]
    return "; ".join(f"{WORDS[side]} on {', '.join(names(side))}" for side in (1, -1, 0)
                     if names(side))


def provenance_report(record: dict, status: str) -> str:
    """Which command, commit, machine and date measured the study, what it trained, and
    whether today's code is the code that measured it (``status`` of :func:`load_study`)."""
    return "\n".join([
        f"measured by: {record['command']}",
        f"commit {record['commit']}, {record['date']}, on {record['machine']}",
        f"training {record['training_seconds'] / 3600:.1f} h in all; "
        f"{record['train_images']} training images at {record['image_size']} px, "
        f"seeds {record['seeds']}, budgets {record['budgets']} epochs",
        f"code: {status}"])


def falls_sentence(falls: dict, budgets) -> str:
    """Is the likelihood still improving at the longest budget? In words, from
    :func:`likelihood_falls`: the mean falls, and for how many rungs the fall's interval lies
    above 0 (still improving) or below it (getting worse)."""
    still, rising = still_improving(falls), getting_worse(falls)
    means = [fall.mean for fall in falls.values()]
    text = (f"From {budgets[-2]} to {budgets[-1]} epochs the σ-rungs' bits/dim improve by "
            f"{min(means):+.3f} to {max(means):+.3f} on average over the seeds (a negative "
            f"value is a worsening); {len(falling_on_average(falls))} of {len(falls)} improve "
            f"on average, and the improvement's 95 % interval lies above 0 for {len(still)} "
            f"of them")
    text += (f" ({', '.join(still)}): their likelihoods are still improving" if still else
             ": no fall is distinguishable from 0 at these seeds")
    if rising:
        text += f"; it lies below 0, a likelihood getting worse, for {', '.join(rising)}"
    return text


def per_seed_markdown(rows: list, models, seeds, distance_name: str = "distance") -> str:
    """The distance and the balanced accuracy of every model and seed (the rows of one
    budget) as a Markdown table; "—" where a seed is missing."""
    header = [f"{what}, seed {s}" for what in (distance_name, "bal. acc.") for s in seeds]
    lines = ["| rung | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    for name in models:
        seen = {row["seed"]: row for row in rows if row["model"] == name}
        lines.append(f"| {name} | " + " | ".join(
            f"{seen[s][column]:.3f}" if s in seen else "—"
            for column in ("distance", "balanced_accuracy") for s in seeds) + " |")
    return "\n".join(lines)


def moved_sentence(checks: list) -> str:
    """How many verdicts doubling the last budget changed, and in how many of those the gap
    b − a itself moved beyond noise; over all verdicts, how many gaps moved beyond noise
    against what a 95 % rule flags by chance, and in which step most of them are."""
    budgets = list(checks[0]["orders"])
    moved = moved_verdicts(checks)
    seeds = checks[0]["gap_change"].pairs
    parts = [f"{len(checks)} verdicts; doubling the budget from {budgets[-2]} to {budgets[-1]} "
             f"epochs changed {len(moved)} of them."]
    if moved:
        gap = sum(gap_moved(check) for check in moved)
        parts.append(f"In {gap} of those {len(moved)} the gap b − a itself moved beyond noise "
                     f"(the 95 % interval of its change over the seeds excludes 0).")
        if gap < len(moved):
            parts.append(f"In the other {len(moved) - gap} we cannot tell whether the gap moved: "
                         f"with {seeds} seeds that interval is wide, and a verdict can flip "
                         f"because the width of its own interval is noisy. Those verdicts are "
                         f"unsettled.")
    everywhere, expected, chance = gap_moves_by_chance(checks)
    if not everywhere:
        return " ".join(parts + [f"Over all {len(checks)} verdicts no gap moved beyond noise."])
    parts.append(f"Over all {len(checks)} verdicts, {everywhere} gaps moved beyond noise, where "
                 f"chance alone gives about {expected:.1f} (at least {everywhere} with "
                 f"probability {chance:.2g}, counting the verdicts as independent, which they "
                 f"are not: they share seeds and rungs).")
    step, count = _busiest_step(checks)
    if count > 1:
        parts.append(f"{count} of the {everywhere} are in one step, {step}.")
    parts.append("So the gaps still move." if chance < 0.05 else
                 "That is weak evidence that the gaps still move.")
    return " ".join(parts)


def _busiest_step(checks: list) -> tuple:
    """(the step, at either encoder, whose gaps moved beyond noise most often, how often)."""
    steps = Counter(check["contrast"].split(": ", 1)[-1] for check in checks if gap_moved(check))
    return steps.most_common(1)[0] if steps else (None, 0)


def moved_markdown(checks: list, distance_name: str = "distance") -> str:
    """The verdicts that doubling the last budget changed and the gaps that it moved beyond
    noise, as a Markdown table: the verdict and b − a at the two longest budgets, the paired
    change of b − a, and whether it moved."""
    shorter, longer = list(checks[0]["orders"])[-2:]
    lines = [f"| what changes (a → b) | measure | {shorter} epochs | {longer} epochs | "
             f"b − a at {shorter} | b − a at {longer} | change of b − a | the gap moved |",
             "|---|---|---|---|---|---|---|---|"]
    for check in (c for c in checks if not c["stable"] or gap_moved(c)):
        fmt, contrast = check["fmt"], _table_cell(check["contrast"])
        cells = [f"{d.mean:+{fmt}} ± {d.half_width:{fmt}}"
                 for d in (check["previous"], check["difference"], check["gap_change"])]
        lines.append(f"| {contrast} | {measure_name(check, distance_name)} | "
                     f"{WORDS[check['orders'][shorter]]} | {WORDS[check['orders'][longer]]} | "
                     + " | ".join(cells) + " | "
                     + ("**yes**" if gap_moved(check) else "not distinguishable from 0")
                     + " |")
    return "\n".join(lines)


# the questions the ladder answers, each with its contrast (an index into CONTRASTS)
QUESTIONS = (
    ("What does a prior that depends on y add over N(0, I)?", 0),
    ("What does the flow add beyond a conditional Gaussian prior?", 1),
    ("What do couplings that read y add?", 2),
    ("When the encoder does not see y, what does a prior that depends on y add?", 3),
    ("... and the flow beyond it, there?", 4),
    ("What does the encoder's y cost or buy, at N(0, I)?", 5),
    ("... and at the flow prior?", 6),
    ("What does σ* buy over σ = 1, at N(0, I)?", 7),
)


def answers_markdown(checks: list, distance_name: str = "distance") -> str:
    """Each of :data:`QUESTIONS` with its answer at the longest budget, a bullet each."""
    return "\n".join(f"- **{question}** "
                     f"{contrast_finding(checks, CONTRASTS[index][0], distance_name)}"
                     for question, index in QUESTIONS)


def gains(checks: list, contrast: str, distance_name: str = "distance") -> dict:
    """{kind: measures} on which b beats a in one contrast, in this order: "at every budget",
    "at B epochs and after" (from a later budget through the longest), "at the last budget (on
    and off before)" (better at the longest and at some shorter budget, not throughout), "only
    at the last budget", "no longer" (at a shorter budget, not at the longest); kinds without
    a measure left out."""
    kinds = {}
    for found in (c for c in checks if c["contrast"] == contrast):
        budgets, orders = list(found["orders"]), list(found["orders"].values())
        held = 0  # the budgets at the end over which b is better throughout
        while held < len(orders) and orders[-1 - held] == 1:
            held += 1
        if held == len(orders):
            kind = "at every budget"
        elif held >= 2:
            kind = f"at {budgets[-held]} epochs and after"
        elif held == 1:
            kind = ("at the last budget (on and off before)" if 1 in orders[:-1] else
                    "only at the last budget")
        elif 1 in orders:
            kind = "no longer"
        else:
            continue
        kinds.setdefault((-held, kind), []).append(measure_name(found, distance_name))
    return {kind: names for (_, kind), names in sorted(kinds.items())}


def losses(checks: list, contrast: str, distance_name: str = "distance") -> list:
    """The measures on which b is worse than a at the longest budget, in one contrast."""
    return [measure_name(c, distance_name) for c in checks
            if c["contrast"] == contrast and list(c["orders"].values())[-1] == -1]


# the prior's steps at q(z|x,y): what each adds, by its contrast
PRIOR_STEPS = {"a prior that depends on y": CONTRASTS[0], "the flow": CONTRASTS[1],
               "couplings that read y": CONTRASTS[2]}
# the same steps where the encoder does not see y: does the answer depend on the encoder?
PRIOR_STEPS_QX = {"a prior that depends on y": CONTRASTS[3], "the flow": CONTRASTS[4]}
# how the flow's gain in the distance stands when it does not hold through the longest budget
UNHELD = {"only at the last budget": "appears only at the last budget",
          "at the last budget (on and off before)": "comes and goes across the budgets (it is "
          "there at the last)"}


def answer(checks: list, rows: list, distance_name: str = "distance") -> str:
    """The ladder's answer in Markdown: how far the distance falls from N(0, I) to the
    conditional Real NVP at q(z|x,y) at the longest budget; each prior step's share of that
    (with the interval its paired difference gives), whether its gap still moves, the kinds of
    its gains and its losses; which step takes the largest part; whether the flow's own gain in
    the distance is settled; which rungs sit below the floor, and what that means; and, when
    the study has the rungs at q(z|x), the same shares there."""
    last = at_budget(rows, max(row["epochs"] for row in rows))
    distances = {name: s["distance"][0] for name, s in summarize(last, ["distance"]).items()}
    span = distances["sigma_qxy"] - distances["sigma_cflow"]
    floor = rows[0]["floor_distance"]
    lines = [f"At q(z|x,y) the ladder takes {distance_name} from "
             f"{distances['sigma_qxy']:.2f} (N(0, I)) to {distances['sigma_cflow']:.2f} "
             f"(the conditional Real NVP) at {last[0]['epochs']} epochs; the real-vs-real "
             f"floor is {floor:.2f}."]
    # each step's share of the distance gained; none when the ladder gains nothing
    shares = {step: (distances[a] - distances[b]) / span if span > 0 else None
              for step, (_, a, b) in PRIOR_STEPS.items()}
    for step, (contrast, a, b) in PRIOR_STEPS.items():
        found = ["no longer better on " + ", ".join(names) if kind == "no longer" else
                 f"better {kind} on {', '.join(names)}"
                 for kind, names in gains(checks, contrast, distance_name).items()]
        worse = losses(checks, contrast, distance_name)
        if worse:
            found.append(f"worse at {last[0]['epochs']} epochs on {', '.join(worse)}")
        check = distance_check(checks, contrast)
        d = check["difference"]
        share, interval = _share(shares[step], d, span)
        lines.append(f"**{step.capitalize()}** ({a} → {b}): {share}({interval}"
                     f"{distance_name} b − a = {d.mean:+.2f} ± {d.half_width:.2f}); "
                     f"{'; '.join(found) or 'no gain'}{_still_moving(check)}.")
    flow = _flow_gain(checks, distance_name)
    if span > 0:
        leader = max(shares, key=shares.get)
        lines.append(f"So, on these data and at these budgets, the largest part of the distance "
                     f"the ladder gains comes from **{leader}** ({shares[leader]:.0%})." + flow)
    else:
        lines.append(f"So, on these data and at these budgets, the ladder does not lower "
                     f"{distance_name} at q(z|x,y), and no step has a share of a gain." + flow)
    below = [name for name, value in distances.items() if value < floor]
    if below:
        lines.append(f"Below the floor sit {', '.join(below)}. The floor compares two sets of "
                     f"real faces whose labels differ, while a model's samples are drawn for "
                     f"the test images' own labels: below it, {distance_name} rewards samples "
                     f"that match those labels more than it measures realism, so a gain there "
                     f"says more about conditioning than about how real the faces look.")
    if {"sigma", "sigma_cond_qx", "sigma_flow_qx"} <= distances.keys():
        lines.append(_steps_at_qx(checks, distances, distance_name))
    return "\n\n".join(lines)


def _share(share, difference, span: float) -> tuple:
    """("N% of that ", "95 % interval lo% to hi%; "): a step's share of the distance the
    ladder gains, and the shares its paired difference's interval allows; empty without a
    gain."""
    if share is None:
        return "", ""
    low, high = (-difference.mean - difference.half_width) / span, \
        (-difference.mean + difference.half_width) / span
    return f"{share:.0%} of that ", f"95 % interval {low:.0%} to {high:.0%}; "


def _still_moving(check: dict) -> str:
    """'; its gap still moved …' when doubling the last budget moved b − a beyond noise."""
    if not gap_moved(check):
        return ""
    shorter, longer = list(check["orders"])[-2:]
    return (f"; its gap still moved from {shorter} to {longer} epochs "
            f"({check['previous'].mean:+.2f} → {check['difference'].mean:+.2f}), so its share "
            f"is a snapshot, not a limit")


def _flow_gain(checks: list, distance_name: str) -> str:
    """Whether the flow's own gain in the distance at q(z|x,y) is settled, in a sentence."""
    check = distance_check(checks, CONTRASTS[1][0])
    kind = [kind for kind, names in gains(checks, CONTRASTS[1][0], distance_name).items()
            if distance_name in names]
    if not kind:
        return f" The flow itself gains nothing in {distance_name}."
    if kind[0] == "at every budget":
        return f" The flow's own gain in {distance_name} is there at every budget."
    if kind[0].endswith(" and after"):
        return (f" The flow's own gain in {distance_name} holds {kind[0]}, through the last "
                "doubling of the budget.")
    if kind[0] == "no longer":
        at = [str(epochs) for epochs, order in check["orders"].items() if order == 1]
        text = (f" The flow's own gain in {distance_name} is resolved only at {', '.join(at)} "
                f"epochs and within noise at the longest")
    else:
        text = f" The flow's own gain in {distance_name} {UNHELD[kind[0]]}"
    return text + (": it says how fast the flow model learns, not what it learns."
                   if gap_moved(check) else
                   ", and the change of its gap between the last two budgets is not "
                   "distinguishable from 0: these seeds do not settle whether the flow gains "
                   "there.")


def _steps_at_qx(checks: list, distances: dict, distance_name: str) -> str:
    """The prior's steps at q(z|x) in one paragraph: each one's share of the distance, its
    paired difference and its verdict at the longest budget; and, where the flow's verdict
    differs between the encoders while the encoder makes no difference at the flow prior,
    that the intervals differ, not the gains."""
    span = distances["sigma"] - distances["sigma_flow_qx"]
    steps = []
    for step, (contrast, a, b) in PRIOR_STEPS_QX.items():
        d = distance_check(checks, contrast)["difference"]
        share, interval = _share((distances[a] - distances[b]) / span if span > 0 else None,
                                 d, span)
        share = f" takes {share.strip()}" if share else ""
        steps.append(f"{step} ({a} → {b}){share} ({interval}{distance_name} b − a = "
                     f"{d.mean:+.2f} ± {d.half_width:.2f}, "
                     f"{verdict_at_longest(checks, contrast, 'distance')})")
    text = (f"When the encoder does not see y, at q(z|x), the prior takes {distance_name} from "
            f"{distances['sigma']:.2f} (N(0, I)) to {distances['sigma_flow_qx']:.2f} (the Real "
            f"NVP over a conditional Gaussian): " + "; ".join(steps) + ".")
    at_qxy, at_qx = (distance_check(checks, CONTRASTS[i][0]) for i in (1, 4))
    encoder = distance_check(checks, CONTRASTS[6][0])
    last = list(at_qx["orders"])[-1]
    if at_qxy["orders"][last] != at_qx["orders"][last] and encoder["orders"][last] == 0:
        text += (f" The flow's gap in {distance_name} is {at_qxy['difference'].mean:+.2f} at "
                 f"q(z|x,y) and {at_qx['difference'].mean:+.2f} at q(z|x), and the encoder "
                 f"makes no difference beyond noise at the flow prior: the verdicts differ "
                 f"because the intervals do, which is no evidence that the flow's gain depends "
                 f"on the encoder.")
    return text


def verdict_at_longest(checks: list, contrast: str, column: str) -> str:
    """The verdict of one contrast on one measure at the longest budget, in words, flagged
    when doubling the budget moved it; 'not measured' when the study has no such check."""
    found = [c for c in checks if c["contrast"] == contrast and c["column"] == column]
    if not found:
        return "not measured"
    orders = found[0]["orders"]
    moved = "" if found[0]["stable"] else " (a verdict that moved when doubled)"
    return WORDS[orders[list(orders)[-1]]] + moved


def key_points(checks: list, falls: dict, distance_name: str = "distance") -> list:
    """The ladder's key points: each prior step's and each encoder contrast's verdicts at the
    longest budget, and what doubling the budget changed."""
    budgets = list(checks[0]["orders"])
    points = []
    for label, index in (("at q(z|x,y), a prior that depends on y, against N(0, I)", 0),
                         ("at q(z|x,y), the flow, beyond a conditional Gaussian", 1),
                         ("at q(z|x,y), couplings that read y, beyond the flow", 2),
                         ("the encoder seeing y, q(z|x) → q(z|x,y), at N(0, I)", 5),
                         ("the encoder seeing y, at the Real NVP prior", 6)):
        mine = [c for c in checks if c["contrast"] == CONTRASTS[index][0]]
        if not mine:
            continue
        text = f"At {budgets[-1]} epochs, {label}: {_sorted_verdicts(mine, distance_name)}"
        if all(c["orders"][budgets[-1]] == 0 for c in mine):
            d = distance_check(mine, CONTRASTS[index][0])["difference"]
            text += (f" (an effect is not excluded, only bounded by the interval: "
                     f"{distance_name} b − a = {d.mean:+.2f} ± {d.half_width:.2f})")
        moved = [measure_name(c, distance_name) for c in moved_verdicts(mine)]
        if moved:
            text += f"; doubling the budget changed the verdict on {', '.join(moved)}"
        points.append(text + ".")
    moved, still, rising = moved_verdicts(checks), still_improving(falls), getting_worse(falls)
    everywhere, expected, chance = gap_moves_by_chance(checks)
    step, count = _busiest_step(checks)
    text = (f"Doubling the training from {budgets[-2]} to {budgets[-1]} epochs changed "
            f"{len(moved)} of the ladder's {len(checks)} verdicts (the gap itself moved beyond "
            f"noise in {sum(gap_moved(check) for check in moved)} of those). Over all "
            f"{len(checks)}, {everywhere} gaps moved beyond noise, where chance alone gives "
            f"about {expected:.1f}" + (f", {count} of them in the step {step}" if count > 1
                                       else "")
            + f". The bits/dim fall on average for {len(falling_on_average(falls))} of "
            f"{len(falls)} σ-rungs, beyond noise for {len(still)}"
            + (f", and rise beyond noise for {len(rising)}" if rising else "") + ".")
    reasons = (["the gaps move more than chance explains"] * (chance < 0.05)
               + ["likelihoods still improve"] * bool(still)
               + ["likelihoods get worse on the test images, the models fitting their "
                  "training images closer"] * bool(rising))
    if reasons:
        text += (f" So the models still change at {budgets[-1]} epochs ({'; '.join(reasons)}): "
                 "these answers are not yet at convergence"
                 + (", and the verdicts that moved are unsettled." if moved else "."))
    elif moved:
        text += (" No change beyond noise and chance, but the verdicts that moved are "
                 "unsettled at these seeds; more seeds would settle them.")
    else:
        text += " The answers no longer move."
    points.append(text)
    return points
