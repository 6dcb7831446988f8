"""Photo.net source: score distributions + images + comments -> records (SPEC §2.3).

Input:

- a scores table (`scores_file`), CSV or TSV (tab when the file ends in `.tsv` or
  `.txt` or its first line holds a tab), one image a row:
  `id, c1, c2, c3, c4, c5, c6, c7[, tags]` where c_k is the number of votes for
  score k (1..7) and `tags` (optional) is a `|`-separated list of tag names
  (at most 2 are used, primary first). A first row whose second field is not an
  integer is a header and is skipped;
- images `<image_dir>/<id>.jpg` (no `image_dir`: text-only records);
- comments from a `CommentSource` (directory of `<id>.txt`, or JSON/CSV mapping);
- optional id lists `val_list` / `test_list` (one id a line) to reproduce a fixed
  partition (seed 003 uses 11 754 / 782 / 2 409 images); images in neither list
  are split at random by the fractions.

Rules for bad rows (besides the shared ones in `common`):

- blank row: skipped, counted (`line:empty_line`);
- not 8 or 9 fields, or a 9th field that is an integer (a vote row with 8 bins):
  rejected (`image:votes_wrong_num_bins`);
- a vote field that is not a plain ASCII integer, or an empty id: rejected
  (`image:invalid_row`); an id with a control character: rejected
  (`image:invalid_id`); ids are normalised (`features.normalize_id`);
- a negative count or one above 2**31 - 1: rejected (`image:invalid_votes`); no
  vote: rejected (`image:no_votes`);
- an id seen before (also after normalisation, or differing only by zero-width
  characters): rejected (`image:duplicate_id`, first row kept);
- more than 2 tags: the first two are kept (kept note `image:extra_tags`).
"""

from __future__ import annotations

import os
from typing import Optional

from tfaesthetic import features
from tfaesthetic.records import common
from tfaesthetic.records import rules
from tfaesthetic.records.rejections import Rejections

NUM_BINS = features.PHOTONET_SCALE.num_bins
TAG_SEPARATOR = "|"


def read_photonet(
    scores_file: str,
    *,
    image_dir: Optional[str] = None,
    comments: Optional[str] = None,
    drop_no_comments: bool = False,
    min_comment_words: int = 1,
    val_list: Optional[str] = None,
    test_list: Optional[str] = None,
    val_fraction: float = 0.05,
    test_fraction: float = 0.15,
    seed: int = 0,
    rejections: Optional[Rejections] = None,
) -> common.SourceData:
    """Reads a Photo.net scores table into `ImageRecord`s (stage 1, no TensorFlow).

    Args:
        scores_file: the `id,c1..c7[,tags]` CSV/TSV.
        image_dir: folder of `<id>.jpg`; None for text-only records.
        comments: comments source; None for none.
        drop_no_comments: reject images left without a comment.
        min_comment_words: drop comments with fewer words (seed 003: 2).
        val_list: optional file of val image ids.
        test_list: optional file of test image ids.
        val_fraction: fraction of the unlisted images for val.
        test_fraction: fraction of the unlisted images for test.
        seed: split seed.
        rejections: the build's `Rejections` (a new one when None).

    Returns:
        A `common.SourceData` on `features.PHOTONET_SCALE`.
    """
    rejections = rejections if rejections is not None else Rejections()
    if not os.path.isfile(scores_file):
        raise FileNotFoundError(f"Photo.net scores file not found. Received: scores_file={scores_file!r}")
    if image_dir is not None and not os.path.isdir(image_dir):
        raise FileNotFoundError(f"Image folder not found. Received: image_dir={image_dir!r}")
    source_comments = common.CommentSource(comments, rejections) if comments else None
    users = common.UserIndex()
    tag_index = {}
    records, origin, seen, ids_in_file = [], {}, rules.IdRegistry(), []
    rows = common.read_table(scores_file, rejections)
    for position, (number, fields) in enumerate(rows):
        if not fields or not any(f.strip() for f in fields):
            rejections.reject("empty_line", source=scores_file, record=number, level="line")
            continue
        if position == 0 and len(fields) > 1 and not _is_int(fields[1]):
            continue  # header row
        try:
            record = _parse_row(fields, number, scores_file, seen, rejections, tag_index)
            if record is None:
                continue
            ids_in_file.append(record.image_id)
            image_path = os.path.join(image_dir, f"{record.image_id}.jpg") if image_dir is not None else None
            if image_path is not None and not common.attach_image_file(record, image_path, rejections, scores_file, number):
                continue
            if source_comments is not None and not common.attach_comments(
                record, source_comments, users, rejections, scores_file, number,
                min_comment_words=min_comment_words, drop_no_comments=drop_no_comments,
            ):
                continue
        except Exception as e:  # noqa: BLE001 -- per-record guard, reported not raised.
            rejections.reject("unreadable_record", source=scores_file, record=number, detail=f"{type(e).__name__}: {e}")
            continue
        records.append(record)
        origin[record.image_id] = (scores_file, number)
    if source_comments is not None:
        source_comments.report_unused(ids_in_file)

    fixed, notes = {}, {}
    for split, path in (("val", val_list), ("test", test_list)):
        if path:
            listed = common.read_id_list(path, rejections)
            fixed.update({r.image_id: split for r in records if r.image_id in listed})
            notes[f"{split}_list"] = os.path.abspath(path)
    notes["split_counts_before_writing"] = common.assign_splits(
        records, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, fixed=fixed
    )
    return common.SourceData(
        records=records,
        users=users.names,
        tags=sorted(tag_index, key=tag_index.get),
        scale=features.PHOTONET_SCALE,
        rejections=rejections,
        origin=origin,
        notes=notes,
        source=f"photonet:{os.path.abspath(scores_file)}",
    )


