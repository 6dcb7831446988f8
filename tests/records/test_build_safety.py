"""Issue 12, records side: builds that never destroy good records; one rule per record problem.

One test (or a parametrised family) per numbered case of issue 12 that the records own:
1 out-of-range integers, 2 failed/killed builds, 3 duplicate JSON keys, 4 look-alike ids,
5 undecodable text files / strict manifest / AVA counts, 8 manifest-vs-shard checks,
10 (build side) the decompression bomb, 12 JPEG bytes after the end marker.
"""

import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import unicodedata
import zlib

import hypothesis
import pytest
import tensorflow as tf
from hypothesis import strategies as st
from PIL import Image

from tests.data import helpers
from tfaesthetic import features, images, text
from tfaesthetic.config import DataConfig
from tfaesthetic.data import reader
from tfaesthetic.records import ava, common, jsonl, photonet, writer
from tfaesthetic.records.rejections import Rejections

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _line(image_id, votes=(1, 2, 3), comments=("Lovely light and sharp focus", "too dark"), **extra):
    obj = {"image_id": image_id, "votes": list(votes), "comments": list(comments)}
    obj.update(extra)
    return json.dumps(obj, ensure_ascii=False)


def _jsonl(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def _build(out_dir, path, **kwargs):
    kwargs.setdefault("num_bins", 3)
    kwargs.setdefault("num_shards", 2)
    kwargs.setdefault("val_fraction", 0.2)
    kwargs.setdefault("test_fraction", 0.2)
    return jsonl.build_jsonl(str(out_dir), path, **kwargs)


def _snapshot(root):
    """{relative path: bytes} of every file under `root`."""
    out = {}
    for base, _, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def _assert_readable(out_dir, expected_ids):
    manifest = writer.read_manifest(out_dir)
    reader.validate_shards(out_dir, full=True)
    ids = set()
    for split in features.SPLITS:
        if manifest["splits"][split]:
            for s in tf.data.TFRecordDataset(reader.shard_paths(out_dir, split, manifest)):
                ids.add(tf.train.Example.FromString(s.numpy()).features.feature[features.IMAGE_ID].bytes_list.value[0])
    assert ids == {i.encode() for i in expected_ids}


def _leftovers(out_dir):
    parent, base = os.path.split(str(out_dir))
    return sorted(n for n in os.listdir(parent) if n.startswith(base + "."))


@pytest.fixture
def previous(tmp_path):
    """A good build A in `out_dir` (with a user file in it) and the JSONL of a different build B."""
    out_dir = tmp_path / "records"
    a_ids = [f"a{i}" for i in range(8)]
    _build(out_dir, _jsonl(tmp_path / "a.jsonl", [_line(i) for i in a_ids]))
    (out_dir / "notes.txt").write_text("mine, not the builder's")
    b_path = _jsonl(tmp_path / "b.jsonl", [_line(f"b{i}", votes=(i, 1, 1)) for i in range(10)])
    return out_dir, a_ids, b_path


# --- case 1: one out-of-range integer rejects one record, never the build -----------------


def test_case1_out_of_range_integers_are_rejected_and_counted(tmp_path):
    path = _jsonl(
        tmp_path / "x.jsonl",
        [_line("ok1"), _line("ok2"), _line("huge", votes=(100000000000000000000, 1, 1)), _line("float", votes=(1e20, 1, 1))],
    )
    manifest = _build(tmp_path / "j", path)
    assert manifest["num_images"] == 2 and manifest["counts"]["rejected"] == {"image:invalid_votes": 2}

    ava_dir = tmp_path / "ava"
    ava_dir.mkdir()
    rows = [f"{i} {1000 + i} 1 2 3 4 5 6 7 8 9 10 0 0 {c}" for i, c in enumerate(["1", "2", "100000000000000000000", "1e20"])]
    rows += ["9 2000 1_0 2 3 4 5 6 7 8 9 10 0 0 1", "10 2001 \u0663 2 3 4 5 6 7 8 9 10 0 0 1", "11 2002 +1 2 3 4 5 6 7 8 9 10 0 0 1"]
    (ava_dir / "AVA.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    manifest = ava.build_ava(str(tmp_path / "a"), str(ava_dir), num_shards=1, val_fraction=0.0, test_fraction=0.0)
    assert manifest["num_images"] == 2
    assert manifest["counts"]["rejected"] == {"image:invalid_row": 4, "image:invalid_value": 1}  # case 5: 1_0, ٣, +1

    scores = tmp_path / "scores.csv"
    scores.write_text("id,c1,c2,c3,c4,c5,c6,c7\np1,1,2,3,4,5,6,7\np2,99999999999999999999,1,1,1,1,1,1\n")
    manifest = photonet.build_photonet(str(tmp_path / "p"), str(scores), num_shards=1, val_fraction=0, test_fraction=0)
    assert manifest["num_images"] == 1 and manifest["counts"]["rejected"] == {"image:invalid_votes": 1}

    # The writer checks every stored integer for any caller.
    records = helpers.make_records(4, with_images=False)
    records[1].challenge = 10**20
    records[2].comments = [features.Comment(text="Nice", user_index=10**20)]
    manifest, rejections = helpers.write(tmp_path / "w", records)
    assert manifest["num_images"] == 2 and manifest["counts"]["rejected"] == {"image:invalid_value": 2}


# --- case 2: a failed or killed build leaves the previous records exactly as they were ---------


@pytest.mark.parametrize("stage", ["shard", "after_shards", "before_manifest", "before_switch"])
def test_case2_failed_build_leaves_previous_records(previous, monkeypatch, stage):
    out_dir, a_ids, b_path = previous
    before = _snapshot(out_dir)
    monkeypatch.setenv(writer.FAULT_ENV, f"{stage}:raise")
    with pytest.raises(RuntimeError, match=f"stage '{stage}'"):
        _build(out_dir, b_path)
    assert _snapshot(out_dir) == before and _leftovers(out_dir) == []
    _assert_readable(str(out_dir), a_ids)


def test_case2_build_that_writes_nothing_fails_and_changes_nothing(previous, tmp_path):
    out_dir, a_ids, _ = previous
    before = _snapshot(out_dir)
    bad = _jsonl(tmp_path / "bad.jsonl", ["{not json", "also not json"])
    with pytest.raises(writer.EmptyBuildError, match="every line was invalid JSON.*UTF-8.*LF line ends"):
        _build(out_dir, bad)
    assert _snapshot(out_dir) == before and _leftovers(out_dir) == []


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["shard", "switch"])
def test_case2_killed_builder_leaves_readable_records(previous, caplog, stage):
    """SIGKILL of the real CLI while a shard is written and at the switch; the next build cleans up and says so.

    (After the shards and before the manifest, a build is stopped without its clean-up in
    the property test below, `SimulatedKill`, which leaves the same files as SIGKILL.)
    """
    out_dir, a_ids, b_path = previous
    before = _snapshot(out_dir)
    env = dict(os.environ, **{writer.FAULT_ENV: f"{stage}:kill"})
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "records", "build_jsonl.py"), f"--jsonl={b_path}", f"--out_dir={out_dir}",
         "--num_bins=3", "--num_shards=2"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == -9, result.stderr[-2000:]
    assert len(_leftovers(out_dir)) == 1
    b_ids = [f"b{i}" for i in range(10)]
    if stage == "switch":
        # Killed right after the atomic exchange: out_dir holds the complete new build.
        _assert_readable(str(out_dir), b_ids)
        assert not (out_dir / "notes.txt").exists()  # still in the old directory, carried over below
    else:
        assert _snapshot(out_dir) == before
        _assert_readable(str(out_dir), a_ids)
    caplog.set_level("WARNING")
    _build(out_dir, b_path)
    assert _leftovers(out_dir) == []
    message = "finished its clean-up" if stage == "switch" else "Removed the incomplete records build"
    assert message in caplog.text
    assert (out_dir / "notes.txt").read_text() == "mine, not the builder's"
    _assert_readable(str(out_dir), b_ids)


