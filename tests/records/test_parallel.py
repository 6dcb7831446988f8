"""Parallel records build (issue 14 item 2): same records whatever `num_workers`; a failing worker fails the build."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from tfaesthetic import features
from tfaesthetic.records import jsonl, parallel, reviews, writer


def _jpeg(rng, size=32):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _png(rng, size=32):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _source(root, n=40):
    """A JSONL of `n` image lines (JPEG files) with bad records mixed in; returns its path."""
    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir()
    lines = []
    words = "lovely light sharp focus too dark soft colours great composition nice".split()
    for i in range(n):
        data = _jpeg(rng)
        name = f"img{i}.jpg"
        if i == 3:
            data = data[: len(data) // 2]  # truncated_image
        elif i == 5:
            data = b"GIF0not an image at all"  # unknown_image_format
        elif i == 7:
            data = _png(rng)  # PNG bytes named .jpg: kept with a note
        elif i == 11:
            # Structurally complete JPEG whose scan data is garbage: the decoders decide.
            data = data[:200] + b"\x00" * (len(data) - 202) + b"\xff\xd9"
        elif i == 13:
            name = "missing.jpg"  # missing_image_file (not written)
        if i != 13:
            (images / name).write_bytes(data)
        comments = [" ".join(rng.choice(words, size=int(rng.integers(2, 12)))) for _ in range(int(rng.integers(1, 5)))]
        obj = {"image_id": f"id{i}", "image_path": f"images/{name}", "votes": [int(v) + 1 for v in rng.integers(0, 9, 5)],
               "comments": [{"text": c, "user": f"u{int(rng.integers(0, 7))}"} for c in comments]}
        if i == 17:
            obj["image_id"] = "id16"  # duplicate_id
        if i == 19:
            obj["votes"] = [1, 2]  # votes_wrong_num_bins
        lines.append(json.dumps(obj))
        if i == 21:
            lines.append("{not json")
    path = root / "src.jsonl"
    text = "\n".join(lines) + "\n"
    path.write_bytes(text.encode().replace(b"lovely", b"lov\xffely", 1))  # non-UTF-8 bytes: repaired
    return str(path)


def _files(out_dir):
    out = {}
    for name in sorted(os.listdir(out_dir)):
        with open(os.path.join(out_dir, name), "rb") as f:
            out[name] = f.read()
    return out


def _build(out_dir, path, num_workers):
    return jsonl.build_jsonl(
        str(out_dir), path, num_bins=5, num_shards=2, val_fraction=0.2, test_fraction=0.2, num_workers=num_workers,
        command_line="build",
    )


def test_same_records_whatever_the_number_of_workers(tmp_path):
    path = _source(tmp_path)
    builds = {}
    for workers in (1, 2, 3):
        _build(tmp_path / f"w{workers}", path, workers)
        builds[workers] = _files(tmp_path / f"w{workers}")
    one = builds[1]
    manifest = json.loads(one.pop(writer.MANIFEST))
    assert manifest["counts"]["rejected"]["image:truncated_image"] == 1
    assert manifest["counts"]["rejected"]["image:unknown_image_format"] == 1
    assert manifest["counts"]["rejected"]["image:missing_image_file"] == 1
    assert manifest["counts"]["rejected"]["image:duplicate_id"] == 1
    assert manifest["counts"]["kept"]["image:image_format_mismatch"] == 1
    assert manifest["counts"]["kept"]["line:non_utf8_text"] == 1
    # Pillow cannot decode it; tf.io.decode_image (asked in the parent) rejects it too.
    assert manifest["counts"]["rejected"]["image:undecodable_image"] == 1
    assert sum(manifest["splits"].values()) >= 30
    rejected = [json.loads(line) for line in one[writer.REJECTED_FILE].decode().splitlines()]
    # Writer rejections point at their source line (1-based; line 23 is the invalid JSON one).
    by_reason = {e["reason"]: e for e in rejected if e["action"] == "rejected"}
    assert by_reason["truncated_image"]["record"] == 4 and by_reason["missing_image_file"]["record"] == 14
    assert by_reason["invalid_json"]["record"] == 23 and by_reason["unknown_image_format"]["record"] == 6
    assert by_reason["undecodable_image"]["record"] == 12 and by_reason["undecodable_image"]["stage"] == "writer"
    for workers in (2, 3):
        other = dict(builds[workers])
        other_manifest = json.loads(other.pop(writer.MANIFEST))
        assert sorted(other) == sorted(one)
        for name in one:
            assert other[name] == one[name], f"{name} differs between 1 and {workers} workers"
        assert other_manifest.pop("created") and manifest.get("created")
        assert other_manifest == {k: v for k, v in manifest.items() if k != "created"}


def test_review_check_from_worker_compounds_equals_the_parents():
    # The manifest's review check takes the VADER scores the serialisation workers computed.
    texts = [["Great light, lovely colours.", "Too dark."], ["Boring."], [], ["Sharp focus, well done!"]]
    votes = [[0, 0, 0, 1, 2, 5, 2, 0, 0, 0], None, [0, 0, 3, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 2, 3, 1, 0]]
    records = [features.ImageRecord(str(i), votes=v, comments=[features.Comment(t) for t in ts])
               for i, (v, ts) in enumerate(zip(votes, texts))]
    reviews.derive_ratings(records)
    compounds = [parallel.review_compounds(r) for r in records]
    assert [len(c) for c in compounds] == [2, 0, 0, 1]  # records the check skips get []
    expected = reviews.review_check(records, features.AVA_SCALE)
    assert expected["images"] == 2
    assert reviews.review_check(records, features.AVA_SCALE, compounds) == expected


def test_pool_runs_in_other_processes_and_in_order(tmp_path):
    records = list(range(100))
    with parallel.Pool(records, 3) as pool:
        results = list(pool.map(_pid_and_items, ((i,) for i in range(40))))
    assert [r[1] for r in results] == list(range(40))
    assert os.getpid() not in {r[0] for r in results} and len({r[0] for r in results}) >= 2
    with parallel.Pool(records, 1) as pool:
        assert {r[0] for r in pool.map(_pid_and_items, [(0,), (1,)])} == {os.getpid()}
    with pytest.raises(ValueError, match="num_workers"):
        parallel.Pool(records, 0)


def _pid_and_items(i):
    return os.getpid(), parallel._RECORDS[i]


@pytest.mark.parametrize("stage,action", [("worker_check", "raise"), ("worker_write", "raise"), ("worker_write", "kill")])
def test_failed_or_killed_worker_fails_the_build_and_keeps_previous_records(tmp_path, monkeypatch, stage, action):
    path = _source(tmp_path)
    out_dir = tmp_path / "records"
    _build(out_dir, path, 1)
    (out_dir / "notes.txt").write_text("mine")
    before = _files(out_dir)
    monkeypatch.setenv(writer.FAULT_ENV, f"{stage}:{action}")
    error = parallel.WorkerError if action == "raise" else parallel.concurrent.futures.process.BrokenProcessPool
    with pytest.raises(error):
        _build(out_dir, path, 2)
    assert _files(out_dir) == before
    assert [n for n in os.listdir(tmp_path) if n.startswith("records.")] == []


@pytest.mark.slow
def test_cli_num_workers_in_a_fresh_process_writes_the_same_bytes(tmp_path):
    """`build_jsonl.py --num_workers=2` in another process (another hash seed) = the in-process 1-worker build."""
    import subprocess
    import sys

    path = _source(tmp_path)
    _build(tmp_path / "w1", path, 1)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONHASHSEED="12345", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, os.path.join(repo, "records", "build_jsonl.py"), f"--jsonl={path}",
         f"--out_dir={tmp_path / 'cli'}", "--num_bins=5", "--num_shards=2", "--val_fraction=0.2", "--test_fraction=0.2",
         "--num_workers=2"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    one, cli = _files(tmp_path / "w1"), _files(tmp_path / "cli")
    m1, m2 = (json.loads(d.pop(writer.MANIFEST)) for d in (one, cli))
    assert one == cli
    ignore = ("created", "command_line")
    assert {k: v for k, v in m1.items() if k not in ignore} == {k: v for k, v in m2.items() if k not in ignore}


@pytest.mark.parametrize("rewrite", [False, True])
def test_review_ratings_in_workers_equal_one_process(rewrite):
    from tfaesthetic import features
    from tfaesthetic.records import reviews

    texts = ["I love it, wonderful colours", "Too dark and blurry, sorry", "Nice shot", "Where was this taken?",
             "I really like this one", "boring, not my cup of tea", "The light is great but the crop is bad", "wow"]

    def records():
        return [features.ImageRecord(image_id=f"i{i}", split="train",
                                     comments=[features.Comment(text=texts[(i * 3 + k) % len(texts)]) for k in range(i % 4)])
                for i in range(200)]

    one, many = records(), records()
    s1 = reviews.derive_ratings(one, reviews.ReviewRules(), rewrite=rewrite)
    s3 = parallel.derive_ratings(many, reviews.ReviewRules(), rewrite=rewrite, num_workers=3)
    assert s3 == s1 and json.dumps(s3) == json.dumps(s1)
    flat = lambda rs: [(c.text, c.sentiment, c.rating) for r in rs for c in r.comments]  # noqa: E731
    assert flat(many) == flat(one) and len(set(c.rating for r in one for c in r.comments)) >= 2
