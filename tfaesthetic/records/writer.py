"""Writes image records as TFRecord shards plus the manifest and id maps (SPEC §2.1).

`write_records` is the one writer every source (`ava`, `photonet`, `jsonl`, `demo`)
calls. Its rules for bad input (each one counted in `manifest.json["counts"]` and
listed in `rejected.jsonl`):

- duplicate `image_id`: the first occurrence is kept, later ones are rejected
  (`duplicate_id`);
- `split` not one of train/val/test: rejected (`unknown_split`);
- `votes` with a number of values other than `scale.num_bins`, or negative counts:
  rejected (`votes_wrong_num_bins`, `invalid_votes`); votes that are all zero:
  rejected (`no_votes`, the score distribution is undefined);
- votes are all or nothing: when some kept records have votes, a record without
  votes is rejected (`missing_votes`). MRACNN's target would otherwise be an
  all-zero distribution that the EMD loss still pushes towards. The manifest says
  `has_votes` (every written image has votes) and `images_with_votes` (per split);
  `tfaesthetic.config.validate` refuses MRACNN on records with `has_votes: false`;
- image loader raising `FileNotFoundError`/`OSError`: rejected (`missing_image_file`);
  raising anything else: rejected (`unreadable_image`, the exception in `detail`);
- image bytes that `tf.io.decode_image` (the decoder the input pipeline uses)
  cannot decode, including truncated files and empty files: rejected
  (`undecodable_image`); unknown magic bytes: rejected (`unknown_image_format`);
- image whose bytes are another format than its name/`image_format` says (a PNG
  named `.jpg`): kept with the format detected from the bytes (kept note
  `image_format_mismatch`);
- comment text given as bytes that are not valid UTF-8: kept, bad bytes replaced
  by U+FFFD (kept note `non_utf8_text`).

Image bytes are loaded lazily through `record.load_image` in two streaming passes
(validate, then write), so only one image is held in memory at a time. Image indices
are dense and assigned to the kept records: training images first (0..n_train-1),
then validation, then test. The vocabulary is built from the training split only.
Shards are written as `<split>-00000-of-0000N.tfrecord.tmp` and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import hashlib
import json
import logging
import os
import re
from typing import Optional

import tensorflow as tf

from tfaesthetic import features
from tfaesthetic import text as text_lib
from tfaesthetic.records import common
from tfaesthetic.records.rejections import Rejections

MANIFEST = "manifest.json"
VOCAB_FILE = "vocab.txt"
USERS_FILE = "users.tsv"
IMAGES_FILE = "images.tsv"
TAGS_FILE = "tags.tsv"
REJECTED_FILE = "rejected.jsonl"

SHARD_PATTERN = re.compile(r"^(train|val|test)-(\d{5})-of-(\d{5})\.tfrecord$")

# Comments tokenised per eager call.
_TOKENIZE_BATCH = 4096

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)


def detect_format(data: bytes) -> str:
    """Returns "jpeg", "png", "gif", "bmp", "webp" from the magic bytes, or ""."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return ""


def shard_name(split: str, index: int, num_shards: int) -> str:
    """`train-00000-of-00004.tfrecord`."""
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _clean_field(value) -> str:
    # tsv fields cannot hold tabs or newlines.
    return re.sub(r"[\t\r\n]", " ", str(value))


def _load_bytes(record: features.ImageRecord) -> Optional[bytes]:
    if record.encoded is not None:
        return bytes(record.encoded)
    if record.load_image is not None:
        return record.load_image()
    return None


def _has_image(record: features.ImageRecord) -> bool:
    return record.encoded is not None or record.load_image is not None


def _text_bytes(value, record, rejections, source):
    """A comment text as valid UTF-8 bytes (bad bytes replaced, counted)."""
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
            return value
        except UnicodeDecodeError:
            rejections.keep("non_utf8_text", source=source, image_id=record.image_id, detail=repr(value[:80]))
            return value.decode("utf-8", errors="replace").encode("utf-8")
    return str(value).encode("utf-8", errors="replace")


