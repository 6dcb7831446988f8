"""Generic JSONL source: users' own photo + comment data -> records (SPEC §2.3).

One image a line (UTF-8; keys other than these are ignored):

    {"image_id": "abc",                    # required: a non-empty string (an integer is accepted)
     "image_path": "images/abc.jpg",       # optional: relative to the JSONL file (or absolute)
     "votes": [0, 1, 5, 9, 3],             # optional: vote counts, one per score bin
     "tags": ["landscape", "sky"],         # optional: tag names, primary first (2 used)
     "split": "train",                     # optional: train|val|test, honoured
     "comments": [{"text": "Lovely light", "user": "u1"}, "plain strings work too"]}

Score scale: `score_values` (e.g. 1..10), or `num_bins` (values 1..n), and
`threshold`; when neither is given, the number of bins is inferred from the
first line with votes (values 1..n) and the build says so. The default threshold
is 5 for ten bins 1..10 (the AVA convention) and the middle of the range
otherwise (4 for 1..7, as Photo.net).

Every line ends up either as a record or as an entry of `rejected.jsonl` (file,
line number, reason):

- blank line: rejected (`line:empty_line`);
- not valid JSON: rejected (`image:invalid_json`); valid JSON that is not an
  object: rejected (`image:wrong_type`);
- `image_id` missing: rejected (`image:missing_field`); a field of the wrong
  type (id not a string/integer, `votes` not a list of whole numbers, `tags` not a
  list of strings, `comments` not a list, `image_path` not a string):
  rejected (`image:wrong_type`, the detail names the field and what was received);
- `split` not train/val/test: rejected (`image:unknown_split`); lines without a
  split are split at random by the fractions;
- `votes` of a length other than the number of bins: rejected
  (`image:votes_wrong_num_bins`); negative counts or counts above 2**31 - 1
  (`100000000000000000000`): rejected (`image:invalid_votes`); all zero:
  rejected (`image:no_votes`);
- votes are all or nothing: when some kept line has votes, a line without votes
  is rejected (`image:missing_votes`);
- an id with a control character (tab, newline, NUL): rejected
  (`image:invalid_id`); ids are normalised (`features.normalize_id`: NFC,
  surrounding whitespace stripped);
- an id seen on an earlier kept line (also after normalisation, or differing
  only by zero-width characters): rejected (`image:duplicate_id`);
- `image_path` that does not exist: rejected (`image:missing_image_file`);
- more than 2 tags: the first 2 are kept (kept note `image:extra_tags`);
- a comment item that is neither a string nor an object with a string `text`:
  the comment is dropped (`comment:wrong_type`); a `user` that is not a string
  or integer makes the comment anonymous;
- non-UTF-8 bytes in the line, or lone surrogates (`"\\ud800"`) in a string:
  replaced by U+FFFD and kept (kept note `non_utf8_text`);
- plus the shared comment rules of `tfaesthetic.records.common` (no letters,
  no comments) and the writer's image rules.
"""

from __future__ import annotations

import json
import math
import os
from typing import Optional, Sequence

from tfaesthetic import features
from tfaesthetic.records import common
from tfaesthetic.records import rules
from tfaesthetic.records.rejections import Rejections

MAX_TAGS = 2


