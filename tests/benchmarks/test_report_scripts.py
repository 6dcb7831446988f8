"""The report scripts of benchmarks/ run end to end on tiny data (smoke; their figures are not checked).

`mracnn_ablation.py` (the text-only row) and `cfan_comparison.py` (the BPR row) on the shared tiny demo records, `real_comments.py`
on a tiny generated JSONL, each through its `main` with the smallest budget its
flags allow: one epoch, one seed, one row, the tiny backbone (or no image at all).
`gpu.py` has its own smoke test (test_gpu.py).
"""

import glob
import importlib.util
import json
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(name):
    spec = importlib.util.spec_from_file_location(f"tfaesthetic_benchmark_{name}", os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_jsonl(path, n=60, seed=0):
    """Text-only lines of the generic format: the words of a comment follow its image's mean vote."""
    rng = np.random.default_rng(seed)
    good, bad = ["lovely", "sharp", "great", "light"], ["blurry", "dull", "noisy", "flat"]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            votes = rng.integers(0, 6, size=10)
            votes[rng.integers(0, 10)] += 5
            share = float(np.dot(votes, np.arange(10)) / votes.sum() / 9)
            words = [str(w) for w in rng.choice(good if share > 0.5 else bad, size=4)]
            comments = [{"text": " ".join(words[:2]) + " photo", "user": f"u{i % 7}"}, " ".join(words[2:])]
            line = {"image_id": f"img{i}", "votes": votes.tolist(), "comments": comments,
                    "split": "val" if i % 5 == 0 else "train"}
            f.write(json.dumps(line) + "\n")


@pytest.mark.slow  # three scripts, four one-epoch trainings through train_and_evaluate
def test_report_scripts_run_on_tiny_data(demo_records, tmp_path):
    records = demo_records  # the tiny demo records the tests share (conftest.py)

    out = tmp_path / "ablation"
    report = _script("mracnn_ablation").main([
        "--records_dir", records, "--variants", "text_only", "--epochs", "1", "--image_size", "32",
        "--max_len", "32", "--batch_size", "16", "--seeds", "0",
        "--work_dir", str(tmp_path / "ablation_runs"), "--out_dir", str(out),
    ])
    assert report["preset"] == "demo" and list(report["rows"]) == ["prior (constant)", "text_only"]
    (run,) = report["variants"]["text_only"]["runs"]
    assert run["epochs"] == 1 and run["params"] > 0 and np.isfinite(run["emd"]) and run["count"] > 0
    # The row was trained by the trainer: its run directory holds the config and metrics.
    with open(tmp_path / "ablation_runs" / "text_only-seed0" / "metrics.json") as f:
        assert json.load(f)["test"]["overall"]["emd"] == pytest.approx(run["emd"])
    (md,) = glob.glob(str(out / "mracnn_ablation-*.md"))
    assert "| text_only" in open(md).read()
    assert json.load(open(md[:-3] + ".json"))["rows"]["text_only"]["emd"] == pytest.approx(run["emd"])

    out = tmp_path / "cfan"
    _script("cfan_comparison").main([
        "--records_dir", records, "--models", "bpr", "--protocols", "cold", "--seeds", "0", "--epochs", "1",
        "--work_dir", str(tmp_path / "cfan_runs"), "--out_dir", str(out),
    ])
    (path,) = glob.glob(str(out / "cfan_comparison-*.json"))
    (row,) = json.load(open(path))["runs"]
    assert row["model"] == "bpr" and row["epochs"] == 1 and row["test"]

    jsonl = str(tmp_path / "tiny.jsonl")
    _tiny_jsonl(jsonl)
    out = tmp_path / "real"
    report = _script("real_comments").main([
        "--jsonl", jsonl, "--presets", "mracnn_text_real", "--seeds", "0",
        "--set", "trainer.epochs=1", "--set", 'model.embeddings=""', "--set", "data.max_len=16",
        "--set", "model.params.bag_buckets=256",
        "--set", "data.global_batch_size=16", "--work_dir", str(tmp_path / "real_work"), "--out_dir", str(out),
    ])
    assert report["record_splits"]["test"] == 12 and "`mracnn_text_real`" in report["rows"]
    assert report["rows"]["`mracnn_text_real`"]["runs"] == 1
    assert glob.glob(str(out / "real_comments-*.md"))
