"""ConvAttentionKernel (seed 000, Eq. 5) against a NumPy loop written from the paper."""

import keras
import numpy as np
import pytest

from tests.test_case import TestCase
from tfaesthetic.layers.conv_attention_kernel import ConvAttentionKernel


def numpy_conv_attention(feature_map, encoding, w_k, b_k, kernel_size, scale=1.0):
    """Loop reference: K = sigmoid(W_k h + b_k); e = K * f_v ('same', stride 1) * scale; softmax (Eq. 5)."""
    batch, height, width, channels = feature_map.shape
    pad = kernel_size // 2
    attention = np.zeros((batch, height, width))
    attended = np.zeros_like(feature_map)
    for b in range(batch):
        kernel = 1.0 / (1.0 + np.exp(-(encoding[b] @ w_k + b_k)))
        kernel = kernel.reshape(kernel_size, kernel_size, channels)
        padded = np.pad(feature_map[b], ((pad, pad), (pad, pad), (0, 0)))
        logits = np.zeros((height, width))
        for i in range(height):
            for j in range(width):
                logits[i, j] = scale * np.sum(padded[i : i + kernel_size, j : j + kernel_size, :] * kernel)
        e = np.exp(logits - logits.max())
        attention[b] = e / e.sum()
        attended[b] = feature_map[b] * attention[b][..., None] * height * width
    return attended, attention


class ConvAttentionKernelTest(TestCase):
    def _inputs(self, batch=3, size=5, channels=4, enc=6):
        rng = np.random.default_rng(0)
        return (
            rng.normal(size=(batch, size, size, channels)).astype("float32"),
            rng.normal(size=(batch, enc)).astype("float32"),
        )

    def test_layer_basics(self):
        feature_map, encoding = self._inputs()
        self.run_layer_test(
            ConvAttentionKernel,
            {"kernel_size": 3},
            [feature_map, encoding],
            expected_output_shape=((3, 5, 5, 4), (3, 5, 5)),
            expected_num_trainable_weights=2,  # W_k, b_k (Eq. 5)
            expected_num_non_trainable_weights=0,
        )

    def test_eq5_matches_numpy_loop(self):
        for kernel_size, scale_logits in ((1, False), (3, False), (3, True)):
            feature_map, encoding = self._inputs()
            layer = ConvAttentionKernel(
                kernel_size=kernel_size, scale_logits=scale_logits, kernel_initializer="random_normal"
            )
            attended, attention = layer(feature_map, encoding)
            w_k, b_k = (np.asarray(v) for v in layer.get_weights())
            scale = 1.0 / np.sqrt(kernel_size * kernel_size * 4) if scale_logits else 1.0
            ref_attended, ref_attention = numpy_conv_attention(feature_map, encoding, w_k, b_k, kernel_size, scale)
            np.testing.assert_allclose(np.asarray(attention), ref_attention, atol=1e-5, rtol=1e-4)
            np.testing.assert_allclose(np.asarray(attended), ref_attended, atol=1e-4, rtol=1e-4)

    def test_eq5_attention_sums_to_one_and_pooling_is_weighted_sum(self):
        feature_map, encoding = self._inputs(batch=4, size=6)
        attended, attention = ConvAttentionKernel(kernel_size=3)(feature_map, encoding)
        attention = np.asarray(attention)
        np.testing.assert_allclose(attention.sum(axis=(1, 2)), np.ones(4), atol=1e-5)
        self.assertTrue(np.all(attention >= 0))
        # Spatial mean of f_uv equals sum_ij a_ij f_ij.
        weighted = np.einsum("bhw,bhwd->bd", attention, feature_map)
        np.testing.assert_allclose(np.asarray(attended).mean(axis=(1, 2)), weighted, atol=1e-4)

    def test_different_encodings_give_different_maps(self):
        feature_map, encoding = self._inputs(batch=2)
        feature_map[1] = feature_map[0]
        layer = ConvAttentionKernel(kernel_size=3, kernel_initializer="random_normal")
        _, attention = layer(feature_map, encoding)
        self.assertGreater(np.abs(np.asarray(attention[0]) - np.asarray(attention[1])).max(), 1e-4)

    def test_serialization(self):
        self.run_serialization_test(ConvAttentionKernel(kernel_size=5, name="att"))

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="kernel_size=2"):
            ConvAttentionKernel(kernel_size=2)
        with pytest.raises(ValueError, match="feature_map.shape"):
            ConvAttentionKernel()(np.zeros((2, 4, 4), "float32"), np.zeros((2, 3), "float32"))

    def test_symbolic_unknown_spatial_size(self):
        layer = ConvAttentionKernel()
        fmap = keras.Input((None, None, 4))
        enc = keras.Input((6,))
        attended, attention = layer(fmap, enc)
        self.assertEqual(tuple(attention.shape), (None, None, None))
        model = keras.Model([fmap, enc], attention)
        out = model.predict([np.ones((2, 3, 7, 4), "float32"), np.ones((2, 6), "float32")], verbose=0)
        self.assertEqual(out.shape, (2, 3, 7))
