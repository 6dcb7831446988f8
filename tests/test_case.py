"""Shared test base (after keras-hub's `TestCase`): layer, serialisation and saving checks."""

import inspect
import json
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


def _accepts_training(layer):
    return "training" in inspect.signature(layer.call).parameters


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
        """get_config/from_config round trip gives an equal config, also through JSON text."""
        config = instance.get_config()
        revived = instance.__class__.from_config(config)
        self.assertEqual(config, revived.get_config())
        serialized = keras.saving.serialize_keras_object(instance)
        revived = keras.saving.deserialize_keras_object(serialized)
        self.assertEqual(config, revived.get_config())
        # The config must be JSON (what `.keras` files store), and survive it.
        revived_json = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
        self.assertEqual(json.loads(json.dumps(config)), json.loads(json.dumps(revived_json.get_config())))
        return revived

    def run_layer_test(
        self,
        layer_cls,
        init_kwargs,
        input_data,
        expected_output_shape=None,
        fit_target_fn=None,
        expected_num_trainable_weights=None,
        expected_num_non_trainable_weights=None,
        zero_gradient_weights=(),
        run_mixed_precision_check=True,
        call_with_list=False,
    ):
        """Build, symbolic call, eager call, gradients, one `fit` step, configs, mixed precision.

        After keras-hub's `run_layer_test`: besides running, it asserts that

        - the symbolic and the eager outputs have the same structure (and the expected shape);
        - the layer has the expected number of trainable / non-trainable weights;
        - every trainable weight gets a finite, non-zero gradient from the (first) output
          (a layer whose weights are disconnected from its output fails here), except
          the weights named in `zero_gradient_weights`, which must get exactly zero
          (e.g. a learned "no comment" vector on inputs that all have comments);
        - one `fit` step changes every trainable weight that has a gradient;
        - the config survives `get_config`/`from_config` and a JSON round trip;
        - under the `mixed_float16` policy the layer runs and its outputs are finite.

        Args:
            layer_cls: the layer class.
            init_kwargs: constructor kwargs (keep them tiny).
            input_data: a tensor, or a list/tuple of tensors passed positionally.
            expected_output_shape: optional shape (or nested shapes) of the eager output.
            fit_target_fn: maps the layer's output(s) to the tensor the fit step regresses;
                defaults to the first output.
            expected_num_trainable_weights: when set, `len(layer.trainable_weights)`.
            expected_num_non_trainable_weights: when set, `len(layer.non_trainable_weights)`.
            zero_gradient_weights: substrings of weight paths whose gradient must be zero
                on this input (documented reasons only).
            run_mixed_precision_check: call the layer once under `mixed_float16`.
            call_with_list: pass the inputs as one list (a layer whose `call` takes a
                list of tensors) instead of positionally.
        """
        inputs = input_data if isinstance(input_data, (list, tuple)) else [input_data]
        layer = layer_cls(**init_kwargs)

        def apply(target, xs, **kwargs):
            return target(list(xs), **kwargs) if call_with_list else target(*xs, **kwargs)

        # Symbolic call.
        sym_inputs = [keras.Input(shape=np.shape(x)[1:], dtype=keras.backend.standardize_dtype(np.asarray(x).dtype)) for x in inputs]
        sym_out = apply(layer, sym_inputs)
        # Eager call.
        eager_out = apply(layer, inputs)
        if expected_output_shape is not None:
            shapes = tf.nest.map_structure(lambda t: tuple(t.shape), eager_out)
            self.assertEqual(tuple(tf.nest.flatten(shapes)), tuple(tf.nest.flatten(expected_output_shape)))
        tf.nest.assert_same_structure(
            tf.nest.map_structure(lambda t: 0, sym_out), tf.nest.map_structure(lambda t: 0, eager_out)
        )
        if expected_num_trainable_weights is not None:
            self.assertLen(layer.trainable_weights, expected_num_trainable_weights)
        if expected_num_non_trainable_weights is not None:
            self.assertLen(layer.non_trainable_weights, expected_num_non_trainable_weights)
        pick = fit_target_fn or (lambda out: tf.nest.flatten(out)[0])
        # Gradients: a random projection of the output, so no weight can hide behind a
        # normalisation that makes a plain sum constant.
        projection = np.random.default_rng(0).normal(size=tuple(pick(eager_out).shape)).astype("float32")
        with tf.GradientTape() as tape:
            out = pick(apply(layer, inputs, training=True) if _accepts_training(layer) else apply(layer, inputs))
            loss = tf.reduce_sum(tf.cast(out, "float32") * projection)
        grads = tape.gradient(loss, layer.trainable_weights)
        moved = []
        for weight, grad in zip(layer.trainable_weights, grads):
            path = getattr(weight, "path", weight.name)
            expect_zero = any(s in path for s in zero_gradient_weights)
            norm = 0.0 if grad is None else float(tf.norm(tf.cast(tf.convert_to_tensor(grad), "float32")))
            self.assertTrue(np.isfinite(norm), f"non-finite gradient for {path}")
            if expect_zero:
                self.assertEqual(norm, 0.0, f"{path} was expected to get no gradient on this input")
            else:
                self.assertGreater(norm, 0.0, f"{path} gets no gradient from the layer's output")
                moved.append(weight)
        # One fit step through a functional wrapper: finite loss, the weights move.
        model = keras.Model(sym_inputs, pick(sym_out))
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
        before = [np.array(keras.ops.convert_to_numpy(w)) for w in moved]
        target = np.asarray(keras.ops.convert_to_numpy(pick(eager_out)), dtype="float32") + projection
        history = model.fit([np.asarray(x) for x in inputs], target, batch_size=len(inputs[0]), epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        for weight, old in zip(moved, before):
            self.assertFalse(
                np.array_equal(old, keras.ops.convert_to_numpy(weight)),
                f"{getattr(weight, 'path', weight.name)} did not change after a fit step",
            )
        # Config round trips (Python and JSON).
        self.run_serialization_test(layer)
        if run_mixed_precision_check:
            self.run_mixed_precision_test(layer_cls, init_kwargs, inputs, call_with_list=call_with_list)
        return layer, eager_out

    def run_mixed_precision_test(self, layer_cls, init_kwargs, inputs, call_with_list=False):
        """The layer runs under `mixed_float16` and its floating outputs are finite."""
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_float16")
        try:
            layer = layer_cls(**init_kwargs)
            out = layer(list(inputs)) if call_with_list else layer(*inputs)
            self.assertEqual(layer.compute_dtype, "float16")
            for t in tf.nest.flatten(out):
                value = np.asarray(keras.ops.convert_to_numpy(t))
                if np.issubdtype(value.dtype, np.floating):
                    self.assertTrue(np.all(np.isfinite(value)), f"non-finite output under mixed_float16 ({layer_cls.__name__})")
        finally:
            keras.config.set_dtype_policy(previous)

    def run_model_saving_test(self, model, input_data, atol=1e-5):
        """`.keras` save + load gives the same outputs (inference mode)."""
        path = os.path.join(self.get_temp_dir(), "model.keras")
        expected = model(input_data, training=False)
        model.save(path)
        restored = keras.saving.load_model(path)
        actual = restored(input_data, training=False)
        self.assertAllCloseNested(expected, actual, atol=atol)
        return restored
