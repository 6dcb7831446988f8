"""tfaesthetic.data: the tf.data input pipeline (decoder -> parser -> reader)."""

from tfaesthetic.data.decoder import Decoder
from tfaesthetic.data.parser import Parser, decode_image, join_tokens
from tfaesthetic.data.reader import ShardError, build_dataset, num_examples, validate_shards

__all__ = [
    "Decoder",
    "Parser",
    "ShardError",
    "build_dataset",
    "decode_image",
    "join_tokens",
    "num_examples",
    "validate_shards",
]
