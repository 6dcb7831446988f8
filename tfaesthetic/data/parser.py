"""Parser: raw decoded tensors -> model inputs and labels; the train/eval branch.

This is the only module that augments, and only on the training branch (a random
horizontal flip: it keeps the composition, which aesthetics depends on, so no
crops). Images of any size, aspect ratio and channel count (grayscale, RGB, RGBA)
become float32 RGB `[image_size, image_size, 3]` in [0, 255]; each model
normalises inside itself.

Two modes (docs/design.md, "Input pipeline"):

- `"image"`: one example per image. Features `{"image", "tokens"}` (all comments
  joined in order, truncated/padded to `max_len`); labels `{"distribution"}`
  (normalised votes). A record without votes would give an all-zero target; this
  cannot reach training: the writer keeps votes all or nothing (`missing_votes`,
  `no_votes` rejections) and `tfaesthetic.config.validate` refuses MRACNN on
  records whose manifest says `has_votes: false`.
- `"review"`: one example per review with a rating (s_uv != -1); the image is
  decoded once per record, then expanded. Features `{"image", "image_index",
  "user_index", "review"}`; labels `{"user_rating", "tag", "agnostic_rating"}`.
  Anonymous users (-1 in the records) get index `num_users`, the models' extra
  out-of-vocabulary row. `agnostic_rating` is -1 when the record has no votes.

Metadata (when asked): `{"image_id", "tag"}` (primary tag, -1 for none).
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from tfaesthetic import features as features_lib
from tfaesthetic import text as text_lib

IMAGE_MODE_FEATURES = ("image", "tokens")
REVIEW_MODE_FEATURES = ("image", "image_index", "user_index", "review")
MODES = {"image": IMAGE_MODE_FEATURES, "review": REVIEW_MODE_FEATURES}


def decode_image(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded bytes (JPEG/PNG/GIF/BMP/WebP) -> float32 RGB `[S, S, 3]` in [0, 255].

    Grayscale is replicated to three channels, an alpha channel is dropped,
    animations keep their first frame. Any size and aspect ratio is resized (not
    cropped) to `image_size` x `image_size`, bilinear, antialiased when shrinking.

    Args:
        encoded: a scalar string tensor.
        image_size: the output side.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    image = tf.cast(image, tf.float32)
    size = [image_size, image_size]
    shape = tf.shape(image)
    # Antialiasing only matters when shrinking, and its kernel is ~6x slower than
    # plain bilinear: use it only then.
    shrinking = tf.logical_or(shape[0] > image_size, shape[1] > image_size)
    same = tf.logical_and(tf.equal(shape[0], image_size), tf.equal(shape[1], image_size))
    image = tf.cond(
        same,
        lambda: image,
        lambda: tf.cond(
            shrinking,
            lambda: tf.image.resize(image, size, antialias=True),
            lambda: tf.image.resize(image, size),
        ),
    )
    image.set_shape([image_size, image_size, 3])
    # Interpolation is a convex combination, but float rounding can pass 255 by an ulp.
    return tf.clip_by_value(image, 0.0, 255.0)


def join_tokens(comment_tokens: tf.RaggedTensor, max_len: int) -> tf.Tensor:
    """All comments' token ids in order, truncated/padded to int32 `[max_len]`."""
    flat = comment_tokens.flat_values[:max_len]
    flat = tf.pad(flat, [[0, max_len - tf.shape(flat)[0]]], constant_values=features_lib.PAD_ID)
    flat.set_shape([max_len])
    return tf.cast(flat, tf.int32)


#: Parts of the warm protocol (index = the value `warm_part_of` returns).
WARM_PARTS = ("train", "val", "test")
#: Percent of the eligible reviews of training images held out for val and for test.
WARM_HOLDOUT_PERCENT = 10