# --- property: any mix of records; a build stopped anywhere keeps the previous one -------------

_bad_kinds = st.sampled_from(
    ["ok", "ok", "ok", "split", "bins", "negative", "huge", "tab_id", "nul_id", "dup", "nfd_dup", "zw_dup", "pad_dup",
     "challenge", "rating"]
)


def _writer_records(kinds):
    records = helpers.make_records(len(kinds), with_images=False, seed=len(kinds))
    for i, (kind, r) in enumerate(zip(kinds, records)):
        r.image_id = f"caf\u00e9{i}"
        if kind == "split":
            r.split = "holdout"
        elif kind == "bins":
            r.votes = list(r.votes) + [1]
        elif kind == "negative":
            r.votes = [-1] + list(r.votes[1:])
        elif kind == "huge":
            r.votes = [2**63] + list(r.votes[1:])
        elif kind == "tab_id":
            r.image_id = f"x\t{i}"
        elif kind == "nul_id":
            r.image_id = f"x\x00{i}"
        elif kind == "challenge":
            r.challenge = -(2**40)
        elif kind == "rating":
            r.comments = [features.Comment(text="Nice", rating=7)]
        elif i > 0 and kind in ("dup", "nfd_dup", "zw_dup", "pad_dup"):
            first = records[0].image_id
            r.image_id = {
                "dup": first,
                "nfd_dup": unicodedata.normalize("NFD", first),
                "zw_dup": first[:2] + "\u200b" + first[2:],
                "pad_dup": f" {first}\u3000",
            }[kind]
        if sum(r.votes) == 0:
            r.votes = [1] + list(r.votes[1:])
    return records


