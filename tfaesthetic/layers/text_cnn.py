"""Text-CNN over comment tokens (MRACNN language stream)."""

import numbers

import keras
import numpy as np
from keras import ops

from tfaesthetic.layers.frozen_embedding_guard import FrozenEmbeddingGuard

EMPTY_TEXT = ("learned", "zeros")
VECTOR_POOLINGS = ("mean", "max", "min")


@keras.saving.register_keras_serializable(package="tfaesthetic")
class TextCNN(FrozenEmbeddingGuard, keras.layers.Layer):
    """Embedding → Conv1D of several heights → masked max over time → concat → dropout.

    Each filter of height `h` computes (Eq. 11)

        y_i = ReLU(w · d_{i:i+h-1} + b),

    over the embedded tokens `d_i`, and the layer keeps the maximum of `y_i` over the
    valid window positions `i`, per filter.

    Padding (token id 0) never reaches the max: the embeddings of padding positions are
    zeroed, and with `n` the position after the last real token, only windows starting
    at `i ≤ max(n − h, 0)` count, i.e. every window lying wholly inside the comment,
    or — when the comment is shorter than `h` — the single window at 0 (its real tokens
    followed by zero vectors, the paper's zero padding). Appending padding therefore
    never changes the output (ReLU outputs are ≥ 0, so masked positions are set to 0
    before the max). Inputs shorter than the largest kernel are right-padded internally.

    An all-padding row (an image without comments) has no window at all. With
    `empty_text="learned"` (the default) it outputs a learned "no comment" vector
    `empty_embedding` instead, so that a multiplicative fusion (MFB, product) of the
    image feature with it still depends on the image; with `empty_text="zeros"` it
    outputs zeros (the bare Eq. 11 + max pooling, under which MFB fusion of any image
    with an empty comment is zero). `comment_dropout` replaces the output of a random
    fraction of rows by that vector during training, so that it learns to stand for
    "no comment" even when every training image has comments.

    Args:
        vocab_size: rows of the embedding table (including padding id 0 and OOV id 1).
        embedding_dim: word vector size (300 in the paper, GloVe).
        num_filters: feature maps per kernel height (100 in the paper).
        kernel_sizes: kernel heights (3, 4, 5 in the paper).
        dropout: dropout rate after the concatenation (0.3 in the paper).
        trainable_embeddings: whether the embedding table is trained (the paper keeps
            its GloVe vectors fixed; see `set_embeddings`).
        empty_text: output for all-padding rows: `"learned"` (a trained vector,
            initialised small, random and non-zero) or `"zeros"`.
        comment_dropout: training only: the probability that a row's output is
            replaced by the "no comment" vector (needs `empty_text="learned"`).
        seed: seed of the `comment_dropout` draws.
        vector_pooling: extra features appended after the max-pooled maps:
            masked `"mean"`, `"max"` and/or `"min"` over time of the word vectors
            themselves (`embedding_dim` each; 0 for an all-padding row). Empty
            (the default) is the paper's Text-CNN.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: int token ids `[B, max_len]`, 0 = padding.
        training: whether dropout is active.

    Returns:
        `[B, len(kernel_sizes) · num_filters + len(vector_pooling) · embedding_dim]`;
        all-padding rows hold the "no comment" vector (`empty_text`).

    Reference:
        Zhang et al., "Multimodal recurrent attention CNN for image aesthetic
        prediction", IEEE TMM 2020, §III-B, Eq. 11 (after Kim, "Convolutional neural
        networks for sentence classification", EMNLP 2014).
    """

    def __init__(
        self,
        vocab_size,
        embedding_dim=300,
        num_filters=100,
        kernel_sizes=(3, 4, 5),
        dropout=0.3,
        trainable_embeddings=True,
        empty_text="learned",
        comment_dropout=0.0,
        seed=None,
        vector_pooling=(),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(vocab_size, numbers.Integral) or isinstance(vocab_size, bool) or vocab_size < 2:
            raise ValueError(
                f"`vocab_size` must be an integer >= 2 (padding + OOV). Received: vocab_size={vocab_size!r}"
            )
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not kernel_sizes or min(kernel_sizes) < 1:
            raise ValueError(f"`kernel_sizes` must be positive integers. Received: kernel_sizes={kernel_sizes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        if empty_text not in EMPTY_TEXT:
            raise ValueError(f"`empty_text` must be one of {EMPTY_TEXT}. Received: empty_text={empty_text!r}")
        if not 0.0 <= comment_dropout < 1.0:
            raise ValueError(f"`comment_dropout` must be in [0, 1). Received: comment_dropout={comment_dropout}")
        if comment_dropout and empty_text != "learned":
            raise ValueError(
                f"`comment_dropout` needs `empty_text='learned'`. "
                f"Received: comment_dropout={comment_dropout}, empty_text={empty_text!r}"
            )
        vector_pooling = tuple(vector_pooling)
        if any(p not in VECTOR_POOLINGS for p in vector_pooling) or len(set(vector_pooling)) != len(vector_pooling):
            raise ValueError(
                f"`vector_pooling` must be distinct entries of {VECTOR_POOLINGS}. Received: vector_pooling={vector_pooling!r}"
            )
        self.vector_pooling = vector_pooling
        self.vocab_size = int(vocab_size)
        self.embedding_dim = int(embedding_dim)
        self.num_filters = int(num_filters)
        self.kernel_sizes = kernel_sizes
        self.dropout = dropout
        self.trainable_embeddings = bool(trainable_embeddings)
        self.empty_text = empty_text
        self.comment_dropout = float(comment_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.comment_dropout else None
        self.embedding = keras.layers.Embedding(
            self.vocab_size,
            self.embedding_dim,
            trainable=self.trainable_embeddings,
            dtype=self.dtype_policy,
            name="embedding",
        )
        self.convs = [
            keras.layers.Conv1D(self.num_filters, k, activation="relu", dtype=self.dtype_policy, name=f"conv_{k}")
            for k in kernel_sizes
        ]
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="dropout")

    def embedding_is_trainable(self):
        return self.trainable_embeddings  # unfreezing the layer keeps frozen vectors frozen

    def build(self, input_shape):
        self.embedding.build(input_shape)
        conv_input = (input_shape[0], None, self.embedding_dim)
        for conv in self.convs:
            conv.build(conv_input)
        if self.empty_text == "learned":
            self.empty_embedding = self.add_weight(
                shape=(self._output_dim(),),
                initializer=keras.initializers.RandomUniform(0.01, 0.1),
                name="empty_embedding",
            )

    def _output_dim(self):
        return len(self.kernel_sizes) * self.num_filters + len(self.vector_pooling) * self.embedding_dim

    def set_embeddings(self, matrix, trainable=False):
        """Loads word vectors into the embedding table.

        Args:
            matrix: array `[vocab_size, embedding_dim]` (e.g. from
                `tfaesthetic.layers.vectors.load_vectors`); row 0 is padding.
            trainable: keep training the vectors (the paper freezes them).
        """
        matrix = np.asarray(matrix, dtype="float32")
        if matrix.shape != (self.vocab_size, self.embedding_dim):
            raise ValueError(
                f"Expected an embedding matrix of shape {(self.vocab_size, self.embedding_dim)}. "
                f"Received: matrix.shape={matrix.shape}"
            )
        if not self.built:
            self.build((None, None))
        self.embedding.embeddings.assign(matrix)
        self.trainable_embeddings = bool(trainable)
        self.embedding.trainable = self.trainable and self.embedding_is_trainable()

    def call(self, inputs, training=None):
        tokens = ops.cast(inputs, "int32")
        real = ops.cast(ops.not_equal(tokens, 0), self.compute_dtype)  # [B, N]
        embedded = self.embedding(tokens) * ops.expand_dims(real, -1)
        max_len = ops.shape(tokens)[1]
        positions = ops.arange(1, max_len + 1, dtype="int32")
        # n = 1 + index of the last real token (0 for an all-padding row): [B, 1].
        length = ops.max(ops.cast(ops.not_equal(tokens, 0), "int32") * positions, axis=1, keepdims=True)
        extra = max(self.kernel_sizes) - 1
        if extra:
            embedded = ops.pad(embedded, [[0, 0], [0, extra], [0, 0]])
        starts = positions - 1  # window start indices 0..N-1: [N]
        pooled = []
        for size, conv in zip(self.kernel_sizes, self.convs):
            # Eq. 11 at every start position; keep the first N starts.
            response = conv(embedded)[:, :max_len, :]
            last_start = ops.maximum(length - size, 0)  # [B, 1]
            valid = ops.logical_and(ops.less_equal(starts, last_start), ops.greater(length, 0))
            response = response * ops.cast(ops.expand_dims(valid, -1), response.dtype)
            pooled.append(ops.max(response, axis=1))
        unpadded = embedded[:, :max_len, :]
        mask = ops.expand_dims(real, -1) > 0
        for kind in self.vector_pooling:
            # Masked statistics of the word vectors themselves (0 for an all-padding row).
            if kind == "mean":
                pooled.append(ops.sum(unpadded, axis=1) / ops.maximum(ops.sum(real, axis=1, keepdims=True), 1.0))
            else:
                fill = ops.cast(-1e4 if kind == "max" else 1e4, unpadded.dtype)
                reduce = ops.max if kind == "max" else ops.min
                value = reduce(ops.where(mask, unpadded, fill), axis=1)
                pooled.append(ops.where(ops.greater(length, 0), value, ops.zeros_like(value)))
        features = ops.concatenate(pooled, axis=-1)
        if self.empty_text == "learned":
            empty = ops.equal(length, 0)  # [B, 1]
            if training and self.comment_dropout:
                drawn = keras.random.uniform(ops.shape(length), seed=self.seed_generator)
                empty = ops.logical_or(empty, ops.less(drawn, self.comment_dropout))
            vector = ops.cast(self.empty_embedding, features.dtype)
            features = ops.where(empty, ops.expand_dims(vector, 0), features)
        return self.dropout_layer(features, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self._output_dim())

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim,
                "num_filters": self.num_filters,
                "kernel_sizes": list(self.kernel_sizes),
                "dropout": self.dropout,
                "trainable_embeddings": self.trainable_embeddings,
                "empty_text": self.empty_text,
                "comment_dropout": self.comment_dropout,
                "seed": self.seed,
                "vector_pooling": list(self.vector_pooling),
            }
        )
        return config
