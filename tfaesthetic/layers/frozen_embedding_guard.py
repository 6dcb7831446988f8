"""Word vectors that stay frozen when the layer holding them is unfrozen."""

import keras


class FrozenEmbeddingGuard:
    """Mixin for a layer whose sub-layer `self.embedding` may hold frozen word vectors.

    Keras' `Layer.trainable` setter sets every sub-layer to the new value, so
    unfreezing the layer (or a model holding it, e.g. to fine-tune it) would also
    unfreeze the word vectors. With this mixin before `keras.layers.Layer` in the
    bases, the embedding is trainable only when the layer is and
    `embedding_is_trainable()` (the layer's own setting) says so.
    """

    def embedding_is_trainable(self) -> bool:
        """Whether the layer's own setting trains the embedding table (a layer overrides it)."""
        raise NotImplementedError

    @property
    def trainable(self):
        return keras.layers.Layer.trainable.fget(self)

    @trainable.setter
    def trainable(self, value):
        keras.layers.Layer.trainable.fset(self, value)
        embedding = getattr(self, "embedding", None)
        if embedding is not None:
            embedding.trainable = bool(value) and self.embedding_is_trainable()
