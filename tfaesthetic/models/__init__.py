"""tfaesthetic.models: backbones by name and the papers' networks."""

from tfaesthetic.models.backbones import default_image_size, get_backbone
from tfaesthetic.models.bpr import BPR, VBPR
from tfaesthetic.models.cfan import CFAN
from tfaesthetic.models.mracnn import FUSIONS, MRACNN, VARIANTS, initialize_embeddings

__all__ = [
    "BPR",
    "CFAN",
    "FUSIONS",
    "MRACNN",
    "VARIANTS",
    "VBPR",
    "default_image_size",
    "get_backbone",
    "initialize_embeddings",
]
