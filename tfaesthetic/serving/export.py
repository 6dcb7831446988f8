"""SavedModel export for TF Serving: raw-input and tensor signatures (SPEC §5).

`export_model(model, records_dir, export_base, model_name=...)` writes
`<export_base>/<model_name>/<version>/` with `keras.export.ExportArchive` and two
explicit signatures:

- `serving_default` (**raw inputs**): `image_bytes` (string `[None]`, encoded
  JPEG/PNG/GIF/BMP/WebP, the original file bytes), `comments` (string `[None]`: all the
  comments of one image in one string, separated by newlines, or one review for
  CFAN), and for CFAN `user_id` (string `[None]`, the ids of `users.tsv`) and
  `image_id` (string `[None]`, the ids of `images.tsv`). Images are decoded and
  resized in-graph with `tfaesthetic.data.parser`'s eval-branch function and
  comments are tokenised with `tfaesthetic.text.tokenize` (the functions the
  records writer and the input pipeline use, so train and serve cannot skew). The
  vocabulary and the user / image id maps travel inside the SavedModel as lookup
  tables; an unknown id maps to the model's out-of-vocabulary row.
- `serve_tensors` (**preprocessed inputs**): the model's own inputs (`image`
  float32 `[None, S, S, 3]` pixels in [0, 255], `tokens` int32 `[None, max_len]`,
  or for CFAN `image`, `image_index`, `user_index`, `review`).

Both return the same named outputs:

- score-distribution models (MRACNN): `distribution` `[B, num_bins]`,
  `mean_score` `[B]` (sum_i s_i p_i with the manifest's bin values s_i), `label`
  `[B]` int32 (1 when `mean_score` > the manifest threshold) and `attention`
  (`[B, T, h, w]`, absent for variants without attention).
- models with a text stream also return `has_comment` `[B]` int32 (0 when the
  comment / review was empty, i.e. all padding).
- CFAN: `user_rating` `[B]` (the personalised probability that the user rates the
  image good), `agnostic_rating` `[B]`, `label` `[B]` int32 (1 when
  `agnostic_rating` > 0.5), `known_user` `[B]` int32, `tag` `[B, num_tags]` and
  `attention` `[B, h, w]` (heads present per variant). An unknown `user_id` falls
  back to the user-agnostic prediction, `user_rating = agnostic_rating` (the model
  does this itself when called with `training=False`, as here). BPR / VBPR
  and CFAN variants without the agnostic head: `user_rating`, `known_user` and
  `label` = 1 when `user_rating` > 0.5 (their unknown users use the OOV user row).
  Outputs that only serve training (BPR's `pair_logit`) are not exported.

Bad inputs at serving time (documented in README.md, "Serving", and tested):

- bytes that are not an encoded image (no JPEG/PNG/GIF/BMP/WebP signature, or empty),
  and truncated JPEG / PNG files (a JPEG must end with its FF D9 end-of-image marker,
  up to 254 trailing zero bytes allowed; a PNG must hold its IEND chunk in its last
  256 bytes), images over the pixel budget (`tfaesthetic.data.parser.MAX_PIXELS`, 50
  megapixels, width x height read from the header: such an image is never decoded) and
  bytes the decoder fails on (e.g. random data behind JPEG markers) fail the request
  with `InvalidArgumentError` whose message starts with `image_bytes:` and gives the
  batch positions at fault. (A JPEG with other data appended after its end marker,
  e.g. a phone's "motion photo", is refused too: send the image part only.);
- inputs of different lengths (3 images and 1 comments string, 1 image and 3, a CFAN
  request with fewer user ids than images) fail with `InvalidArgumentError`
  "serving inputs: ... Received lengths: image_bytes = 3, comments = 1": nothing is
  broadcast. A batch of 0 returns outputs with 0 rows;
- `user_id` and `image_id` are normalised as the records builders store ids
  (Unicode NFC, surrounding whitespace stripped), so `" u1 "` is user `u1`;
- an empty comment (or one with no letters or digits) tokenises to all-padding
  tokens, exactly what the input pipeline produces for an image without comments,
  and the output `has_comment` is 0 for that row. MRACNN's Text-CNN then gives its
  learned "no comment" vector, so the prediction still depends on the image under
  every fusion; CFAN takes its no-review path (the user's learned taste profile
  stands in for the review).

Besides the SavedModel, `export_model` writes `<version>/assets.extra/tfaesthetic.json`
(inputs, outputs, score scale, id-map sizes and the bad-input rules) and
`<export_base>/models.config` listing every model under `export_base`.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import shutil
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfaesthetic import config as config_lib
from tfaesthetic import features
from tfaesthetic import io
from tfaesthetic import images as images_lib
from tfaesthetic import text
from tfaesthetic.data import parser
from tfaesthetic.records import writer

RAW_SIGNATURE = "serving_default"
TENSOR_SIGNATURE = "serve_tensors"
SIDECAR = os.path.join("assets.extra", "tfaesthetic.json")
MODELS_CONFIG = "models.config"

_VERSION_RE = re.compile(r"^[0-9]+$")




def read_manifest_and_dir(records_dir_or_manifest) -> tuple[dict, str]:
    """Reads `manifest.json` from a records directory (or its path).

    Args:
        records_dir_or_manifest: the records directory, or the path of its
            `manifest.json` (vocab.txt and users.tsv are read beside it).

    Returns:
        `(manifest, records_dir)`.
    """
    path = os.fspath(records_dir_or_manifest)
    if os.path.isdir(path):
        records_dir, manifest_path = path, os.path.join(path, writer.MANIFEST)
    else:
        records_dir, manifest_path = os.path.dirname(path) or ".", path
    if os.path.basename(manifest_path) != writer.MANIFEST or not os.path.exists(manifest_path):
        raise FileNotFoundError(
            f"Expected a records directory holding {writer.MANIFEST}, or the path of that file. "
            f"Received: records_dir_or_manifest={path!r} ({manifest_path} does not exist)"
        )
    return writer.read_manifest(records_dir), records_dir


def _read_id_map(path: str) -> list:
    """Reads `users.tsv` / `images.tsv` (`index<TAB>id[<TAB>split]`) into the ids in index order."""
    if not os.path.exists(path):
        return []
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) < 2 or not fields[0].strip().isdigit():
                raise ValueError(f"Expected 'index<TAB>id[<TAB>...]' lines in {path}. Received line {line_no}: {line!r}")
            pairs.append((int(fields[0]), fields[1]))
    pairs.sort()
    for expected, (index, _) in enumerate(pairs):
        if index != expected:
            raise ValueError(f"Expected dense 0-based indices in {path}. Received index {index} at position {expected}")
    return [ident for _, ident in pairs]


class IdLookup(tf.Module):
    """String id -> dense int32 index, unknown ids -> `oov_index` (a trackable table).

    Args:
        ids: the ids in index order (`users.tsv` / `images.tsv`).
        oov_index: the index returned for unknown ids (the models' extra row,
            `num_users` / `num_images`).
        name: module name.
    """

    def __init__(self, ids, oov_index: int, name: Optional[str] = None):
        super().__init__(name=name)
        self.ids = list(ids)
        self.oov_index = int(oov_index)
        keys = tf.constant(self.ids if self.ids else ["\x00unused"], tf.string)
        values = tf.range(len(self.ids), dtype=tf.int64) if self.ids else tf.constant([self.oov_index], tf.int64)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, values), default_value=tf.constant(self.oov_index, tf.int64)
        )

    def __call__(self, ids: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.table.lookup(ids), tf.int32)


def _assert(condition, template: str, values, name: str):
    """`tf.debugging.Assert` with one formatted message line (eager and graph alike)."""
    message = tf.strings.format(template, values, summarize=64) if values else tf.constant(template)
    return tf.debugging.Assert(condition, [message], name=name)


def check_batch_lengths(named: dict) -> dict:
    """Fails with INVALID_ARGUMENT naming every input and its length unless all have the same length.

    One value per example in every input: for MRACNN one comments string (all the
    image's comments, newline-separated) per image, for CFAN one review, one user id
    and one image id per image. Nothing is broadcast: 3 images with 1 comment is
    refused, not answered with the comment repeated.

    Args:
        named: input name -> tensor `[B, ...]`, in signature order.

    Returns:
        The same dict, every tensor with the check as a control dependency.
    """
    names = list(named)
    if len(names) < 2:
        return dict(named)
    lengths = [tf.shape(named[n])[0] for n in names]
    same = tf.reduce_all(tf.equal(tf.stack(lengths), lengths[0]))
    template = (
        "serving inputs: every input needs one value per example (for comments: exactly one string per image, "
        "all of its comments joined by newlines). Received lengths: " + ", ".join(f"{n} = {{}}" for n in names)
    )
    assertion = _assert(same, template, lengths, "check_batch_lengths")
    with tf.control_dependencies([assertion]):
        return {n: tf.identity(named[n]) for n in names}


def decode_checked_images(image_bytes: tf.Tensor, image_size: int, max_pixels: int = parser.MAX_PIXELS) -> tf.Tensor:
    """Encoded bytes `[B]` -> float32 `[B, S, S, 3]`, refusing what cannot or must not be decoded.

    Each element's header is read first (`parser.image_shape`): an image over
    `max_pixels` is never decoded. The others are decoded in parallel with
    `parser.decode_image` (the input pipeline's evaluation branch); a decoder failure
    (e.g. random bytes behind JPEG markers) does not surface as the decoder's own
    message but as the documented `image_bytes: ... batch positions [...]`
    InvalidArgumentError, as do images over the budget. Run after
    `check_image_bytes` (signature and end-of-file rules).

    Args:
        image_bytes: string `[B]`.
        image_size: the model's input side.
        max_pixels: the pixel budget (`parser.MAX_PIXELS`); 0 turns it off.
    """
    size = int(image_size)
    budget = int(max_pixels or 0)
    n = tf.shape(image_bytes, out_type=tf.int64)[0]

    def one(position, encoded):
        fmt = parser.image_format(encoded)
        shape = parser.image_shape(encoded, fmt)  # a corrupt JPEG header fails here: reported below
        over = tf.logical_and(tf.constant(budget > 0), shape[0] * shape[1] > budget)
        image = tf.cond(
            over,
            lambda: tf.zeros([size, size, 3], tf.float32),
            lambda: parser.decode_image(encoded, size, shape=shape, fmt=fmt),
        )
        return position, over, shape, image

    decoded = tf.data.Dataset.from_tensor_slices((tf.range(n), image_bytes))
    decoded = decoded.map(one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    # A last sentinel element makes the one batch exist even when every element failed (or B = 0).
    sentinel = tf.data.Dataset.from_tensors(
        (tf.constant(-1, tf.int64), tf.constant(False), tf.constant([0, 0], tf.int64), tf.zeros([size, size, 3]))
    )
    positions, over, shapes, images = decoded.concatenate(sentinel).batch(n + 1).get_single_element()
    positions, over, shapes, images = positions[:-1], over[:-1], shapes[:-1], images[:-1]
    too_big = tf.boolean_mask(positions, over)
    budget_check = _assert(
        tf.equal(tf.size(too_big), 0),
        f"image_bytes: images over the pixel budget of {budget} pixels (width x height read from the header; "
        "they were not decoded). Received them at batch positions {}; their [height, width]: {}",
        [too_big, tf.boolean_mask(shapes, over)],
        "check_pixel_budget",
    )
    found = tf.scatter_nd(positions[:, None], tf.ones_like(positions, tf.int32), tf.reshape(n, [1]))
    failed = tf.reshape(tf.where(tf.equal(found, 0)), [-1])
    decode_check = _assert(
        tf.equal(tf.size(failed), 0),
        "image_bytes: expected complete encoded JPEG, PNG, GIF, BMP or WebP bytes (the original file). "
        "Received bytes the image decoder refused (corrupt image data) at batch positions {}",
        [failed],
        "check_image_decoding",
    )
    with tf.control_dependencies([budget_check, decode_check]):
        return tf.identity(images)


def _spec_of(tensor, name: str) -> tf.TensorSpec:
    shape = tuple(tensor.shape)
    return tf.TensorSpec((None,) + tuple(shape[1:]), tf.as_dtype(keras.backend.standardize_dtype(tensor.dtype)), name=name)


def _model_inputs(model) -> dict:
    """Model input name -> KerasTensor (dict inputs, keyed as in docs/design.md)."""
    structure = model.input
    if isinstance(structure, dict):
        return dict(structure)
    flat = structure if isinstance(structure, (list, tuple)) else [structure]
    return {t.name: t for t in flat}


class ServingFunctions(tf.Module):
    """The raw-input and tensor-input serving functions of a tfaesthetic model.

    Also used in-process by `tfaesthetic.serving.predictor`, so a Keras model and its
    export answer through the same code.

    Args:
        model: a built `MRACNN`, `CFAN` (or any model with the same input/output
            dicts).
        records_dir_or_manifest: the records the model was trained on (manifest,
            vocab.txt, users.tsv, images.tsv).
        max_pixels: the pixel budget of one image (`parser.MAX_PIXELS`, 50
            megapixels), enforced from the header before decoding; 0 turns it off.
    """

    def __init__(
        self, model, records_dir_or_manifest, name: Optional[str] = "tfaesthetic_serving",
        max_pixels: int = parser.MAX_PIXELS,
    ):
        super().__init__(name=name)
        self.model = model
        self.max_pixels = int(max_pixels or 0)
        manifest, records_dir = read_manifest_and_dir(records_dir_or_manifest)
        self.manifest = manifest
        self.records_dir = records_dir
        self.scale = features.ScoreScale.from_json(manifest["score_scale"])
        self.inputs = _model_inputs(model)
        names = set(self.inputs)
        known = {"image", "tokens", "image_index", "user_index", "review"}
        if not names <= known or not names:
            raise ValueError(
                f"Expected model inputs among {sorted(known)}. Received: model inputs {sorted(names)}"
            )
        self.has_image = "image" in names
        self.text_key = "review" if "review" in names else ("tokens" if "tokens" in names else None)
        self.is_cfan = "user_index" in names or "review" in names or "image_index" in names
        self.image_size = int(self.inputs["image"].shape[1]) if self.has_image else None
        self.max_len = None
        if self.text_key:
            # MRACNN's `tokens` input has a fixed length; CFAN's `review` is [B, None]
            # and the model keeps its truncation length as `max_len`.
            self.max_len = self.inputs[self.text_key].shape[1] or getattr(model, "max_len", None)
            if not self.max_len:
                raise ValueError(
                    f"Cannot tell how many tokens the model reads. Received: input {self.text_key!r} of shape "
                    f"{tuple(self.inputs[self.text_key].shape)} and no `max_len` attribute on {type(model).__name__}"
                )
            self.max_len = int(self.max_len)

        self.vocabulary = None
        self.vocab_sha256 = None
        if self.text_key:
            self.vocabulary = text.Vocabulary.from_file(os.path.join(records_dir, writer.VOCAB_FILE))
            self.vocab_sha256 = io.sha256_file(os.path.join(records_dir, writer.VOCAB_FILE))
            embedding_rows = manifest.get("vocab_size")
            if embedding_rows is not None and int(embedding_rows) != self.vocabulary.size:
                raise ValueError(
                    f"vocab.txt and manifest.json disagree. Received: vocab_size={embedding_rows} in the manifest, "
                    f"{self.vocabulary.size} ids from vocab.txt"
                )
        self.users = None
        if "user_index" in names:
            ids = _read_id_map(os.path.join(records_dir, writer.USERS_FILE))
            self.users = IdLookup(ids, int(manifest.get("num_users", len(ids))), name="users")
        self.images = None
        if "image_index" in names:
            ids = _read_id_map(os.path.join(records_dir, writer.IMAGES_FILE))
            self.images = IdLookup(ids, int(manifest.get("num_images", len(ids))), name="images")

        self._check_model_matches_records(model)

        self.tensor_signature = [_spec_of(t, n) for n, t in sorted(self.inputs.items())]
        raw = []
        if self.has_image:
            raw.append(tf.TensorSpec([None], tf.string, name="image_bytes"))
        if self.text_key:
            raw.append(tf.TensorSpec([None], tf.string, name="comments"))
        if self.users is not None:
            raw.append(tf.TensorSpec([None], tf.string, name="user_id"))
        if self.images is not None:
            raw.append(tf.TensorSpec([None], tf.string, name="image_id"))
        self.raw_signature = raw

    def _check_model_matches_records(self, model) -> None:
        """Refuses records that do not fit the model (a wrong --records would serve garbage)."""
        checks = []
        if self.vocabulary is not None and getattr(model, "vocab_size", None) is not None:
            checks.append(("vocab_size", int(model.vocab_size), self.vocabulary.size, "vocab.txt"))
        if self.users is not None and getattr(model, "num_users", None) is not None:
            checks.append(("num_users", int(model.num_users), self.users.oov_index, "manifest num_users"))
        outputs = model.output if isinstance(model.output, dict) else {}
        if "distribution" in outputs:
            checks.append(("num_bins", int(outputs["distribution"].shape[-1]), self.scale.num_bins, "score_scale"))
        for name, expected, received, where in checks:
            if expected != received:
                raise ValueError(
                    f"The records do not match the model: the model has {name}={expected}. "
                    f"Received: {received} from {where} in {self.records_dir}"
                )

    # ---------------------------------------------------------------- preprocessing
    def decode_images(self, image_bytes: tf.Tensor) -> tf.Tensor:
        """Encoded bytes `[B]` -> float32 `[B, S, S, 3]` in [0, 255] (the pipeline's eval branch).

        Refuses (InvalidArgumentError `image_bytes: ... batch positions [...]`)
        bytes that are not a complete image, images over the pixel budget
        (`max_pixels`, before decoding) and data the decoder fails on.
        """
        image_bytes = images_lib.check_image_bytes(image_bytes)
        return decode_checked_images(image_bytes, self.image_size, self.max_pixels)

    def tokenize(self, comments: tf.Tensor) -> tf.Tensor:
        """Comment strings `[B]` -> int32 `[B, max_len]` (all padding for an empty comment)."""
        return text.pad_tokens(text.tokenize(comments, self.vocabulary), self.max_len)

    def preprocess(self, image_bytes=None, comments=None, user_id=None, image_id=None) -> dict:
        """Raw inputs -> the model's input dict."""
        inputs = {}
        if self.has_image:
            inputs["image"] = self.decode_images(image_bytes)
        if self.text_key:
            inputs[self.text_key] = self.tokenize(comments)
        if self.users is not None:
            inputs["user_index"] = self.users(text.normalize_ids(user_id))
        if self.images is not None:
            inputs["image_index"] = self.images(text.normalize_ids(image_id))
        return inputs

    # ---------------------------------------------------------------- outputs
    def postprocess(self, outputs: dict, inputs: dict) -> dict:
        """Model outputs -> the named serving outputs.

        Args:
            outputs: the model's output dict.
            inputs: the model's input dict (user indices and tokens are read).

        Reference:
            Zhang et al., "Multimodal recurrent attention CNN for image aesthetic
            prediction", IEEE TMM 2020 (seed 003), §IV-A "Evaluation Criteria": the mean score
            sum_i s_i p_i of the predicted distribution and the good/bad split at
            the threshold (5 on AVA).
        """
        outputs = dict(outputs) if isinstance(outputs, dict) else {"distribution": outputs}
        result = {}
        if "distribution" in outputs:
            dist = tf.cast(outputs["distribution"], tf.float32)
            values = tf.constant(self.scale.values, tf.float32)
            mean = tf.reduce_sum(dist * values, axis=-1)
            result["distribution"] = dist
            result["mean_score"] = mean
            result["label"] = tf.cast(mean > self.scale.threshold, tf.int32)
        if "agnostic_rating" in outputs:
            agnostic = tf.reshape(tf.cast(outputs["agnostic_rating"], tf.float32), [-1])
            result["agnostic_rating"] = agnostic
            if "distribution" not in outputs:
                result["label"] = tf.cast(agnostic > 0.5, tf.int32)
        if "user_rating" in outputs:
            rating = tf.reshape(tf.cast(outputs["user_rating"], tf.float32), [-1])
            if self.users is not None and "user_index" in inputs:
                # The unknown-user fallback (user_rating = agnostic_rating) is the
                # model's own inference rule (`CFAN`'s `UnknownUserFallback`); it is
                # not repeated here, only reported.
                known = tf.cast(inputs["user_index"], tf.int32) < self.users.oov_index
                known = tf.logical_and(known, tf.cast(inputs["user_index"], tf.int32) >= 0)
                result["known_user"] = tf.cast(known, tf.int32)
            result["user_rating"] = rating
            if "label" not in result:
                # BPR / VBPR and CFAN variants without the agnostic head: the user's good/bad.
                result["label"] = tf.cast(rating > 0.5, tf.int32)
        if "tag" in outputs:
            result["tag"] = tf.cast(outputs["tag"], tf.float32)
        if "attention" in outputs:
            result["attention"] = tf.cast(outputs["attention"], tf.float32)
        if self.text_key and self.text_key in inputs:
            # 0 where the comment was empty (all padding): see the module docstring.
            tokens = tf.cast(inputs[self.text_key], tf.int32)
            result["has_comment"] = tf.cast(tf.reduce_any(tf.not_equal(tokens, features.PAD_ID), axis=-1), tf.int32)
        if not result:
            raise ValueError(
                "Expected model outputs among distribution, user_rating, agnostic_rating, tag, attention. "
                f"Received: {sorted(outputs)}"
            )
        return result

    # ---------------------------------------------------------------- entry points
    def _predict(self, inputs: dict) -> dict:
        """The model and `postprocess` on a batch of model inputs; a batch of 0 gives empty outputs.

        The network never sees an empty batch (some kernels refuse one): a batch of
        0 runs one all-zero example and returns its outputs sliced to 0 rows.
        """
        n = tf.shape(next(iter(inputs.values())))[0]
        dummy = {
            s.name: tf.zeros([1] + [d if d is not None else (self.max_len or 1) for d in s.shape[1:]], s.dtype)
            for s in self.tensor_signature
        }
        names = sorted(inputs)
        fed = tf.cond(
            n > 0,
            lambda: [tf.identity(inputs[k]) for k in names],
            lambda: [tf.cast(dummy[k], inputs[k].dtype) for k in names],
        )
        fed = dict(zip(names, fed))
        for k in names:
            fed[k].set_shape([None] + list(inputs[k].shape[1:]))
        result = self.postprocess(self.model(fed, training=False), fed)
        return {k: v[:n] for k, v in result.items()}

    def serve_tensors(self, *tensors) -> dict:
        """Preprocessed tensors (in `tensor_signature` order) -> named outputs."""
        inputs = check_batch_lengths({spec.name: t for spec, t in zip(self.tensor_signature, tensors)})
        return self._predict(inputs)

    def serve_raw(self, *tensors) -> dict:
        """Raw tensors (in `raw_signature` order) -> named outputs.

        Every input must have the same length (`check_batch_lengths`); a batch of
        0 returns empty outputs.
        """
        raw = check_batch_lengths({spec.name: t for spec, t in zip(self.raw_signature, tensors)})
        return self._predict(self.preprocess(**raw))

    def __call__(self, **raw) -> dict:
        """Eager raw call by name: `fns(image_bytes=..., comments=..., user_id=...)`."""
        missing = [s.name for s in self.raw_signature if s.name not in raw]
        extra = sorted(set(raw) - {s.name for s in self.raw_signature})
        if missing or extra:
            raise ValueError(
                f"Expected raw inputs {[s.name for s in self.raw_signature]}. "
                f"Received: {sorted(raw)} (missing {missing}, unexpected {extra})"
            )
        args = [tf.convert_to_tensor(raw[s.name], tf.string) for s in self.raw_signature]
        return self.serve_raw(*args)

    def describe(self) -> dict:
        """Inputs, outputs, score scale and bad-input rules, for the JSON sidecar."""
        example = {
            s.name: tf.zeros([1] + [d if d is not None else (self.max_len or 1) for d in s.shape[1:]], s.dtype)
            for s in self.tensor_signature
        }
        out = self.postprocess(self.model(example, training=False), example)
        outputs = {k: {"dtype": v.dtype.name, "shape": [None] + list(v.shape[1:])} for k, v in out.items()}

        def spec_json(s):
            return {"dtype": s.dtype.name, "shape": [None] + list(s.shape[1:])}

        return {
            "signatures": {
                RAW_SIGNATURE: {"inputs": {s.name: spec_json(s) for s in self.raw_signature}, "outputs": outputs},
                TENSOR_SIGNATURE: {"inputs": {s.name: spec_json(s) for s in self.tensor_signature}, "outputs": outputs},
            },
            "score_scale": self.scale.to_json(),
            "image_size": self.image_size,
            "max_len": self.max_len,
            "vocab_size": self.vocabulary.size if self.vocabulary else None,
            # The vocabulary's hash: `evaluate --export` refuses records whose vocab.txt differs.
            "vocab_sha256": self.vocab_sha256,
            "num_users": self.users.oov_index if self.users else None,
            "num_images": self.images.oov_index if self.images else None,
            "bad_input": {
                "image_bytes": "bytes without a JPEG/PNG/GIF/BMP/WebP signature, a JPEG not ending with FF D9 "
                "(zero padding allowed) or a PNG without IEND (truncated files), images over the pixel budget "
                f"of {self.max_pixels} pixels (width x height from the header, checked before decoding) and "
                "data the decoder refuses fail the request with InvalidArgumentError "
                "'image_bytes: ... batch positions ...'",
                "batch": "every input needs the same length (one comments string per image, one user id and one "
                "image id per image for CFAN), else InvalidArgumentError 'serving inputs: ... Received lengths: "
                "...'; a batch of 0 returns empty outputs",
                "comments": "an empty comment (no letters/digits) becomes all-padding tokens, has_comment = 0: "
                + (
                    "the review-free path (the user's taste kernel)"
                    if self.is_cfan
                    else "the text stream gives its learned 'no comment' vector: the prediction still depends on the image"
                ),
                "user_id": "normalised as the builders store ids (Unicode NFC, surrounding whitespace stripped); "
                "unknown ids map to the out-of-vocabulary row; user_rating = agnostic_rating, known_user = 0",
                "image_id": "normalised as user_id; unknown ids map to the out-of-vocabulary image row",
            },
        }


def _next_version(model_dir: str) -> int:
    versions = [int(d) for d in os.listdir(model_dir) if _VERSION_RE.match(d)] if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def write_models_config(export_base: str, serving_base_path: Optional[str] = "/models") -> str:
    """Writes `<export_base>/models.config` listing every exported model.

    A model is a sub-directory holding at least one integer version directory with
    a `saved_model.pb`.

    Args:
        export_base: the export directory.
        serving_base_path: the directory `export_base` is mounted at inside the
            TF Serving container (`docker run -v $PWD/export:/models ...`); None
            writes absolute local paths instead.

    Returns:
        The path of the written file.
    """
    names = []
    for name in sorted(os.listdir(export_base)):
        model_dir = os.path.join(export_base, name)
        if not os.path.isdir(model_dir):
            continue
        if any(
            _VERSION_RE.match(v) and os.path.exists(os.path.join(model_dir, v, "saved_model.pb"))
            for v in os.listdir(model_dir)
        ):
            names.append(name)
    lines = ["model_config_list {"]
    for name in names:
        base = f"{serving_base_path.rstrip('/')}/{name}" if serving_base_path else os.path.abspath(os.path.join(export_base, name))
        lines += ["  config {", f'    name: "{name}"', f'    base_path: "{base}"', '    model_platform: "tensorflow"', "  }"]
    lines.append("}")
    path = os.path.join(export_base, MODELS_CONFIG)
    tmp = f"{path}.tmp-{os.getpid()}"  # one per process: concurrent exports each replace it whole
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def export_model(
    model,
    records_dir_or_manifest,
    export_base,
    *,
    model_name: str,
    version: Optional[int] = None,
    serving_base_path: Optional[str] = "/models",
    overwrite: bool = False,
    verbose: bool = False,
) -> str:
    """Exports a model for TF Serving with raw-input and tensor signatures.

    Args:
        model: a built tfaesthetic model (`MRACNN`, `CFAN`, or one with the same
            input/output dicts).
        records_dir_or_manifest: the records directory (or its manifest.json) the
            model was trained on; its score scale, vocab.txt, users.tsv and
            images.tsv go into the export.
        export_base: the export directory (`export/`).
        model_name: the served model name (letters, digits, `_`, `-`, `.`).
        version: an integer version; None takes the next free one.
        serving_base_path: where `export_base` is mounted for TF Serving, used in
            models.config (None: absolute local paths).
        overwrite: replace an existing version directory.
        verbose: print the endpoints (Keras' export summary).

    Returns:
        The path of the version directory.
    """
    if not re.match(r"^[A-Za-z0-9_.\-]+$", model_name or ""):
        raise ValueError(f"Expected model_name of letters, digits, '_', '-', '.'. Received: model_name={model_name!r}")
    if version is not None and (not isinstance(version, (int, np.integer)) or version < 0):
        raise ValueError(f"Expected an integer version >= 0 or None. Received: version={version!r}")
    export_base = os.fspath(export_base)
    model_dir = os.path.join(export_base, model_name)
    os.makedirs(model_dir, exist_ok=True)
    auto_version = version is None
    version = _next_version(model_dir) if version is None else int(version)
    final_dir = os.path.join(model_dir, str(version))
    if os.path.exists(final_dir):
        if not overwrite:
            raise FileExistsError(f"Export version exists; pass overwrite=True or another version. Received: {final_dir}")
        shutil.rmtree(final_dir)

    fns = ServingFunctions(model, records_dir_or_manifest)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for module in (fns.vocabulary, fns.users, fns.images):
        if module is not None:
            archive.track(module)
    # The raw signature is registered first: ExportArchive aliases the first
    # endpoint as serving_default; we name it explicitly.
    archive.add_endpoint(RAW_SIGNATURE, fns.serve_raw, input_signature=fns.raw_signature)
    archive.add_endpoint(TENSOR_SIGNATURE, fns.serve_tensors, input_signature=fns.tensor_signature)

    # TF Serving polls version directories: write under a non-integer name, then rename.
    tmp_dir = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}")
    if os.path.exists(tmp_dir):
        shutil.rmtree(tmp_dir)
    archive.write_out(tmp_dir, verbose=verbose)
    sidecar = {
        "model_name": model_name,
        "version": version,
        "model_class": type(model).__name__,
        "model_config": io.json_safe(model.get_config()) if hasattr(model, "get_config") else None,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "records": {k: manifest_value for k, manifest_value in fns.manifest.items() if k in ("source", "schema_version", "files")},
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "load_with": "import tensorflow as tf, tensorflow_text; tf.saved_model.load(path)",
        **fns.describe(),
    }
    os.makedirs(os.path.join(tmp_dir, "assets.extra"), exist_ok=True)
    while True:
        with open(os.path.join(tmp_dir, SIDECAR), "w", encoding="utf-8") as f:
            json.dump(sidecar, f, indent=2, sort_keys=True)
        try:
            # rename(2) of a directory onto an existing non-empty one fails: the version
            # another exporter took meanwhile is never overwritten or mixed.
            os.rename(tmp_dir, final_dir)
            break
        except OSError as e:
            if not auto_version or e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            version = max(_next_version(model_dir), version + 1)  # taken concurrently: the next free one
            sidecar["version"] = version
            final_dir = os.path.join(model_dir, str(version))
    write_models_config(export_base, serving_base_path)
    return final_dir


def check_export_matches_records(sidecar: dict, manifest: dict, records_dir: str) -> None:
    """Refuses records an export cannot be scored on: another vocabulary or another score scale.

    Token ids only mean the same words under the same `vocab.txt`: its size and its
    sha256 (kept in the export's sidecar) must match the records'. The score scale
    (bins, their values, the good/bad threshold) must match too, or the metrics
    would compare distributions over different bins.

    Raises:
        ConfigError: naming `--export` / `--records` and what differs.
    """
    records = f"--records={records_dir}"
    if sidecar.get("vocab_size") and manifest.get("vocab_size") and sidecar["vocab_size"] != manifest["vocab_size"]:
        raise config_lib.ConfigError(
            f"The export's vocabulary has {sidecar['vocab_size']} ids but {records} has "
            f"{manifest['vocab_size']}: token ids would not match. Evaluate on the records it was trained on."
        )
    vocab_path = os.path.join(records_dir, "vocab.txt")
    if sidecar.get("vocab_sha256") and os.path.exists(vocab_path) and io.sha256_file(vocab_path) != sidecar["vocab_sha256"]:
        raise config_lib.ConfigError(
            f"The export was trained with another vocabulary than {records} (same size, different words: vocab.txt "
            f"sha256 {io.sha256_file(vocab_path)[:12]}..., the export's {sidecar['vocab_sha256'][:12]}...): token ids "
            "would mean other words. Evaluate on the records it was trained on."
        )
    theirs, ours = sidecar.get("score_scale"), manifest.get("score_scale")
    if theirs and ours:
        keys = ("num_bins", "values", "threshold")
        a = {k: theirs.get(k) for k in keys}
        b = {k: ours.get(k) for k in keys}
        if a != b:
            raise config_lib.ConfigError(
                f"The export predicts another score scale than {records} holds. Received: export {a}, records {b}."
            )


def latest_version_dir(path: str) -> str:
    """A version directory as is, or the highest integer version under a model directory."""
    path = os.fspath(path)
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = [int(d) for d in os.listdir(path) if _VERSION_RE.match(d)] if os.path.isdir(path) else []
    if not versions:
        raise FileNotFoundError(
            f"Expected a SavedModel version directory or a model directory with integer versions. Received: {path!r}"
        )
    return os.path.join(path, str(max(versions)))
