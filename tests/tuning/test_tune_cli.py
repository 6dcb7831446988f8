"""The thin CLI: a bad search-space file fails before any trial, naming file and entry."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cli_bad_space_exits_before_any_trial(demo_records, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "mracnn", "hyperparameters": {
        "warp_factor": {"type": "int", "min": 1, "max": 2, "default": 1}}}))
    directory = tmp_path / "trials"
    proc = subprocess.run(
        [sys.executable, "-m", "tfaesthetic.tune", f"--records={demo_records}", f"--space={bad}",
         f"--directory={directory}", "--tuner=random", "--max_trials=1"],
        cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{bad}: hyperparameter 'warp_factor': unknown hyperparameter" in proc.stderr
    assert not directory.exists()
