"""Review encoder of CFAN: word embedding -> bidirectional GRU (seed 000, Eq. 3-4)."""

import keras
import numpy as np
from keras import ops

from tfaesthetic.layers.frozen_embedding_guard import FrozenEmbeddingGuard


@keras.saving.register_keras_serializable(package="tfaesthetic")
class ReviewEncoder(FrozenEmbeddingGuard, keras.layers.Layer):
    """Encodes a padded review into `h_uv = [h_fwd_last, h_bwd_first]`.

    Token id 0 is padding and is masked: the forward GRU reads the review from its
    first to its last real token and the backward GRU from the last to the first
    (Eq. 3); the review annotation is the concatenation of the forward state after
    the last real token and the backward state after the first (Eq. 4), a vector of
    `2 * units` values.

    An empty review (all padding) is well defined: both GRUs see no step and
    return their zero initial state, so `h_uv` is all zeros. Reviews longer than
    `max_len` are truncated to their first `max_len` tokens (the pipeline already
    does this; the layer repeats it so that serving inputs of any length are safe).
    Token ids outside `[0, vocab_size)` are mapped to the out-of-vocabulary id 1.

    Pretrained word vectors (e.g. GloVe through `tfaesthetic.layers.vectors.
    load_vectors`) can be given as `vectors`, a `[vocab_size, embedding_dim]`
    matrix copied into the embedding table when the layer is built; with
    `freeze_embeddings=True` the table is not trained, and stays frozen when the
    layer (or a model holding it) is later set `trainable = True`, e.g. to fine-tune
    the rest of the network. The matrix itself is not part of the config (the
    weights are saved with the model).

    Args:
        vocab_size: number of token ids, including padding (0) and OOV (1).
        embedding_dim: word embedding size.
        units: GRU units per direction.
        max_len: reviews are truncated to this many tokens; None keeps all.
        freeze_embeddings: do not train the word embeddings.
        vectors: optional initial embedding matrix (not serialised).
        **kwargs: standard layer arguments.

    Call arguments:
        tokens: int tensor `[B, L]` of token ids, 0 = padding.
        training: Python bool, passed to the GRUs.

    Returns:
        Float tensor `[B, 2 * units]`.

    Reference:
        Wang et al., IJCAI 2018 (seed 000), §3.1, Eq. 3-4.
    """

    def __init__(
        self,
        vocab_size,
        embedding_dim=100,
        units=100,
        max_len=200,
        freeze_embeddings=False,
        vectors=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if vocab_size < 2:
            raise ValueError(f"`vocab_size` must count padding and OOV (>= 2). Received: vocab_size={vocab_size}")
        if vectors is not None:
            vectors = np.asarray(vectors, dtype="float32")
            if vectors.shape != (vocab_size, embedding_dim):
                raise ValueError(
                    f"Expected vectors of shape ({vocab_size}, {embedding_dim}). Received: vectors.shape={vectors.shape}"
                )
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.max_len = max_len
        self.freeze_embeddings = freeze_embeddings
        self._vectors = vectors
        self.embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, mask_zero=True, trainable=not freeze_embeddings, name="embedding"
        )
        self.gru = keras.layers.Bidirectional(keras.layers.GRU(units), merge_mode="concat", name="bigru")

    def embedding_is_trainable(self):
        return not self.freeze_embeddings  # unfreezing the layer keeps frozen vectors frozen

    def build(self, tokens_shape):
        self.embedding.build(tokens_shape)
        if self._vectors is not None:
            self.embedding.embeddings.assign(self._vectors)
            self._vectors = None
        self.gru.build(tuple(tokens_shape) + (self.embedding_dim,))

    def call(self, tokens, training=None):
        tokens = ops.cast(tokens, "int32")
        if self.max_len is not None:
            tokens = tokens[:, : self.max_len]
        out_of_range = ops.logical_or(tokens < 0, tokens >= self.vocab_size)
        tokens = ops.where(out_of_range, ops.ones_like(tokens), tokens)
        embedded = self.embedding(tokens)
        mask = ops.not_equal(tokens, 0)
        return self.gru(embedded, mask=mask, training=training)

    def compute_output_shape(self, tokens_shape):
        return (tokens_shape[0], 2 * self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim,
                "units": self.units,
                "max_len": self.max_len,
                "freeze_embeddings": self.freeze_embeddings,
            }
        )
        return config
