"""The README's "Your own data, end to end" block, run as written on tiny data.

JSONL -> records -> training with word vectors -> export -> evaluation of the export
(+ report) -> the SavedModel served in a fresh process -> predict. Only the block's
first line (the user's file names) and `TRAIN_FLAGS` (a tiny model) are replaced.
"""

import json
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

WORDS = ["lovely", "light", "sharp", "soft", "blurry", "dull", "great", "colours", "noisy", "dark", "bright", "nice"]
TINY_FLAGS = (
    "--backbone=tiny --weights=none --image_size=32 --max_len=16 --epochs=1 --batch_size=8 --notb_images "
    "--param=lstm_units=8 --param=attention_units=8 --param=mfb_o=8 --param=mfb_k=2 --param=num_filters=4"
)


def workflow_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your own data, end to end", 1)[1]
    return re.search(r"```bash\n(.*?)\n```", section, flags=re.S).group(1)


def _tiny_jsonl(directory: pathlib.Path, n: int = 36) -> pathlib.Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    (directory / "photos").mkdir()
    lines = []
    for i in range(n):
        quality = i % 10
        pixels = (rng.random((32, 32, 3)) * (40 + 20 * quality)).astype(np.uint8)
        Image.fromarray(pixels).save(directory / "photos" / f"p{i}.png")
        votes = np.bincount(np.clip(rng.normal(quality, 1.5, 30).round().astype(int), 0, 9), minlength=10)
        words = rng.choice(WORDS, 4)
        lines.append({
            "image_id": f"p{i}",
            "image_path": f"photos/p{i}.png",
            "votes": votes.tolist(),
            "tags": ["landscape" if i % 2 else "portrait"],
            "split": "train" if i < 24 else ("val" if i < 30 else "test"),
            "comments": [{"text": " ".join(words), "user": f"u{i % 5}"}],
        })
    path = directory / "mine.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_readme_real_data_workflow_runs_as_written(tmp_path):
    block = workflow_block()
    first, rest = block.split("\n", 1)
    assert first.startswith("JSONL=") and "TRAIN_FLAGS=" in first, first
    for step in ("records/build_jsonl.py", "tfaesthetic.train", "--embeddings", "tfaesthetic.evaluate --export",
                 "saved_model.load", "tfaesthetic.predict"):
        assert step in rest, step
    _tiny_jsonl(tmp_path)
    # The block runs from a checkout (records/build_jsonl.py); its outputs must stay in tmp_path.
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "build_jsonl.py").symlink_to(ROOT / "records" / "build_jsonl.py")
    rng = np.random.default_rng(1)
    (tmp_path / "vectors.txt").write_text(
        "".join(w + " " + " ".join(f"{v:.4f}" for v in rng.normal(size=8)) + "\n" for w in WORDS), encoding="utf-8"
    )
    header = (f'JSONL=mine.jsonl RECORDS=records/mine RUN=runs/mine VECTORS=vectors.txt PHOTO=photos/p3.png '
              f'TRAIN_FLAGS="{TINY_FLAGS}"')
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    for key in ("TF_CONFIG", "TF_CPP_MIN_LOG_LEVEL", "TFAESTHETIC_VERBOSE"):
        env.pop(key, None)
    result = subprocess.run(
        ["bash", "-e", "-c", header + "\n" + rest], cwd=str(tmp_path), env=env, capture_output=True, text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Traceback" not in output, output[-6000:]
    served = re.search(r"served mean score: ([0-9.]+)", output)
    assert served and 1.0 <= float(served.group(1)) <= 10.0, output[-3000:]
    run = tmp_path / "runs" / "mine"
    assert "Word vectors from vectors.txt" in output
    assert (run / "export" / "mracnn" / "1" / "saved_model.pb").exists()
    assert (run / "report.md").exists() and (run / "export_report" / "report.md").exists()
    predictions = json.loads((run / "predictions" / "predictions.json").read_text())
    entry = predictions["predictions"][0]
    assert "error" not in entry and abs(entry["mean_score"] - float(served.group(1))) < 1e-3
    for key in ("attention_png", "distribution_png"):
        assert (tmp_path / entry[key]).exists(), entry
