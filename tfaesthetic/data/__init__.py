"""tfaesthetic.data: the tf.data input pipeline (decoder -> parser -> reader)."""

from tfaesthetic.data.decoder import Decoder
from tfaesthetic.data.parser import MAX_PIXELS, Parser, check_pixel_budget, decode_image, image_shape, join_tokens
from tfaesthetic.data.reader import ShardError, build_dataset, num_examples, validate_shards

__all__ = [
    "MAX_PIXELS",
    "Decoder",
    "Parser",
    "ShardError",
    "build_dataset",
    "check_pixel_budget",
    "decode_image",
    "image_shape",
    "join_tokens",
    "num_examples",
    "validate_shards",
]
