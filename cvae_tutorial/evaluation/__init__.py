"""The evaluation layer (chapter 6): ``likelihood`` (ELBO, IW bound, bits/dim), ``classifier``
(attribute fidelity, FD_attr), ``fid`` (Fréchet distances, the FID Inception), ``conditioning``
(balanced accuracy, flip test, shuffled-label control), ``latents`` (prior hole, active units),
``neighbours`` (k-NN coverage, precision and recall), ``uncertainty`` (mean ± s.e., t intervals,
verdicts paired by seed) and ``report`` (a run's results table)."""
from .classifier import (AttributeClassifier, ClassifierConfig, attribute_accuracy,
                         train_attribute_classifier)
from .conditioning import (balanced_accuracy, balanced_accuracy_terms,
                           balanced_attribute_accuracy, flip_test,
                           joint_frechet_distance, named_attribute_agreement,
                           real_joint_statistics, shuffled_label_control)
from .fid import (feature_statistics, frechet_distance, frechet_distance_from_statistics,
                  generated_features, load_fid_inception)
from .likelihood import (bits_per_dim, dataset_log_weights, importance_weighted_bound,
                         likelihood_summary, log_importance_weights)
from .latents import (active_units, model_prior_hole, posterior_codes, prior_draws,
                      prior_hole)
from .neighbours import coverage, knn_radii, precision_recall, within_label_precision_recall
from .report import (PAPER_FID, SUMMARY_COLUMNS, evaluate_checkpoint, evaluate_model,
                     evaluate_run, prepare_evaluation, results_markdown, summary_table,
                     write_results)
from .uncertainty import (format_estimate, mean_and_error, paired_difference, paired_order,
                          paired_power, paired_sentence, rate_and_error, summarize,
                          summary_markdown, values_by_seed, verdict)

__all__ = ["active_units", "balanced_accuracy", "balanced_accuracy_terms",
           "balanced_attribute_accuracy", "flip_test",
           "joint_frechet_distance", "named_attribute_agreement", "posterior_codes",
           "model_prior_hole", "prior_draws", "prior_hole", "coverage",
           "knn_radii", "precision_recall", "within_label_precision_recall",
           "real_joint_statistics", "shuffled_label_control",
           "attribute_accuracy", "AttributeClassifier", "bits_per_dim", "ClassifierConfig",
           "dataset_log_weights", "evaluate_checkpoint", "evaluate_model", "evaluate_run",
           "feature_statistics", "frechet_distance", "frechet_distance_from_statistics",
           "generated_features", "importance_weighted_bound", "likelihood_summary",
           "load_fid_inception", "log_importance_weights", "PAPER_FID", "prepare_evaluation",
           "results_markdown", "train_attribute_classifier", "write_results",
           "SUMMARY_COLUMNS", "summary_table", "format_estimate", "mean_and_error",
           "paired_difference", "paired_order", "paired_power", "paired_sentence",
           "rate_and_error", "summarize", "summary_markdown", "values_by_seed", "verdict"]
