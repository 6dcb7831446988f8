"""Tests of the procedural demo dataset (tfaesthetic.records.demo, SPEC §2.5).

The learnability tests read the records the way the pipeline does
(`tf.data.TFRecordDataset` + `features.parse_spec()`), never the generator's hidden
attributes, and fit small NumPy logistic regressions on the training split.
"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from scipy import optimize

from tfaesthetic import features
from tfaesthetic.records import demo
from tfaesthetic.records import reviews
from tfaesthetic.records import writer

TINY = dict(num_images=40, image_size=32, num_users=10, num_shards=2)
AVA_VALUES = np.arange(1, 11, dtype=np.float64)


# --------------------------------------------------------------------------------------
# Helpers: reading the records, simple image statistics, a tiny logistic regression
# --------------------------------------------------------------------------------------


def _read_split(records_dir, split):
    """Decoded examples of one split, in shard order."""
    manifest = writer.read_manifest(records_dir)
    names = sorted(n for n in manifest["files"]["shards"] if n.startswith(split + "-"))
    spec = features.parse_spec()
    rows = []
    for serialized in tf.data.TFRecordDataset([os.path.join(records_dir, n) for n in names]):
        ex = tf.io.parse_single_example(serialized, spec)
        encoded = ex[features.IMAGE_ENCODED].numpy()
        rows.append(
            {
                "id": ex[features.IMAGE_ID].numpy().decode(),
                "index": int(ex[features.IMAGE_INDEX].numpy()),
                "image": tf.io.decode_jpeg(encoded[0], channels=3).numpy() if len(encoded) else None,
                "format": ex[features.IMAGE_FORMAT].numpy().decode(),
                "votes": ex[features.VOTES].numpy(),
                "tags": ex[features.TAGS].numpy(),
                "texts": [t.decode() for t in ex[features.COMMENT_TEXT].numpy()],
                "tokens": ex[features.COMMENT_TOKENS].to_list(),
                "users": ex[features.COMMENT_USER].numpy(),
                "levels": ex[features.COMMENT_SENTIMENT].numpy(),
                "ratings": ex[features.COMMENT_RATING].numpy(),
            }
        )
    return rows


@pytest.fixture(scope="module")
def demo_splits(demo_records):
    return {split: _read_split(demo_records, split) for split in features.SPLITS}


def _mean_score(votes):
    return float(np.dot(votes, AVA_VALUES) / votes.sum())


def _good(rows):
    return np.array([_mean_score(r["votes"]) > features.AVA_SCALE.threshold for r in rows], np.float64)


def _box(gray, r):
    k = 2 * r + 1
    p = np.pad(gray, r, mode="reflect")
    c = np.cumsum(np.cumsum(np.pad(p, ((1, 0), (1, 0))), 0), 1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def _image_statistics(image):
    """Simple global statistics: sharpness/noise, exposure, colour spread."""
    x = image.astype(np.float64) / 255.0
    gray = x.mean(-1)
    laplacian = 4 * gray[1:-1, 1:-1] - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    b1, b3 = _box(gray, 1), _box(gray, 3)
    mx, mn = x.max(-1), x.min(-1)
    chroma = mx - mn
    saturation = np.where(mx > 0, chroma / np.maximum(mx, 1e-6), 0.0)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    hue = np.arctan2(np.sqrt(3.0) * (g - b), 2 * r - g - b)
    hue_dispersion = 1.0 - np.abs(np.sum(chroma * np.exp(1j * hue))) / (chroma.sum() + 1e-9)
    mean = gray.mean()
    # Noise and contrast-normalised edge strength, measured on a 3x3 median-filtered copy.
    n = gray.shape[0]
    padded = np.pad(gray, 1, mode="reflect")
    median = np.median(np.stack([padded[i : i + n, j : j + n] for i in range(3) for j in range(3)]), 0)
    contrast = np.percentile(median, 98) - np.percentile(median, 2) + 1e-3
    gradient = np.concatenate([np.abs(np.diff(median, axis=0)).ravel(), np.abs(np.diff(median, axis=1)).ravel()])
    return np.array(
        [
            np.log(np.median(np.abs(gray - median)) + 1e-4),  # noise
            np.log(np.percentile(gradient, 98) / contrast + 1e-4),  # sharpness
            np.log(contrast),
            np.log(laplacian.var() + 1e-6),  # sharpness and noise
            np.log(np.mean((gray - b1) ** 2) + 1e-7),  # finest detail / noise
            np.log(np.mean((b1 - b3) ** 2) + 1e-7),  # edges surviving blur
            mean,
            abs(mean - 0.45),  # exposure error
            (gray > 0.97).mean(),  # blown highlights
            (gray < 0.06).mean(),  # crushed shadows
            saturation.mean(),
            hue_dispersion,  # colour harmony
            chroma.mean(),
        ]
    )


def _mean_hue(image):
    """Direction (cos, sin) of the chroma-weighted mean hue: the image's overall colour."""
    x = image.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    chroma = x.max(-1) - x.min(-1)
    z = np.sum(chroma * np.exp(1j * np.arctan2(np.sqrt(3.0) * (g - b), 2 * r - g - b)))
    return np.array([z.real, z.imag]) / (np.abs(z) + 1e-9)


