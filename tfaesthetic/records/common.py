"""Helpers shared by the AVA, Photo.net and JSONL sources (SPEC §2.3).

A source reads its files into `ImageRecord`s plus a `Rejections` (stage 1,
`read_*` functions, no TensorFlow), then `finish_build` derives the review
ratings (seed 000 §4.1) and calls `write_records` (stage 2). The rules for bad
input that all sources share live here, each one counted in the `Rejections`
and listed in `rejected.jsonl` with file, record (1-based line/row) and reason:

- non-UTF-8 bytes (or lone surrogates) in any text: replaced by U+FFFD, kept
  (kept note `non_utf8_text`);
- a comment with no letters ("!!!", "10/10", ""): the comment is dropped
  (`comment:no_letters`); a blank line in a per-image comment file likewise
  (`comment:empty_line`); with `min_comment_words` > 1, a comment with fewer
  words is dropped (`comment:too_few_words`);
- an image with no comment left: kept (kept note `image:no_comments`) unless
  `drop_no_comments`, then rejected (`image:no_comments`); not checked when no
  comments source is given at all;
- a missing image file: rejected (`image:missing_image_file`);
- comments whose image id is not in the source: dropped, one entry per id
  (`comment:unknown_image_id`, detail gives how many);
- a record that fails in an unforeseen way: rejected with the exception text
  (`image:unreadable_record`) -- never a bare traceback.

- a text file that is UTF-16 (a byte-order mark FF FE / FE FF) or uses CR-only
  line ends: a whole-input error naming the file (every "line" would otherwise be
  one bad record);
- a comments JSON object with a duplicate key: the first block is kept and the
  later ones are rejected (`comment:duplicate_key`, one entry per block);
- user names go through `features.normalize_id` (NFC, stripped); a user name with
  a control character drops the comment (`comment:invalid_user_id`).

The record rules themselves (ids, votes, ranges, all-or-nothing votes) live in
`tfaesthetic.records.rules`, shared by the sources and the writer. The writer adds
its image rules (`tfaesthetic.images`: truncated image, bytes after the end marker,
pixel budget; undecodable image; PNG bytes in a .jpg kept as
`image_format_mismatch`) to the same `Rejections`; `finish_build` then points those
entries at the source file and line of their image as well (`"stage": "writer"`).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
import os
import re
import shlex
import sys
from typing import Callable, Iterator, Optional

import numpy as np

from tfaesthetic import features
from tfaesthetic import images as images_lib
from tfaesthetic.records import parallel
from tfaesthetic.records import reviews as reviews_lib
from tfaesthetic.records import rules
from tfaesthetic.records.rejections import Rejections

_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclasses.dataclass
class SourceData:
    """What a source read (stage 1), before ratings are derived and records written.

    Attributes:
        records: the kept `ImageRecord`s, in source order.
        users: user names; `Comment.user_index` indexes this list.
        tags: tag names; `ImageRecord.tags` index this list.
        scale: the score scale.
        rejections: everything skipped or repaired so far.
        origin: image id -> (file, 1-based record number) of every kept record.
        notes: source-specific facts for the manifest (JSON-able).
        source: a short description, e.g. "ava:/data/AVA.txt".
    """

    records: list
    users: list
    tags: list
    scale: features.ScoreScale
    rejections: Rejections
    origin: dict = dataclasses.field(default_factory=dict)
    notes: dict = dataclasses.field(default_factory=dict)
    source: str = ""


def repair_text(text: str) -> tuple:
    """Replaces lone surrogates by U+FFFD; returns `(text, repaired)`."""
    fixed, n = _SURROGATES.subn("\ufffd", text)
    return fixed, n > 0


def decode_bytes(data: bytes) -> tuple:
    """UTF-8 decoding with U+FFFD for bad bytes (a UTF-8 BOM is dropped); returns `(text, repaired)`."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True


def has_letters(text: str) -> bool:
    """True when `text` holds at least one letter (any script)."""
    return any(ch.isalpha() for ch in text)


