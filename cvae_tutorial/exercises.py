"""Checks for the readers' answers to the exercises at the end of chapters 1-7.

Each exercise has an answer cell (``answer_2_1 = None``) and a check cell that calls
``check("2.1", answer_2_1)``; the right answer is recomputed here, not read from the chapter.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import torch

from .cvae import MSE_KL_WEIGHT
from .evaluation.uncertainty import paired_power, t_quantile
from .flows import RealNVP
from .losses import flow_prior_log_prob


@dataclass(frozen=True)
class Exercise:
    """One exercise: the right value (recomputed on demand), how close an answer must be, and
    what a wrong answer's message says (what was checked, and where to look: never the value)."""

    what: str                      # "the σ = 1 floor of bits per dimension"
    expected: Callable[[], float]  # the right value, from a closed form or the package
    tolerance: float               # absolute
    nudge: str


def context_flow_difference() -> float:
    """Exercise 4.2: log p(z|y=1) − log p(z|y=0) at z = (0.5, −1) for a conditional Real NVP
    over N(0, I), built after ``torch.manual_seed(0)`` and perturbed away from the identity as
    chapter 4 perturbs its 2-D flow. The reader's global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        flow = RealNVP(2, num_layers=4, hidden=32, context_dim=1).double()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.15 * torch.randn(parameter.shape, generator=generator,
                                              dtype=parameter.dtype))
        z = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
        zeros = torch.zeros_like(z)
        log_p = [flow_prior_log_prob(z, flow, zeros, zeros, torch.full((1, 1), label,
                                                                       dtype=torch.float64))
                 for label in (0.0, 1.0)]
    return (log_p[1] - log_p[0]).item()


EXERCISES = {
    # Chapter 1: the ELBO
    "1.1": Exercise("KL(N(1, 0.5²) ‖ N(0, 1)) in nats",
                    lambda: 0.5 * (0.5 ** 2 + 1.0 ** 2 - 1 - 2 * math.log(0.5)), 1e-4,
                    "write out the closed-form KL of two Gaussians term by term (see the hint)"),
    "1.2": Exercise("the gap log p(x|y) − ELBO for a mean shifted by 2 posterior sd",
                    lambda: 2.0 ** 2 / 2, 0.05,
                    "the gap is KL(q ‖ p(z|x,y)); write that KL for two Gaussians with the "
                    "same σ (see the hint)"),
    "1.3": Exercise("the gap per latent dimension for q with twice the posterior sd",
                    lambda: 0.5 * (2.0 ** 2 - 1 - 2 * math.log(2.0)), 0.02,
                    "it is KL(q ‖ p(z|x,y)) per dimension, with the means equal: only the "
                    "variance terms remain (and divide a total gap by D)"),
    # Chapter 2: the σ-VAE
    "2.1": Exercise("the σ = 1 floor of bits per dimension for 8-bit images",
                    lambda: 8 + math.log2(math.sqrt(2 * math.pi)), 1e-3,
                    "look again at the density's maximum per dimension, and at the bits "
                    "the 256 bins of a pixel cost (see the hint)"),
    "2.2": Exercise("σ* for the residuals (0.1, −0.2, 0.05, 0.15)",
                    lambda: math.sqrt(sum(r ** 2 for r in (0.1, -0.2, 0.05, 0.15)) / 4), 1e-5,
                    "σ*² is the mean of the squared residuals, and the answer is σ*, not σ*²"),
    "2.3": Exercise("the fixed σ of the hand-tuned KL weight at 32px",
                    lambda: math.sqrt(MSE_KL_WEIGHT * 3 * 32 ** 2 / 2), 1e-4,
                    "the recipe is a fixed-σ decoder with σ² = wP/2, P = 3 · 32² pixel "
                    "values; the answer is σ, not σ²"),
    # Chapter 3: Real NVP
    "3.1": Exercise("log|det ∂f/∂z| of RealNVP(6, num_layers=8) doubling its free halves",
                    lambda: 8 * 3 * math.log(2.0), 1e-4,
                    "each coupling's log-det is the sum of its s over the free half only, "
                    "and the layers' log-dets add"),
    "3.2": Exercise("each coordinate of f⁻¹(1, …, 1) for the doubling flow",
                    lambda: 2.0 ** -4, 1e-6,
                    "count in how many of the 8 couplings one coordinate is in the free "
                    "half (the masks alternate), and undo that many doublings"),
    "3.3": Exercise("log p(z) at z = (1, −1) under a new RealNVP(2) over N(0, I)",
                    lambda: -math.log(2 * math.pi) - 1.0, 1e-4,
                    "a new flow is the identity: log p(z) is the base density's log at z "
                    "plus a log-det of 0"),
    # Chapter 4: the flow prior
    "4.1": Exercise("the mean of the paper's KL estimate for q = N(1, 1), p = N(0, 1)",
                    lambda: 0.5 * (1 + 1 - 1 - 0) - (1.0 ** 2 + 1.0) / 1.0, 0.02,
                    "start from the closed-form KL and subtract the mean of the term with "
                    "the flipped sign, Σ (f(z) − μ_p)²/σ_p², under q"),
    "4.2": Exercise("log p(z|y=1) − log p(z|y=0) for the conditional Real NVP of the task",
                    context_flow_difference, 1e-6,
                    "0 is what the paper's flow gives over a base that ignores y; build it "
                    "with context_dim=1, perturb it exactly as the task says, and pass y as "
                    "context"),
    # Chapter 5: training over seeds
    "5.1": Exercise("the factor between the standard error and the 95 % half-width for 3 "
                    "paired seeds", lambda: t_quantile(2), 1e-3,
                    "the interval is Student's t with n − 1 degrees of freedom, not the normal "
                    "1.96 (see the hint)"),
    "5.2": Exercise("the fewest paired seeds that find a 1-SD gap at least 80 % of the time",
                    lambda: next(n for n in range(2, 100) if paired_power(1.0, n) >= 0.8), 0,
                    "call paired_power(1.0, n) for n = 2, 3, … and stop at the first n whose "
                    "power reaches 0.8"),
    # Chapter 6: the distances
    "6.1": Exercise("the Fréchet distance between N(0, 1) and N(1, 2²)",
                    lambda: (0 - 1) ** 2 + 1 + 4 - 2 * math.sqrt(1 * 4), 1e-6,
                    "in one dimension it is (μ₁ − μ₂)² + σ₁² + σ₂² − 2σ₁σ₂, with variances, "
                    "not standard deviations, under the first two squares"),
    "6.2": Exercise("FD_∞ from FD_250 = 12 and FD_1000 = 9 under FD_N = FD_∞ + b/N",
                    lambda: 9 - (12 - 9) / (1 / 250 - 1 / 1000) / 1000, 1e-6,
                    "two points fix the line in 1/N: find b from the difference of the two "
                    "distances, then subtract b/1000 from FD_1000"),
    "6.3": Exercise("the balanced accuracy of a classifier that never says 'hat', on 10 % hats",
                    lambda: 0.5, 1e-6,
                    "balanced accuracy averages the accuracy on the faces with a hat and on "
                    "those without, whatever their shares"),
    # Chapter 7: using the model
    "7.1": Exercise("max |edit through the prior − edit| for the σ-CVAE",
                    lambda: 0.0, 1e-6,
                    "for the N(0, I) prior, p(z|y) and p(z|y′) are the same density: what does "
                    "moving z from one to the other do?"),
    "7.2": Exercise("the binomial standard error of 192 successes in 256 edits",
                    lambda: math.sqrt(0.75 * 0.25 / 256), 1e-5,
                    "the standard error is √(p(1 − p)/n): a square root, with n in the "
                    "denominator"),
    "7.3": Exercise("the number of distinct 8-bit images among 16 samples at τ = 0",
                    lambda: 1, 0,
                    "at τ = 0 the noise ε is scaled to 0: how many different z can the "
                    "sampler produce for one y?"),
}


def _number(key: str, answer) -> float:
    """The answer as a float (Python, NumPy or one-element torch numbers), else an assertion."""
    one_element = answer.numel() == 1 if isinstance(answer, torch.Tensor) else \
        hasattr(answer, "item") and getattr(answer, "size", None) == 1
    if one_element:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        shown = f"a tensor of shape {tuple(answer.shape)}" \
            if isinstance(answer, torch.Tensor) else repr(answer)
        raise AssertionError(f"Exercise {key}: expected one number, got {shown}")
    return float(answer)


def check(key: str, answer) -> bool:
    """Check a reader's answer to exercise ``key`` ("2.1"): prints the verdict and returns True
    when right; returns False (after saying so) when ``answer`` is None, i.e. not answered yet;
    raises AssertionError with a one-line nudge when wrong, KeyError for an unknown key."""
    if key not in EXERCISES:
        raise KeyError(f"no exercise {key!r}; the exercises are {', '.join(EXERCISES)}")
    name = "answer_" + key.replace(".", "_")
    if answer is None:
        print(f"Exercise {key}: not answered yet — set {name} and run this cell again.")
        return False
    exercise = EXERCISES[key]
    value = _number(key, answer)
    if not abs(value - exercise.expected()) <= exercise.tolerance:  # NaN is wrong too
        raise AssertionError(f"Exercise {key}: {value!r} is not {exercise.what} (to within "
                             f"{exercise.tolerance:g}); {exercise.nudge}")
    print(f"Exercise {key}: right.")
    return True
