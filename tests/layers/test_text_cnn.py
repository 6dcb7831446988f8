"""TextCNN (seed 003 §III-B, Eq. 11 + max-over-time pooling) against a NumPy reference."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import TestCase
from tfaesthetic.layers.text_cnn import TextCNN


def numpy_text_cnn(tokens, embeddings, kernels, biases, kernel_sizes, empty=None):
    """Eq. 11, y_i = ReLU(w · d_{i:i+h-1} + b), then the max over valid windows.

    Valid windows start at a real token: i <= max(n - h, 0) with n the position after the last
    non-padding token; positions past the comment are zero vectors. All-padding rows give
    `empty` (the learned "no comment" vector), or 0 when it is None.
    """
    batch, max_len = tokens.shape
    out = []
    for b in range(batch):
        ids = tokens[b]
        real = np.nonzero(ids)[0]
        n = real[-1] + 1 if len(real) else 0
        rows = []
        for h, w, bias in zip(kernel_sizes, kernels, biases):  # w: [h, dim, filters]
            pooled = np.zeros(w.shape[-1])
            if n > 0:
                responses = []
                for i in range(0, max(n - h, 0) + 1):
                    window = np.zeros((h, embeddings.shape[1]))
                    for j in range(h):
                        if i + j < max_len and ids[i + j] != 0:
                            window[j] = embeddings[ids[i + j]]
                    responses.append(np.maximum(np.einsum("hd,hdf->f", window, w) + bias, 0.0))
                pooled = np.max(responses, axis=0)
            rows.append(pooled)
        out.append(np.concatenate(rows) if n > 0 or empty is None else np.asarray(empty, "float64"))
    return np.array(out)


def _weights(layer):
    embeddings = np.asarray(layer.embedding.embeddings.numpy(), "float64")
    kernels = [np.asarray(c.kernel.numpy(), "float64") for c in layer.convs]
    biases = [np.asarray(c.bias.numpy(), "float64") for c in layer.convs]
    return embeddings, kernels, biases


class TextCNNTest(TestCase):
    def _tokens(self):
        return np.array(
            [
                [5, 9, 3, 12, 7, 2, 8, 0, 0, 0, 0, 0],  # 7 tokens
                [4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # shorter than every kernel
                [6, 1, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # 3 tokens, with OOV id 1
                [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # no comment
                [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],  # full, no padding
            ],
            dtype="int32",
        )

    def test_layer_basics(self):
        self.run_layer_test(
            TextCNN,
            {"vocab_size": 20, "embedding_dim": 6, "num_filters": 3},
            self._tokens(),
            expected_output_shape=(5, 9),
            # "no comment" vector, embeddings, kernel + bias per filter height 3/4/5
            expected_num_trainable_weights=8,
            expected_num_non_trainable_weights=0,
        )

    def _randomised(self, **kwargs):
        layer = TextCNN(vocab_size=20, embedding_dim=4, num_filters=3, **kwargs)
        layer.build((None, None))
        rng = np.random.default_rng(3)
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
        return layer

    def test_eq11_max_pooling_matches_numpy(self):
        layer = self._randomised()
        tokens = self._tokens()
        actual = np.asarray(layer(tokens, training=False))
        empty = layer.empty_embedding.numpy()
        expected = numpy_text_cnn(tokens, *_weights(layer), layer.kernel_sizes, empty=empty)
        np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-4)
        # The references exercise every branch: full windows, a 1-token comment, an empty row.
        np.testing.assert_array_equal(actual[3], empty)
        self.assertGreater(np.abs(actual[1]).sum(), 0.0)

    def test_eq11_empty_text_zeros_matches_numpy(self):
        layer = self._randomised(empty_text="zeros")
        tokens = self._tokens()
        actual = np.asarray(layer(tokens, training=False))
        expected = numpy_text_cnn(tokens, *_weights(layer), layer.kernel_sizes)
        np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=1e-4)
        self.assertTrue(np.all(actual[3] == 0.0))
        self.assertEqual(len(layer.weights), 7)  # no "no comment" vector

    def test_eq11_other_kernel_sizes_matches_numpy(self):
        layer = self._randomised(kernel_sizes=(1, 2, 7))
        tokens = self._tokens()
        expected = numpy_text_cnn(tokens, *_weights(layer), layer.kernel_sizes, empty=layer.empty_embedding.numpy())
        np.testing.assert_allclose(np.asarray(layer(tokens)), expected, atol=1e-5, rtol=1e-4)

    def test_padding_invariance(self):
        layer = self._randomised()
        tokens = self._tokens()
        reference = np.asarray(layer(tokens))
        for extra in (1, 5, 40):
            padded = np.pad(tokens, [[0, 0], [0, extra]])
            np.testing.assert_allclose(np.asarray(layer(padded)), reference, atol=1e-6)
        # Sequences shorter than the largest kernel (max_len 2 < 5) work and agree too.
        short = np.array([[4, 0], [6, 1]], dtype="int32")
        np.testing.assert_allclose(
            np.asarray(layer(short)), np.asarray(layer(np.pad(short, [[0, 0], [0, 10]]))), atol=1e-6
        )

    def test_padding_never_wins_the_max(self):
        """Weights under which a window of padding would score highest: the output ignores it."""
        layer = TextCNN(vocab_size=10, embedding_dim=2, num_filters=1, kernel_sizes=(2,), empty_text="zeros")
        layer.build((None, None))
        layer.set_weights(
            [
                np.ones((10, 2), "float32"),  # every embedding, padding included, is [1, 1]
                -np.ones((2, 2, 1), "float32"),  # a full real window scores -4 + bias
                np.array([1.0], "float32"),  # a window of zero vectors would score ReLU(1) = 1
            ]
        )
        out = np.asarray(layer(np.array([[3, 4, 5, 0, 0, 0]], "int32")))
        np.testing.assert_allclose(out, [[0.0]])

    def test_dropout_only_in_training(self):
        layer = TextCNN(vocab_size=20, embedding_dim=4, num_filters=50, dropout=0.3)
        tokens = self._tokens()
        self.assertAllClose(layer(tokens, training=False), layer(tokens, training=False))
        dropped = np.asarray(layer(tokens, training=True))
        kept = np.asarray(layer(tokens, training=False))
        self.assertTrue(np.any((dropped == 0) & (kept != 0)))

    def test_set_embeddings_freezes_and_saves(self):
        matrix = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
        matrix[0] = 0.0
        layer = TextCNN(vocab_size=20, embedding_dim=4, num_filters=2, kernel_sizes=(2, 3))
        layer.set_embeddings(matrix)
        np.testing.assert_array_equal(layer.embedding.embeddings.numpy(), matrix)
        self.assertFalse(layer.get_config()["trainable_embeddings"])
        self.assertNotIn(layer.embedding.embeddings.path, [w.path for w in layer.trainable_weights])
        # Training leaves frozen vectors unchanged.
        inputs = keras.Input((12,), dtype="int32")
        model = keras.Model(inputs, layer(inputs))
        model.compile(optimizer="sgd", loss="mse")
        model.fit(self._tokens(), np.ones((5, 4), "float32"), epochs=2, verbose=0)
        np.testing.assert_array_equal(layer.embedding.embeddings.numpy(), matrix)
        restored = self.run_model_saving_test(model, self._tokens())
        restored_layer = restored.layers[-1]
        self.assertFalse(restored_layer.embedding.trainable)
        np.testing.assert_array_equal(restored_layer.embedding.embeddings.numpy(), matrix)

    def test_unfreezing_the_model_keeps_word_vectors_frozen(self):
        layer = TextCNN(vocab_size=np.int64(20), embedding_dim=4, num_filters=2)
        layer.set_embeddings(np.zeros((20, 4)))
        inputs = keras.Input((12,), dtype="int32")
        model = keras.Model(inputs, layer(inputs))
        model.trainable = False
        self.assertEqual(model.trainable_weights, [])
        model.trainable = True
        trainable = [w.path for w in model.trainable_weights]
        self.assertEqual(len(trainable), 7)  # the three convolutions' kernels and biases, the empty vector
        self.assertIn(layer.empty_embedding.path, trainable)
        self.assertNotIn(layer.embedding.embeddings.path, trainable)

    def test_set_embeddings_trainable(self):
        layer = TextCNN(vocab_size=20, embedding_dim=4, num_filters=2)
        layer.set_embeddings(np.zeros((20, 4)), trainable=True)
        self.assertIn(layer.embedding.embeddings.path, [w.path for w in layer.trainable_weights])

    def test_saved_model_any_length_and_jit(self):
        inputs = keras.Input((None,), dtype="int32")
        model = keras.Model(inputs, TextCNN(vocab_size=20, embedding_dim=4, num_filters=3)(inputs))
        path = os.path.join(self.get_temp_dir(), "export")
        model.export(path, verbose=False)
        reloaded = tf.saved_model.load(path)
        for length in (2, 12, 30):
            tokens = np.random.default_rng(length).integers(0, 20, size=(3, length)).astype("int32")
            expected = model.predict(tokens, verbose=0)
            self.assertAllClose(reloaded.serve(tf.constant(tokens)), expected, atol=1e-5)
        model.compile(jit_compile=True)
        self.assertAllClose(model.predict(self._tokens(), verbose=0), model(self._tokens()), atol=1e-5)

    def test_empty_row_outputs_the_learned_vector(self):
        """An all-padding row gives the "no comment" vector: small, non-zero at init, trained, saved."""
        layer = TextCNN(vocab_size=20, embedding_dim=4, num_filters=3, dropout=0.0)
        tokens = self._tokens()
        out = np.asarray(layer(tokens))
        empty = layer.empty_embedding.numpy()
        self.assertEqual(empty.shape, (9,))
        self.assertTrue(np.all(empty != 0.0) and np.all(np.abs(empty) <= 0.1))
        np.testing.assert_array_equal(out[3], empty)
        self.assertFalse(np.allclose(out[[0, 1, 2, 4]], empty))  # only the empty row
        # Its gradient comes from the empty rows only.
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(tokens) * tf.range(9, dtype="float32"))
        grad = np.asarray(tape.gradient(loss, layer.empty_embedding))
        np.testing.assert_allclose(grad, np.arange(9))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(tokens[[0, 1, 2, 4]]))
        np.testing.assert_array_equal(np.asarray(tape.gradient(loss, layer.empty_embedding)), np.zeros(9))
        inputs = keras.Input((12,), dtype="int32")
        model = keras.Model(inputs, layer(inputs))
        layer.empty_embedding.assign(np.linspace(-1, 1, 9))
        restored = self.run_model_saving_test(model, tokens)
        np.testing.assert_allclose(restored.layers[-1].empty_embedding.numpy(), np.linspace(-1, 1, 9), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(restored(tokens))[3], np.linspace(-1, 1, 9), rtol=1e-6)

    def test_comment_dropout_only_in_training(self):
        layer = TextCNN(vocab_size=20, embedding_dim=4, num_filters=3, dropout=0.0, comment_dropout=0.5, seed=1)
        rng = np.random.default_rng(0)
        tokens = rng.integers(2, 20, size=(400, 12)).astype("int32")  # every row has a comment
        empty_rows = lambda out: np.all(np.asarray(out) == layer.empty_embedding.numpy(), axis=-1)
        self.assertFalse(empty_rows(layer(tokens, training=False)).any())
        trained = np.asarray(layer(tokens, training=True))
        dropped = empty_rows(trained)
        self.assertTrue(0.4 < dropped.mean() < 0.6, dropped.mean())  # 400 draws: sd 0.025
        # The other rows are the inference rows; a new call draws other rows.
        np.testing.assert_allclose(trained[~dropped], np.asarray(layer(tokens, training=False))[~dropped], atol=1e-6)
        self.assertFalse(np.array_equal(dropped, empty_rows(layer(tokens, training=True))))
        config = layer.get_config()
        self.assertEqual((config["empty_text"], config["comment_dropout"], config["seed"]), ("learned", 0.5, 1))

    def test_empty_row_finite_under_mixed_precision(self):
        previous = keras.config.dtype_policy()
        keras.mixed_precision.set_dtype_policy("mixed_float16")
        try:
            for empty_text in ("learned", "zeros"):
                layer = TextCNN(vocab_size=20, embedding_dim=4, num_filters=3, empty_text=empty_text)
                out = np.asarray(layer(self._tokens()))
                self.assertEqual(layer.compute_dtype, "float16")
                self.assertTrue(np.all(np.isfinite(out)))
                self.assertEqual(np.any(out[3] != 0), empty_text == "learned")
        finally:
            keras.mixed_precision.set_dtype_policy(previous)

    def test_bad_arguments(self):
        layer = TextCNN(vocab_size=20, embedding_dim=4)
        with pytest.raises(ValueError, match=r"matrix.shape=\(19, 4\)"):
            layer.set_embeddings(np.zeros((19, 4)))
        with pytest.raises(ValueError, match="vocab_size=1"):
            TextCNN(vocab_size=1)
        with pytest.raises(ValueError, match="dropout=1.5"):
            TextCNN(vocab_size=5, dropout=1.5)
        with pytest.raises(ValueError, match="empty_text='none'"):
            TextCNN(vocab_size=5, empty_text="none")
        with pytest.raises(ValueError, match="comment_dropout=1.0"):
            TextCNN(vocab_size=5, comment_dropout=1.0)
        with pytest.raises(ValueError, match="empty_text='zeros'"):
            TextCNN(vocab_size=5, comment_dropout=0.2, empty_text="zeros")
