"""AVA source: `AVA.txt` + tags + challenges + images + comments -> records (SPEC §2.3).

Input (`ava_dir`):

- `AVA.txt`: one image per line, 15 whitespace-separated integers
  `index image_id v1 .. v10 tag1 tag2 challenge` (v_k = number of votes for score
  k; tag 0 = no tag);
- `tags.txt`, `challenges.txt` (optional): `id name` per line;
- `aesthetics_image_lists/*.jpgl` (optional): image id lists, e.g. the official
  `generic_test.jpgl`, used with `official_test_list`.

Images are `<image_dir>/<image_id>.jpg` (no `image_dir`: text-only records).
Comments come from a `CommentSource` (a directory of `<id>.txt`, or a JSON/CSV
mapping; see `tfaesthetic.records.common`).

Rules for bad rows of `AVA.txt` (besides the shared ones in `common`):

- blank line: skipped, counted (`line:empty_line`);
- not 15 fields: rejected (`image:votes_wrong_num_bins`, the vote row cannot be
  read as 10 bins);
- a field that is not a plain ASCII integer (`1_0`, `+1`, `٣`, `1e20` are not):
  rejected (`image:invalid_row`);
- a negative vote count, or one above 2**31 - 1: rejected (`image:invalid_votes`);
- a tag or challenge id above 2**31 - 1: rejected (`image:invalid_value`);
- an id with a control character: rejected (`image:invalid_id`); ids are
  normalised (`features.normalize_id`);
- no vote at all: rejected (`image:no_votes`, the mean score is undefined);
- an id seen before (also after normalisation, or differing only by zero-width
  characters): rejected (`image:duplicate_id`, the first row is kept);
- a tag id not in `tags.txt`: the tag is dropped, the image kept (kept note
  `image:unknown_tag`).

Paper protocols as arguments: `drop_no_comments` (seed 003 §IV-A),
`major_tags_min_images=3000` (seed 000 §4: the 29 major tags, primary tag
first), `official_test_list="generic_test.jpgl"` (seed 003: the standard
AVA partition), `test_fraction=0.1` (seed 000: 90/10).
"""

from __future__ import annotations

import os
from typing import Optional

from tfaesthetic import features
from tfaesthetic.records import common
from tfaesthetic.records import rules
from tfaesthetic.records.rejections import Rejections

NUM_FIELDS = 15
LISTS_DIR = "aesthetics_image_lists"


def read_names(path: str, rejections: Rejections) -> dict:
    """`id name` lines -> {id: name} (bad lines are counted as `line:invalid_row`)."""
    names = {}
    for number, line in common.read_lines(path, rejections):
        if not line.strip():
            continue
        head, _, name = line.strip().partition(" ")
        value = rules.parse_int(head)
        if value is not None:
            names[value] = name.strip() or head
        else:
            rejections.reject(
                "invalid_row", source=path, record=number, detail=f"Expected 'id name'. Received: {line[:80]!r}", level="line"
            )
    return names


def resolve_list(ava_dir: str, name: str) -> str:
    """A list file given as a path or as a name inside `ava_dir/aesthetics_image_lists/`."""
    if os.path.isfile(name):
        return name
    candidate = os.path.join(ava_dir, LISTS_DIR, name)
    if os.path.isfile(candidate):
        return candidate
    raise FileNotFoundError(
        f"Image list not found as a path or in {os.path.join(ava_dir, LISTS_DIR)}. Received: official_test_list={name!r}"
    )


