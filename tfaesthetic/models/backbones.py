"""Convolutional feature extractors by name.

Every backbone takes float32 pixels in **[0, 255]**, shape `[B, S, S, 3]`, applies its
own preprocessing inside the graph (so a `.keras` file or an exported SavedModel takes
raw pixels), and returns the last convolutional feature map `[B, h, w, D]` that the
attention layers look at.

| name | cut | default size | output at the default size |
|---|---|---|---|
| `vgg16` | after `block5_pool` (the 5th conv block *with* its pooling layer) | 224 | 7×7×512 |
| `inception_v3` | `mixed7` (the last 17×17 block, before the auxiliary head) | 299 | 17×17×768 |
| `alexnet` | after pool5 (5 conv layers, no FC) | 227 | 6×6×256 |
| `mobilenet_v3` | MobileNetV3-**Large**, `include_top=False` | 224 | 7×7×960 |
| `efficientnet` | EfficientNet-B0, `include_top=False` | 224 | 7×7×1280 |
| `tiny` | 3 strided 3×3 convs (tests and demos, ~14k params) | 48 | 6×6×32 |
| `tiny_bn` | `tiny` with batch normalisation before each ReLU (the CFAN/VBPR demos) | 48 | 6×6×32 |

VGG-16 is cut after `block5_pool`: seed 003 §III-A takes "the first 5 convolutional
blocks" and seed 000 §4.2 states that a 320×320 input is "reduced into 10×10×512
after five pooling layers", which fixes the cut after pool5 for both papers.
"""

import functools
import os

import keras
from keras import layers
from keras import ops

_DEFAULT_IMAGE_SIZE = {
    "vgg16": 224,
    "inception_v3": 299,
    "alexnet": 227,
    "mobilenet_v3": 224,
    "efficientnet": 224,
    "tiny": 48,
    "tiny_bn": 48,
}

# Smallest input each architecture accepts (Keras applications' own limits; AlexNet's
# 11×11/4 stem and three 3×3/2 poolings need 67 px to keep a 1×1 output).
_MIN_IMAGE_SIZE = {
    "vgg16": 32,
    "inception_v3": 75,
    "alexnet": 67,
    "mobilenet_v3": 32,
    "efficientnet": 32,
    "tiny": 8,
    "tiny_bn": 8,
}

BACKBONE_NAMES = tuple(_DEFAULT_IMAGE_SIZE)
# Backbones defined here (no Keras application behind them): no ImageNet weights.
NO_IMAGENET_WEIGHTS = ("alexnet", "tiny", "tiny_bn")

# ImageNet channel means in BGR order (Caffe-trained VGG/AlexNet convention).
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="tfaesthetic")
class PixelPreprocessing(layers.Layer):
    """Maps [0, 255] RGB pixels to what a backbone was trained on.

    A serialisable replacement for the `keras.applications.*.preprocess_input`
    functions (which would otherwise need a `Lambda` layer).

    Args:
        mode: `"caffe"` (RGB → BGR, subtract the ImageNet BGR mean; VGG-16, AlexNet),
            `"tf"` (scale to [-1, 1]; Inception-v3) or `"unit"` (scale to [0, 1]).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: float tensor `[..., 3]`, RGB pixels in [0, 255].

    Reference:
        The conventions of `keras.applications.imagenet_utils.preprocess_input`
        (`caffe` for Simonyan & Zisserman's VGG-16, `tf` for Szegedy et al.'s
        Inception-v3), which a test compares against.
    """

    MODES = ("caffe", "tf", "unit")

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"`mode` must be one of {self.MODES}. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1)
            return x - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        return x / 255.0

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config


def default_image_size(name):
    """Input side length the backbone was designed for.

    Args:
        name: a backbone name (see `BACKBONE_NAMES`).

    Returns:
        int, e.g. 224 for `vgg16`, 299 for `inception_v3`.
    """
    _check_name(name)
    return _DEFAULT_IMAGE_SIZE[name]


def _check_name(name):
    if name not in _DEFAULT_IMAGE_SIZE:
        raise ValueError(f"Unknown backbone. Expected one of {list(BACKBONE_NAMES)}. Received: name={name!r}")


def _is_weights_file(weights):
    return isinstance(weights, (str, os.PathLike)) and str(weights) != "imagenet"


