"""Serving: truncated JPEG / PNG uploads fail naming `image_bytes` and the batch positions."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests._serving import fixtures as fx
from tfaesthetic.serving import export
from tfaesthetic import images as images_lib


def check(images):
    return images_lib.check_image_bytes(tf.constant(images))  # what the serving graph runs


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


# --- serving input checks (issue 12: cases 10 and 11) ---------------------------------

LENGTHS = "serving inputs: every input needs one value per example"


def bomb_png(width=20000, height=20000) -> bytes:
    """A valid 8-bit grayscale PNG of width x height zeros, compressed to ~0.4 MB (1.2 GB as RGB)."""
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    # Deflate blocks after a full flush do not refer back, so one compressed block of
    # `rows` zero rows repeats; the stream ends with an empty final block and the Adler-32.
    rows = 500
    assert height % rows == 0
    zeros = b"\0" * ((width + 1) * rows)  # a filter byte + the pixels, per row
    comp = zlib.compressobj(9)
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    assert first[2:] == block
    adler = 1
    for _ in range(height // rows):
        adler = zlib.adler32(zeros, adler)
    stream = first[:2] + block * (height // rows) + b"\x03\x00" + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


def jpeg_marker_garbage(seed=0) -> bytes:
    """Random bytes between a JPEG start (FF D8 FF E0) and end (FF D9) marker: passes the structure check."""
    rng = np.random.default_rng(seed)
    return b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes() + b"\xff\xd9"


@pytest.fixture(scope="module")
def mracnn_serving():
    """In-process serving functions of a tiny MRACNN (no export: the same `serve_raw` code, eagerly)."""
    import keras
    import tempfile

    records = fx.write_tiny_records(tempfile.mkdtemp(prefix="serving_checks_"))
    keras.utils.set_random_seed(4)
    return export.ServingFunctions(fx.tiny_mracnn(records), records)


@pytest.mark.parametrize("n_images, n_comments", [(3, 1), (1, 3), (3, 2)])
def test_mracnn_inputs_of_different_lengths_are_refused_naming_both(mracnn_serving, n_images, n_comments):
    images = [fx.jpeg_bytes(seed=i) for i in range(n_images)]
    comments = ["nice light"] * n_comments
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"{LENGTHS}.*Received lengths: image_bytes = {n_images}, comments = {n_comments}\b",
    ):
        mracnn_serving(image_bytes=images, comments=comments)
    out = mracnn_serving(image_bytes=images, comments=["nice light"] * n_images)
    assert out["distribution"].shape == (n_images, 10)


def _cfan_request(n, **overrides):
    kwargs = dict(
        image_bytes=tf.constant([fx.jpeg_bytes(seed=20 + i) for i in range(n)]),
        comments=tf.constant(["nice", "dark", "sharp"][:n]),
        user_id=tf.constant(["u0", "u1", "u2"][:n]),
        image_id=tf.constant(["img0", "img1", "img2"][:n]),
    )
    kwargs.update({k: tf.constant(v, tf.string) for k, v in overrides.items()})
    return kwargs


def test_saved_model_cfan_lengths_empty_batch_garbage_and_spaced_ids(exported_cfan):
    serve = tf.saved_model.load(exported_cfan).signatures["serving_default"]
    # Mismatched lengths: named, with every input's length (no einsum error from inside the model).
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"{LENGTHS}.*image_bytes = 3, comments = 3, user_id = 2, image_id = 3",
    ):
        serve(**_cfan_request(3, user_id=["u0", "u1"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"{LENGTHS}.*comments = 1,"):
        serve(**_cfan_request(3, comments=["one review for three images"]))
    # A batch of 0: every output with 0 rows.
    empty = serve(**{k: tf.constant([], tf.string) for k in ("image_bytes", "comments", "user_id", "image_id")})
    assert empty and all(v.shape[0] == 0 for v in empty.values())
    assert empty["tag"].shape == (0, len(fx.TAGS))
    # Random bytes between JPEG markers: the documented message, not `jpeg::Uncompress failed`.
    good = fx.jpeg_bytes(seed=30)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"image_bytes: .*decoder refused.*batch positions \[1\]"
    ) as info:
        serve(**_cfan_request(2, image_bytes=[good, jpeg_marker_garbage()]))
    assert "Uncompress" not in str(info.value)
    # A user id with surrounding spaces is the builders' (stripped) id.
    spaced = serve(**_cfan_request(1, user_id=[" u1 \t"], image_id=["img0 "]))
    plain = serve(**_cfan_request(1, user_id=["u1"], image_id=["img0"]))
    assert int(spaced["known_user"][0]) == 1
    np.testing.assert_allclose(spaced["user_rating"].numpy(), plain["user_rating"].numpy(), atol=1e-6)
    assert int(serve(**_cfan_request(1, user_id=["u 1"]))["known_user"][0]) == 0  # inner space kept


_BOMB_CHILD = r"""
import resource, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401

