"""What the CLIs print (issue 15) and the checks before work starts (issue 12): cheap, in-process.

The end-to-end checks (the no-flag run's output, its report, a second training into a
held run directory) share one CLI run in `tests/test_train_cli.py`.
"""

import io
import json
import os
import socket

import numpy as np
import pytest

from tfaesthetic import console

# The start-up lines of the issue, as TensorFlow 2.21 prints them on a machine without a GPU.
BANNER = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796115359.291782    4732 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796115359.372242    4732 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1796115361.099489    4732 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
I0000 00:00:1796115361.1 4732 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
"""


def test_startup_banner_is_dropped_and_other_lines_kept():
    real = "E0000 00:00:1.0 4732 some_op.cc:12] Could not open /data/x: Permission denied"
    assert console.startup_lines_to_keep(BANNER) == []
    assert console.startup_lines_to_keep(BANNER + real + "\n") == [real]


def test_loud_on_request(monkeypatch):
    assert console.loud_requested({console.VERBOSE_ENV: "1"})
    assert not console.loud_requested({console.VERBOSE_ENV: "0"})
    assert not console.loud_requested({})


def test_progress_line_mode_prints_every_ten_percent():
    stream = io.StringIO()
    with console.Progress(200, "evaluate test", stream=stream, interactive=False, min_seconds=0) as bar:
        for _ in range(200):
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10, lines  # 10 %, ..., 90 %, then the summary line
    assert lines[0].startswith("evaluate test: 20/200 (10%)") and "image/s, ETA" in lines[0]
    assert lines[-1].startswith("evaluate test: 200 images in ")
    # A job done within min_seconds prints its summary only.
    quick = io.StringIO()
    with console.Progress(200, "quick", stream=quick, interactive=False) as bar:
        bar.update(200)
    assert len(quick.getvalue().splitlines()) == 1


def test_progress_model_counts_examples():
    stream = io.StringIO()
    bar = console.Progress(10, "x", stream=stream, interactive=False)
    calls = []
    model = console.ProgressModel(lambda f, training=False: calls.append(f) or {"y": f["a"]}, bar)
    model({"a": np.zeros((4, 2))}, training=False)
    model({"a": np.zeros((6, 2))}, training=False)
    assert bar.count == 10 and len(calls) == 2


def test_user_errors_are_one_line():
    import tensorflow as tf

    from tfaesthetic.config import ConfigError
    from tfaesthetic.data import ShardError

    assert console.user_error(ConfigError("Expected a positive integer. Received: --epochs=0")) == (
        "Expected a positive integer. Received: --epochs=0"
    )
    assert "train-00000-of-00001.tfrecord" in console.user_error(
        ShardError("Records shard /r/train-00000-of-00001.tfrecord is truncated.\nRebuild it.")
    )
    assert "\n" not in console.user_error(ShardError("a\nb"))
    loss = tf.errors.DataLossError(None, None, "corrupted record at 41164")
    message = console.user_error(loss)
    assert "corrupted record at 41164" in message and "\n" not in message
    named = tf.errors.DataLossError(None, None, "corrupted record at 12 in /r/val-00000-of-00002.tfrecord")
    assert "/r/val-00000-of-00002.tfrecord" in console.user_error(named)
    assert console.user_error(FileNotFoundError("No manifest.json in x")) == "No manifest.json in x"
    assert console.user_error(RuntimeError("a bug")) is None  # keeps its traceback


def test_run_dir_lock_names_the_holder(tmp_path):
    from tfaesthetic import trainer

    held = trainer.RunLock(str(tmp_path / "run")).acquire()
    try:
        with pytest.raises(trainer.RunDirLocked, match=f"pid {os.getpid()} on host {socket.gethostname()}"):
            trainer.RunLock(str(tmp_path / "run")).acquire()
        assert console.user_error(trainer.RunDirLocked("x")) == "x"
    finally:
        held.release()
    trainer.RunLock(str(tmp_path / "run")).acquire().release()  # free again once released
    assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == os.getpid()


@pytest.mark.parametrize(
    "overrides,named",
    [
        ({"data.global_batch_size": 100000}, ["--batch_size=100000", "zero training steps"]),
        ({"trainer.steps_per_epoch": -1}, ["--steps_per_epoch=-1"]),
        ({"trainer.steps_per_epoch": 0}, ["--steps_per_epoch=0"]),
        ({"trainer.validation_steps": 0}, ["--validation_steps=0"]),
        ({"model.params.recurrences": 0}, ["--param=recurrences=0", "positive integer"]),
    ],
    ids=["batch>split", "steps=-1", "steps=0", "val_steps=0", "recurrences=0"],
)
def test_budgets_and_params_fail_before_the_run_dir_exists(demo_records, tmp_path, overrides, named):
    from tfaesthetic import config as config_lib
    from tfaesthetic import trainer

    config = config_lib.with_overrides(
        config_lib.get_experiment("demo"),
        {"data.records_dir": demo_records, "data.image_size": 48, "trainer.epochs": 1, **overrides},
    )
    run_dir = tmp_path / "run"
    with pytest.raises(config_lib.ConfigError) as info:
        trainer.train_and_evaluate(config, str(run_dir), export=False)
    message = str(info.value)
    for text in named:
        assert text in message, message
    assert "\n" not in message and not run_dir.exists()
