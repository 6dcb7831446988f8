"""Photo.net importer: scores CSV + JSON comments + images, with the bad cases of SPEC §2.3."""

import collections
import json
import os

import pytest

from tests.records.test_ava import jpeg_bytes
from tests.records.test_ava import png_bytes
from tfaesthetic import features
from tfaesthetic.records import photonet


def write_photonet(root, num_good=10):
    image_dir = os.path.join(root, "images")
    os.makedirs(image_dir, exist_ok=True)
    lines = ["id,c1,c2,c3,c4,c5,c6,c7,tags"]
    comments = {}
    for i in range(num_good):
        image_id = f"p{i}"
        votes = [1, 1, 2, 3, 4, 5, 6] if i % 2 else [6, 5, 4, 3, 2, 1, 1]
        lines.append(f"{image_id},{','.join(map(str, votes))},{'nature|sky' if i % 2 else 'people'}")
        with open(os.path.join(image_dir, f"{image_id}.jpg"), "wb") as f:
            f.write(jpeg_bytes(i))
        comments[image_id] = (
            [{"user": "ann", "text": "Wonderful light and crisp detail"}, "I love it"]
            if i % 2
            else [{"user": "ben", "text": "Blurry and overexposed, poor composition"}, {"text": "meh"}]
        )
    lines += [
        "",  # blank row
        "b1,1,2,3,4,5,6,7,8",  # 8 bins
        "b2,1,2,3,4,5,6",  # 6 bins
        "b3,1,2,x,4,5,6,7,",  # non-integer
        "b4,1,2,-3,4,5,6,7,",  # negative
        "b5,0,0,0,0,0,0,0,",  # no votes
        "p0,1,1,1,1,1,1,1,",  # duplicate id
        "k1,1,2,3,4,5,6,7,a|b|c",  # 3 tags: 2 kept
        "k2,1,2,3,4,5,6,7",  # no tags column; PNG bytes in .jpg
        "m1,1,2,3,4,5,6,7,",  # missing image
        "t1,1,2,3,4,5,6,7,",  # truncated JPEG
    ]
    for image_id, data in (("k1", jpeg_bytes(50)), ("k2", png_bytes(51)), ("t1", jpeg_bytes(52)[:150])):
        with open(os.path.join(image_dir, f"{image_id}.jpg"), "wb") as f:
            f.write(data)
    comments["k1"] = ["###", {"text": 5}, {"text": "Nice colours", "user": 7}]
    comments["k2"] = "not a list"
    comments["zz"] = ["comment on an image that is not in the scores file"]
    scores = os.path.join(root, "scores.csv")
    with open(scores, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    comments_file = os.path.join(root, "comments.json")
    with open(comments_file, "w", encoding="utf-8") as f:
        json.dump(comments, f)
    with open(os.path.join(root, "test.txt"), "w", encoding="utf-8") as f:
        f.write("p0\np1\n")
    return scores, image_dir, comments_file, os.path.join(root, "test.txt")


@pytest.fixture(scope="module")
def photonet_files(tmp_path_factory):
    return write_photonet(str(tmp_path_factory.mktemp("photonet_src")))


def test_read_photonet_counts(photonet_files):
    scores, image_dir, comments_file, test_list = photonet_files
    data = photonet.read_photonet(scores, image_dir=image_dir, comments=comments_file, test_list=test_list, seed=1)
    counts = data.rejections.counts
    assert counts["rejected"] == {
        "comment:no_letters": 1,
        "comment:unknown_image_id": 1,
        "comment:wrong_type": 2,
        "image:duplicate_id": 1,
        "image:invalid_row": 1,
        "image:invalid_votes": 1,
        "image:missing_image_file": 1,
        "image:no_votes": 1,
        "image:votes_wrong_num_bins": 2,
        "line:empty_line": 1,
    }
    assert counts["kept"] == {"image:extra_tags": 1, "image:no_comments": 2}
    by_id = {r.image_id: r for r in data.records}
    assert sorted(by_id) == sorted([f"p{i}" for i in range(10)] + ["k1", "k2", "t1"])
    assert data.scale == features.PHOTONET_SCALE
    assert data.tags == ["people", "nature", "sky", "a", "b"]
    assert by_id["p1"].tags == [1, 2] and by_id["k1"].tags == [3, 4] and by_id["k2"].tags == []
    assert [c.text for c in by_id["k1"].comments] == ["Nice colours"]
    assert data.users == ["ben", "ann", "7"]
    assert by_id["p0"].split == "test" and by_id["p1"].split == "test"
    assert by_id["p3"].votes == [1, 1, 2, 3, 4, 5, 6]
    entry = [e for e in data.rejections.entries if e["reason"] == "votes_wrong_num_bins"]
    assert [e["record"] for e in entry] == [13, 14]  # header is row 1, blank row 12


def test_drop_no_comments(photonet_files):
    scores, image_dir, comments_file, _ = photonet_files
    data = photonet.read_photonet(scores, comments=comments_file, drop_no_comments=True)
    # k2 (comments not a list), m1, t1 have no comments; no image_dir: m1 is not missing.
    assert data.rejections.counts["rejected"]["image:no_comments"] == 3
    assert all(r.comments for r in data.records)


@pytest.mark.slow
def test_build_photonet(photonet_files, tmp_path):
    scores, image_dir, comments_file, test_list = photonet_files
    out_dir = str(tmp_path / "records")
    manifest = photonet.build_photonet(
        out_dir, scores, image_dir=image_dir, comments=comments_file, test_list=test_list, num_shards=1, seed=1
    )
    assert manifest["score_scale"] == {"num_bins": 7, "values": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], "threshold": 4.0}
    assert manifest["num_images"] == 12  # t1 (truncated) rejected by the writer
    assert manifest["counts"]["rejected"]["image:truncated_image"] == 1
    assert manifest["counts"]["kept"]["image:image_format_mismatch"] == 1
    # Good images (mean > 4) have positive comments, bad ones negative: Eq. 7 is 1 on p*;
    # k1 (mean 5, one positive comment) agrees too.
    assert manifest["consistency"] == pytest.approx(1.0)
    with open(os.path.join(out_dir, "rejected.jsonl"), encoding="utf-8") as f:
        reasons = collections.Counter(json.loads(line)["reason"] for line in f)
    assert reasons["truncated_image"] == 1 and reasons["votes_wrong_num_bins"] == 2
