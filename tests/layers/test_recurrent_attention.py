"""RecurrentAttention (seed 003 §III-A, Eq. 3-10) against a NumPy reference written from the paper."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import TestCase
from tfaesthetic.layers.recurrent_attention import RecurrentAttention


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_recurrent_attention(feature_map, weights, *, units, num_layers, recurrences, peepholes, initial_state):
    """Eq. 3-10 with the layer's weights, one example and one location at a time.

    `weights` maps names to arrays: per LSTM layer `l`: `lstm{l}_kernel` [in, 4u] (gates i, f, c, o),
    `lstm{l}_recurrent_kernel`, `lstm{l}_bias`, `lstm{l}_peephole_{i,f,o}` (diagonal W_c*);
    attention: `attention_w1` [u, A], `attention_w2` [D, A], `attention_b` [A], `attention_n` [A, 1].
    """
    batch, height, width, depth = feature_map.shape
    locations = height * width
    all_glimpses = np.zeros((batch, recurrences * depth))
    all_maps = np.zeros((batch, recurrences, height, width))
    for b in range(batch):
        f = feature_map[b].reshape(locations, depth)  # Eq. 2: F = {f_1 .. f_L}
        h = [np.zeros(units) for _ in range(num_layers)]
        c = [np.zeros(units) for _ in range(num_layers)]

        def lstm(x):
            for layer in range(num_layers):
                # Split the fused matrices into the per-gate W_x*, W_h*, b_* (order i, f, c, o).
                w_x = np.split(weights[f"lstm{layer}_kernel"], 4, axis=1)
                w_h = np.split(weights[f"lstm{layer}_recurrent_kernel"], 4, axis=1)
                bias = np.split(weights[f"lstm{layer}_bias"], 4)
                pre = [x @ w_x[k] + h[layer] @ w_h[k] + bias[k] for k in range(4)]
                w_c = {g: weights[f"lstm{layer}_peephole_{g}"] if peepholes else 0.0 for g in "ifo"}
                i_t = _sigmoid(pre[0] + w_c["i"] * c[layer])  # Eq. 3
                f_t = _sigmoid(pre[1] + w_c["f"] * c[layer])  # Eq. 4
                o_t = _sigmoid(pre[3] + w_c["o"] * c[layer])  # Eq. 5 (c_{t-1}, as printed)
                c[layer] = f_t * c[layer] + i_t * np.tanh(pre[2])  # Eq. 6
                h[layer] = o_t * np.tanh(c[layer])  # Eq. 7
                x = h[layer]

        if initial_state == "mean":
            lstm(f.mean(axis=0))
        x_prev = None
        for t in range(recurrences):
            if t > 0:
                lstm(x_prev)
            e = np.array(
                [
                    np.tanh(h[-1] @ weights["attention_w1"] + f[i] @ weights["attention_w2"] + weights["attention_b"])
                    @ weights["attention_n"][:, 0]
                    for i in range(locations)
                ]
            )  # Eq. 8
            a = np.exp(e - e.max()) / np.exp(e - e.max()).sum()  # Eq. 9
            x_prev = (a[:, None] * f).sum(axis=0)  # Eq. 10
            all_glimpses[b, t * depth : (t + 1) * depth] = x_prev
            all_maps[b, t] = a.reshape(height, width)
    return all_glimpses, all_maps


def _named_weights(layer):
    return {w.path.split("/")[-1]: np.asarray(w.numpy(), dtype="float64") for w in layer.weights}


class RecurrentAttentionTest(TestCase):
    def _features(self, batch=3, height=3, width=4, depth=5):
        return np.random.default_rng(0).normal(size=(batch, height, width, depth)).astype("float32")

    def test_layer_basics(self):
        self.run_layer_test(
            RecurrentAttention,
            {"units": 6, "recurrences": 2, "attention_units": 4},
            self._features(batch=4),
            expected_output_shape=((4, 10), (4, 2, 3, 4)),
            # one LSTM layer (kernel, recurrent kernel, bias, 3 peepholes) + W1, W2, b, N (Eq. 8)
            expected_num_trainable_weights=10,
            expected_num_non_trainable_weights=0,
        )

    def test_layer_basics_locations_input(self):
        self.run_layer_test(
            RecurrentAttention,
            {"units": 4, "recurrences": 3, "num_layers": 2, "attention_units": 3, "initial_state": "zeros"},
            self._features(batch=2).reshape(2, 12, 5),
            expected_output_shape=((2, 15), (2, 3, 12)),
            expected_num_trainable_weights=16,  # two LSTM layers of 6 + the 4 attention weights
            expected_num_non_trainable_weights=0,
        )

    def _randomise(self, layer):
        # Peepholes start at zero; give every weight a random value so each term of Eq. 3-8 matters.
        rng = np.random.default_rng(1)
        layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()])

    def test_eq3_10_matches_numpy(self):
        features = self._features()
        for num_layers, recurrences, peepholes, initial_state in [
            (1, 3, True, "mean"),
            (2, 2, True, "zeros"),
            (3, 1, False, "mean"),
        ]:
            layer = RecurrentAttention(
                units=4,
                recurrences=recurrences,
                num_layers=num_layers,
                attention_units=6,
                use_peepholes=peepholes,
                initial_state=initial_state,
            )
            layer(features)
            self._randomise(layer)
            glimpses, maps = layer(features)
            ref_glimpses, ref_maps = numpy_recurrent_attention(
                features.astype("float64"),
                _named_weights(layer),
                units=4,
                num_layers=num_layers,
                recurrences=recurrences,
                peepholes=peepholes,
                initial_state=initial_state,
            )
            np.testing.assert_allclose(np.asarray(maps), ref_maps, atol=1e-5, rtol=1e-4)
            np.testing.assert_allclose(np.asarray(glimpses), ref_glimpses, atol=1e-5, rtol=1e-4)

    def test_eq8_10_attention_matches_numpy(self):
        """First glimpse from h_0 = 0: Eq. 8-10 alone, with the layer's own W2, b, N."""
        features = self._features(batch=2, height=4, width=4, depth=3)
        layer = RecurrentAttention(units=5, recurrences=1, attention_units=4, initial_state="zeros")
        layer(features)
        self._randomise(layer)
        glimpses, maps = (np.asarray(t) for t in layer(features))
        w = _named_weights(layer)
        f = features.reshape(2, 16, 3).astype("float64")
        e = np.tanh(f @ w["attention_w2"] + w["attention_b"]) @ w["attention_n"][:, 0]  # Eq. 8, W1 h_0 = 0
        a = np.exp(e) / np.exp(e).sum(axis=1, keepdims=True)  # Eq. 9
        x = np.einsum("bl,bld->bd", a, f)  # Eq. 10
        np.testing.assert_allclose(maps.reshape(2, 16), a, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(glimpses, x, atol=1e-5, rtol=1e-4)

    def test_eq9_10_maps_sum_to_one_and_glimpses_are_weighted_sums(self):
        features = self._features(batch=2, height=4, width=4, depth=3)
        layer = RecurrentAttention(units=5, recurrences=3, attention_units=4)
        glimpses, maps = (np.asarray(t) for t in layer(features))
        np.testing.assert_allclose(maps.sum(axis=(2, 3)), np.ones((2, 3)), atol=1e-5)
        self.assertTrue(np.all(maps > 0))
        expected = np.einsum("bthw,bhwd->btd", maps, features).reshape(2, 9)
        np.testing.assert_allclose(glimpses, expected, atol=1e-5)
        # The steps attend differently: the LSTM state changes the map (Eq. 8's W1 h_{t-1}).
        self.assertGreater(np.abs(maps[:, 0] - maps[:, 1]).max(), 1e-6)

    def test_attention_follows_content(self):
        """A location whose feature the attention network scores highest gets the most weight."""
        layer = RecurrentAttention(units=3, recurrences=1, attention_units=2, initial_state="zeros")
        features = np.zeros((1, 2, 2, 2), dtype="float32")
        features[0, 1, 0] = [3.0, 0.0]
        layer(features)
        weights = layer.get_weights()
        names = [w.path.split("/")[-1] for w in layer.weights]
        values = dict(zip(names, weights))
        values["attention_w2"] = np.array([[1.0, 0.0], [0.0, 0.0]], "float32")
        values["attention_n"] = np.array([[2.0], [0.0]], "float32")
        layer.set_weights([values[n] for n in names])
        _, maps = layer(features)
        self.assertEqual(int(np.argmax(np.asarray(maps)[0, 0])), 2)  # row 1, col 0 of a 2x2 grid

    def test_jit_compile_and_keras_saving(self):
        features = self._features(batch=2)
        inputs = keras.Input((3, 4, 5))
        glimpses, maps = RecurrentAttention(units=4, recurrences=2, num_layers=2, attention_units=3)(inputs)
        model = keras.Model(inputs, {"features": glimpses, "attention": maps})
        self.run_model_saving_test(model, features)
        expected = model.predict(features, verbose=0)
        model.compile(jit_compile=True)
        compiled = model.predict(features, verbose=0)
        self.assertAllCloseNested(expected, compiled, atol=1e-5)

    def test_saved_model_export(self):
        features = self._features(batch=2)
        inputs = keras.Input((3, 4, 5))
        outputs = RecurrentAttention(units=4, recurrences=3, attention_units=3)(inputs)
        model = keras.Model(inputs, outputs)
        path = os.path.join(self.get_temp_dir(), "export")
        model.export(path, verbose=False)
        reloaded = tf.saved_model.load(path)
        actual = reloaded.serve(tf.constant(features))
        self.assertAllCloseNested(model(features), actual, atol=1e-5)

    def test_dynamic_spatial_size(self):
        inputs = keras.Input((None, None, 5))
        glimpses, maps = RecurrentAttention(units=4, recurrences=2, attention_units=3)(inputs)
        model = keras.Model(inputs, [glimpses, maps])
        out = model.predict(self._features(batch=2, height=2, width=6), verbose=0)
        self.assertEqual(out[0].shape, (2, 10))
        self.assertEqual(out[1].shape, (2, 2, 2, 6))

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="recurrences=0"):
            RecurrentAttention(recurrences=0)
        with pytest.raises(ValueError, match="initial_state='first'"):
            RecurrentAttention(initial_state="first")
        with pytest.raises(ValueError, match=r"input_shape=\(2, 5\)"):
            RecurrentAttention(units=2).build((2, 5))
