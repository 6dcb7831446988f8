"""tfaesthetic.data: the tf.data input pipeline (decoder -> parser -> reader)."""

from tfaesthetic.data.decoder import Decoder
from tfaesthetic.data.parser import Parser, decode_image, join_tokens
from tfaesthetic.data.reader import ShardError, build_dataset, num_examples, validate_shards

#: The trainer may train MRACNN's heads from cached backbone features
#: (`--feature_cache`, `tfaesthetic.data.feature_cache`).
SUPPORTS_FEATURE_CACHE = True

__all__ = [
    "Decoder",
    "Parser",
    "SUPPORTS_FEATURE_CACHE",
    "ShardError",
    "build_dataset",
    "decode_image",
    "join_tokens",
    "num_examples",
    "validate_shards",
]
