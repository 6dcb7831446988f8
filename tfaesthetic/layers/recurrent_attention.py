"""Recurrent attention over a convolutional feature map (MRACNN vision stream)."""

import numbers

import keras
from keras import ops

_INITIAL_STATES = ("mean", "zeros")


@keras.saving.register_keras_serializable(package="tfaesthetic")
class RecurrentAttention(keras.layers.Layer):
    """An LSTM that takes `T` attention glimpses of a feature map.

    The feature map `F = {f_1 … f_L}` (`L = h·w` locations, `f_i ∈ R^D`, Eq. 2) is
    looked at `T = recurrences` times. At step `t` the top LSTM hidden state
    `h_{t-1}` scores every location with a 2-layer feed-forward network (Eq. 8)

        e_{t,i} = Nᵀ tanh(W1 h_{t-1} + W2 f_i + b),

    a softmax over the `L` locations turns the scores into an attention map (Eq. 9),
    and the glimpse `x_t = Σ_i a_{t,i} f_i` (Eq. 10) is the LSTM's next input. The
    output is the concatenation `[x_1 … x_T]` and the `T` attention maps.

    The LSTM follows Eq. 3–7 of the paper, including the diagonal peephole terms
    `W_ci c_{t-1}`, `W_cf c_{t-1}`, `W_co c_{t-1}` (`use_peepholes=False` drops them,
    which gives the plain LSTM of `keras.layers.LSTMCell`). With `num_layers > 1` the
    cells are stacked; the top cell's hidden state drives the attention.

    Initial state: with `initial_state="mean"` (default) the LSTM first reads the mean
    feature `f̄ = (1/L) Σ_i f_i` from a zero state, so `h_0` already summarises the
    image and the first glimpse is image-dependent in `W1 h_0` as well; the LSTM then
    runs `T` steps in total (`f̄, x_1 … x_{T-1}`). With `initial_state="zeros"`,
    `h_0 = c_0 = 0` and the first attention map depends on the features only.

    `W2 f_i + b` is computed once outside the recurrence; the `T` steps are a static
    Python loop, so the layer runs under `jit_compile` and traces into a SavedModel.

    Args:
        units: LSTM hidden size.
        recurrences: number of glimpses `T` (the paper uses 3; Table I tries 1, 3, 5).
        num_layers: stacked LSTM layers (the paper uses 1; Table I tries 1, 2, 3).
        attention_units: hidden size of the attention network (rows of `W1`, `W2`).
        use_peepholes: include the `W_c* c_{t-1}` terms of Eq. 3–5.
        initial_state: `"mean"` or `"zeros"`, see above.
        kernel_initializer: initializer of the input-to-hidden and attention matrices.
        recurrent_initializer: initializer of the hidden-to-hidden matrices.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: feature map `[B, h, w, D]`, or locations `[B, L, D]`.

    Returns:
        `(features, attention)`: `features` `[B, T·D]` = `[x_1 … x_T]`; `attention`
        `[B, T, h, w]` (or `[B, T, L]` for 3-D inputs), each map summing to 1.

    Reference:
        Zhang et al., "Multimodal recurrent attention CNN for image aesthetic
        prediction", IEEE TMM 2020, §III-A, Eq. 3–10.
    """

    def __init__(
        self,
        units=512,
        recurrences=3,
        num_layers=1,
        attention_units=512,
        use_peepholes=True,
        initial_state="mean",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (("units", units), ("recurrences", recurrences), ("num_layers", num_layers),
                           ("attention_units", attention_units)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
        if initial_state not in _INITIAL_STATES:
            raise ValueError(
                f"`initial_state` must be one of {_INITIAL_STATES}. Received: initial_state={initial_state!r}"
            )
        self.units = int(units)
        self.recurrences = int(recurrences)
        self.num_layers = int(num_layers)
        self.attention_units = int(attention_units)
        self.use_peepholes = bool(use_peepholes)
        self.initial_state = initial_state
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)

    def build(self, input_shape):
        if len(input_shape) not in (3, 4):
            raise ValueError(
                "RecurrentAttention expects a feature map [B, h, w, D] or [B, L, D]. "
                f"Received: input_shape={input_shape}"
            )
        depth = input_shape[-1]
        if depth is None:
            raise ValueError(f"The channel dimension must be known. Received: input_shape={input_shape}")
        self.lstm_weights = []
        for layer in range(self.num_layers):
            in_dim = depth if layer == 0 else self.units
            weights = {
                "kernel": self.add_weight(
                    shape=(in_dim, 4 * self.units), initializer=self.kernel_initializer, name=f"lstm{layer}_kernel"
                ),
                "recurrent_kernel": self.add_weight(
                    shape=(self.units, 4 * self.units),
                    initializer=self.recurrent_initializer,
                    name=f"lstm{layer}_recurrent_kernel",
                ),
                # Gate order i, f, c, o; forget-gate bias starts at 1.
                "bias": self.add_weight(
                    shape=(4 * self.units,), initializer=_ForgetBiasOnes(self.units), name=f"lstm{layer}_bias"
                ),
            }
            if self.use_peepholes:
                for gate in ("i", "f", "o"):
                    weights[f"peephole_{gate}"] = self.add_weight(
                        shape=(self.units,), initializer="zeros", name=f"lstm{layer}_peephole_{gate}"
                    )
            self.lstm_weights.append(weights)
        self.w1 = self.add_weight(
            shape=(self.units, self.attention_units), initializer=self.kernel_initializer, name="attention_w1"
        )
        self.w2 = self.add_weight(
            shape=(depth, self.attention_units), initializer=self.kernel_initializer, name="attention_w2"
        )
        self.attention_bias = self.add_weight(shape=(self.attention_units,), initializer="zeros", name="attention_b")
        self.attention_n = self.add_weight(
            shape=(self.attention_units, 1), initializer=self.kernel_initializer, name="attention_n"
        )

    def _lstm_step(self, x, states):
        """One step of the stacked LSTM (Eq. 3–7). `states` is a list of (h, c)."""
        new_states = []
        for weights, (h, c) in zip(self.lstm_weights, states):
            z = ops.matmul(x, weights["kernel"]) + ops.matmul(h, weights["recurrent_kernel"]) + weights["bias"]
            z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
            if self.use_peepholes:
                z_i = z_i + weights["peephole_i"] * c
                z_f = z_f + weights["peephole_f"] * c
                z_o = z_o + weights["peephole_o"] * c
            i = ops.sigmoid(z_i)
            f = ops.sigmoid(z_f)
            o = ops.sigmoid(z_o)
            c = f * c + i * ops.tanh(z_c)
            h = o * ops.tanh(c)
            new_states.append((h, c))
            x = h
        return new_states

    def call(self, inputs):
        shape = ops.shape(inputs)
        batch = shape[0]
        if len(inputs.shape) == 4:
            height, width, depth = inputs.shape[1], inputs.shape[2], inputs.shape[3]
            height = shape[1] if height is None else height
            width = shape[2] if width is None else width
            features = ops.reshape(inputs, (batch, -1, depth))
        else:
            features = inputs
        # W2 f_i + b, computed once: [B, L, A].
        projected = ops.matmul(features, self.w2) + self.attention_bias
        zeros = ops.zeros((batch, self.units), dtype=features.dtype)
        states = [(zeros, zeros) for _ in range(self.num_layers)]
        if self.initial_state == "mean":
            states = self._lstm_step(ops.mean(features, axis=1), states)
        glimpses, maps = [], []
        for step in range(self.recurrences):
            if step > 0:
                states = self._lstm_step(glimpses[-1], states)
            hidden = states[-1][0]
            # Eq. 8: e_{t,i} = Nᵀ tanh(W1 h_{t-1} + W2 f_i + b)  -> [B, L].
            scores = ops.tanh(projected + ops.expand_dims(ops.matmul(hidden, self.w1), 1))
            logits = ops.squeeze(ops.matmul(scores, self.attention_n), -1)
            # Eq. 9: softmax over the L locations.
            attention = ops.softmax(logits, axis=-1)
            # Eq. 10: x_t = Σ_i a_{t,i} f_i.
            glimpses.append(ops.sum(ops.expand_dims(attention, -1) * features, axis=1))
            maps.append(attention)
        output = ops.concatenate(glimpses, axis=-1)
        attention = ops.stack(maps, axis=1)
        if len(inputs.shape) == 4:
            attention = ops.reshape(attention, (batch, self.recurrences, height, width))
        return output, attention

    def compute_output_shape(self, input_shape):
        depth = input_shape[-1]
        features = (input_shape[0], self.recurrences * depth)
        attention = (input_shape[0], self.recurrences) + tuple(input_shape[1:-1])
        return features, attention

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "recurrences": self.recurrences,
                "num_layers": self.num_layers,
                "attention_units": self.attention_units,
                "use_peepholes": self.use_peepholes,
                "initial_state": self.initial_state,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfaesthetic")
class _ForgetBiasOnes(keras.initializers.Initializer):
    """LSTM bias initializer: zeros, except ones for the forget gate (Jozefowicz et al. 2015).

    Args:
        units: LSTM hidden size (the bias has `4 * units` entries, order i, f, c, o).
    """

    def __init__(self, units):
        self.units = units

    def __call__(self, shape, dtype=None):
        units = self.units
        return ops.concatenate(
            [ops.zeros((units,), dtype=dtype), ops.ones((units,), dtype=dtype), ops.zeros((2 * units,), dtype=dtype)]
        )

    def get_config(self):
        return {"units": self.units}
