"""build_dataset: shapes/dtypes per mode, text-only records, sharding, truncated shards."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.data import helpers
from tfaesthetic import features, text
from tfaesthetic.config import DataConfig
from tfaesthetic.data import reader
from tfaesthetic.data.parser import decode_image
from tfaesthetic.records import writer

N = 48
S = 32
MAX_LEN = 10


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("records")
    records = helpers.make_records(N, comments_per_image=lambda i: (i % 5) + (1 if i % 7 == 0 else 0))
    helpers.write(out, records, num_shards=3)
    return str(out), {r.image_id: r for r in records}


@pytest.fixture(scope="module")
def text_only_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("text_only")
    helpers.write(out, helpers.make_records(N, with_images=False), num_shards=2)
    return str(out)


def _config(records_dir, **kw):
    base = dict(records_dir=records_dir, image_size=S, max_len=MAX_LEN, global_batch_size=4, shuffle_buffer=16, seed=1)
    base.update(kw)
    return DataConfig(**base)


def _spec(ds):
    return tf.nest.map_structure(lambda s: (tuple(s.shape.as_list()), s.dtype.name), ds.element_spec)


def test_image_mode_shapes_dtypes_and_counts(records_dir):
    path, originals = records_dir
    train = reader.build_dataset(_config(path), is_training=True)
    assert _spec(train) == (
        {"image": ((4, S, S, 3), "uint8"), "tokens": ((4, MAX_LEN), "int32")},  # the model casts
        {"distribution": ((4, 5), "float32")},
    )
    evaluation = reader.build_dataset(_config(path), is_training=False)
    assert _spec(evaluation)[0]["image"] == ((None, S, S, 3), "float32")  # as serving feeds the model
    n_train = reader.num_examples(path, "train", "image")
    assert n_train == sum(r.split == "train" for r in originals.values())
    batches = list(train)
    assert len(batches) == n_train // 4  # drop_remainder on train
    for feats, labels in batches:
        np.testing.assert_allclose(labels["distribution"].numpy().sum(-1), 1.0, rtol=1e-5)
        image = feats["image"].numpy()
        assert image.max() > 1


def test_eval_values_match_the_records(records_dir):
    path, originals = records_dir
    config = _config(path, global_batch_size=5)
    ds = reader.build_dataset(config, is_training=False, split="val", include_metadata=True)
    vocab = text.Vocabulary.from_file(os.path.join(path, "vocab.txt"))
    seen = []
    for feats, labels, meta in ds:
        for b, image_id in enumerate(meta["image_id"].numpy()):
            rec = originals[image_id.decode()]
            seen.append(rec.image_id)
            expected = decode_image(tf.constant(rec.encoded), S).numpy()
            np.testing.assert_allclose(feats["image"][b].numpy(), expected, atol=1e-4)  # no augmentation on eval
            ids = [t for row in text.tokenize([c.text for c in rec.comments], vocab).to_list() for t in row] if rec.comments else []
            assert feats["tokens"][b].numpy().tolist() == (ids + [0] * MAX_LEN)[:MAX_LEN]
            votes = np.array(rec.votes, np.float64)
            np.testing.assert_allclose(labels["distribution"][b].numpy(), votes / votes.sum(), rtol=1e-5)
            assert int(meta["tag"][b]) == (rec.tags[0] if len(rec.tags) else features.NO_TAG)
    assert sorted(seen) == sorted(i for i, r in originals.items() if r.split == "val")
    # Eval order is deterministic.
    again = [m["image_id"].numpy().tolist() for _, _, m in ds]
    assert sum(again, []) == [s.encode() for s in seen]


def test_review_mode_shapes_and_one_example_per_rated_review(records_dir):
    path, originals = records_dir
    config = _config(path, mode="review", features=("image", "image_index", "user_index", "review"))
    train = reader.build_dataset(config, is_training=True)
    assert _spec(train) == (
        {
            "image": ((4, S, S, 3), "uint8"),
            "image_index": ((4,), "int32"),
            "user_index": ((4,), "int32"),
            "review": ((4, MAX_LEN), "int32"),
        },
        {
            "user_rating": ((4,), "float32"),
            "tag": ((4,), "int32"),
            "agnostic_rating": ((4,), "float32"),
            "agnostic_share": ((4,), "float32"),
        },
    )
    for split in ("train", "test"):
        expected = sum(1 for r in originals.values() if r.split == split for c in r.comments if c.rating != -1)
        assert reader.num_examples(path, split, "review") == expected
        ds = reader.build_dataset(config, is_training=False, split=split, include_metadata=True)
        got = []
        for feats, labels, meta in ds:
            for b in range(len(meta["image_id"])):
                rec = originals[meta["image_id"][b].numpy().decode()]
                assert int(feats["image_index"][b]) == rec.image_index
                got.append((rec.image_id, int(feats["user_index"][b]), float(labels["user_rating"][b])))
        want = [
            (r.image_id, c.user_index if c.user_index >= 0 else len(helpers.USERS), float(c.rating))
            for r in originals.values() if r.split == split for c in r.comments if c.rating != -1
        ]
        assert sorted(got) == sorted(want)
    assert set(np.unique(np.concatenate([l["user_rating"].numpy() for _, l in train]))) <= {0.0, 1.0}


def test_text_only_records(text_only_dir):
    ds = reader.build_dataset(_config(text_only_dir, features=("tokens",)), is_training=True)
    assert _spec(ds) == ({"tokens": ((4, MAX_LEN), "int32")}, {"distribution": ((4, 5), "float32")})
    assert len(list(ds)) == reader.num_examples(text_only_dir, "train") // 4
    review = _config(text_only_dir, mode="review", features=("image_index", "user_index", "review"))
    assert len(list(reader.build_dataset(review, is_training=False, split="test"))) > 0
    with pytest.raises(ValueError, match=f"{text_only_dir}.*has_images=false"):
        reader.build_dataset(_config(text_only_dir), is_training=True)


def test_retokenise_from_raw_text_gives_the_records_tokens(records_dir):
    path, _ = records_dir

    @dataclasses.dataclass
    class WithVocab(DataConfig):
        vocab_file: str = ""

    plain = _config(path, features=("tokens",))
    retok = WithVocab(**dataclasses.asdict(plain), vocab_file=os.path.join(path, "vocab.txt"))
    a = [f["tokens"].numpy() for f, _ in reader.build_dataset(plain, is_training=False, split="train")]
    b = [f["tokens"].numpy() for f, _ in reader.build_dataset(retok, is_training=False, split="train")]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))


def test_input_context_shards_and_uses_per_replica_batch(records_dir):
    path, originals = records_dir
    config = _config(path, global_batch_size=4)
    ids = []
    for pipeline in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        ds = reader.build_dataset(config, is_training=False, split="train", include_metadata=True, input_context=ctx)
        part = [i for _, _, m in ds for i in m["image_id"].numpy().tolist()]
        assert all(m["image_id"].shape[0] <= 2 for _, _, m in ds)
        ids.append(part)
    assert not set(ids[0]) & set(ids[1])
    assert sorted(ids[0] + ids[1]) == sorted(i.encode() for i, r in originals.items() if r.split == "train")


def test_auto_shard_policy_is_data(records_dir):
    ds = reader.build_dataset(_config(records_dir[0]), is_training=True)
    assert ds.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA


def _copy_with_shard(records_dir, tmp_path, name):
    """A copy of the records (to damage), one shard's path in it and that shard's bytes."""
    work = tmp_path / "copy"
    shutil.copytree(records_dir[0], work)
    shard = os.path.join(str(work), name)
    with open(shard, "rb") as f:
        return work, shard, f.read()


def test_truncated_shard_error_names_the_file(records_dir, tmp_path):
    work, shard, data = _copy_with_shard(records_dir, tmp_path, "train-00001-of-00003.tfrecord")
    with open(shard, "wb") as f:
        f.write(data[: len(data) - 100])
    with pytest.raises(reader.ShardError, match="train-00001-of-00003.tfrecord is truncated"):
        reader.build_dataset(_config(str(work)), is_training=True)
    with pytest.raises(reader.ShardError, match="train-00001-of-00003.tfrecord"):
        reader.validate_shards(str(work))
    # Other splits are still readable.
    assert reader.validate_shards(str(work), "val")


def test_shard_cut_at_a_record_boundary_or_corrupted(records_dir, tmp_path):
    work, shard, data = _copy_with_shard(records_dir, tmp_path, "val-00000-of-00003.tfrecord")
    # Corrupt a byte inside the first record's data: framing and size are intact, the CRC is not.
    corrupt = bytearray(data)
    corrupt[40] ^= 0xFF
    open(shard, "wb").write(bytes(corrupt))
    # The quick check sees it through the shard's fingerprint (its first and last 64 KiB).
    with pytest.raises(reader.ShardError, match="val-00000-of-00003.tfrecord does not belong to .*manifest.json"):
        reader.validate_shards(str(work), "val")
    manifest = writer.read_manifest(str(work))
    del manifest["files"]["shard_fingerprints"]  # records written before fingerprints: the CRCs tell
    with open(os.path.join(str(work), "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(reader.ShardError, match="val-00000-of-00003.tfrecord is corrupt"):
        reader.validate_shards(str(work), "val")  # the first record is read for the bin check
    with pytest.raises(reader.ShardError, match="val-00000-of-00003.tfrecord is corrupt"):
        reader.validate_shards(str(work), "val", full=True)
    # Cut exactly after the first record: framing is fine, the size in the manifest is not.
    (length,) = np.frombuffer(data[:8], "<u8")
    open(shard, "wb").write(data[: 12 + int(length) + 4])
    with pytest.raises(reader.ShardError, match="val-00000-of-00003.tfrecord has .* bytes, the manifest says"):
        reader.validate_shards(str(work), "val")
    os.remove(shard)
    with pytest.raises(reader.ShardError, match="val-00000-of-00003.tfrecord .*does not exist"):
        reader.build_dataset(_config(str(work)), is_training=False)


def test_config_errors(records_dir):
    with pytest.raises(ValueError, match="records_dir=''"):
        reader.build_dataset(DataConfig(), is_training=True)
    with pytest.raises(ValueError, match="mode='pairs'"):
        reader.build_dataset(_config(records_dir[0], mode="pairs"), is_training=True)
    with pytest.raises(ValueError, match="Received: mode='pairs'"):
        reader.num_examples(records_dir[0], "train", "pairs")
    assert writer.read_manifest(records_dir[0])["reviews"]["val"] == reader.num_examples(records_dir[0], "val", "review")



def test_cached_training_branch_flips_whole_images_at_random(records_dir):
    # From the cache every training image is its pixels or their mirror image, both happen
    # (the batch picks one of the two cached orientations), and the cache counts both.
    path, _ = records_dir
    plain_config = _config(path, cache=True, augment=False, global_batch_size=8)
    plain = {m: f.numpy() for feats, _, meta in reader.build_dataset(plain_config, True, include_metadata=True)
             for f, m in zip(feats["image"], meta["image_id"].numpy())}
    config = _config(path, cache=True, global_batch_size=8)
    ds = reader.build_dataset(config, is_training=True, include_metadata=True)
    assert _spec(ds)[0]["image"] == ((8, S, S, 3), "uint8")
    kept = flipped = 0
    for _ in range(2):
        for feats, _, meta in ds:
            for image, image_id in zip(feats["image"].numpy(), meta["image_id"].numpy()):
                if np.array_equal(image, plain[image_id]):
                    kept += 1
                else:
                    np.testing.assert_array_equal(image, plain[image_id][:, ::-1])
                    flipped += 1
    assert kept > 0 and flipped > 0
    manifest = reader.writer.read_manifest(path)
    extra = reader.cache_bytes(config, manifest, "train", True) - reader.cache_bytes(plain_config, manifest, "train", True)
    assert extra == manifest["splits"]["train"] * S * S * 3


def test_a_manifest_passed_down_is_not_read_again(records_dir, monkeypatch):
    path, _ = records_dir
    manifest = writer.read_manifest(path)
    reads = []
    original = writer.read_manifest
    monkeypatch.setattr(writer, "read_manifest", lambda d: reads.append(d) or original(d))
    given = reader.build_dataset(_config(path), is_training=False, split="train", manifest=manifest)
    assert reads == []  # the caller's manifest is the one used (the trainer's Task reads it once)
    read_here = reader.build_dataset(_config(path), is_training=False, split="train")
    assert reads  # without one, build_dataset reads it itself
    assert sum(1 for _ in given) == sum(1 for _ in read_here)
