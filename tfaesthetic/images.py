"""One rule for encoded image bytes, shared by the records builders and the serving graph.

What counts as an image that tfaesthetic accepts (the formats `tf.io.decode_image`
reads) is decided here once, in two forms that apply the same table and the same
tail rule:

- pure Python, for the records writer (`detect_format`, `structure_problem`,
  `image_size`, `pixel_problem`; no TensorFlow import), and
- TensorFlow ops, for the exported serving graph and the input pipeline
  (`check_image_bytes`, `image_sizes`).

The rules:

1. **Signature**: the bytes start with one of `SIGNATURES` (JPEG, PNG, GIF87a/89a,
   BMP, WebP = "RIFF" + "WEBP" at offset 8). Anything else is not an image.
2. **Complete structure**: a JPEG ends with its end-of-image marker FF D9,
   followed by at most `TAIL - 2` zero bytes (some writers pad files to a block
   size); a PNG holds its IEND chunk in its last `TAIL` bytes. A truncated file,
   or one with other data appended after its end (a phone's "motion photo"),
   breaks the rule: the builder rejects it, serving refuses it.
3. **Pixel budget**: width x height read from the header (no decoding) at most
   `DEFAULT_MAX_PIXELS` (50 megapixels) unless the caller sets another budget, so
   a small file that decodes to gigabytes (a 20000 x 20000 PNG is 1.2 MB) is
   refused before any decoder allocates its pixels.
"""

from __future__ import annotations

import struct
from typing import Optional

# Leading bytes of the formats `tf.io.decode_image` reads, as (format, magic).
SIGNATURES = (
    ("jpeg", b"\xff\xd8\xff"),
    ("png", b"\x89PNG\r\n\x1a\n"),
    ("gif", b"GIF87a"),
    ("gif", b"GIF89a"),
    ("bmp", b"BM"),
    ("webp", b"RIFF"),  # + WEBP_TAG at offset 8
)
WEBP_TAG = b"WEBP"

# Bytes at the end of an encoded image examined by the structure rule.
TAIL = 256
JPEG_EOI = b"\xff\xd9"
PNG_IEND = b"IEND"

# The default pixel budget (width x height) of one image: 50 megapixels.
DEFAULT_MAX_PIXELS = 50_000_000


def detect_format(data: bytes) -> str:
    """Returns "jpeg", "png", "gif", "bmp" or "webp" from the leading bytes, "" when none matches."""
    for name, magic in SIGNATURES:
        if data.startswith(magic) and (name != "webp" or data[8:12] == WEBP_TAG):
            return name
    return ""


def structure_problem(data: bytes, fmt: Optional[str] = None) -> Optional[tuple]:
    """The end-of-file rule (2) a JPEG/PNG breaks, as `(reason, detail)`; None when complete.

    Reasons: `truncated_image` (no end marker at all) and `bytes_after_end_marker`
    (the marker is there but other bytes follow it). Other formats always pass.

    Args:
        data: the encoded bytes.
        fmt: the format (`detect_format(data)` when None).
    """
    fmt = detect_format(data) if fmt is None else fmt
    tail = data[-TAIL:]
    if fmt == "jpeg":
        stripped = tail.rstrip(b"\x00")
        if stripped.endswith(JPEG_EOI) and len(stripped) >= 2:
            return None
        position = data.rfind(JPEG_EOI)
        if position < 0:
            return "truncated_image", "JPEG without its FF D9 end-of-image marker (a truncated file)"
        extra = len(data) - position - 2
        return (
            "bytes_after_end_marker",
            f"JPEG with {extra} byte(s) after its FF D9 end-of-image marker (serving refuses it too; "
            "keep the image part only)",
        )
    if fmt == "png":
        if PNG_IEND in tail:
            return None
        position = data.rfind(PNG_IEND)
        if position < 0:
            return "truncated_image", "PNG without its IEND chunk (a truncated file)"
        return (
            "bytes_after_end_marker",
            f"PNG with {len(data) - position - 8} byte(s) after its IEND chunk (serving refuses it too)",
        )
    return None


def _jpeg_size(data: bytes) -> Optional[tuple]:
    # Walk the marker segments up to the first start-of-frame (SOF0..SOF15 but DHT, JPG, DAC).
    offset = 2
    n = len(data)
    while offset + 4 <= n:
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD8:  # stand-alone markers
            offset += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if offset + 9 > n:
                return None
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        offset += 2 + length
    return None


