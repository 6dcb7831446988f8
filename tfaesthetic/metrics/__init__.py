"""tfaesthetic.metrics: distribution metrics (seed 003 §IV-A) and whole-split evaluation."""

from tfaesthetic.metrics.distribution import (
    DistributionEMD,
    MeanScoreAccuracy,
    MeanScoreMAE,
    MeanScorePLCC,
    MeanScoreRMSE,
    MeanScoreSRCC,
    distribution_metrics,
    mean_score,
)
from tfaesthetic.metrics.evaluation import (
    METRIC_NAMES,
    average_ranks,
    evaluate_distributions,
    evaluate_model,
    format_table,
    pearson,
    spearman,
)
from tfaesthetic.metrics.ranking import auc, evaluate_ranking, per_tag_accuracy, per_user_auc

__all__ = [
    "DistributionEMD",
    "MeanScoreAccuracy",
    "MeanScoreMAE",
    "MeanScorePLCC",
    "MeanScoreRMSE",
    "MeanScoreSRCC",
    "distribution_metrics",
    "mean_score",
    "METRIC_NAMES",
    "average_ranks",
    "evaluate_distributions",
    "evaluate_model",
    "format_table",
    "pearson",
    "spearman",
    "auc",
    "evaluate_ranking",
    "per_tag_accuracy",
    "per_user_auc",
]
