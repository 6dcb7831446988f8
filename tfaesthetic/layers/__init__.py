"""tfaesthetic.layers: the papers' custom layers and word-vector loading.

Importing this package registers every layer for `.keras` deserialisation.
"""

from tfaesthetic.layers.conv_attention_kernel import ConvAttentionKernel
from tfaesthetic.layers.mfb_pooling import MFBPooling
from tfaesthetic.layers.ngram_bag import NGramBag
from tfaesthetic.layers.recurrent_attention import RecurrentAttention
from tfaesthetic.layers.review_encoder import ReviewEncoder
from tfaesthetic.layers.sentiment_lexicon import SentimentLexicon
from tfaesthetic.layers.text_cnn import TextCNN
from tfaesthetic.layers.vectors import load_vectors

__all__ = [
    "ConvAttentionKernel", "MFBPooling", "NGramBag", "RecurrentAttention", "ReviewEncoder", "SentimentLexicon",
    "TextCNN", "load_vectors",
]