def _webp_size(data: bytes) -> Optional[tuple]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def image_size(data: bytes, fmt: Optional[str] = None) -> Optional[tuple]:
    """`(width, height)` read from the header of encoded bytes, without decoding; None if unreadable.

    Reads a few bytes at fixed offsets (PNG IHDR, GIF logical screen, BMP info
    header, WebP VP8/VP8L/VP8X) or walks the JPEG marker segments up to the frame
    header; memory and time do not depend on the pixel count.
    """
    fmt = detect_format(data) if fmt is None else fmt
    try:
        if fmt == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if fmt == "gif" and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
        if fmt == "bmp" and len(data) >= 26:
            (header_size,) = struct.unpack("<I", data[14:18])
            if header_size == 12:  # OS/2 BITMAPCOREHEADER
                width, height = struct.unpack("<HH", data[18:22])
            else:
                width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if fmt == "webp":
            return _webp_size(data)
        if fmt == "jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def pixel_problem(data: bytes, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, fmt: Optional[str] = None):
    """The pixel-budget rule (3) the bytes break, as `(reason, detail)`; None when within budget.

    Reason `too_many_pixels`. Bytes whose header cannot be read pass here (the
    decoder then decides). `max_pixels=None` or 0 turns the budget off.
    """
    if not max_pixels:
        return None
    size = image_size(data, fmt)
    if size is None:
        return None
    width, height = size
    if width * height > max_pixels:
        return (
            "too_many_pixels",
            f"{width}x{height} = {width * height} pixels, over the budget of {max_pixels} "
            "(the --max_pixels flag of the builders)",
        )
    return None


def check_image_bytes(image_bytes, name: str = "image_bytes"):
    """TensorFlow form of rules 1 and 2: fails naming `name` when an element is not a complete image.

    For graphs (the serving signature): checks the signature of every element of a
    string `[B]` tensor and the end rule of JPEG/PNG files, then returns the tensor
    with the check as a control dependency. The failure is an
    `InvalidArgumentError` whose message starts with `"<name>: "` and gives the
    batch positions at fault and their first and last 8 bytes (as numbers).

    Args:
        image_bytes: string `[B]`.
        name: the input's name, first word of the message.
    """
    import tensorflow as tf

    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    head = tf.strings.substr(tf.strings.join([image_bytes, "\0" * 12]), 0, 12)
    ok = tf.zeros_like(image_bytes, dtype=tf.bool)
    matches = {}
    for fmt, magic in SIGNATURES:
        match = tf.equal(tf.strings.substr(head, 0, len(magic)), magic)
        if fmt == "webp":
            match = tf.logical_and(match, tf.equal(tf.strings.substr(head, 8, 4), WEBP_TAG))
        matches[fmt] = tf.logical_or(matches[fmt], match) if fmt in matches else match
        ok = tf.logical_or(ok, match)
    ok = tf.logical_and(ok, _complete_structure_tf(image_bytes, matches["jpeg"], matches["png"]))
    bad = tf.reshape(tf.where(tf.logical_not(ok)), [-1])
    ends = tf.strings.join([tf.constant(b"\0" * 8), image_bytes])
    ends = tf.strings.substr(ends, tf.strings.length(ends) - 8, tf.fill(tf.shape(ends), 8))
    assertion = tf.debugging.Assert(
        tf.reduce_all(ok),
        [
            f"{name}: expected complete encoded JPEG, PNG, GIF, BMP or WebP bytes (the original file; "
            "a JPEG ends with its FF D9 marker, a PNG with its IEND chunk). "
            "Received undecodable or truncated bytes at batch positions",
            bad,
            "; their first 8 bytes:",
            tf.gather(tf.io.decode_raw(tf.strings.substr(head, 0, 8), tf.uint8), bad),
            "; their last 8 bytes:",
            tf.gather(tf.io.decode_raw(ends, tf.uint8), bad),
        ],
        summarize=64,
        name="check_image_bytes",
    )
    with tf.control_dependencies([assertion]):
        return tf.identity(image_bytes)


def _complete_structure_tf(image_bytes, is_jpeg, is_png):
    """Rule 2 as ops: True where a JPEG ends with FF D9 (zero padding allowed) and a PNG holds IEND in its tail."""
    import tensorflow as tf

    # A non-zero prefix makes every string at least TAIL bytes long without adding a
    # marker; the last TAIL bytes then decode to a fixed-size uint8 row.
    padded = tf.strings.join([tf.constant(b"\x01" * TAIL), image_bytes])
    tail = tf.strings.substr(padded, tf.strings.length(padded) - TAIL, tf.fill(tf.shape(padded), TAIL))
    tail = tf.cast(tf.reshape(tf.io.decode_raw(tail, tf.uint8), [-1, TAIL]), tf.int32)
    last = TAIL - 1 - tf.argmax(tf.cast(tf.reverse(tail, axis=[1]) != 0, tf.int32), axis=1, output_type=tf.int32)
    rows = tf.range(tf.shape(tail)[0])
    at_last = tf.gather_nd(tail, tf.stack([rows, last], axis=1))
    before_last = tf.gather_nd(tail, tf.stack([rows, tf.maximum(last - 1, 0)], axis=1))
    jpeg_ok = (last >= 1) & tf.equal(before_last, JPEG_EOI[0]) & tf.equal(at_last, JPEG_EOI[1])
    iend = tf.ones_like(tail[:, : TAIL - 3], dtype=tf.bool)
    for offset, char in enumerate(PNG_IEND):
        iend = iend & tf.equal(tail[:, offset : TAIL - 3 + offset], char)
    png_ok = tf.reduce_any(iend, axis=1)
    return tf.logical_and(tf.logical_or(tf.logical_not(is_jpeg), jpeg_ok), tf.logical_or(tf.logical_not(is_png), png_ok))


