"""Frozen-backbone feature cache (SPEC §3): write feature maps once, train heads from them.

With a frozen backbone every epoch recomputes the same feature maps; for VGG-16 at
224 px that is almost all of a training step. The cache runs the backbone once
over each split and stores the maps, and the heads then train from them.

Layout of a cache directory:

- `<split>-00000-of-0000N.tfrecord`: one `tf.train.Example` per image, keyed by
  `image/index` (the records' dense index), holding `features/map` (the
  `[h, w, D]` map as float16 bytes), `features/tokens` (the parser's padded token
  ids), `features/distribution` (normalised votes), `image/id`, `image/tags`;
- `feature_cache.json`: the manifest, tying the cache to what produced it: the
  sha256 of the records' `manifest.json` (which itself lists every shard's sha256),
  the backbone name, input size, output shape and a sha256 of its weights, and
  `max_len`. `ensure_feature_cache` rebuilds a cache whose manifest does not match.

Images are parsed by the evaluation branch (no augmentation): the cached map of
an image is the frozen backbone's output on the resized image, exactly.

Only mode "image" (MRACNN) is cached here. The full model keeps the backbone, so
a model trained from the cache exports and serves raw images: `head_model(model)`
builds the MRACNN graph minus the backbone from the **same layer objects**, so
training the head trains the full model's weights.

Typical use:

    model = MRACNN(..., trainable_backbone=False)
    ensure_feature_cache(cache_dir, model.backbone_model, data_config, backbone_name="vgg16")
    head = head_model(model)
    head.compile(optimizer="adam", loss={"distribution": EMD(r=2)})
    head.fit(build_cached_dataset(data_config, True, cache_dir=cache_dir), epochs=...)
    export_model(model, ...)    # the full model: raw images in
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from tfaesthetic import features as features_lib
from tfaesthetic import io
from tfaesthetic.data import decoder as decoder_lib
from tfaesthetic.data import reader as reader_lib
from tfaesthetic.records import writer

SCHEMA_VERSION = 1
MANIFEST = "feature_cache.json"
FEATURE_KEY = "features"

_MAP = "features/map"
_SHAPE = "features/shape"
_TOKENS = "features/tokens"
_DISTRIBUTION = "features/distribution"


class StaleCacheError(ValueError):
    """The feature cache does not match the records or the backbone (the message says what differs)."""


def weights_fingerprint(backbone) -> str:
    """sha256 over a backbone's weight values (names, shapes and bytes), in order."""
    h = hashlib.sha256()
    for w in backbone.weights:
        value = np.ascontiguousarray(np.asarray(w.numpy()))
        h.update(w.path.encode() if hasattr(w, "path") else w.name.encode())
        h.update(str(value.shape).encode())
        h.update(value.tobytes())
    return h.hexdigest()


def cache_key(backbone, data_config, *, backbone_name: Optional[str] = None) -> dict:
    """What a cache must match to be reused: records, backbone and token length.

    Args:
        backbone: the frozen backbone `keras.Model` ([B,S,S,3] pixels → [B,h,w,D]).
        data_config: the `DataConfig` (`records_dir`, `image_size`, `max_len`).
        backbone_name: the backbone's registry name (default: `backbone.name`).

    Returns:
        A JSON-serialisable dict.
    """
    records_dir = data_config.records_dir
    out_shape = tuple(int(d) for d in backbone.output.shape[1:])
    return {
        "schema_version": SCHEMA_VERSION,
        "records_manifest_sha256": io.sha256_file(os.path.join(records_dir, writer.MANIFEST)),
        "backbone": backbone_name or backbone.name,
        "image_size": int(data_config.image_size),
        "feature_shape": list(out_shape),
        "backbone_weights_sha256": weights_fingerprint(backbone),
        "max_len": int(data_config.max_len),
        "dtype": "float16",
    }


