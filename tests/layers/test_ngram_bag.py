"""NGramBag (the bag-of-n-grams branch of MRACNN's language stream) against a NumPy reference."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import TestCase
from tfaesthetic.layers.ngram_bag import HASH_PRIME, MAX_SUBWORDS, NGramBag, subword_ids
from tfaesthetic.layers.text_cnn import TextCNN

TOKENS = np.array(
    [
        [5, 9, 3, 12, 7, 0, 0, 0],
        [4, 0, 0, 0, 0, 0, 0, 0],  # one word, no pair
        [0, 0, 0, 0, 0, 0, 0, 0],  # no comment
        [3, 4, 5, 6, 7, 8, 9, 1],  # full, ends with OOV
    ],
    dtype="int32",
)


def numpy_bag(tokens, unigrams, bigrams, num_buckets, pooling="mean"):
    """y = Σ U[t_i] / z(n) + Σ B[(t_i·P + t_{i+1}) mod buckets] / z(n-1), z = max(m, 1) or its sqrt."""
    z = (lambda m: max(m, 1)) if pooling == "mean" else (lambda m: np.sqrt(max(m, 1)))
    out = []
    for row in tokens:
        ids = [int(t) for t in row if t != 0]
        y = np.sum([unigrams[t] for t in ids], axis=0) / z(len(ids)) if ids else np.zeros(unigrams.shape[1])
        if bigrams is not None and len(ids) > 1:
            pairs = [bigrams[(a * HASH_PRIME + b) % num_buckets] for a, b in zip(ids[:-1], ids[1:])]
            y = y + np.sum(pairs, axis=0) / z(len(pairs))
        out.append(y)
    return np.array(out)


#: Words of ids 2..15 (a vocabulary of 16 with padding and OOV).
WORDS = ["nice", "nicely", "colour", "colours", "colourful", "the", "sharp", "sharpness", "a", "light",
         "lighting", "blur", "blurry", "supercalifragilisticexpialidocious-and-then-some"]


def numpy_subwords(tokens, words, vectors, num_buckets, pooling="mean", subword_pooling="mean"):
    """c = Σ_i (Σ_{g in G(t_i)} C[g] / w(|G(t_i)|)) / z(n), G(t) the hashed character 2-5-grams of <word>,
    w(m) = m ("mean") or sqrt(m) ("sqrt")."""
    z = (lambda m: max(m, 1)) if pooling == "mean" else (lambda m: np.sqrt(max(m, 1)))
    out = []
    for row in tokens:
        ids = [int(t) for t in row if t != 0]
        per_word = []
        for t in ids:
            grams = subword_ids(words[t - 2], num_buckets) if t >= 2 else []
            w = len(grams) if subword_pooling == "mean" else np.sqrt(len(grams))
            per_word.append(np.sum([vectors[g] for g in grams], axis=0) / w if grams else np.zeros(vectors.shape[1]))
        out.append(np.sum(per_word, axis=0) / z(len(ids)) if ids else np.zeros(vectors.shape[1]))
    return np.array(out)


class NGramBagTest(TestCase):
    def _randomised(self, **kwargs):
        layer = NGramBag(vocab_size=16, units=3, **kwargs)
        layer.build((None, None))
        rng = np.random.default_rng(0)
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
        return layer

    def test_layer_basics(self):
        self.run_layer_test(NGramBag, {"vocab_size": 16, "units": 4, "num_buckets": 11}, TOKENS, expected_output_shape=(4, 4))

    def test_matches_numpy_reference(self):
        for pooling in ("mean", "sqrt"):
            for buckets in (0, 7):
                layer = self._randomised(num_buckets=buckets, pooling=pooling)
                weights = [np.asarray(w, "float64") for w in layer.get_weights()]
                expected = numpy_bag(TOKENS, weights[0], weights[1] if buckets else None, buckets, pooling)
                self.assertAllClose(layer(TOKENS), expected, atol=1e-5)
        scaled = self._randomised(num_buckets=7, scale=2.5)
        weights = [np.asarray(w, "float64") for w in scaled.get_weights()]
        self.assertAllClose(scaled(TOKENS), 2.5 * numpy_bag(TOKENS, weights[0], weights[1], 7), atol=1e-5)

    def test_subwords_match_numpy_reference(self):
        grams = subword_ids("ab", 1000)
        self.assertLen(grams, 3 + 2 + 1)  # "<a","ab","b>", "<ab","ab>", "<ab>": 2- to 5-grams of "<ab>"
        self.assertLen(subword_ids(WORDS[-1], 1000), MAX_SUBWORDS)  # a long word keeps its first ones
        for pooling, subword_pooling in (("mean", "mean"), ("sqrt", "mean"), ("sqrt", "sqrt"), ("mean", "sqrt")):
            layer = NGramBag(
                vocab_size=16, units=3, num_buckets=7, subword_buckets=50, pooling=pooling,
                subword_pooling=subword_pooling,
            )
            layer.set_subwords(WORDS)
            rng = np.random.default_rng(2)
            for w in layer.trainable_weights:
                w.assign(rng.normal(size=w.shape).astype("float32"))
            u, b, c = (np.asarray(w, "float64") for w in layer.trainable_weights)
            expected = numpy_bag(TOKENS, u, b, 7, pooling)
            expected = expected + numpy_subwords(TOKENS, WORDS, c, 50, pooling, subword_pooling)
            self.assertAllClose(layer(TOKENS), expected, atol=1e-5)
        # Shared stems share n-grams (what the option is for).
        self.assertTrue(set(subword_ids("colour", 1000)) & set(subword_ids("colourful", 1000)))

    def test_subwords_get_gradients_and_survive_saving(self):
        layer = NGramBag(vocab_size=16, units=3, subword_buckets=50, l2=1e-3)
        layer.set_subwords(WORDS)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(TOKENS, training=True) - 1.0)) + tf.add_n(layer.losses)
        grads = tape.gradient(loss, layer.trainable_weights)
        self.assertEqual([w.name for w in layer.trainable_weights], ["unigrams", "subword_vectors"])
        for weight, grad in zip(layer.trainable_weights, grads):
            self.assertGreater(float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(grad)))), 0.0, weight.name)
        self.assertLen(layer.non_trainable_weights, 1)  # the frozen word -> n-gram table
        inputs = keras.Input((None,), dtype="int32")
        model = keras.Model(inputs, layer(inputs))
        restored = self.run_model_saving_test(model, TOKENS)
        np.testing.assert_array_equal(restored.layers[-1].subwords, layer.subwords)
        with pytest.raises(ValueError, match="Received: 3 words"):
            layer.set_subwords(WORDS[:3])
        with pytest.raises(ValueError, match="has no subwords"):
            NGramBag(vocab_size=16).set_subwords(WORDS)
        with pytest.raises(ValueError, match="subword_max_n=2"):
            NGramBag(vocab_size=16, subword_buckets=5, subword_min_n=3, subword_max_n=2)

    def test_padding_invariance_and_empty_row(self):
        layer = self._randomised(num_buckets=7)
        padded = np.pad(TOKENS, [[0, 0], [0, 5]])
        self.assertAllClose(layer(TOKENS), layer(padded), atol=1e-6)
        self.assertAllClose(layer(TOKENS)[2], np.zeros(3))

    def test_every_weight_gets_a_gradient(self):
        layer = NGramBag(vocab_size=16, units=3, num_buckets=7, l2=1e-3)
        layer.build((None, None))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(TOKENS, training=True) - 1.0)) + tf.add_n(layer.losses)
        grads = tape.gradient(loss, layer.trainable_weights)
        self.assertLen(layer.trainable_weights, 2)
        for weight, grad in zip(layer.trainable_weights, grads):
            self.assertGreater(float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(grad)))), 0.0, weight.name)
        self.assertLen(layer.losses, 2)  # the L2 penalty of both tables

    def test_keras_round_trip(self):
        inputs = keras.Input((None,), dtype="int32")
        model = keras.Model(inputs, NGramBag(vocab_size=16, units=3, num_buckets=7, dropout=0.2)(inputs))
        restored = self.run_model_saving_test(model, TOKENS)
        self.assertEqual(restored.layers[-1].get_config()["num_buckets"], 7)
        self.assertEqual(restored.layers[-1].get_config()["scale"], 1.0)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="Received: vocab_size=1"):
            NGramBag(vocab_size=1)
        with pytest.raises(ValueError, match="Received: pooling='max'"):
            NGramBag(vocab_size=4, pooling="max")
        with pytest.raises(ValueError, match="Received: num_buckets=-1"):
            NGramBag(vocab_size=4, num_buckets=-1)
        with pytest.raises(ValueError, match="Received: scale=0"):
            NGramBag(vocab_size=4, scale=0)
        with pytest.raises(ValueError, match="Received: subword_pooling='max'"):
            NGramBag(vocab_size=4, subword_pooling="max")


class TextCNNVectorPoolingTest(TestCase):
    def test_vector_pooling_matches_numpy(self):
        layer = TextCNN(vocab_size=16, embedding_dim=4, num_filters=2, kernel_sizes=(1,),
                        vector_pooling=("mean", "max", "min"), empty_text="zeros", dropout=0.0)
        layer.build((None, None))
        rng = np.random.default_rng(1)
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
        out = np.asarray(layer(TOKENS))
        self.assertEqual(out.shape, (4, 2 + 3 * 4))
        table = layer.embedding.embeddings.numpy()
        for row, ids in zip(out, TOKENS):
            vectors = table[[t for t in ids if t != 0]] if np.any(ids) else np.zeros((1, 4))
            expected = np.concatenate([vectors.mean(0), vectors.max(0), vectors.min(0)])
            self.assertAllClose(row[2:], expected, atol=1e-5)

    def test_layer_basics_and_round_trip(self):
        self.run_layer_test(TextCNN, {"vocab_size": 16, "embedding_dim": 4, "num_filters": 2, "vector_pooling": ["mean"]},
                            TOKENS, expected_output_shape=(4, 3 * 2 + 4))
        with pytest.raises(ValueError, match="Received: vector_pooling=\\('sum',\\)"):
            TextCNN(vocab_size=16, vector_pooling=("sum",))
