"""Feature cache: cached maps equal the backbone's, heads learn from them, stale caches rebuild,
export takes raw images."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaesthetic.config import DataConfig
from tfaesthetic.data import feature_cache as fc
from tfaesthetic.data import parser as parser_lib
from tfaesthetic.data.decoder import Decoder
from tfaesthetic.data.reader import shard_paths
from tfaesthetic.losses.emd import EMD
from tfaesthetic.models.mracnn import MRACNN

SIZE = 48
MAX_LEN = 32


def _model(manifest, **kwargs):
    return MRACNN(
        vocab_size=manifest["vocab_size"], num_bins=manifest["score_scale"]["num_bins"], backbone="tiny",
        image_size=SIZE, max_len=MAX_LEN, trainable_backbone=False, lstm_units=16, attention_units=16,
        embedding_dim=8, num_filters=8, mfb_k=2, mfb_o=16, **kwargs,
    )


@pytest.fixture(scope="module")
def world(demo_records, tmp_path_factory):
    keras.utils.set_random_seed(7)
    with open(os.path.join(demo_records, "manifest.json")) as f:
        manifest = json.load(f)
    model = _model(manifest)
    config = DataConfig(records_dir=demo_records, image_size=SIZE, max_len=MAX_LEN, global_batch_size=16, seed=3)
    cache_dir = str(tmp_path_factory.mktemp("feature_cache"))
    cache, reasons = fc.ensure_feature_cache(cache_dir, model.backbone_model, config, backbone_name="tiny")
    return dict(records=demo_records, manifest=manifest, model=model, config=config, cache_dir=cache_dir,
                cache=cache, reasons=reasons)


def _records_by_index(records_dir, split):
    """image index -> (resized float32 image, distribution), parsed independently of the cache writer."""
    decoder = Decoder(("image_index", "encoded", "votes"))
    out = {}
    for serialized in tf.data.TFRecordDataset(shard_paths(records_dir, split)):
        raw = decoder(serialized)
        votes = raw["votes"].numpy().astype(np.float64)
        out[int(raw["image_index"])] = (parser_lib.decode_image(raw["encoded"], SIZE).numpy(), votes / votes.sum())
    return out


def test_cache_covers_every_split_and_records_the_key(world):
    cache, manifest = world["cache"], world["manifest"]
    assert world["reasons"], "a fresh directory is built, with the reason"
    assert cache["splits"] == {s: n for s, n in manifest["splits"].items() if n}
    key = cache["key"]
    assert key["backbone"] == "tiny" and key["image_size"] == SIZE and key["max_len"] == MAX_LEN
    assert key["feature_shape"] == [6, 6, 32] and key["dtype"] == "float16"
    assert all(os.path.exists(os.path.join(world["cache_dir"], n)) for names in cache["shards"].values() for n in names)


def test_cached_features_equal_backbone_output(world):
    images = _records_by_index(world["records"], "val")
    ds = fc.build_cached_dataset(world["config"], False, split="val", cache_dir=world["cache_dir"])
    # Index order is not needed: re-read the cache shard with the index to pair them.
    indices = [
        int(tf.train.Example.FromString(s.numpy()).features.feature["image/index"].int64_list.value[0])
        for s in tf.data.TFRecordDataset([os.path.join(world["cache_dir"], n) for n in world["cache"]["shards"]["val"]])
    ]
    feats = np.concatenate([b[0]["features"].numpy() for b in ds])
    dists = np.concatenate([b[1]["distribution"].numpy() for b in ds])
    assert feats.dtype == np.float32 and feats.shape == (len(images), 6, 6, 32)
    assert sorted(indices) == sorted(images)
    expected = world["model"].backbone_model.predict(np.stack([images[i][0] for i in indices]), verbose=0)
    # float16 storage: relative error <= 2^-11 per value.
    np.testing.assert_allclose(feats, expected, rtol=2e-3, atol=1e-3)
    assert np.abs(expected).max() > 0.1, "a dead backbone would make the comparison vacuous"
    np.testing.assert_allclose(dists, np.stack([images[i][1] for i in indices]), atol=1e-6)


def test_head_shares_weights_with_full_model(world):
    model = world["model"]
    head = fc.head_model(model)
    assert set(head.input) == {"features", "tokens"}
    full_ids = {id(w) for w in model.trainable_weights}
    assert {id(w) for w in head.trainable_weights} == full_ids and full_ids
    # Same inputs through the head and through backbone + full model give the same distribution.
    images = np.stack([v[0] for v in list(_records_by_index(world["records"], "test").values())[:4]])
    tokens = np.random.default_rng(0).integers(2, 20, size=(4, MAX_LEN)).astype("int32")
    images, tokens = tf.constant(images), tf.constant(tokens)
    full = model({"image": images, "tokens": tokens}, training=False)["distribution"]
    maps = model.backbone_model(images, training=False)
    part = head({"features": maps, "tokens": tokens}, training=False)["distribution"]
    np.testing.assert_allclose(np.asarray(part), np.asarray(full), atol=1e-5)


@pytest.mark.slow  # trains and exports (a SavedModel write)
def test_head_training_from_cache_lowers_loss_and_export_takes_raw_images(world, tmp_path):
    keras.utils.set_random_seed(5)
    model = _model(world["manifest"])
    config = world["config"]
    cache, _ = fc.ensure_feature_cache(str(tmp_path / "cache"), model.backbone_model, config, backbone_name="tiny")
    backbone_before = [w.numpy().copy() for w in model.backbone_model.weights]
    head = fc.head_model(model)
    head.compile(optimizer=keras.optimizers.Adam(3e-3), loss={"distribution": EMD(r=2)})
    train = fc.build_cached_dataset(config, True, cache_dir=str(tmp_path / "cache"))
    val = fc.build_cached_dataset(config, False, split="val", cache_dir=str(tmp_path / "cache"))
    before = head.evaluate(val, verbose=0)
    head.fit(train, epochs=8, verbose=0)
    after = head.evaluate(val, verbose=0)
    assert after < 0.9 * before, (before, after)
    for w, old in zip(model.backbone_model.weights, backbone_before):
        np.testing.assert_array_equal(w.numpy(), old)

    from tfaesthetic.serving.export import export_model

    path = export_model(model, world["records"], str(tmp_path / "export"), model_name="cached", version=1)
    loaded = tf.saved_model.load(path)
    records = tf.data.TFRecordDataset(shard_paths(world["records"], "val"))
    raw = [Decoder(("encoded", "comment_text", "comment_tokens"))(s) for s in records.take(3)]
    image_bytes = tf.stack([r["encoded"] for r in raw])
    comments = tf.constant([b" ".join(r["comment_text"].numpy().tolist()) for r in raw])
    served = loaded.signatures["serving_default"](image_bytes=image_bytes, comments=comments)
    # The export is the full model with the trained head: raw bytes in, the same distribution
    # as the in-process model on the decoded images and the records' token ids.
    images = np.stack([parser_lib.decode_image(r["encoded"], SIZE).numpy() for r in raw])
    tokens = np.stack([parser_lib.join_tokens(r["comment_tokens"], MAX_LEN).numpy() for r in raw])
    direct = model({"image": tf.constant(images), "tokens": tf.constant(tokens)}, training=False)["distribution"]
    np.testing.assert_allclose(served["distribution"].numpy(), np.asarray(direct), atol=1e-4)


def test_stale_cache_is_detected_and_rebuilt(world, tmp_path):
    config = world["config"]
    cache_dir = str(tmp_path / "cache")
    keras.utils.set_random_seed(1)
    model = _model(world["manifest"])
    first, reasons = fc.ensure_feature_cache(cache_dir, model.backbone_model, config, backbone_name="tiny")
    assert reasons
    again, reasons = fc.ensure_feature_cache(cache_dir, model.backbone_model, config, backbone_name="tiny")
    assert reasons == [] and again["created"] == first["created"]

    # Other backbone weights: the stored maps no longer match; reading with the key refuses.
    other = _model(world["manifest"])
    key = fc.cache_key(other.backbone_model, config, backbone_name="tiny")
    with pytest.raises(fc.StaleCacheError, match="backbone_weights_sha256"):
        fc.build_cached_dataset(config, True, cache_dir=cache_dir, key=key)
    rebuilt, reasons = fc.ensure_feature_cache(cache_dir, other.backbone_model, config, backbone_name="tiny")
    assert any("backbone_weights_sha256" in r for r in reasons)
    assert rebuilt["key"]["backbone_weights_sha256"] == key["backbone_weights_sha256"]
    maps = next(iter(fc.build_cached_dataset(config, False, split="val", cache_dir=cache_dir, key=key)))[0]["features"]
    assert maps.shape[0] > 0

    # Other records (the manifest's hash changes) and another token length.
    _, reasons = fc.ensure_feature_cache(
        cache_dir, other.backbone_model, dataclasses.replace(config, max_len=MAX_LEN + 1), backbone_name="tiny"
    )
    assert any("max_len" in r for r in reasons)
    # A truncated shard.
    name = next(iter(rebuilt["shard_bytes"]))
    with open(os.path.join(cache_dir, name), "r+b") as f:
        f.truncate(10)
    key = fc.cache_key(other.backbone_model, dataclasses.replace(config, max_len=MAX_LEN + 1), backbone_name="tiny")
    assert any("changed size" in r for r in fc.stale_reasons(cache_dir, key))
