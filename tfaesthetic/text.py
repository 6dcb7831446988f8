"""Comment normalisation and tokenisation: one function, three users (SPEC §2.2).

`tokenize(texts, vocabulary)` is built only from TensorFlow and tensorflow-text ops,
so the same code runs eagerly in the records writer (batched), inside
`tf.data.Dataset.map` in the input pipeline, and inside the exported serving graph
(a `tf.function` with a `tf.TensorSpec([None], tf.string)` signature). Train/serve
skew is impossible by construction.

The rule, applied in this order:

1. repair invalid UTF-8 (each bad byte becomes U+FFFD),
2. Unicode NFKC normalisation, then case folding (NFKC_Casefold),
3. apostrophes are deleted (``don't`` -> ``dont``), then every run of characters
   that are not letters, combining marks or digits becomes one space (punctuation,
   symbols, emoji and U+FFFD are dropped),
4. split on whitespace (no empty tokens).

Token ids: `PAD_ID` (0) is padding, `OOV_ID` (1) any out-of-vocabulary word, and the
words of `vocab.txt` get ids 2, 3, ... in file order.
"""

from __future__ import annotations

import collections
from typing import Iterable, Optional

import tensorflow as tf
import tensorflow_text as tf_text

from tfaesthetic import features

_APOSTROPHES = r"['\x{2019}\x{02BC}]"
_NOT_WORD = r"[^\p{L}\p{M}\p{N}]+"


def _as_string_tensor(texts) -> tf.Tensor:
    if isinstance(texts, (tf.Tensor, tf.RaggedTensor)):
        if texts.dtype != tf.string:
            raise TypeError(f"Expected a string tensor. Received: texts.dtype={texts.dtype}")
        return texts
    if isinstance(texts, (str, bytes)):
        return tf.constant(texts, tf.string)
    texts = list(texts)
    if not texts:
        return tf.constant([], tf.string)
    return tf.constant([t.encode("utf-8", errors="replace") if isinstance(t, str) else t for t in texts], tf.string)


def normalize(texts) -> tf.Tensor:
    """Repairs invalid UTF-8, applies NFKC and case folding.

    Args:
        texts: a string tensor of any shape (or a Python list of str/bytes).

    Returns:
        A string tensor of the same shape, valid UTF-8.
    """
    texts = _as_string_tensor(texts)
    texts = tf.strings.unicode_transcode(
        texts, input_encoding="UTF-8", output_encoding="UTF-8", errors="replace", replacement_char=0xFFFD
    )
    texts = tf_text.normalize_utf8(texts, "NFKC")
    return tf_text.case_fold_utf8(texts)


# Python's `str.isspace` set in RE2 syntax (RE2's \\s lacks \\v, U+001C..U+001F, U+0085).
_ID_SPACE = r"[\t\n\x{0b}\f\r\x{1c}-\x{1f}\x{85}\p{Z}]"


