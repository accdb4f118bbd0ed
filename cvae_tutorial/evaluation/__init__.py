"""The evaluation layer (chapter 6): ``likelihood`` (ELBO, IW bound, bits/dim), ``classifier``
(the attribute classifier), ``inception`` (the FID network and its weights), ``frechet``
(Fréchet distance, its N-curve, KID), ``judge`` (one reading per image set), ``draws`` (one
draw per model), ``conditioning`` (balanced accuracy, joint distance), ``latents`` (prior hole,
active units), ``metrics`` (the columns of a results row), ``protocol`` (the protocol card and
reference features), ``seeds`` (mean ± s.e. over training seeds, verdicts) and ``report`` (a
run's results table)."""
from .classifier import (AttributeClassifier, ClassifierConfig, attribute_accuracy,
                         train_attribute_classifier)
from .conditioning import (balanced_accuracy, balanced_attribute_accuracy,
                           joint_frechet_distance, named_attribute_agreement,
                           real_joint_statistics)
from .draws import Draws, base_noise, draw, sample_images
from .frechet import (curve_sizes, feature_statistics, frechet_curve, frechet_distance,
                      frechet_distance_from_statistics, kernel_distance)
from .inception import load_fid_inception
from .judge import Judge
from .likelihood import (bits_per_dim, dataset_log_weights, importance_weighted_bound,
                         likelihood_summary, log_importance_weights)
from .latents import active_units
from .metrics import COLUMNS, METRICS
from .protocol import ProtocolCard
from .report import (PAPER_FID, evaluate_checkpoint, evaluate_model, evaluate_run, floor_line,
                     prepare_evaluation, results_markdown, summary_table, write_results)
from .seeds import (format_estimate, mean_and_error, separation, summarize, summary_markdown,
                    verdict)

__all__ = ["active_units", "AttributeClassifier", "base_noise", "attribute_accuracy", "balanced_accuracy",
           "balanced_attribute_accuracy", "bits_per_dim", "ClassifierConfig", "COLUMNS",
           "curve_sizes", "dataset_log_weights", "draw", "Draws", "evaluate_checkpoint",
           "evaluate_model", "evaluate_run", "feature_statistics", "floor_line",
           "format_estimate", "frechet_curve", "frechet_distance",
           "frechet_distance_from_statistics", "importance_weighted_bound", "Judge",
           "joint_frechet_distance", "kernel_distance", "likelihood_summary",
           "load_fid_inception", "log_importance_weights", "mean_and_error", "METRICS",
           "named_attribute_agreement", "PAPER_FID", "prepare_evaluation", "ProtocolCard",
           "real_joint_statistics", "results_markdown", "sample_images", "separation",
           "summarize", "summary_markdown", "summary_table", "train_attribute_classifier",
           "verdict", "write_results"]
