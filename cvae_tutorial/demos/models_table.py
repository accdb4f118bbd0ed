"""The table of the prior ladder's runs (chapter 4), read from ``study.RUNGS`` and
``run_config`` so that it cannot drift from the code: per run its encoder, prior, decoder σ,
objective, sampler, the paper's name and the package's title."""
from __future__ import annotations

from ..cvae import PAPER_MODEL_NAMES, model_title, run_config
from ..study import RUNGS

# prior -> (p(z|y), sampler); "\|" keeps a bar inside a Markdown table's cell
PRIOR_CELLS = {
    "standard": ("N(0, I)", "z = ε"),
    "conditional": ("N(μ_p(y), σ_p(y)²)", "z = μ_p + σ_p ε"),
    "flow": ("Real NVP f(z) over N(μ_p(y), σ_p(y)²)", "z = f⁻¹(μ_p + σ_p ε)"),
    "conditional_flow": ("Real NVP f(z; y) over N(μ_p(y), σ_p(y)²)",
                         "z = f⁻¹(μ_p + σ_p ε; y)"),
}
PAPER_TITLES = dict(zip(PAPER_MODEL_NAMES,
                        ("Gaussian CVAE", "σ-CVAE", "σ-CVAE + flow prior")))
COLUMNS = ("run", "encoder", "prior p(z\\|y)", "decoder σ", "objective", "sampler", "paper",
           "package title")


def models_table(runs=RUNGS) -> str:
    """A Markdown table, one row per run name (the ladder's by default)."""
    rows = ["| " + " | ".join(COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
    for name in runs:
        config = run_config(name)
        if config.likelihood not in ("gaussian", "sigma"):
            raise ValueError(f"{name}: the table's decoder column knows σ = 1 and σ* only")
        prior, sampler = PRIOR_CELLS[config.prior]
        encoder = "q(z\\|x, y)" if config.encoder_sees_labels else "q(z\\|x)"
        sigma = "1" if config.likelihood == "gaussian" else "σ* (√MSE)"
        kl = "Monte Carlo" if config.prior.endswith("flow") else "closed-form"
        cells = (f"`{name}`", encoder, prior, sigma, f"ELBO, {kl} KL", sampler,
                 PAPER_TITLES.get(name, "—"), model_title(name).replace("|", "\\|"))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
