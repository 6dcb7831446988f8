"""No silent missing validation split: train/test-only inputs get val carved from train (assign_splits)."""

import json
import logging

import pytest

from tfaesthetic import features
from tfaesthetic.records import common, jsonl


def _write(path, splits):
    with open(path, "w", encoding="utf-8") as f:
        for i, split in enumerate(splits):
            line = {"image_id": f"i{i}", "votes": [1, 2, 3, 4, 5, 4, 3, 2, 1, 1], "comments": [f"nice light {i}"]}
            if split:
                line["split"] = split
            f.write(json.dumps(line) + "\n")
    return str(path)


def test_train_test_only_lines_get_val_carved_from_train(tmp_path, caplog):
    path = _write(tmp_path / "a.jsonl", ["train"] * 40 + ["test"] * 10)
    with caplog.at_level(logging.WARNING):
        data = jsonl.read_jsonl(path, val_fraction=0.1, test_fraction=0.1, seed=3)
    counts = {s: sum(r.split == s for r in data.records) for s in features.SPLITS}
    assert counts == {"train": 36, "val": 4, "test": 10}  # round(40 * 0.1) train images moved
    assert "--val_fraction=0" in caplog.text and "moved val_fraction=0.1 of the 40 train images (4" in caplog.text
    # Seeded: the same images every time; the test lines are never touched.
    again = jsonl.read_jsonl(path, val_fraction=0.1, test_fraction=0.1, seed=3)
    assert [r.split for r in again.records] == [r.split for r in data.records]
    assert all(r.split == "test" for r in data.records[40:])


def test_val_fraction_zero_keeps_no_val_and_existing_val_is_kept(tmp_path):
    path = _write(tmp_path / "b.jsonl", ["train"] * 20 + ["test"] * 5)
    data = jsonl.read_jsonl(path, val_fraction=0.0, test_fraction=0.1)
    assert sum(r.split == "val" for r in data.records) == 0
    path = _write(tmp_path / "c.jsonl", ["train"] * 20 + ["val"] * 2 + ["test"] * 5)
    data = jsonl.read_jsonl(path, val_fraction=0.1, test_fraction=0.1)
    assert [r.image_id for r in data.records if r.split == "val"] == ["i20", "i21"]


def test_lines_without_split_still_use_the_fractions(tmp_path):
    path = _write(tmp_path / "d.jsonl", [None] * 50)
    data = jsonl.read_jsonl(path, val_fraction=0.2, test_fraction=0.1, seed=0)
    assert {s: sum(r.split == s for r in data.records) for s in features.SPLITS} == {"train": 35, "val": 10, "test": 5}
    with pytest.raises(ValueError, match="Received: val_fraction=0.8, test_fraction=0.5"):
        common.assign_splits(data.records, val_fraction=0.8, test_fraction=0.5, seed=0)
