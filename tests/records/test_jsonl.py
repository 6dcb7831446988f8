"""Generic JSONL importer: every documented bad case, a hypothesis property, one full build and the CLI."""

import collections
import json
import os
import subprocess
import sys
import tempfile
import unicodedata

import hypothesis
import pytest
import tensorflow as tf
from hypothesis import strategies as st

from tests.records.test_ava import jpeg_bytes
from tests.records.test_ava import png_bytes
from tfaesthetic import features
from tfaesthetic.records import jsonl
from tfaesthetic.records import writer
from tfaesthetic.records.rejections import Rejections

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def good_line(i, **overrides):
    obj = {
        "image_id": f"img{i}",
        "image_path": f"images/img{i % 10}.jpg",
        "votes": [0, 1, 2, 6, 1] if i % 2 else [3, 5, 1, 0, 0],
        "tags": ["sky"] if i % 2 else ["people", "street"],
        "comments": [
            {"text": "Great composition and lovely light" if i % 2 else "Blurry, too dark and badly cropped", "user": "u1"},
            "I love it" if i % 2 else "Not my cup of tea",
        ],
    }
    obj.update(overrides)
    return json.dumps(obj)


def write_jsonl(root, num_good=10):
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    for i in range(num_good):
        with open(os.path.join(root, "images", f"img{i}.jpg"), "wb") as f:
            f.write(jpeg_bytes(i))
    with open(os.path.join(root, "images", "png.jpg"), "wb") as f:
        f.write(png_bytes(1))
    with open(os.path.join(root, "images", "trunc.jpg"), "wb") as f:
        f.write(jpeg_bytes(2)[:180])
    lines = [good_line(i).encode() for i in range(num_good)]
    lines += [
        b"",  # empty line
        b"   ",  # blank line
        b"{not json",  # invalid JSON
        b"[1, 2, 3]",  # not an object
        json.dumps({"votes": [1, 2, 3, 4, 5]}).encode(),  # no image_id
        good_line(20, image_id=["x"]).encode(),  # id of the wrong type
        good_line(21, votes="many").encode(),  # votes of the wrong type
        good_line(22, votes=[1, 2, 3]).encode(),  # wrong number of bins
        good_line(23, votes=[0, 0, 0, 0, 0]).encode(),  # no votes
        good_line(24, votes=[1, -2, 3, 4, 5]).encode(),  # negative
        good_line(0).encode(),  # duplicate id
        good_line(25, image_path="images/missing.jpg").encode(),  # missing file
        good_line(26, split="holdout").encode(),  # unknown split
        good_line(27, image_path="images/png.jpg", split="test").encode(),  # PNG bytes in .jpg: kept
        good_line(28, image_path="images/trunc.jpg").encode(),  # truncated: the writer rejects it
        good_line(29, comments=[]).encode(),  # no comments: kept
        good_line(30, comments=["!!! 100%", {"text": 3}, {"text": "Sharp focus", "user": {"a": 1}}]).encode(),
        good_line(31, tags=["a", "b", "c"]).encode(),  # 3 tags: 2 kept
        good_line(32, image_path="images/img1.jpg", votes=None).encode(),  # no votes while others have
        good_line(33, image_path="images/img2.jpg", split="val").encode()[:-1] + b', "x": "caf\xe9"}',  # bad UTF-8
        json.dumps({"image_id": "s1", "image_path": "images/img3.jpg", "votes": [1, 1, 1, 1, 1],
                    "comments": ["Lovely colours \ud800"]}).encode(),  # lone surrogate escape
    ]
    path = os.path.join(root, "data.jsonl")
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture(scope="module")
def jsonl_file(tmp_path_factory):
    return write_jsonl(str(tmp_path_factory.mktemp("jsonl_src")))


