"""Decoder: serialized records -> raw tensors, all outputs or a subset."""

import pytest
import tensorflow as tf

from tests.data import helpers
from tfaesthetic.data import decoder


def test_subset_decoder_matches_full_decoder(tmp_path):
    helpers.write(tmp_path, helpers.make_records(6, split_of=lambda i: "train"), num_shards=1)
    serialized = list(tf.data.TFRecordDataset(str(tmp_path / "train-00000-of-00001.tfrecord")))
    full = decoder.Decoder()
    subset = decoder.Decoder(["image_id", "encoded", "comment_tokens"])
    assert set(full(serialized[0])) == set(decoder.OUTPUTS)
    for s in serialized:
        a, b = full(s), subset(s)
        assert set(b) == {"image_id", "encoded", "comment_tokens"}
        assert a["image_id"].numpy() == b["image_id"].numpy()
        assert a["encoded"].numpy() == b["encoded"].numpy() and len(b["encoded"].numpy()) > 100
        assert a["comment_tokens"].to_list() == b["comment_tokens"].to_list()


def test_decoder_in_dataset_map(tmp_path):
    helpers.write(tmp_path, helpers.make_records(4, with_images=False, split_of=lambda i: "train"), num_shards=1)
    ds = tf.data.TFRecordDataset(str(tmp_path / "train-00000-of-00001.tfrecord")).map(decoder.Decoder())
    for raw in ds:
        assert not raw["has_image"].numpy() and raw["encoded"].numpy() == b""
        assert isinstance(raw["comment_tokens"], tf.RaggedTensor)


def test_unknown_output_is_named():
    with pytest.raises(ValueError, match="'pixels'"):
        decoder.Decoder(["image_id", "pixels"])
