"""Small hand-made records for the writer and pipeline tests (Pillow images, no demo generator)."""

import io
import os

import numpy as np
from PIL import Image

from tfaesthetic import features
from tfaesthetic.records import writer
from tfaesthetic.records.rejections import Rejections

SCALE = features.ScoreScale(values=(1.0, 2.0, 3.0, 4.0, 5.0), threshold=3.0)
USERS = ["alice", "bob", "carol"]
TAGS = ["nature", "portrait", "urban"]

WORDS = ["sharp", "blurry", "lovely", "colours", "dark", "bright", "composition", "nice", "meh", "focus"]


def image_bytes(width=40, height=30, mode="RGB", fmt="JPEG", seed=0):
    """Encoded bytes of a small random image made with Pillow."""
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def make_records(n=12, *, with_images=True, split_of=None, seed=0, image_dir=None, comments_per_image=None):
    """`n` ImageRecords with votes, tags, comments; images either in memory or lazily from files.

    Args:
        n: number of records.
        with_images: attach JPEG images.
        split_of: function index -> split (default: 0..n-1 cycles train, train, val, test... ).
        seed: RNG seed.
        image_dir: when given, images are written there and loaded lazily via `load_image`.
        comments_per_image: function index -> number of comments (default index % 4, so some have none).
    """
    rng = np.random.default_rng(seed)
    split_of = split_of or (lambda i: ("train", "train", "val", "test")[i % 4])
    comments_per_image = comments_per_image or (lambda i: i % 4)
    records = []
    for i in range(n):
        comments = []
        for j in range(comments_per_image(i)):
            words = rng.choice(WORDS, size=int(rng.integers(0, 6)))
            comments.append(
                features.Comment(
                    text=" ".join(words).capitalize() + ("!" if j % 2 else "."),
                    user_index=int(rng.integers(-1, len(USERS))),
                    sentiment=int(rng.integers(0, 5)),
                    rating=int(rng.integers(-1, 2)),
                )
            )
        record = features.ImageRecord(
            image_id=f"img{i:03d}",
            split=split_of(i),
            votes=[int(v) for v in rng.integers(0, 20, size=SCALE.num_bins)],
            tags=[int(t) for t in rng.choice(len(TAGS), size=int(rng.integers(0, 3)), replace=False)],
            challenge=int(rng.integers(-1, 5)),
            comments=comments,
        )
        if with_images:
            data = image_bytes(width=int(rng.integers(20, 60)), height=int(rng.integers(20, 60)), seed=i)
            record.image_format = "jpeg"
            if image_dir is None:
                record.encoded = data
            else:
                path = os.path.join(image_dir, f"{record.image_id}.jpg")
                with open(path, "wb") as f:
                    f.write(data)
                record.load_image = _file_loader(path)
        records.append(record)
    return records


def _file_loader(path):
    def load():
        with open(path, "rb") as f:
            return f.read()

    return load


def write(out_dir, records, **kwargs):
    """`write_records` with the test scale/users/tags; returns (manifest, rejections)."""
    rejections = kwargs.pop("rejections", None) or Rejections()
    kwargs.setdefault("num_shards", 2)
    manifest = writer.write_records(
        str(out_dir), records, scale=SCALE, users=USERS, tags=TAGS, source="test", rejections=rejections, **kwargs
    )
    return manifest, rejections
