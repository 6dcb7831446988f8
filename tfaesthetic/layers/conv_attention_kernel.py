"""Review-conditioned convolutional attention of CFAN (seed 000, Eq. 5)."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="tfaesthetic")
class ConvAttentionKernel(keras.layers.Layer):
    """Per-example convolution kernel from a review encoding, softmax attention map.

    The review encoding `h_uv` is projected to a convolution kernel
    `K = sigmoid(W_k h_uv + b_k)` of shape `[kernel_size, kernel_size, D]`, where `D`
    is the channel count of the visual feature map `f_v` ("K has the same number of
    channels as the visual feature f_v"). Each example's kernel is convolved with
    that example's feature map (stride 1, "same" zero padding, one output channel),
    giving logits `e_uv = K * f_v` of shape `[h, w]` (scaled, see below); a softmax over all `h * w`
    positions gives the attention map `a_uv` (Eq. 5), which sums to 1.

    The attended, user-specific feature map returned is
    `f_uv = f_v * a_uv * (h * w)` (broadcast over channels): a uniform attention
    leaves `f_v` unchanged, and its spatial mean is exactly the attention-weighted
    sum `sum_ij a_uv[i, j] f_v[i, j, :]`, which is what the CF branch consumes in
    place of the mean-pooled `f_v`.

    The convolution is vectorised over the batch: the `kernel_size**2` shifted
    copies of the padded feature map are contracted with the matching kernel taps
    (`einsum`), so there is a Python loop over kernel taps only, never over
    examples.

    Logit scale. With `scale_logits=True` (default) the logits are divided by
    `sqrt(kernel_size**2 * D)` before the softmax. Eq. 5 has no such factor, but K is
    positive (a sigmoid) and backbone features are non-negative (ReLU), so an
    unscaled logit sums `k*k*D` positive terms (4608 for a 3x3 kernel on VGG16's 512
    channels): the softmax saturates to a one-hot map at initialisation and its
    gradient vanishes (on the demo records the review path then is learned in some
    runs only). `scale_logits=False` gives Eq. 5 literally. `CFAN` exposes both
    `scale_logits` and `kernel_size` as constructor arguments (and `params` of a
    training preset), so the literal Eq. 5 is one setting away.

    Kernel size. §4.1 only says the attention map is 10x10(x512), "the same as the
    feature map", which fixes stride 1 and "same" padding but not the spatial
    size; the Fig. 6 description it points to is not in the text we have. We use a
    3x3 kernel by default (the smallest odd kernel that looks at a neighbourhood,
    as a "convolution" of K with f_v implies, while keeping the 10x10 map);
    `kernel_size=1` gives a per-position channel-weighting attention.

    Args:
        kernel_size: odd int, spatial size of the per-example kernel.
        scale_logits: divide the logits by `sqrt(kernel_size**2 * D)`.
        kernel_initializer: initializer of `W_k`.
        bias_initializer: initializer of `b_k`.
        **kwargs: standard layer arguments.

    Call arguments:
        feature_map: float tensor `[B, h, w, D]`, the visual feature map `f_v`.
        encoding: float tensor `[B, E]`, the review encoding `h_uv` (Eq. 4).

    Returns:
        A tuple `(f_uv, a_uv)`: the attended feature map `[B, h, w, D]` and the
        attention map `[B, h, w]` (sums to 1 over positions).

    Reference:
        Wang et al., "Personalized image aesthetic assessment with reviews and
        collaborative filtering", IJCAI 2018 (seed 000), §3.1, Eq. 5.
    """

    def __init__(
        self,
        kernel_size=3,
        scale_logits=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(
                "`kernel_size` must be a positive odd int. " f"Received: kernel_size={kernel_size!r}"
            )
        self.kernel_size = kernel_size
        self.scale_logits = scale_logits
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, feature_map_shape, encoding_shape):
        channels = feature_map_shape[-1]
        if channels is None or len(feature_map_shape) != 4:
            raise ValueError(
                "Expected a feature map of shape [B, h, w, D] with known D. "
                f"Received: feature_map.shape={tuple(feature_map_shape)}"
            )
        if len(encoding_shape) != 2 or encoding_shape[-1] is None:
            raise ValueError(
                "Expected an encoding of shape [B, E] with known E. "
                f"Received: encoding.shape={tuple(encoding_shape)}"
            )
        self._channels = int(channels)
        taps = self.kernel_size * self.kernel_size * self._channels
        self.kernel = self.add_weight(
            name="kernel", shape=(int(encoding_shape[-1]), taps), initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(taps,), initializer=self.bias_initializer)

    def compute_kernel(self, encoding):
        """Returns K = sigmoid(W_k h + b_k) reshaped to `[B, k, k, D]`."""
        k = self.kernel_size
        flat = ops.sigmoid(ops.matmul(encoding, self.kernel) + self.bias)
        return ops.reshape(flat, (-1, k, k, self._channels))

    def attention_logits(self, feature_map, kernel):
        """Per-example 'same' convolution of `kernel [B,k,k,D]` with `feature_map [B,h,w,D]`."""
        k = self.kernel_size
        pad = k // 2
        height, width = ops.shape(feature_map)[1], ops.shape(feature_map)[2]
        padded = ops.pad(feature_map, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        logits = None
        for di in range(k):
            for dj in range(k):
                window = padded[:, di : di + height, dj : dj + width, :]
                term = ops.einsum("bhwd,bd->bhw", window, kernel[:, di, dj, :])
                logits = term if logits is None else logits + term
        return logits

    def call(self, feature_map, encoding):
        kernel = self.compute_kernel(encoding)
        logits = self.attention_logits(feature_map, kernel)
        if self.scale_logits:
            logits = logits / float(np.sqrt(self.kernel_size * self.kernel_size * self._channels))
        shape = ops.shape(logits)
        flat = ops.reshape(logits, (shape[0], -1))
        attention = ops.reshape(ops.softmax(flat, axis=-1), shape)
        positions = ops.cast(shape[1] * shape[2], feature_map.dtype)
        attended = feature_map * ops.expand_dims(attention, -1) * positions
        return attended, attention

    def compute_output_shape(self, feature_map_shape, encoding_shape):
        return tuple(feature_map_shape), tuple(feature_map_shape[:3])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kernel_size": self.kernel_size,
                "scale_logits": self.scale_logits,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