def read_ava(
    ava_dir: str,
    *,
    image_dir: Optional[str] = None,
    comments: Optional[str] = None,
    drop_no_comments: bool = False,
    min_comment_words: int = 1,
    major_tags_min_images: int = 0,
    official_test_list: Optional[str] = None,
    val_fraction: float = 0.05,
    test_fraction: float = 0.1,
    seed: int = 0,
    rejections: Optional[Rejections] = None,
) -> common.SourceData:
    """Reads an AVA folder into `ImageRecord`s (stage 1, no TensorFlow).

    Args:
        ava_dir: folder with `AVA.txt` (and optionally `tags.txt`,
            `challenges.txt`, `aesthetics_image_lists/`).
        image_dir: folder of `<id>.jpg`; None for text-only records.
        comments: comments source (directory, .json or .csv/.tsv); None for none.
        drop_no_comments: reject images left without a comment.
        min_comment_words: drop comments with fewer words (seed 003: 2).
        major_tags_min_images: when > 0, keep only tags carried by at least this
            many images and drop images without one of them.
        official_test_list: a `.jpgl` list (path, or name in
            `aesthetics_image_lists/`) whose images form the test split;
            `test_fraction` is then ignored.
        val_fraction: fraction of the non-test images (or of all images) for val.
        test_fraction: fraction of the images for test (random, `seed`).
        seed: split seed.
        rejections: the build's `Rejections` (a new one when None).

    Returns:
        A `common.SourceData` on `features.AVA_SCALE`.
    """
    rejections = rejections if rejections is not None else Rejections()
    ava_txt = os.path.join(ava_dir, "AVA.txt")
    if not os.path.isfile(ava_txt):
        raise FileNotFoundError(f"No AVA.txt in the AVA folder. Received: ava_dir={ava_dir!r}")
    if image_dir is not None and not os.path.isdir(image_dir):
        raise FileNotFoundError(f"Image folder not found. Received: image_dir={image_dir!r}")
    notes = {}
    tags_path = os.path.join(ava_dir, "tags.txt")
    tag_names_by_id = read_names(tags_path, rejections) if os.path.isfile(tags_path) else {}
    if not tag_names_by_id:
        notes["tags"] = "no tags.txt: tags are named by their AVA id"
    challenges_path = os.path.join(ava_dir, "challenges.txt")
    challenges = read_names(challenges_path, rejections) if os.path.isfile(challenges_path) else {}
    notes["num_challenges"] = len(challenges)
    source_comments = common.CommentSource(comments, rejections) if comments else None
    users = common.UserIndex()

    rows = []
    seen = rules.IdRegistry()
    ids_in_file = []
    for number, line in common.read_lines(ava_txt, rejections):
        if not line.strip():
            rejections.reject("empty_line", source=ava_txt, record=number, level="line")
            continue
        try:
            row = _parse_row(line, number, ava_txt, seen, rejections)
        except Exception as e:  # noqa: BLE001 -- per-record guard, reported not raised.
            rejections.reject("unreadable_record", source=ava_txt, record=number, detail=f"{type(e).__name__}: {e}")
            continue
        if row is not None:
            rows.append(row)
            ids_in_file.append(row[1])

    # Tag ids -> dense indices over tags.txt (or over the ids seen when it is absent).
    if not tag_names_by_id:
        tag_names_by_id = {t: f"tag_{t}" for _, _, _, tags, _ in rows for t in tags}
    tag_ids = sorted(tag_names_by_id)
    dense_tag = {t: i for i, t in enumerate(tag_ids)}
    tag_names = [tag_names_by_id[t] for t in tag_ids]

    records, origin = [], {}
    for number, image_id, votes, tags, challenge in rows:
        try:
            record = features.ImageRecord(image_id=image_id, votes=votes, challenge=challenge)
            kept_tags = []
            for t in tags:
                if t in dense_tag:
                    kept_tags.append(dense_tag[t])
                else:
                    rejections.keep(
                        "unknown_tag", source=ava_txt, record=number, image_id=image_id, detail=f"tag id {t}", level="image"
                    )
            record.tags = kept_tags
            image_path = os.path.join(image_dir, f"{image_id}.jpg") if image_dir is not None else None
            if image_path is not None and not common.attach_image_file(record, image_path, rejections, ava_txt, number):
                continue
            if source_comments is not None and not common.attach_comments(
                record, source_comments, users, rejections, ava_txt, number,
                min_comment_words=min_comment_words, drop_no_comments=drop_no_comments,
            ):
                continue
        except Exception as e:  # noqa: BLE001 -- per-record guard, reported not raised.
            rejections.reject(
                "unreadable_record", source=ava_txt, record=number, image_id=image_id, detail=f"{type(e).__name__}: {e}"
            )
            continue
        records.append(record)
        origin[image_id] = (ava_txt, number)
    if source_comments is not None:
        source_comments.report_unused(ids_in_file)

    if major_tags_min_images and major_tags_min_images > 0:
        records, tag_names = common.select_major_tags(
            records, tag_names, major_tags_min_images, rejections, ava_txt, origin
        )
        notes["major_tags_min_images"] = int(major_tags_min_images)

    fixed = {}
    if official_test_list:
        list_path = resolve_list(ava_dir, official_test_list)
        test_ids = common.read_id_list(list_path, rejections)
        fixed = {r.image_id: "test" for r in records if r.image_id in test_ids}
        notes["official_test_list"] = list_path
        notes["official_test_ids_not_kept"] = len(test_ids) - len(fixed)
        test_fraction = 0.0
    notes["split_counts_before_writing"] = common.assign_splits(
        records, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, fixed=fixed
    )
    return common.SourceData(
        records=records,
        users=users.names,
        tags=tag_names,
        scale=features.AVA_SCALE,
        rejections=rejections,
        origin=origin,
        notes=notes,
        source=f"ava:{os.path.abspath(ava_dir)}",
    )


def _parse_row(line, number, path, seen, rejections):
    fields = line.split()
    if len(fields) != NUM_FIELDS:
        rejections.reject(
            "votes_wrong_num_bins",
            source=path,
            record=number,
            image_id=fields[1] if len(fields) > 1 else "",
            detail=f"Expected {NUM_FIELDS} fields (index, id, 10 vote counts, 2 tags, challenge). "
            f"Received: {len(fields)} fields",
        )
        return None
    image_id = fields[1]
    values = [rules.parse_int(v) for v in fields[2:]]
    if any(v is None for v in values):
        rejections.reject(
            "invalid_row",
            source=path,
            record=number,
            image_id=image_id,
            detail=f"Expected plain ASCII integers. Received a non-integer field in {line[:120]!r}",
        )
        return None
    votes, tags, challenge = values[:10], values[10:12], values[12]
    problem = rules.votes_problem(votes, features.AVA_SCALE.num_bins)
    for name, value in (("tag", tags[0]), ("tag", tags[1]), ("challenge", challenge)):
        if problem is None and value > rules.MAX_COUNT:
            problem = "invalid_value", f"Expected {name} <= {rules.MAX_COUNT}. Received: {name}={value}"
    if problem is None:
        image_id, problem = seen.check(image_id)
    if problem is not None:
        rejections.reject(problem[0], source=path, record=number, image_id=image_id, detail=problem[1])
        return None
    if seen.add(image_id, number):
        rejections.keep("zero_width_in_id", source=path, record=number, image_id=image_id, level="image")
    tags = [t for t in tags if t != 0]
    return number, image_id, votes, tags, challenge if challenge > 0 else features.UNKNOWN_CHALLENGE


def build_ava(out_dir: str, ava_dir: str, **kwargs) -> dict:
    """Builds records from AVA: `common.build(read_ava, out_dir, ava_dir, **kwargs)`.

    `kwargs` are `common.build`'s options and `read_ava`'s. Returns the manifest
    (with `consistency`, Eq. 7 of seed 000, over the written images).
    """
    return common.build(read_ava, out_dir, ava_dir, **kwargs)
