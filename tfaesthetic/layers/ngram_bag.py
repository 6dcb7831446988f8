"""A learned bag of n-grams over comment tokens: the linear branch beside the Text-CNN."""

import numbers
import zlib

import keras
import numpy as np
from keras import ops

#: Multiplier of the bigram hash (a prime above any vocabulary size in use).
HASH_PRIME = 1_000_003
POOLINGS = ("mean", "sqrt")
#: Most character n-grams kept per word (longer words keep their first ones).
MAX_SUBWORDS = 64


def subword_ids(word, num_buckets, min_n=2, max_n=5, max_subwords=MAX_SUBWORDS):
    """Hash buckets (1-based; 0 = none) of the character n-grams of `<word>`.

    The n-grams, `min_n <= n <= max_n`, of the word framed by `<` and `>` (so that
    prefixes and suffixes are n-grams of their own, as in fastText), each hashed
    with CRC-32 into `num_buckets` buckets, in order of n then position, at most
    `max_subwords` of them.
    """
    framed = f"<{word}>"
    grams = [framed[i : i + n] for n in range(min_n, max_n + 1) for i in range(len(framed) - n + 1)]
    return [1 + zlib.crc32(g.encode("utf-8")) % num_buckets for g in grams[:max_subwords]]


@keras.saving.register_keras_serializable(package="tfaesthetic")
class NGramBag(keras.layers.Layer):
    """Pooled learned embeddings of the comment's words and hashed word pairs.

    With `t_1 … t_n` the non-padding token ids of a row (padding id 0 is skipped
    wherever it is), the layer returns

        u = Σ_i U[t_i] / z(n),    b = Σ_i B[h(t_i, t_{i+1})] / z(n − 1),    y = scale · (u + b),

    where `U` `[vocab_size, units]` holds one vector per word, `B`
    `[num_buckets, units]` one vector per hash bucket of adjacent pairs (pairs
    where either side is padding are skipped),
    `h(a, b) = (a · HASH_PRIME + b) mod num_buckets` (int64), and `z(m) = max(m, 1)`
    (`pooling="mean"`) or `sqrt(max(m, 1))` (`pooling="sqrt"`). An all-padding row
    gives zeros. Followed by a dense head this is a low-rank linear model over
    word and bigram counts (a TF-IDF-style bag of words, fastText-like), trained
    end to end with the rest of the network; `l2` is an L2 penalty on the tables.

    With `subword_buckets > 0` each word also brings the mean of the learned
    vectors of its character n-grams (fastText's subwords), so that rare words
    that share a stem or an ending ("colour", "colours", "colourful") share
    statistics:

        c = Σ_i (1 / |G(t_i)|) Σ_{g in G(t_i)} C[g] / z(n),    y = scale · (u + b + c),

    with `G(t)` the hashed character n-grams of word `t` (`subword_ids`) and `C`
    `[subword_buckets, units]`. With `subword_pooling="sqrt"` the inner sum is
    divided by `sqrt(|G(t_i)|)` instead of `|G(t_i)|` (the Euclidean norm of the
    word's n-gram counts, as TF-IDF's row normalisation does), so that an n-gram
    vector of a given size weighs about `sqrt(|G|)` (≈ 4) times more than under the
    mean and costs that much less L2 penalty for the same effect. `G` is a frozen
    int table `[vocab_size, MAX_SUBWORDS]` filled from the vocabulary words by
    `set_subwords` (the trainer does) and saved with the model, so serving needs
    nothing new.

    It reads the same token ids as the Text-CNN (the tokeniser of
    `tfaesthetic.text`), so the serving graph needs nothing new; the hash is
    computed in-graph.

    Args:
        vocab_size: rows of the word table (padding id 0 and OOV id 1 included).
        units: vector size of the bag.
        num_buckets: hash buckets of the word pairs; 0 keeps single words only.
        pooling: `"mean"` or `"sqrt"` (sum divided by the square root of the count).
        dropout: dropout rate on the output.
        l2: L2 penalty factor on both tables (0 = none).
        scale: constant factor on the output, `y = scale · (u + b)`: under Adam,
            whose steps do not depend on the gradient's size, it multiplies the
            branch's effective learning rate (and its initial spread).
        subword_buckets: hash buckets of the words' character n-grams (0: none).
        subword_min_n: shortest character n-gram.
        subword_max_n: longest character n-gram.
        subword_pooling: `"mean"` or `"sqrt"`: how a word's n-gram vectors are
            pooled (divided by their count or by its square root).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: int token ids `[B, max_len]`, 0 = padding.
        training: whether dropout is active.

    Returns:
        `[B, units]`.
    """

    def __init__(
        self,
        vocab_size,
        units=16,
        num_buckets=0,
        pooling="mean",
        dropout=0.0,
        l2=0.0,
        scale=1.0,
        subword_buckets=0,
        subword_min_n=2,
        subword_max_n=5,
        subword_pooling="mean",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value, low in (
            ("vocab_size", vocab_size, 2), ("units", units, 1), ("num_buckets", num_buckets, 0),
            ("subword_buckets", subword_buckets, 0), ("subword_min_n", subword_min_n, 1),
            ("subword_max_n", subword_max_n, 1),
        ):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}. Received: pooling={pooling!r}")
        if subword_pooling not in POOLINGS:
            raise ValueError(
                f"`subword_pooling` must be one of {POOLINGS}. Received: subword_pooling={subword_pooling!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        if not l2 >= 0.0:
            raise ValueError(f"`l2` must be >= 0. Received: l2={l2}")
        self.vocab_size = int(vocab_size)
        self.units = int(units)
        self.num_buckets = int(num_buckets)
        self.pooling = pooling
        self.dropout = float(dropout)
        self.l2 = float(l2)
        if not scale > 0:
            raise ValueError(f"`scale` must be > 0. Received: scale={scale}")
        self.scale = float(scale)
        if subword_max_n < subword_min_n:
            raise ValueError(
                f"`subword_max_n` must be >= `subword_min_n`. Received: subword_min_n={subword_min_n}, "
                f"subword_max_n={subword_max_n}"
            )
        self.subword_buckets = int(subword_buckets)
        self.subword_min_n = int(subword_min_n)
        self.subword_max_n = int(subword_max_n)
        self.subword_pooling = subword_pooling
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")

    def build(self, input_shape):
        regularizer = keras.regularizers.L2(self.l2) if self.l2 else None
        init = keras.initializers.RandomNormal(stddev=0.01)
        self.unigrams = self.add_weight(
            shape=(self.vocab_size, self.units), initializer=init, regularizer=regularizer, name="unigrams"
        )
        self.bigrams = None
        if self.num_buckets:
            self.bigrams = self.add_weight(
                shape=(self.num_buckets, self.units), initializer=init, regularizer=regularizer, name="bigrams"
            )
        self.subword_vectors = self.subwords = None
        if self.subword_buckets:
            # Row 0 of the vectors is "no n-gram" (kept zero by the mask below).
            self.subword_vectors = self.add_weight(
                shape=(self.subword_buckets + 1, self.units), initializer=init, regularizer=regularizer,
                name="subword_vectors",
            )
            self.subwords = self.add_weight(
                shape=(self.vocab_size, MAX_SUBWORDS), initializer="zeros", dtype="int32", trainable=False,
                name="subwords",
            )

    def set_subwords(self, vocabulary_words):
        """Fills the n-gram table from the vocabulary (`words[i]` is token id i + 2).

        Args:
            vocabulary_words: the words in id order, without padding and OOV
                (`vocab.txt`); ids 0 and 1 get no n-grams.
        """
        if not self.subword_buckets:
            raise ValueError(f"This NGramBag has no subwords. Received: subword_buckets={self.subword_buckets}")
        words = list(vocabulary_words)
        if len(words) + 2 != self.vocab_size:
            raise ValueError(
                f"Expected {self.vocab_size - 2} vocabulary words (vocab_size {self.vocab_size} minus padding and "
                f"OOV). Received: {len(words)} words"
            )
        if not self.built:
            self.build(None)
        table = np.zeros((self.vocab_size, MAX_SUBWORDS), np.int32)
        for i, word in enumerate(words):
            ids = subword_ids(word, self.subword_buckets, self.subword_min_n, self.subword_max_n)
            table[i + 2, : len(ids)] = ids
        self.subwords.assign(table)

    def _normaliser(self, count):
        count = ops.maximum(count, 1.0)
        return ops.sqrt(count) if self.pooling == "sqrt" else count

    def call(self, inputs, training=None):
        tokens = ops.cast(inputs, "int32")
        real = ops.cast(ops.not_equal(tokens, 0), self.compute_dtype)  # [B, N]
        unigrams = ops.take(ops.cast(self.unigrams, self.compute_dtype), tokens, axis=0)  # [B, N, units]
        count = ops.sum(real, axis=1, keepdims=True)
        features = ops.sum(unigrams * ops.expand_dims(real, -1), axis=1) / self._normaliser(count)
        if self.bigrams is not None:
            left, right = ops.cast(tokens[:, :-1], "int64"), ops.cast(tokens[:, 1:], "int64")
            pair_real = real[:, :-1] * real[:, 1:]
            buckets = ops.mod(left * HASH_PRIME + right, self.num_buckets)
            pairs = ops.take(ops.cast(self.bigrams, self.compute_dtype), buckets, axis=0)
            pair_count = ops.sum(pair_real, axis=1, keepdims=True)
            features = features + ops.sum(pairs * ops.expand_dims(pair_real, -1), axis=1) / self._normaliser(pair_count)
        if self.subwords is not None:
            grams = ops.cast(self.subwords, "int32")  # [V, K]
            present = ops.cast(ops.not_equal(grams, 0), self.compute_dtype)
            vectors = ops.take(ops.cast(self.subword_vectors, self.compute_dtype), grams, axis=0)  # [V, K, units]
            grams_count = ops.maximum(ops.sum(present, axis=1, keepdims=True), 1.0)
            if self.subword_pooling == "sqrt":
                grams_count = ops.sqrt(grams_count)
            per_word = ops.sum(vectors * ops.expand_dims(present, -1), axis=1) / grams_count
            # [V, units]: the mean (or sqrt-pooled) n-gram vector of each word
            words = ops.take(per_word, tokens, axis=0)  # [B, N, units]
            features = features + ops.sum(words * ops.expand_dims(real, -1), axis=1) / self._normaliser(count)
        if self.scale != 1.0:
            features = features * self.scale
        return self.dropout_layer(features, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "units": self.units,
                "num_buckets": self.num_buckets,
                "pooling": self.pooling,
                "dropout": self.dropout,
                "l2": self.l2,
                "scale": self.scale,
                "subword_buckets": self.subword_buckets,
                "subword_min_n": self.subword_min_n,
                "subword_max_n": self.subword_max_n,
                "subword_pooling": self.subword_pooling,
            }
        )
        return config
