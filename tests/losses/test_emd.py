"""Tests for the EMD loss (seed 003, Eq. 1)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import TestCase
from tfaesthetic.losses import EMD, emd


def numpy_emd(q, q_hat, r):
    """Eq. 1 written from the paper: (1/N Σ_k |CDF_q(k) − CDF_q̂(k)|^r)^(1/r)."""
    q = np.asarray(q, dtype=np.float64)
    q_hat = np.asarray(q_hat, dtype=np.float64)
    q = q / q.sum(axis=-1, keepdims=True)
    n = q.shape[-1]
    out = []
    for row_q, row_p in zip(q.reshape(-1, n), q_hat.reshape(-1, n)):
        total = 0.0
        cdf_q = cdf_p = 0.0
        for k in range(n):
            cdf_q += row_q[k]
            cdf_p += row_p[k]
            total += abs(cdf_q - cdf_p) ** r
        out.append((total / n) ** (1.0 / r))
    return np.array(out).reshape(q.shape[:-1])


def random_distributions(rng, batch, bins):
    logits = rng.normal(size=(batch, bins)) * 2.0
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype("float32")


class EMDTest(TestCase):
    def test_eq1_hand_checked_value(self):
        # q = [1,0,0], q̂ = [0,0,1]: CDFs [1,1,1] and [0,0,1] differ by [1,1,0].
        q, q_hat = np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 1.0]])
        self.assertAllClose(emd(q, q_hat, r=1), [2.0 / 3.0])
        self.assertAllClose(emd(q, q_hat, r=2), [np.sqrt(2.0 / 3.0)])
        # Moving all mass one bin over: CDF differs by 1 in one of the 3 bins.
        self.assertAllClose(emd([[0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]], r=1), [1.0 / 3.0])
        self.assertAllClose(emd([[0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]], r=2), [np.sqrt(1.0 / 3.0)])
        # Identical distributions: exactly 0.
        self.assertAllClose(emd(q, q, r=2), [0.0])

    def test_eq1_numpy_reference_r1_r2_r3(self):
        rng = np.random.default_rng(0)
        q, q_hat = random_distributions(rng, 64, 10), random_distributions(rng, 64, 10)
        for r in (1, 2, 3):
            self.assertAllClose(emd(q, q_hat, r=r), numpy_emd(q, q_hat, r), atol=1e-6)

    def test_eq1_raw_votes_are_normalised(self):
        rng = np.random.default_rng(1)
        votes = rng.integers(0, 30, size=(16, 7)).astype("float32")
        votes[:, 3] += 1  # no empty rows
        q_hat = random_distributions(rng, 16, 7)
        self.assertAllClose(emd(votes, q_hat, r=2), emd(votes / votes.sum(-1, keepdims=True), q_hat, r=2), atol=1e-6)
        self.assertAllClose(emd(votes, q_hat, r=2), numpy_emd(votes, q_hat, 2), atol=1e-6)

    def test_one_value_per_example(self):
        rng = np.random.default_rng(2)
        q, q_hat = random_distributions(rng, 8, 10), random_distributions(rng, 8, 10)
        self.assertEqual(tuple(emd(q, q_hat).shape), (8,))
        self.assertEqual(tuple(emd(q.reshape(2, 4, 10), q_hat.reshape(2, 4, 10)).shape), (2, 4))

    def test_loss_reduction_and_sample_weight(self):
        rng = np.random.default_rng(3)
        q, q_hat = random_distributions(rng, 6, 10), random_distributions(rng, 6, 10)
        per_example = numpy_emd(q, q_hat, 2)
        weights = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 1.0], dtype="float32")
        loss = EMD(r=2)
        self.assertAllClose(loss(q, q_hat), per_example.mean(), atol=1e-6)
        # "sum_over_batch_size": weighted sum divided by the batch size.
        self.assertAllClose(loss(q, q_hat, sample_weight=weights), (per_example * weights).sum() / 6, atol=1e-6)
        self.assertAllClose(EMD(r=1, reduction="sum")(q, q_hat), numpy_emd(q, q_hat, 1).sum(), atol=1e-5)
        self.assertAllClose(EMD(reduction=None)(q, q_hat), per_example, atol=1e-6)

    def test_gradient_is_finite_at_zero_distance(self):
        q = tf.constant([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
        logits = tf.Variable(tf.math.log(q))
        with tf.GradientTape() as tape:
            value = EMD(r=2)(q, tf.nn.softmax(logits))
        grad = tape.gradient(value, logits)
        self.assertTrue(np.all(np.isfinite(grad.numpy())))
        self.assertAllClose(value, 0.0, atol=1e-6)

    def test_mismatched_bins_and_bad_r_raise(self):
        with pytest.raises(ValueError, match=r"y_pred.shape=\(1, 7\)"):
            emd(np.ones((1, 10)) / 10, np.ones((1, 7)) / 7)
        with pytest.raises(ValueError, match="Received: r=0.5"):
            EMD(r=0.5)

    def test_serialization(self):
        loss = EMD(r=1, name="emd_r1")
        revived = keras.losses.deserialize(keras.losses.serialize(loss))
        self.assertIsInstance(revived, EMD)
        self.assertEqual(revived.r, 1)
        self.assertEqual(revived.get_config(), loss.get_config())

    def test_trains_a_softmax_head(self):
        rng = np.random.default_rng(4)
        x = rng.normal(size=(128, 4)).astype("float32")
        target = random_distributions(rng, 128, 5)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss=EMD(r=2))
        history = model.fit(x, target, epochs=5, batch_size=32, verbose=0)
        self.assertLess(history.history["loss"][-1], history.history["loss"][0])
