"""A score-bin head whose logits are a low-degree polynomial of the bin's position."""

import numbers

import keras
import numpy as np
from keras import ops


def bin_basis(num_bins, degree):
    """`[degree, num_bins]` array: row `p − 1` is `z_k ** p`, `z_k = 2k / (N − 1) − 1` in [−1, 1]."""
    z = np.linspace(-1.0, 1.0, int(num_bins))
    return np.stack([z**p for p in range(1, int(degree) + 1)]).astype("float32")


@keras.saving.register_keras_serializable(package="tfaesthetic")
class PolynomialBinHead(keras.layers.Layer):
    """Logits over `num_bins` ordered score bins, polynomial in the bin's position.

    With `z_k = 2k / (N − 1) − 1` the position of bin `k = 0 … N − 1` in [−1, 1],

        logit_k(x) = b_k + Σ_{p=1..degree} (x · w_p) · z_k^p,

    i.e. `logits = b + x W Z` with `W` `[d, degree]`, `b` `[N]` and the fixed
    basis `Z` `[degree, N]` (`bin_basis`; a bias of the coefficients would be
    absorbed by `b`). The softmax of these
    logits is an exponential family over the bins with sufficient statistics
    `z, z², …`: with degree 2 a discretised Gaussian whose mean and spread depend
    on the input, times a learned input-independent shape `exp(b)`. The input moves
    the distribution along the ordered scale through `degree` numbers instead of the
    `N` free logits of a dense head (`Dense(N)` = `N · d` weights; this head has
    `degree · d + N`), a strong prior when the training set is small (e.g.
    real comments, `benchmarks/real_comments.py`).

    Args:
        num_bins: number of score bins `N` (>= 2).
        degree: polynomial degree (>= 1); 2 is the Gaussian-like family.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `[B, d]` features.

    Returns:
        `[B, num_bins]` logits (apply a softmax for the distribution).
    """

    def __init__(self, num_bins, degree=2, **kwargs):
        super().__init__(**kwargs)
        for name, value, low in (("num_bins", num_bins, 2), ("degree", degree, 1)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
        self.num_bins = int(num_bins)
        self.degree = int(degree)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(int(input_shape[-1]), self.degree), initializer="glorot_uniform", name="kernel"
        )
        self.bias = self.add_weight(shape=(self.num_bins,), initializer="zeros", name="bias")

    def call(self, inputs):
        basis = ops.convert_to_tensor(bin_basis(self.num_bins, self.degree), dtype=self.compute_dtype)
        coefficients = ops.matmul(inputs, ops.cast(self.kernel, self.compute_dtype))  # [B, degree]
        return ops.matmul(coefficients, basis) + ops.cast(self.bias, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_bins)

    def get_config(self):
        config = super().get_config()
        config.update({"num_bins": self.num_bins, "degree": self.degree})
        return config