def read_cache_manifest(cache_dir: str) -> Optional[dict]:
    """The cache's manifest, or None when there is none (or it is unreadable)."""
    path = os.path.join(cache_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def stale_reasons(cache_dir: str, key: dict) -> list:
    """Why the cache in `cache_dir` cannot be used for `key` (empty when it can)."""
    manifest = read_cache_manifest(cache_dir)
    if manifest is None:
        return [f"no readable {MANIFEST} in {cache_dir}"]
    reasons = [
        f"{name}: cache has {manifest.get('key', {}).get(name)!r}, expected {value!r}"
        for name, value in key.items()
        if manifest.get("key", {}).get(name) != value
    ]
    for name, size in manifest.get("shard_bytes", {}).items():
        path = os.path.join(cache_dir, name)
        if not os.path.exists(path) or os.path.getsize(path) != size:
            reasons.append(f"shard {name} is missing or has changed size")
    return reasons


def _image_pipeline(data_config, split: str, manifest: dict):
    """Deterministic, unaugmented per-image parse with the image index kept."""
    config = _image_config(data_config)
    parser = reader_lib.make_parser(config, manifest, config.records_dir)
    decoder = decoder_lib.Decoder(tuple(parser.decoder_outputs()) + ("image_index",))
    paths = reader_lib.shard_paths(config.records_dir, split, manifest)

    def parse(serialized):
        raw = decoder(serialized)
        parsed = parser.parse_image(raw)
        parsed["_image_index"] = raw["image_index"]
        return parsed

    return tf.data.TFRecordDataset(paths).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _image_config(data_config):
    import dataclasses

    if getattr(data_config, "mode", "image") != "image":
        raise ValueError(f"The feature cache supports mode 'image' only. Received: mode={data_config.mode!r}")
    return dataclasses.replace(data_config, features=("image", "tokens"), augment=False, feature_cache_dir="")


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def write_feature_cache(
    cache_dir: str,
    backbone,
    data_config,
    *,
    backbone_name: Optional[str] = None,
    splits=None,
    batch_size: int = 32,
    examples_per_shard: int = 2048,
) -> dict:
    """Runs the frozen backbone once over each split and writes the feature maps.

    Shards are written under a temporary name and renamed when complete; the
    manifest is written last, so an interrupted build is seen as stale.

    Args:
        cache_dir: output directory (created).
        backbone: the frozen backbone model (e.g. `MRACNN(...).backbone_model`).
        data_config: the `DataConfig` of the records (mode "image").
        backbone_name: registry name recorded in the manifest.
        splits: splits to cache; default every non-empty split of the records.
        batch_size: images per backbone call.
        examples_per_shard: images per shard.

    Returns:
        The cache manifest (also written as `feature_cache.json`).
    """
    records_dir = data_config.records_dir
    manifest = writer.read_manifest(records_dir)
    if not manifest.get("has_images", False):
        raise ValueError(f"The records in {records_dir!r} hold no images; nothing to cache. Received: has_images=false")
    key = cache_key(backbone, data_config, backbone_name=backbone_name)
    os.makedirs(cache_dir, exist_ok=True)
    old = os.path.join(cache_dir, MANIFEST)
    if os.path.exists(old):
        os.remove(old)
    splits = splits or [s for s in features_lib.SPLITS if manifest["splits"].get(s, 0) > 0]
    start = time.perf_counter()
    predict = tf.function(lambda x: backbone(x, training=False), reduce_retracing=True)
    counts, shard_bytes, shards = {}, {}, {}
    for split in splits:
        n = int(manifest["splits"].get(split, 0))
        num_shards = max(1, -(-n // examples_per_shard))
        names = [f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
        for stale in os.listdir(cache_dir):
            if stale.startswith(split + "-") and stale.endswith(".tfrecord") and stale not in names:
                os.remove(os.path.join(cache_dir, stale))
        writers = [tf.io.TFRecordWriter(os.path.join(cache_dir, name + ".tmp")) for name in names]
        count = 0
        for batch in _image_pipeline(data_config, split, manifest).batch(batch_size).prefetch(1):
            maps = predict(batch["image"]).numpy().astype(np.float16)
            for i in range(maps.shape[0]):
                example = tf.train.Example(features=tf.train.Features(feature={
                    features_lib.IMAGE_INDEX: _ints([batch["_image_index"][i].numpy()]),
                    features_lib.IMAGE_ID: _bytes([batch["_image_id"][i].numpy()]),
                    features_lib.TAGS: _ints([batch["_tag"][i].numpy()]),
                    _MAP: _bytes([maps[i].tobytes()]),
                    _SHAPE: _ints(maps.shape[1:]),
                    _TOKENS: _ints(batch["tokens"][i].numpy()),
                    _DISTRIBUTION: _floats(batch["_distribution"][i].numpy()),
                }))
                writers[min(count // examples_per_shard, num_shards - 1)].write(example.SerializeToString())
                count += 1
        for w, name in zip(writers, names):
            w.close()
            os.replace(os.path.join(cache_dir, name + ".tmp"), os.path.join(cache_dir, name))
            shard_bytes[name] = os.path.getsize(os.path.join(cache_dir, name))
        counts[split] = count
        shards[split] = names
    out = {
        "key": key,
        "records_dir": os.path.abspath(records_dir),
        "splits": counts,
        "shards": shards,
        "shard_bytes": shard_bytes,
        "num_bins": int(features_lib.ScoreScale.from_json(manifest["score_scale"]).num_bins),
        "build_seconds": time.perf_counter() - start,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = old + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    os.replace(tmp, old)
    return out


def ensure_feature_cache(cache_dir: str, backbone, data_config, *, backbone_name: Optional[str] = None, **kwargs):
    """Reuses the cache when it matches the records and backbone, else (re)builds it.

    Args:
        cache_dir: the cache directory.
        backbone: the frozen backbone.
        data_config: the records' `DataConfig`.
        backbone_name: registry name recorded in the manifest.
        **kwargs: `write_feature_cache` arguments (`batch_size`, ...).

    Returns:
        `(manifest, rebuilt_reasons)`: the cache manifest and why it was rebuilt
        (empty list when the existing cache was reused).
    """
    key = cache_key(backbone, data_config, backbone_name=backbone_name)
    reasons = stale_reasons(cache_dir, key)
    if not reasons:
        return read_cache_manifest(cache_dir), []
    return write_feature_cache(cache_dir, backbone, data_config, backbone_name=backbone_name, **kwargs), reasons


def build_cached_dataset(
    data_config, is_training: bool, *, split=None, cache_dir=None, include_metadata=False, key: Optional[dict] = None
):
    """The batched dataset of cached features: `({"features", "tokens"}, {"distribution"})`.

    Args:
        data_config: the `DataConfig`; `feature_cache_dir` is the cache unless
            `cache_dir` is given. `global_batch_size`, `shuffle_buffer`, `seed`
            apply as in `build_dataset`.
        is_training: shuffle and drop the last partial batch.
        split: default "train" when training, else "val".
        cache_dir: the cache directory (overrides `data_config.feature_cache_dir`).
        include_metadata: also yield `{"image_id", "tag"}`.
        key: when given (`cache_key(...)`), raise `StaleCacheError` if the cache
            does not match it.

    Returns:
        A `tf.data.Dataset`; `"features"` is `[B, h, w, D]` float32 (stored as
        float16), `"tokens"` `[B, max_len]` int32, `"distribution"` `[B, num_bins]`.
    """
    cache_dir = cache_dir or getattr(data_config, "feature_cache_dir", "")
    if not cache_dir:
        raise ValueError("No feature cache directory. Received: cache_dir=None, feature_cache_dir=''")
    manifest = read_cache_manifest(cache_dir)
    if manifest is None:
        raise StaleCacheError(f"No feature cache in {cache_dir!r} (no {MANIFEST}); write it with write_feature_cache.")
    if key is not None:
        reasons = stale_reasons(cache_dir, key)
        if reasons:
            raise StaleCacheError(f"Feature cache {cache_dir!r} is stale: " + "; ".join(reasons))
    split = split or ("train" if is_training else "val")
    if split not in manifest["shards"]:
        raise ValueError(
            f"Split {split!r} is not in the feature cache. Received: cached splits {sorted(manifest['shards'])}"
        )
    shape = manifest["key"]["feature_shape"]
    max_len = manifest["key"]["max_len"]
    num_bins = manifest["num_bins"]
    spec = {
        _MAP: tf.io.FixedLenFeature([], tf.string),
        _TOKENS: tf.io.FixedLenFeature([max_len], tf.int64),
        _DISTRIBUTION: tf.io.FixedLenFeature([num_bins], tf.float32),
        features_lib.IMAGE_ID: tf.io.FixedLenFeature([], tf.string),
        features_lib.TAGS: tf.io.FixedLenFeature([1], tf.int64),
    }
    seed = getattr(data_config, "seed", None)
    batch_size = int(data_config.global_batch_size)

    def parse(serialized):
        # Parse a whole batch at once: one parse op and one decode per batch.
        ex = tf.io.parse_example(serialized, spec)
        maps = tf.io.decode_raw(ex[_MAP], tf.float16)
        maps = tf.cast(tf.reshape(maps, [-1, *shape]), tf.float32)
        feats = {FEATURE_KEY: maps, "tokens": tf.cast(ex[_TOKENS], tf.int32)}
        labels = {"distribution": ex[_DISTRIBUTION]}
        if include_metadata:
            tag = tf.cast(ex[features_lib.TAGS][:, 0], tf.int32)
            return feats, labels, {"image_id": ex[features_lib.IMAGE_ID], "tag": tag}
        return feats, labels

    paths = [os.path.join(cache_dir, n) for n in manifest["shards"][split]]
    dataset = tf.data.TFRecordDataset(paths, buffer_size=1 << 20, num_parallel_reads=min(len(paths), 4))
    if is_training:
        dataset = dataset.shuffle(data_config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=is_training)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = (not is_training) or seed is not None
    return dataset.with_options(options)


def feature_tensor(model):
    """The symbolic backbone output inside `model`'s functional graph."""
    for name in ("attention_layer", "pooling"):
        layer = getattr(model, name, None)
        if layer is not None:
            return layer.input
    raise ValueError(f"The model has no image stream to cache features for. Received: {type(model).__name__} "
                     f"variant={getattr(model, 'variant', None)!r}")


def head_model(model, *, outputs=("distribution",)):
    """The model's graph minus its backbone, sharing every layer (and weight) with it.

    Args:
        model: an `MRACNN` with an image stream (built; its backbone frozen for a
            cache to be valid).
        outputs: which of the model's outputs the head returns (`"attention"`
            can be added).

    Returns:
        A `keras.Model` taking `{"features": [B,h,w,D], "tokens": [B,max_len]}`
        (`"tokens"` when the variant reads text) and returning the chosen outputs.
        Training it updates the full model's attention, text and head weights.
    """
    feature = feature_tensor(model)
    inputs = {FEATURE_KEY: feature}
    model_inputs = model.input if isinstance(model.input, dict) else {}
    if "tokens" in model_inputs:
        inputs["tokens"] = model_inputs["tokens"]
    model_outputs = model.output
    if not isinstance(model_outputs, dict):
        raise ValueError(f"Expected a model with dict outputs. Received: {type(model_outputs).__name__}")
    import warnings

    import keras

    with warnings.catch_warnings():
        # Keras clones the intermediate feature tensor into a new Input and warns
        # that its name is not the dict key; the key is what the head is fed by.
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
        return keras.Model(inputs=inputs, outputs={k: model_outputs[k] for k in outputs}, name=f"{model.name}_head")