def test_read_jsonl_rules(jsonl_file):
    data = jsonl.read_jsonl(jsonl_file, val_fraction=0.0, test_fraction=0.0)
    counts = data.rejections.counts
    assert counts["rejected"] == {
        "comment:no_letters": 1,
        "comment:wrong_type": 1,
        "image:duplicate_id": 1,
        "image:invalid_json": 1,
        "image:invalid_votes": 1,
        "image:missing_field": 1,
        "image:missing_image_file": 1,
        "image:missing_votes": 1,
        "image:no_votes": 1,
        "image:unknown_split": 1,
        "image:votes_wrong_num_bins": 1,
        "image:wrong_type": 3,
        "line:empty_line": 2,
    }
    assert counts["kept"] == {
        "comment:non_utf8_text": 1,
        "image:extra_tags": 1,
        "image:no_comments": 1,
        "line:non_utf8_text": 1,
    }
    assert data.scale == features.ScoreScale(values=(1.0, 2.0, 3.0, 4.0, 5.0), threshold=3.0)
    assert "inferred from the first votes row (line 1)" in data.notes["score_scale"]
    by_id = {r.image_id: r for r in data.records}
    assert sorted(by_id) == sorted([f"img{i}" for i in list(range(10)) + [27, 28, 29, 30, 31, 33]] + ["s1"])
    assert by_id["img27"].split == "test" and by_id["img33"].split == "val"
    assert [c.text for c in by_id["img30"].comments] == ["Sharp focus"]
    assert by_id["img30"].comments[0].user_index == features.UNKNOWN_USER
    assert by_id["s1"].comments[0].text == "Lovely colours \ufffd"
    assert data.tags == ["people", "street", "sky", "a", "b"]
    assert by_id["img31"].tags == [3, 4]
    # Every line is accounted for: a record or an image/line-level rejection naming the line.
    rejected_lines = {e["record"] for e in data.rejections.entries if e["action"] == "rejected" and e["level"] != "comment"}
    kept_lines = {number for _, number in data.origin.values()}
    assert kept_lines.isdisjoint(rejected_lines)
    assert kept_lines | rejected_lines == set(range(1, 32))


def test_explicit_scale_and_threshold(jsonl_file):
    data = jsonl.read_jsonl(jsonl_file, score_values=[0, 2.5, 5, 7.5, 10], threshold=6)
    assert data.scale == features.ScoreScale(values=(0.0, 2.5, 5.0, 7.5, 10.0), threshold=6.0)
    assert jsonl.make_scale(10).threshold == 5.0 and jsonl.make_scale(7).threshold == 4.0
    with pytest.raises(ValueError, match="Received: num_bins=4, len"):
        jsonl.make_scale(4, [1, 2, 3])
    # Ten bins declared: every 5-bin votes row is now the wrong size.
    data = jsonl.read_jsonl(jsonl_file, num_bins=10)
    assert data.rejections.counts["rejected"]["image:votes_wrong_num_bins"] == 22


# --- property: arbitrary lines are each either a record or a rejection ------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
_any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=20)  # surrogates included
_schema_like = st.fixed_dictionaries(
    {"image_id": st.one_of(st.text(max_size=4), st.integers(0, 5), _json_values)},
    optional={
        "votes": st.one_of(st.lists(st.integers(-1, 5), min_size=0, max_size=4), _json_values),
        "tags": st.one_of(st.lists(_any_text, max_size=3), _json_values),
        "split": st.one_of(st.sampled_from(["train", "val", "test", "dev"]), _json_values),
        "comments": st.one_of(
            st.lists(
                st.one_of(_any_text, st.fixed_dictionaries({"text": _any_text}, optional={"user": _json_values})),
                max_size=3,
            ),
            _json_values,
        ),
        # Files the test writes beside the JSONL (a good JPEG, a truncated one, a PNG
        # named .jpg), a missing one, or anything else.
        "image_path": st.one_of(st.sampled_from(["good.jpg", "trunc.jpg", "png.jpg", "nope.jpg"]), _json_values),
    },
)


def _encode(obj, ensure_ascii):
    return json.dumps(obj, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


# Mostly well-formed lines, so that many reach the writer (and its image rules).
_record_like = st.fixed_dictionaries(
    {"image_id": st.one_of(st.text(min_size=1, max_size=3), st.integers(0, 9))},
    optional={
        "votes": st.lists(st.integers(0, 4), min_size=3, max_size=3),
        "image_path": st.sampled_from(["good.jpg", "good.jpg", "trunc.jpg", "png.jpg", "nope.jpg"]),
        "split": st.sampled_from(features.SPLITS),
        "tags": st.lists(_any_text, max_size=3),
        "comments": st.lists(st.one_of(_any_text, st.fixed_dictionaries({"text": _any_text, "user": _any_text})), max_size=3),
    },
)

_lines = st.one_of(
    st.builds(_encode, _record_like, st.booleans()),
    st.builds(_encode, _record_like, st.booleans()),  # twice: most lines look like records
    st.builds(_encode, _schema_like, st.booleans()),
    st.builds(_encode, _json_values, st.booleans()),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b" ")),
    _any_text.map(lambda t: t.replace("\n", " ").encode("utf-8", "surrogatepass")),
)


def _written_id(line: bytes) -> str:
    """The id a kept line must have in images.tsv, computed from the raw line (not by the importer)."""
    obj = json.loads(line.decode("utf-8", errors="replace").lstrip("\ufeff"))
    image_id = unicodedata.normalize("NFC", str(obj["image_id"])).strip()
    image_id = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in image_id)
    return image_id.replace("\t", " ").replace("\r", " ").replace("\n", " ")


