"""The models' internal layers through the shared `run_layer_test`, each with a NumPy reference.

CFAN (`models/cfan.py`): `OOVIndex`, `TasteProfile`, `UnknownUserFallback`; BPR/VBPR
(`models/bpr.py`): `InBatchNegatives`. Only `TasteProfile` has weights (the profile
table); the other three have none, which the expected weight counts say.
"""

import numpy as np
import pytest
from keras import ops

from tests.test_case import TestCase
from tfaesthetic.models.bpr import InBatchNegatives
from tfaesthetic.models.cfan import OOVIndex, TasteProfile, UnknownUserFallback

# The fit step of `run_layer_test` on a layer without weights trains nothing; Keras says so.
pytestmark = pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")


def _as_float(out):
    return ops.cast(out, "float32")


class ModelLayersTest(TestCase):
    def test_oov_index(self):
        indices = np.array([0, 2, 3, 7, -1, 1], "int32")
        _, out = self.run_layer_test(
            OOVIndex,
            dict(size=3, rate=0.0, seed=1),
            indices,
            expected_output_shape=(6,),
            fit_target_fn=_as_float,  # an int output; the fit step regresses it as float
            expected_num_trainable_weights=0,  # no weights: a pure index mapping
            expected_num_non_trainable_weights=0,
        )
        # Indices outside [0, size) become the OOV index `size`.
        np.testing.assert_array_equal(np.asarray(out), np.where((indices >= 0) & (indices < 3), indices, 3))

    def test_oov_index_dropout_only_in_training(self):
        layer = OOVIndex(size=5, rate=0.5, seed=3)
        indices = np.arange(5, dtype="int32").repeat(40)
        np.testing.assert_array_equal(np.asarray(layer(indices)), indices)
        dropped = np.asarray(layer(indices, training=True))
        self.assertTrue(set(np.unique(dropped)) <= set(range(6)))
        kept = dropped == indices
        self.assertTrue(np.all(dropped[~kept] == 5))
        self.assertBetween(float(np.mean(~kept)), 0.3, 0.7)  # rate 0.5 on 200 indices

    def test_taste_profile(self):
        rng = np.random.default_rng(0)
        user = np.array([0, 1, 2, 1], "int32")
        encoding = rng.normal(size=(4, 3)).astype("float32")
        has_review = np.array([True, False, True, False])
        layer, out = self.run_layer_test(
            TasteProfile,
            dict(num_rows=3, units=3, review_dropout=0.0, weight=1.0, seed=1),
            [user, encoding, has_review],
            expected_output_shape=(4, 3),
            expected_num_trainable_weights=1,  # the [num_rows, units] profile table p_u
            expected_num_non_trainable_weights=0,
        )
        # h = h_uv where the review is present, p_u (zeros at initialisation) where absent.
        np.testing.assert_allclose(np.asarray(out), np.where(has_review[:, None], encoding, 0.0))

    def test_taste_profile_matching_loss_in_training_only(self):
        rng = np.random.default_rng(1)
        user = np.array([0, 1, 1, 2], "int32")
        encoding = rng.normal(size=(4, 2)).astype("float32")
        has_review = np.array([True, True, False, True])
        layer = TasteProfile(num_rows=3, units=2, weight=0.5, seed=0)
        layer(user, encoding, has_review)
        profiles = rng.normal(size=(3, 2)).astype("float32")
        layer.profiles.assign(profiles)
        layer(user, encoding, has_review)
        self.assertEmpty(layer.losses)  # inference: no regulariser
        out = np.asarray(layer(user, encoding, has_review, training=True))
        (loss,) = layer.losses
        # weight * mean over reviewed examples of mean_e (p_u - h_uv)^2.
        gap = ((profiles[user] - encoding) ** 2).mean(-1)
        self.assertAllClose(float(loss), 0.5 * gap[has_review].mean(), rtol=1e-5)
        np.testing.assert_allclose(out, np.where(has_review[:, None], encoding, profiles[user]), rtol=1e-6)

    def test_unknown_user_fallback(self):
        user = np.array([0, 3, -1, 2], "int32")
        user_rating = np.array([0.1, 0.2, 0.3, 0.4], "float32")
        agnostic = np.array([0.9, 0.8, 0.7, 0.6], "float32")
        layer, out = self.run_layer_test(
            UnknownUserFallback,
            dict(num_users=3),
            [user, user_rating, agnostic],
            expected_output_shape=(4,),
            expected_num_trainable_weights=0,  # no weights: a serving rule
            expected_num_non_trainable_weights=0,
        )
        # Inference: users outside [0, num_users) get beta_hat_v; training passes y_hat_uv through.
        np.testing.assert_allclose(np.asarray(out), [0.1, 0.8, 0.7, 0.4])
        np.testing.assert_allclose(np.asarray(layer(user, user_rating, agnostic, training=True)), user_rating)

    def test_in_batch_negatives(self):
        values = np.arange(12, dtype="float32").reshape(6, 2)
        index = np.arange(6, dtype="int32")
        layer, (shifted_values, shifted_index) = self.run_layer_test(
            InBatchNegatives,
            dict(seed=0),
            [values, index],
            call_with_list=True,  # call(tensors): one list of tensors
            expected_output_shape=[(6, 2), (6,)],
            expected_num_trainable_weights=0,  # no weights: a permutation of the batch
            expected_num_non_trainable_weights=0,
        )
        # Inference: a shift by one along the batch; training: one random permutation for all tensors.
        np.testing.assert_array_equal(np.asarray(shifted_values), np.roll(values, -1, axis=0))
        np.testing.assert_array_equal(np.asarray(shifted_index), np.roll(index, -1))
        permuted_values, permuted_index = layer([values, index], training=True)
        np.testing.assert_array_equal(np.asarray(permuted_values), values[np.asarray(permuted_index)])