@hypothesis.settings(
    max_examples=8, deadline=None, database=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(
    kinds=st.lists(_bad_kinds, min_size=1, max_size=10),
    stage=st.sampled_from(writer.FAULT_STAGES + ("none",)),
)
def test_property_records_plus_rejections_equal_input_and_stopped_builds_keep_previous(previous, kinds, stage):
    out_dir, a_ids, _ = previous
    before = _snapshot(out_dir)
    # 1. Stopped at a random stage without clean-up (as a kill would): the previous build stays readable.
    os.environ[writer.FAULT_ENV] = f"{stage}:exit"
    try:
        helpers.write(out_dir, _writer_records(kinds))
    except (writer.SimulatedKill, writer.EmptyBuildError):
        pass
    finally:
        del os.environ[writer.FAULT_ENV]
    if _leftovers(out_dir) and stage != "switch":
        assert _snapshot(out_dir) == before
        _assert_readable(str(out_dir), a_ids)
    # 2. The same records, no fault: every record is written or rejected exactly once.
    rejections = Rejections()
    records = _writer_records(kinds)
    try:
        manifest, _ = helpers.write(out_dir, records, rejections=rejections)
        written = manifest["num_images"]
    except writer.EmptyBuildError:
        written = 0
    assert _leftovers(out_dir) == []
    rejected = [e["record"] for e in rejections.entries if e["action"] == "rejected" and e["level"] == "image"]
    assert len(rejected) == len(set(rejected)) and written + len(rejected) == len(kinds)
    # "ok" records, plus one of the look-alike group (record 0 itself, or the first look-alike of a
    # record 0 rejected for another reason than its id).
    expected_ok = sum(k == "ok" for k in kinds) + kinds[0].endswith("dup")
    first_kept = kinds[0] == "ok" or kinds[0].endswith("dup")
    if not first_kept and kinds[0] not in ("tab_id", "nul_id") and any(k.endswith("dup") for k in kinds[1:]):
        expected_ok += 1
    assert written == expected_ok
    if written:
        with open(out_dir / "images.tsv", encoding="utf-8") as f:
            ids = [line.rstrip("\n").split("\t")[1] for line in f]
        assert len(set(ids)) == len(ids) and all(unicodedata.is_normalized("NFC", i) for i in ids)
    # Put A back for the next example.
    _build(out_dir, _jsonl(out_dir.parent / "a.jsonl", [_line(i) for i in a_ids]))


# --- case 3: duplicate keys in a comments JSON -------------------------------------------------


def test_case3_duplicate_json_keys_in_comments_are_rejected(tmp_path):
    ava_dir = tmp_path / "ava"
    ava_dir.mkdir()
    (ava_dir / "AVA.txt").write_text("1 1001 1 2 3 4 5 6 7 8 9 10 0 0 1\n2 1002 1 2 3 4 5 6 7 8 9 10 0 0 1\n")
    comments = tmp_path / "comments.json"
    comments.write_text('{"1001": ["First block, kept"], "1002": ["Other image"], "1001": ["Second block", "dropped"]}')
    data = ava.read_ava(str(ava_dir), comments=str(comments))
    by_id = {r.image_id: [c.text for c in r.comments] for r in data.records}
    assert by_id == {"1001": ["First block, kept"], "1002": ["Other image"]}
    [entry] = [e for e in data.rejections.entries if e["reason"] == "duplicate_key"]
    assert entry["image_id"] == "1001" and entry["record"] == 3 and entry["source"] == str(comments)
    assert data.rejections.rejected == {"comment:duplicate_key": 1}


# --- case 4: ids and user names that only look different --------------------------------------


def test_case4_ids_normalised_control_characters_refused(tmp_path):
    lines = [
        _line("ali\tce"), _line("ali ce"), _line("  ali ce "),  # tab refused; padded = duplicate
        _line("caf\u00e9"), _line("cafe\u0301"),  # NFC / NFD: one id
        _line("ab"), _line("a\u200bb"),  # zero-width look-alike
        _line("nul\u0000"), _line("nl\nx"),
        _line("u1", comments=[{"text": "Sharp focus", "user": "bo\tb"}, {"text": "Nice light", "user": " carol"}]),
        _line("u2", comments=[{"text": "Lovely colours", "user": "carol\u3000"}]),
        _line("z\u200dw"),  # a zero-width joiner that collides with nothing: kept, with a note
    ]
    path = _jsonl(tmp_path / "ids.jsonl", lines)
    data = jsonl.read_jsonl(path, num_bins=3)
    reasons = {(e["record"], e["reason"]) for e in data.rejections.entries if e["action"] == "rejected"}
    assert reasons == {
        (1, "invalid_id"), (3, "duplicate_id"), (5, "duplicate_id"), (7, "duplicate_id"), (8, "invalid_id"),
        (9, "invalid_id"), (10, "invalid_user_id"),
    }
    assert sorted(r.image_id for r in data.records) == sorted(["ali ce", "caf\u00e9", "ab", "u1", "u2", "z\u200dw"])
    assert data.rejections.kept["image:zero_width_in_id"] == 1
    assert data.users == ["carol"]  # " carol" and "carol\u3000" are one user
    manifest = _build(tmp_path / "out", path)
    with open(tmp_path / "out" / "images.tsv", encoding="utf-8") as f:
        ids = [line.rstrip("\n").split("\t")[1] for line in f]
    assert len(ids) == len(set(ids)) == manifest["num_images"] == 6
    assert manifest["counts"]["kept"]["image:zero_width_in_id"] == 1
    # The serving graph's TF form of the rule gives the same ids.
    raw = [" ali ce ", "cafe\u0301", "carol\u3000", "\u00a0u1\x85"]
    assert [s.decode() for s in text.normalize_ids(raw).numpy()] == [features.normalize_id(r) for r in raw]


# --- case 5: files that cannot be lines of UTF-8, strict manifests ---------------------------


def test_case5_utf16_and_cr_only_files_fail_with_the_reason(tmp_path):
    good = "\n".join(_line(f"i{i}") for i in range(3)) + "\n"
    for name, data, message in [
        ("utf16.jsonl", good.encode("utf-16"), "looks UTF-16 encoded"),
        ("utf16le.jsonl", good.encode("utf-16-le"), "looks UTF-16 encoded"),
        ("cr.jsonl", good.replace("\n", "\r").encode(), "CR-only line ends"),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message):
            _build(tmp_path / "out", str(path))
        # The CLI path: one error line, exit status 1.
        assert common.run_build(lambda rejections: _build(tmp_path / "out", str(path)), str(tmp_path / "out")) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_case5_cli_exits_nonzero_on_a_utf16_file(tmp_path):
    path = tmp_path / "utf16.jsonl"
    path.write_bytes(("\n".join(_line(f"i{i}") for i in range(3)) + "\n").encode("utf-16"))
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "records", "build_jsonl.py"), f"--jsonl={path}",
         f"--out_dir={tmp_path / 'out'}", "--num_bins=3"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1 and "error:" in result.stderr and "UTF-16" in result.stderr
    assert "Traceback" not in result.stderr