@hypothesis.settings(
    max_examples=15, deadline=None, database=None, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(lines=st.lists(_lines, min_size=1, max_size=12))
def test_every_line_is_written_or_in_rejected_jsonl(tmp_path, lines):
    # The real build (read_jsonl -> derive ratings -> write_records) on the drawn file.
    root = tempfile.mkdtemp(dir=tmp_path)
    for name, data in (("good.jpg", jpeg_bytes(0)), ("trunc.jpg", jpeg_bytes(1)[:180]), ("png.jpg", png_bytes(2))):
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    path = os.path.join(root, "prop.jsonl")
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    out_dir = os.path.join(root, "records")
    rejections = Rejections()
    try:
        manifest = jsonl.build_jsonl(
            out_dir, path, num_bins=3, num_shards=1, val_fraction=0.2, test_fraction=0.2, rejections=rejections
        )
    except writer.EmptyBuildError:
        # No line kept: the build fails and writes nothing; every line is a rejection.
        assert not os.path.exists(out_dir)
        rejected = {e["record"] for e in rejections.entries if e["action"] == "rejected" and e["level"] != "comment"}
        assert rejected == set(range(1, len(lines) + 1))
        return

    with open(os.path.join(out_dir, "rejected.jsonl"), encoding="utf-8") as f:
        entries = [json.loads(entry) for entry in f]
    rejected = [e["record"] for e in entries if e["action"] == "rejected" and e["level"] != "comment"]
    assert all(e["source"] == path for e in entries if e["action"] == "rejected" and e["level"] != "comment")
    with open(os.path.join(out_dir, "images.tsv"), "rb") as f:
        rows = [row.decode("utf-8").split("\t") for row in f.read().split(b"\n") if row]
    assert all(len(row) == 3 for row in rows)
    written = [row[1] for row in rows]

    # Each line is rejected at most once, and the lines not rejected are exactly the written images.
    assert len(rejected) == len(set(rejected))
    assert set(rejected) <= set(range(1, len(lines) + 1))
    kept_lines = [n for n in range(1, len(lines) + 1) if n not in set(rejected)]
    assert sorted(_written_id(lines[n - 1]) for n in kept_lines) == sorted(written)
    assert len(set(written)) == len(written) == manifest["num_images"]
    assert sum(manifest["counts"]["rejected"].get(k, 0) for k in manifest["counts"]["rejected"] if not
               k.startswith("comment:")) == len(rejected)
    # The written shards hold the same images.
    shards = [os.path.join(out_dir, name) for name in manifest["files"]["shards"]]
    assert sum(1 for _ in tf.data.TFRecordDataset(shards)) == len(written)


@pytest.mark.slow
def test_build_jsonl_writes_records_and_rejected(jsonl_file, tmp_path):
    out_dir = str(tmp_path / "records")
    manifest = jsonl.build_jsonl(out_dir, jsonl_file, num_shards=1, val_fraction=0.0, test_fraction=0.2)
    assert manifest["num_images"] == 16  # 17 parsed, the truncated image rejected by the writer
    assert manifest["score_scale"]["num_bins"] == 5
    assert manifest["counts"]["rejected"]["image:truncated_image"] == 1
    assert manifest["counts"]["kept"]["image:image_format_mismatch"] == 1
    with open(os.path.join(out_dir, "rejected.jsonl"), encoding="utf-8") as f:
        entries = [json.loads(line) for line in f]
    reasons = collections.Counter(e["reason"] for e in entries if e["action"] == "rejected")
    assert reasons["invalid_json"] == 1 and reasons["empty_line"] == 2 and reasons["truncated_image"] == 1
    assert all("source" in e for e in entries)
    # Good lines (odd) have mean 3.6 > 3 and positive comments, even ones mean 1.78 and negative ones.
    assert manifest["consistency"] > 0.8
    with open(os.path.join(out_dir, "images.tsv"), encoding="utf-8") as f:
        assert len(f.readlines()) == 16


@pytest.mark.slow
def test_build_jsonl_cli(jsonl_file, tmp_path):
    out_dir = str(tmp_path / "cli")
    cmd = [sys.executable, os.path.join(REPO, "records", "build_jsonl.py"), f"--jsonl={jsonl_file}", f"--out_dir={out_dir}",
           "--split=80/10/10", "--num_shards=1", "--validate_images=false"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "inferred from the first votes row (line 1)" in result.stdout
    assert "Eq. 7 consistency" in result.stdout and "rejected:" in result.stdout
    assert os.path.abspath(out_dir) in result.stdout
    # A whole-input error is one line, not a traceback.
    result = subprocess.run(cmd[:2] + [f"--jsonl={tmp_path}/missing.jsonl", f"--out_dir={out_dir}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "error: JSONL file not found" in result.stderr and "Traceback" not in result.stderr
