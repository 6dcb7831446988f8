"""AUC / accuracy metrics of CFAN (seed 000 §4.2) against independent NumPy computations."""

import numpy as np
import pytest
import scipy.stats

from tfaesthetic.metrics import ranking


def pairwise_auc(labels, scores):
    """Definition of the AUC: P(score_pos > score_neg) + 1/2 P(tie), over all pairs."""
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = rng.integers(2, 60)
        labels = rng.integers(0, 2, size=n)
        if labels.min() == labels.max():
            continue
        scores = rng.integers(0, 5, size=n).astype("float32")  # many ties
        assert ranking.auc(labels, scores) == pytest.approx(pairwise_auc(labels, scores), abs=1e-12)
        # And with scipy's Mann-Whitney U (tie-corrected ranks).
        u = scipy.stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
        assert ranking.auc(labels, scores) == pytest.approx(u / ((labels == 1).sum() * (labels == 0).sum()))


def test_auc_edge_cases():
    assert ranking.auc([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2]) == 1.0
    assert ranking.auc([1, 1, 0, 0], [0.1, 0.2, 0.9, 0.8]) == 0.0
    assert ranking.auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(ranking.auc([1, 1], [0.2, 0.3]))
    with pytest.raises(ValueError, match="Received"):
        ranking.auc([1, 0], [0.2])


def test_average_ranks():
    np.testing.assert_array_equal(ranking.average_ranks([3, 1, 3, 2]), [3.5, 1, 3.5, 2])


def test_per_user_auc_skips_single_class_users():
    users = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    labels = np.array([1, 0, 0, 1, 1, 1, 0, 1])
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.2, 0.1, 0.2, 0.9])
    mean, per_user = ranking.per_user_auc(users, labels, scores)
    assert set(per_user) == {0, 2}  # user 1 has positives only
    assert per_user[0] == 1.0 and per_user[2] == 0.5
    assert mean == pytest.approx(0.75)


def test_accuracy_overall_and_per_tag():
    tags = np.array([0, 0, 1, 1, -1])
    labels = np.array([1, 0, 1, 0, 1])
    probs = np.array([0.8, 0.7, 0.6, 0.2, 0.1])
    assert ranking.accuracy(labels, probs) == pytest.approx(3 / 5)
    per_tag = ranking.per_tag_accuracy(tags, labels, probs)
    assert per_tag == {0: {"accuracy": 0.5, "count": 2}, 1: {"accuracy": 1.0, "count": 2}}


def test_count_out_of_range():
    assert ranking.count_out_of_range([0, 3, 4, -1, 7], 4) == 3


def test_evaluate_ranking_on_batches():
    class Constant:
        input_keys = ("user_index", "image_index")

        def __call__(self, inputs, training=False):
            assert set(inputs) == {"user_index", "image_index"}
            score = inputs["image_index"].astype("float32") / 10.0
            return {"user_rating": score, "agnostic_rating": score}

    users = np.array([0, 0, 1, 1, 5])
    images = np.array([1, 2, 3, 9, 4])
    labels = {
        "user_rating": np.array([0.0, 1.0, 1.0, 0.0, 1.0]),
        "tag": np.array([0, 0, 1, 1, -1]),
        "agnostic_rating": np.array([0.0, 0.0, 0.0, 1.0, 1.0]),
    }
    batches = [
        ({"user_index": users[s], "image_index": images[s], "review": np.zeros((len(users[s]), 3))},
         {k: v[s] for k, v in labels.items()})
        for s in (slice(0, 3), slice(3, 5))
    ]
    result = ranking.evaluate_ranking(Constant(), batches, num_users=4, num_train_images=5)
    assert result["num_examples"] == 5
    assert result["oov_users"] == 1 and result["oov_images"] == 1
    assert result["users_evaluated"] == 2
    assert result["per_user_auc"] == pytest.approx(0.5)  # user 0: 1.0, user 1: 0.0
    assert result["auc"] == pytest.approx(pairwise_auc(labels["user_rating"], images / 10.0))
    assert result["agnostic_accuracy"] == pytest.approx(ranking.accuracy(labels["agnostic_rating"], images / 10))


