"""Sentiment-lexicon features of the comment tokens: prior word polarity beside the learned text stream."""

import numbers

import keras
from keras import ops

#: Columns of the lexicon table, one row per vocabulary id.
COLUMNS = ("valence", "negation", "excess", "contrast")
#: Number of features the layer returns.
NUM_FEATURES = 6


@keras.saving.register_keras_serializable(package="tfaesthetic")
class SentimentLexicon(keras.layers.Layer):
    """Pooled prior polarity of a comment's words, with negation, excess and contrast.

    A frozen table `L` `[vocab_size, 4]` gives each vocabulary id its valence `a`
    (VADER's lexicon with the photo-critique overrides of
    `tfaesthetic.records.reviews`, divided by 4 into [-1, 1]) and three flags:
    negation word `g` ("not", "never", "isnt"), excess word `e` ("too", "overly")
    and contrast word `c` ("but", "however"). Fill it with `set_table` (the
    trainer does, from `tfaesthetic.records.reviews.lexicon_table`); it is saved
    with the model, so serving needs no lexicon package. With `t_1 … t_n` the
    tokens of a row and `r_i = [t_i != 0]`:

        v_i = a(t_i)                              the word's prior valence
        v_i = -excess_valence        if e(t_{i-1}) = 1              ("too dark")
        v_i = negation_scalar · v_i  if g(t_j) = 1 for some i-w <= j < i ("not sharp")
        w_i = contrast_weight        if c(t_j) = 1 for some j > i, else 1
                                     (what follows "but" is what the critic means)
        S = Σ r_i w_i v_i,   P = Σ r_i w_i [v_i > 0],   Q = Σ r_i w_i [v_i < 0],   n = max(Σ r_i, 1)

    and returns `[S / sqrt(S² + alpha), S / sqrt(n), P / n, Q / n, max_i v_i, min_i v_i]`
    (max and min over real tokens, 0 for an all-padding row). The first feature is
    VADER's normalised "compound" score (`alpha = 15/16` on this [-1, 1] scale is
    VADER's 15 on its [-4, 4] scale). The layer has no trainable weights: the
    dense head after it learns how much each feature says about the score.

    Args:
        vocab_size: rows of the table (padding id 0 and OOV id 1 included; both
            stay zero).
        negation_window: how many preceding words a negation reaches (w).
        negation_scalar: factor on a negated word's valence (VADER: -0.74).
        excess_valence: valence of a word after an excess word (>= 0; it is
            negated).
        contrast_weight: weight of the words before a later contrast word (1
            disables the rule).
        alpha: normalisation constant of the compound score.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: int token ids `[B, max_len]`, 0 = padding.

    Returns:
        `[B, 6]` features.
    """

    def __init__(
        self,
        vocab_size,
        negation_window=3,
        negation_scalar=-0.74,
        excess_valence=0.375,
        contrast_weight=0.5,
        alpha=15.0 / 16.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value, low in (("vocab_size", vocab_size, 2), ("negation_window", negation_window, 0)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
        if not excess_valence >= 0:
            raise ValueError(f"`excess_valence` must be >= 0. Received: excess_valence={excess_valence}")
        if not contrast_weight >= 0:
            raise ValueError(f"`contrast_weight` must be >= 0. Received: contrast_weight={contrast_weight}")
        if not alpha > 0:
            raise ValueError(f"`alpha` must be > 0. Received: alpha={alpha}")
        self.vocab_size = int(vocab_size)
        self.negation_window = int(negation_window)
        self.negation_scalar = float(negation_scalar)
        self.excess_valence = float(excess_valence)
        self.contrast_weight = float(contrast_weight)
        self.alpha = float(alpha)

    def build(self, input_shape):
        self.table = self.add_weight(
            shape=(self.vocab_size, len(COLUMNS)), initializer="zeros", trainable=False, name="table"
        )

    def set_table(self, table):
        """Loads the `[vocab_size, 4]` lexicon table (columns `COLUMNS`)."""
        if not self.built:
            self.build(None)
        shape = tuple(ops.shape(table))
        if shape != (self.vocab_size, len(COLUMNS)):
            raise ValueError(
                f"The lexicon table must have shape {(self.vocab_size, len(COLUMNS))} (vocab_size, {COLUMNS}). "
                f"Received: shape {shape}"
            )
        self.table.assign(ops.cast(table, self.table.dtype))

    def call(self, inputs):
        tokens = ops.cast(inputs, "int32")
        real = ops.cast(ops.not_equal(tokens, 0), "float32")  # [B, N]
        rows = ops.take(ops.cast(self.table, "float32"), tokens, axis=0)  # [B, N, 4]
        valence, negation, excess, contrast = (rows[..., k] for k in range(len(COLUMNS)))
        length = ops.shape(tokens)[1]

        def shifted(x, k):  # x[:, i - k], zeros before the start
            return ops.pad(x, [[0, 0], [k, 0]])[:, :length]

        after_excess = shifted(excess, 1)
        value = after_excess * (-self.excess_valence) + (1.0 - after_excess) * valence
        negated = ops.zeros_like(value)
        for k in range(1, self.negation_window + 1):
            negated = ops.maximum(negated, shifted(negation, k))
        value = value * (1.0 + negated * (self.negation_scalar - 1.0))
        later_contrast = ops.sum(contrast, axis=1, keepdims=True) - ops.cumsum(contrast, axis=1)  # Σ_{j>i} c_j
        weight = ops.where(later_contrast > 0, self.contrast_weight, 1.0)
        weighted = value * weight * real
        count = ops.maximum(ops.sum(real, axis=1), 1.0)
        total = ops.sum(weighted, axis=1)
        positive = ops.sum(weight * real * ops.cast(value > 0, "float32"), axis=1)
        negative = ops.sum(weight * real * ops.cast(value < 0, "float32"), axis=1)
        has_real = ops.max(real, axis=1) > 0
        largest = ops.where(has_real, ops.max(ops.where(real > 0, value, -1e9), axis=1), 0.0)
        smallest = ops.where(has_real, ops.min(ops.where(real > 0, value, 1e9), axis=1), 0.0)
        features = ops.stack(
            [
                total / ops.sqrt(total * total + self.alpha),
                total / ops.sqrt(count),
                positive / count,
                negative / count,
                largest,
                smallest,
            ],
            axis=-1,
        )
        return ops.cast(features, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], NUM_FEATURES)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "negation_window": self.negation_window,
                "negation_scalar": self.negation_scalar,
                "excess_valence": self.excess_valence,
                "contrast_weight": self.contrast_weight,
                "alpha": self.alpha,
            }
        )
        return config
