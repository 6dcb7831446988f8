"""write_records / read_manifest: shards, manifest, id maps, vocabulary, bad-input rules."""

import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.data import helpers
from tfaesthetic import features, text
from tfaesthetic.data import decoder
from tfaesthetic.records import writer
from tfaesthetic.records.rejections import Rejections


def _read_all(out_dir, split):
    names = sorted(n for n in os.listdir(out_dir) if n.startswith(split + "-") and n.endswith(".tfrecord"))
    dec = decoder.Decoder()
    return [dec(s) for s in tf.data.TFRecordDataset([os.path.join(out_dir, n) for n in names])]


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.parametrize("with_images", [True, False])
def test_round_trip_every_field(tmp_path, with_images):
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    records = helpers.make_records(16, with_images=with_images, image_dir=str(image_dir))
    originals = {r.image_id: r for r in records}
    manifest, rejections = helpers.write(tmp_path / "out", records)
    out = str(tmp_path / "out")
    vocab = text.Vocabulary.from_file(os.path.join(out, "vocab.txt"))

    assert manifest["has_images"] is with_images
    assert not rejections.entries
    seen = 0
    for split in features.SPLITS:
        for raw in _read_all(out, split):
            seen += 1
            rec = originals[raw["image_id"].numpy().decode()]
            assert rec.split == split
            assert raw["image_index"].numpy() == rec.image_index
            if with_images:
                with open(image_dir / f"{rec.image_id}.jpg", "rb") as f:
                    assert raw["encoded"].numpy() == f.read()  # original bytes, never re-encoded
                assert raw["image_format"].numpy() == b"jpeg"
                assert raw["has_image"].numpy()
            else:
                assert raw["encoded"].numpy() == b"" and not raw["has_image"].numpy()
                assert raw["image_format"].numpy() == b""
            np.testing.assert_array_equal(raw["votes"].numpy(), rec.votes)
            np.testing.assert_array_equal(raw["tags"].numpy(), list(rec.tags))
            assert raw["challenge"].numpy() == rec.challenge
            texts = [t.decode("utf-8") for t in raw["comment_text"].numpy()]
            assert texts == [c.text for c in rec.comments]
            expected_tokens = text.tokenize(texts, vocab).to_list() if texts else []
            assert raw["comment_tokens"].to_list() == expected_tokens
            np.testing.assert_array_equal(raw["comment_user"].numpy(), [c.user_index for c in rec.comments])
            np.testing.assert_array_equal(raw["comment_sentiment"].numpy(), [c.sentiment for c in rec.comments])
            np.testing.assert_array_equal(raw["comment_rating"].numpy(), [c.rating for c in rec.comments])
    assert seen == 16