def _le(row, start, n):
    """Little-endian unsigned integer of `n` bytes at `start` of int64 byte rows `[B, L]`."""
    value = 0
    for i in reversed(range(n)):
        value = value * 256 + row[:, start + i]
    return value


def _be(row, start, n):
    value = 0
    for i in range(n):
        value = value * 256 + row[:, start + i]
    return value


def image_sizes(image_bytes):
    """TensorFlow form of `image_size`: `(width, height)` int64 `[B, 2]` from the headers, -1 where unreadable.

    For graphs (the serving signature, the input pipeline): reads the same header
    fields as `image_size` (PNG IHDR, GIF, BMP, WebP at fixed offsets;
    `tf.io.extract_jpeg_shape`, which parses only the JPEG markers, for JPEG),
    never the pixels. Run it after `check_image_bytes` (a JPEG whose markers are
    broken fails in `extract_jpeg_shape`).

    Args:
        image_bytes: string `[B]`.
    """
    import tensorflow as tf

    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    head = tf.strings.substr(tf.strings.join([image_bytes, "\0" * 32]), 0, 32)
    row = tf.cast(tf.reshape(tf.io.decode_raw(head, tf.uint8), [-1, 32]), tf.int64)

    def starts(magic, offset=0):
        return tf.equal(tf.strings.substr(head, offset, len(magic)), magic)

    is_png = starts(SIGNATURES[1][1]) & starts(b"IHDR", 12)
    is_gif = starts(b"GIF87a") | starts(b"GIF89a")
    is_bmp = starts(b"BM")
    is_webp = starts(b"RIFF") & starts(WEBP_TAG, 8)
    is_jpeg = starts(SIGNATURES[0][1])
    minus = tf.fill(tf.shape(image_bytes), tf.constant(-1, tf.int64))

    png = (_be(row, 16, 4), _be(row, 20, 4))
    gif = (_le(row, 6, 2), _le(row, 8, 2))
    core = tf.equal(_le(row, 14, 4), 12)  # OS/2 BITMAPCOREHEADER: 16-bit sizes

    def signed32(v):
        return tf.abs(tf.where(v >= 2**31, v - 2**32, v))

    bmp = (
        tf.where(core, _le(row, 18, 2), signed32(_le(row, 18, 4))),
        tf.where(core, _le(row, 20, 2), signed32(_le(row, 22, 4))),
    )
    vp8x, vp8l = starts(b"VP8X", 12), starts(b"VP8L", 12)
    vp8 = starts(b"VP8 ", 12)
    bits = _le(row, 21, 4)
    webp_ok = vp8x | vp8l | vp8
    webp = (
        tf.where(vp8x, 1 + _le(row, 24, 3), tf.where(vp8l, 1 + bits % 16384, _le(row, 26, 2) % 16384)),
        tf.where(vp8x, 1 + _le(row, 27, 3), tf.where(vp8l, 1 + (bits // 16384) % 16384, _le(row, 28, 2) % 16384)),
    )

    def jpeg_size(args):
        data, ok = args
        return tf.cond(
            ok,
            lambda: tf.cast(tf.reverse(tf.io.extract_jpeg_shape(data)[:2], [0]), tf.int64),
            lambda: tf.constant([-1, -1], tf.int64),
        )

    jpeg = tf.map_fn(jpeg_size, (image_bytes, is_jpeg), fn_output_signature=tf.TensorSpec([2], tf.int64))
    width, height = minus, minus
    for cond, (w, h) in ((is_png, png), (is_gif, gif), (is_bmp, bmp), (is_webp & webp_ok, webp)):
        width, height = tf.where(cond, w, width), tf.where(cond, h, height)
    width, height = tf.where(is_jpeg, jpeg[:, 0], width), tf.where(is_jpeg, jpeg[:, 1], height)
    return tf.stack([width, height], axis=1)
