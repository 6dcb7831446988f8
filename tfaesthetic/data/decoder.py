"""Decoder: one serialized `tf.train.Example` -> raw tensors (no pixels yet).

Uses `tfaesthetic.features.parse_spec()`, the same contract the writer serialises
with; no feature key is spelled here.
"""

from __future__ import annotations

import tensorflow as tf

from tfaesthetic import features


class Decoder:
    """Parses serialized image records into a flat dict of raw tensors.

    Output keys (for one scalar serialized example):

    - `image_id` string [], `image_index` int64 [], `image_format` string [],
    - `encoded` string [] (empty string when the record has no image),
      `has_image` bool [],
    - `votes` int64 [num_bins or 0], `tags` int64 [0..2], `challenge` int64 [],
    - `comment_text` string [C], `comment_tokens` int64 ragged [C, (tokens)],
      `comment_user` / `comment_sentiment` / `comment_rating` int64 [C].
    """

    def __init__(self):
        self._spec = features.parse_spec()

    def decode(self, serialized: tf.Tensor) -> dict:
        """Decodes one serialized example (a scalar string tensor)."""
        parsed = tf.io.parse_single_example(serialized, self._spec)
        encoded = parsed[features.IMAGE_ENCODED]
        has_image = tf.size(encoded) > 0
        return {
            "image_id": parsed[features.IMAGE_ID],
            "image_index": parsed[features.IMAGE_INDEX],
            "image_format": parsed[features.IMAGE_FORMAT],
            "encoded": tf.strings.reduce_join(encoded),  # the one value, or b"" when absent
            "has_image": has_image,
            "votes": parsed[features.VOTES],
            "tags": parsed[features.TAGS],
            "challenge": parsed[features.CHALLENGE],
            "comment_text": parsed[features.COMMENT_TEXT],
            "comment_tokens": parsed[features.COMMENT_TOKENS],
            "comment_user": parsed[features.COMMENT_USER],
            "comment_sentiment": parsed[features.COMMENT_SENTIMENT],
            "comment_rating": parsed[features.COMMENT_RATING],
        }

    __call__ = decode


def decode(serialized: tf.Tensor) -> dict:
    """Functional form of `Decoder().decode`."""
    return Decoder().decode(serialized)
