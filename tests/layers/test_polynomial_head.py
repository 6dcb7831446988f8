"""PolynomialBinHead (MRACNN `head_degree`) against a NumPy reference."""

import keras
import numpy as np
import pytest

from tests.test_case import TestCase
from tfaesthetic.layers.polynomial_head import PolynomialBinHead, bin_basis

X = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")


def numpy_head(x, kernel, bias, num_bins):
    """logit_k = b_k + Σ_p (x · w_p) z_k^p, z_k = 2k / (N − 1) − 1, written out element by element."""
    n, degree = num_bins, kernel.shape[1]
    out = np.zeros((len(x), n))
    for i, row in enumerate(x):
        for k in range(n):
            z = 2.0 * k / (n - 1) - 1.0
            out[i, k] = bias[k] + sum(float(row @ kernel[:, p - 1]) * z**p for p in range(1, degree + 1))
    return out


class PolynomialBinHeadTest(TestCase):
    def test_layer_basics(self):
        self.run_layer_test(
            PolynomialBinHead, {"num_bins": 10, "degree": 2}, X, expected_output_shape=(4, 10),
            expected_num_trainable_weights=2,
        )

    def test_matches_numpy_reference(self):
        rng = np.random.default_rng(1)
        for num_bins, degree in ((10, 2), (7, 1), (10, 3)):
            layer = PolynomialBinHead(num_bins, degree=degree)
            layer.build(X.shape)
            kernel, bias = rng.normal(size=(5, degree)), rng.normal(size=num_bins)
            layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
            self.assertAllClose(layer(X), numpy_head(X, kernel, bias, num_bins), atol=1e-5)
        self.assertAllClose(bin_basis(3, 2), [[-1, 0, 1], [1, 0, 1]])

    def test_degree_two_is_a_discretised_gaussian(self):
        # b = 0, coefficients (a, c) = (μ/σ², −1/(2σ²)): softmax ∝ exp(−(z − μ)² / (2σ²)).
        layer = PolynomialBinHead(10, degree=2)
        layer.build((None, 2))
        mu, sigma2 = 0.2, 0.1
        layer.set_weights([np.array([[mu / sigma2, -0.5 / sigma2], [0, 0]], "float32"), np.zeros(10, "float32")])
        probs = keras.ops.convert_to_numpy(keras.ops.softmax(layer(np.array([[1.0, 0.0]], "float32"))))[0]
        z = np.linspace(-1, 1, 10)
        gauss = np.exp(-((z - mu) ** 2) / (2 * sigma2))
        self.assertAllClose(probs, gauss / gauss.sum(), atol=1e-5)

    def test_keras_round_trip(self):
        inputs = keras.Input((5,))
        model = keras.Model(inputs, PolynomialBinHead(10, degree=3)(inputs))
        restored = self.run_model_saving_test(model, X)
        self.assertEqual(restored.layers[-1].get_config()["degree"], 3)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="Received: num_bins=1"):
            PolynomialBinHead(1)
        with pytest.raises(ValueError, match="Received: degree=0"):
            PolynomialBinHead(10, degree=0)
