"""Personalised ranking metrics of CFAN (seed 000 §4.2, Fig. 7-8).

- AUC of the user-specific ratings, overall and averaged per user (over users whose
  evaluated examples hold both classes), computed exactly from ranks with ties
  averaged (Mann-Whitney U / (n_pos n_neg)): a tied positive/negative pair counts 1/2.
- Accuracy of the user-agnostic rating (probability > 0.5 vs. the label), overall
  and per semantic tag (Fig. 7), **per image**: beta_hat_v and its label are
  properties of the image, so `evaluate_ranking` keeps one row per image (not one
  per review, which would weigh images by their review count). Labels < 0 (images
  without votes) are not scored.
- `evaluate_ranking` runs a model over a review-mode dataset and returns all of the
  above plus the number of out-of-vocabulary user/image indices met (they are
  mapped to the models' OOV rows; images not seen in training always are).

All functions here are NumPy (evaluation is done once over a whole split, not per
batch), except `MaskedBinaryAccuracy`, the streaming training-time accuracy of
beta_hat_v (per review, labels < 0 skipped) that `CFAN.default_metrics()` returns
with `keras.metrics.AUC`.
"""

from __future__ import annotations

import collections

import keras
import numpy as np
from keras import ops

from tfaesthetic.metrics.evaluation import average_ranks  # one rank function for SRCC and AUC


@keras.saving.register_keras_serializable(package="tfaesthetic")
class MaskedBinaryAccuracy(keras.metrics.BinaryAccuracy):
    """`keras.metrics.BinaryAccuracy` that skips labels < 0 (unknown, e.g. no votes).

    Args:
        name: metric name.
        dtype: metric dtype.
        threshold: a prediction above it counts as 1.

    Call arguments (`update_state`):
        y_true: `[B]` labels in {0, 1}, or < 0 for unknown. Soft labels in [0, 1]
            (CFAN's `agnostic_target="share"`) count as 1 above 0.5.
        y_pred: `[B]` probabilities.
        sample_weight: optional `[B]` weights, multiplied by the mask.

    Reference:
        Wang et al., IJCAI 2018 (seed 000), §4.2, Fig. 7 (accuracy of the
        user-agnostic rating).
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.convert_to_tensor(y_true), (-1,))
        y_pred = ops.reshape(ops.convert_to_tensor(y_pred), (-1,))
        mask = ops.cast(y_true >= 0, self.dtype)
        if sample_weight is not None:
            mask = mask * ops.reshape(ops.cast(sample_weight, self.dtype), (-1,))
        return super().update_state(ops.cast(y_true > 0.5, y_pred.dtype), y_pred, sample_weight=mask)


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
    """Fraction of examples with `(probability > threshold) == label`, skipping labels < 0.

    Labels < 0 mean unknown (an image without votes) and are not scored. NaN when
    no example has a label >= 0.
    """
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities).reshape(-1)
    if labels.shape != probabilities.shape:
        raise ValueError(f"labels and probabilities differ in size. Received: {labels.shape} and {probabilities.shape}")
    known = labels >= 0
    if not known.any():
        return float("nan")
    predicted = (probabilities[known] > threshold).astype("int64")
    return float(np.mean(predicted == labels[known].astype("int64")))


def first_per_group(groups):
    """Positions of the first occurrence of each distinct value of `groups`, in order."""
    groups = np.asarray(groups).reshape(-1)
    if groups.size == 0:
        return np.zeros((0,), dtype="int64")
    _, first = np.unique(groups, return_index=True)
    return np.sort(first)


def per_tag_accuracy(tags, labels, probabilities, threshold=0.5):
    """Accuracy per tag id (Fig. 7); no tag (-1) and labels < 0 are skipped.

    Returns:
        dict tag -> {"accuracy": float, "count": int}, `count` being the examples
        with a label >= 0 (tags with none are left out).
    """
    tags = np.asarray(tags).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities).reshape(-1)
    result = {}
    for tag in np.unique(tags):
        if tag < 0:
            continue
        chosen = (tags == tag) & (labels >= 0)
        if not chosen.any():
            continue
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
        the agnostic head; per image, see the module docstring, over the
        `agnostic_images` images with votes), `rating_accuracy` (user-specific
        rating > 0.5, per review), `oov_users`, `oov_images`.

    Images are told apart by the metadata's `image_id` when the dataset yields
    `(features, labels, metadata)` (`include_metadata=True`), else by
    `features["image_index"]` (dense and unique per image in the records).
    """
    input_keys = getattr(model, "input_keys", None)
    columns = collections.defaultdict(list)
    for batch in dataset:
        features, labels = batch[0], batch[1]
        if len(batch) > 2 and batch[2] is not None and "image_id" in batch[2]:
            columns["image_key"].append(np.asarray(batch[2]["image_id"]).reshape(-1))
        else:
            columns["image_key"].append(np.asarray(features["image_index"]).reshape(-1))
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
        # One row per image: beta_hat_v does not depend on the user or the review.
        first = first_per_group(data["image_key"])
        labels, scores, tags = data["agnostic"][first], data["agnostic_score"][first], data["tag"][first]
        result["agnostic_images"] = int(np.sum(labels >= 0))
        result["agnostic_accuracy"] = accuracy(labels, scores)
        result["agnostic_accuracy_per_tag"] = per_tag_accuracy(tags, labels, scores)
    return result