def _check_image(record, validate_images, rejections, source) -> Optional[str]:
    """Loads and validates the image; returns its detected format or None (rejected)."""
    try:
        data = _load_bytes(record)
    except OSError as e:
        rejections.reject("missing_image_file", source=source, image_id=record.image_id, detail=str(e))
        return None
    except Exception as e:  # A source's loader failing otherwise must not stop the build.
        rejections.reject(
            "unreadable_image", source=source, image_id=record.image_id, detail=f"{type(e).__name__}: {e}"
        )
        return None
    if not data:
        rejections.reject("undecodable_image", source=source, image_id=record.image_id, detail="empty image bytes")
        return None
    fmt = detect_format(data)
    if not fmt:
        rejections.reject(
            "unknown_image_format", source=source, image_id=record.image_id, detail=f"first bytes {data[:8]!r}"
        )
        return None
    if validate_images:
        try:
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            if image.shape[0] == 0 or image.shape[1] == 0:
                raise ValueError(f"empty image of shape {tuple(image.shape)}")
        except (tf.errors.OpError, ValueError) as e:
            message = getattr(e, "message", None) or str(e)
            rejections.reject("undecodable_image", source=source, image_id=record.image_id, detail=message)
            return None
    declared = (record.image_format or "").lower().replace("jpg", "jpeg")
    if declared and declared != fmt:
        rejections.keep(
            "image_format_mismatch",
            source=source,
            image_id=record.image_id,
            detail=f"declared {record.image_format!r}, bytes are {fmt}",
            level="image",
        )
    return fmt


def _split_num_shards(num_shards, split, count) -> int:
    n = num_shards.get(split, 1) if isinstance(num_shards, dict) else num_shards
    n = int(n)
    if n < 1:
        raise ValueError(f"Expected num_shards >= 1. Received: num_shards={num_shards!r} for split {split!r}")
    return max(1, min(n, count))


def _remove_stale_outputs(out_dir):
    for path in glob.glob(os.path.join(out_dir, "*.tfrecord")) + glob.glob(os.path.join(out_dir, "*.tfrecord.tmp")):
        if SHARD_PATTERN.match(os.path.basename(path)) or path.endswith(".tmp"):
            os.remove(path)