def test_indices_dense_train_first_and_id_maps(tmp_path):
    split_of = lambda i: ("test", "val", "train")[i % 3]  # noqa: E731 - train records come last in the input
    records = helpers.make_records(9, split_of=split_of)
    manifest, _ = helpers.write(tmp_path, records)
    by_split = {s: sorted(r.image_index for r in records if r.split == s) for s in features.SPLITS}
    assert by_split == {"train": [0, 1, 2], "val": [3, 4, 5], "test": [6, 7, 8]}
    assert manifest["num_train_images"] == 3 and manifest["num_images"] == 9
    with open(tmp_path / "images.tsv", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    assert [int(r[0]) for r in rows] == list(range(9))
    assert {r[1]: r[2] for r in rows} == {r.image_id: r.split for r in records}
    with open(tmp_path / "users.tsv", encoding="utf-8") as f:
        assert f.read() == "0\talice\n1\tbob\n2\tcarol\n"
    with open(tmp_path / "tags.tsv", encoding="utf-8") as f:
        assert f.read() == "0\tnature\n1\tportrait\n2\turban\n"


def test_shards_named_renamed_and_hashed(tmp_path):
    # Stale outputs of an earlier build with other shard counts are removed.
    (tmp_path / "train-00000-of-00009.tfrecord").write_bytes(b"old")
    (tmp_path / "val-00000-of-00002.tfrecord.tmp").write_bytes(b"old")
    records = helpers.make_records(10, split_of=lambda i: "train" if i < 7 else "val")
    manifest = writer.write_records(
        str(tmp_path), records, scale=helpers.SCALE, users=helpers.USERS, tags=helpers.TAGS, source="t",
        rejections=Rejections(), num_shards={"train": 3, "val": 5, "test": 2}, command_line="cmd --x",
    )
    names = sorted(os.listdir(tmp_path))
    shards = [n for n in names if ".tfrecord" in n]
    assert shards == [
        "test-00000-of-00001.tfrecord",  # empty split: one empty shard
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
        "val-00000-of-00003.tfrecord",  # capped at the 3 val records
        "val-00001-of-00003.tfrecord",
        "val-00002-of-00003.tfrecord",
    ]
    assert not [n for n in names if n.endswith(".tmp")]
    assert {"manifest.json", "vocab.txt", "users.tsv", "images.tsv", "tags.tsv", "rejected.jsonl"} <= set(names)
    files = manifest["files"]
    assert set(files["shards"]) == set(shards)
    for name, digest in files["shards"].items():
        assert _sha(tmp_path / name) == digest
        assert files["shard_bytes"][name] == os.path.getsize(tmp_path / name)
    for name in ("vocab.txt", "users.tsv", "images.tsv", "tags.tsv"):
        assert _sha(tmp_path / name) == files[name]
    on_disk = writer.read_manifest(str(tmp_path))
    assert on_disk == manifest
    assert on_disk["command_line"] == "cmd --x"
    assert on_disk["splits"] == {"train": 7, "val": 3, "test": 0}
    assert on_disk["score_scale"] == {"num_bins": 5, "values": [1.0, 2.0, 3.0, 4.0, 5.0], "threshold": 3.0}
    assert on_disk["num_users"] == 3 and on_disk["num_tags"] == 3
    assert on_disk["schema_version"] == features.SCHEMA_VERSION
    counts = sum(1 for _ in tf.data.TFRecordDataset([str(tmp_path / n) for n in shards if n.startswith("train")]))
    assert counts == 7
    reviews = {s: sum(1 for r in records if r.split == s for c in r.comments if c.rating != -1) for s in features.SPLITS}
    assert on_disk["reviews"] == reviews


def test_vocabulary_from_train_split_only(tmp_path):
    def rec(i, split, words):
        return features.ImageRecord(
            image_id=str(i), split=split, votes=[1, 0, 0, 0, 0], comments=[features.Comment(text=words, rating=1)]
        )

    records = [
        rec(0, "train", "Alpha beta beta"),
        rec(1, "val", "gamma beta"),
        rec(2, "test", "delta DELTA alpha"),
        rec(3, "train", "beta, Épsilon!"),
    ]
    manifest, _ = helpers.write(tmp_path, records)
    with open(tmp_path / "vocab.txt", encoding="utf-8") as f:
        assert f.read().split("\n") == ["beta", "alpha", "épsilon", ""]
    assert manifest["vocab_size"] == 3 + features.NUM_RESERVED_TOKENS
    raws = {r["image_id"].numpy(): r["comment_tokens"].to_list() for s in ("val", "test") for r in _read_all(tmp_path, s)}
    assert raws[b"1"] == [[features.OOV_ID, 2]]  # gamma unseen in train
    assert raws[b"2"] == [[features.OOV_ID, features.OOV_ID, 3]]


def test_vocab_min_count_and_max_size(tmp_path):
    records = [
        features.ImageRecord(image_id="a", comments=[features.Comment(text="x x x y y z")]),
    ]
    manifest, _ = helpers.write(tmp_path, records, vocab_min_count=2)
    assert (tmp_path / "vocab.txt").read_text() == "x\ny\n"
    manifest, _ = helpers.write(tmp_path, records, vocab_max_size=1)
    assert (tmp_path / "vocab.txt").read_text() == "x\n"
    assert manifest["vocab_size"] == 3


def test_bad_images_rules(tmp_path):
    """Truncated JPEG, PNG named .jpg, grayscale, RGBA, missing file, empty file, not an image."""
    image_dir = tmp_path / "img"
    image_dir.mkdir()
    good = helpers.image_bytes(seed=1)
    cases = {
        "ok": good,
        "truncated": good[: len(good) // 2],
        "png_as_jpg": helpers.image_bytes(fmt="PNG", seed=2),
        "gray": helpers.image_bytes(mode="L", seed=3),
        "rgba": helpers.image_bytes(mode="RGBA", fmt="PNG", seed=4),
        "empty": b"",
        "text": b"this is not an image at all",
    }
    records = []
    for name, data in cases.items():
        path = image_dir / f"{name}.jpg"
        path.write_bytes(data)
        records.append(features.ImageRecord(image_id=name, image_format="jpeg", load_image=helpers._file_loader(str(path))))
    records.append(
        features.ImageRecord(image_id="missing", load_image=helpers._file_loader(str(image_dir / "nope.jpg")))
    )

    def broken_loader():
        raise KeyError("no such archive member")

    records.append(features.ImageRecord(image_id="broken", load_image=broken_loader))
    manifest, rejections = helpers.write(tmp_path / "out", records)

    assert manifest["counts"]["rejected"] == {
        "image:missing_image_file": 1,
        "image:truncated_image": 1,
        "image:undecodable_image": 1,
        "image:unknown_image_format": 1,
        "image:unreadable_image": 1,
    }
    # png_as_jpg and rgba (a PNG too) are declared jpeg: kept with the detected format.
    assert manifest["counts"]["kept"] == {"image:image_format_mismatch": 2}
    with open(tmp_path / "out" / "rejected.jsonl", encoding="utf-8") as f:
        entries = [json.loads(line) for line in f]
    by_id = {e["image_id"]: e for e in entries}
    assert by_id["truncated"]["reason"] == "truncated_image"
    assert by_id["empty"]["reason"] == "undecodable_image"
    assert by_id["text"]["reason"] == "unknown_image_format"
    assert by_id["missing"]["reason"] == "missing_image_file" and "nope.jpg" in by_id["missing"]["detail"]
    assert by_id["broken"]["reason"] == "unreadable_image" and "KeyError" in by_id["broken"]["detail"]
    assert by_id["png_as_jpg"]["action"] == "kept"
    raws = {r["image_id"].numpy().decode(): r for r in _read_all(tmp_path / "out", "train")}
    assert sorted(raws) == ["gray", "ok", "png_as_jpg", "rgba"]
    assert raws["png_as_jpg"]["image_format"].numpy() == b"png"
    assert raws["rgba"]["image_format"].numpy() == b"png"
    assert raws["gray"]["image_format"].numpy() == b"jpeg"
    assert raws["png_as_jpg"]["encoded"].numpy() == cases["png_as_jpg"]
    assert manifest["has_images"] is True
    assert sorted(int(r["image_index"]) for r in raws.values()) == [0, 1, 2, 3]


def test_duplicates_wrong_bins_unknown_split_non_utf8(tmp_path):
    records = [
        features.ImageRecord(image_id="a", votes=[1, 2, 3, 4, 5], comments=[features.Comment(text=b"caf\xe9 ok")]),
        features.ImageRecord(image_id="a", votes=[1, 2, 3, 4, 5]),
        features.ImageRecord(image_id="b", votes=[1, 2, 3]),
        features.ImageRecord(image_id="c", votes=[1, -2, 3, 4, 5]),
        features.ImageRecord(image_id="d", split="training"),
        features.ImageRecord(image_id="e", votes=None),
        features.ImageRecord(image_id="f", votes=[0, 0, 0, 0, 0]),
    ]
    manifest, _ = helpers.write(tmp_path, records)
    assert manifest["counts"]["rejected"] == {
        "image:duplicate_id": 1,
        "image:invalid_votes": 1,
        "image:missing_votes": 1,
        "image:no_votes": 1,
        "image:unknown_split": 1,
        "image:votes_wrong_num_bins": 1,
    }
    assert manifest["counts"]["kept"] == {"comment:non_utf8_text": 1}
    assert manifest["splits"]["train"] == 1
    assert manifest["has_votes"] is True
    assert manifest["images_with_votes"] == {"train": 1, "val": 0, "test": 0}
    entries = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    wrong = [e for e in entries if e["reason"] == "votes_wrong_num_bins"][0]
    assert wrong["image_id"] == "b" and wrong["record"] == 3 and "len(votes)=3" in wrong["detail"]
    raw = {r["image_id"].numpy(): r for r in _read_all(tmp_path, "train")}
    assert raw[b"a"]["comment_text"].numpy()[0].decode("utf-8") == "caf\ufffd ok"
    assert sorted(raw) == [b"a"]
    # The caller's records are not modified except for the assigned index.
    assert records[0].comments[0].text == b"caf\xe9 ok"


def test_records_without_votes_say_so_and_mracnn_refuses_them(tmp_path):
    from tfaesthetic import config as config_lib

    records = helpers.make_records(8, with_images=False)
    for r in records:
        r.votes = None
    manifest, rejections = helpers.write(tmp_path, records)
    assert not rejections.entries  # no votes anywhere is allowed (text/ratings-only records)
    assert manifest["has_votes"] is False
    assert manifest["images_with_votes"] == {"train": 0, "val": 0, "test": 0}
    assert sum(manifest["splits"].values()) == 8
    assert writer.read_manifest(str(tmp_path))["has_votes"] is False
    mracnn = config_lib.with_overrides(
        config_lib.get_experiment("demo"), {"data.records_dir": str(tmp_path), "model.variant": "text_only"}
    )
    with pytest.raises(config_lib.ConfigError, match=f"--model=mracnn.*--records={tmp_path}.*has_votes: false"):
        config_lib.validate(mracnn, manifest=manifest, environ={})


def test_read_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        writer.read_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="Invalid JSON in .*manifest.json"):
        writer.read_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ValueError, match=r"manifest.json.*Received: schema_version=99"):
        writer.read_manifest(str(tmp_path))
