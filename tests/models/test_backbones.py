"""Backbones by name: output grids, preprocessing, local weights files, freezing, saving and export."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import TestCase
from tfaesthetic.models import backbones
from tfaesthetic.models.backbones import PixelPreprocessing, default_image_size, get_backbone


def _pixels(batch, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(batch, size, size, 3)).astype("float32")


class TinyAndAlexNetTest(TestCase):
    def test_tiny_shape_and_size(self):
        model = get_backbone("tiny")
        self.assertEqual(default_image_size("tiny"), 48)
        self.assertEqual(model.input_shape, (None, 48, 48, 3))
        self.assertEqual(model.output_shape, (None, 6, 6, 32))
        self.assertLess(model.count_params(), 50_000)
        out = np.asarray(model(_pixels(2, 48)))
        self.assertEqual(out.shape, (2, 6, 6, 32))
        self.assertTrue(np.all(np.isfinite(out)))
        for size, grid in ((32, 4), (64, 8)):
            self.assertEqual(get_backbone("tiny", image_size=size).output_shape, (None, grid, grid, 32))

    def test_tiny_bn_normalises_each_convolution(self):
        """tiny_bn: tiny's three strided convs with batch normalisation before each ReLU."""
        model = get_backbone("tiny_bn", image_size=32)
        self.assertEqual(default_image_size("tiny_bn"), 48)
        self.assertEqual(model.output_shape, (None, 4, 4, 32))
        norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        self.assertEqual([c.filters for c in convs], [16, 32, 32])
        self.assertEqual(len(norms), 3)
        self.assertFalse(any(c.use_bias for c in convs))  # the normalisation's beta is the bias
        self.assertEqual(len(model.trainable_weights), 9)  # 3 kernels, 3 gammas, 3 betas
        # In training mode each channel of conv1 is normalised over the batch before the
        # ReLU: the mean of the ReLU outputs is that of max(0, N(0, 1)), 1 / sqrt(2 pi).
        first = keras.Model(model.input, model.get_layer("relu1").output)
        out = np.asarray(first(_pixels(16, 32), training=True))
        self.assertAllClose(out.mean(axis=(0, 1, 2)), np.full(16, 1 / np.sqrt(2 * np.pi)), atol=0.05)
        with pytest.raises(ValueError, match="No ImageNet weights ship with the 'tiny_bn' backbone"):
            get_backbone("tiny_bn", weights="imagenet")
        path = os.path.join(self.get_temp_dir(), "tiny_bn.weights.h5")
        model.save_weights(path)
        loaded = get_backbone("tiny_bn", image_size=32, weights=path)
        self.assertAllClose(model(_pixels(2, 32)), loaded(_pixels(2, 32)), atol=1e-5)

    def test_alexnet_five_conv_layers(self):
        model = get_backbone("alexnet")
        self.assertEqual(model.input_shape, (None, 227, 227, 3))
        self.assertEqual(model.output_shape, (None, 6, 6, 256))
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        self.assertEqual([c.filters for c in convs], [96, 256, 384, 384, 256])
        self.assertEqual([c.kernel_size for c in convs], [(11, 11), (5, 5), (3, 3), (3, 3), (3, 3)])
        self.assertFalse(any(isinstance(layer, keras.layers.Dense) for layer in model.layers))
        self.assertEqual(np.asarray(model(_pixels(1, 227))).shape, (1, 6, 6, 256))

    def test_local_weights_file_round_trip(self):
        for name, size in (("tiny", 48), ("alexnet", 67)):
            source = get_backbone(name, image_size=size)
            path = os.path.join(self.get_temp_dir(), f"{name}.weights.h5")
            source.save_weights(path)
            loaded = get_backbone(name, image_size=size, weights=path)
            fresh = get_backbone(name, image_size=size)
            pixels = _pixels(2, size)
            self.assertAllClose(source(pixels), loaded(pixels), atol=1e-5)
            self.assertGreater(np.abs(np.asarray(fresh(pixels)) - np.asarray(source(pixels))).max(), 1e-4)

    def test_weights_file_of_another_architecture_fails_clearly(self):
        path = os.path.join(self.get_temp_dir(), "tiny.weights.h5")
        get_backbone("tiny").save_weights(path)
        message = r"Could not load backbone weights for 'alexnet' from '.*tiny\.weights\.h5'"
        with pytest.raises(ValueError, match=message):
            get_backbone("alexnet", image_size=67, weights=path)

    def test_trainable_flag(self):
        self.assertEqual(len(get_backbone("tiny", trainable=False).trainable_weights), 0)
        self.assertEqual(len(get_backbone("tiny").trainable_weights), 6)

    def test_frozen_backbone_does_not_change_in_fit(self):
        backbone = get_backbone("tiny", image_size=32, trainable=False)
        before = [w.copy() for w in backbone.get_weights()]
        inputs = keras.Input((32, 32, 3))
        outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(backbone(inputs)))
        model = keras.Model(inputs, outputs)
        model.compile(optimizer="sgd", loss="mse")
        model.fit(_pixels(4, 32), np.ones((4, 1)), epochs=1, verbose=0)
        for a, b in zip(before, backbone.get_weights()):
            np.testing.assert_array_equal(a, b)

    def test_keras_saving_and_savedmodel_export(self):
        model = get_backbone("tiny", image_size=32)
        pixels = _pixels(2, 32)
        self.run_model_saving_test(model, pixels)
        path = os.path.join(self.get_temp_dir(), "export")
        model.export(path, verbose=False)
        reloaded = tf.saved_model.load(path)
        self.assertAllClose(model(pixels), reloaded.serve(tf.constant(pixels)), atol=1e-5)

    def test_bad_names_and_arguments(self):
        names = r"Expected one of \['vgg16', 'inception_v3', .*'tiny', 'tiny_bn'\]\. Received: name='resnet'"
        with pytest.raises(ValueError, match=names):
            get_backbone("resnet")
        with pytest.raises(ValueError, match="Received: name='vgg'"):
            default_image_size("vgg")
        with pytest.raises(ValueError, match=r"needs image_size >= 75\. Received: image_size=64"):
            get_backbone("inception_v3", image_size=64)
        with pytest.raises(ValueError, match="No ImageNet weights ship with the 'alexnet' backbone"):
            get_backbone("alexnet", weights="imagenet")
        with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
            get_backbone("tiny", weights="/nonexistent/missing.weights.h5")
        with pytest.raises(ValueError, match="Received: weights=3"):
            get_backbone("tiny", weights=3)

    def test_default_sizes(self):
        self.assertEqual(
            {name: default_image_size(name) for name in backbones.BACKBONE_NAMES},
            {"vgg16": 224, "inception_v3": 299, "alexnet": 227, "mobilenet_v3": 224, "efficientnet": 224, "tiny": 48,
             "tiny_bn": 48},
        )


