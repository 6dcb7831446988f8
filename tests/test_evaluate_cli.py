"""`python -m tfaesthetic.evaluate`: a run directory and its export give the training run's test metrics."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests._workers.tiny import tiny_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _evaluate(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-m", "tfaesthetic.evaluate", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_evaluate_run_dir_and_export_on_test_split(demo_records, tmp_path):
    from tfaesthetic import trainer

    run_dir = str(tmp_path / "run")
    summary = trainer.train_and_evaluate(tiny_experiment("demo", demo_records, trainer__steps_per_epoch=1), run_dir)
    expected = summary["test"]

    result = _evaluate(["--run_dir=" + run_dir])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| overall" in result.stdout and "SRCC" in result.stdout
    report = json.loads(open(os.path.join(run_dir, "evaluation-test.json")).read())
    assert report["kind"] == "run" and report["split"] == "test"
    got = report["metrics"]
    assert got["overall"]["count"] == expected["overall"]["count"]
    for key in ("accuracy", "srcc", "plcc", "mae", "rmse", "emd"):
        np.testing.assert_allclose(got["overall"][key], expected["overall"][key], rtol=1e-4, err_msg=key)
    assert set(got["per_tag"]) == set(expected["per_tag"])

    # The export keeps its vocabulary's hash (issue 12 case 9: records with another vocab.txt are refused).
    from tfaesthetic import io

    sidecar = json.loads(open(os.path.join(summary["export"], "assets.extra", "tfaesthetic.json")).read())
    assert sidecar["vocab_sha256"] == io.sha256_file(os.path.join(demo_records, "vocab.txt"))

    # The export, through its serve_tensors signature, on the same records and split.
    out = str(tmp_path / "export-eval.json")
    result = _evaluate([f"--export={os.path.dirname(summary['export'])}", f"--records={demo_records}", f"--output={out}"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    exported = json.loads(open(out).read())["metrics"]
    for key in ("accuracy", "srcc", "plcc", "mae", "rmse", "emd"):
        np.testing.assert_allclose(exported["overall"][key], expected["overall"][key], rtol=1e-4, atol=1e-5, err_msg=key)
