"""CFAN multi-task loss (seed 000, Eq. 6) and BPR loss against hand computations."""

import math

import keras
import numpy as np

from tests.test_case import TestCase
from tfaesthetic.losses.bpr import BPRLoss, bpr_loss
from tfaesthetic.losses.cfan import (
    MaskedTagCrossentropy,
    RatingCrossentropy,
    cfan_loss,
    masked_tag_crossentropy,
    rating_crossentropy,
)


def _bce(y, p):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


class CFANLossTest(TestCase):
    y_true = {
        "user_rating": np.array([1.0, 0.0, 1.0]),
        "tag": np.array([2, -1, 0]),
        "agnostic_rating": np.array([1.0, 1.0, 0.0]),
    }
    y_pred = {
        "user_rating": np.array([0.9, 0.2, 0.4]),
        "tag": np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]]),
        "agnostic_rating": np.array([0.6, 0.7, 0.1]),
    }

    def test_eq6_by_hand(self):
        lz, lb = 0.015, 1.0
        user = [_bce(1, 0.9), _bce(0, 0.2), _bce(1, 0.4)]
        tag = [-math.log(0.7), 0.0, -math.log(0.5)]  # the untagged example contributes 0
        agnostic = [_bce(1, 0.6), _bce(1, 0.7), _bce(0, 0.1)]
        expected = np.mean(user) + lz * np.mean(tag) + lb * np.mean(agnostic)
        got = float(cfan_loss(self.y_true, self.y_pred, lambda_z=lz, lambda_beta=lb))
        self.assertAllClose(got, expected, atol=1e-6)
        # Weights are arguments.
        got = float(cfan_loss(self.y_true, self.y_pred, lambda_z=0.5, lambda_beta=0.0))
        self.assertAllClose(got, np.mean(user) + 0.5 * np.mean(tag), atol=1e-6)

    def test_eq6_per_example_pieces(self):
        np.testing.assert_allclose(
            np.asarray(rating_crossentropy(self.y_true["user_rating"], self.y_pred["user_rating"])),
            [_bce(1, 0.9), _bce(0, 0.2), _bce(1, 0.4)],
            rtol=1e-5,
        )
        np.testing.assert_allclose(
            np.asarray(masked_tag_crossentropy(self.y_true["tag"], self.y_pred["tag"])),
            [-math.log(0.7), 0.0, -math.log(0.5)],
            rtol=1e-5,
        )
        # Unknown rating labels (-1) contribute 0; extreme probabilities stay finite.
        values = np.asarray(rating_crossentropy(np.array([-1.0, 1.0]), np.array([0.3, 0.0])))
        self.assertEqual(values[0], 0.0)
        self.assertTrue(np.isfinite(values[1]))

    def test_eq6_keras_weighted_losses_equal_function(self):
        """The per-output wrappers weighted as in `loss_weights` reproduce cfan_loss."""
        losses = {
            "user_rating": RatingCrossentropy(),
            "tag": MaskedTagCrossentropy(),
            "agnostic_rating": RatingCrossentropy(),
        }
        weights = {"user_rating": 1.0, "tag": 0.015, "agnostic_rating": 1.0}
        total = sum(weights[k] * float(losses[k](self.y_true[k], self.y_pred[k])) for k in losses)
        self.assertAllClose(total, float(cfan_loss(self.y_true, self.y_pred)), atol=1e-6)
        # sample_weight is honoured by the wrappers (Keras does the reduction).
        weighted = float(RatingCrossentropy()(self.y_true["user_rating"], self.y_pred["user_rating"], [1, 0, 0]))
        self.assertAllClose(weighted, _bce(1, 0.9) / 3, atol=1e-6)

    def test_serialization(self):
        for loss in (RatingCrossentropy(), MaskedTagCrossentropy(), BPRLoss(use_negative_ratings=False)):
            revived = keras.losses.deserialize(keras.losses.serialize(loss))
            self.assertEqual(type(revived), type(loss))
        self.assertFalse(keras.losses.deserialize(keras.losses.serialize(BPRLoss(False))).use_negative_ratings)


class BPRLossTest(TestCase):
    def test_bpr_by_hand(self):
        s = np.array([1.0, 0.0, 1.0, 0.0])
        d = np.array([2.0, 2.0, -1.0, -0.5])

        def ln_sigmoid(x):
            return math.log(1.0 / (1.0 + math.exp(-x)))

        expected = [-ln_sigmoid(2.0), -ln_sigmoid(-2.0), -ln_sigmoid(-1.0), -ln_sigmoid(0.5)]
        np.testing.assert_allclose(np.asarray(bpr_loss(s, d)), expected, rtol=1e-5)
        # Classic BPR: positive feedback only.
        np.testing.assert_allclose(
            np.asarray(bpr_loss(s, d, use_negative_ratings=False)), [expected[0], 0, expected[2], 0], rtol=1e-5
        )
        self.assertAllClose(float(BPRLoss()(s, d)), np.mean(expected), atol=1e-6)