class PixelPreprocessingTest(TestCase):
    def test_modes_match_numpy(self):
        pixels = _pixels(2, 4)
        caffe = pixels[..., ::-1] - np.array([103.939, 116.779, 123.68])
        self.assertAllClose(PixelPreprocessing("caffe")(pixels), caffe, atol=1e-4)
        self.assertAllClose(PixelPreprocessing("tf")(pixels), pixels / 127.5 - 1.0, atol=1e-5)
        self.assertAllClose(PixelPreprocessing("unit")(pixels), pixels / 255.0, atol=1e-6)

    def test_matches_keras_preprocess_input(self):
        pixels = _pixels(2, 4)
        self.assertAllClose(
            PixelPreprocessing("caffe")(pixels), keras.applications.vgg16.preprocess_input(pixels.copy()), atol=1e-4
        )
        self.assertAllClose(
            PixelPreprocessing("tf")(pixels), keras.applications.inception_v3.preprocess_input(pixels.copy()), atol=1e-5
        )

    def test_layer_basics(self):
        self.run_layer_test(PixelPreprocessing, {"mode": "tf"}, _pixels(2, 4), expected_output_shape=(2, 4, 4, 3))
        with pytest.raises(ValueError, match="mode='bgr'"):
            PixelPreprocessing("bgr")


@pytest.mark.slow
class KerasApplicationsTest(TestCase):
    """The Keras-application backbones, built without weights (no download)."""

    def test_vgg16_cut_after_pool5(self):
        model = get_backbone("vgg16", image_size=64)
        self.assertEqual(model.layers[-1].name, "block5_pool")
        self.assertEqual(model.output_shape, (None, 2, 2, 512))
        self.assertEqual(np.asarray(model(_pixels(1, 64))).shape, (1, 2, 2, 512))
        self.assertEqual(get_backbone("vgg16").output_shape, (None, 7, 7, 512))
        # CFAN's 320 px input -> 10x10x512 (seed 000 §4.2).
        self.assertEqual(get_backbone("vgg16", image_size=320).output_shape, (None, 10, 10, 512))

    def test_inception_v3_mixed7_is_17x17(self):
        model = get_backbone("inception_v3")
        self.assertEqual(model.layers[-1].name, "mixed7")
        self.assertEqual(model.output_shape, (None, 17, 17, 768))
        # Shape inference only: an eager pass through Inception costs ~10 s on a shared CPU.
        self.assertEqual(get_backbone("inception_v3", image_size=75).output_shape, (None, 3, 3, 768))

    def test_mobilenet_v3_large_and_efficientnet_b0(self):
        mobilenet = get_backbone("mobilenet_v3", image_size=64)
        self.assertEqual(mobilenet.output_shape, (None, 2, 2, 960))
        self.assertEqual(get_backbone("mobilenet_v3").output_shape, (None, 7, 7, 960))
        efficientnet = get_backbone("efficientnet", image_size=64)
        self.assertEqual(efficientnet.output_shape, (None, 2, 2, 1280))
        # EfficientNet's in-graph Normalization layer works without ImageNet statistics.
        self.assertTrue(np.all(np.isfinite(np.asarray(efficientnet(_pixels(1, 64))))))

    def test_frozen_keras_application(self):
        model = get_backbone("mobilenet_v3", image_size=32, trainable=False)
        self.assertEqual(len(model.trainable_weights), 0)