def write_records(
    out_dir,
    records: list,
    *,
    scale: features.ScoreScale,
    users: list,
    tags: list,
    source: str,
    rejections: Rejections,
    num_shards=4,
    command_line: str = "",
    extra_manifest: Optional[dict] = None,
    validate_images: bool = True,
    vocab_min_count: int = 1,
    vocab_max_size: Optional[int] = None,
) -> dict:
    """Writes records, vocabulary, id maps, rejections and the manifest.

    Args:
        out_dir: output directory (created; old shards in it are removed).
        records: the `ImageRecord`s; `image_index` is (re)assigned here.
        scale: the score scale (number of bins, bin values, threshold).
        users: user ids; `Comment.user_index` indexes this list.
        tags: tag names; `ImageRecord.tags` index this list.
        source: a short description of the source (e.g. "ava:/data/AVA.txt"),
            also the `source` of the rejections raised here.
        rejections: the build's `Rejections` (sources may already have added to it).
        num_shards: shards per split, an int or a dict `{split: n}`; capped at the
            number of records of the split (an empty split gets one empty shard).
        command_line: the command that built the records, for the manifest.
        extra_manifest: extra manifest fields (e.g. source options, `consistency`).
        validate_images: decode every image once with `tf.io.decode_image`.
        vocab_min_count: keep training words seen at least this many times.
        vocab_max_size: keep at most this many words (None: all).

    Returns:
        The manifest dict (also written to `out_dir/manifest.json`).
    """
    os.makedirs(out_dir, exist_ok=True)
    _remove_stale_outputs(out_dir)
    extra_manifest = dict(extra_manifest or {})

    # Pass 1: structural checks, image loading/validation; no bytes are kept.
    seen = set()
    kept = {split: [] for split in features.SPLITS}
    formats = {}
    for position, record in enumerate(records):
        if record.image_id in seen:
            rejections.reject("duplicate_id", source=source, record=position + 1, image_id=record.image_id)
            continue
        seen.add(record.image_id)
        if record.split not in features.SPLITS:
            rejections.reject(
                "unknown_split",
                source=source,
                record=position + 1,
                image_id=record.image_id,
                detail=f"Expected one of {features.SPLITS}. Received: split={record.split!r}",
            )
            continue
        problem = None if record.votes is None else common.votes_problem(record.votes, scale.num_bins)
        if problem is not None:
            reason, detail = problem
            rejections.reject(reason, source=source, record=position + 1, image_id=record.image_id, detail=detail)
            continue
        if _has_image(record):
            fmt = _check_image(record, validate_images, rejections, source)
            if fmt is None:
                continue
            formats[record.image_id] = fmt
        kept[record.split].append((position, record))

    # Votes are all or nothing (a record without votes would train MRACNN on zeros).
    any_votes = any(r.votes is not None for split in features.SPLITS for _, r in kept[split])
    for split in features.SPLITS:
        with_votes = []
        for position, record in kept[split]:
            if any_votes and record.votes is None:
                rejections.reject(
                    "missing_votes",
                    source=source,
                    record=position + 1,
                    image_id=record.image_id,
                    detail="other records have votes",
                )
                continue
            with_votes.append(record)
        kept[split] = with_votes
    ordered = [r for split in features.SPLITS for r in kept[split]]
    for index, record in enumerate(ordered):
        record.image_index = index
    num_with_images = sum(1 for r in ordered if r.image_id in formats)
    has_images = bool(ordered) and num_with_images == len(ordered)
    images_with_votes = {s: sum(1 for r in kept[s] if r.votes is not None) for s in features.SPLITS}
    has_votes = bool(ordered) and sum(images_with_votes.values()) == len(ordered)
    if 0 < num_with_images < len(ordered):
        logging.warning(
            "%d of %d images have image bytes; has_images is false (text-only use).", num_with_images, len(ordered)
        )

    # Vocabulary from the training split only.
    def _texts(recs):
        batch = []
        for r in recs:
            for c in r.comments:
                batch.append(_text_bytes(c.text, r, Rejections(), source))
                if len(batch) >= _TOKENIZE_BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _train_words():
        for batch in _texts(kept["train"]):
            words = text_lib.split_words(text_lib.normalize(tf.constant(batch)))
            for w in words.flat_values.numpy():
                yield w

    vocabulary = text_lib.Vocabulary.build(_train_words(), min_count=vocab_min_count, max_size=vocab_max_size)

    # Pass 2: shards.
    shard_files = {}
    reviews = {}
    comments_written = {}
    for split in features.SPLITS:
        recs = kept[split]
        n_shards = _split_num_shards(num_shards, split, len(recs))
        reviews[split] = sum(1 for r in recs for c in r.comments if int(c.rating) != features.NO_RATING)
        comments_written[split] = sum(len(r.comments) for r in recs)
        for shard in range(n_shards):
            lo, hi = shard * len(recs) // n_shards, (shard + 1) * len(recs) // n_shards
            name = shard_name(split, shard, n_shards)
            path = os.path.join(out_dir, name)
            _write_shard(path, recs[lo:hi], formats, vocabulary, rejections, source)
            shard_files[name] = sha256_file(path)

    # Vocabulary, id maps, rejections.
    vocabulary.write(os.path.join(out_dir, VOCAB_FILE))
    with open(os.path.join(out_dir, USERS_FILE), "w", encoding="utf-8", newline="\n") as f:
        for i, user in enumerate(users):
            f.write(f"{i}\t{_clean_field(user)}\n")
    with open(os.path.join(out_dir, IMAGES_FILE), "w", encoding="utf-8", newline="\n") as f:
        for r in ordered:
            f.write(f"{r.image_index}\t{_clean_field(r.image_id)}\t{r.split}\n")
    with open(os.path.join(out_dir, TAGS_FILE), "w", encoding="utf-8", newline="\n") as f:
        for i, tag in enumerate(tags):
            f.write(f"{i}\t{_clean_field(tag)}\n")
    rejections.write(os.path.join(out_dir, REJECTED_FILE))

    consistency = extra_manifest.pop("consistency", None)
    if consistency is None:
        consistency = _consistency(ordered, scale)

    counts = rejections.counts
    counts["written"] = {
        "images": {s: len(kept[s]) for s in features.SPLITS},
        "comments": comments_written,
        "images_with_bytes": num_with_images,
    }
    manifest = dict(extra_manifest)
    manifest.update(
        {
            "schema_version": features.SCHEMA_VERSION,
            "source": source,
            "command_line": command_line,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "splits": {s: len(kept[s]) for s in features.SPLITS},
            "reviews": reviews,
            "score_scale": scale.to_json(),
            "num_users": len(users),
            "num_images": len(ordered),
            "num_tags": len(tags),
            "num_train_images": len(kept["train"]),
            "vocab_size": vocabulary.size,
            "files": {
                VOCAB_FILE: sha256_file(os.path.join(out_dir, VOCAB_FILE)),
                USERS_FILE: sha256_file(os.path.join(out_dir, USERS_FILE)),
                IMAGES_FILE: sha256_file(os.path.join(out_dir, IMAGES_FILE)),
                TAGS_FILE: sha256_file(os.path.join(out_dir, TAGS_FILE)),
                "shards": shard_files,
                "shard_bytes": {name: os.path.getsize(os.path.join(out_dir, name)) for name in shard_files},
            },
            "counts": counts,
            "consistency": consistency,
            "review_check": _review_check(ordered, scale),
            "has_images": has_images,
            "has_votes": has_votes,
            "images_with_votes": images_with_votes,
        }
    )
    tmp = os.path.join(out_dir, MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, os.path.join(out_dir, MANIFEST))
    return manifest


