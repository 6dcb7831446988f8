"""MultiWorkerMirroredStrategy: the custom distributed loop with two worker processes on localhost."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests._workers.tiny import tiny_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "_workers", "train_worker.py")


def _free_ports(n):
    sockets = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("localhost", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.slow
def test_two_workers_resume_from_chief_checkpoint_and_end_with_identical_weights(demo_records, tmp_path):
    from tfaesthetic import trainer

    run_dir = str(tmp_path / "run")
    # Epoch 1 on one process: the chief's checkpoint the cluster resumes from. The
    # second worker has no checkpoint of its own: it gets the chief's variables by
    # broadcast, or the workers would end with different weights.
    first = tiny_experiment("demo", demo_records, trainer__epochs=1)
    resumed_from = trainer.train(first, run_dir, restore_best=False).model.get_weights()
    assert _read_json(os.path.join(run_dir, "checkpoints", "state.json"))["epoch"] == 1

    # Validation runs the whole split each epoch (no step cap), so the cluster's
    # validation metrics can be compared with the chief's single-process evaluation.
    config = tiny_experiment(
        "demo", demo_records, trainer__epochs=2, trainer__validation_steps=None, runtime__strategy="multi_worker"
    )
    config_path = str(tmp_path / "config.json")
    config.save(config_path)
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs, logs = [], []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=ROOT)
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(tmp_path / f"worker{index}.log", "w")
        logs.append(log)
        out = str(tmp_path / f"weights{index}.npz")
        args = [sys.executable, WORKER, config_path, run_dir, out, "--val-metrics"]
        procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=400) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for log in logs:
            log.close()
    text = [open(tmp_path / f"worker{i}.log").read() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(t[-4000:] for t in text)
    assert "Resuming" in text[0] and "after epoch 1 of 2" in text[0]

    w0, w1 = np.load(tmp_path / "weights0.npz"), np.load(tmp_path / "weights1.npz")
    assert len(w0.files) == len(w1.files) > 0
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key], err_msg=key)
    s0, s1 = _read_json(str(tmp_path / "weights0.npz.json")), _read_json(str(tmp_path / "weights1.npz.json"))
    assert s0["num_replicas"] == s1["num_replicas"] == 2
    assert s0["chief"] and not s1["chief"]
    # The cluster-wide losses are all-reduced: both workers log the same values.
    assert s0["epochs_run"] == [0, 1] and s1["epochs_run"] == [1]
    np.testing.assert_allclose(s0["history"]["loss"][1:], s1["history"]["loss"], rtol=1e-6)
    np.testing.assert_allclose(s0["history"]["val_loss"][1:], s1["history"]["val_loss"], rtol=1e-6)
    # The compiled metrics (seed 003 §IV-A: accuracy, SRCC, PLCC, MAE, RMSE, EMD) are
    # logged by the multi-worker epochs under the names `Model.fit` logged them in
    # epoch 1, training and validation.
    h0, h1 = s0["history"], s1["history"]
    fit_metrics = sorted(k for k in h0 if not k.endswith("loss") and k != "learning_rate")
    assert any(k.endswith("srcc") for k in fit_metrics) and any(k.endswith("plcc") for k in fit_metrics), fit_metrics
    assert any(k.startswith("val_") for k in fit_metrics), fit_metrics
    for key in fit_metrics:
        assert len(h0[key]) == 2 and len(h1[key]) == 1, key
        # Aggregated across the workers: both report the same value...
        np.testing.assert_allclose(h0[key][1:], h1[key], rtol=1e-5, atol=1e-6, err_msg=key)
        assert np.isfinite(h1[key][0]), key
    # ... which is the metric of the whole split: the chief's single-process
    # evaluation of the final weights on the whole validation split agrees with the
    # last epoch's cluster-wide validation metrics (each worker saw half the split).
    whole = s0["val_metrics"]
    val_metrics = [k for k in fit_metrics if k.startswith("val_")]
    for key in val_metrics:
        np.testing.assert_allclose(h1[key][0], whole[key[len("val_"):]], rtol=1e-3, atol=1e-3, err_msg=key)
    # Only the chief wrote into the run directory.
    state = _read_json(os.path.join(run_dir, "checkpoints", "state.json"))
    assert state["epoch"] == 2 and state["completed"]
    # The cluster trained on from the checkpoint: the weights moved.
    assert any(not np.array_equal(w0[k], before) for k, before in zip(w0.files, resumed_from))


def test_step_functions_per_output_losses_and_metrics_under_default_strategy(seed):
    """The loop's step, loss parts and metrics reader against NumPy on one process."""
    import keras
    import tensorflow as tf

    from tfaesthetic.training import multi_worker as distributed

    inputs = keras.Input((3,), name="x")
    model = keras.Model(
        {"x": inputs},
        {"a": keras.layers.Dense(1, activation="sigmoid", name="a")(inputs), "b": keras.layers.Dense(2, name="b")(inputs)},
    )
    model.compile(
        optimizer="sgd",
        loss={"a": keras.losses.BinaryCrossentropy(), "b": keras.losses.MeanSquaredError()},
        metrics={"a": [keras.metrics.BinaryAccuracy(name="accuracy")]},
    )
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(21, 3)).astype("float32")
    y = {"a": rng.integers(0, 2, size=(21, 1)).astype("float32"), "b": rng.normal(size=(21, 2)).astype("float32")}
    dataset = tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(8)  # 8, 8, 5: a short last batch
    strategy = tf.distribute.get_strategy()
    losses, weights = {"a": keras.losses.BinaryCrossentropy(), "b": keras.losses.MeanSquaredError()}, {"a": 1.0, "b": 0.5}
    distributed.build_metrics(strategy, model, dataset.element_spec)
    _, eval_step = distributed.make_step_functions(strategy, model, losses, weights)
    read = distributed.make_metrics_reader(strategy, model)
    distributed.reset_metrics(strategy, model)
    loss, steps, parts = distributed._run_epoch(eval_step, dataset, None, None)

    out = {k: np.asarray(v) for k, v in model({"x": x}).items()}
    p = np.clip(out["a"][:, 0], 1e-7, 1 - 1e-7)
    bce = -(y["a"][:, 0] * np.log(p) + (1 - y["a"][:, 0]) * np.log(1 - p))
    mse = np.mean((out["b"] - y["b"]) ** 2, axis=1)
    assert steps == 3
    np.testing.assert_allclose(parts["a_loss"], bce.mean(), rtol=1e-4)
    np.testing.assert_allclose(parts["b_loss"], mse.mean(), rtol=1e-4)
    np.testing.assert_allclose(loss, (bce + 0.5 * mse).mean(), rtol=1e-4)
    metrics = read()
    assert set(metrics) == {"a_accuracy"}, metrics  # the loss trackers are left out
    np.testing.assert_allclose(metrics["a_accuracy"], np.mean((out["a"][:, 0] > 0.5) == (y["a"][:, 0] > 0.5)), atol=1e-6)
    distributed.reset_metrics(strategy, model)
    assert read()["a_accuracy"] == 0.0