def _standardize(train, *others):
    mu, sd = train.mean(0), train.std(0) + 1e-9
    return [(a - mu) / sd for a in (train,) + others]


def _fit_logistic(x, y, l2=1.0):
    """L2-regularised logistic regression (bias not penalised), fitted with L-BFGS.

    L-BFGS needs only matrix-vector products; Newton's method on these small
    problems spends its time in multi-threaded LAPACK calls that crawl on a
    loaded 2-core machine.
    """
    x = np.hstack([x, np.ones((len(x), 1))])
    penalised = np.ones(x.shape[1])
    penalised[-1] = 0.0

    def loss_and_gradient(w):
        z = x @ w
        loss = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.sum(penalised * w * w)
        gradient = x.T @ (1.0 / (1.0 + np.exp(-z)) - y) + l2 * penalised * w
        return loss, gradient

    result = optimize.minimize(
        loss_and_gradient, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 1000}
    )
    return result.x


def _accuracy(w, x, y):
    x = np.hstack([x, np.ones((len(x), 1))])
    return float(np.mean(((x @ w) > 0) == (y > 0.5)))


def _cross_validated_accuracy(x, y, l2=1.0, folds=5):
    """Accuracy of predictions each made by a model fitted without that example."""
    fold = np.arange(len(y)) % folds
    correct = 0
    for k in range(folds):
        x_train, x_test = _standardize(x[fold != k], x[fold == k])
        w = _fit_logistic(x_train, y[fold != k], l2)
        correct += _accuracy(w, x_test, y[fold == k]) * np.sum(fold == k)
    return correct / len(y)


def _majority(y):
    return float(max(y.mean(), 1.0 - y.mean()))


# --------------------------------------------------------------------------------------
# Generator-level checks (no TensorFlow)
# --------------------------------------------------------------------------------------


def test_vote_probabilities_discretised_gaussian():
    p = demo.vote_probabilities(5.5, 1.2)
    assert p.shape == (10,)
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-12)
    # Bin k holds P(k - 0.5 < X < k + 0.5) of N(5.5, 1.2) (end bins take the tails).
    from math import erf, sqrt

    cdf = lambda v: 0.5 * (1 + erf((v - 5.5) / (1.2 * sqrt(2))))
    np.testing.assert_allclose(p[4], cdf(5.5) - cdf(4.5), atol=1e-12)
    np.testing.assert_allclose(p[0], cdf(1.5), atol=1e-12)
    np.testing.assert_allclose(np.dot(p, AVA_VALUES), 5.5, atol=0.01)


def test_generate_demo_is_deterministic_and_seeded():
    a = demo.generate_demo(num_images=12, image_size=24, num_users=10, seed=3)
    b = demo.generate_demo(num_images=12, image_size=24, num_users=10, seed=3)
    c = demo.generate_demo(num_images=12, image_size=24, num_users=10, seed=4)
    for ra, rb in zip(a.records, b.records):
        assert ra.encoded == rb.encoded
        assert list(ra.votes) == list(rb.votes)
        assert [x.text for x in ra.comments] == [x.text for x in rb.comments]
    assert [r.encoded for r in a.records] != [r.encoded for r in c.records]


