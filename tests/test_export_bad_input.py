"""Serving: truncated JPEG / PNG uploads fail naming `image_bytes` and the batch positions."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests._serving import fixtures as fx
from tfaesthetic import export


def check(images):
    return export.check_image_bytes(tf.constant(images))


def gif_bytes():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="GIF")
    return buf.getvalue()


def test_complete_images_pass_the_structure_check():
    jpeg, png = fx.jpeg_bytes(seed=1), fx.png_bytes(seed=2)
    assert jpeg.endswith(b"\xff\xd9") and b"IEND" in png[-12:]
    padded_jpeg = jpeg + b"\0" * 200  # zero padding after the end marker
    images = [jpeg, png, padded_jpeg, gif_bytes()]
    checked = check(images).numpy().tolist()
    assert [len(b) for b in checked] == [len(b) for b in images] and checked == images
    # And what passes decodes (the check does not let through what the decoder refuses).
    for data in images:
        tf.io.decode_image(data, channels=3, expand_animations=False)


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_truncated_image_fails_naming_input_and_positions(kind):
    good = fx.jpeg_bytes(seed=3) if kind == "jpeg" else fx.png_bytes(seed=4)
    truncated = good[: len(good) * 2 // 3]
    # Without the check the decoder fails with a message that names no input.
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_image(truncated, channels=3, expand_animations=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)image_bytes:.*batch positions\W*1\W+3\b") as info:
        check([good, truncated, good, truncated])
    assert "truncated" in str(info.value)


def test_jpeg_with_too_much_padding_or_garbage_after_the_marker_fails():
    jpeg = fx.jpeg_bytes(seed=5)
    for bad in (jpeg + b"\0" * 300, jpeg + b"trailing", b"\xff\xd8\xff", b""):
        with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes"):
            check([bad])


@pytest.fixture(scope="module")
def exported_cfan(tmp_path_factory):
    import keras

    root = tmp_path_factory.mktemp("bad_input")
    records = fx.write_tiny_records(str(root / "records"))
    keras.utils.set_random_seed(3)
    model = fx.tiny_cfan(records)
    return export.export_model(model, records, str(root / "export"), model_name="cfan")


def test_saved_model_refuses_truncated_images_by_name(exported_cfan):
    serve = tf.saved_model.load(exported_cfan).signatures["serving_default"]
    jpeg, png = fx.jpeg_bytes(seed=6), fx.png_bytes(seed=7)
    kwargs = dict(comments=tf.constant(["nice", "dark"]), user_id=tf.constant(["u0", "u1"]),
                  image_id=tf.constant(["img0", "img1"]))
    out = serve(image_bytes=tf.constant([jpeg, png]), **kwargs)
    assert np.all(np.isfinite(out["user_rating"].numpy()))
    for bad in ([jpeg, png[:-20]], [jpeg[:-100], png]):
        with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes:.*batch positions"):
            serve(image_bytes=tf.constant(bad), **kwargs)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)image_bytes:.*batch positions\W*1\b"):
        serve(image_bytes=tf.constant([jpeg, jpeg[:-100]]), **kwargs)
