"""The two split protocols of the review mode (issue 10): cold (held-out images) and
warm (held-out reviews of seen images, cut from the training records in the pipeline)."""

import numpy as np
import pytest
import tensorflow as tf

from tfaesthetic import config as config_lib
from tfaesthetic.data import build_dataset
from tfaesthetic.data.parser import WARM_HOLDOUT_PERCENT, warm_part_of


def _pairs(records_dir, split, protocol):
    config = config_lib.DataConfig(
        records_dir=records_dir, mode="review", features=("image_index", "user_index"), global_batch_size=256,
        augment=False, protocol=protocol,
    )
    images, users = [], []
    for features, _ in build_dataset(config, False, split=split):
        images.append(features["image_index"].numpy())
        users.append(features["user_index"].numpy())
    return np.concatenate(images), np.concatenate(users)


def test_cold_protocol_holds_out_images(demo_records):
    train_images, _ = _pairs(demo_records, "train", "cold")
    for split in ("val", "test"):
        images, _ = _pairs(demo_records, split, "cold")
        assert len(images) > 0
        # No review of a held-out image appears in training.
        assert not set(images.tolist()) & set(train_images.tolist()), split


def test_warm_protocol_holds_out_reviews_of_seen_images(demo_records):
    cold_train = _pairs(demo_records, "train", "cold")
    train = _pairs(demo_records, "train", "warm")
    parts = {split: _pairs(demo_records, split, "warm") for split in ("val", "test")}
    # The three warm parts partition the training records' reviews.
    total = len(train[0]) + sum(len(p[0]) for p in parts.values())
    assert total == len(cold_train[0])
    train_pairs = set(zip(*(a.tolist() for a in train)))
    train_users_of = {}
    for image, user in train_pairs:
        train_users_of.setdefault(image, set()).add(user)
    for split, (images, users) in parts.items():
        # About WARM_HOLDOUT_PERCENT % of the training reviews, each (user, image) pair in one part only.
        assert 0.03 * total < len(images) < 0.2 * total, (split, len(images), total)
        held = set(zip(images.tolist(), users.tolist()))
        assert not held & train_pairs, split
        for image, user in held:
            # Every warm held-out image is in training with another user.
            assert train_users_of.get(image, set()) - {user}, (split, image, user)
    assert not set(zip(*(a.tolist() for a in parts["val"]))) & set(zip(*(a.tolist() for a in parts["test"])))


def test_warm_part_rule():
    # The first review stays in training; a repeat of its user is never held out.
    users = tf.constant([5, 5, 1, 2, 3, 4, 6, 7, 8, 9] * 30)
    parts = warm_part_of(tf.constant(11), users).numpy()
    assert parts[0] == 0 and parts[1] == 0
    assert set(parts.tolist()) <= {0, 1, 2}
    assert np.all(parts[users.numpy() == 5] == 0)
    assert np.array_equal(parts, warm_part_of(tf.constant(11), users).numpy())  # deterministic
    assert warm_part_of(tf.constant(3), tf.zeros([0], tf.int32)).shape == (0,)
    # Over many images the held-out share is close to the configured percentage.
    shares = [np.mean(warm_part_of(tf.constant(i), tf.range(10)).numpy() == 1) for i in range(300)]
    assert np.mean(shares) == pytest.approx(0.9 * WARM_HOLDOUT_PERCENT / 100, abs=0.03)
