"""Parser: image decoding to RGB [0, 255], token joining, review expansion, train-only augmentation."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfaesthetic.data import parser as parser_lib


def _solid(mode, color, size=(50, 20), fmt="PNG"):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    "mode,color,fmt,expected",
    [
        ("RGB", (10, 200, 30), "PNG", (10, 200, 30)),
        ("RGBA", (10, 200, 30, 40), "PNG", (10, 200, 30)),  # alpha dropped
        ("L", 77, "PNG", (77, 77, 77)),  # grayscale replicated
        ("L", 77, "JPEG", (77, 77, 77)),
        ("RGB", (10, 200, 30), "BMP", (10, 200, 30)),
    ],
)
def test_decode_image_any_channels_to_rgb_float(mode, color, fmt, expected):
    image = parser_lib.decode_image(tf.constant(_solid(mode, color, fmt=fmt)), 16)
    assert image.shape == (16, 16, 3) and image.dtype == tf.float32
    np.testing.assert_allclose(image.numpy().reshape(-1, 3).mean(0), expected, atol=2.0)


def test_decode_image_resizes_any_aspect_without_crop():
    # Left half black, right half white, 90x30: a squash keeps the halves (a centre crop would too,
    # but then the edge columns would be interior ones); check the far columns keep their colours.
    pixels = np.zeros((30, 90, 3), np.uint8)
    pixels[:, 45:] = 255
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    image = parser_lib.decode_image(tf.constant(buf.getvalue()), 12).numpy()
    assert image.min() >= 0.0 and image.max() <= 255.0
    np.testing.assert_allclose(image[:, :5], 0.0, atol=1e-3)
    np.testing.assert_allclose(image[:, 7:], 255.0, atol=1e-3)


def test_join_tokens_concatenates_comments_then_truncates_or_pads():
    tokens = tf.ragged.constant([[5, 6], [], [7, 8, 9]], dtype=tf.int64)
    assert parser_lib.join_tokens(tokens, 4).numpy().tolist() == [5, 6, 7, 8]
    assert parser_lib.join_tokens(tokens, 7).numpy().tolist() == [5, 6, 7, 8, 9, 0, 0]
    empty = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64), tf.zeros([0], tf.int64))
    out = parser_lib.join_tokens(empty, 3)
    assert out.dtype == tf.int32 and out.numpy().tolist() == [0, 0, 0]


def _raw(votes=(0, 1, 3, 4, 2), ratings=(1, -1, 0, 1), users=(2, 0, -1, 1)):
    n = len(ratings)
    return {
        "image_id": tf.constant(b"img"),
        "image_index": tf.constant(5, tf.int64),
        "encoded": tf.constant(_solid("RGB", (1, 2, 3))),
        "votes": tf.constant(list(votes), tf.int64),
        "tags": tf.constant([2, 0], tf.int64),
        "comment_text": tf.constant([b"x"] * n),
        "comment_tokens": tf.ragged.constant([[i + 2] * (i + 1) for i in range(n)], dtype=tf.int64),
        "comment_user": tf.constant(list(users), tf.int64),
        "comment_rating": tf.constant(list(ratings), tf.int64),
    }


def _parser(mode, feats, **kw):
    args = dict(mode=mode, features=feats, image_size=8, max_len=3, num_bins=5,
                score_values=(1, 2, 3, 4, 5), threshold=3.0, num_users=3)
    args.update(kw)
    return parser_lib.Parser(**args)


def test_image_mode_distribution_is_normalised_votes():
    p = _parser("image", ("image", "tokens"))
    feats, labels, meta = p.image_example(p.parse_image(_raw()))
    np.testing.assert_allclose(labels["distribution"].numpy(), np.array([0, 1, 3, 4, 2]) / 10.0)
    assert feats["tokens"].numpy().tolist() == [2, 3, 3]
    assert meta["tag"].numpy() == 2 and meta["image_id"].numpy() == b"img"
    no_votes = p.image_example(p.parse_image(_raw(votes=())))[1]["distribution"]
    assert no_votes.numpy().tolist() == [0.0] * 5


def test_review_mode_expands_rated_reviews_only():
    p = _parser("review", ("image", "image_index", "user_index", "review"))
    examples = list(p.review_examples(p.parse_image(_raw())))
    assert len(examples) == 3  # rating -1 not expanded
    users = [int(f["user_index"]) for f, _, _ in examples]
    assert users == [2, 3, 1]  # anonymous (-1) -> num_users
    assert [float(l["user_rating"]) for _, l, _ in examples] == [1.0, 0.0, 1.0]
    assert [f["review"].numpy().tolist() for f, _, _ in examples] == [[2, 0, 0], [4, 4, 4], [5, 5, 5]]
    # Mean score 3.6 > threshold 3 -> good; (NumPy reference of "mean score > threshold").
    mean = np.dot(np.array([0, 1, 3, 4, 2]) / 10.0, np.arange(1, 6))
    assert all(float(l["agnostic_rating"]) == float(mean > 3.0) for _, l, _ in examples)
    # The soft label: the share of votes in the bins above the threshold (scores 4 and 5).
    share = (4 + 2) / 10.0
    assert all(abs(float(l["agnostic_share"]) - share) < 1e-6 for _, l, _ in examples)
    assert all(int(l["tag"]) == 2 and int(f["image_index"]) == 5 for f, l, _ in examples)
    assert examples[0][0]["image"].shape == (8, 8, 3)


def test_review_mode_without_votes_marks_agnostic_unknown():
    p = _parser("review", ("image_index", "user_index", "review"))
    (_, labels, _), *_ = list(p.review_examples(p.parse_image(_raw(votes=()))))
    assert float(labels["agnostic_rating"]) == -1.0
    assert float(labels["agnostic_share"]) == -1.0


def test_augmentation_is_a_flip_and_train_only():
    p = _parser("image", ("image", "tokens"), seed=3)
    pixels = np.zeros((8, 8, 3), np.float32)
    pixels[:, :4] = 255.0
    parsed = {"image": tf.constant(pixels)}
    outs = {p.augment_image(parsed)["image"].numpy().tobytes() for _ in range(20)}
    assert outs == {pixels.tobytes(), pixels[:, ::-1].tobytes()}
    off = _parser("image", ("image", "tokens"), augment=False)
    assert off.augment_image(parsed)["image"].numpy().tobytes() == pixels.tobytes()


def test_parser_rejects_unknown_mode_and_features():
    with pytest.raises(ValueError, match="mode='pairs'"):
        _parser("pairs", ("image",))
    with pytest.raises(ValueError, match="'review'"):
        _parser("image", ("image", "review"))
    with pytest.raises(ValueError, match="len\\(score_values\\)=2"):
        _parser("image", ("tokens",), score_values=(1, 2))


@pytest.mark.parametrize(
    "fmt, size, mode, kwargs",
    [("JPEG", (70, 50), "RGB", {}), ("PNG", (33, 77), "RGBA", {}), ("GIF", (40, 20), "L", {}),
     ("BMP", (31, 17), "RGB", {}), ("WEBP", (45, 23), "RGB", {}), ("WEBP", (16383, 3), "RGB", {"lossless": True}),
     ("WEBP", (45, 23), "RGBA", {}), ("PNG", (70000, 2), "L", {})],
)
def test_image_shape_reads_the_header_of_every_format(fmt, size, mode, kwargs):
    import io

    from PIL import Image

    from tfaesthetic.data import parser as parser_lib

    width, height = size
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, channels), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode=mode).save(buf, format=fmt, **kwargs)
    assert parser_lib.image_shape(tf.constant(buf.getvalue())).numpy().tolist() == [height, width]
    assert parser_lib.image_shape(tf.constant(b"not an image")).numpy().tolist() == [-1, -1]


def test_training_branch_is_uint8_and_large_jpegs_decode_downscaled():
    import io

    from PIL import Image

    from tfaesthetic.data import parser as parser_lib

    gradient = np.broadcast_to(np.linspace(0, 255, 1000, dtype=np.float32)[None, :, None], (800, 1000, 3))
    buf = io.BytesIO()
    Image.fromarray(gradient.astype(np.uint8)).save(buf, format="JPEG", quality=90)
    data = tf.constant(buf.getvalue())
    fast = parser_lib.decode_image(data, 224).numpy()  # decoded at 1/2 (800 >= 2 x 224), then resized
    full = tf.image.resize(tf.cast(tf.io.decode_jpeg(data, channels=3), tf.float32), [224, 224], antialias=True).numpy()
    assert np.abs(fast - full).mean() < 1.5
    as_uint8 = parser_lib.decode_image(data, 224, dtype=tf.uint8).numpy()
    assert as_uint8.dtype == np.uint8 and np.abs(as_uint8 - fast).max() <= 0.5 + 1e-3  # rounded, not truncated