def test_generate_demo_rejects_bad_sizes():
    with pytest.raises(ValueError, match="num_users=5"):
        demo.generate_demo(num_images=20, image_size=32, num_users=5)
    with pytest.raises(ValueError, match="image_size=8"):
        demo.generate_demo(num_images=20, image_size=8, num_users=10)


def test_users_have_distinct_tastes():
    users = demo.make_users(10, seed=0)
    assert [u.name for u in users][:2] == ["user_000", "user_001"]
    # Every attribute is the main focus of some user.
    assert {u.focus for u in users} == set(demo.ATTRIBUTES)


def test_derived_ratings_follow_each_users_focus_attribute():
    """Generator level: a user's derived ratings track the attribute that user cares about.

    For the users focused on attribute k, the correlation between their derived
    ratings and attribute k must exceed the mean correlation with the other
    attributes by 0.2, for every attribute (observed since generator version 4, whose
    favourite-hue term explains part of each opinion: 0.39-0.52 against 0.07-0.17, a
    margin of 0.25-0.41; version 3, without it: 0.63-0.74 against -0.05-0.25).
    """
    data = demo.generate_demo(num_images=150, image_size=24, num_users=10, seed=0)
    focus = np.array([demo.ATTRIBUTES.index(u.focus) for u in data.users])
    attributes, ratings, users = [], [], []
    for image, record in zip(data.images, data.records):
        for comment in record.comments:
            if comment.rating in (0, 1):
                attributes.append(image.attributes)
                ratings.append(comment.rating)
                users.append(comment.user_index)
    attributes, ratings, users = np.array(attributes), np.array(ratings, np.float64), np.array(users)
    for k in range(len(demo.ATTRIBUTES)):
        mine = focus[users] == k
        corr = [np.corrcoef(ratings[mine], attributes[mine, j])[0, 1] for j in range(len(demo.ATTRIBUTES))]
        others = np.mean([c for j, c in enumerate(corr) if j != k])
        assert corr[k] >= others + 0.2, (demo.ATTRIBUTES[k], np.round(corr, 2))


def test_favourite_hues_are_spread_and_visible_in_the_mean_colour():
    """The personal hue term cancels out over users and pixels show it (issue 10, item 6)."""
    users = demo.make_users(40, seed=0)
    phi = np.array([u.hue for u in users])
    # Favourite hues spread evenly: their mean direction is near zero.
    assert abs(np.mean(np.exp(2j * np.pi * phi))) < 0.1, np.round(phi, 2)
    data = demo.generate_demo(num_images=60, image_size=32, num_users=10, seed=0)
    angles = []
    for image, record in zip(data.images, data.records):
        pixels = tf.io.decode_jpeg(record.encoded).numpy()
        c, s = _mean_hue(pixels)
        angles.append(np.angle(np.exp(1j * (np.arctan2(s, c) - 2 * np.pi * image.hue))))
    # The image's mean colour points at its palette hue (observed: mean cos 0.85).
    assert np.mean(np.cos(angles)) > 0.8, np.round(angles, 2)


def test_comment_templates_read_as_intended_by_the_derivation():
    """Each generated sentence must derive to the polarity the simulated user meant."""
    for key, sentences in demo._RULE_SENTENCES.items():
        for text in sentences:
            d = reviews.derive(text)
            assert (d.kind, d.rating) == ("I", 1 if key[1] > 0 else 0), (text, d)
    for polarity, sentences in list(demo._FEELINGS.items()) + list(demo._CLOSERS.items()):
        for text in sentences:
            assert reviews.derive(text).rating == (1 if polarity > 0 else 0), text
    dropped = list(demo._QUESTIONS) + list(demo._NO_LETTERS) + [t for v in demo._AMBIGUOUS.values() for t in v]
    for text in dropped:
        assert reviews.derive(text).rating == features.NO_RATING, text


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