def _is_int(text: str) -> bool:
    return rules.parse_int(text) is not None


def _parse_row(fields, number, path, seen, rejections, tag_index):
    image_id = features.normalize_id(fields[0])
    if len(fields) not in (NUM_BINS + 1, NUM_BINS + 2) or (len(fields) == NUM_BINS + 2 and _is_int(fields[-1])):
        rejections.reject(
            "votes_wrong_num_bins",
            source=path,
            record=number,
            image_id=image_id,
            detail=f"Expected id + {NUM_BINS} vote counts [+ tags]. Received: {len(fields)} fields",
        )
        return None
    if not image_id:
        rejections.reject("invalid_row", source=path, record=number, detail="empty id")
        return None
    votes = [rules.parse_int(v) for v in fields[1 : NUM_BINS + 1]]
    if any(v is None for v in votes):
        rejections.reject(
            "invalid_row",
            source=path,
            record=number,
            image_id=image_id,
            detail=f"Expected plain ASCII integer vote counts. Received: {fields[1:8]}",
        )
        return None
    problem = rules.votes_problem(votes, NUM_BINS)
    if problem is None:
        image_id, problem = seen.check(image_id)
    if problem is not None:
        rejections.reject(problem[0], source=path, record=number, image_id=image_id, detail=problem[1])
        return None
    if seen.add(image_id, number):
        rejections.keep("zero_width_in_id", source=path, record=number, image_id=image_id, level="image")
    names = []
    if len(fields) == NUM_BINS + 2:
        names = [t.strip() for t in fields[-1].split(TAG_SEPARATOR) if t.strip()]
    if len(names) > 2:
        rejections.keep("extra_tags", source=path, record=number, image_id=image_id, detail=str(names), level="image")
        names = names[:2]
    tags = [tag_index.setdefault(name, len(tag_index)) for name in dict.fromkeys(names)]
    return features.ImageRecord(image_id=image_id, votes=votes, tags=tags)


def build_photonet(out_dir: str, scores_file: str, **kwargs) -> dict:
    """Builds records from Photo.net: `common.build(read_photonet, out_dir, scores_file, **kwargs)`.

    `kwargs` are `common.build`'s options and `read_photonet`'s. Returns the manifest
    (with `consistency`, Eq. 7 of seed 000, threshold 4 on 1..7).
    """
    return common.build(read_photonet, out_dir, scores_file, **kwargs)