def warm_part_of(image_index: tf.Tensor, users: tf.Tensor) -> tf.Tensor:
    """The warm-protocol part (0 train, 1 val, 2 test) of each rated review of one image.

    The warm protocol holds out reviews of *seen* images: the image stays in training
    with another user's review. The first rated review of an image always stays in
    training; a later one is eligible when its user differs from that first
    review's user, and a deterministic hash of (image index, user) puts
    `WARM_HOLDOUT_PERCENT`% of the eligible reviews in val and as many in test. So
    every held-out image has a training review by another user, and a
    (user, image) pair is never in two parts.

    Args:
        image_index: int scalar, the record's image index.
        users: int `[R]`, the users of its rated reviews (in record order).

    Returns:
        int32 `[R]` in {0, 1, 2}.
    """
    users = tf.cast(users, tf.int64)
    n = tf.shape(users)[0]
    first_user = tf.cond(n > 0, lambda: users[0], lambda: tf.constant(-2, tf.int64))
    eligible = tf.logical_and(tf.range(n) > 0, tf.not_equal(users, first_user))
    # Knuth multiplicative hashing of the pair, kept in 31 bits.
    key = (tf.cast(image_index, tf.int64) * 2654435761 + (users + 7) * 40503) % 2147483647
    bucket = tf.cast(key % 100, tf.int32)
    part = tf.where(bucket < WARM_HOLDOUT_PERCENT, 1, tf.where(bucket < 2 * WARM_HOLDOUT_PERCENT, 2, 0))
    return tf.where(eligible, part, 0)


