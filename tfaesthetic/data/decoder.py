"""Decoder: one serialized `tf.train.Example` -> raw tensors (no pixels yet).

Uses `tfaesthetic.features.parse_spec()`, the same contract the writer serialises
with; no feature key is spelled here.
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from tfaesthetic import features

# Decoder output name -> feature key(s) of the parse spec.
_SOURCES = {
    "image_id": features.IMAGE_ID,
    "image_index": features.IMAGE_INDEX,
    "image_format": features.IMAGE_FORMAT,
    "encoded": features.IMAGE_ENCODED,
    "has_image": features.IMAGE_ENCODED,
    "votes": features.VOTES,
    "tags": features.TAGS,
    "challenge": features.CHALLENGE,
    "comment_text": features.COMMENT_TEXT,
    "comment_tokens": features.COMMENT_TOKENS,
    "comment_user": features.COMMENT_USER,
    "comment_sentiment": features.COMMENT_SENTIMENT,
    "comment_rating": features.COMMENT_RATING,
}
OUTPUTS = tuple(_SOURCES)


class Decoder:
    """Parses serialized image records into a flat dict of raw tensors.

    Output keys (for one scalar serialized example):

    - `image_id` string [], `image_index` int64 [], `image_format` string [],
    - `encoded` string [] (empty string when the record has no image),
      `has_image` bool [],
    - `votes` int64 [num_bins or 0], `tags` int64 [0..2], `challenge` int64 [],
    - `comment_text` string [C], `comment_tokens` int64 ragged [C, (tokens)],
      `comment_user` / `comment_sentiment` / `comment_rating` int64 [C].

    Args:
        outputs: the output keys to produce (default: all). Parsing only what the
            parser needs is cheaper (e.g. the comment strings are skipped when the
            token ids are used).
    """

    def __init__(self, outputs: Optional[Sequence[str]] = None):
        outputs = tuple(OUTPUTS if outputs is None else outputs)
        unknown = [k for k in outputs if k not in _SOURCES]
        if unknown:
            raise ValueError(f"Expected decoder outputs from {OUTPUTS}. Received: {unknown}")
        self.outputs = outputs
        spec = features.parse_spec()
        self._spec = {_SOURCES[k]: spec[_SOURCES[k]] for k in outputs}

    def decode(self, serialized: tf.Tensor) -> dict:
        """Decodes one serialized example (a scalar string tensor)."""
        parsed = tf.io.parse_single_example(serialized, self._spec)
        out = {}
        for key in self.outputs:
            value = parsed[_SOURCES[key]]
            if key == "encoded":
                value = tf.strings.reduce_join(value)  # the one value, or b"" when absent
            elif key == "has_image":
                value = tf.size(value) > 0
            out[key] = value
        return out

    __call__ = decode


def decode(serialized: tf.Tensor) -> dict:
    """Functional form of `Decoder().decode`."""
    return Decoder().decode(serialized)
