"""tfaesthetic.losses: EMD (seed 003 Eq. 1) and the CFAN / BPR losses."""

from tfaesthetic.losses.bpr import BPRLoss, bpr_loss
from tfaesthetic.losses.cfan import (
    MaskedTagCrossentropy,
    RatingCrossentropy,
    cfan_loss,
    masked_tag_crossentropy,
    rating_crossentropy,
)
from tfaesthetic.losses.emd import EMD, emd, normalize_distribution

__all__ = [
    "BPRLoss",
    "EMD",
    "MaskedTagCrossentropy",
    "RatingCrossentropy",
    "bpr_loss",
    "cfan_loss",
    "emd",
    "masked_tag_crossentropy",
    "normalize_distribution",
    "rating_crossentropy",
]
