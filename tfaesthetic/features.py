"""The one feature contract of tfaesthetic records (SPEC §2.1).

Every writer (`tfaesthetic.records.*`) and the decoder (`tfaesthetic.data.decoder`)
import the keys and the parse spec from here; no other module spells a feature key.

One `tf.train.Example` per image holds everything known about that image: its
original encoded bytes (optional), the vote counts per score bin, tags, challenge,
and all its comments (raw text, ragged token ids, user index, sentiment level and
the derived user-specific rating s_uv).
"""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Callable, Optional, Sequence

SCHEMA_VERSION = 1

# --- feature keys -----------------------------------------------------------
IMAGE_ID = "image/id"
IMAGE_INDEX = "image/index"
IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
VOTES = "scores/votes"
TAGS = "image/tags"
CHALLENGE = "image/challenge"
COMMENT_TEXT = "comments/text"
COMMENT_TOKENS = "comments/tokens"
COMMENT_TOKENS_VALUES = "comments/tokens/values"
COMMENT_TOKENS_LENGTHS = "comments/tokens/row_lengths"
COMMENT_USER = "comments/user_index"
COMMENT_SENTIMENT = "comments/sentiment"
COMMENT_RATING = "comments/rating"

# --- token ids ----------------------------------------------------------------
PAD_ID = 0
OOV_ID = 1
NUM_RESERVED_TOKENS = 2

# --- sentinel values ------------------------------------------------------------
UNKNOWN_USER = -1
UNKNOWN_CHALLENGE = -1
NO_RATING = -1
NO_TAG = -1

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class ScoreScale:
    """The score bins of a dataset; recorded in the manifest, drives heads and metrics.

    Attributes:
        values: the score value of each bin, in order (AVA: 1..10, Photo.net: 1..7).
        threshold: an image is "good" when its mean score is strictly above this.
    """

    values: tuple
    threshold: float

    @property
    def num_bins(self) -> int:
        return len(self.values)

    def to_json(self) -> dict:
        return {
            "num_bins": self.num_bins,
            "values": [float(v) for v in self.values],
            "threshold": float(self.threshold),
        }

    @classmethod
    def from_json(cls, obj: dict) -> "ScoreScale":
        values = tuple(float(v) for v in obj["values"])
        if "num_bins" in obj and int(obj["num_bins"]) != len(values):
            raise ValueError(
                "score_scale.num_bins does not match score_scale.values. "
                f"Received: num_bins={obj['num_bins']}, len(values)={len(values)}"
            )
        return cls(values=values, threshold=float(obj["threshold"]))


AVA_SCALE = ScoreScale(values=tuple(float(v) for v in range(1, 11)), threshold=5.0)
PHOTONET_SCALE = ScoreScale(values=tuple(float(v) for v in range(1, 8)), threshold=4.0)


@dataclasses.dataclass
class Comment:
    """One comment (review) on an image, as the sources produce it.

    Attributes:
        text: the comment text (already decoded to `str`; the source repairs
            non-UTF-8 bytes and counts them).
        user_index: index into users.tsv, or `UNKNOWN_USER`.
        sentiment: preference level 0..4 (seed 000 §4.1), filled by
            `tfaesthetic.records.reviews`.
        rating: derived binary rating s_uv, or `NO_RATING` when the derivation
            dropped the comment (types III/IV).
    """

    text: str
    user_index: int = UNKNOWN_USER
    sentiment: int = 2
    rating: int = NO_RATING


@dataclasses.dataclass
class ImageRecord:
    """Everything known about one image, before serialisation.

    Image bytes are loaded lazily (`load_image`) so that a source can describe
    250 000 images without holding their bytes in memory.

    Attributes:
        image_id: the source id (unique within a dataset).
        split: one of `SPLITS`.
        image_index: dense index (assigned by the writer: train images first).
        encoded: the original encoded bytes, or None.
        load_image: a callable returning the bytes, used when `encoded` is None.
        image_format: "jpeg", "png", ... ("" when there is no image).
        votes: vote counts per score bin, or None.
        tags: 0..2 tag ids, primary first.
        challenge: challenge id or `UNKNOWN_CHALLENGE`.
        comments: the image's comments.
    """

    image_id: str
    split: str = "train"
    image_index: int = -1
    encoded: Optional[bytes] = None
    load_image: Optional[Callable[[], bytes]] = None
    image_format: str = ""
    votes: Optional[Sequence[int]] = None
    tags: Sequence[int] = ()
    challenge: int = UNKNOWN_CHALLENGE
    comments: list = dataclasses.field(default_factory=list)


# --- ids ----------------------------------------------------------------------


