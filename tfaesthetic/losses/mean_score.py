"""EMD with an auxiliary mean-score term: the distribution loss of seed 003 Eq. 1 plus a regression of its mean.

With bins valued `v_k = k` (k = 1..N; AVA's scores 1..10), the mean score of a
distribution `q` is `μ(q) = Σ_k v_k q_k`. The per-example loss is

    L(q, q̂) = EMD_r(q, q̂) + w · (μ(q̂) − μ(q))² / σ²

where `EMD_r` is Eq. 1 (`tfaesthetic.losses.emd`), `w` is `mean_weight` and
`σ²` (`variance`) puts the squared error in units of the spread of the
dataset's mean scores (AVA: about 0.5 score points²), so that `w` is comparable
across datasets. With `w = 0` it is EMD. The EMD of a wide distribution is
dominated by its shape; the mean term asks directly for the quantity that
SRCC / PLCC / accuracy rank, which helps where labels are noisy and few (real
comments, `mracnn_text_real`).
"""

from __future__ import annotations

import keras
from keras import ops

from tfaesthetic.losses.emd import check_r, emd, normalize_distribution


def mean_score_error(y_true, y_pred):
    """Per-example squared difference of the mean bin values, `(Σ_k k q̂_k − Σ_k k q_k)²`.

    Args:
        y_true: ground-truth distributions (or vote counts, renormalised), `[..., N]`.
        y_pred: predicted distributions `[..., N]`.

    Returns:
        `[...]`.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = normalize_distribution(ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype))
    values = ops.cast(ops.arange(1, y_pred.shape[-1] + 1), y_pred.dtype)
    return ops.square(ops.sum((y_pred - y_true) * values, axis=-1))


def emd_with_mean(y_true, y_pred, r=2, mean_weight=1.0, variance=1.0):
    """`EMD_r(q, q̂) + mean_weight · mean_score_error(q, q̂) / variance`, per example."""
    return emd(y_true, y_pred, r=r) + (mean_weight / variance) * mean_score_error(y_true, y_pred)


@keras.saving.register_keras_serializable(package="tfaesthetic")
class EMDWithMeanScore(keras.losses.Loss):
    """EMD (seed 003 Eq. 1) plus `mean_weight · (μ(q̂) − μ(q))² / variance`.

    Args:
        r: EMD norm order (>= 1); the paper trains with 2.
        mean_weight: weight `w` of the mean-score term (>= 0; 0 = plain EMD).
        variance: `σ²`, the squared-error unit (> 0), e.g. the variance of the
            training mean scores.
        reduction: Keras loss reduction.
        name: loss name.
        dtype: dtype of the loss computation.

    Call arguments:
        y_true: ground-truth distributions `[B, N]`.
        y_pred: predicted distributions `[B, N]` (softmax output).
        sample_weight: optional per-example weights `[B]`.
    """

    def __init__(
        self, r=2, mean_weight=1.0, variance=1.0, reduction="sum_over_batch_size", name="emd_mean", dtype=None,
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype, **kwargs)
        self.r = check_r(r)
        if not float(mean_weight) >= 0.0:
            raise ValueError(f"`mean_weight` must be >= 0. Received: mean_weight={mean_weight!r}")
        if not float(variance) > 0.0:
            raise ValueError(f"`variance` must be > 0. Received: variance={variance!r}")
        self.mean_weight = float(mean_weight)
        self.variance = float(variance)

    def call(self, y_true, y_pred):
        return emd_with_mean(y_true, y_pred, r=self.r, mean_weight=self.mean_weight, variance=self.variance)

    def get_config(self):
        config = super().get_config()
        config.update({"r": self.r, "mean_weight": self.mean_weight, "variance": self.variance})
        return config
