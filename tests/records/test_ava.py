"""AVA importer on a tiny AVA-format folder with every bad case of SPEC §2.3."""

import collections
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfaesthetic import features
from tfaesthetic.records import ava
from tfaesthetic.records import common
from tfaesthetic.records import reviews

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD = ["The composition is great and the colours are lovely", "I love this photo!", "Too dark and not sharp."]


def jpeg_bytes(seed, size=32):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def png_bytes(seed, size=32):
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def write_ava_folder(root, num_good=12):
    """AVA folder + images + per-image comment files; returns expected facts."""
    ava_dir, image_dir, comment_dir = (os.path.join(root, d) for d in ("ava", "images", "comments"))
    for d in (ava_dir, image_dir, comment_dir, os.path.join(ava_dir, ava.LISTS_DIR)):
        os.makedirs(d, exist_ok=True)
    rows = []
    rng = np.random.default_rng(0)
    for i in range(num_good):
        image_id = str(1000 + i)
        votes = rng.integers(0, 20, size=10)
        votes[0] += 1
        tag1 = 1 if i % 2 else 2
        rows.append(f"{i + 1} {image_id} {' '.join(map(str, votes))} {tag1} {3 if i % 3 == 0 else 0} {7 + i % 2}")
        with open(os.path.join(image_dir, f"{image_id}.jpg"), "wb") as f:
            f.write(jpeg_bytes(i))
        with open(os.path.join(comment_dir, f"{image_id}.txt"), "w", encoding="utf-8") as f:
            f.write(f"alice\t{GOOD[i % 3]}\nbob\t{GOOD[(i + 1) % 3]}\n")
    n = num_good
    # 1. truncated JPEG -> writer rejects truncated_image (the rule of tfaesthetic.images).
    rows.append(f"{n + 1} 2001 1 2 3 4 5 6 7 8 9 10 1 0 7")
    with open(os.path.join(image_dir, "2001.jpg"), "wb") as f:
        f.write(jpeg_bytes(99)[:200])
    # 2. PNG bytes in a .jpg -> kept (image_format_mismatch).
    rows.append(f"{n + 2} 2002 1 2 3 4 5 6 7 8 9 10 1 0 7")
    with open(os.path.join(image_dir, "2002.jpg"), "wb") as f:
        f.write(png_bytes(98))
    # 3. missing image file -> rejected at the source with the AVA.txt line.
    rows.append(f"{n + 3} 2003 1 2 3 4 5 6 7 8 9 10 1 0 7")
    # 4. image with no comments -> kept (no_comments).
    rows.append(f"{n + 4} 2004 1 2 3 4 5 6 7 8 9 10 2 0 7")
    with open(os.path.join(image_dir, "2004.jpg"), "wb") as f:
        f.write(jpeg_bytes(97))
    # 5. one comment with no letters (dropped), one with non-UTF-8 bytes (repaired), one blank line.
    rows.append(f"{n + 5} 2005 0 0 0 0 0 0 1 5 5 1 2 0 7")
    with open(os.path.join(image_dir, "2005.jpg"), "wb") as f:
        f.write(jpeg_bytes(96))
    with open(os.path.join(comment_dir, "2005.txt"), "wb") as f:
        f.write(b"carol\t10/10 !!!\n\ndave\tGreat light, caf\xe9 colours \xff\xfe\n")
    # 6. duplicate id (of the first good image).
    rows.append(f"{n + 6} 1000 1 1 1 1 1 1 1 1 1 1 1 0 7")
    # 7. a vote row with 9 bins.
    rows.append(f"{n + 7} 2007 1 2 3 4 5 6 7 8 9 1 0 7")
    # 8. an empty line.
    rows.append("")
    # 9. a non-integer field.
    rows.append(f"{n + 9} 2009 1 2 x 4 5 6 7 8 9 10 1 0 7")
    # 10. no votes at all.
    rows.append(f"{n + 10} 2010 0 0 0 0 0 0 0 0 0 0 1 0 7")
    # 11. unknown tag id 99 (tag dropped, image kept).
    rows.append(f"{n + 11} 2011 1 2 3 4 5 6 7 8 9 10 99 1 7")
    with open(os.path.join(image_dir, "2011.jpg"), "wb") as f:
        f.write(jpeg_bytes(95))
    with open(os.path.join(comment_dir, "2011.txt"), "w", encoding="utf-8") as f:
        f.write("Nice framing\n")
    with open(os.path.join(ava_dir, "AVA.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    with open(os.path.join(ava_dir, "tags.txt"), "w", encoding="utf-8") as f:
        f.write("1 Abstract\n2 Landscape\n3 Still Life\n")
    with open(os.path.join(ava_dir, "challenges.txt"), "w", encoding="utf-8") as f:
        f.write("7 Only Blue\n8 Free Study\n")
    with open(os.path.join(ava_dir, ava.LISTS_DIR, "generic_test.jpgl"), "w", encoding="utf-8") as f:
        f.write("1000\n1001\n1002\n9999\n")
    line_of = {row.split()[1]: k + 1 for k, row in enumerate(rows) if row.split()}
    return ava_dir, image_dir, comment_dir, line_of


@pytest.fixture(scope="module")
def ava_folder(tmp_path_factory):
    return write_ava_folder(str(tmp_path_factory.mktemp("ava_src")))


def test_read_ava_parse_stage_counts(ava_folder):
    ava_dir, image_dir, comment_dir, line_of = ava_folder
    data = ava.read_ava(ava_dir, image_dir=image_dir, comments=comment_dir, val_fraction=0.0, test_fraction=0.0)
    rej = data.rejections.counts
    assert rej["rejected"] == {
        "comment:empty_line": 1,
        "comment:no_letters": 1,
        "image:duplicate_id": 1,
        "image:invalid_row": 1,
        "image:missing_image_file": 1,
        "image:no_votes": 1,
        "image:votes_wrong_num_bins": 1,
        "line:empty_line": 1,
    }
    assert rej["kept"] == {"comment:non_utf8_text": 1, "image:no_comments": 3, "image:unknown_tag": 1}
    ids = [r.image_id for r in data.records]
    assert ids == [str(1000 + i) for i in range(12)] + ["2001", "2002", "2004", "2005", "2011"]
    assert data.tags == ["Abstract", "Landscape", "Still Life"]
    by_id = {r.image_id: r for r in data.records}
    assert by_id["1000"].tags == [1, 2]  # AVA tags 2 ("Landscape") and 3, dense ids.
    assert by_id["2011"].tags == [0]  # unknown 99 dropped, tag 1 kept.
    assert by_id["1000"].challenge == 7
    assert [c.text for c in by_id["2005"].comments] == ["Great light, caf\ufffd colours \ufffd\ufffd"]
    assert data.users == ["alice", "bob", "dave"]
    assert [c.user_index for c in by_id["1001"].comments] == [0, 1]
    assert by_id["2011"].comments[0].user_index == features.UNKNOWN_USER
    # Every rejection names the file and the line.
    entries = [e for e in data.rejections.entries if e["reason"] in ("missing_image_file", "votes_wrong_num_bins")]
    assert {(e["reason"], e["record"]) for e in entries} == {
        ("missing_image_file", line_of["2003"]),
        ("votes_wrong_num_bins", line_of["2007"]),
    }
    assert all(e["source"].endswith("AVA.txt") for e in entries)


def test_paper_protocols(ava_folder):
    ava_dir, image_dir, comment_dir, _ = ava_folder
    data = ava.read_ava(
        ava_dir,
        image_dir=image_dir,
        comments=comment_dir,
        drop_no_comments=True,
        min_comment_words=3,
        major_tags_min_images=6,
        official_test_list="generic_test.jpgl",
        val_fraction=0.25,
        seed=3,
    )
    counts = data.rejections.counts["rejected"]
    assert counts["comment:too_few_words"] == 1  # "Nice framing", the only comment of 2011
    assert counts["image:no_comments"] == 4  # 2001, 2002, 2004, 2011
    # Tag counts among kept images: Abstract 6, Landscape 7 (6 good + 2005), Still Life 4.
    assert data.tags == ["Abstract", "Landscape"]
    assert "image:no_major_tag" not in counts
    assert all(1 <= len(r.tags) <= 2 and max(r.tags) < 2 for r in data.records)
    splits = collections.Counter(r.split for r in data.records)
    assert {r.image_id for r in data.records if r.split == "test"} == {"1000", "1001", "1002"}
    assert data.notes["official_test_ids_not_kept"] == 1
    free = len(data.records) - 3
    assert splits["val"] == round(free * 0.25)
    # Deterministic with the seed.
    again = ava.read_ava(
        ava_dir, image_dir=image_dir, comments=comment_dir, drop_no_comments=True, min_comment_words=3,
        major_tags_min_images=6,
        official_test_list="generic_test.jpgl", val_fraction=0.25, seed=3,
    )
    assert [r.split for r in again.records] == [r.split for r in data.records]


def test_major_tags_drop_images_without_one(ava_folder):
    ava_dir, image_dir, comment_dir, _ = ava_folder
    data = ava.read_ava(ava_dir, comments=comment_dir, major_tags_min_images=9)
    # Without image_dir nothing is missing: Abstract is on 10 images (6 good + 2001, 2002, 2003, 2011),
    # Landscape on 8 (6 good + 2004, 2005), Still Life on 4 (always with Landscape or Abstract).
    assert data.tags == ["Abstract"]
    assert data.rejections.counts["rejected"]["image:no_major_tag"] == 8
    assert len(data.records) == 10
    assert all(r.tags == [0] for r in data.records)
    assert data.records[0].load_image is None  # no image_dir: text-only


def test_split_spec():
    assert common.parse_split("90/10") == (0.0, pytest.approx(0.1))
    assert common.parse_split("80/10/10") == (pytest.approx(0.1), pytest.approx(0.1))
    with pytest.raises(ValueError, match="Received: 'x'"):
        common.parse_split("x")


def test_missing_ava_txt_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="Received: ava_dir="):
        ava.read_ava(str(tmp_path))


@pytest.mark.slow
def test_build_ava_writes_documented_counts_and_rejected_jsonl(ava_folder, tmp_path):
    ava_dir, image_dir, comment_dir, line_of = ava_folder
    out_dir = str(tmp_path / "records")
    script = os.path.join(REPO, "records", "build_ava.py")
    result = subprocess.run(
        [sys.executable, script, f"--ava_dir={ava_dir}", f"--image_dir={image_dir}", f"--comments={comment_dir}",
         f"--out_dir={out_dir}", "--num_shards=2", "--split=80/20"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open(os.path.join(out_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    assert "rejected: comment:empty_line=1" in result.stdout and "Eq. 7 consistency" in result.stdout
    assert "images written: {'train': 13, 'val': 0, 'test': 3}" in result.stdout
    # 17 parsed records; the writer drops the truncated JPEG.
    assert manifest["num_images"] == 16
    assert sum(manifest["splits"].values()) == 16
    assert manifest["counts"]["rejected"]["image:truncated_image"] == 1
    assert manifest["counts"]["kept"]["image:image_format_mismatch"] == 1
    assert manifest["score_scale"]["num_bins"] == 10 and manifest["score_scale"]["threshold"] == 5.0
    assert manifest["has_images"] is True and manifest["has_votes"] is True
    with open(os.path.join(out_dir, "rejected.jsonl"), encoding="utf-8") as f:
        entries = [json.loads(line) for line in f]
    reasons = collections.Counter((e["action"], e["reason"]) for e in entries)
    assert reasons[("rejected", "truncated_image")] == 1
    assert reasons[("rejected", "missing_image_file")] == 1
    assert reasons[("kept", "image_format_mismatch")] == 1
    assert reasons[("kept", "non_utf8_text")] == 1
    assert reasons[("rejected", "no_letters")] == 1
    truncated = [e for e in entries if e["reason"] == "truncated_image"]
    assert truncated[0]["image_id"] == "2001"
    # The writer's rejections point at the AVA.txt line too.
    assert truncated[0]["record"] == line_of["2001"] and truncated[0]["source"].endswith("AVA.txt")
    # Eq. 7 in the manifest equals the NumPy computation over the written images.
    data = ava.read_ava(ava_dir, image_dir=image_dir, comments=comment_dir, val_fraction=0.0, test_fraction=0.2)
    reviews.derive_ratings(data.records)
    kept = [r for r in data.records if r.image_id != "2001"]
    per_image = []
    for r in kept:
        s = np.array([c.rating for c in r.comments if c.rating >= 0])
        if s.size:
            mean = np.dot(r.votes, np.arange(1, 11)) / np.sum(r.votes)
            per_image.append(np.mean(s == (1 if mean > 5 else 0)))
    assert manifest["consistency"] == pytest.approx(np.mean(per_image))
    assert manifest["review_derivation"]["types"]["I"] > 0
    assert os.path.exists(os.path.join(out_dir, "manifest.json"))
