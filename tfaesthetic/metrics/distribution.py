"""Keras metrics computed from predicted score distributions (seed 003 §IV-A).

A model predicts a distribution p over the dataset's score bins; the mean score
is μ = Σ_i s_i p_i (s_i = the bin's score value, from the manifest's
`ScoreScale`). From μ and the ground-truth mean the paper reports:

- accuracy of the good/bad class (μ > threshold, for prediction and truth),
- SRCC and PLCC between predicted and true mean scores,
- MAE and RMSE of the mean score,
- EMD with r = 1 (Eq. 1) between the distributions.

All metrics keep their state in `add_variable` variables that are summed over
replicas (`synchronization="on_read"`, `aggregation="sum"`), so they are exact
under `tf.distribute` strategies in `fit`/`evaluate` - except SRCC, which needs
the ranks of every prediction: it accumulates a fixed-size joint histogram of
(true, predicted) mean scores and computes Spearman's coefficient from the
histogram's average ranks at `result()`. Values falling into the same histogram
bin count as ties, so the result is an approximation whose resolution is
`(max(score_values) - min(score_values)) / resolution` (0.009 score points for
AVA with the default 1024 bins; measured error below 1e-3 on realistic spreads).
`tfaesthetic.metrics.evaluate_distributions` computes the exact values on a
whole split.

`ground truth` is given as a distribution (or raw vote counts, normalised per
example), like the labels `{"distribution": ...}` of the input pipeline.
"""

from __future__ import annotations

import keras
from keras import ops

from tfaesthetic.features import AVA_SCALE, ScoreScale
from tfaesthetic.losses.emd import emd, normalize_distribution


def mean_score(distribution, score_values):
    """Mean score μ = Σ_i s_i p_i of distributions over score bins.

    Args:
        distribution: `[..., N]` probabilities (or vote counts, normalised here).
        score_values: the N bin score values.

    Returns:
        A tensor `[...]`.

    Reference:
        Zhang et al., IEEE TMM 2020, §IV-A (μ = Σ_{i=1..N} s_i × p_{s_i}).
    """
    distribution = normalize_distribution(ops.convert_to_tensor(distribution))
    values = ops.convert_to_tensor(list(score_values), dtype=distribution.dtype)
    return ops.sum(distribution * values, axis=-1)


def _standardize_values(score_values, threshold):
    if score_values is None:
        score_values = AVA_SCALE.values
    score_values = tuple(float(v) for v in score_values)
    if len(score_values) < 2:
        raise ValueError(f"Expected at least 2 score values. Received: score_values={score_values}")
    if threshold is None:
        threshold = AVA_SCALE.threshold if score_values == AVA_SCALE.values else (min(score_values) + max(score_values)) / 2
    return score_values, float(threshold)


def _check_bins(metric, y_true, y_pred):
    num_bins = len(metric.score_values)
    for label, tensor in (("y_true", y_true), ("y_pred", y_pred)):
        if tensor.shape[-1] is not None and tensor.shape[-1] != num_bins:
            raise ValueError(
                f"{type(metric).__name__} expected {num_bins} score bins. "
                f"Received: {label}.shape={tuple(tensor.shape)}"
            )


def _mean_scores(metric, y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), metric.dtype)
    y_pred = ops.cast(y_pred, metric.dtype)
    _check_bins(metric, y_true, y_pred)
    return mean_score(y_true, metric.score_values), mean_score(y_pred, metric.score_values)