class Parser:
    """Turns decoder output into `(features, labels, metadata)`.

    Args:
        mode: "image" or "review".
        features: the feature keys to yield (a subset of `MODES[mode]`).
        image_size: side of the square output image.
        max_len: tokens per example after padding/truncation.
        num_bins: number of score bins (from the manifest).
        score_values: the score value of each bin (for the mean score).
        threshold: an image is good when its mean score is strictly above this.
        num_users: number of users; anonymous users map to this index.
        augment: random horizontal flip on the training branch.
        vocabulary: when given, token ids are recomputed from the raw comment text
            with `tfaesthetic.text.tokenize` (e.g. a vocabulary other than the
            records'); otherwise the records' token ids are used.
        seed: augmentation seed.
        warm_part: mode "review" only. None (default): every rated review of the
            records read (the "cold" protocol: val/test are other images). "train",
            "val" or "test": the "warm" protocol on the *training* records, see
            `warm_part_of`: "train" keeps the reviews not held out, "val"/"test" the
            held-out reviews of seen images.
    """

    def __init__(
        self,
        *,
        mode: str,
        features: Sequence[str],
        image_size: int,
        max_len: int,
        num_bins: int,
        score_values: Sequence[float],
        threshold: float,
        num_users: int = 0,
        augment: bool = True,
        vocabulary: Optional[text_lib.Vocabulary] = None,
        seed: Optional[int] = None,
        warm_part: Optional[str] = None,
    ):
        if warm_part not in (None, "train", "val", "test"):
            raise ValueError(f"Expected warm_part in (None, 'train', 'val', 'test'). Received: warm_part={warm_part!r}")
        if mode not in MODES:
            raise ValueError(f"Expected mode in {tuple(MODES)}. Received: mode={mode!r}")
        features = tuple(features)
        unknown = [f for f in features if f not in MODES[mode]]
        if unknown or not features:
            raise ValueError(
                f"Expected features from {MODES[mode]} in mode {mode!r}. Received: features={features!r}"
            )
        if len(score_values) != num_bins:
            raise ValueError(
                f"Expected {num_bins} score values. Received: len(score_values)={len(score_values)}"
            )
        self.mode = mode
        self.features = features
        self.image_size = int(image_size)
        self.max_len = int(max_len)
        self.num_bins = int(num_bins)
        self.score_values = tuple(float(v) for v in score_values)
        self.threshold = float(threshold)
        self.num_users = int(num_users)
        self.augment = augment
        self.vocabulary = vocabulary
        self.seed = seed
        self.warm_part = warm_part

    def decoder_outputs(self) -> tuple:
        """The `Decoder` outputs `parse_image` reads (the rest need not be parsed)."""
        keys = ["image_id", "votes", "tags"]
        keys.append("comment_text" if self.vocabulary is not None else "comment_tokens")
        if "image" in self.features:
            keys.append("encoded")
        if self.mode == "review":
            keys += ["image_index", "comment_user", "comment_rating"]
        return tuple(keys)

    # --- per-image, deterministic -------------------------------------------------

    def _tokens(self, raw):
        if self.vocabulary is not None:
            return text_lib.tokenize(raw["comment_text"], self.vocabulary)
        return raw["comment_tokens"]

    def _distribution(self, votes):
        # Records without votes (0 values) give zeros (never trained on: see the module
        # docstring); the writer guarantees num_bins values otherwise.
        votes = tf.cast(votes[: self.num_bins], tf.float32)
        votes = tf.pad(votes, [[0, self.num_bins - tf.shape(votes)[0]]])
        votes.set_shape([self.num_bins])
        return tf.math.divide_no_nan(votes, tf.reduce_sum(votes))

    def _primary_tag(self, tags):
        return tf.cast(tf.concat([tags, tf.constant([features_lib.NO_TAG], tf.int64)], 0)[0], tf.int32)

    def parse_image(self, raw: dict) -> dict:
        """Per-record deterministic parse (safe to cache): decode image, labels, tokens."""
        out = {}
        if "image" in self.features:
            out["image"] = decode_image(raw["encoded"], self.image_size)
        dist = self._distribution(raw["votes"])
        out["_distribution"] = dist
        out["_image_id"] = raw["image_id"]
        out["_tag"] = self._primary_tag(raw["tags"])
        tokens = self._tokens(raw)
        if self.mode == "image":
            out["tokens"] = join_tokens(tokens, self.max_len)
        else:
            has_votes = tf.reduce_sum(dist) > 0
            mean = tf.reduce_sum(dist * tf.constant(self.score_values, tf.float32))
            out["_agnostic"] = tf.where(has_votes, tf.cast(mean > self.threshold, tf.float32), -1.0)
            keep = tf.not_equal(raw["comment_rating"], features_lib.NO_RATING)
            out["_reviews"] = tf.boolean_mask(text_lib.pad_tokens(tokens, self.max_len), keep)
            users = tf.boolean_mask(raw["comment_user"], keep)
            users = tf.where(users < 0, tf.cast(self.num_users, users.dtype), users)
            out["_users"] = tf.cast(users, tf.int32)
            out["_ratings"] = tf.cast(tf.boolean_mask(raw["comment_rating"], keep), tf.float32)
            out["image_index"] = tf.cast(raw["image_index"], tf.int32)
        return out

    # --- training branch -----------------------------------------------------------

    def augment_image(self, parsed: dict) -> dict:
        """Training-only augmentation: a random horizontal flip."""
        if not self.augment or "image" not in parsed:
            return parsed
        parsed = dict(parsed)
        parsed["image"] = tf.image.random_flip_left_right(parsed["image"], seed=self.seed)
        return parsed

    # --- outputs ---------------------------------------------------------------------

    def image_example(self, parsed: dict):
        """Mode "image": `(features, labels, metadata)` of one image."""
        feats = {k: parsed[k] for k in self.features}
        labels = {"distribution": parsed["_distribution"]}
        metadata = {"image_id": parsed["_image_id"], "tag": parsed["_tag"]}
        return feats, labels, metadata

    def review_examples(self, parsed: dict) -> tf.data.Dataset:
        """Mode "review": a dataset of `(features, labels, metadata)`, one per review.

        The decoded image is shared by all the reviews of the record (not copied).
        """
        shared = {"image_index": parsed["image_index"], "_agnostic": parsed["_agnostic"]}
        shared["_image_id"] = parsed["_image_id"]
        shared["_tag"] = parsed["_tag"]
        if "image" in parsed:
            shared["image"] = parsed["image"]
        per_review = {"review": parsed["_reviews"], "user_index": parsed["_users"], "rating": parsed["_ratings"]}
        if self.warm_part is not None:
            keep = tf.equal(warm_part_of(parsed["image_index"], parsed["_users"]), WARM_PARTS.index(self.warm_part))
            per_review = {k: tf.boolean_mask(v, keep) for k, v in per_review.items()}
        reviews = tf.data.Dataset.from_tensor_slices(per_review)
        images = tf.data.Dataset.from_tensors(shared).repeat()
        return tf.data.Dataset.zip((images, reviews)).map(self._review_example)

    def _review_example(self, shared, review):
        available = {
            "image_index": shared["image_index"],
            "user_index": review["user_index"],
            "review": review["review"],
        }
        if "image" in shared:
            available["image"] = shared["image"]
        feats = {k: available[k] for k in self.features}
        labels = {
            "user_rating": review["rating"],
            "tag": shared["_tag"],
            "agnostic_rating": shared["_agnostic"],
        }
        metadata = {"image_id": shared["_image_id"], "tag": shared["_tag"]}
        return feats, labels, metadata