def test_manifest_counts_and_generator_params(demo_records):
    manifest = writer.read_manifest(demo_records)
    assert manifest["splits"] == {"train": 192, "val": 24, "test": 24}  # 80/10/10 of 240
    assert manifest["num_images"] == 240 and manifest["num_train_images"] == 192
    assert manifest["num_users"] == 24
    assert manifest["num_tags"] == len(demo.TAGS)
    assert manifest["score_scale"] == features.AVA_SCALE.to_json()
    assert manifest["has_images"] is True
    assert manifest["has_votes"] is True  # MRACNN's targets: every image has votes
    assert manifest["images_with_votes"] == manifest["splits"]
    assert manifest["generator"] == demo.generator_params(num_images=240, image_size=48, num_users=24, seed=0, num_shards=2)
    # Nothing hidden (qualities, attributes, tastes) is in the manifest.
    text = json.dumps(manifest)
    assert "quality" not in text and "taste" not in text
    assert set(manifest["review_types"]) == set(reviews.KINDS)
    assert sum(manifest["review_types"].values()) == sum(manifest["counts"]["written"]["comments"].values())
    with open(os.path.join(demo_records, writer.USERS_FILE)) as f:
        assert f.readline() == "0\tuser_000\n"


def test_records_content(demo_records, demo_splits):
    rows = [r for split in features.SPLITS for r in demo_splits[split]]
    assert sorted(r["index"] for r in rows) == list(range(240))
    assert max(r["index"] for r in demo_splits["train"]) == 191  # training images first
    for r in rows:
        assert r["image"].shape == (48, 48, 3) and r["format"] == "jpeg"
        assert r["votes"].shape == (10,) and 50 <= r["votes"].sum() <= 200
        assert 1 <= len(r["tags"]) <= 2 and all(0 <= t < len(demo.TAGS) for t in r["tags"])
        assert len(set(r["users"].tolist())) == len(r["users"])  # distinct commenters
        assert len(r["texts"]) == len(r["tokens"]) == len(r["ratings"]) == len(r["levels"])
    means = np.array([_mean_score(r["votes"]) for r in rows])
    # Both classes around the threshold are well represented, with an AVA-like spread.
    assert 0.3 < np.mean(means > 5) < 0.7
    assert 0.5 < means.std() < 1.5
    assert len({int(r["tags"][0]) for r in rows}) == len(demo.TAGS)
    assert sum(len(r["tags"]) == 2 for r in rows) > 20


def test_bad_inputs_present_and_handled(demo_records, demo_splits):
    """Images without comments and comments without letters: kept, counted, not rated."""
    manifest = writer.read_manifest(demo_records)
    rows = [r for split in features.SPLITS for r in demo_splits[split]]
    no_comments = [r for r in rows if not r["texts"]]
    no_letters = [
        (t, rating) for r in rows for t, rating in zip(r["texts"], r["ratings"]) if not any(c.isalpha() for c in t)
    ]
    assert no_comments and no_letters
    kept = manifest["counts"]["kept"]
    assert kept["image:image_without_comments"] == len(no_comments)
    assert kept["comment:comment_without_letters"] == len(no_letters)
    assert all(rating == features.NO_RATING for _, rating in no_letters)
    assert manifest["counts"]["rejected"] == {}
    with open(os.path.join(demo_records, writer.REJECTED_FILE)) as f:
        entries = [json.loads(line) for line in f]
    assert sum(e["reason"] == "comment_without_letters" for e in entries) == len(no_letters)
    # Types III/IV are present and dropped from the ratings too.
    assert manifest["review_types"]["III"] > 0 and manifest["review_types"]["IV"] > 0


def test_eq7_consistency_in_manifest_matches_numpy_reference(demo_records, demo_splits):
    """Eq. 7 of seed 000: per image, the share of derived ratings agreeing with b_v."""
    total, images = 0.0, 0
    for rows in demo_splits.values():
        for r in rows:
            s = r["ratings"][r["ratings"] >= 0]
            if s.size == 0:
                continue
            b = int(_mean_score(r["votes"]) > 5)
            total += np.sum(s == b) / s.size
            images += 1
    expected = total / images
    manifest = writer.read_manifest(demo_records)
    np.testing.assert_allclose(manifest["consistency"], expected, atol=1e-9)
    # The derived ratings agree with the crowd about as well as on AVA (paper: 81.06%).
    assert 0.65 < expected < 0.95