def normalize_id(value) -> str:
    """The one normalisation of image ids and user names: Unicode NFC, surrounding whitespace stripped.

    The records builders store ids through this function and the serving graph
    applies the same rule with `tfaesthetic.text.normalize_ids` (TF ops), so
    `"caf\\u00e9"` (NFC) and `"cafe\\u0301"` (NFD), or `" alice "` and `"alice"`, are one id
    at build and at serving time. Whitespace is what `str.isspace` calls so (ASCII
    and Unicode spaces, tab, newline, U+0085, U+2028, ...). Control characters
    inside an id are not removed here: the builders reject such ids (see
    `id_problem`).
    """
    return unicodedata.normalize("NFC", str(value)).strip()


def id_problem(value: str) -> Optional[str]:
    """Why a normalised id is refused, or None: empty, or holding a control character (tab, newline, NUL, ...)."""
    if not value:
        return "empty id"
    bad = sorted({f"U+{ord(ch):04X}" for ch in value if unicodedata.category(ch) == "Cc"})
    if bad:
        return f"id holds control character(s) {', '.join(bad)}: {value[:80]!r}"
    return None


def id_collision_key(value: str) -> str:
    """The id with format characters (zero-width space/joiners, U+FEFF, ...) removed, to detect look-alike ids."""
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cf")


# --- parse spec and serialisation ------------------------------------------------


def parse_spec() -> dict:
    """The `tf.io.parse_single_example` spec of one image record.

    Variable-length features are `tf.io.RaggedFeature`s, so a single example parses
    to plain 1-D tensors (`comments/tokens` to a 2-D ragged tensor, one row per
    comment). `image/encoded` has 0 values for text-only data and 1 otherwise;
    `scores/votes` has 0 values when the source has no votes.

    Returns:
        A dict from feature key to `tf.io.FixedLenFeature` / `tf.io.RaggedFeature`.
    """
    import tensorflow as tf

    return {
        IMAGE_ID: tf.io.FixedLenFeature([], tf.string),
        IMAGE_INDEX: tf.io.FixedLenFeature([], tf.int64),
        IMAGE_ENCODED: tf.io.RaggedFeature(tf.string),
        IMAGE_FORMAT: tf.io.FixedLenFeature([], tf.string, default_value=""),
        VOTES: tf.io.RaggedFeature(tf.int64),
        TAGS: tf.io.RaggedFeature(tf.int64),
        CHALLENGE: tf.io.FixedLenFeature([], tf.int64, default_value=UNKNOWN_CHALLENGE),
        COMMENT_TEXT: tf.io.RaggedFeature(tf.string),
        COMMENT_TOKENS: tf.io.RaggedFeature(
            tf.int64,
            value_key=COMMENT_TOKENS_VALUES,
            partitions=[tf.io.RaggedFeature.RowLengths(COMMENT_TOKENS_LENGTHS)],
        ),
        COMMENT_USER: tf.io.RaggedFeature(tf.int64),
        COMMENT_SENTIMENT: tf.io.RaggedFeature(tf.int64),
        COMMENT_RATING: tf.io.RaggedFeature(tf.int64),
    }


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    # Lone surrogates (from `surrogateescape` decoding) cannot be UTF-8; replace them.
    return str(value).encode("utf-8", errors="replace")


def to_example(record: ImageRecord, token_rows: Sequence[Sequence[int]], image_bytes: Optional[bytes]):
    """Serialises one image record to a `tf.train.Example`.

    Args:
        record: the image record; `image_index` must already be assigned.
        token_rows: one list of token ids per comment of `record.comments`, in order.
        image_bytes: the original encoded image bytes, or None for a text-only record
            (then `image/encoded` holds no value).

    Returns:
        A `tf.train.Example`.

    Raises:
        ValueError: when `token_rows` does not have one row per comment.
    """
    import tensorflow as tf

    if len(token_rows) != len(record.comments):
        raise ValueError(
            "Expected one token row per comment. "
            f"Received: len(token_rows)={len(token_rows)}, len(record.comments)={len(record.comments)} "
            f"for image_id={record.image_id!r}"
        )

    def _bytes(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[_as_bytes(v) for v in values]))

    def _ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    comments = record.comments
    feature = {
        IMAGE_ID: _bytes([record.image_id]),
        IMAGE_INDEX: _ints([record.image_index]),
        IMAGE_ENCODED: _bytes([] if image_bytes is None else [image_bytes]),
        IMAGE_FORMAT: _bytes([record.image_format if image_bytes is not None else ""]),
        VOTES: _ints([] if record.votes is None else record.votes),
        TAGS: _ints(record.tags),
        CHALLENGE: _ints([record.challenge]),
        COMMENT_TEXT: _bytes([c.text for c in comments]),
        COMMENT_TOKENS_VALUES: _ints([t for row in token_rows for t in row]),
        COMMENT_TOKENS_LENGTHS: _ints([len(row) for row in token_rows]),
        COMMENT_USER: _ints([c.user_index for c in comments]),
        COMMENT_SENTIMENT: _ints([c.sentiment for c in comments]),
        COMMENT_RATING: _ints([c.rating for c in comments]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))
