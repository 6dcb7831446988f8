"""Tiny records, images and models shared by the export and predict tests."""

import io

import numpy as np
from PIL import Image

from tfaesthetic import features
from tfaesthetic.records import writer
from tfaesthetic.records.rejections import Rejections

IMAGE_SIZE = 48
MAX_LEN = 24
USERS = ["u0", "u1", "u2", "u3"]
NUM_IMAGES = 6
TAGS = ["landscape", "portrait"]

_COMMENTS = [
    "great colours and a sharp subject",
    "too dark and blurry",
    "nice composition, wonderful light",
    "the horizon is tilted and the sky is blown out",
    "sharp, nice colours",
    "boring and noisy",
]


def jpeg_bytes(seed: int = 0, size=(64, 48)) -> bytes:
    """A Pillow-made JPEG with smooth structure (not noise), `size` = (width, height)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(0, 255, size=3)
    img = base + 120 * np.stack([np.sin(6 * xx + seed), np.cos(5 * yy - seed), np.sin(4 * (xx + yy))], -1)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def png_bytes(seed: int = 0, size=(40, 40)) -> bytes:
    """A Pillow-made RGBA PNG."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(size[1], size[0], 4), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img, mode="RGBA").save(buf, format="PNG")
    return buf.getvalue()


def comments_of(i: int) -> list:
    """The two comments of image i in the tiny records."""
    return [_COMMENTS[i], _COMMENTS[(i + 1) % NUM_IMAGES]]


def write_tiny_records(out_dir: str) -> str:
    """Writes 6 images (all train, indices 0..5) with comments by 4 users through the real writer."""
    records = []
    for i in range(NUM_IMAGES):
        votes = [0] * 10
        votes[3 + i % 5] = 5
        votes[2 + i % 4] += 3
        texts = comments_of(i)
        comments = [
            features.Comment(text=texts[0], user_index=i % len(USERS), sentiment=3, rating=1),
            features.Comment(text=texts[1], user_index=(i + 1) % len(USERS), sentiment=1, rating=0),
        ]
        records.append(
            features.ImageRecord(
                image_id=f"img{i}", split="train", encoded=jpeg_bytes(seed=100 + i), image_format="jpeg",
                votes=votes, tags=[i % 2], comments=comments,
            )
        )
    writer.write_records(
        out_dir, records, scale=features.AVA_SCALE, users=USERS, tags=TAGS, source="test", rejections=Rejections(),
        num_shards=1,
    )
    return out_dir


def tiny_mracnn(records_dir: str, variant: str = "full", fusion: str = "mfb"):
    """A tiny MRACNN (tiny backbone, 48 px, T = 2 glimpses)."""
    from tfaesthetic.models.mracnn import MRACNN

    manifest = writer.read_manifest(records_dir)
    return MRACNN(
        vocab_size=manifest["vocab_size"], num_bins=manifest["score_scale"]["num_bins"], backbone="tiny",
        image_size=IMAGE_SIZE, max_len=MAX_LEN, variant=variant, fusion=fusion, recurrences=2, lstm_units=8, attention_units=8,
        embedding_dim=8, num_filters=4, mfb_k=2, mfb_o=4,
    )


def tiny_cfan(records_dir: str):
    """A tiny CFAN-3task (tiny backbone, 48 px)."""
    from tfaesthetic.models.cfan import CFAN

    return CFAN.from_manifest(
        writer.read_manifest(records_dir), variant="cfan_3task", backbone="tiny", image_size=IMAGE_SIZE,
        factor_dim=8, hidden_units=(8,), embedding_dim=8, gru_units=8, max_len=MAX_LEN, seed=0,
    )
