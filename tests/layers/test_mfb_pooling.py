"""MFBPooling (seed 003 §III-C, Eq. 12-14) against NumPy references written from the paper."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import TestCase
from tfaesthetic.layers.mfb_pooling import MFBPooling


def numpy_mfb_eq13(x, y, u_hat, v_hat, k, o):
    """Eq. 13 per output j: s_j = Σ_{d=1..k} xᵀ u_d v_dᵀ y, with U_j, V_j the j-th k columns of Û, V̂."""
    s = np.zeros((x.shape[0], o))
    for b in range(x.shape[0]):
        for j in range(o):
            for d in range(k):
                u_d, v_d = u_hat[:, j * k + d], v_hat[:, j * k + d]
                s[b, j] += (x[b] @ u_d) * (v_d @ y[b])
    return s


def numpy_mfb_eq12(x, y, u_hat, v_hat, k, o):
    """Eq. 12 with the low-rank Z_j = U_j V_jᵀ: s_j = xᵀ Z_j y."""
    s = np.zeros((x.shape[0], o))
    for j in range(o):
        z_j = u_hat[:, j * k : (j + 1) * k] @ v_hat[:, j * k : (j + 1) * k].T  # [m, n]
        s[:, j] = np.einsum("bm,mn,bn->b", x, z_j, y)
    return s


def numpy_mfb_eq14(x, y, u_hat, v_hat, k, o):
    """Eq. 14 SumPool(Ûᵀx ∘ V̂ᵀy, k), then signed square root and L2 normalisation (Fig. 5)."""
    joint = (x @ u_hat) * (y @ v_hat)
    s = joint.reshape(-1, o, k).sum(axis=-1)
    s = np.sign(s) * np.sqrt(np.abs(s))
    return s / np.linalg.norm(s, axis=-1, keepdims=True), joint.reshape(-1, o, k).sum(axis=-1)


class MFBPoolingTest(TestCase):
    def _inputs(self, batch=4, m=7, n=5):
        rng = np.random.default_rng(0)
        return rng.normal(size=(batch, m)).astype("float32"), rng.normal(size=(batch, n)).astype("float32")

    def test_layer_basics(self):
        self.run_layer_test(
            MFBPooling,
            {"output_dim": 3, "factor_k": 2},
            list(self._inputs()),
            expected_output_shape=(4, 3),
            expected_num_trainable_weights=2,  # U, V (Eq. 12)
            expected_num_non_trainable_weights=0,
        )

    def test_layer_basics_with_bias(self):
        self.run_layer_test(
            MFBPooling,
            {"output_dim": 4, "factor_k": 3, "use_bias": True, "dropout": 0.0},
            list(self._inputs(batch=2)),
            expected_output_shape=(2, 4),
            expected_num_trainable_weights=4,  # U, V and their biases
            expected_num_non_trainable_weights=0,
        )

    def test_eq13_14_matches_numpy(self):
        x, y = self._inputs()
        k, o = 3, 4
        layer = MFBPooling(output_dim=o, factor_k=k, dropout=0.5)
        actual = np.asarray(layer(x, y, training=False))  # dropout off
        u_hat = np.asarray(layer.u_kernel.numpy(), "float64")
        v_hat = np.asarray(layer.v_kernel.numpy(), "float64")
        x64, y64 = x.astype("float64"), y.astype("float64")
        expected, pooled = numpy_mfb_eq14(x64, y64, u_hat, v_hat, k, o)
        np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-4)
        # Eq. 13 (sum of rank-one bilinear terms) and Eq. 12 (xᵀ Z_j y) equal the sum pooling of Eq. 14.
        np.testing.assert_allclose(numpy_mfb_eq13(x64, y64, u_hat, v_hat, k, o), pooled, atol=1e-9)
        np.testing.assert_allclose(numpy_mfb_eq12(x64, y64, u_hat, v_hat, k, o), pooled, atol=1e-9)
        np.testing.assert_allclose(np.linalg.norm(actual, axis=-1), np.ones(4), atol=1e-5)

    def test_eq14_is_bilinear_before_normalisation(self):
        """Scaling x by c scales the pooled vector by c; after the signed sqrt + L2 norm only sign(c) remains."""
        x, y = self._inputs()
        layer = MFBPooling(output_dim=5, factor_k=2)
        self.assertAllClose(layer(x, y), layer(3.0 * x, y), atol=1e-5)
        self.assertAllClose(layer(-x, y), -np.asarray(layer(x, y)), atol=1e-5)

    def test_dropout_only_in_training(self):
        x, y = self._inputs()
        layer = MFBPooling(output_dim=8, factor_k=4, dropout=0.5)
        self.assertAllClose(layer(x, y), layer(x, y, training=False))
        self.assertGreater(np.abs(np.asarray(layer(x, y, training=True)) - np.asarray(layer(x, y))).max(), 1e-3)

    def test_zero_input_is_finite(self):
        x, y = self._inputs(batch=2)
        x[0] = 0.0
        layer = MFBPooling(output_dim=3, factor_k=2)
        xt, yt = tf.constant(x), tf.constant(y)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = layer(xt, yt)
            loss = tf.reduce_sum(out * tf.constant([[1.0, 2.0, 3.0]]))
        grads = tape.gradient(loss, [xt] + layer.trainable_weights)
        np.testing.assert_array_equal(np.asarray(out)[0], np.zeros(3))
        for g in grads:
            self.assertTrue(np.all(np.isfinite(np.asarray(g))))

    def test_zero_input_is_finite_under_mixed_precision(self):
        """epsilon = 1e-12 is 0 in float16: the normalisation runs in float32, so 0 gives 0, not 0/0."""
        x, y = self._inputs(batch=3)
        y[1] = 0.0  # e.g. an all-padding comment through a Text-CNN without a "no comment" vector
        previous = keras.config.dtype_policy()
        keras.mixed_precision.set_dtype_policy("mixed_float16")
        try:
            layer = MFBPooling(output_dim=4, factor_k=3)
            xt, yt = tf.constant(x), tf.constant(y)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                out = layer(xt, yt)
                loss = tf.reduce_sum(tf.cast(out, "float32") * tf.constant([[1.0, 2.0, 3.0, 4.0]]))
            grads = tape.gradient(loss, [xt] + layer.trainable_weights)
        finally:
            keras.mixed_precision.set_dtype_policy(previous)
        self.assertEqual(out.dtype, "float16")
        out = np.asarray(out, "float32")
        self.assertTrue(np.all(np.isfinite(out)))
        np.testing.assert_array_equal(out[1], np.zeros(4))
        np.testing.assert_allclose(np.linalg.norm(out[[0, 2]], axis=-1), [1.0, 1.0], atol=2e-3)
        for g in grads:
            self.assertTrue(np.all(np.isfinite(np.asarray(g, "float32"))))
        # Same values as in float32, up to float16 rounding.
        reference = MFBPooling(output_dim=4, factor_k=3)
        reference.build(x.shape, y.shape)
        reference.set_weights(layer.get_weights())
        np.testing.assert_allclose(out, np.asarray(reference(x, y)), atol=5e-3)

    def test_keras_saving_two_inputs(self):
        x, y = self._inputs()
        xi, yi = keras.Input((7,)), keras.Input((5,))
        model = keras.Model([xi, yi], MFBPooling(output_dim=3, factor_k=2)(xi, yi))
        self.run_model_saving_test(model, [x, y])

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="factor_k=0"):
            MFBPooling(factor_k=0)
        with pytest.raises(ValueError, match=r"x.shape=\(2, 3, 4\)"):
            MFBPooling(output_dim=2, factor_k=2)(np.zeros((2, 3, 4), "float32"), np.zeros((2, 3), "float32"))
