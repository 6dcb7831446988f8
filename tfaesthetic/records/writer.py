"""Writes image records as TFRecord shards plus the manifest and id maps (SPEC §2.1).

`write_records` is the one writer every source (`ava`, `photonet`, `jsonl`, `demo`)
calls. Its rules for bad input (each one counted in `manifest.json["counts"]` and
listed in `rejected.jsonl`):

- ids are normalised by `features.normalize_id` (NFC, surrounding whitespace
  stripped); an id holding a control character (tab, newline, NUL) is rejected
  (`invalid_id`); a duplicate `image_id` (also after normalisation, or differing
  only by zero-width characters): the first occurrence is kept, later ones are
  rejected (`duplicate_id`);
- every stored integer is range-checked (`tfaesthetic.records.rules`): a vote
  count above 2**31 - 1 is `invalid_votes`, a tag, challenge or comment field out
  of range `invalid_value` -- one record rejected, never the build;
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
- the image rules of `tfaesthetic.images` (the ones the serving graph applies):
  unknown magic bytes: rejected (`unknown_image_format`); a JPEG without its
  FF D9 end marker or a PNG without IEND (`truncated_image`), or with bytes after
  it (`bytes_after_end_marker`); more than `max_pixels` pixels (50 megapixels by
  default) read from the header, before any decoding (`too_many_pixels`);
- image bytes that `tf.io.decode_image` (the decoder the input pipeline uses)
  cannot decode, including empty files: rejected (`undecodable_image`). Workers
  decode with Pillow; only what Pillow refuses is decoded by TF, here, to decide;
- image whose bytes are another format than its name/`image_format` says (a PNG
  named `.jpg`): kept with the format detected from the bytes (kept note
  `image_format_mismatch`);
- comment text given as bytes that are not valid UTF-8: kept, bad bytes replaced
  by U+FFFD (kept note `non_utf8_text`).

Image bytes are loaded lazily through `record.load_image` in two streaming passes
(validate, then write), in `num_workers` processes (`tfaesthetic.records.parallel`;
the results are applied in source order, so the build does not depend on the
number), with a bounded number of images in flight. Image indices
are dense and assigned to the kept records: training images first (0..n_train-1),
then validation, then test. The vocabulary is built from the training split only.

Builds are all or nothing. A build is written into a staging directory beside
`out_dir` (`<out_dir>.building-<pid>-<token>`), verified (every shard's record
framing and count, sizes, every side file present) and only then switched in by
renaming directories; files in `out_dir` that are not records (e.g. an image folder)
are carried over. A build that fails or is killed at any point leaves the previous
records exactly as they were; the next build removes the stale staging directory
(or, when the kill hit the switch itself, restores the previous records) and says
so. A build that would write no image fails (`EmptyBuildError`, the reason in the
message) and changes nothing. The manifest is strict JSON (undefined figures are
`null`, never NaN) and stores a fingerprint of every shard (`shard_fingerprints`:
sha256 of its size, first and last 64 KiB) that the reader checks on open, so a
shard of another build is named, not read.

Fault hooks for tests: the environment variable `TFAESTHETIC_RECORDS_FAULT` set to
`<stage>:<action>` (stage one of `FAULT_STAGES`, action `kill` = SIGKILL itself,
`raise` = a `RuntimeError`, `exit` = `SimulatedKill`, which skips the clean-up
like a kill) stops a build at that stage; `worker:raise` / `worker:kill` make every
records worker task raise / SIGKILL its process (`worker_check:` only the image
checks of pass 1, `worker_write:` only the serialisation of pass 2,
`worker_reviews:` only the review ratings before the writer;
`tfaesthetic.records.parallel`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
from typing import Optional

import tensorflow as tf

from tfaesthetic import features
from tfaesthetic import images as images_lib
from tfaesthetic import text as text_lib
from tfaesthetic.records import parallel
from tfaesthetic.records import rules
from tfaesthetic.records import shards
from tfaesthetic.records.shards import sha256_file, shard_fingerprint, shard_name  # noqa: F401  (public names of the writer)
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

# The signature table lives in `tfaesthetic.images` (shared with the serving graph).
detect_format = images_lib.detect_format

FAULT_ENV = "TFAESTHETIC_RECORDS_FAULT"
FAULT_STAGES = ("shard", "after_shards", "before_manifest", "before_switch", "switch")
# Staging directories of builds running in this process (never "stale").
_ACTIVE = set()


class EmptyBuildError(ValueError):
    """A build would write no image; nothing was changed (the message gives the reason)."""


class SimulatedKill(BaseException):
    """Raised by the `exit` fault action: stops a build without its clean-up, as SIGKILL would."""


def _fault(stage: str) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    want, _, action = spec.partition(":")
    if want != stage:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "exit":
        raise SimulatedKill(stage)
    raise RuntimeError(f"{FAULT_ENV}: simulated failure at stage {stage!r}")


def _clean_field(value) -> str:
    # tsv fields cannot hold tabs or newlines.
    return re.sub(r"[\t\r\n]", " ", str(value))


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


def _split_num_shards(num_shards, split, count) -> int:
    n = num_shards.get(split, 1) if isinstance(num_shards, dict) else num_shards
    n = int(n)
    if n < 1:
        raise ValueError(f"Expected num_shards >= 1. Received: num_shards={num_shards!r} for split {split!r}")
    return max(1, min(n, count))


# --- staging, switch and recovery ---------------------------------------------------

_SIDE_FILES = (VOCAB_FILE, USERS_FILE, IMAGES_FILE, TAGS_FILE, REJECTED_FILE)


def is_records_file(name: str) -> bool:
    """True for the names a build writes (shards, manifest, side files, their `.tmp`)."""
    if name.endswith(".tmp"):
        name = name[: -len(".tmp")]
    return name == MANIFEST or name in _SIDE_FILES or bool(SHARD_PATTERN.match(name))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _carry_foreign(src_dir: str, dst_dir: str) -> None:
    """Moves the entries of `src_dir` that are not records files into `dst_dir` (user files survive a switch)."""
    for name in sorted(os.listdir(src_dir)):
        if not is_records_file(name) and not os.path.lexists(os.path.join(dst_dir, name)):
            os.rename(os.path.join(src_dir, name), os.path.join(dst_dir, name))


def recover_interrupted_build(out_dir: str) -> list:
    """Cleans up after a build of `out_dir` that was killed; returns what was done, one message each.

    Left-overs beside `out_dir` of a process that is gone:

    - `<out_dir>.building-*`: a build killed before its switch; removed, the
      records in `out_dir` were never touched by it;
    - `<out_dir>.switching-*-<build_id>`: a build killed during its switch. When
      `out_dir` now holds that build, the switch happened and only its clean-up is
      finished (user files carried over, the previous records deleted); otherwise it
      is removed like a staging directory;
    - `<out_dir>.previous-*` (platforms without an atomic directory exchange): the
      previous records, renamed back when `out_dir` is missing, else deleted after
      carrying user files over.
    """
    out_dir = os.path.abspath(str(out_dir))
    parent, base = os.path.split(out_dir)
    if not os.path.isdir(parent):
        return []
    pattern = re.compile(re.escape(base) + r"\.(previous|switching|building)-(\d+)-([0-9a-f]+)(?:-([0-9a-f]+))?")
    order = {"previous": 0, "switching": 1, "building": 2}
    found = []
    for name in os.listdir(parent):
        m = pattern.fullmatch(name)
        if not m:
            continue
        path = os.path.join(parent, name)
        pid = int(m.group(2))
        if path in _ACTIVE or (pid != os.getpid() and _pid_alive(pid)):
            continue  # a build still running
        found.append((order[m.group(1)], name, m.group(1), path, pid, m.group(4)))
    messages = []
    for _, name, kind, path, pid, build_id in sorted(found):
        if kind == "previous" and not os.path.lexists(out_dir):
            os.rename(path, out_dir)
            messages.append(
                f"A records build (pid {pid}) was killed while switching to its new records: "
                f"restored the previous records of {out_dir} from {path}."
            )
            continue
        switched = kind == "previous" or (kind == "switching" and _build_id_of(out_dir) == build_id)
        if os.path.isdir(out_dir):
            _carry_foreign(path, out_dir)  # user files, if the kill hit after an exchange
        shutil.rmtree(path, ignore_errors=True)
        if switched:
            messages.append(
                f"A records build (pid {pid}) was killed right after switching to its new records: "
                f"finished its clean-up (removed {path}); the records in {out_dir} are that build's."
            )
        else:
            messages.append(
                f"Removed the incomplete records build {path} left by an interrupted run (pid {pid}); "
                f"the records in {out_dir} were not changed by it."
            )
    for message in messages:
        logging.warning("%s", message)
    return messages


def _build_id_of(records_dir: str) -> Optional[str]:
    try:
        with open(os.path.join(records_dir, MANIFEST), encoding="utf-8") as f:
            return json.load(f).get("build_id")
    except (OSError, ValueError, AttributeError):
        return None


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Atomically swaps two directories (Linux `renameat2(RENAME_EXCHANGE)`); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (38, 22, 95):  # ENOSYS, EINVAL (file system without exchange), EOPNOTSUPP
        return False
    if errno == 18:  # EXDEV
        raise OSError(errno, f"{os.strerror(errno)}: out_dir {b} is a mount point; build into a folder inside it")
    raise OSError(errno, os.strerror(errno), a)


def _switch(staging: str, out_dir: str, token: str, build_id: str) -> None:
    """Puts the verified build `staging` at `out_dir`, atomically where the OS can; user files carried over."""
    if not os.path.lexists(out_dir):
        _fault("switch")
        os.rename(staging, out_dir)
        return
    switching = f"{out_dir}.switching-{token}-{build_id}"
    os.rename(staging, switching)
    _ACTIVE.add(switching)
    try:
        if _exchange(switching, out_dir):
            old = switching  # now holds the previous records
        else:
            old = f"{out_dir}.previous-{token}"
            os.rename(out_dir, old)
            os.rename(switching, out_dir)
        _fault("switch")
        _carry_foreign(old, out_dir)
        shutil.rmtree(old)
    finally:
        _ACTIVE.discard(switching)


def _verify_staged(staging: str, manifest: dict, expected_counts: dict) -> None:
    """Re-reads what was staged: every shard's framing and record count, sizes, side files, the manifest."""

    files = manifest["files"]
    for name, expected in expected_counts.items():
        path = os.path.join(staging, name)
        count = shards.check_framing(path)
        if count != expected or os.path.getsize(path) != files["shard_bytes"][name]:
            raise RuntimeError(
                f"Verification of the new build failed: {path} holds {count} records, {expected} were written. "
                "The previous records were left unchanged."
            )
    for name in _SIDE_FILES:
        if not os.path.isfile(os.path.join(staging, name)):
            raise RuntimeError(f"Verification of the new build failed: {name} is missing in {staging}.")
    if read_manifest(staging).get("build_id") != manifest["build_id"]:
        raise RuntimeError(f"Verification of the new build failed: {MANIFEST} in {staging} does not read back.")


