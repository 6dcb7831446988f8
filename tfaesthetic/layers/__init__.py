"""tfaesthetic.layers: the papers' custom layers and word-vector loading."""

from tfaesthetic.layers.mfb_pooling import MFBPooling
from tfaesthetic.layers.recurrent_attention import RecurrentAttention
from tfaesthetic.layers.text_cnn import TextCNN
from tfaesthetic.layers.vectors import load_vectors

__all__ = ["MFBPooling", "RecurrentAttention", "TextCNN", "load_vectors"]
