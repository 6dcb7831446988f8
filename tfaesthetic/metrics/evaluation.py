"""Whole-split evaluation of predicted score distributions (seed 003 §IV-A, Table V).

`evaluate_distributions` computes the paper's six metrics exactly (float64) over a
whole split, overall and per semantic tag like Table V (EMD and the normalisation
of the rows are `tfaesthetic.losses.emd`'s, the one implementation of Eq. 1);
`evaluate_model` runs a model over a `build_dataset(..., include_metadata=True)`
dataset and evaluates its predictions, and `format_table` prints the results.

Metrics (keys of every result row):
    count: number of examples in the row.
    accuracy: fraction of images whose good/bad class (mean score > threshold)
        is predicted correctly (`format_table` shows it in %).
    srcc: Spearman rank correlation of true vs predicted mean scores (ties get
        their average rank).
    plcc: Pearson linear correlation of true vs predicted mean scores.
    mae, rmse: absolute / root-mean-square error of the mean score.
    emd: mean EMD with r = 1 (Eq. 1) between the distributions.
Correlations are NaN for rows with fewer than two examples or a constant side.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np

from tfaesthetic.features import AVA_SCALE, ScoreScale
from tfaesthetic.losses.emd import emd, normalize_distribution

METRIC_NAMES = ("accuracy", "srcc", "plcc", "mae", "rmse", "emd")
_HEADERS = {
    "accuracy": "Accuracy (%)",
    "srcc": "SRCC",
    "plcc": "PLCC",
    "mae": "MAE",
    "rmse": "RMSE",
    "emd": "EMD",
}


def _as_scale(scale) -> ScoreScale:
    if scale is None:
        return AVA_SCALE
    if isinstance(scale, ScoreScale):
        return scale
    if isinstance(scale, Mapping):
        return ScoreScale.from_json(scale)
    raise TypeError(f"`scale` must be a ScoreScale, its JSON dict or None. Received: scale={scale!r}")


def average_ranks(values) -> np.ndarray:
    """1-based ranks of `values`; tied values share the average of their ranks."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.concatenate([[True], ordered[1:] != ordered[:-1]]) if len(values) else np.zeros(0, bool)
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.concatenate([starts[1:], [len(values)]])
    group_rank = (starts + ends - 1) / 2.0 + 1.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = group_rank[group]
    return ranks