def get_backbone(name, *, image_size=None, weights=None, trainable=True, skip_mismatch=False):
    """Builds a feature-map backbone by name.

    Args:
        name: one of `vgg16`, `inception_v3`, `alexnet`, `mobilenet_v3`,
            `efficientnet`, `tiny`, `tiny_bn`.
        image_size: input side length; defaults to `default_image_size(name)`. Any
            size at or above the architecture's minimum is accepted (the output grid
            follows it, e.g. `vgg16` at 320 → 10×10).
        weights: `None` (random init), `"imagenet"` (Keras download; `vgg16`,
            `inception_v3`, `mobilenet_v3`, `efficientnet` only) or the path of a local
            weights file: a Keras 3 `.weights.h5` saved from this function's model
            (`backbone.save_weights(path)`), or for the Keras-application backbones a
            Keras ImageNet "notop" `.h5` file as `keras.applications` downloads it
            (for offline machines).
        trainable: `False` freezes every layer (batch norms then run in inference
            mode).
        skip_mismatch: passed to `load_weights` for `.weights.h5` files: skip layers
            whose weight shapes differ instead of raising.

    Returns:
        A `keras.Model` named `name` mapping `[B, S, S, 3]` float32 pixels in [0, 255]
        to the feature map `[B, h, w, D]`.

    Reference:
        Zhang et al., "Multimodal recurrent attention CNN for image aesthetic
        prediction", IEEE TMM 2020, §III-A and §IV-B4; Wang et al., "Personalized image
        aesthetic assessment with reviews and collaborative filtering", IJCAI 2018, §4.2.
    """
    _check_name(name)
    size = default_image_size(name) if image_size is None else int(image_size)
    if size < _MIN_IMAGE_SIZE[name]:
        raise ValueError(
            f"Backbone {name!r} needs image_size >= {_MIN_IMAGE_SIZE[name]}. Received: image_size={image_size}"
        )
    own_file = None
    if weights is not None and weights != "imagenet":
        if not _is_weights_file(weights):
            raise ValueError(f"`weights` must be None, 'imagenet' or a file path. Received: weights={weights!r}")
        if not os.path.exists(weights):
            raise FileNotFoundError(f"Backbone weights file not found. Received: weights={str(weights)!r}")
        if str(weights).endswith(".weights.h5") or name in NO_IMAGENET_WEIGHTS:
            own_file, weights = str(weights), None
    if weights == "imagenet" and name in NO_IMAGENET_WEIGHTS:
        raise ValueError(
            f"No ImageNet weights ship with the {name!r} backbone; pass weights=None or a local "
            f"weights file. Received: weights='imagenet'"
        )

    inputs = keras.Input(shape=(size, size, 3), dtype="float32", name="image")
    builder = {
        "vgg16": _vgg16,
        "inception_v3": _inception_v3,
        "alexnet": _alexnet,
        "mobilenet_v3": _mobilenet_v3,
        "efficientnet": _efficientnet,
        "tiny": _tiny,
        "tiny_bn": functools.partial(_tiny, batch_norm=True),
    }[name]
    outputs = builder(inputs, weights)
    model = keras.Model(inputs, outputs, name=name)
    if own_file is not None:
        try:
            model.load_weights(own_file, skip_mismatch=skip_mismatch)
        except ValueError as error:
            raise ValueError(f"Could not load backbone weights for {name!r} from {own_file!r}: {error}") from error
    model.trainable = bool(trainable)
    return model


def _vgg16(inputs, weights):
    x = PixelPreprocessing("caffe", name="preprocess")(inputs)
    base = keras.applications.VGG16(include_top=False, weights=weights, input_tensor=x)
    return base.get_layer("block5_pool").output


def _inception_v3(inputs, weights):
    x = PixelPreprocessing("tf", name="preprocess")(inputs)
    base = keras.applications.InceptionV3(include_top=False, weights=weights, input_tensor=x)
    return base.get_layer("mixed7").output


def _mobilenet_v3(inputs, weights):
    # MobileNetV3 carries its own [0, 255] -> [-1, 1] rescaling (include_preprocessing).
    base = keras.applications.MobileNetV3Large(
        include_top=False, weights=weights, input_tensor=inputs, include_preprocessing=True
    )
    return base.output


def _efficientnet(inputs, weights):
    # EfficientNet carries its own rescaling + ImageNet normalisation.
    base = keras.applications.EfficientNetB0(include_top=False, weights=weights, input_tensor=inputs)
    return base.output


def _alexnet(inputs, weights):
    """AlexNet's five conv layers (Krizhevsky et al., NIPS 2012), single tower.

    96-11×11/4, pool 3/2, 256-5×5, pool 3/2, 384-3×3, 384-3×3, 256-3×3, pool 3/2. The
    two-GPU channel grouping and local response normalisation are left out (grouped
    convolutions are not available on TensorFlow's CPU kernels; LRN is not in Keras).
    """
    del weights
    x = PixelPreprocessing("caffe", name="preprocess")(inputs)
    x = layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = layers.Conv2D(256, 5, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv4")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool5")(x)


def _tiny(inputs, weights, batch_norm=False):
    """Three strided 3×3 convolutions (16, 32, 32 channels): 48 px → 6×6×32.

    `batch_norm=True` (`tiny_bn`) puts batch normalisation (momentum 0.9: short demo
    runs) before each ReLU, with bias-free convolutions. Measured on the demo (issue
    10): without it about half of the channels end up dead and the pooled features
    keep little of the image's colour; with it, CFAN's personalised paths learn more of
    the users' colour taste.
    """
    del weights
    x = PixelPreprocessing("unit", name="preprocess")(inputs)
    for i, channels in enumerate((16, 32, 32), start=1):
        x = layers.Conv2D(
            channels, 3, strides=2, padding="same", use_bias=not batch_norm,
            activation=None if batch_norm else "relu", name=f"conv{i}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
            x = layers.Activation("relu", name=f"relu{i}")(x)
    return x