def reference_per_image_accuracy(images, labels, probs, tags=None):
    """Fig. 7 from its definition: one vote per image with a known label (>= 0)."""
    rows = {}
    for i, image in enumerate(images):
        rows.setdefault(image, i)  # the first review of each image
    keep = [i for i in rows.values() if labels[i] >= 0]
    correct = {i: float((probs[i] > 0.5) == bool(labels[i])) for i in keep}
    overall = np.mean(list(correct.values()))
    per_tag = {}
    if tags is not None:
        for tag in sorted({tags[i] for i in keep if tags[i] >= 0}):
            chosen = [correct[i] for i in keep if tags[i] == tag]
            per_tag[int(tag)] = {"accuracy": float(np.mean(chosen)), "count": len(chosen)}
    return overall, per_tag


def test_fig7_accuracy_skips_unknown_labels():
    labels = np.array([1, 0, -1, -1, 1, 0])
    probs = np.array([0.9, 0.2, 0.9, 0.1, 0.4, 0.7])
    # Rows 2-3 (no votes) are not errors, nor successes: 2 of the 4 known are right.
    assert ranking.accuracy(labels, probs) == pytest.approx(0.5)
    assert ranking.accuracy(labels.astype("float32"), probs) == pytest.approx(0.5)
    assert np.isnan(ranking.accuracy([-1, -1], [0.2, 0.9]))
    tags = np.array([0, 0, 0, 1, 1, -1])
    assert ranking.per_tag_accuracy(tags, labels, probs) == {
        0: {"accuracy": 1.0, "count": 2},
        1: {"accuracy": 0.0, "count": 1},
    }


def test_masked_keras_accuracy_matches_numpy():
    rng = np.random.default_rng(1)
    labels = rng.integers(-1, 2, size=50).astype("float32")
    probs = rng.uniform(size=50).astype("float32")
    metric = ranking.MaskedBinaryAccuracy()
    metric.update_state(labels[:20], probs[:20])
    metric.update_state(labels[20:], probs[20:])
    assert float(metric.result()) == pytest.approx(ranking.accuracy(labels, probs), abs=1e-6)
    # Unmasked Keras accuracy would count the -1 labels as errors.
    plain = __import__("keras").metrics.BinaryAccuracy()
    plain.update_state(labels, probs)
    assert float(plain.result()) < float(metric.result())
    # Soft labels (CFAN's agnostic_target="share") count as class 1 above 0.5.
    shares = np.where(labels < 0, -1.0, rng.uniform(size=50)).astype("float32")
    soft = ranking.MaskedBinaryAccuracy()
    soft.update_state(shares, probs)
    hard = np.where(shares < 0, -1.0, (shares > 0.5).astype("float32"))
    assert float(soft.result()) == pytest.approx(ranking.accuracy(hard, probs), abs=1e-6)


def test_evaluate_ranking_fig7_accuracy_is_per_image():
    """An image with many reviews counts once; images without votes are not scored."""

    class PerImage:
        input_keys = ("user_index", "image_index")

        def __call__(self, inputs, training=False):
            score = np.asarray(inputs["image_index"]).astype("float32") / 10.0
            return {"user_rating": score, "agnostic_rating": score}

    # Image 7 (score 0.7, label 0: wrong) has 6 reviews; images 1, 2, 8 one each.
    images = np.array([7, 7, 1, 7, 7, 2, 7, 8, 7, 3])
    agnostic = np.array([0, 0, 0, 0, 0, 1, 0, 1, 0, -1], "float32")  # image 3 has no votes
    tags = np.array([1, 1, 0, 1, 1, 0, 1, 1, 1, 0])
    users = np.arange(10) % 3
    ratings = (np.arange(10) % 2).astype("float32")
    labels = {"user_rating": ratings, "tag": tags, "agnostic_rating": agnostic}
    ids = np.array([f"img{i}".encode() for i in images])
    batches = []
    for s in (slice(0, 4), slice(4, 10)):
        features = {"user_index": users[s], "image_index": images[s]}
        batches.append((features, {k: v[s] for k, v in labels.items()}, {"image_id": ids[s], "tag": tags[s]}))
    expected, expected_per_tag = reference_per_image_accuracy(images, agnostic, images / 10.0, tags)
    assert expected == pytest.approx(2 / 4)  # per review it would be 2/9
    for data in (batches, [b[:2] for b in batches]):  # by image_id, then by image_index
        result = ranking.evaluate_ranking(PerImage(), data, num_users=3, num_train_images=20)
        assert result["agnostic_images"] == 4
        assert result["agnostic_accuracy"] == pytest.approx(expected)
        assert result["agnostic_accuracy_per_tag"] == expected_per_tag
        assert result["num_examples"] == 10  # the AUC stays per review


