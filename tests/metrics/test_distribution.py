"""Keras distribution metrics (seed 003 §IV-A) against independent NumPy/SciPy values."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from scipy import stats

from tests.test_case import TestCase
from tfaesthetic.features import AVA_SCALE, PHOTONET_SCALE
from tfaesthetic.metrics import (
    DistributionEMD,
    MeanScoreAccuracy,
    MeanScoreMAE,
    MeanScorePLCC,
    MeanScoreRMSE,
    MeanScoreSRCC,
    distribution_metrics,
    mean_score,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def correlated_pair(rng, n, bins=10, noise=0.8):
    """Ground-truth and predicted distributions whose mean scores correlate."""
    base = rng.normal(size=(n, 1)) * 1.5
    centres = np.arange(bins)[None, :]
    true_logits = -((centres - (bins / 2 + base)) ** 2) / 4.0 + 0.3 * rng.normal(size=(n, bins))
    pred_logits = -((centres - (bins / 2 + base + noise * rng.normal(size=(n, 1)))) ** 2) / 5.0
    return softmax(true_logits).astype("float32"), softmax(pred_logits).astype("float32")


def reference(q, q_hat, values, threshold):
    """Independent computation: mean scores with NumPy, correlations with SciPy."""
    q = q / q.sum(-1, keepdims=True)
    mu, mu_hat = q @ np.asarray(values), q_hat @ np.asarray(values)
    return {
        "accuracy": np.mean((mu > threshold) == (mu_hat > threshold)),
        "srcc": stats.spearmanr(mu, mu_hat)[0],
        "plcc": stats.pearsonr(mu, mu_hat)[0],
        "mae": np.mean(np.abs(mu - mu_hat)),
        "rmse": np.sqrt(np.mean((mu - mu_hat) ** 2)),
        "emd": np.mean(np.abs(np.cumsum(q, -1) - np.cumsum(q_hat, -1)).mean(-1)),
    }


def run_metrics(metrics, q, q_hat, batch_size=50, sample_weight=None):
    for metric in metrics:
        for start in range(0, len(q), batch_size):
            sl = slice(start, start + batch_size)
            metric.update_state(q[sl], q_hat[sl], None if sample_weight is None else sample_weight[sl])
    return {m.name: float(m.result()) for m in metrics}


class DistributionMetricsTest(TestCase):
    def test_mean_score(self):
        q = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [2.0, 0.0, 2.0]], dtype="float32")
        self.assertAllClose(mean_score(q, (1.0, 2.0, 3.0)), [2.0, 2.0, 2.0])

    def test_agree_with_numpy_scipy_on_random_data(self):
        rng = np.random.default_rng(0)
        q, q_hat = correlated_pair(rng, 1000)
        got = run_metrics(distribution_metrics(AVA_SCALE), q, q_hat)
        want = reference(q, q_hat, AVA_SCALE.values, AVA_SCALE.threshold)
        self.assertGreater(want["srcc"], 0.5)  # the data are not degenerate
        self.assertLess(want["accuracy"], 1.0)
        for name in ("accuracy", "plcc", "mae", "rmse", "emd"):
            self.assertAllClose(got[name], want[name], atol=2e-5, msg=name)
        # SRCC comes from a 1024-bin joint histogram (documented approximation).
        self.assertAllClose(got["srcc"], want["srcc"], atol=2e-3)

    def test_raw_votes_and_photonet_scale(self):
        rng = np.random.default_rng(1)
        q, q_hat = correlated_pair(rng, 300, bins=7)
        votes = np.round(q * 200)
        votes[:, 3] += 1
        got = run_metrics(distribution_metrics(PHOTONET_SCALE.to_json()), votes, q_hat)
        want = reference(votes, q_hat, PHOTONET_SCALE.values, PHOTONET_SCALE.threshold)
        for name in ("accuracy", "plcc", "mae", "rmse", "emd"):
            self.assertAllClose(got[name], want[name], atol=2e-5, msg=name)
        self.assertAllClose(got["srcc"], want["srcc"], atol=2e-3)

    def test_srcc_with_ties_is_exact(self):
        # One-hot distributions: mean scores are integers, with many ties.
        rng = np.random.default_rng(2)
        true_bin = rng.integers(0, 10, size=400)
        pred_bin = np.clip(true_bin + rng.integers(-2, 3, size=400), 0, 9)
        q, q_hat = np.eye(10)[true_bin].astype("float32"), np.eye(10)[pred_bin].astype("float32")
        metric = MeanScoreSRCC()
        metric.update_state(q, q_hat)
        expected = stats.spearmanr(true_bin, pred_bin)[0]  # average ranks for ties
        self.assertAllClose(float(metric.result()), expected, atol=1e-5)

    def test_sample_weight(self):
        rng = np.random.default_rng(3)
        q, q_hat = correlated_pair(rng, 200)
        counts = rng.integers(0, 4, size=200)
        weights = counts.astype("float32")
        got = run_metrics(distribution_metrics(), q, q_hat, sample_weight=weights)
        # Integer weights are repetitions.
        want = reference(np.repeat(q, counts, 0), np.repeat(q_hat, counts, 0), AVA_SCALE.values, 5.0)
        for name in ("accuracy", "plcc", "mae", "rmse", "emd"):
            self.assertAllClose(got[name], want[name], atol=3e-5, msg=name)
        self.assertAllClose(got["srcc"], want["srcc"], atol=3e-3)

    def test_batches_accumulate_and_reset(self):
        rng = np.random.default_rng(4)
        q, q_hat = correlated_pair(rng, 240)
        for metric_cls in (MeanScoreAccuracy, MeanScorePLCC, MeanScoreSRCC, MeanScoreMAE, MeanScoreRMSE):
            whole, batched = metric_cls(), metric_cls()
            whole.update_state(q, q_hat)
            run_metrics([batched], q, q_hat, batch_size=17)
            self.assertAllClose(whole.result(), batched.result(), atol=1e-5, msg=metric_cls.__name__)
            batched.reset_state()
            batched.update_state(q[:100], q_hat[:100])
            other = metric_cls()
            other.update_state(q[:100], q_hat[:100])
            self.assertAllClose(batched.result(), other.result(), atol=1e-6)

    def test_undefined_correlations_are_zero(self):
        q = np.tile(np.full((1, 10), 0.1, "float32"), (5, 1))
        for metric_cls in (MeanScorePLCC, MeanScoreSRCC):
            metric = metric_cls()
            self.assertAllClose(metric.result(), 0.0)
            metric.update_state(q, q)
            self.assertAllClose(metric.result(), 0.0)

    def test_wrong_number_of_bins(self):
        with pytest.raises(ValueError, match=r"expected 10 score bins. Received: y_pred.shape=\(2, 7\)"):
            MeanScoreMAE().update_state(np.ones((2, 10)), np.ones((2, 7)))
        with pytest.raises(ValueError, match="Received: resolution=1"):
            MeanScoreSRCC(resolution=1)

    def test_serialization(self):
        for metric in distribution_metrics(PHOTONET_SCALE, srcc_resolution=64):
            revived = keras.metrics.deserialize(keras.metrics.serialize(metric))
            self.assertIsInstance(revived, type(metric))
            self.assertEqual(revived.get_config(), metric.get_config())
        self.assertEqual(MeanScoreSRCC(**distribution_metrics(PHOTONET_SCALE)[1].get_config()).score_values, PHOTONET_SCALE.values)

    def test_in_fit_and_evaluate_with_jit(self):
        rng = np.random.default_rng(5)
        q, _ = correlated_pair(rng, 256)
        x = (q @ np.arange(1, 11))[:, None].astype("float32") + rng.normal(size=(256, 1)).astype("float32") * 0.3
        inputs = keras.Input((1,), name="x")
        outputs = {"distribution": keras.layers.Dense(10, activation="softmax", name="distribution")(inputs)}
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.Adam(0.05),
            loss={"distribution": "categorical_crossentropy"},
            metrics={"distribution": distribution_metrics()},
            jit_compile=True,
        )
        model.fit(x, {"distribution": q}, epochs=2, batch_size=64, verbose=0)
        logs = model.evaluate(x, {"distribution": q}, batch_size=64, verbose=0, return_dict=True)
        pred = model.predict(x, batch_size=64, verbose=0)["distribution"]
        want = reference(q, pred, AVA_SCALE.values, 5.0)
        for name in ("accuracy", "plcc", "mae", "rmse", "emd"):
            key = [k for k in logs if k.endswith(name) and "loss" not in k][0]
            self.assertAllClose(logs[key], want[name], atol=1e-4, msg=name)
        key = [k for k in logs if k.endswith("srcc")][0]
        self.assertAllClose(logs[key], want["srcc"], atol=3e-3)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    keras.utils.set_random_seed(0)
    from tfaesthetic.metrics import distribution_metrics
    from tfaesthetic.metrics.evaluation import evaluate_distributions
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 3)).astype("float32")
    q = rng.dirichlet(np.ones(10), size=96).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        inputs = keras.Input((3,))
        model = keras.Model(inputs, keras.layers.Dense(
            10, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(stddev=2.0))(inputs))
        # Spread-out predictions: the SRCC histogram treats scores closer than one bin
        # (0.009 on AVA) as ties, so a near-constant random model would test that
        # approximation rather than the replica aggregation.
        model.compile(loss="categorical_crossentropy", metrics=distribution_metrics())
    logs = model.evaluate(x, q, batch_size=32, verbose=0, return_dict=True)
    exact = evaluate_distributions(q, model.predict(x, verbose=0))["overall"]
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "logs": logs, "exact": exact}))
    """
)


@pytest.mark.slow
def test_metrics_under_mirrored_strategy():
    """Two logical CPU replicas: the replica-summed states give the whole-split values."""
    import json

    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    for name in ("accuracy", "plcc", "mae", "rmse", "emd"):
        np.testing.assert_allclose(result["logs"][name], result["exact"][name], atol=1e-4, err_msg=name)
    np.testing.assert_allclose(result["logs"]["srcc"], result["exact"]["srcc"], atol=5e-3)
