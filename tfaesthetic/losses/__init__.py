"""tfaesthetic.losses: EMD (seed 003 Eq. 1) and the CFAN / BPR losses."""

from tfaesthetic.losses.emd import EMD, emd, normalize_distribution

__all__ = ["EMD", "emd", "normalize_distribution"]
