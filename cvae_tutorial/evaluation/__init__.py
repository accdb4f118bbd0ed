"""The evaluation layer (chapter 6): ``likelihood`` (ELBO, IW bound, bits/dim), ``classifier`` (the
attribute classifier), ``inception`` (the FID network and its weights), ``frechet`` (Fréchet
distance, its N-curve, KID), ``judge`` (one reading per image set), ``draws`` (one draw per
model), ``conditioning`` (balanced accuracy, joint distance), ``latents`` (prior hole, active
units), ``edits`` (what an attribute edit did, chapter 7), ``neighbours`` (k-NN coverage,
precision and recall), ``metrics`` (the columns of a results row), ``protocol`` (the protocol
card and reference features), ``uncertainty`` (mean ± s.e., t intervals, verdicts paired by
seed) and ``report`` (a run's results table)."""
from .classifier import (AttributeClassifier, ClassifierConfig, attribute_accuracy,
                         classifier_logits, predict_attributes, train_attribute_classifier)
from .conditioning import (balanced_accuracy, balanced_accuracy_terms,
                           balanced_attribute_accuracy, joint_frechet_distance,
                           named_attribute_agreement, real_joint_statistics)
from .draws import Draws, base_noise, draw, sample_images
from .edits import EditOutcome, measure_edit, measure_edits
from .frechet import (curve_sizes, feature_statistics, frechet_curve, frechet_distance,
                      frechet_distance_from_statistics, kernel_distance)
from .inception import load_fid_inception
from .judge import Judge
from .likelihood import (bits_per_dim, dataset_log_weights, importance_weighted_bound,
                         likelihood_summary, log_importance_weights)
from .latents import active_units, prior_hole
from .metrics import COLUMNS, METRICS
from .neighbours import coverage, knn_radii, precision_recall, within_label_precision_recall
from .protocol import ProtocolCard
from .report import (PAPER_FID, evaluate_model, evaluate_run, floor_line,
                     prepare_evaluation, results_markdown, summary_table, write_results)
from .uncertainty import (format_estimate, mean_and_error, paired_difference, paired_order,
                          paired_power, paired_sentence, rate_and_error, summarize,
                          summary_markdown, values_by_seed, verdict)

__all__ = ["active_units", "attribute_accuracy", "AttributeClassifier", "balanced_accuracy",
           "balanced_accuracy_terms", "balanced_attribute_accuracy", "base_noise", "bits_per_dim",
           "classifier_logits", "ClassifierConfig", "COLUMNS", "coverage", "curve_sizes",
           "dataset_log_weights", "draw", "Draws", "EditOutcome",
           "evaluate_model", "evaluate_run", "feature_statistics", "floor_line", "format_estimate",
           "frechet_curve", "frechet_distance", "frechet_distance_from_statistics",
           "importance_weighted_bound", "joint_frechet_distance", "Judge", "kernel_distance",
           "knn_radii", "likelihood_summary", "load_fid_inception", "log_importance_weights",
           "mean_and_error", "measure_edit", "measure_edits", "METRICS",
           "named_attribute_agreement", "paired_difference", "paired_order", "paired_power",
           "paired_sentence", "PAPER_FID", "precision_recall", "predict_attributes",
           "prepare_evaluation", "prior_hole", "ProtocolCard", "rate_and_error",
           "real_joint_statistics", "results_markdown", "sample_images", "summarize",
           "summary_markdown", "summary_table", "train_attribute_classifier", "values_by_seed",
           "verdict", "within_label_precision_recall", "write_results"]
