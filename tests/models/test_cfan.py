"""CFAN and its CFN variants (seed 000): outputs, saving, bad input, no-review and unknown-user paths, learning."""

import keras
import numpy as np
import pytest

from tests.test_case import TestCase
from tfaesthetic.models.cfan import CFAN, VARIANTS

NUM_USERS, NUM_IMAGES, NUM_TAGS, VOCAB = 5, 6, 4, 12
TINY = dict(
    backbone="tiny", image_size=32, factor_dim=8, hidden_units=(8,), embedding_dim=6, gru_units=5, max_len=6, seed=3
)


def tiny_cfan(variant="cfan_3task", **kwargs):
    args = dict(TINY, **kwargs)
    return CFAN(NUM_USERS, NUM_IMAGES, NUM_TAGS, VOCAB, variant=variant, **args)


def tiny_inputs(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    review = rng.integers(2, VOCAB, size=(batch, 6)).astype("int32")
    review[:, 4:] = 0
    return {
        "image": rng.uniform(0, 255, size=(batch, 32, 32, 3)).astype("float32"),
        "image_index": rng.integers(0, NUM_IMAGES, size=batch).astype("int32"),
        "user_index": rng.integers(0, NUM_USERS, size=batch).astype("int32"),
        "review": review,
    }


def ops_expand(x):
    return keras.ops.expand_dims(x, -1)


def pick(model, inputs):
    return {k: inputs[k] for k in model.input_keys}


def randomize(model, seed=0):
    """Random, larger head weights so that every path visibly matters (fresh ones are ~flat).

    The backbone keeps its initialisation (large random conv weights would saturate the
    attention softmax into one-hot maps).
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            continue
        layer.set_weights([rng.normal(0, 0.5, size=w.shape).astype(w.dtype) for w in layer.get_weights()])


class CFANTest(TestCase):
    def test_variant_outputs(self):
        expected_keys = {
            "cfn_pure_2task": {"user_rating", "tag"},
            "cfn_1task": {"user_rating"},
            "cfan_1task": {"user_rating", "attention"},
            "cfan_2task": {"user_rating", "tag", "attention"},
            "cfan_3task": {"user_rating", "tag", "agnostic_rating", "attention"},
        }
        x = tiny_inputs()
        for variant in VARIANTS:
            model = tiny_cfan(variant)
            out = model(pick(model, x))
            self.assertEqual(set(out), expected_keys[variant], variant)
            self.assertEqual(tuple(out["user_rating"].shape), (4,))
            rating = np.asarray(out["user_rating"])
            self.assertTrue(np.all((rating > 0) & (rating < 1)))
            if "tag" in out:
                np.testing.assert_allclose(np.asarray(out["tag"]).sum(-1), np.ones(4), atol=1e-5)
            if "attention" in out:
                self.assertEqual(tuple(out["attention"].shape), (4, 4, 4))  # tiny backbone: 32 px -> 4x4
                np.testing.assert_allclose(np.asarray(out["attention"]).sum((1, 2)), np.ones(4), atol=1e-5)
        self.assertEqual(tiny_cfan("cfn_pure_2task").input_keys, ("image_index", "user_index"))

    def test_saving_every_variant(self):
        x = tiny_inputs()
        for variant in VARIANTS:
            model = tiny_cfan(variant)
            randomize(model)
            restored = self.run_model_saving_test(model, pick(model, x))
            self.assertIsInstance(restored, CFAN)
            self.assertEqual(restored.variant, variant)

    def test_config_round_trip(self):
        model = tiny_cfan("cfan_2task", merge="concat", kernel_size=1, scale_logits=False, backbone_weights=None)
        config = model.get_config()
        revived = CFAN.from_config(config)
        self.assertEqual(revived.get_config(), config)
        self.assertIsNone(config["backbone_weights"])
        self.assertEqual((config["kernel_size"], config["scale_logits"]), (1, False))
        for merge in ("add", "concat"):
            out = tiny_cfan("cfan_1task", merge=merge)(pick(tiny_cfan("cfan_1task"), tiny_inputs()))
            self.assertEqual(tuple(out["user_rating"].shape), (4,))

    def test_eq5_attention_arguments_reach_the_layer(self):
        """Paper-faithful Eq. 5 (unscaled logits, any kernel size) is reachable from CFAN."""
        model = tiny_cfan("cfan_1task", kernel_size=1, scale_logits=False)
        layer = model.get_layer("attention")
        self.assertEqual((layer.kernel_size, layer.scale_logits), (1, False))
        randomize(model)
        x = tiny_inputs()
        out = model(x)
        # Eq. 5 by hand: K = sigmoid(W_k h + b_k) [1,1,D]; a = softmax_hw(sum_d K_d f_v,hwd).
        encoding = np.asarray(model.get_layer("review_encoder")(x["review"]))
        (backbone,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        feature_map = np.asarray(backbone(x["image"]))
        w, b = [np.asarray(v) for v in layer.get_weights()]
        kernel = 1 / (1 + np.exp(-(encoding @ w + b)))
        logits = np.einsum("bhwd,bd->bhw", feature_map, kernel)
        flat = logits.reshape(4, -1)
        flat = np.exp(flat - flat.max(-1, keepdims=True))
        expected = (flat / flat.sum(-1, keepdims=True)).reshape(logits.shape)
        np.testing.assert_allclose(np.asarray(out["attention"]), expected, atol=1e-5)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="variant='cfan_4task'"):
            tiny_cfan("cfan_4task")
        with pytest.raises(ValueError, match="merge='max'"):
            tiny_cfan(merge="max")
        with pytest.raises(ValueError, match="num_users=0"):
            CFAN(0, NUM_IMAGES, NUM_TAGS, VOCAB, **TINY)

    def test_out_of_vocabulary_indices_use_oov_row(self):
        model = tiny_cfan("cfan_2task")
        randomize(model)
        x = tiny_inputs()
        oov = dict(x, image_index=np.full(4, NUM_IMAGES, "int32"), user_index=np.full(4, NUM_USERS, "int32"))
        ref = model(oov)
        for bad_image, bad_user in ((999, -7), (-1, 10**6)):
            bad = dict(x, image_index=np.full(4, bad_image, "int32"), user_index=np.full(4, bad_user, "int32"))
            self.assertAllCloseNested(model(bad), ref)
        # And the OOV row differs from a known row.
        self.assertNotAllClose(np.asarray(model(x)["user_rating"]), np.asarray(ref["user_rating"]))

    def test_empty_and_long_reviews(self):
        model = tiny_cfan("cfan_3task", max_len=4)
        randomize(model)
        x = tiny_inputs()
        empty = dict(x, review=np.zeros((4, 6), "int32"))
        out = model(empty)
        for value in out.values():
            self.assertTrue(np.all(np.isfinite(np.asarray(value))))
        # An all-padding review is the no-review path, whatever its length.
        self.assertAllCloseNested(out, model.predict_without_review(x))
        self.assertAllCloseNested(model(dict(x, review=np.zeros((4, 1), "int32"))), out)
        # Tokens beyond max_len are ignored.
        long = dict(x, review=np.concatenate([x["review"][:, :4], np.full((4, 50), 7, "int32")], axis=1))
        self.assertAllCloseNested(model(long), model(dict(x, review=x["review"][:, :4])))

    def test_no_review_path_uses_each_users_taste_profile(self):
        model = tiny_cfan("cfan_1task")
        randomize(model)
        x = tiny_inputs()
        same_image = dict(x, image=np.repeat(x["image"][:1], 4, 0), image_index=np.zeros(4, "int32"))
        same_image["user_index"] = np.arange(4, dtype="int32")
        no_review = model.predict_without_review(same_image)
        with_review = model(same_image)
        # The learned per-user kernels give per-user attention maps on the same image ...
        maps = np.asarray(no_review["attention"])
        self.assertGreater(np.abs(maps[0] - maps[1]).max(), 1e-4)
        # ... which differ from the review-derived ones, and valid probabilities.
        self.assertGreater(np.abs(maps - np.asarray(with_review["attention"])).max(), 1e-4)
        rating = np.asarray(no_review["user_rating"])
        self.assertTrue(np.all((rating > 0) & (rating < 1)))

    def test_profile_matching_loss_by_hand(self):
        """The auxiliary loss is mean over reviewed examples of mean_e (p_u - h_uv)^2."""
        model = tiny_cfan("cfan_1task", profile_weight=2.0)
        randomize(model)
        x = tiny_inputs()
        x["review"][0] = 0  # one example without a review: excluded from the mean
        model(x, training=False)
        self.assertEqual(model.losses, [])  # training only: not in the validation loss
        model(x, training=True)
        (value,) = model.losses
        encoding = np.asarray(model.get_layer("review_encoder")(x["review"]))
        profiles = np.asarray(model.get_layer("taste_profile").profiles)
        rows = np.minimum(x["user_index"], NUM_USERS)
        gaps = ((profiles[rows] - encoding) ** 2).mean(-1)
        self.assertAllClose(float(value), 2.0 * gaps[1:].mean(), atol=1e-5)

    def test_unknown_user_falls_back_to_agnostic_rating(self):
        model = tiny_cfan("cfan_3task")
        randomize(model)
        x = tiny_inputs()
        x["user_index"] = np.array([0, CFAN.UNKNOWN_USER, 1, 999], "int32")
        for out in (model(x), model.predict_without_review(x)):
            rating, agnostic = np.asarray(out["user_rating"]), np.asarray(out["agnostic_rating"])
            np.testing.assert_allclose(rating[[1, 3]], agnostic[[1, 3]], atol=1e-6)
            self.assertGreater(np.abs(rating[[0, 2]] - agnostic[[0, 2]]).max(), 1e-4)
            self.assertTrue(np.all((rating > 0) & (rating < 1)))

    def test_agnostic_residual_by_hand(self):
        """agnostic_residual: y_hat_uv = sigmoid(logit beta_hat_v + g(gamma_u * q_iv)), NumPy reference."""
        import tensorflow as tf

        model = tiny_cfan("cfan_3task", agnostic_residual=True, index_dropout=0.0, review_dropout=0.0)
        plain = tiny_cfan("cfan_3task", index_dropout=0.0, review_dropout=0.0)
        randomize(model)
        for layer in model.layers:  # same weights, residual off (by layer: graph orders differ)
            if layer.weights:
                plain.get_layer(layer.name).set_weights(layer.get_weights())
        x = tiny_inputs()
        for call in (lambda m: m(x), lambda m: m.predict_without_review(x)):
            out, base = call(model), call(plain)
            agnostic = np.asarray(out["agnostic_rating"], "float64")
            np.testing.assert_allclose(agnostic, np.asarray(base["agnostic_rating"]), atol=1e-6)
            # plain: y = sigmoid(g); residual: sigmoid(g + logit(beta)).
            g = np.log(np.asarray(base["user_rating"], "float64")) - np.log1p(-np.asarray(base["user_rating"], "float64"))
            expected = 1.0 / (1.0 + np.exp(-(g + np.log(agnostic) - np.log1p(-agnostic))))
            np.testing.assert_allclose(np.asarray(out["user_rating"]), expected, atol=1e-5)
        # Unknown users still get beta_hat_v; the user loss does not train beta_hat_v's head.
        unknown = model(dict(x, user_index=np.full(4, CFAN.UNKNOWN_USER, "int32")))
        np.testing.assert_allclose(unknown["user_rating"], unknown["agnostic_rating"], atol=1e-6)
        head = model.get_layer("agnostic_rating_head").trainable_weights
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = keras.losses.binary_crossentropy(np.ones((4, 1), "float32"), ops_expand(out["user_rating"]))
        self.assertTrue(all(g is None for g in tape.gradient(loss, head)))
        self.assertTrue(CFAN.from_config(model.get_config()).agnostic_residual)
        restored = self.run_model_saving_test(model, x)
        self.assertTrue(restored.agnostic_residual)

    def test_visual_taste_by_hand(self):
        """visual_taste: the user logit gains theta_u . (E mean_hw f_v) (VBPR's term), NumPy reference."""
        import tensorflow as tf

        model = tiny_cfan("cfan_3task", visual_taste=3, agnostic_residual=True, index_dropout=0.0, review_dropout=0.0)
        plain = tiny_cfan("cfan_3task", agnostic_residual=True, index_dropout=0.0, review_dropout=0.0)
        randomize(model)
        for layer in plain.layers:  # the shared layers get the same weights
            if layer.weights:
                plain.get_layer(layer.name).set_weights(model.get_layer(layer.name).get_weights())
        x = tiny_inputs()
        pooled = np.asarray(model.get_layer("tiny")(x["image"]), "float64").mean(axis=(1, 2))
        theta = model.get_layer("user_visual_taste").get_weights()[0][x["user_index"]]
        projection = model.get_layer("taste_projection").get_weights()[0]
        self.assertEqual(theta.shape, (4, 3))
        self.assertEqual(projection.shape, (pooled.shape[1], 3))
        term = np.sum(theta * (pooled @ projection), axis=-1)
        self.assertGreater(np.abs(term).max(), 1e-3)  # the term is visible at these weights
        logit = lambda p: np.log(p) - np.log1p(-p)
        for call in (lambda m: m(x), lambda m: m.predict_without_review(x)):
            out, base = call(model), call(plain)
            expected = logit(np.asarray(base["user_rating"], "float64")) + term
            np.testing.assert_allclose(logit(np.asarray(out["user_rating"], "float64")), expected, atol=1e-4)
            np.testing.assert_allclose(out["agnostic_rating"], base["agnostic_rating"], atol=1e-6)
        # Unknown users still get beta_hat_v at inference.
        unknown = model(dict(x, user_index=np.full(4, CFAN.UNKNOWN_USER, "int32")))
        np.testing.assert_allclose(unknown["user_rating"], unknown["agnostic_rating"], atol=1e-6)
        # Both new weights train through the user loss.
        weights = model.get_layer("user_visual_taste").trainable_weights + model.get_layer("taste_projection").trainable_weights
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = keras.losses.binary_crossentropy(np.ones((4, 1), "float32"), ops_expand(out["user_rating"]))
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, weights)]  # the embedding's are IndexedSlices
        self.assertTrue(all(np.abs(g).sum() > 0 for g in grads))
        self.assertEqual(CFAN.from_config(model.get_config()).visual_taste, 3)
        restored = self.run_model_saving_test(model, x)
        self.assertEqual(restored.visual_taste, 3)
        # Variants without images have no f_v: the option is ignored there, as documented.
        self.assertEqual(tiny_cfan("cfn_pure_2task", visual_taste=3).visual_taste, 0)
        with self.assertRaisesRegex(ValueError, "visual_taste"):
            tiny_cfan("cfan_3task", visual_taste=-1)

    def _with_same_weights(self, model, **plain_kwargs):
        plain = tiny_cfan("cfan_3task", **plain_kwargs)
        for layer in plain.layers:  # the shared layers get the same weights
            if layer.weights:
                plain.get_layer(layer.name).set_weights(model.get_layer(layer.name).get_weights())
        return plain

    def test_agnostic_image_bias_by_hand(self):
        """agnostic_image_bias: logit beta_hat_v gains the image's own offset b_v, NumPy reference."""
        import tensorflow as tf

        common = dict(agnostic_residual=True, index_dropout=0.0, review_dropout=0.0)
        model = tiny_cfan("cfan_3task", agnostic_image_bias=True, **common)
        randomize(model)
        plain = self._with_same_weights(model, **common)
        table = model.get_layer("agnostic_image_bias").get_weights()[0]
        self.assertEqual(table.shape, (NUM_IMAGES + 1, 1))  # one row per training image + the OOV row
        x = tiny_inputs()
        x["image_index"] = np.array([0, 1, NUM_IMAGES - 1, NUM_IMAGES + 7], "int32")  # the last is out of range
        rows = np.minimum(x["image_index"], NUM_IMAGES)  # out-of-range images use the OOV row
        term = table[rows, 0].astype("float64")
        logit = lambda p: np.log(p) - np.log1p(-p)
        for call in (lambda m: m(x), lambda m: m.predict_without_review(x)):
            out, base = call(model), call(plain)
            for key in ("agnostic_rating", "user_rating"):  # the residual carries b_v into y_hat_uv too
                expected = logit(np.asarray(base[key], "float64")) + term
                np.testing.assert_allclose(logit(np.asarray(out[key], "float64")), expected, atol=1e-4)
        fresh = tiny_cfan("cfan_3task", agnostic_image_bias=True)
        np.testing.assert_array_equal(fresh.get_layer("agnostic_image_bias").get_weights()[0], 0.0)
        # b_v trains through the user-agnostic loss only (the residual is stop-gradient),
        # and only the rows of the batch's images.
        weight = model.get_layer("agnostic_image_bias").trainable_weights[0]
        with tf.GradientTape(persistent=True) as tape:
            out = model(x, training=True)
            agnostic_loss = keras.losses.binary_crossentropy(np.ones((4, 1), "float32"), ops_expand(out["agnostic_rating"]))
            user_loss = keras.losses.binary_crossentropy(np.ones((4, 1), "float32"), ops_expand(out["user_rating"]))
        grad = np.asarray(tf.convert_to_tensor(tape.gradient(agnostic_loss, weight)))
        self.assertEqual(set(np.flatnonzero(np.abs(grad[:, 0]) > 0)), set(rows.tolist()))
        self.assertIsNone(tape.gradient(user_loss, weight))
        self.assertTrue(CFAN.from_config(model.get_config()).agnostic_image_bias)
        self.assertTrue(self.run_model_saving_test(model, x).agnostic_image_bias)

    def test_residual_scale_by_hand(self):
        """residual_scale: y_hat_uv = sigmoid(a * stop_gradient(logit beta_hat_v) + g), a learned, NumPy reference."""
        import tensorflow as tf

        common = dict(agnostic_residual=True, index_dropout=0.0, review_dropout=0.0)
        model = tiny_cfan("cfan_3task", residual_scale=True, **common)
        randomize(model)
        self.assertEqual(model.get_layer("residual_scale").get_weights()[0].shape, (1, 1))
        a = 0.3
        model.get_layer("residual_scale").set_weights([np.array([[a]], "float32")])
        plain = self._with_same_weights(model, **common)
        x = tiny_inputs()
        logit = lambda p: np.log(p) - np.log1p(-p)
        out, base = model(x), plain(x)
        agnostic = logit(np.asarray(base["agnostic_rating"], "float64"))
        deviation = logit(np.asarray(base["user_rating"], "float64")) - agnostic  # g, the user path alone
        np.testing.assert_allclose(logit(np.asarray(out["user_rating"], "float64")), a * agnostic + deviation, atol=1e-4)
        np.testing.assert_allclose(out["agnostic_rating"], base["agnostic_rating"], atol=1e-6)
        # Starts at a = 1 (the plain residual); a trains through the user loss.
        fresh = tiny_cfan("cfan_3task", residual_scale=True, agnostic_residual=True)
        np.testing.assert_array_equal(fresh.get_layer("residual_scale").get_weights()[0], [[1.0]])
        weight = model.get_layer("residual_scale").trainable_weights[0]
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = keras.losses.binary_crossentropy(np.ones((4, 1), "float32"), ops_expand(out["user_rating"]))
        self.assertGreater(float(np.abs(np.asarray(tape.gradient(loss, weight))).sum()), 0.0)
        self.assertTrue(self.run_model_saving_test(model, x).residual_scale)
        # Without the residual there is nothing to scale: no weight.
        self.assertNotIn("residual_scale", [layer.name for layer in tiny_cfan("cfan_3task", residual_scale=True).layers])

    def test_user_index_dropout_is_separate_from_the_image_rate(self):
        """user_index_dropout sets the user OOV rate alone; None keeps index_dropout for both."""
        model = tiny_cfan("cfan_3task", index_dropout=0.8, user_index_dropout=0.0)
        self.assertEqual(model.get_layer("image_oov").rate, 0.8)
        self.assertEqual(model.get_layer("user_oov").rate, 0.0)
        x = tiny_inputs()
        user_rows = model.get_layer("user_oov")(x["user_index"], training=True)
        np.testing.assert_array_equal(user_rows, x["user_index"])  # rate 0: never the OOV row
        self.assertEqual(CFAN.from_config(model.get_config()).get_layer("user_oov").rate, 0.0)
        default = tiny_cfan("cfan_3task", index_dropout=0.3)
        self.assertEqual(default.get_layer("user_oov").rate, 0.3)
        self.assertIsNone(default.get_config()["user_index_dropout"])

    def test_anonymous_reviews_train_the_user_head_not_the_agnostic_one(self):
        """In training an OOV user keeps its own y_hat_uv: s_uv must not train beta_hat_v."""
        model = tiny_cfan("cfan_3task", index_dropout=0.0, review_dropout=0.0)
        randomize(model)
        x = tiny_inputs()
        # The parser maps anonymous reviews (user -1) to the OOV row, num_users.
        x["user_index"] = np.full(4, NUM_USERS, "int32")
        trained = model(x, training=True)
        served = model(x, training=False)
        oov_row = model(dict(x, user_index=np.full(4, NUM_USERS, "int32")), training=False)
        self.assertGreater(np.abs(np.asarray(trained["user_rating"]) - np.asarray(trained["agnostic_rating"])).max(), 1e-4)
        np.testing.assert_allclose(served["user_rating"], served["agnostic_rating"], atol=1e-6)
        np.testing.assert_allclose(oov_row["user_rating"], served["user_rating"], atol=1e-6)
        # Gradients: the user loss of anonymous reviews reaches the user-specific head
        # only; beta_hat_v's head gets nothing from it.
        import tensorflow as tf

        head = model.get_layer("agnostic_rating_head").trainable_weights + model.get_layer("user_rating_head").trainable_weights
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = keras.losses.binary_crossentropy(np.ones((4, 1), "float32"), ops_expand(out["user_rating"]))
        grads = tape.gradient(loss, head)
        agnostic_grads, user_grads = grads[:2], grads[2:]
        self.assertTrue(all(g is None or float(np.abs(np.asarray(g)).max()) == 0.0 for g in agnostic_grads))
        self.assertGreater(max(float(np.abs(np.asarray(g)).max()) for g in user_grads), 0.0)

    def test_compile_helpers_and_fit_step(self):
        model = tiny_cfan("cfan_3task")
        self.assertEqual(
            model.default_loss_weights(), {"user_rating": 1.0, "tag": 0.015, "agnostic_rating": 1.0}
        )
        model.compile(
            optimizer="adam",
            run_eagerly=True,  # three tiny steps: cheaper than tracing on a busy CPU
            loss=model.default_losses(),
            loss_weights=model.default_loss_weights(),
            metrics=model.default_metrics(),
        )
        x = tiny_inputs(batch=8)
        labels = {
            "user_rating": np.array([1, 0, 1, 1, 0, 0, 1, 0], "float32"),
            "tag": np.array([0, 1, -1, 3, 2, 0, 1, 1], "int32"),
            "agnostic_rating": np.array([1, 0, 1, 0, 1, 0, 1, 0], "float32"),
        }
        features, targets = model.prepare_batch(dict(x, extra=np.zeros(8)), labels)
        self.assertEqual(set(features), set(model.input_keys))
        self.assertEqual(set(targets), set(model.output_keys))
        history = model.fit(features, targets, batch_size=8, epochs=3, verbose=0)
        losses = history.history["loss"]
        self.assertTrue(np.all(np.isfinite(losses)))
        self.assertLess(losses[-1], losses[0])

    def test_agnostic_target_share_trains_on_the_vote_share(self):
        """agnostic_target="share": beta_hat_v's target is the parser's soft label; Eq. 6 BCE on it, by hand."""
        labels = {
            "user_rating": np.array([1, 0, 1, 0], "float32"),
            "tag": np.array([0, 1, 2, 3], "int32"),
            "agnostic_rating": np.array([1, 0, -1, 1], "float32"),
            "agnostic_share": np.array([0.8, 0.3, -1.0, 0.55], "float32"),
        }
        x = tiny_inputs()
        paper = tiny_cfan("cfan_3task")
        np.testing.assert_array_equal(paper.prepare_batch(x, labels)[1]["agnostic_rating"], labels["agnostic_rating"])
        model = tiny_cfan("cfan_3task", agnostic_target="share")
        _, targets = model.prepare_batch(x, labels)
        np.testing.assert_array_equal(targets["agnostic_rating"], labels["agnostic_share"])
        np.testing.assert_array_equal(targets["user_rating"], labels["user_rating"])
        # The loss on the soft target is -(y log p + (1 - y) log(1 - p)), 0 without votes.
        p = np.asarray(model(x)["agnostic_rating"], "float64")
        y = labels["agnostic_share"].astype("float64")
        expected = np.where(y < 0, 0.0, -(y * np.log(p) + (1 - y) * np.log1p(-p)))
        loss = model.default_losses()["agnostic_rating"]
        self.assertAlmostEqual(float(loss(targets["agnostic_rating"], p)), expected.mean(), places=5)
        self.assertEqual(CFAN.from_config(model.get_config()).agnostic_target, "share")
        with self.assertRaisesRegex(ValueError, "agnostic_target"):
            tiny_cfan("cfan_3task", agnostic_target="mean")


# Learning is tested through the product's entry point (trainer.train_and_evaluate with
# the shipped demo_cfan preset): tests/test_cfan_learning.py.
