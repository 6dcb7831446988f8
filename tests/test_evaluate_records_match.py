"""Issue 12 case 9: `evaluate --export` refuses records with another vocabulary (same size) or score scale."""

import pytest

from tfaesthetic import io
from tfaesthetic.config import ConfigError
from tfaesthetic.serving.export import check_export_matches_records

SCALE = {"num_bins": 10, "values": [float(v) for v in range(1, 11)], "threshold": 5.0}


def _records(tmp_path, words):
    records = tmp_path / "records"
    records.mkdir()
    (records / "vocab.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    return str(records), {"vocab_size": len(words), "score_scale": dict(SCALE)}


def _sidecar(tmp_path, words, scale=SCALE):
    trained = tmp_path / "trained_vocab.txt"
    trained.write_text("".join(w + "\n" for w in words), encoding="utf-8")
    return {"vocab_size": len(words), "vocab_sha256": io.sha256_file(str(trained)), "score_scale": dict(scale)}


def test_same_vocabulary_and_scale_pass(tmp_path):
    words = ["<pad>", "<unk>", "sharp", "light"]
    records, manifest = _records(tmp_path, words)
    check_export_matches_records(_sidecar(tmp_path, words), manifest, records)


def test_same_size_other_words_is_refused(tmp_path):
    records, manifest = _records(tmp_path, ["<pad>", "<unk>", "sharp", "light"])
    sidecar = _sidecar(tmp_path, ["<pad>", "<unk>", "blurry", "dark"])
    with pytest.raises(ConfigError, match=r"another vocabulary than --records=.*same size, different words"):
        check_export_matches_records(sidecar, manifest, records)


def test_other_size_is_refused(tmp_path):
    records, manifest = _records(tmp_path, ["<pad>", "<unk>", "sharp"])
    with pytest.raises(ConfigError, match="vocabulary has 4 ids but --records="):
        check_export_matches_records(_sidecar(tmp_path, ["<pad>", "<unk>", "sharp", "x"]), manifest, records)


def test_other_score_scale_is_refused(tmp_path):
    words = ["<pad>", "<unk>", "sharp"]
    records, manifest = _records(tmp_path, words)
    photonet = {"num_bins": 7, "values": [float(v) for v in range(1, 8)], "threshold": 4.0}
    with pytest.raises(ConfigError, match="another score scale"):
        check_export_matches_records(_sidecar(tmp_path, words, scale=photonet), manifest, records)


def test_exports_without_a_vocabulary_hash_are_checked_by_size_only(tmp_path):
    words = ["<pad>", "<unk>", "sharp"]
    records, manifest = _records(tmp_path, words)
    sidecar = _sidecar(tmp_path, ["<pad>", "<unk>", "other"])
    del sidecar["vocab_sha256"]  # exports written before the hash was kept
    check_export_matches_records(sidecar, manifest, records)