def _strict_json(value):
    """`value` with NaN/inf floats replaced by None (the manifest is strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def _empty_build_reason(rejections: Rejections, num_records: int) -> str:
    image_reasons = {k: v for k, v in rejections.rejected.items() if k.startswith("image:")}
    lines = {k: v for k, v in rejections.rejected.items() if k.startswith("line:")}
    if not image_reasons and not lines and num_records == 0:
        return "the source holds no records"
    if set(image_reasons) == {"image:invalid_json"}:
        return (
            f"every line was invalid JSON ({image_reasons['image:invalid_json']} lines): "
            "is the file UTF-8 (not UTF-16) with LF line ends?"
        )
    if not image_reasons:
        return f"every line was skipped ({', '.join(f'{k}={v}' for k, v in sorted(lines.items()))})"
    top = ", ".join(f"{k}={v}" for k, v in sorted(image_reasons.items(), key=lambda kv: -kv[1])[:5])
    first = next((e for e in rejections.entries if e["action"] == "rejected" and e["level"] == "image"), None)
    where = ""
    if first is not None:
        where = f"; first: {first.get('source', '')}:{first.get('record', '?')} {first['reason']} {first.get('detail', '')}"
    return f"every record was rejected ({top}){where}"


#: Progress of long builds (set by the records CLIs): None, or `fn(total, label)`
#: returning an object with `update(n)` and `close()`, e.g. `tfaesthetic.console.Progress`.
progress_factory = None


class _NoProgress:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(total, label):
    return progress_factory(total, label) if progress_factory is not None else _NoProgress()


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
    max_pixels: Optional[int] = images_lib.DEFAULT_MAX_PIXELS,
    num_workers: Optional[int] = 1,
) -> dict:
    """Writes records, vocabulary, id maps, rejections and the manifest, all or nothing.

    Args:
        out_dir: output directory. The new build replaces the records in it only
            once complete and verified; other files in it are kept.
        records: the `ImageRecord`s; `image_index` is (re)assigned here and
            `image_id` normalised (`features.normalize_id`).
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
        max_pixels: pixel budget of one image, read from its header before
            decoding (`too_many_pixels` above it); None or 0: no budget.
        num_workers: processes for the per-image work (`tfaesthetic.records.parallel`;
            None: one per core). The records are the same byte for byte whatever
            the number (apart from the manifest's `created`).

    Returns:
        The manifest dict (also written to `out_dir/manifest.json`).

    Raises:
        EmptyBuildError: no image would be written (the records in `out_dir`
            are left as they were).
        ValueError: bad arguments (num_shards, a user name with a control
            character or two equal after normalisation).
    """
    out_dir = os.path.abspath(str(out_dir))
    if os.path.islink(out_dir):
        out_dir = os.path.realpath(out_dir)  # switch the directory the link points to, keep the link
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"Expected out_dir to be a directory. Received: out_dir={out_dir!r} is a file")
    cwd = os.path.realpath(os.getcwd())
    if os.path.exists(out_dir) and (cwd + os.sep).startswith(os.path.realpath(out_dir) + os.sep):
        raise ValueError(
            f"out_dir must not be the current directory or hold it (the build replaces it). Received: out_dir={out_dir!r}"
        )
    recover_interrupted_build(out_dir)
    extra_manifest = dict(extra_manifest or {})
    users = [features.normalize_id(u) for u in users]
    for i, user in enumerate(users):
        detail = features.id_problem(user)
        if detail is not None:
            raise ValueError(f"Expected user names without control characters. Received: users[{i}]: {detail}")
    if len(set(users)) != len(users):
        raise ValueError("Expected distinct user names (after Unicode NFC normalisation and stripping).")

    num_workers = parallel.check_num_workers(num_workers)

    # Pass 1: structural checks, image loading/validation (in workers); no bytes are kept.
    checked = _check_record_rules(records, scale, source, rejections)
    # One pool of workers for both passes, forked once the records' ids are final
    # (the image indices assigned below travel with the pass-2 tasks).
    with parallel.Pool(records, num_workers, -(-len(checked["candidates"]) // parallel.CHUNK)) as pool:
        kept, formats = _check_images(records, checked, source, rejections, validate_images, max_pixels, pool)

        # Votes are all or nothing (a record without votes would train MRACNN on zeros).
        everything = [item for split in features.SPLITS for item in kept[split]]
        positions = {id(record): position for position, record in everything}  # (the workers' index)
        def _reject_missing(item):
            position, record = item
            rejections.reject(
                "missing_votes", source=source, record=position + 1, image_id=record.image_id,
                detail="other records have votes",
            )
        staying = {id(item[1]) for item in rules.drop_missing_votes(everything, lambda it: it[1].votes, _reject_missing)}
        for split in features.SPLITS:
            kept[split] = [r for _, r in kept[split] if id(r) in staying]
        ordered = [r for split in features.SPLITS for r in kept[split]]
        if not ordered:
            raise EmptyBuildError(
                f"No image to write to {out_dir}, nothing was changed there: "
                f"{_empty_build_reason(rejections, len(records))}"
            )
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

        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        staging = f"{out_dir}.building-{token}"
        os.makedirs(os.path.dirname(staging), exist_ok=True)
        os.mkdir(staging)
        _ACTIVE.add(staging)
        try:
            manifest = _write_build(
                staging, kept, ordered, formats, vocabulary, users, tags, scale, source, rejections, num_shards,
                command_line, extra_manifest, has_images, has_votes, images_with_votes, num_with_images,
                pool=pool, positions=positions,
            )
            _fault("before_switch")
            _switch(staging, out_dir, token, manifest["build_id"])
        except SimulatedKill:
            raise  # leaves the staging directory behind, as a kill would
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            _ACTIVE.discard(staging)
        return manifest


def _write_build(
    staging, kept, ordered, formats, vocabulary, users, tags, scale, source, rejections, num_shards,
    command_line, extra_manifest, has_images, has_votes, images_with_votes, num_with_images, pool=None,
    positions=None,
) -> dict:
    """Writes a complete build into the (new, empty) directory `staging` and verifies it."""
    # Pass 2: shards.
    shard_files, fingerprints, expected_counts = {}, {}, {}
    compounds = [None] * len(ordered)  # per image index: VADER scores of its comments (from the workers)
    reviews = {}
    comments_written = {}
    writing = _progress(sum(len(kept[s]) for s in features.SPLITS), "records: writing shards")
    for split in features.SPLITS:
        recs = kept[split]
        n_shards = _split_num_shards(num_shards, split, len(recs))
        reviews[split] = sum(1 for r in recs for c in r.comments if int(c.rating) != features.NO_RATING)
        comments_written[split] = sum(len(r.comments) for r in recs)
        for shard in range(n_shards):
            lo, hi = shard * len(recs) // n_shards, (shard + 1) * len(recs) // n_shards
            name = shard_name(split, shard, n_shards)
            path = os.path.join(staging, name)
            _write_shard(
                path, recs[lo:hi], formats, vocabulary, rejections, source, pool=pool, compounds=compounds,
                positions=positions,
            )
            shard_files[name] = sha256_file(path)
            fingerprints[name] = shard_fingerprint(path)
            expected_counts[name] = hi - lo
            writing.update(hi - lo)
    writing.close()
    _fault("after_shards")

    # Vocabulary, id maps, rejections.
    vocabulary.write(os.path.join(staging, VOCAB_FILE))
    with open(os.path.join(staging, USERS_FILE), "w", encoding="utf-8", newline="\n") as f:
        for i, user in enumerate(users):
            f.write(f"{i}\t{_clean_field(user)}\n")
    with open(os.path.join(staging, IMAGES_FILE), "w", encoding="utf-8", newline="\n") as f:
        for r in ordered:
            f.write(f"{r.image_index}\t{_clean_field(r.image_id)}\t{r.split}\n")
    with open(os.path.join(staging, TAGS_FILE), "w", encoding="utf-8", newline="\n") as f:
        for i, tag in enumerate(tags):
            f.write(f"{i}\t{_clean_field(tag)}\n")
    rejections.write(os.path.join(staging, REJECTED_FILE))

    consistency = extra_manifest.pop("consistency", None)
    if consistency is None:
        consistency = _consistency(ordered, scale)

    counts = rejections.counts
    counts["written"] = {
        "images": {s: len(kept[s]) for s in features.SPLITS},
        "comments": comments_written,
        "images_with_bytes": num_with_images,
    }
    build_id = hashlib.sha256(json.dumps(shard_files, sort_keys=True).encode()).hexdigest()[:16]
    manifest = dict(extra_manifest)
    manifest.update(
        {
            "schema_version": features.SCHEMA_VERSION,
            "source": source,
            "command_line": command_line,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "build_id": build_id,
            "splits": {s: len(kept[s]) for s in features.SPLITS},
            "reviews": reviews,
            "score_scale": scale.to_json(),
            "num_users": len(users),
            "num_images": len(ordered),
            "num_tags": len(tags),
            "num_train_images": len(kept["train"]),
            "vocab_size": vocabulary.size,
            "files": {
                VOCAB_FILE: sha256_file(os.path.join(staging, VOCAB_FILE)),
                USERS_FILE: sha256_file(os.path.join(staging, USERS_FILE)),
                IMAGES_FILE: sha256_file(os.path.join(staging, IMAGES_FILE)),
                TAGS_FILE: sha256_file(os.path.join(staging, TAGS_FILE)),
                "shards": shard_files,
                "shard_bytes": {name: os.path.getsize(os.path.join(staging, name)) for name in shard_files},
                "shard_fingerprints": fingerprints,
            },
            "counts": counts,
            "consistency": consistency,
            "review_check": _review_check(ordered, scale, compounds),
            "has_images": has_images,
            "has_votes": has_votes,
            "images_with_votes": images_with_votes,
        }
    )
    manifest = _strict_json(manifest)
    _fault("before_manifest")
    tmp = os.path.join(staging, MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    os.replace(tmp, os.path.join(staging, MANIFEST))
    _verify_staged(staging, manifest, expected_counts)
    return manifest


def _write_shard(path, records, formats, vocabulary, rejections, source, pool=None, compounds=None, positions=None):
    """Writes `records` (in order) to the shard `path`; the Examples are serialised by `pool`'s workers.

    `positions` maps `id(record)` to its index in the list `pool` was made over
    (None: a pool over `records` alone is made here). `compounds` (a list indexed by
    image index), when given, receives each record's `parallel.review_compounds`
    from the same workers.
    """
    own_pool = pool is None
    if own_pool:
        pool = parallel.Pool(records, 1)
    tmp = path + ".tmp"
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            tasks = parallel.chunks(_shard_items(records, formats, vocabulary, rejections, source, positions))
            position = 0
            for examples in pool.map(parallel.serialize_chunk, ((chunk,) for chunk in tasks)):
                for example, scores in examples:
                    writer.write(example)
                    if compounds is not None:
                        compounds[records[position].image_index] = scores
                    position += 1
                    if FAULT_ENV in os.environ:
                        writer.flush()
                        _fault("shard")
        os.replace(tmp, path)
    finally:
        if own_pool:
            pool.close()
        if os.path.exists(tmp):
            os.remove(tmp)


def _shard_items(records, formats, vocabulary, rejections, source, positions=None):
    """`(position, image_index, token_rows, format)` per record, tokenised a block at a time (one eager call a block).

    Pulled lazily by `Pool.map`, so the parent tokenises the next block while the
    workers serialise the previous one. The text repair is counted here (in order);
    the workers repeat it on their copies. `position`: the record's index in the
    pool's list, `positions[id(record)]` (None: the index into `records`, a pool
    over `records` alone).
    """
    block = []
    block_comments = 0
    for position, record in enumerate(records + [None]):
        if record is not None:
            block.append((position, record))
            block_comments += len(record.comments)
            if block_comments < _TOKENIZE_BATCH and len(block) < 256:
                continue
        if not block:
            break
        texts = [_text_bytes(c.text, r, rejections, source) for _, r in block for c in r.comments]
        rows = text_lib.tokenize(tf.constant(texts, tf.string), vocabulary).to_list() if texts else []
        start = 0
        for position, r in block:
            token_rows = rows[start : start + len(r.comments)]
            start += len(r.comments)
            where = position if positions is None else positions[id(r)]
            yield (where, r.image_index, token_rows, formats.get(r.image_id))
        block, block_comments = [], 0


def _check_record_rules(records, scale, source, rejections):
    """Pass 1a: the record rules and ids, here; returns `{position: (image_id, problem) or None}`.

    Normalises `record.image_id` of the records that pass (before any worker is forked).
    The rejections are added later, in source order, by `_check_images`.
    """
    ids = rules.IdRegistry()
    problems, candidates = {}, []
    for position, record in enumerate(records):
        image_id, problem = ids.check(record.image_id)
        if problem is None:
            problem = rules.record_problem(record, scale.num_bins)
        if problem is not None:
            problems[position] = (image_id, problem)
            continue
        record.image_id = image_id
        ids.add(image_id, position + 1)  # (the sources note zero-width characters in ids)
        candidates.append(position)
    return {"candidates": candidates, "problems": problems}


def _check_images(records, checked, source, rejections, validate_images, max_pixels, pool):
    """Pass 1b: the image rules (in `pool`'s workers), then every rejection in source order.

    `checked` is `_check_record_rules`'s result. Returns `({split: [(position,
    record)]}, {image_id: format})`. Rejections are added in source order whatever
    the number of workers is.
    """
    candidates, problems = checked["candidates"], checked["problems"]
    with_images = [p for p in candidates if _has_image(records[p])]
    tasks = ((chunk, validate_images, max_pixels) for chunk in parallel.chunks(with_images))
    results = pool.map(parallel.inspect_chunk, tasks)
    checks = dict(zip(with_images, (check for chunk in results for check in chunk)))
    kept = {split: [] for split in features.SPLITS}
    formats = {}
    candidate_set = set(candidates)
    checking = _progress(len(records), "records: checking images")
    for position, record in enumerate(records):
        checking.update(1)
        if position not in candidate_set:
            image_id, (reason, detail) = problems[position]
            rejections.reject(reason, source=source, record=position + 1, image_id=image_id, detail=detail)
            continue
        check = checks.get(position)
        if check is not None:
            if check.reject is None and check.decode_error is not None:
                message = _tf_decode_problem(parallel.load_bytes(record))
                if message is not None:
                    check.reject, check.fmt = ("undecodable_image", message), None
            if check.reject is not None:
                reason, detail = check.reject
                rejections.reject(reason, source=source, image_id=record.image_id, detail=detail)
                continue
            for note, detail in check.notes:
                rejections.keep(note, source=source, image_id=record.image_id, detail=detail, level="image")
            formats[record.image_id] = check.fmt
        kept[record.split].append((position, record))
    checking.close()
    return kept, formats


def _tf_decode_problem(data: bytes) -> Optional[str]:
    """None when `tf.io.decode_image` (the input pipeline's decoder) decodes `data`, else its message."""
    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"empty image of shape {tuple(image.shape)}")
    except (tf.errors.OpError, ValueError) as e:
        return getattr(e, "message", None) or str(e)
    return None


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
    return None if value is None or not math.isfinite(value) else float(value)


def _review_check(records, scale, compounds=None):
    """Eq. 7 beside its references (`tfaesthetic.records.reviews.review_check`); None on failure.

    `compounds`: per record, the VADER scores its worker computed (None for all, or
    for one record whose scoring failed: the check then scores every comment here).
    """
    try:
        from tfaesthetic.records import reviews

        if compounds is not None and any(c is None for c in compounds):
            compounds = None
        return reviews.review_check(records, scale, compounds)
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
        hint = ""
        parent, base = os.path.split(os.path.abspath(str(records_dir)))
        if os.path.isdir(parent) and any(n.startswith(base + ".previous-") for n in os.listdir(parent)):
            hint = " A records build was killed while switching builds; run the builder again to restore or finish it."
        raise FileNotFoundError(f"No {MANIFEST} in records directory {records_dir!r} (looked for {path}).{hint}")
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
