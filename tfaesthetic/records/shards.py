"""Shard files: names, fingerprints and the TFRecord framing check (the writer and the reader both use them).

`shard_name` gives `train-00000-of-00004.tfrecord`; `shard_fingerprint` is the cheap
per-build check the reader makes on open (sha256 of the size and the first and last
64 KiB); `check_framing` walks a shard's record framing and raises `ShardError`
naming the file when it is truncated.
"""

from __future__ import annotations

import hashlib
import os
import struct

import tensorflow as tf

from tfaesthetic import io

_FINGERPRINT_BLOCK = 1 << 16


class ShardError(ValueError):
    """A records shard is missing, truncated or corrupt (the message names the file)."""


def shard_name(split: str, index: int, num_shards: int) -> str:
    """`train-00000-of-00004.tfrecord`."""
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def shard_fingerprint(path: str) -> str:
    """sha256 of a shard's size, first and last 64 KiB: cheap to check on open, differs between builds."""
    size = os.path.getsize(path) if not str(path).startswith(("gs://", "s3://")) else tf.io.gfile.stat(path).length
    h = hashlib.sha256(size.to_bytes(8, "little"))
    with tf.io.gfile.GFile(path, "rb") as f:
        h.update(f.read(_FINGERPRINT_BLOCK))
        if size > _FINGERPRINT_BLOCK:
            f.seek(max(_FINGERPRINT_BLOCK, size - _FINGERPRINT_BLOCK))
            h.update(f.read(_FINGERPRINT_BLOCK))
    return h.hexdigest()


def check_framing(path: str) -> int:
    """Walks TFRecord framing (uint64 length, uint32 crc, data, uint32 crc); returns the count."""
    size = tf.io.gfile.stat(path).length
    count = 0
    offset = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while offset < size:
            if size - offset < 12:
                raise ShardError(
                    f"Records shard {path} is truncated: {size - offset} trailing bytes at offset {offset} "
                    f"after record {count} (a record header needs 12)."
                )
            f.seek(offset)
            (length,) = struct.unpack("<Q", f.read(8))
            end = offset + 12 + length + 4
            if end > size:
                raise ShardError(
                    f"Records shard {path} is truncated: record {count} at offset {offset} needs {end - offset} "
                    f"bytes, the file has {size - offset} left (size {size})."
                )
            offset = end
            count += 1
    return count


sha256_file = io.sha256_file