def check_text_encoding(path: str, head: bytes, lines: bool = True) -> None:
    """Raises `ValueError` naming `path` when its first bytes show UTF-16/32 or CR-only line ends.

    Both would turn the whole file into bad records (one `invalid_json` per
    "line") instead of a clear error.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) >= 4 and head[1:4:2] == b"\x00\x00" and head[0]):
        raise ValueError(
            f"{path} looks UTF-16 encoded (byte-order mark {head[:2].hex(' ')} or NUL bytes between characters); "
            "save it as UTF-8."
        )
    if lines and b"\r" in head and b"\n" not in head and len(head.split(b"\r")) > 2:
        raise ValueError(f"{path} uses CR-only line ends (no LF in its first {len(head)} bytes); convert them to LF.")


def read_lines(path: str, rejections: Rejections, level: str = "line") -> Iterator[tuple]:
    """Yields `(line_number, text)` of a text file, 1-based, newline removed.

    Non-UTF-8 bytes are replaced (kept note `<level>:non_utf8_text` with the line).

    Raises:
        ValueError: the file is UTF-16 or uses CR-only line ends (`check_text_encoding`).
    """
    with open(path, "rb") as f:
        check_text_encoding(path, f.read(1 << 16))
        f.seek(0)
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            text, repaired = decode_bytes(raw)
            if repaired:
                rejections.keep("non_utf8_text", source=path, record=number, detail=repr(raw[:80]), level=level)
            yield number, text


def read_table(path: str, rejections: Rejections, *, delimiter: Optional[str] = None) -> list:
    """Reads a CSV/TSV file into `(row_number, fields)` (row numbers 1-based, header included).

    The delimiter is a tab for `.tsv`/`.txt` files or when the first line holds a
    tab, a comma otherwise. Non-UTF-8 bytes are repaired (kept note per row).
    """
    with open(path, "rb") as f:
        data = f.read()
    check_text_encoding(path, data[: 1 << 16], lines=False)  # csv reads CR-only line ends itself
    text, repaired = decode_bytes(data)
    if delimiter is None:
        first = text.split("\n", 1)[0]
        delimiter = "\t" if path.endswith((".tsv", ".txt")) or "\t" in first else ","
    rows = []
    for number, fields in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1):
        if repaired and any("\ufffd" in field for field in fields):
            rejections.keep("non_utf8_text", source=path, record=number, level="line")
        rows.append((number, fields))
    return rows


class UserIndex:
    """Maps user names to dense indices (0-based, in order of first appearance).

    Names go through `features.normalize_id` (the rule serving applies to `user_id`).
    """

    def __init__(self):
        self.names = []
        self._index = {}

    def index(self, name) -> int:
        """Index of `name`; `features.UNKNOWN_USER` for None/empty (anonymous)."""
        if name is None:
            return features.UNKNOWN_USER
        name = features.normalize_id(name)
        if not name:
            return features.UNKNOWN_USER
        if name not in self._index:
            self._index[name] = len(self.names)
            self.names.append(name)
        return self._index[name]


@dataclasses.dataclass
class RawComment:
    """A comment as read from a comments source, before the shared rules apply."""

    text: object
    user: object = None
    source: str = ""
    record: Optional[int] = None


class CommentSource:
    """Comments per image id, from one of three formats.

    - a **directory** of per-image files `<id>.txt`, one comment per line,
      optionally `user<TAB>text` (a line without a tab is an anonymous comment;
      comments cannot span lines);
    - a **JSON** file (`.json`): an object mapping image id -> list of comments,
      each a string or `{"text": ..., "user": ... (optional)}`;
    - a **CSV/TSV** file (`.csv`, `.tsv`): a header row naming an id column
      (`image_id` or `id`), a text column (`text` or `comment`) and optionally
      `user`; one comment per row.

    Args:
        path: the directory or file.
        rejections: receives repairs and per-entry problems.
    """

    def __init__(self, path: str, rejections: Rejections):
        self.path = path
        self.rejections = rejections
        self._by_id = None
        if os.path.isdir(path):
            return
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Comments source not found. Received: comments={path!r}")
        if path.lower().endswith(".json"):
            self._by_id = self._read_json(path)
        elif path.lower().endswith((".csv", ".tsv")):
            self._by_id = self._read_table(path)
        else:
            raise ValueError(
                "Expected a directory of <id>.txt files, a .json or a .csv/.tsv comments file. "
                f"Received: comments={path!r}"
            )
        self._used = set()

    def _read_json(self, path):
        with open(path, "rb") as f:
            data = f.read()
        check_text_encoding(path, data[: 1 << 16], lines=False)
        text, repaired = decode_bytes(data)
        if repaired:
            self.rejections.keep("non_utf8_text", source=path, detail="bad bytes replaced in the JSON file", level="line")
        try:
            # Keep every (key, value) pair of the top-level object: json.loads would keep only the last of two equal keys.
            obj = json.loads(text, object_pairs_hook=_Pairs)
        except json.JSONDecodeError as e:
            raise ValueError(f"Invalid JSON in comments file {path}: {e}") from None
        if not isinstance(obj, _Pairs):
            raise ValueError(
                f"Expected a JSON object mapping image id -> comments in {path}. Received: {type(obj).__name__}"
            )
        by_id = {}
        first_block = {}
        for number, (image_id, items) in enumerate(obj, start=1):
            items = _plain(items)
            key = features.normalize_id(image_id)
            if key in first_block:
                self.rejections.reject(
                    "duplicate_key",
                    source=path,
                    record=number,
                    image_id=key,
                    detail=f"the id is also key number {first_block[key]} of the object (kept); "
                    f"{len(items) if isinstance(items, list) else 1} comment(s) of this block dropped",
                    level="comment",
                )
                continue
            first_block[key] = number
            if not isinstance(items, list):
                self.rejections.reject(
                    "wrong_type",
                    source=path,
                    record=number,
                    image_id=image_id,
                    detail=f"Expected a list of comments. Received: {type(items).__name__}",
                    level="comment",
                )
                continue
            out = by_id.setdefault(key, [])
            for item in items:
                if isinstance(item, str):
                    out.append(RawComment(item, None, path, number))
                elif isinstance(item, dict) and isinstance(item.get("text"), str):
                    out.append(RawComment(item["text"], item.get("user"), path, number))
                else:
                    self.rejections.reject(
                        "wrong_type",
                        source=path,
                        record=number,
                        image_id=image_id,
                        detail=f'Expected a string or {{"text": str, "user": ...}}. Received: {short(item)}',
                        level="comment",
                    )
        return by_id

    def _read_table(self, path):
        rows = read_table(path, self.rejections)
        if not rows:
            return {}
        header = [h.strip().lower() for h in rows[0][1]]
        id_col = _column(header, ("image_id", "id"), path)
        text_col = _column(header, ("text", "comment"), path)
        user_col = header.index("user") if "user" in header else None
        by_id = {}
        for number, fields in rows[1:]:
            if not fields:
                continue
            if len(fields) != len(header):
                self.rejections.reject(
                    "invalid_row",
                    source=path,
                    record=number,
                    detail=f"Expected {len(header)} columns. Received: {len(fields)}",
                    level="comment",
                )
                continue
            user = fields[user_col] if user_col is not None else None
            key = features.normalize_id(fields[id_col])
            by_id.setdefault(key, []).append(RawComment(fields[text_col], user, path, number))
        return by_id

    def get(self, image_id: str) -> Optional[list]:
        """The raw comments of `image_id` ([] when none; files are read on demand)."""
        if self._by_id is not None:
            self._used.add(image_id)
            return self._by_id.get(image_id, [])
        path = os.path.join(self.path, f"{image_id}.txt")
        if not os.path.isfile(path):
            return []
        out = []
        for number, line in read_lines(path, self.rejections, level="comment"):
            if not line.strip():
                self.rejections.reject("empty_line", source=path, record=number, image_id=image_id, level="comment")
                continue
            user, text = line.split("\t", 1) if "\t" in line else (None, line)
            out.append(RawComment(text, user, path, number))
        return out

    def report_unused(self, known_ids) -> None:
        """Counts comments of ids that are not images of the source (mapping files only)."""
        if self._by_id is None:
            return
        known = set(known_ids)
        for image_id, items in self._by_id.items():
            if image_id not in known and items:
                self.rejections.reject(
                    "unknown_image_id",
                    source=self.path,
                    record=items[0].record,
                    image_id=image_id,
                    detail=f"{len(items)} comment(s) for an image id the source does not list",
                    level="comment",
                )


class _Pairs(list):
    """A JSON object as its list of `(key, value)` pairs (duplicate keys kept)."""

    def __init__(self, pairs):
        super().__init__(pairs)


def _plain(value):
    """Turns nested `_Pairs` back into dicts (last key wins, as `json.loads` does) below the top level."""
    if isinstance(value, _Pairs):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _column(header, names, path):
    for name in names:
        if name in header:
            return header.index(name)
    raise ValueError(f"Expected a header column named one of {names} in {path}. Received header: {header}")


def short(value, limit=120) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def make_comments(raw_comments, users: UserIndex, rejections: Rejections, image_id: str, min_words: int = 1) -> list:
    """Applies the shared comment rules (repair, no letters, too few words) and returns `Comment`s.

    Args:
        raw_comments: `RawComment`s of one image.
        users: the user index (user names -> indices).
        rejections: receives repairs and dropped comments.
        image_id: the image, for the rejection entries.
        min_words: comments with fewer words are dropped (`comment:too_few_words`);
            seed 003 removed "useless comments that only contain one word or
            numbers" (`min_words=2`). 1 keeps every comment with a letter.
    """
    out = []
    for raw in raw_comments:
        text = raw.text
        if isinstance(text, bytes):
            text, repaired = decode_bytes(text)
        else:
            text, repaired = repair_text(str(text))
        if repaired:
            rejections.keep("non_utf8_text", source=raw.source, record=raw.record, image_id=image_id, detail=text[:80])
        if not has_letters(text):
            rejections.reject(
                "no_letters", source=raw.source, record=raw.record, image_id=image_id, detail=text[:80], level="comment"
            )
            continue
        if min_words > 1 and len(reviews_lib.words(text)) < min_words:
            rejections.reject(
                "too_few_words", source=raw.source, record=raw.record, image_id=image_id, detail=text[:80], level="comment"
            )
            continue
        user = raw.user
        if isinstance(user, str):
            user, _ = repair_text(user)
            user = features.normalize_id(user)
        elif isinstance(user, int) and not isinstance(user, bool):
            user = str(user)
        else:  # None, or a user field of the wrong type: anonymous.
            user = None
        if user:
            detail = features.id_problem(user)
            if detail is not None:
                rejections.reject(
                    "invalid_user_id", source=raw.source, record=raw.record, image_id=image_id, detail=detail,
                    level="comment",
                )
                continue
            if features.id_collision_key(user) != user:
                rejections.keep(
                    "zero_width_in_user_id", source=raw.source, record=raw.record, image_id=image_id,
                    detail=f"user {user!r} holds zero-width/format characters", level="comment",
                )
        out.append(features.Comment(text=text.strip(), user_index=users.index(user)))
    return out


# The vote rule lives in `rules` (one rule for every source and the writer).
votes_problem = rules.votes_problem


def check_no_comments(record, drop_no_comments: bool, rejections: Rejections, source: str, number) -> bool:
    """Applies the no-comment rule; returns False when the record is dropped."""
    if record.comments:
        return True
    if drop_no_comments:
        rejections.reject("no_comments", source=source, record=number, image_id=record.image_id)
        return False
    rejections.keep("no_comments", source=source, record=number, image_id=record.image_id, level="image")
    return True


def attach_image_file(record, path: str, rejections: Rejections, source: str, number) -> bool:
    """Gives `record` the image file at `path`, loaded lazily; False (rejected) when it is missing."""
    if not os.path.isfile(path):
        rejections.reject("missing_image_file", source=source, record=number, image_id=record.image_id, detail=path)
        return False
    record.load_image = file_loader(path)
    record.image_format = format_from_name(path)
    return True


def attach_comments(
    record,
    comment_source: CommentSource,
    users: UserIndex,
    rejections: Rejections,
    source: str,
    number,
    *,
    min_comment_words: int,
    drop_no_comments: bool,
) -> bool:
    """Gives `record` its comments from `comment_source` (shared comment rules); False when the no-comment rule drops it."""
    record.comments = make_comments(
        comment_source.get(record.image_id), users, rejections, record.image_id, min_comment_words
    )
    return check_no_comments(record, drop_no_comments, rejections, source, number)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def file_loader(path: str) -> Callable[[], bytes]:
    """A lazy loader of a file's bytes (the writer calls it when it needs them); picklable."""
    return functools.partial(_read_file, path)


