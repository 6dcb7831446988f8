"""ReviewEncoder (seed 000, Eq. 3-4): bidirectional GRU over masked reviews."""

import numpy as np

from tests.test_case import TestCase
from tfaesthetic.layers.review_encoder import ReviewEncoder


class ReviewEncoderTest(TestCase):
    def test_layer_basics(self):
        tokens = np.array([[2, 3, 4, 0, 0], [5, 0, 0, 0, 0]], dtype="int32")
        self.run_layer_test(
            ReviewEncoder,
            {"vocab_size": 10, "embedding_dim": 4, "units": 3, "max_len": 5},
            tokens,
            expected_output_shape=(2, 6),
            expected_num_trainable_weights=7,  # embeddings + 3 per GRU direction (Eq. 3-4)
            expected_num_non_trainable_weights=0,
        )

    def test_eq4_padding_is_ignored(self):
        layer = ReviewEncoder(vocab_size=10, embedding_dim=4, units=3, max_len=None)
        short = np.array([[2, 3, 4]], dtype="int32")
        padded = np.array([[2, 3, 4, 0, 0, 0, 0]], dtype="int32")
        np.testing.assert_allclose(np.asarray(layer(short)), np.asarray(layer(padded)), atol=1e-6)

    def test_eq3_forward_and_backward_halves(self):
        layer = ReviewEncoder(vocab_size=10, embedding_dim=4, units=3, max_len=None)
        out = np.asarray(layer(np.array([[2, 3, 4], [4, 3, 2]], dtype="int32")))
        # Forward half of [2,3,4] reads 2,3,4; backward half of [4,3,2] reads 2,3,4 too,
        # through different GRUs -> halves differ; swapping the order changes both halves.
        self.assertGreater(np.abs(out[0, :3] - out[1, :3]).max(), 1e-6)
        self.assertGreater(np.abs(out[0, 3:] - out[1, 3:]).max(), 1e-6)

    def test_empty_review_is_zero(self):
        layer = ReviewEncoder(vocab_size=10, embedding_dim=4, units=3)
        out = np.asarray(layer(np.zeros((2, 6), dtype="int32")))
        self.assertTrue(np.all(np.isfinite(out)))
        np.testing.assert_array_equal(out, np.zeros((2, 6)))

    def test_long_review_truncated_and_bad_ids(self):
        layer = ReviewEncoder(vocab_size=10, embedding_dim=4, units=3, max_len=4)
        long = np.array([[2, 3, 4, 5, 6, 7, 8, 9]], dtype="int32")
        np.testing.assert_allclose(np.asarray(layer(long)), np.asarray(layer(long[:, :4])), atol=1e-6)
        # Ids outside the vocabulary behave as OOV (1).
        bad = np.array([[2, 99, -5, 3]], dtype="int32")
        oov = np.array([[2, 1, 1, 3]], dtype="int32")
        np.testing.assert_allclose(np.asarray(layer(bad)), np.asarray(layer(oov)), atol=1e-6)

    def test_vectors_initialise_and_freeze(self):
        vectors = np.arange(40, dtype="float32").reshape(10, 4)
        layer = ReviewEncoder(vocab_size=10, embedding_dim=4, units=3, freeze_embeddings=True, vectors=vectors)
        layer(np.array([[2, 3]], dtype="int32"))
        np.testing.assert_array_equal(np.asarray(layer.embedding.embeddings), vectors)
        self.assertFalse(layer.embedding.trainable)
        revived = self.run_serialization_test(layer)
        self.assertTrue(revived.freeze_embeddings)

    def test_frozen_vectors_stay_frozen_when_unfreezing(self):
        import keras

        vectors = np.arange(40, dtype="float32").reshape(10, 4)
        layer = ReviewEncoder(vocab_size=10, embedding_dim=4, units=3, freeze_embeddings=True, vectors=vectors)
        inputs = keras.Input(shape=(None,), dtype="int32")
        model = keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))
        model.trainable = False
        model.trainable = True  # e.g. unfreezing a model to fine-tune it
        self.assertTrue(layer.trainable and layer.gru.trainable)
        self.assertFalse(layer.embedding.trainable)
        self.assertNotIn(id(layer.embedding.embeddings), {id(w) for w in model.trainable_weights})
        # The GRU and head do train: one fit step leaves the vectors unchanged.
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse", run_eagerly=True)
        model.fit(np.array([[2, 3, 4]], "int32"), np.ones((1, 1)), epochs=1, verbose=0)
        np.testing.assert_array_equal(np.asarray(layer.embedding.embeddings), vectors)
        # A trainable-embedding encoder is unfrozen as usual.
        free = ReviewEncoder(vocab_size=10, embedding_dim=4, units=3)
        free.trainable = False
        free.trainable = True
        self.assertTrue(free.embedding.trainable)