def _write_shard(path, records, formats, vocabulary, rejections, source):
    tmp = path + ".tmp"
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            # Tokenise a block of records at once (one eager call), then serialise.
            block = []
            block_comments = 0
            for record in records + [None]:
                if record is not None:
                    block.append(record)
                    block_comments += len(record.comments)
                    if block_comments < _TOKENIZE_BATCH and len(block) < 256:
                        continue
                if not block:
                    break
                # Copies with repaired text, so the caller's records are not modified.
                block = [
                    dataclasses.replace(
                        r,
                        comments=[
                            dataclasses.replace(c, text=_text_bytes(c.text, r, rejections, source)) for c in r.comments
                        ],
                    )
                    for r in block
                ]
                texts = [c.text for r in block for c in r.comments]
                rows = text_lib.tokenize(tf.constant(texts, tf.string), vocabulary).to_list() if texts else []
                start = 0
                for r in block:
                    token_rows = rows[start : start + len(r.comments)]
                    start += len(r.comments)
                    image_bytes = None
                    if r.image_id in formats:
                        image_bytes = _load_bytes(r)
                        if not image_bytes:
                            raise RuntimeError(
                                f"Image {r.image_id!r} could be loaded in the validation pass but not when writing {path}"
                            )
                        r = dataclasses.replace(r, image_format=formats[r.image_id])
                    example = features.to_example(r, token_rows, image_bytes)
                    writer.write(example.SerializeToString())
                block, block_comments = [], 0
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _consistency(records, scale):
    """Eq. 7 of seed 000 via `tfaesthetic.records.reviews.consistency`, when available."""
    with_votes = [r for r in records if r.votes is not None and sum(r.votes) > 0]
    if not with_votes:
        return None
    try:
        from tfaesthetic.records import reviews
    except ImportError:
        return None
    means = [sum(v * n for v, n in zip(scale.values, r.votes)) / sum(r.votes) for r in with_votes]
    ratings = [[int(c.rating) for c in r.comments if int(c.rating) != features.NO_RATING] for r in with_votes]
    try:
        value = reviews.consistency(means, ratings, scale.threshold)
    except Exception as e:  # A bug there must not lose a records build.
        logging.warning("consistency (Eq. 7) failed: %s", e)
        return None
    return None if value is None else float(value)


def _review_check(records, scale):
    """Eq. 7 beside its references (`tfaesthetic.records.reviews.review_check`); None on failure."""
    try:
        from tfaesthetic.records import reviews

        return reviews.review_check(records, scale)
    except Exception as e:  # A bug there must not lose a records build.
        logging.warning("review check (Eq. 7 references) failed: %s", e)
        return None


def read_manifest(records_dir) -> dict:
    """Reads and checks `records_dir/manifest.json`.

    Raises:
        FileNotFoundError: no manifest (names the path).
        ValueError: invalid JSON or a schema version this code does not read.
    """
    path = os.path.join(str(records_dir), MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {MANIFEST} in records directory {records_dir!r} (looked for {path}).")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Invalid JSON in {path}: {e}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"Expected a JSON object in {path}. Received: {type(manifest).__name__}")
    version = manifest.get("schema_version")
    if version != features.SCHEMA_VERSION:
        raise ValueError(
            f"Unsupported records schema in {path}: expected schema_version={features.SCHEMA_VERSION}. "
            f"Received: schema_version={version!r}. Rebuild the records with this version of tfaesthetic."
        )
    return manifest
