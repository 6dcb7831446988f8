"""`train_and_evaluate`: one-step runs of MRACNN and CFAN, resume after a kill, MirroredStrategy."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests._workers.tiny import tiny_experiment
from tfaesthetic import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "_workers", "train_worker.py")


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=ROOT)
    env.pop("TF_CONFIG", None)
    return env


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.slow
def test_train_and_evaluate_mracnn_one_step(demo_records, tmp_path):
    import keras

    from tfaesthetic import trainer

    run_dir = str(tmp_path / "run")
    # Mixed precision on the way (CPU-safe): the heads stay float32, the global
    # policy is restored afterwards.
    config = tiny_experiment("demo", demo_records, trainer__steps_per_epoch=1, trainer__mixed_precision=True)
    summary = trainer.train_and_evaluate(config, run_dir)
    assert keras.config.dtype_policy().name == "float32"

    # The resolved config is in the run directory and loads back equal.
    saved = config_lib.ExperimentConfig.load(os.path.join(run_dir, "config.json"))
    assert saved == config_lib.resolve(config)
    assert saved.data.features == ("image", "tokens") and saved.data.mode == "image"
    # metrics.json holds the test-split evaluation of the whole split (seed 003 §IV-A).
    metrics = _read_json(os.path.join(run_dir, "metrics.json"))
    manifest = _read_json(os.path.join(demo_records, "manifest.json"))
    overall = metrics["test"]["overall"]
    assert overall["count"] == manifest["splits"]["test"]
    for key in ("accuracy", "srcc", "plcc", "mae", "rmse", "emd"):
        assert np.isfinite(overall[key]), key
    assert 0.0 <= overall["accuracy"] <= 1.0 and overall["emd"] > 0
    assert metrics["test"]["per_tag"], "per-tag rows (Table V) missing"
    assert metrics["epochs"] == 1 and metrics["epochs_run"] == [0]
    assert np.isfinite(metrics["history"]["loss"][0]) and np.isfinite(metrics["history"]["val_loss"][0])
    assert "| overall" in summary["table"]
    # TensorBoard events, the epoch checkpoint, the saved model and the export.
    logs = [f for _, _, files in os.walk(os.path.join(run_dir, "logs")) for f in files]
    assert any(f.startswith("events.out.tfevents") for f in logs)
    state = _read_json(os.path.join(run_dir, "checkpoints", "state.json"))
    assert state["epoch"] == 1 and state["completed"]
    assert os.path.exists(os.path.join(run_dir, "checkpoints", state["weights"]))
    assert summary["export"] and os.path.exists(os.path.join(summary["export"], "saved_model.pb"))
    assert summary["export"].startswith(os.path.join(run_dir, "export", "mracnn"))
    restored = trainer.load_run_model(run_dir)
    assert saved.trainer.mixed_precision
    manifest_bins = manifest["score_scale"]["num_bins"]
    assert tuple(restored.output["distribution"].shape) == (None, manifest_bins)
    assert restored.output["distribution"].dtype == "float32"


@pytest.mark.slow
def test_train_and_evaluate_cfan_one_step(demo_records, tmp_path):
    from tfaesthetic import trainer

    run_dir = str(tmp_path / "run")
    config = tiny_experiment("demo_cfan", demo_records, trainer__steps_per_epoch=1)
    summary = trainer.train_and_evaluate(config, run_dir, export=False)
    manifest = _read_json(os.path.join(demo_records, "manifest.json"))
    test = _read_json(os.path.join(run_dir, "metrics.json"))["test"]
    # One example per rated review of the test images (seed 000 §4).
    assert test["num_examples"] == manifest["reviews"]["test"]
    # Every serving path side by side, never mixed (issue 10).
    assert test["reads_review"] and test["protocol"] == "cold"
    for path in ("with_review", "no_review", "agnostic", "unknown_user"):
        assert 0.0 <= test[path]["auc"] <= 1.0 and 0.0 <= test[path]["per_user_auc"] <= 1.0, path
    assert 0.0 <= test["agnostic"]["accuracy"] <= 1.0 and test["agnostic"]["accuracy_per_tag"]
    assert 0.5 <= test["agnostic"]["majority_accuracy"] <= 1.0
    assert 0.0 <= test["tag"]["accuracy"] <= 1.0 and test["tag"]["majority_accuracy"] > 0
    assert test["oov_images"] == test["num_examples"]  # cold: test images are unseen
    history = summary["history"]
    # CFAN-3task trains the three Eq. 6 heads.
    for key in ("loss", "user_rating_loss", "tag_loss", "agnostic_rating_loss", "val_loss"):
        assert np.isfinite(history[key][0]), key
    # The monitored validation loss is the Eq. 6 objective: the weighted task losses
    # and nothing else (the taste-profile regulariser is training-only).
    model = trainer.load_run_model(run_dir)
    weights = model.default_loss_weights()
    eq6 = sum(w * history[f"val_{k}_loss"][0] for k, w in weights.items())
    assert history["val_loss"][0] == pytest.approx(eq6, rel=1e-3, abs=1e-3)
    table = summary["table"]
    for label in ("with review", "without review", "user-agnostic", "unknown user", "per-user AUC"):
        assert label in table, label
    assert summary["export"] is None


def _state(run_dir):
    path = os.path.join(run_dir, "checkpoints", "state.json")
    try:
        return _read_json(path)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@pytest.mark.slow
def test_resume_after_kill_continues_from_last_completed_epoch(demo_records, tmp_path):
    epochs, kill_after = 3, 1
    config = tiny_experiment("demo", demo_records, trainer__epochs=epochs, trainer__steps_per_epoch=3)
    config_path = str(tmp_path / "config.json")
    config.save(config_path)
    run_dir = str(tmp_path / "run")
    # Deterministic kill point: the worker blocks once epoch 1's checkpoint is
    # committed (it writes `release.blocked`) and would wait for `release`, which
    # never comes; it is killed while it waits, mid-run, whatever the machine's speed.
    release = str(tmp_path / "release")
    env = dict(_env(), TRAIN_WORKER_BLOCK_AFTER_EPOCH=str(kill_after), TRAIN_WORKER_BLOCK_FILE=release)
    log1 = open(tmp_path / "first.log", "w")
    first = subprocess.Popen([sys.executable, WORKER, config_path, run_dir], env=env, stdout=log1, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and first.poll() is None and not os.path.exists(release + ".blocked"):
            time.sleep(0.1)
        assert os.path.exists(release + ".blocked") and first.poll() is None, (
            "the first run did not block after epoch 1:\n" + open(tmp_path / "first.log").read()
        )
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
        log1.close()
    assert first.returncode == -signal.SIGKILL
    killed = _state(run_dir)
    assert killed is not None and killed["epoch"] == kill_after and not killed["completed"]
    assert os.path.exists(os.path.join(run_dir, "checkpoints", killed["weights"]))

    out = str(tmp_path / "weights.npz")
    second = subprocess.run(
        [sys.executable, WORKER, config_path, run_dir, out], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"after epoch {killed['epoch']} of {epochs}" in second.stdout
    final = _state(run_dir)
    assert final["completed"] and final["epoch"] == epochs
    # Every epoch ran exactly once across the two processes: the restart neither
    # started over nor skipped one; the history has one entry per epoch.
    assert final["epochs_run"] == list(range(epochs))
    assert len(final["history"]["loss"]) == epochs
    assert final["history"]["loss"][: killed["epoch"]] == killed["history"]["loss"]
    summary = _read_json(out + ".json")
    assert summary["epochs_run"] == list(range(epochs))
    # Only the last completed epoch's weights are kept (plus the best).
    kept = sorted(f for f in os.listdir(os.path.join(run_dir, "checkpoints")) if f.startswith("epoch-"))
    assert kept == [f"epoch-{epochs:04d}.weights.h5"]


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(demo_records, tmp_path):
    config = tiny_experiment(
        "demo", demo_records, runtime__strategy="mirrored", runtime__num_logical_cpu_devices=2, trainer__epochs=2
    )
    config_path = str(tmp_path / "config.json")
    config.save(config_path)
    out = str(tmp_path / "weights.npz")
    result = subprocess.run(
        [sys.executable, WORKER, config_path, str(tmp_path / "run"), out, "--evaluate"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = _read_json(out + ".json")
    assert summary["num_replicas"] == 2
    assert summary["epochs_run"] == [0, 1]
    # Evaluation after a mirrored run sees each test image once (not once per replica).
    manifest = _read_json(os.path.join(demo_records, "manifest.json"))
    assert summary["test"]["overall"]["count"] == manifest["splits"]["test"]
    assert all(np.isfinite(v) for v in summary["history"]["loss"])
    weights = np.load(out)
    assert len(weights.files) > 0 and all(np.all(np.isfinite(weights[k])) for k in weights.files)


def test_run_state_patience_best_epoch_and_reload(tmp_path):
    import keras

    from tfaesthetic.trainer import RunState

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    state = RunState(str(tmp_path), patience=2)
    val_losses = [1.0, 0.5, 0.7, 0.6, 0.4]
    stops = [state.end_epoch(model, epoch, {"loss": 1.0, "val_loss": v}, "val_loss") for epoch, v in enumerate(val_losses[:4])]
    # Best at epoch 1 (0.5); epochs 2 and 3 do not improve: patience 2 stops after epoch 3.
    assert stops == [False, False, False, True]
    assert (state.best_epoch, state.best_value, state.wait, state.epoch) == (1, 0.5, 2, 4)
    reloaded = RunState(str(tmp_path), patience=2).load()
    assert reloaded.to_dict() == state.to_dict()
    assert reloaded.history["val_loss"] == val_losses[:4] and reloaded.epochs_run == [0, 1, 2, 3]
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".h5")) == ["best.weights.h5", "epoch-0004.weights.h5"]
    # An improvement resets the counter.
    assert not reloaded.end_epoch(model, 4, {"loss": 1.0, "val_loss": 0.4}, "val_loss")
    assert (reloaded.best_epoch, reloaded.wait) == (4, 0)
