"""tfaesthetic.models: backbones by name and the papers' networks."""

from tfaesthetic.models.backbones import default_image_size, get_backbone
from tfaesthetic.models.mracnn import FUSIONS, MRACNN, VARIANTS, initialize_embeddings

__all__ = ["FUSIONS", "MRACNN", "VARIANTS", "default_image_size", "get_backbone", "initialize_embeddings"]