def format_from_name(path: str) -> str:
    """The image format a file name claims ("jpeg", "png", ...), "" if none."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "gif": "gif", "bmp": "bmp", "webp": "webp"}.get(ext, "")


def parse_split(spec: str) -> tuple:
    """`"90/10"` -> (val=0.0, test=0.1); `"80/10/10"` -> (0.1, 0.1). Returns `(val_fraction, test_fraction)`."""
    try:
        parts = [float(p) for p in str(spec).split("/")]
    except ValueError:
        parts = []
    if len(parts) not in (2, 3) or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise ValueError(f"Expected --split as train/test or train/val/test percentages, e.g. 90/10. Received: {spec!r}")
    total = sum(parts)
    if len(parts) == 2:
        return 0.0, parts[1] / total
    return parts[1] / total, parts[2] / total


def assign_splits(records, *, val_fraction: float, test_fraction: float, seed: int, fixed: Optional[dict] = None) -> dict:
    """Sets `record.split` in place; returns the number of images per split.

    Records whose id is in `fixed` (id -> split, e.g. an official test list or a
    JSONL `split` field) keep that split; the others are shuffled with `seed`
    and the first `round(n * test_fraction)` go to test, the next
    `round(n * val_fraction)` to val, the rest to train.

    No silent missing validation split: when `val_fraction > 0` but no image ends
    up in val (e.g. every JSONL line says `train` or `test`), `val_fraction` of the
    train images (at least one, seeded by `seed`) are moved to val and a warning
    says how many. `val_fraction=0` (`--val_fraction=0`, `--split=80/20`) keeps no
    validation split, on purpose.
    """
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction <= 1):
        raise ValueError(
            "Expected val_fraction, test_fraction >= 0 with a sum <= 1. "
            f"Received: val_fraction={val_fraction}, test_fraction={test_fraction}"
        )
    fixed = fixed or {}
    free = [r for r in records if r.image_id not in fixed]
    for r in records:
        if r.image_id in fixed:
            r.split = fixed[r.image_id]
    order = np.random.default_rng(seed).permutation(len(free))
    n_test = int(round(len(free) * test_fraction))
    n_val = int(round(len(free) * val_fraction))
    for rank, i in enumerate(order):
        free[i].split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    train = [r for r in records if r.split == "train"]
    if val_fraction > 0 and len(train) > 1 and not any(r.split == "val" for r in records):
        n_carved = max(1, int(round(len(train) * val_fraction)))
        for i in np.random.default_rng(seed).permutation(len(train))[:n_carved]:
            train[i].split = "val"
        logging.warning(
            "No image was assigned to val: moved val_fraction=%g of the %d train images (%d, seed %d) to val. "
            "Pass --val_fraction=0 to train without a validation split.",
            val_fraction, len(train), n_carved, seed,
        )
    counts = {s: 0 for s in features.SPLITS}
    for r in records:
        counts[r.split] = counts.get(r.split, 0) + 1
    return counts


def read_id_list(path: str, rejections: Rejections) -> set:
    """Image ids of a list file (one id per line, e.g. AVA's `generic_test.jpgl`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Image list not found. Received: {path!r}")
    return {line.strip().split()[0] for _, line in read_lines(path, rejections) if line.strip()}


def select_major_tags(records, tag_names: list, min_images: int, rejections: Rejections, source: str, origin: dict):
    """Keeps the tags carried by >= `min_images` images (Kao et al. 2017 protocol).

    An image keeps its major tags in order (so its primary tag is its first major
    tag); an image without any major tag is rejected (`no_major_tag`). Tag ids
    are remapped to the dense list of major tags, which is returned with the
    kept records.
    """
    counts = np.zeros(len(tag_names), dtype=np.int64)
    for r in records:
        for t in set(r.tags):
            counts[t] += 1
    major = [t for t in range(len(tag_names)) if counts[t] >= min_images]
    remap = {t: i for i, t in enumerate(major)}
    kept = []
    for r in records:
        tags = [remap[t] for t in r.tags if t in remap]
        if not tags:
            file, number = origin.get(r.image_id, (source, None))
            rejections.reject(
                "no_major_tag",
                source=file,
                record=number,
                image_id=r.image_id,
                detail=f"tags {[tag_names[t] for t in r.tags]} all have < {min_images} images",
            )
            continue
        r.tags = tags[:2]
        kept.append(r)
    return kept, [tag_names[t] for t in major]


def finish_build(
    data: SourceData,
    out_dir: str,
    *,
    num_shards=4,
    rules: reviews_lib.ReviewRules = reviews_lib.ReviewRules(),
    rewrite_reviews: bool = False,
    command_line: str = "",
    extra_manifest: Optional[dict] = None,
    validate_images: bool = True,
    max_pixels: Optional[int] = images_lib.DEFAULT_MAX_PIXELS,
    num_workers: Optional[int] = 1,
) -> dict:
    """Stage 2: derives review ratings (seed 000 §4.1) and writes the records.

    `num_workers`: processes for the writer's per-image work (None: one per core;
    `tfaesthetic.records.parallel`); the records do not depend on it.

    Returns:
        The manifest; `manifest["review_derivation"]` holds the comment counts per
        review type/level/rating, `manifest["consistency"]` Eq. 7 (None without votes).
    """
    derivation = parallel.derive_ratings(data.records, rules, rewrite=rewrite_reviews, num_workers=num_workers)
    extra = {"source_notes": data.notes, "review_derivation": derivation}
    extra.update(extra_manifest or {})
    try:
        manifest = write_records_fn()(
            out_dir,
            data.records,
            scale=data.scale,
            users=data.users,
            tags=data.tags,
            source=data.source,
            rejections=data.rejections,
            num_shards=num_shards,
            command_line=command_line or " ".join(shlex.quote(a) for a in sys.argv),
            extra_manifest=extra,
            validate_images=validate_images,
            max_pixels=max_pixels,
            num_workers=num_workers,
        )
    finally:
        # The writer's entries (undecodable image, ...) know the image id and at most the
        # record's position in the list it was given: point them at the source file and
        # line of their image instead (also when the build failed, for its message).
        located = _locate_writer_entries(data)
    if located:
        data.rejections.write(os.path.join(out_dir, "rejected.jsonl"))  # not hashed
    return manifest


def _locate_writer_entries(data: SourceData) -> int:
    located = 0
    for entry in data.rejections.entries:
        if entry.get("source") == data.source and entry.get("image_id") in data.origin:
            entry["stage"] = "writer"
            entry["source"], entry["record"] = data.origin[entry["image_id"]]
            located += 1
    return located


def build(
    read_fn: Callable[..., SourceData],
    out_dir: str,
    source_path: str,
    *,
    num_shards=4,
    rules: reviews_lib.ReviewRules = reviews_lib.ReviewRules(),
    rewrite_reviews: bool = False,
    command_line: str = "",
    validate_images: bool = True,
    max_pixels: Optional[int] = images_lib.DEFAULT_MAX_PIXELS,
    rejections: Optional[Rejections] = None,
    num_workers: Optional[int] = 1,
    **read_kwargs,
) -> dict:
    """Reads a source (`read_fn(source_path, rejections=..., **read_kwargs)`), derives ratings, writes records.

    The one build of every source (`ava.build_ava`, `photonet.build_photonet`,
    `jsonl.build_jsonl`): stage 1 is the source's reader, stage 2 `finish_build`.

    Args:
        read_fn: the source's reader, e.g. `ava.read_ava`; returns a `SourceData`.
        out_dir: output directory of the records.
        source_path: the reader's first argument (the AVA folder, the scores file,
            the JSONL file).
        num_shards: shards per split (int or `{split: n}`).
        rules: the review-derivation thresholds (seed 000 §4.1).
        rewrite_reviews: store type II reviews rewritten as the paper does.
        command_line: the command for the manifest (default: `sys.argv`).
        validate_images: decode every image once to reject bad ones.
        max_pixels: pixel budget of one image, read from its header (None/0: none).
        rejections: the build's `Rejections` (a new one when None).
        num_workers: processes for the writer's per-image work (None: one per core).
        **read_kwargs: the reader's own options (comments, splits, protocols).

    Returns:
        The manifest (`consistency`: Eq. 7 of seed 000 when the source has votes).
    """
    data = read_fn(source_path, rejections=rejections, **read_kwargs)
    return finish_build(
        data,
        out_dir,
        num_shards=num_shards,
        rules=rules,
        rewrite_reviews=rewrite_reviews,
        command_line=command_line,
        validate_images=validate_images,
        max_pixels=max_pixels,
        num_workers=num_workers,
    )


def write_records_fn():
    """The writer's `write_records`, imported on first use.

    The writer imports TensorFlow; this module does not, so the build CLIs can import
    it before `console.setup_build_cli()` quiets TensorFlow's start-up.
    """
    from tfaesthetic.records.writer import write_records

    return write_records


def report(manifest: dict, out_dir: str, rejections: Rejections) -> str:
    """The builders' closing report: counts, rejections, Eq. 7, where the records went."""
    lines = [
        f"images written: {manifest['splits']} (total {manifest['num_images']}), "
        f"users: {manifest['num_users']}, tags: {manifest['num_tags']}, vocabulary: {manifest['vocab_size']}",
    ]
    derivation = manifest.get("review_derivation")
    if derivation:
        lines.append(f"review types: {derivation['types']}; derived ratings: {derivation['ratings']}")
    lines.append(rejections.summary())
    if manifest.get("consistency") is not None:
        lines.append(f"Eq. 7 consistency of derived ratings with votes: {100 * manifest['consistency']:.2f}%")
    elif manifest.get("has_votes"):
        lines.append("Eq. 7 consistency of derived ratings with votes: n/a (no image has a derived rating)")
    check = manifest.get("review_check")
    if check:
        c, r = check["consistency"], check["share_good_srcc"]

        def pct(v):
            return "n/a" if v is None else f"{100 * v:.2f}%"

        def num(v):
            return "n/a" if v is None else f"{v:.3f}"

        lines.append(
            f"  references: every comment 'good' {pct(c['all_good'])} (on the {check['images_rated']} images with "
            f"a derived rating: {pct(c['all_good_same_images'])}), VADER compound sign {pct(c['vader_sign'])}"
        )
        lines.append(
            f"  per image SRCC with the mean vote: share of 'good' derived ratings {num(r['derived'])}, "
            f"share of positive VADER compounds {num(r['vader_positive'])}, mean preference level {num(r['mean_level'])}"
        )
    lines.append(f"records: {os.path.abspath(out_dir)} (manifest.json, rejected.jsonl)")
    return "\n".join(lines)


def define_build_flags(flags, *, default_val_fraction: float = 0.05, default_test_fraction: float = 0.1) -> dict:
    """Defines the flags every `records/build_*.py` script shares; returns the holders.

    Args:
        flags: the `absl.flags` module.
        default_val_fraction: default of `--val_fraction`.
        default_test_fraction: default of `--test_fraction`.
    """
    return {
        "out_dir": flags.DEFINE_string("out_dir", None, "Output directory of the records (required)."),
        "num_shards": flags.DEFINE_integer("num_shards", 4, "Shards per split (capped at the split's images)."),
        "seed": flags.DEFINE_integer("seed", 0, "Seed of the random split; same flags, same records."),
        "val_fraction": flags.DEFINE_float("val_fraction", default_val_fraction, "Fraction of images for val."),
        "test_fraction": flags.DEFINE_float("test_fraction", default_test_fraction, "Fraction of images for test."),
        "split": flags.DEFINE_string(
            "split", "", "Split as train/test or train/val/test percentages, e.g. 90/10 (paper); overrides the fractions."
        ),
        "comments": flags.DEFINE_string(
            "comments", None, "Comments: a directory of <id>.txt (one comment a line, optionally user<TAB>text), "
            "or a .json (id -> [comments]) or .csv/.tsv (image_id,text[,user]) file."
        ),
        "min_comment_words": flags.DEFINE_integer(
            "min_comment_words", 1, "Drop comments with fewer words (seed 003 drops one-word comments: 2)."
        ),
        "drop_no_comments": flags.DEFINE_bool(
            "drop_no_comments", False, "Reject images without any usable comment (paper protocol)."
        ),
        "rewrite_reviews": flags.DEFINE_bool(
            "rewrite_reviews", False, "Store type II reviews as 'The photo is good/bad' (paper cleaning step)."
        ),
        "validate_images": flags.DEFINE_bool("validate_images", True, "Decode every image once to reject bad ones."),
        "max_pixels": flags.DEFINE_integer(
            "max_pixels", images_lib.DEFAULT_MAX_PIXELS,
            "Pixel budget of one image (width x height, read from its header before decoding); "
            "larger images are rejected (too_many_pixels). 0: no budget.",
            lower_bound=0,
        ),
        "num_workers": flags.DEFINE_integer(
            "num_workers", None,
            "Processes for the per-image work (image checks, Example serialisation); default: one per core. "
            "The records are the same whatever the number.",
            lower_bound=1,
        ),
    }


def build_kwargs_from_flags(holders: dict, rejections: Rejections) -> dict:
    """The options every source's build takes, from the shared flags (`define_build_flags`)."""
    val_fraction, test_fraction = fractions_from_flags(holders)
    return {
        "drop_no_comments": holders["drop_no_comments"].value,
        "min_comment_words": holders["min_comment_words"].value,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "seed": holders["seed"].value,
        "num_shards": holders["num_shards"].value,
        "rewrite_reviews": holders["rewrite_reviews"].value,
        "validate_images": holders["validate_images"].value,
        "max_pixels": holders["max_pixels"].value,
        "num_workers": holders["num_workers"].value,  # None: one per core
        "rejections": rejections,
        "command_line": " ".join(sys.argv),
    }


def fractions_from_flags(holders: dict) -> tuple:
    """`(val_fraction, test_fraction)` from `--split` or the fraction flags."""
    if holders["split"].value:
        return parse_split(holders["split"].value)
    return holders["val_fraction"].value, holders["test_fraction"].value


def run_build(build: Callable[[Rejections], dict], out_dir: Optional[str]) -> int:
    """Runs a builder, prints its report; a whole-input error prints one line, exit code 1.

    Per-record problems never get here (they are rejections); this catches the
    errors that make the whole build impossible (a missing AVA.txt, a comments
    file that is not JSON, bad flags) so that the user sees a message, not a
    traceback.
    """
    if not out_dir:
        print("error: --out_dir is required", file=sys.stderr)
        return 1
    rejections = Rejections()
    try:
        manifest = build(rejections)
    except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeError) as e:
        # Includes writer.EmptyBuildError (nothing would be written; the old records stay).
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report(manifest, out_dir, rejections))
    return 0