def test_case5_photonet_without_comments_writes_strict_json(tmp_path, capsys):
    scores = tmp_path / "scores.csv"
    scores.write_text("id,c1,c2,c3,c4,c5,c6,c7\n" + "".join(f"p{i},1,2,3,4,5,6,{i}\n" for i in range(5)))
    rejections = Rejections()
    manifest = photonet.build_photonet(
        str(tmp_path / "out"), str(scores), num_shards=1, val_fraction=0, test_fraction=0, rejections=rejections
    )

    def refuse(constant):
        raise AssertionError(f"non-strict JSON constant {constant}")

    with open(tmp_path / "out" / "manifest.json", encoding="utf-8") as f:
        strict = json.loads(f.read(), parse_constant=refuse)
    assert strict["consistency"] is None and manifest["consistency"] is None
    report = common.report(manifest, str(tmp_path / "out"), rejections)
    assert "consistency of derived ratings with votes: n/a" in report and "nan" not in report


# --- case 8: manifest vs shards ---------------------------------------------------------------


@pytest.mark.parametrize("num_bins", [5, 12])
def test_case8_manifest_edited_to_other_bins_fails_naming_the_file(tmp_path, num_bins):
    out_dir = str(tmp_path / "out")
    records = helpers.make_records(8, with_images=False)
    for i, r in enumerate(records):
        r.votes = [1 + (i + k) % 3 for k in range(10)]  # AVA's 10 bins
    writer.write_records(
        out_dir, records, scale=features.AVA_SCALE, users=helpers.USERS, tags=helpers.TAGS, source="test",
        rejections=Rejections(), num_shards=2,
    )
    path = os.path.join(out_dir, "manifest.json")
    manifest = writer.read_manifest(out_dir)
    manifest["score_scale"].update(num_bins=num_bins, values=[float(v) for v in range(1, num_bins + 1)])
    with open(path, "w") as f:
        json.dump(manifest, f)
    with pytest.raises(reader.ShardError, match=f"manifest.json says {num_bins} score bins, but .*train-00000-of-00002"):
        reader.validate_shards(out_dir)
    with pytest.raises(reader.ShardError, match="score bins"):
        reader.build_dataset(DataConfig(records_dir=out_dir, features=("tokens",), max_len=8), is_training=True)