def normalize_ids(ids) -> tf.Tensor:
    """`tfaesthetic.features.normalize_id` as TF ops, for the serving graph: NFC, surrounding whitespace stripped.

    Args:
        ids: string tensor (any shape) of image ids or user names.

    Returns:
        A string tensor of the same shape; equal, element by element, to
        `features.normalize_id` of the same strings (invalid UTF-8 is repaired first,
        as the builders' decoding does).
    """
    ids = _as_string_tensor(ids)
    ids = tf.strings.unicode_transcode(ids, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    ids = tf_text.normalize_utf8(ids, "NFC")
    return tf.strings.regex_replace(ids, f"^{_ID_SPACE}+|{_ID_SPACE}+$", "")


def split_words(texts) -> tf.RaggedTensor:
    """Splits already normalised texts into words (letters, marks and digits only).

    Args:
        texts: a 1-D string tensor (output of `normalize`).

    Returns:
        A `tf.RaggedTensor` of strings, shape `[N, (words)]`.
    """
    texts = _as_string_tensor(texts)
    texts = tf.strings.regex_replace(texts, _APOSTROPHES, "")
    texts = tf.strings.regex_replace(texts, _NOT_WORD, " ")
    return tf.strings.split(texts)


class Vocabulary(tf.Module):
    """Maps words to token ids with a trackable `tf.lookup.StaticHashTable`.

    The table lives on this `tf.Module`, so attaching the vocabulary to a Keras
    layer, a `tf.Module` or a `keras.export.ExportArchive` (`archive.track(vocab)`)
    carries it into a SavedModel.

    Args:
        words: the vocabulary words in id order (ids start at `NUM_RESERVED_TOKENS`).
        name: the module name.

    Attributes:
        words: the words, id `i + 2` for `words[i]`.
        size: number of ids including padding and OOV (`len(words) + 2`), the
            embedding input dimension.
        table: the `tf.lookup.StaticHashTable` word -> id (default `OOV_ID`).
    """

    def __init__(self, words: Iterable[str], name: Optional[str] = "vocabulary"):
        super().__init__(name=name)
        self.words = [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in words]
        if len(set(self.words)) != len(self.words):
            dup = [w for w, c in collections.Counter(self.words).items() if c > 1][:5]
            raise ValueError(f"Vocabulary words must be unique. Received duplicates: {dup}")
        for w in self.words:
            if not w or any(ch.isspace() for ch in w):
                raise ValueError(f"Vocabulary words must be non-empty and contain no whitespace. Received: {w!r}")
        keys = tf.constant(self.words if self.words else [""], tf.string)
        values = tf.range(features.NUM_RESERVED_TOKENS, features.NUM_RESERVED_TOKENS + len(self.words), dtype=tf.int64)
        if not self.words:
            # An empty table is not allowed; map an impossible (empty) word to OOV.
            values = tf.constant([features.OOV_ID], tf.int64)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, values), default_value=tf.constant(features.OOV_ID, tf.int64)
        )

    @property
    def size(self) -> int:
        return len(self.words) + features.NUM_RESERVED_TOKENS

    def __len__(self) -> int:
        return self.size

    def lookup(self, words) -> tf.Tensor | tf.RaggedTensor:
        """Maps a (ragged) string tensor of words to int64 ids."""
        if isinstance(words, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self.table.lookup, words)
        return self.table.lookup(_as_string_tensor(words))

    @classmethod
    def build(cls, words: Iterable, min_count: int = 1, max_size: Optional[int] = None) -> "Vocabulary":
        """Counts words and keeps the frequent ones.

        Words are ordered by decreasing count, ties broken by the word itself, so
        the result is deterministic.

        Args:
            words: an iterable of words (str or UTF-8 bytes), already normalised and
                split (e.g. the flat values of `split_words(normalize(texts))` over
                the training split only).
            min_count: keep words seen at least this many times.
            max_size: keep at most this many words (excluding pad and OOV), or None.
        """
        if min_count < 1:
            raise ValueError(f"Expected min_count >= 1. Received: min_count={min_count}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"Expected max_size >= 0 or None. Received: max_size={max_size}")
        counts = collections.Counter(w.decode("utf-8") if isinstance(w, bytes) else w for w in words)
        kept = sorted((w for w, c in counts.items() if c >= min_count and w), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[:max_size]
        return cls(kept)

    @classmethod
    def from_file(cls, path: str) -> "Vocabulary":
        """Reads `vocab.txt` (one word per line, UTF-8; line i has id i + 2)."""
        with open(path, encoding="utf-8") as f:
            words = [line.rstrip("\n") for line in f]
        if words and words[-1] == "":
            words.pop()
        try:
            return cls(words)
        except ValueError as e:
            raise ValueError(f"Invalid vocabulary file {path}: {e}") from None

    def write(self, path: str) -> None:
        """Writes `vocab.txt`: one word per line, in id order."""
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for w in self.words:
                f.write(w + "\n")


def tokenize(texts, vocabulary: Vocabulary) -> tf.RaggedTensor:
    """Normalises, splits and maps texts to token ids: the one tokenisation function.

    Args:
        texts: a 1-D string tensor `[N]` (or a Python list of str/bytes); any bytes
            are accepted, invalid UTF-8 is repaired.
        vocabulary: the `Vocabulary` (its table is used inside graphs too).

    Returns:
        A `tf.RaggedTensor` of int64 ids, shape `[N, (tokens)]`; no `PAD_ID` inside.
    """
    words = split_words(normalize(texts))
    return vocabulary.lookup(words)


def pad_tokens(token_ids: tf.RaggedTensor, max_len: int) -> tf.Tensor:
    """Truncates/pads ragged ids `[N, (tokens)]` to a dense int32 `[N, max_len]` (pad 0)."""
    ids = token_ids[:, :max_len]
    dense = ids.to_tensor(default_value=features.PAD_ID, shape=[None, max_len])
    return tf.cast(dense, tf.int32)