#: The personalised paths `evaluate_personalised` reports, in table order.
PATHS = ("with_review", "no_review", "agnostic", "unknown_user")
PATH_DESCRIPTIONS = {
    "with_review": "known user, reads this review (paper protocol; demo labels derive from it)",
    "no_review": "known user, review withheld (taste-profile path; the practical case)",
    "agnostic": "user-agnostic rating beta_hat_v ranked per user (the baseline no_review must beat)",
    "unknown_user": "user id unknown to the model (served fallback)",
}


def _rating_block(users, labels, scores):
    mean_user_auc, per_user = per_user_auc(users, labels, scores)
    return {
        "auc": auc(labels, scores),
        "per_user_auc": mean_user_auc,
        "users_evaluated": len(per_user),
        "rating_accuracy": accuracy(labels, scores),
    }


def evaluate_personalised(model, dataset, *, num_users, num_train_images, unknown_user=-1):
    """The personalised metrics of every serving path, side by side, in one pass.

    Seed 000 derives each user's rating from that user's review, so a model reading
    the review at test time can read the label; the figures are therefore reported
    per path (`PATHS`), never mixed:

    - `with_review`: the model called with the review (the paper's protocol), only
      for models that read reviews;
    - `no_review`: a known user and no review: `model.predict_without_review` where
      the model reads reviews (CFAN's taste profiles), else the model itself (BPR,
      VBPR and the CFN variants never see a review);
    - `agnostic`: the user-agnostic rating beta_hat_v, scored per user like the
      others (the baseline the no-review path must beat) and per image (Fig. 7
      accuracy, with the split's majority class for comparison);
    - `unknown_user`: every user id replaced by `unknown_user` (the served fallback).

    Per-user AUC is over known users (index in `[0, num_users)`) whose examples hold
    both classes; the AUC and rating accuracy of `with_review` / `no_review` /
    `agnostic` are over the known users' reviews, those of `unknown_user` over all.

    Args:
        model: a review-mode model (`CFAN`, `BPR`, `VBPR`).
        dataset: `(features, labels[, metadata])` batches of a review-mode split.
        num_users: users the model embeds.
        num_train_images: images the model embeds.
        unknown_user: the user index used for the unknown-user path.

    Returns:
        dict: `num_examples`, `oov_users`, `oov_images`, `reads_review`, one dict per
        path in `PATHS` (None where the model has no such path), and `tag`
        (`accuracy` of the tag head per image and `majority_accuracy`) when the
        model has a tag head.
    """
    input_keys = tuple(getattr(model, "input_keys", None) or ())
    reads_review = "review" in input_keys
    no_review_fn = None
    if reads_review:
        # The no-review path is the model fed an all-padding review (what
        # `CFAN.predict_without_review` does); an export is called the same way.
        no_review_fn = getattr(model, "predict_without_review", None) or (
            lambda inputs: model(
                dict(inputs, review=np.zeros((len(inputs["user_index"]), 1), "int32")), training=False
            )
        )
    columns = collections.defaultdict(list)
    for batch in dataset:
        features, labels = batch[0], batch[1]
        meta = batch[2] if len(batch) > 2 else None
        key = meta["image_id"] if meta is not None and "image_id" in meta else features["image_index"]
        columns["image_key"].append(np.asarray(key).reshape(-1))
        inputs = {k: np.asarray(v) for k, v in features.items() if not input_keys or k in input_keys}
        outputs = model(inputs, training=False)
        no_review = no_review_fn(inputs) if no_review_fn is not None else outputs
        # The unknown user has no review either (what a served anonymous request sends).
        anonymous_inputs = dict(inputs, user_index=np.full_like(np.asarray(features["user_index"]), unknown_user))
        anonymous = no_review_fn(anonymous_inputs) if no_review_fn is not None else model(anonymous_inputs, training=False)
        columns["user"].append(np.asarray(features["user_index"]).reshape(-1))
        columns["image"].append(np.asarray(features["image_index"]).reshape(-1))
        columns["rating"].append(np.asarray(labels["user_rating"]).reshape(-1))
        columns["tag"].append(np.asarray(labels["tag"]).reshape(-1))
        columns["agnostic"].append(np.asarray(labels["agnostic_rating"]).reshape(-1))
        columns["with_review"].append(np.asarray(outputs["user_rating"]).reshape(-1))
        columns["no_review"].append(np.asarray(no_review["user_rating"]).reshape(-1))
        columns["unknown_user"].append(np.asarray(anonymous["user_rating"]).reshape(-1))
        if "agnostic_rating" in outputs:
            columns["agnostic_score"].append(np.asarray(outputs["agnostic_rating"]).reshape(-1))
        if "tag" in outputs:
            columns["tag_pred"].append(np.argmax(np.asarray(outputs["tag"]), axis=-1).reshape(-1))
    data = {k: np.concatenate(v) for k, v in columns.items()}
    if not data:
        return {"num_examples": 0, "reads_review": reads_review, **{p: None for p in PATHS}}
    known = (data["user"] >= 0) & (data["user"] < num_users)
    users, ratings = data["user"][known], data["rating"][known]
    result = {
        "num_examples": int(len(data["rating"])),
        "known_user_examples": int(known.sum()),
        "oov_users": count_out_of_range(data["user"], num_users),
        "oov_images": count_out_of_range(data["image"], num_train_images),
        "reads_review": reads_review,
        "with_review": _rating_block(users, ratings, data["with_review"][known]) if reads_review else None,
        "no_review": _rating_block(users, ratings, data["no_review"][known]),
        "agnostic": None,
        "unknown_user": _rating_block(data["user"], data["rating"], data["unknown_user"]),
    }
    first = first_per_group(data["image_key"])
    if "agnostic_score" in data:
        block = _rating_block(users, ratings, data["agnostic_score"][known])
        labels, scores, tags = data["agnostic"][first], data["agnostic_score"][first], data["tag"][first]
        voted = labels[labels >= 0]
        block.update(
            images=int(voted.size),
            accuracy=accuracy(labels, scores),
            majority_accuracy=float(max(voted.mean(), 1 - voted.mean())) if voted.size else float("nan"),
            accuracy_per_tag=per_tag_accuracy(tags, labels, scores),
        )
        result["agnostic"] = block
    if "tag_pred" in data:
        tags, predicted = data["tag"][first], data["tag_pred"][first]
        tagged = tags >= 0
        counts = np.bincount(tags[tagged]) if tagged.any() else np.zeros(1)
        result["tag"] = {
            "images": int(tagged.sum()),
            "accuracy": float(np.mean(predicted[tagged] == tags[tagged])) if tagged.any() else float("nan"),
            "majority_accuracy": float(counts.max() / max(1, counts.sum())),
        }
    return result
