"""The shared test base catches what it promises to catch (a check that cannot fail is no check)."""

import keras
import numpy as np
import pytest

from tests.test_case import TestCase


@keras.saving.register_keras_serializable(package="tfaesthetic_tests")
class _HalfConnected(keras.layers.Layer):
    """A dense map with one extra weight that never reaches the output."""

    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.unused = self.add_weight(shape=(self.units,), name="unused")

    def call(self, x):
        return keras.ops.matmul(x, self.kernel)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class TestCaseSelfTest(TestCase):
    def _x(self):
        return np.random.default_rng(0).normal(size=(3, 4)).astype("float32")

    def test_disconnected_weight_fails(self):
        with pytest.raises(AssertionError, match="unused gets no gradient"):
            self.run_layer_test(_HalfConnected, {}, self._x())

    def test_wrong_weight_count_fails(self):
        with pytest.raises(AssertionError):
            self.run_layer_test(_HalfConnected, {}, self._x(), expected_num_trainable_weights=1, zero_gradient_weights=("unused",))

    def test_declared_zero_gradient_passes(self):
        self.run_layer_test(
            _HalfConnected, {}, self._x(), expected_output_shape=(3, 2),
            expected_num_trainable_weights=2, expected_num_non_trainable_weights=0, zero_gradient_weights=("unused",),
        )
