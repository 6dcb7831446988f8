"""Parser: raw decoded tensors -> model inputs and labels; the train/eval branch.

This is the only module that augments, and only on the training branch (a random
horizontal flip: it keeps the composition, which aesthetics depends on, so no
crops). Images of any size, aspect ratio and channel count (grayscale, RGB, RGBA)
become RGB `[image_size, image_size, 3]` in [0, 255]: `uint8` on the training
branch (4x fewer bytes to shuffle, batch and copy to the device), float32 on the
evaluation branch (what serving feeds); each model casts and normalises inside
itself. Images over the pixel budget (`MAX_PIXELS`, read from the header) are
refused before decoding.

Two modes (docs/design.md, "Input pipeline"):

- `"image"`: one example per image. Features `{"image", "tokens"}` (all comments
  joined in order, truncated/padded to `max_len`); labels `{"distribution"}`
  (normalised votes). A record without votes would give an all-zero target; this
  cannot reach training: the writer keeps votes all or nothing (`missing_votes`,
  `no_votes` rejections) and `tfaesthetic.config.validate` refuses MRACNN on
  records whose manifest says `has_votes: false`.
- `"review"`: one example per review with a rating (s_uv != -1); the image is
  decoded once per record, then expanded. Features `{"image", "image_index",
  "user_index", "review"}`; labels `{"user_rating", "tag", "agnostic_rating",
  "agnostic_share"}`. Anonymous users (-1 in the records) get index `num_users`, the
  models' extra out-of-vocabulary row. `agnostic_rating` is 1 when the mean score is
  above the threshold (seed 000's user-agnostic label); `agnostic_share` is the share
  of the votes above the threshold, in [0, 1] (a soft form of the same label, which
  CFAN's `agnostic_target="share"` trains on). Both are -1 when the record has no votes.

Metadata (when asked): `{"image_id", "tag"}` (primary tag, -1 for none).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfaesthetic import features as features_lib
from tfaesthetic import images as images_lib
from tfaesthetic import text as text_lib

IMAGE_MODE_FEATURES = ("image", "tokens")
REVIEW_MODE_FEATURES = ("image", "image_index", "user_index", "review")
MODES = {"image": IMAGE_MODE_FEATURES, "review": REVIEW_MODE_FEATURES}


#: The pixel budget: the most pixels (width x height, read from the image header
#: before anything is decoded) that one image may have: 50 megapixels. A small file
#: can decode to gigabytes (a 20000 x 20000 PNG is 1.2 MB on disk, 1.2 GB of RGB), so
#: the training parser (`Parser(max_pixels=...)`) and the serving graph
#: (`tfaesthetic.serving.export`) refuse larger images before decoding, and the records
#: builders reject them (the same figure).
MAX_PIXELS = images_lib.DEFAULT_MAX_PIXELS

# Format codes of `image_format` (0: none of the formats `tf.io.decode_image` reads).
UNKNOWN, JPEG, PNG, GIF, BMP, WEBP = 0, 1, 2, 3, 4, 5
_HEAD = 32  # header bytes `image_shape` reads (WebP needs 30)

# JPEG DCT-domain downscaling factors (`tf.io.decode_jpeg(ratio=)`), largest first.
_JPEG_RATIOS = (8, 4, 2)


def _head_bytes(encoded: tf.Tensor) -> tf.Tensor:
    """The first `_HEAD` bytes of a scalar string as int64 `[_HEAD]` (zero padded)."""
    head = tf.strings.substr(tf.strings.join([encoded, b"\0" * _HEAD]), 0, _HEAD)
    return tf.cast(tf.reshape(tf.io.decode_raw(head, tf.uint8), [_HEAD]), tf.int64)


def image_format(encoded: tf.Tensor) -> tf.Tensor:
    """Format code (`JPEG`, `PNG`, `GIF`, `BMP`, `WEBP`, or `UNKNOWN`) of a scalar string, from its signature."""
    head = tf.strings.substr(tf.strings.join([encoded, b"\0" * 12]), 0, 12)
    codes = tf.constant(UNKNOWN, tf.int32)
    for code, magic in ((BMP, b"BM"), (GIF, b"GIF8"), (PNG, b"\x89PNG\r\n\x1a\n"), (JPEG, b"\xff\xd8\xff")):
        codes = tf.where(tf.equal(tf.strings.substr(head, 0, len(magic)), magic), code, codes)
    webp = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"), tf.equal(tf.strings.substr(head, 8, 4), b"WEBP"))
    return tf.where(webp, WEBP, codes)


def _header_table():
    """Linear maps from header bytes to the `[height, width]` rows of `image_shape` (see there).

    Inputs `e` = the first `_HEAD` bytes, then five bit fields: b22 & 0x3F, b22 >> 6,
    b24 & 0x0F, b27 & 0x3F, b29 & 0x3F (WebP's 14-bit sizes). Rows: 0 unknown, 1 JPEG
    (filled in separately), 2 PNG, 3 GIF, 4 BMP info header, 5 BMP core header,
    6 WebP VP8X, 7 WebP VP8L, 8 WebP VP8.
    """
    n = _HEAD + 5
    rows = np.zeros([9, 2, n], np.float64)
    offsets = np.zeros([9, 2], np.float64)
    x22lo, x22hi, x24lo, x27lo, x29lo = range(_HEAD, _HEAD + 5)

    def put(row, col, terms, offset=0):
        for index, weight in terms:
            rows[row, col, index] = weight
        offsets[row, col] = offset

    def be(start, count):
        return [(start + k, 256.0 ** (count - 1 - k)) for k in range(count)]

    def le(start, count):
        return [(start + k, 256.0**k) for k in range(count)]

    offsets[0] = -1
    put(2, 0, be(20, 4)); put(2, 1, be(16, 4))  # PNG IHDR: width, height (big-endian)
    put(3, 0, le(8, 2)); put(3, 1, le(6, 2))  # GIF logical screen
    put(4, 0, le(22, 4)); put(4, 1, le(18, 4))  # BMP info header (signed: see image_shape)
    put(5, 0, le(20, 2)); put(5, 1, le(18, 2))  # BMP core header (16-bit)
    put(6, 0, le(27, 3), 1); put(6, 1, le(24, 3), 1)  # WebP VP8X: 24-bit size - 1
    put(7, 0, [(x22hi, 1), (23, 4), (x24lo, 1024)], 1)  # WebP VP8L: 14-bit fields - 1
    put(7, 1, [(21, 1), (x22lo, 256)], 1)
    put(8, 0, [(28, 1), (x29lo, 256)]); put(8, 1, [(26, 1), (x27lo, 256)])  # WebP VP8: 14-bit
    return rows.reshape([18, n]), offsets.reshape([18])


_HEADER_ROWS, _HEADER_OFFSETS = _header_table()
# A valid 1x1 JPEG: `extract_jpeg_shape` reads it in place of non-JPEG bytes, so that
# the JPEG header needs no control flow (branches are costly per tf.data element).
_ONE_PIXEL_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e1d1a1c1c"
    "20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b080001000101011100ffc4001f000001050101010101010000"
    "0000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191"
    "a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a73"
    "7475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9"
    "dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9"
)


def image_shape(encoded: tf.Tensor, fmt: Optional[tf.Tensor] = None) -> tf.Tensor:
    """`[height, width]` int64 of a scalar encoded image, read from its header without decoding.

    JPEG: `tf.image.extract_jpeg_shape` (reads the frame header only; fails, like the
    decoder, on a corrupt JPEG header). PNG (IHDR), GIF (logical screen), BMP (info
    header; negative heights are top-down images; or the OS/2 core header) and WebP
    (VP8X / VP8L / VP8 frame headers) are read at fixed offsets with
    `tf.strings.substr` + `tf.io.decode_raw`, as one small linear map (no branches:
    this runs once per training example). Memory and time do not depend on the pixel
    count. `[-1, -1]` when the format is unknown (the decoder then decides).

    Args:
        encoded: a scalar string tensor.
        fmt: its `image_format` code when the caller has it already.
    """
    fmt = image_format(encoded) if fmt is None else fmt
    b = _head_bytes(encoded)
    fields = tf.gather(b, [22, 22, 24, 27, 29])
    fields = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(fields, tf.constant([0, 6, 0, 0, 0], tf.int64)),
        tf.constant([0x3F, 0x03, 0x0F, 0x3F, 0x3F], tf.int64),
    )
    e = tf.cast(tf.concat([b, fields], 0), tf.float64)
    table = tf.linalg.matvec(tf.constant(_HEADER_ROWS), e) + tf.constant(_HEADER_OFFSETS)
    table = tf.cast(table, tf.int64)
    table = tf.where(table >= 2**31, 2**32 - table, table)  # BMP: |signed 32-bit|
    table = tf.reshape(table, [9, 2])
    is_jpeg = tf.equal(fmt, JPEG)
    jpeg = tf.image.extract_jpeg_shape(tf.where(is_jpeg, encoded, tf.constant(_ONE_PIXEL_JPEG)))[:2]
    core = tf.cast(tf.equal(b[14], 12), tf.int32)  # BMP header size 12: OS/2 core header
    webp = tf.where(tf.equal(b[15], 0x58), 0, tf.where(tf.equal(b[15], 0x4C), 1, tf.where(tf.equal(b[15], 0x20), 2, -1)))
    row = tf.gather(tf.constant([0, 1, 2, 3, 4, 6], tf.int32), fmt)
    row = row + tf.where(tf.equal(fmt, BMP), core, 0) + tf.where(tf.equal(fmt, WEBP), webp, 0)
    row = tf.where(row < 0, 0, row)  # a WebP with an unknown first chunk
    shape = tf.where(is_jpeg, tf.cast(jpeg, tf.int64), tf.gather(table, row))
    shape.set_shape([2])
    return shape


def check_pixel_budget(
    encoded: tf.Tensor, max_pixels: int = MAX_PIXELS, what="an image", shape: Optional[tf.Tensor] = None
) -> tf.Tensor:
    """Returns `encoded` once its header says at most `max_pixels` pixels; fails naming `what` otherwise.

    Args:
        encoded: a scalar string tensor.
        max_pixels: the budget (`MAX_PIXELS`); 0 or None turns the check off.
        what: a string or scalar string tensor naming the image in the message
            (the training parser passes the record's image id).
        shape: its `image_shape` when the caller has it already.
    """
    if not max_pixels:
        return encoded
    shape = image_shape(encoded) if shape is None else shape
    pixels = shape[0] * shape[1]
    # Raw data, not a formatted string: the Assert formats it only when it fails (this
    # runs once per training example).
    assertion = tf.debugging.Assert(
        pixels <= int(max_pixels),
        [
            "Image", what, "has", shape[1], "x", shape[0],
            f"pixels (width x height, from its header), over the pixel budget of {int(max_pixels)} "
            "(tfaesthetic.data.parser.MAX_PIXELS); it was not decoded. Rebuild the records (the builders "
            "reject such images) or pass a larger max_pixels.",
        ],
        name="check_pixel_budget",
    )
    with tf.control_dependencies([assertion]):
        return tf.identity(encoded)


def decode_image(
    encoded: tf.Tensor,
    image_size: int,
    *,
    dtype=tf.float32,
    shape: Optional[tf.Tensor] = None,
    fmt: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Encoded bytes (JPEG/PNG/GIF/BMP/WebP) -> RGB `[S, S, 3]` pixels in [0, 255].

    Grayscale is replicated to three channels, an alpha channel is dropped,
    animations keep their first frame. Any size and aspect ratio is resized (not
    cropped) to `image_size` x `image_size`, bilinear, antialiased when shrinking.
    A JPEG at least twice `image_size` on its short side is decoded at 1/2, 1/4 or
    1/8 of its size (libjpeg's DCT-domain scaling, `decode_jpeg(ratio=)`: 2-8x less
    decoding work), never below `image_size`, and then resized as above.

    Args:
        encoded: a scalar string tensor.
        image_size: the output side.
        dtype: `tf.float32` (the evaluation branch and serving) or `tf.uint8` (the
            training branch: resized pixels rounded to the nearest grey level, 4x
            fewer bytes through shuffling, batching and prefetching; the model casts
            them on its device).
        shape: the `[height, width]` from `image_shape(encoded)` when the caller has
            it already.
        fmt: its `image_format` code when the caller has it already.
    """
    dtype = tf.as_dtype(dtype)
    if dtype not in (tf.float32, tf.uint8):
        raise ValueError(f"Expected dtype float32 or uint8. Received: dtype={dtype.name}")
    fmt = image_format(encoded) if fmt is None else fmt
    if shape is None:
        shape = image_shape(encoded, fmt)
    short_side = tf.minimum(shape[0], shape[1])
    # Branch 0: the generic decoder; branch k: JPEG at 1/_JPEG_RATIOS[k - 1].
    branch = tf.constant(0, tf.int32)
    for k, ratio in reversed(list(enumerate(_JPEG_RATIOS, 1))):
        branch = tf.where(short_side >= ratio * image_size, k, branch)
    branch = tf.where(tf.equal(fmt, JPEG), branch, 0)

    def generic():
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)

    def scaled(ratio):
        return lambda: tf.io.decode_jpeg(encoded, channels=3, ratio=ratio)

    image = tf.switch_case(branch, [generic] + [scaled(r) for r in _JPEG_RATIOS])
    image.set_shape([None, None, 3])
    size = [image_size, image_size]
    decoded = tf.shape(image)
    same = tf.logical_and(tf.equal(decoded[0], image_size), tf.equal(decoded[1], image_size))
    # Antialiasing only matters when shrinking, and its kernel is ~6x slower than
    # plain bilinear: use it only then.
    shrinking = tf.logical_or(decoded[0] > image_size, decoded[1] > image_size)

    def resized():
        pixels = tf.cast(image, tf.float32)
        pixels = tf.cond(
            shrinking,
            lambda: tf.image.resize(pixels, size, antialias=True),
            lambda: tf.image.resize(pixels, size),
        )
        # Interpolation is a convex combination, but float rounding can pass 255 by an ulp.
        pixels = tf.clip_by_value(pixels, 0.0, 255.0)
        if dtype == tf.uint8:
            pixels = tf.cast(tf.round(pixels), tf.uint8)
        return pixels

    out = tf.cond(same, lambda: tf.cast(image, dtype), resized)
    out.set_shape([image_size, image_size, 3])
    return out


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
        max_pixels: the pixel budget (`MAX_PIXELS`), checked from each image's
            header before decoding; a record over it stops the pipeline with an
            `InvalidArgumentError` naming its image id (the builders reject such
            images, so only records written before the budget can hold one).
            0 turns the check off.
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
        max_pixels: int = MAX_PIXELS,
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
        self.max_pixels = int(max_pixels or 0)

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

    def parse_image(self, raw: dict, training: bool = False) -> dict:
        """Per-record deterministic parse (safe to cache): decode image, labels, tokens.

        Args:
            raw: the `Decoder` outputs of one record.
            training: the training branch gives `uint8` pixels (see `decode_image`),
                the evaluation branch float32 (what serving feeds the model).
        """
        out = {}
        if "image" in self.features:
            encoded = raw["encoded"]
            fmt = image_format(encoded)
            shape = image_shape(encoded, fmt)
            encoded = check_pixel_budget(encoded, self.max_pixels, what=raw["image_id"], shape=shape)
            dtype = tf.uint8 if training else tf.float32
            out["image"] = decode_image(encoded, self.image_size, dtype=dtype, shape=shape, fmt=fmt)
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
            above = tf.cast(tf.constant(self.score_values, tf.float32) > self.threshold, tf.float32)
            out["_agnostic_share"] = tf.where(has_votes, tf.reduce_sum(dist * above), -1.0)
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
        shared = {k: parsed[k] for k in ("image_index", "_agnostic", "_agnostic_share")}
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
            "agnostic_share": shared["_agnostic_share"],
        }
        metadata = {"image_id": shared["_image_id"], "tag": shared["_tag"]}
        return feats, labels, metadata