def test_build_is_deterministic_per_seed(tmp_path):
    a = demo.build_demo(str(tmp_path / "a"), seed=1, **TINY)
    b = demo.build_demo(str(tmp_path / "b"), seed=1, **TINY)
    c = demo.build_demo(str(tmp_path / "c"), seed=2, **TINY)
    assert a["files"]["shards"] == b["files"]["shards"]  # identical shard bytes (sha256)
    for name in a["files"]["shards"]:
        with open(tmp_path / "a" / name, "rb") as fa, open(tmp_path / "b" / name, "rb") as fb:
            assert hashlib.sha256(fa.read()).hexdigest() == hashlib.sha256(fb.read()).hexdigest()
    assert a["files"][writer.VOCAB_FILE] == b["files"][writer.VOCAB_FILE]
    assert set(a["files"]["shards"].values()).isdisjoint(c["files"]["shards"].values())


def test_ensure_demo_records_reuses_matching_and_rebuilds_otherwise(tmp_path):
    out = str(tmp_path / "demo")
    first = demo.ensure_demo_records(out, seed=5, **TINY)
    marker = os.path.join(out, writer.MANIFEST)
    os.utime(marker, (1, 1))
    again = demo.ensure_demo_records(out, seed=5, **TINY)
    assert again == first and os.path.getmtime(marker) == 1  # reused, not rewritten
    rebuilt = demo.ensure_demo_records(out, seed=6, **TINY)
    assert rebuilt["generator"]["seed"] == 6 and os.path.getmtime(marker) > 1
    # A missing shard forces a rebuild too.
    os.remove(os.path.join(out, sorted(rebuilt["files"]["shards"])[0]))
    repaired = demo.ensure_demo_records(out, seed=6, **TINY)
    assert all(os.path.exists(os.path.join(out, n)) for n in repaired["files"]["shards"])
    with pytest.raises(TypeError, match="bogus"):
        demo.ensure_demo_records(out, bogus=1)