def pearson(x, y) -> float:
    """Pearson correlation; NaN with fewer than 2 values or a constant side."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    xc, yc = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((xc * xc).sum()) * float((yc * yc).sum()))
    return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def spearman(x, y) -> float:
    """Spearman rank correlation (Pearson of average ranks)."""
    return pearson(average_ranks(x), average_ranks(y))


def _row(q, q_hat, values, threshold) -> dict:
    mu_true, mu_pred = q @ values, q_hat @ values
    error = mu_pred - mu_true
    n = len(q)
    if n == 0:
        return {"count": 0, **{name: float("nan") for name in METRIC_NAMES}}
    return {
        "count": int(n),
        "accuracy": float(np.mean((mu_true > threshold) == (mu_pred > threshold))),
        "srcc": spearman(mu_true, mu_pred),
        "plcc": pearson(mu_true, mu_pred),
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "emd": float(np.mean(np.asarray(emd(q, q_hat, r=1)))),
    }


def _tag_name(tag_id, tag_names):
    if tag_names is None:
        return str(tag_id)
    if isinstance(tag_names, Mapping):
        return str(tag_names.get(tag_id, tag_id))
    return str(tag_names[tag_id]) if 0 <= tag_id < len(tag_names) else str(tag_id)


def evaluate_distributions(
    y_true,
    y_pred,
    tags=None,
    scale: ScoreScale | dict | None = None,
    tag_names: Optional[Sequence[str] | Mapping[int, str]] = None,
    min_tag_count: int = 1,
) -> dict:
    """The six metrics of seed 003 §IV-A on a whole split, overall and per tag.

    Args:
        y_true: `[n, N]` ground-truth distributions (or vote counts; each row
            is normalised).
        y_pred: `[n, N]` predicted distributions (rows normalised too).
        tags: optional per-example tag ids, `[n]` (primary tag) or `[n, k]`
            (every listed tag; an image counts in each of its tags, as the
            categories of Table V). Negative ids mean "no tag".
        scale: the dataset's `ScoreScale` (or the manifest's JSON dict); AVA's
            when None.
        tag_names: names of the tag ids (a list indexed by id, or a dict).
        min_tag_count: tags with fewer examples are left out of `per_tag`.

    Returns:
        `{"overall": row, "per_tag": {tag name: row}, "scale": scale JSON}`, a
        row being `{"count", "accuracy", "srcc", "plcc", "mae", "rmse",
        "emd"}` of Python floats (`per_tag` is empty when `tags` is None).

    Reference:
        Zhang et al., IEEE TMM 2020, §IV-A (metrics), Eq. 1 (EMD, r = 1) and
        Table V (per-category breakdown).
    """
    scale = _as_scale(scale)
    q = np.asarray(y_true, dtype=np.float64)
    q_hat = np.asarray(y_pred, dtype=np.float64)
    if q.ndim != 2 or q_hat.shape != q.shape:
        raise ValueError(
            "y_true and y_pred must both be [examples, bins] with the same shape. "
            f"Received: y_true.shape={q.shape}, y_pred.shape={q_hat.shape}"
        )
    if q.shape[1] != scale.num_bins:
        raise ValueError(f"Expected {scale.num_bins} score bins. Received: y_true.shape={q.shape}")
    q = np.asarray(normalize_distribution(q), dtype=np.float64)
    q_hat = np.asarray(normalize_distribution(q_hat), dtype=np.float64)
    values = np.asarray(scale.values, dtype=np.float64)
    results = {"overall": _row(q, q_hat, values, scale.threshold), "per_tag": {}, "scale": scale.to_json()}
    if tags is None:
        return results
    tags = np.asarray(tags)
    if tags.ndim == 1:
        tags = tags[:, None]
    if tags.ndim != 2 or tags.shape[0] != q.shape[0]:
        raise ValueError(f"`tags` must be [examples] or [examples, k]. Received: tags.shape={tags.shape}, examples={q.shape[0]}")
    tags = tags.astype(np.int64)
    for tag_id in sorted(int(t) for t in np.unique(tags) if t >= 0):
        member = (tags == tag_id).any(axis=1)
        if member.sum() >= min_tag_count:
            results["per_tag"][_tag_name(tag_id, tag_names)] = _row(q[member], q_hat[member], values, scale.threshold)
    return results


def evaluate_model(
    model,
    dataset,
    scale: ScoreScale | dict | None = None,
    tag_names: Optional[Sequence[str] | Mapping[int, str]] = None,
    output_key: str = "distribution",
    return_predictions: bool = False,
    min_tag_count: int = 1,
):
    """Runs `model` over a whole split and evaluates its predicted distributions.

    Args:
        model: a Keras model whose output is a dict holding `output_key`
            (MRACNN) or a distribution tensor.
        dataset: an iterable of `(features, labels, metadata)` batches as from
            `tfaesthetic.data.build_dataset(..., include_metadata=True)`
            (`labels["distribution"]`, `metadata["tag"]`, `metadata["image_id"]`);
            `(features, labels)` batches give no per-tag breakdown.
        scale: the dataset's `ScoreScale` (or the manifest's JSON dict).
        tag_names: names of the tag ids (tags.tsv order).
        output_key: the model output holding the distribution.
        return_predictions: also return the per-example predictions.
        min_tag_count: tags with fewer examples are left out of `per_tag`.

    Returns:
        The `evaluate_distributions` dict; with `return_predictions`, a tuple
        `(results, {"image_id", "tag", "y_true", "y_pred"})` of NumPy arrays.
    """
    y_true, y_pred, tags, ids = [], [], [], []
    has_metadata = True
    for element in dataset:
        if len(element) == 3:
            features, labels, metadata = element
        elif len(element) == 2:
            (features, labels), metadata = element, None
            has_metadata = False
        else:
            raise ValueError(f"Expected (features, labels[, metadata]) batches. Received: {len(element)} components")
        # A direct call, not `predict_on_batch`: that one replicates the batch
        # for a model built under a MirroredStrategy scope.
        outputs = model(features, training=False)
        if isinstance(outputs, Mapping):
            if output_key not in outputs:
                raise KeyError(f"The model has no output {output_key!r}. Received outputs: {sorted(outputs)}")
            outputs = outputs[output_key]
        outputs = np.asarray(outputs)
        targets = np.asarray(labels[output_key] if isinstance(labels, Mapping) else labels)
        if outputs.shape[0] != targets.shape[0]:
            raise ValueError(
                f"The model returned {outputs.shape[0]} predictions for a batch of {targets.shape[0]} labels. "
                f"Received: predictions.shape={outputs.shape}, labels.shape={targets.shape}"
            )
        y_pred.append(outputs)
        y_true.append(targets)
        if metadata is not None:
            tags.append(np.asarray(metadata["tag"]))
            if "image_id" in metadata:
                ids.append(np.asarray(metadata["image_id"]))
    if not y_pred:
        raise ValueError("The dataset yielded no batches.")
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    tag_array = np.concatenate(tags) if has_metadata and tags else None
    results = evaluate_distributions(
        y_true, y_pred, tags=tag_array, scale=scale, tag_names=tag_names, min_tag_count=min_tag_count
    )
    if not return_predictions:
        return results
    predictions = {
        "image_id": np.concatenate(ids) if ids else None,
        "tag": tag_array,
        "y_true": y_true,
        "y_pred": y_pred,
    }
    return results, predictions


def _format_value(name, value, digits):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name == "accuracy":
        return f"{100.0 * value:.2f}"
    if name == "count":
        return str(int(value))
    return f"{value:.{digits}f}"


def format_table(results: Mapping, title: Optional[str] = None, digits: int = 4, row_header: str = "") -> str:
    """A Markdown table of metric rows (readable as plain text).

    Args:
        results: an `evaluate_distributions` result (rows: overall, then each
            tag) or any mapping `row name -> {metric: value}` (e.g. one row per
            model variant).
        title: an optional line above the table.
        digits: decimals of the non-percentage metrics.
        row_header: the first column's header (default "tag" or "row").

    Returns:
        The table as a string.
    """
    if "overall" in results and isinstance(results.get("per_tag", {}), Mapping):
        rows = [("overall", results["overall"])] + list(results.get("per_tag", {}).items())
        row_header = row_header or "tag"
    else:
        rows = list(results.items())
        row_header = row_header or "row"
    columns = ["count", *METRIC_NAMES]
    header = [row_header, "n", *[_HEADERS[c] for c in METRIC_NAMES]]
    body = [[str(name), *[_format_value(c, row.get(c), digits) for c in columns]] for name, row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths))) + " |"

    separator = "|" + "|".join(("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|"
    lines = ([title, ""] if title else []) + [line(header), separator] + [line(cells) for cells in body]
    return "\n".join(lines)
