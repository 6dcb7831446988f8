"""Personalised ranking metrics of CFAN (seed 000 §4.2, Fig. 7-8).

- AUC of the user-specific ratings, overall and averaged per user (over users whose
  evaluated examples hold both classes), computed exactly from ranks with ties
  averaged (Mann-Whitney U / (n_pos n_neg)): a tied positive/negative pair counts 1/2.
- Accuracy of the user-agnostic rating (probability > 0.5 vs. the label), overall
  and per semantic tag (Fig. 7).
- `evaluate_ranking` runs a model over a review-mode dataset and returns all of the
  above plus the number of out-of-vocabulary user/image indices met (they are
  mapped to the models' OOV rows; images not seen in training always are).

All functions here are NumPy (evaluation is done once over a whole split, not per
batch); for a streaming training-time metric use `keras.metrics.AUC`, which is what
the models' `default_metrics()` return.
"""

from __future__ import annotations

import collections

import numpy as np


def average_ranks(values):
    """1-based ranks of `values`, ties given the mean of their ranks."""
    values = np.asarray(values, dtype="float64").reshape(-1)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype="float64")
    # Boundaries of runs of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = 0.5 * (start + 1 + end)
    return ranks


def auc(labels, scores):
    """Area under the ROC curve from ranks (ties count 1/2); NaN if a class is missing.

    Args:
        labels: `[N]` binary labels (1 = positive).
        scores: `[N]` scores, higher = more positive.

    Returns:
        float in [0, 1], or NaN when `labels` holds one class only.
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype="float64").reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in size. Received: {labels.shape} and {scores.shape}")
    positive = labels == 1
    n_pos = int(positive.sum())
    n_neg = int(len(labels) - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(scores)
    u_statistic = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def per_user_auc(users, labels, scores):
    """AUC per user, and its mean over users with both classes.

    Args:
        users: `[N]` user indices.
        labels: `[N]` binary labels.
        scores: `[N]` scores.

    Returns:
        `(mean_auc, per_user)` where `per_user` maps user -> AUC for the users with
        both classes; `mean_auc` is NaN when there is no such user.
    """
    users = np.asarray(users).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores).reshape(-1)
    per_user = {}
    for user in np.unique(users):
        chosen = users == user
        value = auc(labels[chosen], scores[chosen])
        if not np.isnan(value):
            per_user[int(user)] = value
    mean = float(np.mean(list(per_user.values()))) if per_user else float("nan")
    return mean, per_user


def accuracy(labels, probabilities, threshold=0.5):
    """Fraction of examples with `(probability > threshold) == label`; NaN if empty."""
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities).reshape(-1)
    if len(labels) == 0:
        return float("nan")
    return float(np.mean((probabilities > threshold).astype(labels.dtype) == labels))


def per_tag_accuracy(tags, labels, probabilities, threshold=0.5):
    """Accuracy per tag id (Fig. 7); examples without a tag (-1) are skipped.

    Returns:
        dict tag -> {"accuracy": float, "count": int}.
    """
    tags = np.asarray(tags).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities).reshape(-1)
    result = {}
    for tag in np.unique(tags):
        if tag < 0:
            continue
        chosen = tags == tag
        result[int(tag)] = {
            "accuracy": accuracy(labels[chosen], probabilities[chosen], threshold),
            "count": int(chosen.sum()),
        }
    return result


def count_out_of_range(indices, size):
    """Number of indices outside `[0, size)` (those a model maps to its OOV row)."""
    indices = np.asarray(indices).reshape(-1)
    return int(np.sum((indices < 0) | (indices >= size)))


def evaluate_ranking(
    model,
    dataset,
    *,
    num_users,
    num_train_images,
    score_key="user_rating",
    agnostic_key="agnostic_rating",
    predict_fn=None,
):
    """Runs `model` over a review-mode dataset and computes the CFAN metrics.

    Args:
        model: a model whose outputs hold `score_key` (and optionally
            `agnostic_key`), e.g. `CFAN`, `BPR`, `VBPR`.
        dataset: iterable of `(features, labels)` batches from
            `tfaesthetic.data.build_dataset(..., mode="review")`; features hold
            `user_index` and `image_index`, labels `user_rating`, `tag`,
            `agnostic_rating`.
        num_users: users the model embeds (indices outside `[0, num_users)` are OOV).
        num_train_images: images the model embeds (others are OOV).
        score_key: output ranked for the AUC.
        agnostic_key: output scored for the user-agnostic accuracy.
        predict_fn: optional `fn(features) -> outputs`, default
            `model(features, training=False)` on the model's own inputs.

    Returns:
        dict with `num_examples`, `auc`, `per_user_auc`, `users_evaluated`,
        `agnostic_accuracy` and `agnostic_accuracy_per_tag` (when the model has
        the agnostic head), `rating_accuracy` (user-specific rating > 0.5),
        `oov_users`, `oov_images`.
    """
    input_keys = getattr(model, "input_keys", None)
    columns = collections.defaultdict(list)
    for features, labels in dataset:
        inputs = {k: v for k, v in features.items() if input_keys is None or k in input_keys}
        outputs = predict_fn(features) if predict_fn is not None else model(inputs, training=False)
        columns["user"].append(np.asarray(features["user_index"]))
        columns["image"].append(np.asarray(features["image_index"]))
        columns["rating"].append(np.asarray(labels["user_rating"]))
        columns["tag"].append(np.asarray(labels["tag"]))
        columns["agnostic"].append(np.asarray(labels["agnostic_rating"]))
        columns["score"].append(np.asarray(outputs[score_key]).reshape(-1))
        if agnostic_key in outputs:
            columns["agnostic_score"].append(np.asarray(outputs[agnostic_key]).reshape(-1))
    data = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in columns.items()}
    mean_user_auc, per_user = per_user_auc(data["user"], data["rating"], data["score"])
    result = {
        "num_examples": int(len(data["rating"])),
        "auc": auc(data["rating"], data["score"]),
        "per_user_auc": mean_user_auc,
        "users_evaluated": len(per_user),
        "rating_accuracy": accuracy(data["rating"], data["score"]),
        "oov_users": count_out_of_range(data["user"], num_users),
        "oov_images": count_out_of_range(data["image"], num_train_images),
    }
    if "agnostic_score" in data:
        result["agnostic_accuracy"] = accuracy(data["agnostic"], data["agnostic_score"])
        result["agnostic_accuracy_per_tag"] = per_tag_accuracy(data["tag"], data["agnostic"], data["agnostic_score"])
    return result