def test_case8_shard_of_another_build_is_named(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    helpers.write(a, helpers.make_records(8, with_images=False, seed=1))
    helpers.write(b, helpers.make_records(8, with_images=False, seed=2))
    name = "train-00000-of-00002.tfrecord"
    with open(os.path.join(b, name), "rb") as f:
        data = f.read()
    with open(os.path.join(a, name), "wb") as f:
        f.write(data)
    # Sizes agree (so the old checks pass): only the fingerprint can tell.
    manifest = writer.read_manifest(a)
    manifest["files"]["shard_bytes"][name] = len(data)
    with open(os.path.join(a, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(reader.ShardError, match=f"{name} does not belong to .*a/manifest.json"):
        reader.validate_shards(a)


def test_case8_flipped_byte_in_a_shard_names_the_file(tmp_path):
    out_dir = str(tmp_path / "out")
    records = helpers.make_records(6, split_of=lambda i: "train")
    for i, r in enumerate(records):  # ~70 KB each, so the shard is larger than its fingerprinted ends
        r.encoded = helpers.image_bytes(width=160, height=160, fmt="PNG", seed=i)
        r.image_format = "png"
    helpers.write(out_dir, records, num_shards=1)
    shard = os.path.join(out_dir, "train-00000-of-00001.tfrecord")
    data = bytearray(open(shard, "rb").read())
    assert len(data) > 3 * 65536
    data[len(data) // 2] ^= 0xFF
    open(shard, "wb").write(bytes(data))
    reader.validate_shards(out_dir)  # the quick check reads only the ends
    config = DataConfig(records_dir=out_dir, features=("image",), image_size=16, global_batch_size=2, shuffle_buffer=4)
    with pytest.raises(reader.ShardError, match="train-00000-of-00001.tfrecord is corrupt"):
        with reader.naming_corrupt_shards(out_dir):
            for _ in reader.build_dataset(config, is_training=False, split="train"):
                pass


# --- case 10 (build side): the decompression bomb -------------------------------------------


def png_bomb(width=20000, height=20000):
    """A valid 8-bit grayscale PNG of zeros (~0.4 MB for 20000 x 20000), made without holding its pixels.

    The zlib stream repeats one sync-flushed block of 1 MiB of zeros (whose output is
    the same once the window is all zeros), and the Adler-32 of n zeros is (n << 16) | 1.
    """
    total = height * (width + 1)  # a filter byte + the pixels of every row, all zero
    block = 1 << 20
    c = zlib.compressobj(9)
    head = c.compress(b"\0" * block) + c.flush(zlib.Z_SYNC_FLUSH)
    steady = c.compress(b"\0" * block) + c.flush(zlib.Z_SYNC_FLUSH)
    n_full, rest = divmod(total, block)
    stream = head + steady * (n_full - 1) + c.compress(b"\0" * rest) + c.flush()
    stream = stream[:-4] + struct.pack(">I", (total % 65521) << 16 | 1)

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


def test_case10_decompression_bomb_rejected_from_its_header(tmp_path, monkeypatch):
    bomb = png_bomb()
    assert len(bomb) < 500_000
    tracemalloc.start()
    size = images.image_size(bomb)
    problem = images.pixel_problem(bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size == (20000, 20000) and problem[0] == "too_many_pixels"
    assert peak < 1_000_000  # the header check never holds pixels (decoding would need 400 MB+)

    decode = tf.io.decode_image

    def small_only(data, *args, **kwargs):
        assert len(data.numpy() if hasattr(data, "numpy") else data) < 100_000, "the bomb reached the decoder"
        return decode(data, *args, **kwargs)

    records = helpers.make_records(3, with_images=True)
    records[1].encoded, records[1].image_format = bomb, "png"
    monkeypatch.setattr(tf.io, "decode_image", small_only)
    manifest, rejections = helpers.write(tmp_path / "out", records)
    assert manifest["num_images"] == 2 and manifest["counts"]["rejected"] == {"image:too_many_pixels": 1}
    [entry] = rejections.entries
    assert entry["image_id"] == records[1].image_id and "20000x20000" in entry["detail"]
    # A smaller budget (the builders' --max_pixels) applies to ordinary images too.
    with pytest.raises(writer.EmptyBuildError, match="too_many_pixels=3"):
        helpers.write(tmp_path / "out2", helpers.make_records(3), max_pixels=100)


def test_image_size_from_headers_matches_pillow_and_the_tf_form():
    cases = [
        helpers.image_bytes(width=37, height=23, mode=mode, fmt=fmt)
        for fmt, mode in [("JPEG", "RGB"), ("PNG", "RGBA"), ("GIF", "L"), ("BMP", "RGB"), ("WEBP", "RGB"), ("WEBP", "RGBA")]
    ]
    lossless = io.BytesIO()
    Image.new("RGB", (300, 17)).save(lossless, "WEBP", lossless=True)
    cases.append(lossless.getvalue())
    for data in cases:
        assert images.image_size(data) == Image.open(io.BytesIO(data)).size
    cases += [png_bomb(), b"not an image", b""]
    expected = [images.image_size(data) or (-1, -1) for data in cases]
    assert expected[-3:] == [(20000, 20000), (-1, -1), (-1, -1)]
    assert [tuple(v) for v in images.image_sizes(tf.constant(cases)).numpy().tolist()] == expected


# --- case 12: one end-of-file rule in the builder and in serving ------------------------------


def _byte_cases():
    jpeg = helpers.image_bytes(fmt="JPEG")
    png = helpers.image_bytes(fmt="PNG")
    return {
        "jpeg": (jpeg, None),
        "jpeg_zero_padding": (jpeg + b"\0" * 100, None),
        "jpeg_long_zero_padding": (jpeg + b"\0" * 300, "bytes_after_end_marker"),
        "jpeg_trailing_bytes": (jpeg + b"motion photo video", "bytes_after_end_marker"),
        "jpeg_truncated": (jpeg[: len(jpeg) // 2], "truncated_image"),
        "png": (png, None),
        "png_trailing_bytes": (png + b"x" * 300, "bytes_after_end_marker"),
        "png_truncated": (png[:-20], "truncated_image"),
        "gif": (helpers.image_bytes(mode="L", fmt="GIF"), None),
    }


def test_case12_trailing_bytes_one_rule_in_builder_and_serving(tmp_path):
    cases = _byte_cases()
    for name, (data, reason) in cases.items():
        problem = images.structure_problem(data)
        assert (problem and problem[0]) == reason, name
        # The serving graph calls this same function (export.ServingFunctions).
        if reason is None:
            images.check_image_bytes(tf.constant([data]))
        else:
            with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes: .*batch positions"):
                images.check_image_bytes(tf.constant([data]))
    # The builder rejects what serving refuses (with the documented reasons).
    records = helpers.make_records(len(cases), split_of=lambda i: "train")
    for r, (data, _) in zip(records, cases.values()):
        r.encoded = data
        r.image_format = ""
    manifest, rejections = helpers.write(tmp_path / "out", records)
    by_id = {e["image_id"]: e["reason"] for e in rejections.entries if e["action"] == "rejected"}
    expected = {r.image_id: reason for r, (_, reason) in zip(records, cases.values()) if reason}
    assert by_id == expected and manifest["num_images"] == len(cases) - len(expected)


def test_case2_switch_without_atomic_exchange_and_its_recovery(previous, monkeypatch, caplog):
    """Where the OS has no directory exchange, two renames; a kill between them is undone by the next build."""
    out_dir, a_ids, b_path = previous
    monkeypatch.setattr(writer, "_exchange", lambda a, b: False)
    monkeypatch.setenv(writer.FAULT_ENV, "switch:exit")
    with pytest.raises(writer.SimulatedKill):
        _build(out_dir, b_path)
    monkeypatch.delenv(writer.FAULT_ENV)
    [left] = _leftovers(out_dir)
    assert ".previous-" in left
    _assert_readable(str(out_dir), [f"b{i}" for i in range(10)])  # the switch had happened
    caplog.set_level("WARNING")
    assert "finished its clean-up" in " ".join(writer.recover_interrupted_build(str(out_dir)))
    assert _leftovers(out_dir) == [] and (out_dir / "notes.txt").exists()

    # A kill between the two renames: out_dir is missing, the previous records are beside it.
    before = _snapshot(out_dir)
    dead_pid = 4194305  # above Linux's pid_max: no such process
    moved = f"{out_dir}.previous-{dead_pid}-0abc"
    os.rename(out_dir, moved)
    with pytest.raises(FileNotFoundError, match="killed while switching builds; run the builder again"):
        writer.read_manifest(str(out_dir))
    [message] = writer.recover_interrupted_build(str(out_dir))
    assert "restored the previous records" in message
    assert _snapshot(out_dir) == before and _leftovers(out_dir) == []