export_dir, bomb_path, good_path = sys.argv[1:4]
serve = tf.saved_model.load(export_dir).signatures["serving_default"]
def request(data):
    return dict(image_bytes=tf.constant([data]), comments=tf.constant(["nice"]), user_id=tf.constant(["u0"]),
                image_id=tf.constant(["img0"]))
serve(**request(open(good_path, "rb").read()))  # warm up: every kernel loaded
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the high-water mark: VmHWM is then the peak of the call below
before = status("VmRSS")
try:
    serve(**request(open(bomb_path, "rb").read()))
    print("RESULT served")
except tf.errors.InvalidArgumentError as e:
    print("RESULT refused", status("VmHWM") - before, e.message.replace("\n", " ")[-400:])
"""


@pytest.mark.slow  # a fresh serving process
def test_decompression_bomb_is_refused_before_decoding_within_a_memory_bound(exported_cfan, tmp_path):
    import subprocess
    import sys

    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc/self/clear_refs to measure the peak memory of one call")
    bomb = bomb_png()
    assert len(bomb) < 1_500_000  # small on disk, 20000 x 20000 = 400 megapixels
    (tmp_path / "bomb.png").write_bytes(bomb)
    (tmp_path / "good.jpg").write_bytes(fx.jpeg_bytes(seed=31))
    proc = subprocess.run(
        [sys.executable, "-c", _BOMB_CHILD, exported_cfan, str(tmp_path / "bomb.png"), str(tmp_path / "good.jpg")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1].split(" ", 3)
    assert line[1] == "refused", line
    growth_mb = int(line[2])
    # Decoding would allocate 1.2 GB (uint8 RGB) and 4.8 GB (float32); the header check needs ~nothing.
    assert growth_mb < 150, f"peak memory grew by {growth_mb} MB during the refused call"
    assert "image_bytes: images over the pixel budget of 50000000 pixels" in line[3]
    assert "batch positions [0]" in line[3] and "[[20000 20000]]" in line[3]


def test_pixel_budget_in_the_serving_functions_and_the_training_parser():
    from tfaesthetic.data import parser

    bomb = bomb_png(9000, 6000)  # 54 megapixels
    np.testing.assert_array_equal(parser.image_shape(tf.constant(bomb)).numpy(), [6000, 9000])
    images = tf.constant([fx.jpeg_bytes(seed=1), bomb])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes: images over the pixel budget.*\[1\]"):
        export.decode_checked_images(images, 32)
    assert export.decode_checked_images(images[:1], 32).shape == (1, 32, 32, 3)
    p = parser.Parser(mode="image", features=("image", "tokens"), image_size=32, max_len=4, num_bins=10,
                      score_values=list(range(1, 11)), threshold=5.0)
    raw = {"image_id": tf.constant("big-one"), "encoded": tf.constant(bomb), "votes": tf.ones([10], tf.int64),
           "tags": tf.zeros([0], tf.int64), "comment_tokens": tf.ragged.constant([[2, 3]], dtype=tf.int64)}
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)Image.*big-one.*has.*9000.*x.*6000.*pixels .*budget of 50000000"):
        p.parse_image(raw, training=True)