class _ScoreMean(keras.metrics.Mean):
    """A weighted mean of a per-example quantity of the mean scores."""

    def __init__(self, score_values=None, threshold=None, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.score_values, self.threshold = _standardize_values(score_values, threshold)

    def per_example(self, mu_true, mu_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        mu_true, mu_pred = _mean_scores(self, y_true, y_pred)
        return super().update_state(self.per_example(mu_true, mu_pred), sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update({"score_values": list(self.score_values), "threshold": self.threshold})
        return config


@keras.saving.register_keras_serializable(package="tfaesthetic")
class MeanScoreAccuracy(_ScoreMean):
    """Good/bad classification accuracy from the mean score.

    An image is "good" when its mean score is strictly above `threshold`; the
    metric is the (weighted) fraction of images whose predicted class equals the
    ground-truth class, `(TP + TN) / (P + N)`.

    Args:
        score_values: the score of each bin (default AVA's 1..10).
        threshold: the good/bad threshold (default 5 for AVA, else the middle
            of the score range).
        name: metric name.
        dtype: dtype of the metric's state.

    Call arguments (`update_state`):
        y_true: `[B, N]` ground-truth distributions or vote counts.
        y_pred: `[B, N]` predicted distributions.
        sample_weight: optional `[B]` weights.

    Reference:
        Zhang et al., IEEE TMM 2020, §IV-A (accuracy, threshold 5).
    """

    def __init__(self, score_values=None, threshold=None, name="accuracy", dtype=None, **kwargs):
        super().__init__(score_values=score_values, threshold=threshold, name=name, dtype=dtype, **kwargs)

    def per_example(self, mu_true, mu_pred):
        return ops.cast(ops.equal(mu_true > self.threshold, mu_pred > self.threshold), self.dtype)


@keras.saving.register_keras_serializable(package="tfaesthetic")
class MeanScoreMAE(_ScoreMean):
    """Mean absolute error of the mean score, mean |μ − μ̂|.

    Args:
        score_values: the score of each bin (default AVA's 1..10).
        threshold: unused by the value; kept so every metric takes a scale.
        name: metric name.
        dtype: dtype of the metric's state.

    Call arguments (`update_state`):
        y_true: `[B, N]` ground-truth distributions or vote counts.
        y_pred: `[B, N]` predicted distributions.
        sample_weight: optional `[B]` weights.

    Reference:
        Zhang et al., IEEE TMM 2020, §IV-A (MAE).
    """

    def __init__(self, score_values=None, threshold=None, name="mae", dtype=None, **kwargs):
        super().__init__(score_values=score_values, threshold=threshold, name=name, dtype=dtype, **kwargs)

    def per_example(self, mu_true, mu_pred):
        return ops.abs(mu_true - mu_pred)


@keras.saving.register_keras_serializable(package="tfaesthetic")
class MeanScoreRMSE(_ScoreMean):
    """Root mean square error of the mean score, sqrt(mean (μ − μ̂)²).

    Args:
        score_values: the score of each bin (default AVA's 1..10).
        threshold: unused by the value; kept so every metric takes a scale.
        name: metric name.
        dtype: dtype of the metric's state.

    Call arguments (`update_state`):
        y_true: `[B, N]` ground-truth distributions or vote counts.
        y_pred: `[B, N]` predicted distributions.
        sample_weight: optional `[B]` weights.

    Reference:
        Zhang et al., IEEE TMM 2020, §IV-A (RMSE).
    """

    def __init__(self, score_values=None, threshold=None, name="rmse", dtype=None, **kwargs):
        super().__init__(score_values=score_values, threshold=threshold, name=name, dtype=dtype, **kwargs)

    def per_example(self, mu_true, mu_pred):
        return ops.square(mu_true - mu_pred)

    def result(self):
        return ops.sqrt(super().result())


@keras.saving.register_keras_serializable(package="tfaesthetic")
class DistributionEMD(keras.metrics.Mean):
    """Mean Earth Mover's Distance between distributions (Eq. 1, r = 1 by default).

    Args:
        r: the norm order of Eq. 1 (the paper evaluates with r = 1).
        name: metric name.
        dtype: dtype of the metric's state.

    Call arguments (`update_state`):
        y_true: `[B, N]` ground-truth distributions or vote counts.
        y_pred: `[B, N]` predicted distributions.
        sample_weight: optional `[B]` weights.

    Reference:
        Zhang et al., IEEE TMM 2020, Eq. 1 and §IV-A.
    """

    def __init__(self, r=1, name="emd", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.r = r

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), self.dtype)
        y_true = ops.cast(ops.convert_to_tensor(y_true), self.dtype)
        return super().update_state(emd(y_true, y_pred, r=self.r), sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update({"r": self.r})
        return config


def _weights(sample_weight, like, dtype):
    """Per-example weights shaped like `like` (`[B]`), from None, a scalar, `[B]` or `[B, 1]`."""
    if sample_weight is None:
        return ops.ones_like(like)
    sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), dtype)
    return ops.broadcast_to(ops.reshape(sample_weight, (-1,)), ops.shape(like))


@keras.saving.register_keras_serializable(package="tfaesthetic")
class MeanScorePLCC(keras.metrics.Metric):
    """Pearson linear correlation between true and predicted mean scores.

    Accumulates weighted sums (n, Σx, Σy, Σx², Σy², Σxy) of the mean scores
    shifted by `threshold` (which keeps the float32 sums well conditioned), so
    the value is exact over any number of batches and replicas. Returns 0 while
    either variance is zero (e.g. a constant predictor).

    Args:
        score_values: the score of each bin (default AVA's 1..10).
        threshold: the good/bad threshold; used as the shift of the sums.
        name: metric name.
        dtype: dtype of the metric's state.

    Call arguments (`update_state`):
        y_true: `[B, N]` ground-truth distributions or vote counts.
        y_pred: `[B, N]` predicted distributions.
        sample_weight: optional `[B]` weights.

    Reference:
        Zhang et al., IEEE TMM 2020, §IV-A (PLCC).
    """

    def __init__(self, score_values=None, threshold=None, name="plcc", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.score_values, self.threshold = _standardize_values(score_values, threshold)
        self.sums = self.add_variable(shape=(6,), initializer="zeros", dtype=self.dtype, name="sums")

    def update_state(self, y_true, y_pred, sample_weight=None):
        mu_true, mu_pred = _mean_scores(self, y_true, y_pred)
        x = ops.reshape(mu_true - self.threshold, (-1,))
        y = ops.reshape(mu_pred - self.threshold, (-1,))
        w = _weights(sample_weight, x, self.dtype)
        batch = ops.stack(
            [ops.sum(w), ops.sum(w * x), ops.sum(w * y), ops.sum(w * x * x), ops.sum(w * y * y), ops.sum(w * x * y)]
        )
        self.sums.assign_add(batch)

    def result(self):
        n, sx, sy, sxx, syy, sxy = [self.sums[i] for i in range(6)]
        n = ops.maximum(n, 1e-12)
        cov = sxy / n - (sx / n) * (sy / n)
        var_x = ops.maximum(sxx / n - ops.square(sx / n), 0.0)
        var_y = ops.maximum(syy / n - ops.square(sy / n), 0.0)
        denom = ops.sqrt(var_x * var_y)
        return ops.where(denom > 0, cov / ops.where(denom > 0, denom, 1.0), 0.0)

    def reset_state(self):
        self.sums.assign(ops.zeros_like(self.sums))

    def get_config(self):
        config = super().get_config()
        config.update({"score_values": list(self.score_values), "threshold": self.threshold})
        return config


@keras.saving.register_keras_serializable(package="tfaesthetic")
class MeanScoreSRCC(keras.metrics.Metric):
    """Spearman rank correlation between true and predicted mean scores.

    The state is a `[resolution, resolution]` joint histogram of (true,
    predicted) mean scores over `[min(score_values), max(score_values)]`
    (weighted counts, summed across batches and replicas). At `result()` each
    histogram bin gets the average rank of the values it holds (ties share
    their average rank, as in Spearman's definition) and the coefficient is the
    weighted Pearson correlation of those ranks. Mean scores closer than one
    bin width may be counted as tied, see the module docstring; returns 0 while
    either side has a single distinct bin.

    Args:
        score_values: the score of each bin (default AVA's 1..10).
        threshold: unused by the value; kept so every metric takes a scale.
        resolution: histogram bins per axis.
        name: metric name.
        dtype: dtype of the metric's state.

    Call arguments (`update_state`):
        y_true: `[B, N]` ground-truth distributions or vote counts.
        y_pred: `[B, N]` predicted distributions.
        sample_weight: optional `[B]` weights.

    Reference:
        Zhang et al., IEEE TMM 2020, §IV-A (SRCC).
    """

    def __init__(self, score_values=None, threshold=None, resolution=1024, name="srcc", dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.score_values, self.threshold = _standardize_values(score_values, threshold)
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
            raise ValueError(f"`resolution` must be an integer >= 2. Received: resolution={resolution!r}")
        self.resolution = resolution
        self.joint = self.add_variable(
            shape=(resolution, resolution), initializer="zeros", dtype=self.dtype, name="joint_histogram"
        )

    def _bin(self, mu):
        low, high = min(self.score_values), max(self.score_values)
        position = (mu - low) / (high - low) * self.resolution
        index = ops.clip(ops.floor(position), 0, self.resolution - 1)
        return ops.one_hot(ops.cast(index, "int32"), self.resolution, dtype=self.dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        mu_true, mu_pred = _mean_scores(self, y_true, y_pred)
        mu_true = ops.reshape(mu_true, (-1,))
        mu_pred = ops.reshape(mu_pred, (-1,))
        w = _weights(sample_weight, mu_true, self.dtype)
        one_hot_true = self._bin(mu_true) * w[:, None]
        self.joint.assign_add(ops.matmul(ops.transpose(one_hot_true), self._bin(mu_pred)))

    def result(self):
        joint = ops.convert_to_tensor(self.joint)
        total = ops.sum(joint)
        safe_total = ops.maximum(total, 1e-12)
        n_true, n_pred = ops.sum(joint, axis=1), ops.sum(joint, axis=0)
        # Average rank of each bin, as a fraction of the total weight.
        rank_true = (ops.cumsum(n_true) - n_true / 2) / safe_total
        rank_pred = (ops.cumsum(n_pred) - n_pred / 2) / safe_total
        centred_true = rank_true - ops.sum(n_true * rank_true) / safe_total
        centred_pred = rank_pred - ops.sum(n_pred * rank_pred) / safe_total
        cov = ops.sum(joint * centred_true[:, None] * centred_pred[None, :])
        var_true = ops.sum(n_true * ops.square(centred_true))
        var_pred = ops.sum(n_pred * ops.square(centred_pred))
        denom = ops.sqrt(var_true * var_pred)
        return ops.where(denom > 0, cov / ops.where(denom > 0, denom, 1.0), 0.0)

    def reset_state(self):
        self.joint.assign(ops.zeros_like(self.joint))

    def get_config(self):
        config = super().get_config()
        config.update(
            {"score_values": list(self.score_values), "threshold": self.threshold, "resolution": self.resolution}
        )
        return config


def distribution_metrics(scale: ScoreScale | dict | None = None, srcc_resolution=1024):
    """The six metrics of seed 003 §IV-A for `compile(metrics=...)`.

    Args:
        scale: a `ScoreScale` (or its JSON dict from the manifest); AVA's when None.
        srcc_resolution: histogram bins per axis of `MeanScoreSRCC`.

    Returns:
        `[MeanScoreAccuracy, MeanScoreSRCC, MeanScorePLCC, MeanScoreMAE,
        MeanScoreRMSE, DistributionEMD(r=1)]`, named accuracy, srcc, plcc,
        mae, rmse, emd.
    """
    if scale is None:
        scale = AVA_SCALE
    elif isinstance(scale, dict):
        scale = ScoreScale.from_json(scale)
    elif not isinstance(scale, ScoreScale):
        raise TypeError(f"`scale` must be a ScoreScale, its JSON dict or None. Received: scale={scale!r}")
    kwargs = dict(score_values=scale.values, threshold=scale.threshold)
    return [
        MeanScoreAccuracy(**kwargs),
        MeanScoreSRCC(resolution=srcc_resolution, **kwargs),
        MeanScorePLCC(**kwargs),
        MeanScoreMAE(**kwargs),
        MeanScoreRMSE(**kwargs),
        DistributionEMD(r=1),
    ]
