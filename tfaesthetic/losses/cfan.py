"""Multi-task loss of CFAN (seed 000, Eq. 6): per-output pieces and the full sum.

Eq. 6 sums three cross-entropies: the user-specific rating y_uv, the semantic tag
z_uv (weight lambda_z) and the user-agnostic rating beta_v (weight lambda_beta).
The paper prints the log-likelihood (without the minus sign); we minimise its
negative. Training uses the per-output `keras.losses.Loss` wrappers below with
`loss_weights={"user_rating": 1, "tag": lambda_z, "agnostic_rating": lambda_beta}`
so that Keras owns reduction, `sample_weight` and distribution scaling;
`cfan_loss` computes the same total in one function (for tests and reports).

Tag term: the paper writes a binary cross-entropy over tags; following its protocol
("the primary tag will be set as its tag") every image has one tag, so we use the
softmax cross-entropy of the primary tag, -log z_hat[t]. Examples without a tag
(label -1) contribute 0. Rating labels below 0 (unknown) likewise contribute 0.
"""

import keras
from keras import ops

NO_TAG = -1
_EPSILON = 1e-7


def _flat(x, dtype="float32"):
    x = ops.convert_to_tensor(x)
    return ops.reshape(ops.cast(x, dtype), (-1,))


def rating_crossentropy(y_true, y_pred):
    """Binary cross-entropy per example, 0 where the label is negative (unknown).

    `-(y log p + (1 - y) log(1 - p))`, with `p` clipped to `[1e-7, 1 - 1e-7]`.

    Args:
        y_true: `[B]` (or `[B, 1]`) labels in {0, 1}; negative = unknown.
        y_pred: `[B]` (or `[B, 1]`) probabilities.

    Returns:
        `[B]` per-example losses.

    Reference:
        Seed 000, Eq. 6, first and third terms.
    """
    y = _flat(y_true)
    p = ops.clip(_flat(y_pred), _EPSILON, 1.0 - _EPSILON)
    known = ops.cast(y >= 0, "float32")
    y = ops.maximum(y, 0.0)
    return -known * (y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p))


def masked_tag_crossentropy(y_true, y_pred):
    """Softmax cross-entropy of the primary tag, 0 where there is no tag (-1).

    Args:
        y_true: `[B]` (or `[B, 1]`) int tag ids, -1 = no tag.
        y_pred: `[B, num_tags]` probabilities (softmax output).

    Returns:
        `[B]` per-example losses `-log z_hat[t]`.

    Reference:
        Seed 000, Eq. 6, second term (see the module docstring for the choice).
    """
    tags = _flat(y_true, "int32")
    probs = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    num_tags = ops.shape(probs)[-1]
    has_tag = ops.logical_and(tags >= 0, tags < num_tags)
    one_hot = ops.one_hot(ops.where(has_tag, tags, 0), num_tags)
    picked = ops.sum(one_hot * probs, axis=-1)
    loss = -ops.log(ops.clip(picked, _EPSILON, 1.0))
    return ops.where(has_tag, loss, ops.zeros_like(loss))


def cfan_loss(y_true, y_pred, lambda_z=0.015, lambda_beta=1.0):
    """Full Eq. 6, averaged over the batch (terms whose output or label is absent are skipped).

    `l = mean_b[ CE(y, y_hat) + lambda_z CE(z, z_hat) + lambda_beta CE(beta, beta_hat) ]`.

    Args:
        y_true: dict with `user_rating`, and optionally `tag`, `agnostic_rating`.
        y_pred: dict of model outputs with the same keys.
        lambda_z: weight of the tag term (paper: 0.015).
        lambda_beta: weight of the user-agnostic term (paper: 1).

    Returns:
        Scalar loss.

    Reference:
        Seed 000, Eq. 6 and §4.1 (lambda values).
    """
    total = ops.mean(rating_crossentropy(y_true["user_rating"], y_pred["user_rating"]))
    if "tag" in y_true and "tag" in y_pred:
        total = total + lambda_z * ops.mean(masked_tag_crossentropy(y_true["tag"], y_pred["tag"]))
    if "agnostic_rating" in y_true and "agnostic_rating" in y_pred:
        total = total + lambda_beta * ops.mean(
            rating_crossentropy(y_true["agnostic_rating"], y_pred["agnostic_rating"])
        )
    return total


@keras.saving.register_keras_serializable(package="tfaesthetic")
class RatingCrossentropy(keras.losses.Loss):
    """Loss wrapper of `rating_crossentropy` (user-specific or user-agnostic rating).

    Args:
        name: loss name.
        reduction: Keras reduction.
        **kwargs: standard loss arguments.

    Reference:
        Seed 000, Eq. 6.
    """

    def __init__(self, name="rating_crossentropy", reduction="sum_over_batch_size", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        return rating_crossentropy(y_true, y_pred)


@keras.saving.register_keras_serializable(package="tfaesthetic")
class MaskedTagCrossentropy(keras.losses.Loss):
    """Loss wrapper of `masked_tag_crossentropy`.

    Args:
        name: loss name.
        reduction: Keras reduction.
        **kwargs: standard loss arguments.

    Reference:
        Seed 000, Eq. 6.
    """

    def __init__(self, name="masked_tag_crossentropy", reduction="sum_over_batch_size", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        return masked_tag_crossentropy(y_true, y_pred)
