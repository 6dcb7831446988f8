"""tfaesthetic.losses: EMD (seed 003 Eq. 1), EMD with a mean-score term and the CFAN / BPR losses."""

from tfaesthetic.losses.bpr import BPRLoss, bpr_loss
from tfaesthetic.losses.cfan import (
    MaskedTagCrossentropy,
    RatingCrossentropy,
    cfan_loss,
    masked_tag_crossentropy,
    rating_crossentropy,
)
from tfaesthetic.losses.emd import EMD, emd, normalize_distribution
from tfaesthetic.losses.mean_score import EMDWithMeanScore, emd_with_mean, mean_score_error

__all__ = [
    "BPRLoss",
    "EMD",
    "EMDWithMeanScore",
    "MaskedTagCrossentropy",
    "RatingCrossentropy",
    "bpr_loss",
    "cfan_loss",
    "emd",
    "emd_with_mean",
    "masked_tag_crossentropy",
    "mean_score_error",
    "normalize_distribution",
    "rating_crossentropy",
]
