"""Multimodal factorized bilinear pooling (MRACNN fusion)."""

import numbers

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfaesthetic")
class MFBPooling(keras.layers.Layer):
    """Fuses two vectors with a factorised bilinear map, Eq. 12–14.

    A bilinear map `s_j = xᵀ Z_j y` (Eq. 12) with `Z_j = U_j V_jᵀ` of rank `k`
    (Eq. 13) is computed for all `o` outputs at once as (Eq. 14)

        s = SumPool(Ûᵀ x ∘ V̂ᵀ y, k),

    with `Û ∈ R^{m×ko}`, `V̂ ∈ R^{n×ko}`: output `j` sums the `k` consecutive products
    `ko` indices `j·k … j·k + k − 1`. Dropout is applied to the product before the
    sum pooling, then power normalisation `sign(s)·sqrt(|s|)` and L2 normalisation
    (Yu et al. 2017; Fig. 5 of the paper). The normalisation runs in float32 whatever
    the dtype policy, so a zero pooled vector gives zeros, not NaN, under mixed precision.

    Args:
        output_dim: `o`, the fused feature size.
        factor_k: `k`, the rank of each `Z_j` (the sum-pooling window).
        dropout: dropout rate on `Ûᵀx ∘ V̂ᵀy` (MFB's default 0.1).
        use_bias: add biases to the two projections (off: Eq. 14 has none).
        epsilon: small constant inside the square root and the L2 norm.
        kernel_initializer: initializer of `Û` and `V̂`.
        **kwargs: base layer arguments.

    Call arguments:
        x: `[B, m]`, the visual feature.
        y: `[B, n]`, the textual feature.
        training: whether dropout is active.

    Returns:
        `[B, output_dim]`, unit L2 norm per row (zero where the pooled vector is zero).

    Reference:
        Zhang et al., "Multimodal recurrent attention CNN for image aesthetic
        prediction", IEEE TMM 2020, §III-C, Eq. 12–14; Yu et al., "Multi-modal
        factorized bilinear pooling with co-attention learning for visual question
        answering", ICCV 2017.
    """

    def __init__(
        self,
        output_dim=1000,
        factor_k=5,
        dropout=0.1,
        use_bias=False,
        epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (("output_dim", output_dim), ("factor_k", factor_k)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.output_dim = int(output_dim)
        self.factor_k = int(factor_k)
        self.dropout = dropout
        self.use_bias = bool(use_bias)
        self.epsilon = epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="dropout")

    def build(self, x_shape, y_shape):
        if len(x_shape) != 2 or len(y_shape) != 2 or x_shape[-1] is None or y_shape[-1] is None:
            raise ValueError(
                f"MFBPooling expects two inputs [B, m] and [B, n] with known m, n. "
                f"Received: x.shape={x_shape}, y.shape={y_shape}"
            )
        width = self.factor_k * self.output_dim
        init = self.kernel_initializer
        self.u_kernel = self.add_weight(shape=(x_shape[-1], width), initializer=init, name="u_kernel")
        self.v_kernel = self.add_weight(shape=(y_shape[-1], width), initializer=init, name="v_kernel")
        if self.use_bias:
            self.u_bias = self.add_weight(shape=(width,), initializer="zeros", name="u_bias")
            self.v_bias = self.add_weight(shape=(width,), initializer="zeros", name="v_bias")

    def call(self, x, y, training=None):
        projected_x = ops.matmul(x, self.u_kernel)
        projected_y = ops.matmul(y, self.v_kernel)
        if self.use_bias:
            projected_x = projected_x + self.u_bias
            projected_y = projected_y + self.v_bias
        # Eq. 14: element-wise product, dropout, sum over windows of k.
        joint = self.dropout_layer(projected_x * projected_y, training=training)
        pooled = ops.sum(ops.reshape(joint, (-1, self.output_dim, self.factor_k)), axis=-1)
        # Power (signed square root) and L2 normalisation, in float32: under mixed
        # precision epsilon = 1e-12 rounds to 0 in float16, and a zero row would give 0/0.
        pooled = ops.cast(pooled, "float32")
        pooled = ops.sign(pooled) * ops.sqrt(ops.abs(pooled) + self.epsilon)
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(pooled), axis=-1, keepdims=True), self.epsilon))
        return ops.cast(pooled / norm, self.compute_dtype)

    def compute_output_shape(self, x_shape, y_shape):
        return (x_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "factor_k": self.factor_k,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