@pytest.mark.slow
def test_build_demo_script(tmp_path):
    out = tmp_path / "records"
    script = os.path.join(os.path.dirname(__file__), "..", "..", "records", "build_demo.py")
    result = subprocess.run(
        [sys.executable, script, f"--out_dir={out}", "--num_images=20", "--image_size=32", "--num_users=10", "--num_shards=1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(out) in result.stdout
    assert '"train": 16' in result.stdout
    assert "Eq. 7 consistency" in result.stdout
    assert writer.read_manifest(str(out))["splits"] == {"train": 16, "val": 2, "test": 2}


# --------------------------------------------------------------------------------------
# Learnable structure (SPEC §2.5)
# --------------------------------------------------------------------------------------
# Image-level tests: 240 images, each predicted by a model fitted on the other folds
# (5-fold cross-validation; one fold = 48 images, the size of val + test), plus the
# official split (fit on train, score val + test). With 240 predictions the standard
# error of an accuracy near 75% is ~3 points, so the 10-point margin over the
# majority baseline is more than three standard errors; the 48-image val + test
# split alone (~6 points of standard error) only has to beat the baseline by 6.
# Review-level test: ~280 held-out reviews, paired comparison, 5-point margin.
# The build is deterministic, so the figures are stable; the margins guard against
# the generator losing its structure. Observed on seed 0: see each assert.


def _all_images(demo_splits):
    return [r for split in features.SPLITS for r in demo_splits[split]]


def test_image_statistics_predict_good_bad_above_majority(demo_splits):
    rows = _all_images(demo_splits)
    x, y = np.array([_image_statistics(r["image"]) for r in rows]), _good(rows)
    accuracy, baseline = _cross_validated_accuracy(x, y), _majority(y)
    # Observed: 0.72 vs a 0.53 majority baseline.
    assert accuracy >= baseline + 0.10, (accuracy, baseline)

    train, held_out = demo_splits["train"], demo_splits["val"] + demo_splits["test"]
    x_train, x_held = _standardize(
        np.array([_image_statistics(r["image"]) for r in train]),
        np.array([_image_statistics(r["image"]) for r in held_out]),
    )
    w = _fit_logistic(x_train, _good(train))
    accuracy, baseline = _accuracy(w, x_held, _good(held_out)), _majority(_good(held_out))
    # Observed: 0.73 vs 0.54.
    assert accuracy >= baseline + 0.06, (accuracy, baseline)


def test_comment_bag_of_words_predicts_good_bad_above_majority(demo_records, demo_splits):
    vocab_size = writer.read_manifest(demo_records)["vocab_size"]

    def bag(rows):
        counts = np.zeros((len(rows), vocab_size))
        for i, r in enumerate(rows):
            for token_row in r["tokens"]:
                np.add.at(counts[i], np.asarray(token_row, np.int64), 1.0)
        return np.log1p(counts)

    rows = _all_images(demo_splits)
    y = _good(rows)
    accuracy, baseline = _cross_validated_accuracy(bag(rows), y, l2=3.0), _majority(y)
    # Observed: 0.84 vs 0.53.
    assert accuracy >= baseline + 0.10, (accuracy, baseline)

    train, held_out = demo_splits["train"], demo_splits["val"] + demo_splits["test"]
    w = _fit_logistic(bag(train), _good(train), l2=3.0)
    accuracy, baseline = _accuracy(w, bag(held_out), _good(held_out)), _majority(_good(held_out))
    # Observed: 0.83 vs 0.54.
    assert accuracy >= baseline + 0.06, (accuracy, baseline)


def test_derived_ratings_follow_user_tastes(demo_records, demo_splits):
    """A user x image-statistics model beats an image-only one on held-out reviews.

    The image-only model already knows the crowd's mean score of the image (from the
    votes) and its statistics; the personal model adds a user one-hot and its
    interaction with the same features. Only user-specific tastes and biases can
    make it better on reviews of images it never saw.
    """
    num_users = writer.read_manifest(demo_records)["num_users"]
    train = demo_splits["train"]
    held_out = demo_splits["val"] + demo_splits["test"]
    # The statistics plus the mean hue: the crowd has no favourite hue (it cancels
    # out in the image-only model), each user has one (demo.HUE_TASTE_WEIGHT).
    s_train = np.array([np.append(_image_statistics(r["image"]), _mean_hue(r["image"])) for r in train])
    s_held = np.array([np.append(_image_statistics(r["image"]), _mean_hue(r["image"])) for r in held_out])
    s_train, s_held = _standardize(s_train, s_held)

    def reviews_of(rows, stats):
        x, users, y = [], [], []
        for r, s in zip(rows, stats):
            for user, rating in zip(r["users"], r["ratings"]):
                if rating in (0, 1):
                    x.append(np.append(s, _mean_score(r["votes"]) - 5.0))
                    users.append(user)
                    y.append(rating)
        return np.array(x), np.array(users), np.array(y, np.float64)

    def personal(x, users):
        one_hot = np.eye(num_users)[users]
        interaction = (one_hot[:, :, None] * x[:, None, :]).reshape(len(x), -1)
        return np.hstack([x, one_hot, interaction])

    x_train, u_train, y_train = reviews_of(train, s_train)
    x_held, u_held, y_held = reviews_of(held_out, s_held)
    assert len(y_held) > 200
    image_only = _accuracy(_fit_logistic(x_train, y_train, l2=3.0), x_held, y_held)
    per_user = _accuracy(_fit_logistic(personal(x_train, u_train), y_train, l2=3.0), personal(x_held, u_held), y_held)
    # Observed (generator version 4): 0.76 vs 0.69 (majority 0.52); without the mean hue
    # in the features the personal model gets only 0.71 (version 3: 0.79 vs 0.71).
    assert image_only >= _majority(y_held) + 0.05, (image_only, _majority(y_held))
    assert per_user >= image_only + 0.05, (per_user, image_only)
