"""The feature contract: parse spec and Example serialisation round trip."""

import numpy as np
import pytest
import tensorflow as tf

from tfaesthetic import features


def _record(**kwargs):
    comments = [
        features.Comment(text="Great light", user_index=2, sentiment=4, rating=1),
        features.Comment(text="", user_index=-1, sentiment=2, rating=-1),
        features.Comment(text="café ✓ 10/10", user_index=0, sentiment=0, rating=0),
    ]
    base = dict(image_id="a/1", split="train", image_index=7, votes=[0, 3, 5, 1], tags=[4, 1], challenge=12, comments=comments)
    base.update(kwargs)
    return features.ImageRecord(**base)


def _parse(example):
    return tf.io.parse_single_example(example.SerializeToString(), features.parse_spec())


def test_parse_spec_keys_are_the_contract_keys():
    spec = features.parse_spec()
    expected = {
        features.IMAGE_ID, features.IMAGE_INDEX, features.IMAGE_ENCODED, features.IMAGE_FORMAT,
        features.VOTES, features.TAGS, features.CHALLENGE, features.COMMENT_TEXT, features.COMMENT_TOKENS,
        features.COMMENT_USER, features.COMMENT_SENTIMENT, features.COMMENT_RATING,
    }
    assert set(spec) == expected
    assert isinstance(spec[features.COMMENT_TOKENS], tf.io.RaggedFeature)


@pytest.mark.parametrize("with_image", [True, False])
def test_to_example_round_trip_every_field(with_image):
    record = _record(image_format="png")
    token_rows = [[5, 2, 9], [], [1, 3]]
    image = b"\x89PNG\r\n\x1a\nnot-really" if with_image else None
    parsed = _parse(features.to_example(record, token_rows, image))

    assert parsed[features.IMAGE_ID].numpy() == b"a/1"
    assert parsed[features.IMAGE_INDEX].numpy() == 7
    if with_image:
        assert parsed[features.IMAGE_ENCODED].numpy().tolist() == [image]
        assert parsed[features.IMAGE_FORMAT].numpy() == b"png"
    else:
        assert parsed[features.IMAGE_ENCODED].shape == (0,)
        assert parsed[features.IMAGE_FORMAT].numpy() == b""
    np.testing.assert_array_equal(parsed[features.VOTES].numpy(), [0, 3, 5, 1])
    np.testing.assert_array_equal(parsed[features.TAGS].numpy(), [4, 1])
    assert parsed[features.CHALLENGE].numpy() == 12
    assert [t.decode("utf-8") for t in parsed[features.COMMENT_TEXT].numpy()] == [c.text for c in record.comments]
    tokens = parsed[features.COMMENT_TOKENS]
    assert isinstance(tokens, tf.RaggedTensor)
    assert tokens.to_list() == token_rows
    np.testing.assert_array_equal(parsed[features.COMMENT_USER].numpy(), [2, -1, 0])
    np.testing.assert_array_equal(parsed[features.COMMENT_SENTIMENT].numpy(), [4, 2, 0])
    np.testing.assert_array_equal(parsed[features.COMMENT_RATING].numpy(), [1, -1, 0])


def test_to_example_without_votes_comments_or_tags():
    record = features.ImageRecord(image_id="x", votes=None, tags=(), comments=[])
    parsed = _parse(features.to_example(record, [], None))
    assert parsed[features.VOTES].shape == (0,)
    assert parsed[features.TAGS].shape == (0,)
    assert parsed[features.COMMENT_TOKENS].to_list() == []
    assert parsed[features.CHALLENGE].numpy() == features.UNKNOWN_CHALLENGE


def test_to_example_rejects_token_rows_mismatch():
    with pytest.raises(ValueError, match=r"len\(token_rows\)=1, len\(record.comments\)=3"):
        features.to_example(_record(), [[1]], None)
