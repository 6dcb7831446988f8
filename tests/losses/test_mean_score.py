"""Tests for EMD with an auxiliary mean-score term (`tfaesthetic.losses.EMDWithMeanScore`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.losses.test_emd import numpy_emd, random_distributions
from tests.test_case import TestCase
from tfaesthetic.losses import EMD, EMDWithMeanScore, emd_with_mean, mean_score_error


def numpy_emd_with_mean(q, q_hat, r, w, var):
    """EMD_r(q, q̂) + w · (Σ_k k q̂_k − Σ_k k q_k)² / σ², written out bin by bin."""
    q = np.asarray(q, np.float64)
    q = q / q.sum(axis=-1, keepdims=True)
    q_hat = np.asarray(q_hat, np.float64)
    out = []
    for row_q, row_p in zip(q, q_hat):
        mu = sum((k + 1) * row_q[k] for k in range(len(row_q)))
        mu_hat = sum((k + 1) * row_p[k] for k in range(len(row_p)))
        out.append((mu_hat - mu) ** 2)
    return numpy_emd(q, q_hat, r) + w * np.array(out) / var


class EMDWithMeanScoreTest(TestCase):
    def test_hand_checked_value(self):
        # q = [1,0,0] (mean 1), q̂ = [0,0,1] (mean 3): EMD_2 = sqrt(2/3), mean error 4.
        q, q_hat = np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 1.0]])
        self.assertAllClose(mean_score_error(q, q_hat), [4.0])
        self.assertAllClose(emd_with_mean(q, q_hat, r=2, mean_weight=0.5, variance=2.0), [np.sqrt(2 / 3) + 1.0])

    def test_numpy_reference(self):
        rng = np.random.default_rng(0)
        q, q_hat = random_distributions(rng, 7, 10), random_distributions(rng, 7, 10)
        votes = q * 50.0  # raw vote counts are renormalised like EMD's
        for r, w, var in ((2, 0.3, 0.5), (1, 2.0, 1.0)):
            expected = numpy_emd_with_mean(q, q_hat, r, w, var)
            self.assertAllClose(emd_with_mean(votes, q_hat, r=r, mean_weight=w, variance=var), expected, atol=1e-5)
            loss = EMDWithMeanScore(r=r, mean_weight=w, variance=var)
            self.assertAllClose(loss(q, q_hat), expected.mean(), atol=1e-5)

    def test_zero_weight_is_emd_and_same_mean_costs_nothing_extra(self):
        rng = np.random.default_rng(1)
        q, q_hat = random_distributions(rng, 5, 10), random_distributions(rng, 5, 10)
        self.assertAllClose(EMDWithMeanScore(mean_weight=0.0)(q, q_hat), EMD(r=2)(q, q_hat))
        # Mirrored distributions about the middle bin share the mean: only EMD remains.
        a = np.array([[0.5, 0.0, 0.5]])
        b = np.array([[0.0, 1.0, 0.0]])
        self.assertAllClose(emd_with_mean(a, b, mean_weight=5.0), numpy_emd(a, b, 2))

    def test_gradient_moves_the_mean_towards_the_target(self):
        logits = tf.Variable(np.zeros((1, 10), np.float32))
        target = np.eye(10, dtype=np.float32)[[8]]
        with tf.GradientTape() as tape:
            loss = EMDWithMeanScore(mean_weight=1.0)(target, tf.nn.softmax(logits))
        grad = tape.gradient(loss, logits).numpy()[0]
        assert np.all(np.isfinite(grad)) and grad[9] < 0 < grad[0]

    def test_serialization_and_bad_arguments(self):
        loss = EMDWithMeanScore(r=2, mean_weight=0.7, variance=0.4)
        revived = keras.losses.deserialize(keras.losses.serialize(loss))
        assert isinstance(revived, EMDWithMeanScore)
        assert (revived.r, revived.mean_weight, revived.variance) == (2, 0.7, 0.4)
        with pytest.raises(ValueError, match="mean_weight=-1"):
            EMDWithMeanScore(mean_weight=-1)
        with pytest.raises(ValueError, match="variance=0"):
            EMDWithMeanScore(variance=0)
