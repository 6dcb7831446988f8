"""Shared test base (after keras-hub's `TestCase`): layer, serialisation and saving checks."""

import os

import keras
import numpy as np
import tensorflow as tf


def _to_numpy(tree):
    return tf.nest.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), tree)


def _assert_all_close(a, b, atol=1e-5, rtol=1e-5):
    a, b = _to_numpy(a), _to_numpy(b)
    tf.nest.assert_same_structure(a, b)
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
        np.testing.assert_allclose(x, y, atol=atol, rtol=rtol)


class TestCase(tf.test.TestCase):
    """Base class for layer, loss and model tests."""

    # tf.test.TestCase's deprecated `test_session` context manager would otherwise be
    # collected by pytest as a (skipped) test in every subclass.
    test_session = None

    def setUp(self):
        super().setUp()
        keras.config.disable_traceback_filtering()
        keras.utils.set_random_seed(1234)

    def assertAllCloseNested(self, a, b, atol=1e-5, rtol=1e-5):
        _assert_all_close(a, b, atol=atol, rtol=rtol)

    def run_serialization_test(self, instance):
        """get_config/from_config round trip gives an equal config."""
        config = instance.get_config()
        revived = instance.__class__.from_config(config)
        self.assertEqual(config, revived.get_config())
        serialized = keras.saving.serialize_keras_object(instance)
        revived = keras.saving.deserialize_keras_object(serialized)
        self.assertEqual(config, revived.get_config())
        return revived

    def run_layer_test(self, layer_cls, init_kwargs, input_data, expected_output_shape=None, fit_target_fn=None):
        """Build, symbolic call, eager call, one `fit` step, config round trip.

        Args:
            layer_cls: the layer class.
            init_kwargs: constructor kwargs (keep them tiny).
            input_data: a tensor, or a list/tuple of tensors passed positionally.
            expected_output_shape: optional shape (or nested shapes) of the eager output.
            fit_target_fn: maps the layer's output(s) to the tensor the fit step regresses;
                defaults to the first output.
        """
        inputs = input_data if isinstance(input_data, (list, tuple)) else [input_data]
        layer = layer_cls(**init_kwargs)
        # Symbolic call.
        sym_inputs = [keras.Input(shape=np.shape(x)[1:], dtype=keras.backend.standardize_dtype(np.asarray(x).dtype)) for x in inputs]
        sym_out = layer(*sym_inputs)
        # Eager call.
        eager_out = layer(*inputs)
        if expected_output_shape is not None:
            shapes = tf.nest.map_structure(lambda t: tuple(t.shape), eager_out)
            self.assertEqual(tuple(tf.nest.flatten(shapes)), tuple(tf.nest.flatten(expected_output_shape)))
        tf.nest.assert_same_structure(
            tf.nest.map_structure(lambda t: 0, sym_out), tf.nest.map_structure(lambda t: 0, eager_out)
        )
        # One fit step through a functional wrapper.
        pick = fit_target_fn or (lambda out: tf.nest.flatten(out)[0])
        model = keras.Model(sym_inputs, pick(sym_out))
        model.compile(optimizer="sgd", loss="mse")
        target = np.zeros(tuple(pick(eager_out).shape), dtype="float32")
        history = model.fit([np.asarray(x) for x in inputs], target, batch_size=len(inputs[0]), epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        # Config round trip.
        self.run_serialization_test(layer)
        return layer, eager_out

    def run_model_saving_test(self, model, input_data, atol=1e-5):
        """`.keras` save + load gives the same outputs (inference mode)."""
        path = os.path.join(self.get_temp_dir(), "model.keras")
        expected = model(input_data, training=False)
        model.save(path)
        restored = keras.saving.load_model(path)
        actual = restored(input_data, training=False)
        self.assertAllCloseNested(expected, actual, atol=atol)
        return restored