class _FakeReviewModel:
    """Reads `review`: with it, the score is the label; without it, a per-user guess."""

    input_keys = ("image_index", "user_index", "review")

    def __call__(self, inputs, training=False):
        review = np.asarray(inputs["review"])
        users = np.asarray(inputs["user_index"]).astype("float32")
        has_review = (review != 0).any(-1)
        with_review = review[:, 0].astype("float32") - 1.0  # token 2 = good, 1 = bad
        no_review = 0.1 + 0.01 * users + 0.001 * np.asarray(inputs["image_index"])
        known = (users >= 0) & (users < 3)
        agnostic = 0.2 + 0.002 * np.asarray(inputs["image_index"])
        rating = np.where(has_review, with_review, no_review)
        return {"user_rating": np.where(known, rating, agnostic), "agnostic_rating": agnostic,
                "tag": np.eye(2)[np.asarray(inputs["image_index"]) % 2]}


def test_evaluate_personalised_reports_each_path_separately():
    rng = np.random.default_rng(0)
    n = 40
    labels_user = rng.integers(0, 2, n).astype("float32")
    features = {
        "image_index": np.arange(n, dtype="int32"),
        "user_index": (np.arange(n) % 3).astype("int32"),
        "review": np.stack([labels_user + 1, np.zeros(n)], -1).astype("int32"),
    }
    labels = {"user_rating": labels_user, "tag": (np.arange(n) % 2).astype("int32"),
              "agnostic_rating": rng.integers(0, 2, n).astype("float32")}
    batches = [({k: v[i:i + 16] for k, v in features.items()}, {k: v[i:i + 16] for k, v in labels.items()})
               for i in range(0, n, 16)]
    model = _FakeReviewModel()
    result = ranking.evaluate_personalised(model, batches, num_users=3, num_train_images=10)
    assert result["reads_review"] and result["num_examples"] == n and result["oov_images"] == n - 10
    # With the review the fake model reads the label: AUC 1, a number that says nothing about taste.
    assert result["with_review"]["auc"] == 1.0 and result["with_review"]["per_user_auc"] == 1.0
    # Without it, the scores are the fake's no-review ones (all-padding review), per known user.
    out = model(dict(features, review=np.zeros((n, 1), "int32")))
    expected = ranking.per_user_auc(features["user_index"], labels_user, out["user_rating"])[0]
    assert result["no_review"]["per_user_auc"] == pytest.approx(expected)
    assert result["no_review"]["auc"] == pytest.approx(ranking.auc(labels_user, out["user_rating"]))
    agnostic = ranking.per_user_auc(features["user_index"], labels_user, out["agnostic_rating"])[0]
    assert result["agnostic"]["per_user_auc"] == pytest.approx(agnostic)
    majority = max(labels["agnostic_rating"].mean(), 1 - labels["agnostic_rating"].mean())
    assert result["agnostic"]["majority_accuracy"] == pytest.approx(majority)
    # The unknown user gets the fallback (here: the agnostic score) on every example.
    assert result["unknown_user"]["auc"] == pytest.approx(ranking.auc(labels_user, out["agnostic_rating"]))
    assert result["tag"]["accuracy"] == 1.0 and result["tag"]["majority_accuracy"] == 0.5
