"""BPR and VBPR baselines (seed 000 §4.2): scores, pair logits, saving, fit."""

import keras
import numpy as np

from tests.test_case import TestCase
from tfaesthetic.losses.bpr import bpr_loss
from tfaesthetic.models.bpr import BPR, VBPR, InBatchNegatives

NUM_USERS, NUM_IMAGES = 5, 6


def inputs(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.uniform(0, 255, size=(batch, 32, 32, 3)).astype("float32"),
        "image_index": rng.integers(0, NUM_IMAGES, size=batch).astype("int32"),
        "user_index": rng.integers(0, NUM_USERS, size=batch).astype("int32"),
    }


def tiny_vbpr(**kwargs):
    return VBPR(NUM_USERS, NUM_IMAGES, factor_dim=4, visual_dim=3, backbone="tiny", image_size=32, seed=1, **kwargs)


class BPRTest(TestCase):
    def test_bpr_score_and_pair_logit_by_hand(self):
        model = BPR(NUM_USERS, NUM_IMAGES, factor_dim=4, seed=1)
        x = {k: v for k, v in inputs().items() if k != "image"}
        out = model(x)
        users = np.asarray(model.get_layer("user_factors").embeddings)
        items = np.asarray(model.get_layer("image_factors").embeddings)
        item_bias = np.asarray(model.get_layer("image_bias").embeddings)[:, 0]
        u, v = x["user_index"], x["image_index"]
        score = item_bias[v] + (users[u] * items[v]).sum(-1)
        np.testing.assert_allclose(np.asarray(out["user_rating"]), 1 / (1 + np.exp(-score)), rtol=1e-5)
        # Inference pairs example i with the image of example i + 1 (mod B), same user u_i.
        j = np.roll(v, -1)
        other = item_bias[j] + (users[u] * items[j]).sum(-1)
        np.testing.assert_allclose(np.asarray(out["pair_logit"]), score - other, rtol=1e-5, atol=1e-6)

    def test_in_batch_negatives_is_a_permutation(self):
        layer = InBatchNegatives(seed=0)
        values = np.arange(10, dtype="float32")
        (shuffled,) = layer([values], training=True)
        self.assertEqual(sorted(np.asarray(shuffled).tolist()), values.tolist())
        (shifted,) = layer([values], training=False)
        np.testing.assert_array_equal(np.asarray(shifted), np.roll(values, -1))

    def test_unseen_images_bpr_constant_vbpr_visual(self):
        """Unseen images share the OOV row: BPR cannot rank them, VBPR ranks them by pixels."""
        x = inputs()
        x["image_index"] = np.full(4, 100, "int32")  # not a training image
        x["user_index"] = np.zeros(4, "int32")
        bpr = BPR(NUM_USERS, NUM_IMAGES, factor_dim=4, seed=1)
        scores = np.asarray(bpr({k: x[k] for k in bpr.input_keys})["user_rating"])
        self.assertAllClose(scores, np.full(4, scores[0]))
        vbpr = tiny_vbpr()
        scores = np.asarray(vbpr(x)["user_rating"])
        self.assertGreater(scores.max() - scores.min(), 1e-6)

    def test_saving(self):
        x = inputs()
        for model in (BPR(NUM_USERS, NUM_IMAGES, factor_dim=4, seed=1), tiny_vbpr()):
            restored = self.run_model_saving_test(model, {k: x[k] for k in model.input_keys})
            self.assertIs(type(restored), type(model))
            self.assertEqual(restored.get_config(), model.get_config())

    def test_fit_lowers_bpr_loss(self):
        model = tiny_vbpr(index_dropout=0.0)
        model.compile(
            optimizer=keras.optimizers.Adam(0.05),
            loss=model.default_losses(),
            metrics=model.default_metrics(),
            run_eagerly=True,
        )
        x = inputs(batch=8)
        labels = {"user_rating": np.array([1, 0, 1, 1, 0, 0, 1, 0], "float32"), "tag": np.zeros(8)}
        features, targets = model.prepare_batch(x, labels)
        self.assertEqual(set(targets), {"pair_logit", "user_rating"})
        before = float(np.mean(bpr_loss(labels["user_rating"], model(features)["pair_logit"])))
        history = model.fit(features, targets, batch_size=8, epochs=5, verbose=0)
        self.assertTrue(np.all(np.isfinite(history.history["loss"])))
        after = float(np.mean(bpr_loss(labels["user_rating"], model(features)["pair_logit"])))
        self.assertLess(after, before)