class _LineError(Exception):
    """A rule-based rejection of one line (reason, detail)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def make_scale(
    num_bins: Optional[int] = None, score_values: Optional[Sequence[float]] = None, threshold: Optional[float] = None
) -> features.ScoreScale:
    """The score scale from explicit values or a number of bins (see module docstring)."""
    if score_values:
        values = tuple(float(v) for v in score_values)
        if num_bins and int(num_bins) != len(values):
            raise ValueError(
                f"num_bins does not match score_values. Received: num_bins={num_bins}, len(score_values)={len(values)}"
            )
    elif num_bins:
        if int(num_bins) < 2:
            raise ValueError(f"Expected num_bins >= 2. Received: num_bins={num_bins}")
        values = tuple(float(v) for v in range(1, int(num_bins) + 1))
    else:
        raise ValueError("make_scale needs num_bins or score_values. Received neither.")
    if threshold is None:
        threshold = 5.0 if values == features.AVA_SCALE.values else (min(values) + max(values)) / 2
    return features.ScoreScale(values=values, threshold=float(threshold))


def _as_id(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _LineError("wrong_type", f"Expected image_id as a string. Received: {type(value).__name__}")
    text = features.normalize_id(value)
    if not text:
        raise _LineError("wrong_type", "Expected a non-empty image_id. Received: ''")
    return text


def _as_votes(value):
    if not isinstance(value, list):
        raise _LineError("wrong_type", f"Expected votes as a list of integers. Received: {type(value).__name__}")
    votes = []
    for v in value:
        whole = isinstance(v, int) or (isinstance(v, float) and math.isfinite(v) and v.is_integer())
        if isinstance(v, bool) or not whole:
            raise _LineError("wrong_type", f"Expected whole-number vote counts. Received: {common.short(v)}")
        votes.append(int(v))
    return votes


def _parse_object(obj, base_dir: str, path: str, number: int, rejections: Rejections) -> dict:
    """Validates the types of one JSON line; returns plain fields or raises `_LineError`."""
    if not isinstance(obj, dict):
        raise _LineError("wrong_type", f"Expected a JSON object. Received: {type(obj).__name__}")
    if "image_id" not in obj:
        raise _LineError("missing_field", f"Expected an image_id. Received keys: {sorted(map(str, obj))[:10]}")
    image_id = _as_id(obj["image_id"])
    image_id, repaired = common.repair_text(image_id)
    if repaired:
        rejections.keep("non_utf8_text", source=path, record=number, image_id=image_id, level="image")
    fields = {"image_id": image_id, "image_path": None, "votes": None, "tags": [], "split": None, "comments": []}
    image_path = obj.get("image_path")
    if image_path is not None:
        if not isinstance(image_path, str) or not image_path.strip():
            raise _LineError("wrong_type", f"Expected image_path as a string. Received: {common.short(image_path)}")
        fields["image_path"] = os.path.join(base_dir, common.repair_text(image_path)[0])
    if obj.get("votes") is not None:
        fields["votes"] = _as_votes(obj["votes"])
    tags = obj.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _LineError("wrong_type", f"Expected tags as a list of strings. Received: {common.short(tags)}")
        names = list(dict.fromkeys(common.repair_text(t.strip())[0] for t in tags if t.strip()))
        if len(names) > MAX_TAGS:
            rejections.keep("extra_tags", source=path, record=number, image_id=image_id, detail=str(names), level="image")
        fields["tags"] = names[:MAX_TAGS]
    split = obj.get("split")
    if split is not None:
        if split not in features.SPLITS:
            raise _LineError("unknown_split", f"Expected one of {features.SPLITS}. Received: split={common.short(split)}")
        fields["split"] = split
    comments = obj.get("comments")
    if comments is not None:
        if not isinstance(comments, list):
            raise _LineError("wrong_type", f"Expected comments as a list. Received: {type(comments).__name__}")
        raw = []
        for item in comments:
            if isinstance(item, str):
                raw.append(common.RawComment(item, None, path, number))
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                raw.append(common.RawComment(item["text"], item.get("user"), path, number))
            else:
                rejections.reject(
                    "wrong_type",
                    source=path,
                    record=number,
                    image_id=image_id,
                    detail=f'Expected a string or {{"text": str, "user": ...}}. Received: {common.short(item)}',
                    level="comment",
                )
        fields["comments"] = raw
    return fields


def parse_lines(path: str, rejections: Rejections) -> list:
    """Stage 1a: each line -> `(line_number, fields)` or a rejection. No scale needed yet."""
    base_dir = os.path.dirname(os.path.abspath(path))
    parsed = []
    for number, text in common.read_lines(path, rejections):
        if not text.strip():
            rejections.reject("empty_line", source=path, record=number, level="line")
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as e:
            rejections.reject("invalid_json", source=path, record=number, detail=f"{e}: {text[:80]!r}")
            continue
        try:
            parsed.append((number, _parse_object(obj, base_dir, path, number, rejections)))
        except _LineError as e:
            image_id = obj.get("image_id") if isinstance(obj, dict) else None
            image_id = common.repair_text(image_id)[0] if isinstance(image_id, str) else ""
            rejections.reject(e.reason, source=path, record=number, image_id=image_id, detail=e.detail)
        except Exception as e:  # noqa: BLE001 -- per-record guard, reported not raised.
            rejections.reject("unreadable_record", source=path, record=number, detail=f"{type(e).__name__}: {e}")
    return parsed


def read_jsonl(
    path: str,
    *,
    num_bins: Optional[int] = None,
    score_values: Optional[Sequence[float]] = None,
    threshold: Optional[float] = None,
    drop_no_comments: bool = False,
    min_comment_words: int = 1,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    rejections: Optional[Rejections] = None,
) -> common.SourceData:
    """Reads a JSONL file into `ImageRecord`s (stage 1, no TensorFlow).

    Args:
        path: the JSONL file.
        num_bins: number of score bins (values 1..n), or None.
        score_values: the score value of each bin, or None.
        threshold: good/bad threshold of the mean score, or None (default rule).
        drop_no_comments: reject images left without a comment.
        min_comment_words: drop comments with fewer words (seed 003: 2).
        val_fraction: fraction of the lines without `split` for val.
        test_fraction: fraction of the lines without `split` for test.
        seed: split seed.
        rejections: the build's `Rejections` (a new one when None).

    Returns:
        A `common.SourceData`; `origin` maps every kept image id to its line and
        `notes["score_scale"]` says where the scale came from.
    """
    rejections = rejections if rejections is not None else Rejections()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"JSONL file not found. Received: path={path!r}")
    parsed = parse_lines(path, rejections)
    notes = {}
    if num_bins or score_values:
        scale = make_scale(num_bins, score_values, threshold)
        notes["score_scale"] = "from the arguments"
    else:
        first = next(((n, f) for n, f in parsed if f["votes"]), None)
        if first is None:
            scale = make_scale(features.AVA_SCALE.num_bins, None, threshold)
            notes["score_scale"] = "no votes in the file: default 10 bins 1..10 (records are text/ratings only)"
        else:
            scale = make_scale(len(first[1]["votes"]), None, threshold)
            notes["score_scale"] = (
                f"inferred from the first votes row (line {first[0]}): {scale.num_bins} bins "
                f"{scale.values[0]:g}..{scale.values[-1]:g}, threshold {scale.threshold:g}"
            )

    users = common.UserIndex()
    tag_index = {}
    seen = rules.IdRegistry()
    kept = []
    for number, fields in parsed:
        image_id = fields["image_id"]
        try:
            votes = fields["votes"]
            problem = None if votes is None else rules.votes_problem(votes, scale.num_bins)
            if problem is None:
                image_id, problem = seen.check(image_id)
            if problem is not None:
                raise _LineError(*problem)
            record = features.ImageRecord(image_id=image_id, votes=votes, split=fields["split"] or "")
            image_path = fields["image_path"]
            if image_path is not None and not common.attach_image_file(record, image_path, rejections, path, number):
                continue
            record.tags = [tag_index.setdefault(t, len(tag_index)) for t in fields["tags"]]
            record.comments = common.make_comments(fields["comments"], users, rejections, image_id, min_comment_words)
        except _LineError as e:
            rejections.reject(e.reason, source=path, record=number, image_id=image_id, detail=e.detail)
            continue
        except Exception as e:  # noqa: BLE001 -- per-record guard, reported not raised.
            detail = f"{type(e).__name__}: {e}"
            rejections.reject("unreadable_record", source=path, record=number, image_id=image_id, detail=detail)
            continue
        if seen.add(image_id, number):
            rejections.keep("zero_width_in_id", source=path, record=number, image_id=image_id, level="image")
        kept.append((number, record))

    # Votes are all or nothing; then the no-comment rule.
    kept = rules.drop_missing_votes(
        kept,
        lambda item: item[1].votes,
        lambda item: rejections.reject(
            "missing_votes", source=path, record=item[0], image_id=item[1].image_id, detail="other lines have votes"
        ),
    )
    records, origin = [], {}
    for number, record in kept:
        if not common.check_no_comments(record, drop_no_comments, rejections, path, number):
            continue
        records.append(record)
        origin[record.image_id] = (path, number)

    fixed = {r.image_id: r.split for r in records if r.split}
    notes["lines_with_split"] = len(fixed)
    notes["split_counts_before_writing"] = common.assign_splits(
        records, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, fixed=fixed
    )
    return common.SourceData(
        records=records,
        users=users.names,
        tags=sorted(tag_index, key=tag_index.get),
        scale=scale,
        rejections=rejections,
        origin=origin,
        notes=notes,
        source=f"jsonl:{os.path.abspath(path)}",
    )


def build_jsonl(out_dir: str, path: str, **kwargs) -> dict:
    """Builds records from a JSONL file: `common.build(read_jsonl, out_dir, path, **kwargs)`.

    `kwargs` are `common.build`'s options and `read_jsonl`'s. Returns the manifest
    (`consistency`: Eq. 7 of seed 000 when the lines have votes).
    """
    return common.build(read_jsonl, out_dir, path, **kwargs)
