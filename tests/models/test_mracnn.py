"""MRACNN (seed 003 §III): every variant of Tables I–III builds, saves and loads; it learns."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import TestCase
from tfaesthetic.losses import EMD
from tfaesthetic.models import MRACNN, initialize_embeddings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Tiny sizes: the `tiny` backbone at 32 px gives a 4×4×32 feature map.
TINY = dict(
    vocab_size=40,
    backbone="tiny",
    image_size=32,
    max_len=12,
    lstm_units=6,
    attention_units=5,
    embedding_dim=6,
    num_filters=3,
    mfb_k=2,
    mfb_o=7,
)


def tiny_inputs(model=None, batch=3, seed=0):
    """Random inputs; only the keys `model` reads (all keys without a model)."""
    rng = np.random.default_rng(seed)
    data = {
        "image": rng.uniform(0, 255, size=(batch, 32, 32, 3)).astype("float32"),
        "tokens": np.where(rng.uniform(size=(batch, 12)) < 0.7, rng.integers(2, 40, size=(batch, 12)), 0).astype("int32"),
    }
    return data if model is None else {key: data[key] for key in model.input_keys}


VARIANT_CASES = {
    # Table III: the four fusions of the full model ...
    "mfb": dict(fusion="mfb"),
    "concat": dict(fusion="concat"),
    "sum": dict(fusion="sum", fusion_units=4),
    "product": dict(fusion="product", fusion_units=4),
    # ... and the single-stream / attention-free rows.
    "text_only": dict(variant="text_only"),
    "vision_only": dict(variant="vision_only"),
    "no_attention": dict(variant="no_attention"),
    "no_attention_concat": dict(variant="no_attention", fusion="concat"),
    "backbone_only": dict(variant="backbone_only"),
    # Table I: recurrences T and LSTM layers (T=3 / 1 layer is the default above).
    "T1": dict(recurrences=1),
    "T5": dict(recurrences=5),
    "layers2": dict(lstm_layers=2),
    "layers3": dict(lstm_layers=3),
}


class MRACNNTest(TestCase):
    def test_variants_save_and_load(self):
        for case, kwargs in VARIANT_CASES.items():
            with self.subTest(case):
                model = MRACNN(**TINY, **kwargs)
                inputs = tiny_inputs(model)
                outputs = model(inputs, training=False)
                self.assertEqual(tuple(outputs["distribution"].shape), (3, 10))
                self.assertAllClose(np.sum(outputs["distribution"], -1), np.ones(3), atol=1e-5)
                variant = kwargs.get("variant", "full")
                expected_keys = {"image": variant != "text_only", "tokens": variant in ("full", "text_only", "no_attention")}
                self.assertEqual(set(model.input_keys), {k for k, used in expected_keys.items() if used})
                if variant in ("full", "vision_only"):
                    t = kwargs.get("recurrences", 3)
                    self.assertEqual(tuple(outputs["attention"].shape), (3, t, 4, 4))
                    self.assertAllClose(np.sum(outputs["attention"], (-1, -2)), np.ones((3, t)), atol=1e-5)
                else:
                    self.assertNotIn("attention", outputs)
                # The pipeline may yield both keys: each variant picks its own by name.
                both = model(tiny_inputs(), training=False)
                self.assertAllClose(both["distribution"], outputs["distribution"], atol=1e-6)
                restored = self.run_model_saving_test(model, inputs)
                self.assertIsInstance(restored, MRACNN)
                self.assertEqual(restored.get_config(), model.get_config())

    def test_paper_defaults(self):
        model = MRACNN(vocab_size=50, backbone="tiny")
        config = model.get_config()
        self.assertEqual(
            {k: config[k] for k in ("recurrences", "lstm_layers", "num_filters", "text_dropout", "max_len", "num_bins")},
            {"recurrences": 3, "lstm_layers": 1, "num_filters": 100, "text_dropout": 0.3, "max_len": 200, "num_bins": 10},
        )
        self.assertEqual(config["kernel_sizes"], [3, 4, 5])
        self.assertEqual(model.input["image"].shape, (None, 48, 48, 3))  # the backbone's size
        self.assertEqual(model.get_layer("text_cnn").kernel_sizes, (3, 4, 5))
        self.assertEqual(model.get_layer("mfb_pooling").output_dim, 1000)

    def test_serialization(self):
        model = MRACNN(**TINY, fusion="sum", num_bins=7)
        revived = self.run_serialization_test(model)
        self.assertEqual(revived.num_bins, 7)
        self.assertEqual(revived.fusion, "sum")

    def test_invalid_arguments(self):
        with pytest.raises(ValueError, match="Received: variant='both'"):
            MRACNN(**TINY, variant="both")
        with pytest.raises(ValueError, match="Received: fusion='max'"):
            MRACNN(**TINY, fusion="max")
        with pytest.raises(ValueError, match="Received: recurrences=0"):
            MRACNN(**{**TINY, "recurrences": 0})
        with pytest.raises(ValueError, match="Received: name='resnet'"):
            MRACNN(**{**TINY, "backbone": "resnet"})

    def test_initialize_embeddings_freezes_and_survives_saving(self):
        model = MRACNN(**TINY)
        matrix = np.random.default_rng(1).normal(size=(40, 6)).astype("float32")
        trainable_before = len(model.trainable_weights)
        initialize_embeddings(model, matrix)
        self.assertEqual(len(model.trainable_weights), trainable_before - 1)
        self.assertFalse(model.get_config()["trainable_embeddings"])
        self.assertAllClose(model.get_layer("text_cnn").embedding.embeddings, matrix)
        restored = self.run_model_saving_test(model, tiny_inputs(model))
        self.assertAllClose(restored.get_layer("text_cnn").embedding.embeddings, matrix)
        self.assertEqual(len(restored.trainable_weights), len(model.trainable_weights))
        with pytest.raises(ValueError, match="Received: variant='backbone_only'"):
            MRACNN(**TINY, variant="backbone_only").initialize_embeddings(matrix)

    def test_empty_comment_prediction_depends_on_the_image(self):
        """Multiplicative fusion of an image with the learned "no comment" vector is not zero.

        With `empty_text="zeros"` (the bare Text-CNN) MFB / product fusion of any image with an
        all-padding comment is 0, so every such image gets the head's prior and the backbone gets
        no gradient from it; the learned vector keeps both.
        """
        rng = np.random.default_rng(5)
        images = rng.uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
        inputs = {"image": images, "tokens": np.zeros((2, 12), "int32")}
        for fusion, extra in (("mfb", {}), ("product", {"fusion_units": 4})):
            for empty_text in ("learned", "zeros"):
                with self.subTest(fusion=fusion, empty_text=empty_text):
                    keras.utils.set_random_seed(3)
                    model = MRACNN(**TINY, fusion=fusion, empty_text=empty_text, **extra)
                    if fusion == "product":  # a non-zero text-projection bias would hide the effect
                        self.assertAllClose(model.get_layer("text_projection").bias, np.zeros(4))
                    with tf.GradientTape() as tape:
                        dist = model(inputs, training=False)["distribution"]
                        loss = tf.reduce_sum(dist * tf.range(10, dtype="float32"))
                    grads = tape.gradient(loss, model.backbone_model.trainable_weights)
                    gap = float(np.abs(np.asarray(dist[0]) - np.asarray(dist[1])).max())
                    grad_norm = sum(float(np.abs(np.asarray(g)).sum()) for g in grads if g is not None)
                    if empty_text == "learned":
                        self.assertGreater(gap, 1e-6)
                        self.assertGreater(grad_norm, 0.0)
                    else:
                        self.assertLess(gap, 1e-7)
                        self.assertEqual(grad_norm, 0.0)

    def test_learned_empty_vector_survives_saving(self):
        model = MRACNN(**TINY)
        vector = np.linspace(-0.5, 0.5, 9).astype("float32")
        model.get_layer("text_cnn").empty_embedding.assign(vector)
        inputs = tiny_inputs(model)
        inputs["tokens"][1] = 0
        restored = self.run_model_saving_test(model, inputs)
        self.assertAllClose(restored.get_layer("text_cnn").empty_embedding, vector)
        self.assertEqual(restored.get_config()["empty_text"], "learned")

    def test_comment_dropout_replaces_text_in_training_only(self):
        quiet = dict(text_dropout=0.0, mfb_dropout=0.0, head_dropout=0.0)
        model = MRACNN(**TINY, **quiet, comment_dropout=0.5)
        self.assertEqual(self.run_serialization_test(model).comment_dropout, 0.5)
        inputs = tiny_inputs(model, batch=64, seed=4)
        inputs["tokens"][:, 0] = 7  # every example has a comment
        without = {"image": inputs["image"], "tokens": np.zeros_like(inputs["tokens"])}
        with_text = np.asarray(model(inputs, training=False)["distribution"])
        no_text = np.asarray(model(without, training=False)["distribution"])
        trained = np.asarray(model(inputs, training=True)["distribution"])
        as_empty = np.all(np.abs(trained - no_text) < 1e-6, axis=-1)
        as_given = np.all(np.abs(trained - with_text) < 1e-6, axis=-1)
        self.assertTrue(np.all(as_empty | as_given))
        self.assertTrue(8 <= as_empty.sum() <= 56, as_empty.sum())  # Binomial(64, 0.5)
        self.assertFalse(np.any(np.all(np.abs(with_text - no_text) < 1e-6, axis=-1)))
        with pytest.raises(ValueError, match="Received: comment_dropout=1.0"):
            MRACNN(**TINY, comment_dropout=1.0)
        with pytest.raises(ValueError, match="Received: empty_text='prior'"):
            MRACNN(**TINY, variant="backbone_only", empty_text="prior")

    def test_empty_comment_is_finite_under_mixed_precision(self):
        previous = keras.config.dtype_policy()
        keras.mixed_precision.set_dtype_policy("mixed_float16")
        try:
            for empty_text in ("learned", "zeros"):
                model = MRACNN(**TINY, empty_text=empty_text)
                inputs = tiny_inputs(model)
                inputs["tokens"][0] = 0  # an image without comments
                out = model(inputs, training=False)
                self.assertEqual(model.get_layer("mfb_pooling").compute_dtype, "float16")
                self.assertTrue(np.all(np.isfinite(np.asarray(out["distribution"]))), empty_text)
                self.assertTrue(np.all(np.isfinite(np.asarray(out["attention"]))), empty_text)
        finally:
            keras.mixed_precision.set_dtype_policy(previous)
        self.assertEqual(keras.config.dtype_policy().name, previous.name)

    def test_frozen_backbone(self):
        model = MRACNN(**TINY, trainable_backbone=False)
        self.assertFalse(model.backbone_model.trainable)
        self.assertTrue(all(not w.trainable for w in model.backbone_model.weights))

    def test_compile_defaults_and_fit_without_attention_targets(self):
        model = MRACNN(**TINY)
        model.compile(jit_compile=False)  # XLA compilation costs ~15 s on 2 busy cores
        self.assertIsInstance(model.optimizer, keras.optimizers.Adam)
        self.assertAllClose([model.optimizer.beta_1, model.optimizer.beta_2], [0.9, 0.99])
        inputs = tiny_inputs(model, batch=8)
        labels = {"distribution": np.random.default_rng(2).dirichlet(np.ones(10), size=8).astype("float32")}
        history = model.fit(inputs, labels, batch_size=4, epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        logs = model.evaluate(inputs, labels, batch_size=8, verbose=0, return_dict=True)
        for name in ("accuracy", "srcc", "plcc", "mae", "rmse", "emd"):
            self.assertIn(f"distribution_{name}", logs)
        # The compiled loss is the EMD (r = 2) of the predictions.
        predicted = model.predict(inputs, verbose=0)["distribution"]
        self.assertAllClose(logs["loss"], float(EMD(r=2)(labels["distribution"], predicted)), atol=1e-5)

    def test_saved_model_reloads_compiled(self):
        """The custom `compile` round-trips: a loaded model evaluates and keeps training."""
        import warnings

        model = MRACNN(**TINY)
        model.compile(learning_rate=3e-3)
        inputs = tiny_inputs(model, batch=4)
        labels = {"distribution": np.random.default_rng(3).dirichlet(np.ones(10), size=4).astype("float32")}
        model.fit(inputs, labels, batch_size=4, epochs=1, verbose=0)
        path = os.path.join(self.get_temp_dir(), "compiled.keras")
        model.save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            restored = keras.saving.load_model(path)
        self.assertTrue(restored.compiled)
        self.assertIsInstance(restored.loss["distribution"], EMD)
        self.assertAllClose(float(restored.optimizer.learning_rate), 3e-3)
        want = model.evaluate(inputs, labels, verbose=0, return_dict=True)
        got = restored.evaluate(inputs, labels, verbose=0, return_dict=True)
        self.assertAllClose(got["loss"], want["loss"], atol=1e-5)


DISTRIBUTED_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfaesthetic.models import MRACNN
    kwargs = json.loads(%r)
    rng = np.random.default_rng(0)
    x = {"image": rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32"),
         "tokens": rng.integers(0, 40, (16, 12)).astype("int32")}
    y = {"distribution": rng.dirichlet(np.ones(10), 16).astype("float32")}
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = MRACNN(**kwargs)
        model.compile(jit_compile=False)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # XLA-compiled forward pass agrees with the eager one.
    eager = model(x, training=False)
    jitted = tf.function(lambda inputs: model(inputs, training=False), jit_compile=True)(x)
    diff = max(float(np.max(np.abs(eager[k] - jitted[k]))) for k in eager)
    # Whole-split evaluation of the strategy-built model: one prediction per example.
    from tfaesthetic.metrics import evaluate_model
    meta = {"image_id": np.array([str(i).encode() for i in range(16)]), "tag": np.zeros(16, "int32")}
    counted = evaluate_model(model, tf.data.Dataset.from_tensor_slices((x, y, meta)).batch(8))["overall"]["count"]
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"][-1], "jit_diff": diff,
                      "count": counted}))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_and_jit_compile():
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    script = DISTRIBUTED_SCRIPT % json.dumps(TINY)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert np.isfinite(result["loss"])
    assert result["jit_diff"] < 1e-4
    assert result["count"] == 16


@pytest.mark.slow
def test_learns_on_demo_records(demo_records):
    """MRACNN (tiny backbone) beats the training prior on the demo validation split.

    Baseline: the mean training distribution predicted for every image (the best
    constant predictor of the distribution; its SRCC is undefined). Measured with
    this budget (10 epochs, constant lr 3e-3, batch 16; validation = the 24 val
    images of the fixture; 30-40 s on 2 busy cores) over training seeds 0, 1, 2:
    validation EMD (r = 1) 0.067, 0.067, 0.075 against the prior's 0.090 (ratio
    0.75-0.84), SRCC 0.73, 0.68, 0.65; epoch-to-epoch jitter of the EMD is about
    ±0.005. The test asks for EMD <= 0.92 × the prior's (half the smallest gain
    observed) and SRCC >= 0.45: on 24 images an uninformative predictor exceeds
    0.45 with probability about 1 %, and the lowest seed is 0.2 above it.
    """
    from tfaesthetic.config import DataConfig
    from tfaesthetic.data import build_dataset
    from tfaesthetic.features import ScoreScale
    from tfaesthetic.metrics import evaluate_distributions, evaluate_model
    from tfaesthetic.records.writer import read_manifest

    keras.utils.set_random_seed(0)
    manifest = read_manifest(demo_records)
    scale = ScoreScale.from_json(manifest["score_scale"])
    config = DataConfig(
        records_dir=demo_records, image_size=48, max_len=96, global_batch_size=16, seed=0, cache=True
    )
    train = build_dataset(config, is_training=True)
    val = build_dataset(config, is_training=False, split="val", include_metadata=True)

    train_targets = np.concatenate([labels["distribution"] for _, labels in build_dataset(config, False, split="train")])
    val_targets = np.concatenate([labels["distribution"] for _, labels, _ in val])
    prior = np.tile(train_targets.mean(axis=0), (len(val_targets), 1))
    prior_emd = evaluate_distributions(val_targets, prior, scale=scale)["overall"]["emd"]

    model = MRACNN(
        vocab_size=manifest["vocab_size"],
        num_bins=scale.num_bins,
        backbone="tiny",
        image_size=48,
        max_len=96,
        lstm_units=32,
        attention_units=32,
        embedding_dim=32,
        num_filters=16,
        mfb_k=4,
        mfb_o=64,
    )
    model.compile(scale=scale, learning_rate=3e-3, jit_compile=False)
    model.fit(train, epochs=10, verbose=0)

    results = evaluate_model(model, val, scale=scale)["overall"]
    assert results["count"] == len(val_targets) == manifest["splits"]["val"]
    assert results["emd"] <= 0.92 * prior_emd, (results, prior_emd)
    assert results["srcc"] >= 0.45, results


# --------------------------------------------------------------------------------------
# The real-comment language stream: Text-CNN beside a bag of n-grams (text_encoder="cnn_bag").
# --------------------------------------------------------------------------------------

BAG = dict(text_encoder="cnn_bag", bag_units=4, bag_buckets=13, bag_pooling="sqrt", bag_l2=1e-4,
           vector_pooling=("mean", "max"), sentiment_lexicon=True, bag_subword_buckets=31, bag_subword_pooling="sqrt")


@pytest.mark.parametrize("variant", ["text_only", "full"])
def test_cnn_bag_builds_fits_with_gradients_everywhere_and_round_trips(variant, tmp_path):
    keras.utils.set_random_seed(0)
    model = MRACNN(**TINY, variant=variant, **BAG)
    assert model.ngram_bag is not None and model.ngram_bag.num_buckets == 13
    # A non-zero lexicon table, so that the round trip below sees it.
    model.initialize_lexicon(np.random.default_rng(2).uniform(-1, 1, size=(TINY["vocab_size"], 4)).astype("float32"))
    model.initialize_subwords([f"word{i}" for i in range(TINY["vocab_size"] - 2)])
    inputs = tiny_inputs(model, batch=4)
    inputs["tokens"][0] = 0  # an image without comments trains the "no comment" vector
    target = np.random.default_rng(1).dirichlet(np.ones(10), size=4).astype("float32")
    with tf.GradientTape() as tape:
        out = model(inputs, training=True)
        loss = tf.reduce_mean(EMD(r=2)(target, out["distribution"])) + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_weights)
    no_grad = [w.path for w, g in zip(model.trainable_weights, grads)
               if g is None or float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) == 0.0]
    assert not no_grad, no_grad
    if variant == "text_only":  # one compiled fit step (the full graph's is slow to trace on CPU)
        model.compile(learning_rate=1e-3)
        history = model.fit(inputs, {"distribution": target}, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    config = model.get_config()
    assert MRACNN.from_config(config).get_config() == config
    path = str(tmp_path / "bag.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        restored(inputs, training=False)["distribution"], model(inputs, training=False)["distribution"], atol=1e-5
    )
    assert restored.get_config()["text_encoder"] == "cnn_bag"
    assert restored.get_config()["sentiment_lexicon"] is True
    np.testing.assert_array_equal(restored.sentiment_lexicon_layer.table, model.sentiment_lexicon_layer.table)
    np.testing.assert_array_equal(restored.ngram_bag.subwords, model.ngram_bag.subwords)


def test_sentiment_lexicon_option_adds_its_features_and_needs_a_text_stream():
    plain = MRACNN(**TINY, variant="text_only")
    with_lexicon = MRACNN(**TINY, variant="text_only", sentiment_lexicon=True)
    assert plain.sentiment_lexicon_layer is None
    assert with_lexicon.get_layer("text_features").output.shape[-1] == plain.text_cnn.output.shape[-1] + 6
    with pytest.raises(ValueError, match="has no sentiment lexicon"):
        plain.initialize_lexicon(np.zeros((TINY["vocab_size"], 4), "float32"))
    with pytest.raises(ValueError, match="has no subwords"):
        plain.initialize_subwords(["a"] * (TINY["vocab_size"] - 2))
    with pytest.raises(ValueError, match="has no sentiment lexicon"):
        MRACNN(**TINY, variant="vision_only", sentiment_lexicon=True).initialize_lexicon(
            np.zeros((TINY["vocab_size"], 4), "float32"))


def test_cnn_bag_rejects_unknown_options():
    with pytest.raises(ValueError, match="Received: text_encoder='lstm'"):
        MRACNN(**TINY, variant="text_only", text_encoder="lstm")
    with pytest.raises(ValueError, match="Received: bag_pooling='max'"):
        MRACNN(**TINY, variant="text_only", text_encoder="cnn_bag", bag_pooling="max")
    with pytest.raises(ValueError, match="Received: bag_subword_pooling='sum'"):
        MRACNN(**TINY, variant="text_only", text_encoder="cnn_bag", bag_subword_pooling="sum")


def test_fine_tune_vectors_keeps_loaded_vectors_trainable():
    model = MRACNN(**TINY, variant="text_only", fine_tune_vectors=True)
    vectors = np.random.default_rng(0).normal(size=(40, 6)).astype("float32")
    model.initialize_embeddings(vectors, trainable=False)  # what the trainer calls
    assert model.text_cnn.embedding.trainable and model.get_config()["trainable_embeddings"]


def test_mean_score_weight_sets_the_training_loss_and_survives_saving(tmp_path):
    from tfaesthetic.losses import EMDWithMeanScore

    assert isinstance(MRACNN(**TINY, variant="text_only").default_losses()["distribution"], EMD)
    keras.utils.set_random_seed(0)
    model = MRACNN(**TINY, variant="text_only", mean_score_weight=0.4, mean_score_variance=0.5, **BAG)
    loss = model.default_losses()["distribution"]
    assert isinstance(loss, EMDWithMeanScore) and (loss.mean_weight, loss.variance) == (0.4, 0.5)
    inputs = {"tokens": tiny_inputs(model, batch=4)["tokens"]}
    target = np.random.default_rng(1).dirichlet(np.ones(10), size=4).astype("float32")
    model.compile(learning_rate=1e-3)  # loss="auto" is default_losses()
    reported = model.evaluate(inputs, {"distribution": target}, verbose=0, return_dict=True)["loss"]
    pred = np.asarray(model(inputs, training=False)["distribution"])
    expected = float(np.mean(loss(target, pred))) + float(sum(np.asarray(x) for x in model.losses))
    np.testing.assert_allclose(reported, expected, rtol=1e-4)
    model.fit(inputs, {"distribution": target}, epochs=1, verbose=0)
    path = str(tmp_path / "mean.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.get_config()["mean_score_weight"] == 0.4
    assert isinstance(restored.default_losses()["distribution"], EMDWithMeanScore)
    with pytest.raises(ValueError, match="mean_score_weight=-0.1"):
        MRACNN(**TINY, variant="text_only", mean_score_weight=-0.1)
    with pytest.raises(ValueError, match="mean_score_variance=0"):
        MRACNN(**TINY, variant="text_only", mean_score_variance=0)


@pytest.mark.slow  # writes records and a SavedModel
def test_cnn_bag_serving_graph_on_raw_strings_matches_keras(tmp_path):
    from tests._serving import fixtures as fx
    from tfaesthetic import text
    from tfaesthetic.serving import export

    records = fx.write_tiny_records(str(tmp_path / "records"))
    manifest = json.load(open(os.path.join(records, "manifest.json")))
    keras.utils.set_random_seed(3)
    model = MRACNN(vocab_size=manifest["vocab_size"], num_bins=10, variant="text_only", max_len=fx.MAX_LEN,
                   embedding_dim=8, num_filters=4, **BAG)
    # Non-trivial bag weights, so that the comparison sees the branch.
    model.ngram_bag.unigrams.assign(np.random.default_rng(0).normal(size=model.ngram_bag.unigrams.shape))
    model.ngram_bag.bigrams.assign(np.random.default_rng(1).normal(size=model.ngram_bag.bigrams.shape))
    from tfaesthetic.data import records_info
    from tfaesthetic.records import reviews

    words = records_info.vocabulary_words(records)
    model.initialize_lexicon(reviews.lexicon_table(words))
    model.initialize_subwords(words)
    model.ngram_bag.subword_vectors.assign(
        np.random.default_rng(2).normal(size=model.ngram_bag.subword_vectors.shape))
    export_dir = export.export_model(model, records, str(tmp_path / "export"), model_name="mracnn")
    comments = ["Great colours, but the focus is soft.", "nice light\nsharp subject", "", "Wonderful!!! unknownword"]
    served = tf.saved_model.load(export_dir).signatures["serving_default"](comments=tf.constant(comments))
    vocab = text.Vocabulary.from_file(os.path.join(records, "vocab.txt"))
    tokens = text.pad_tokens(text.tokenize(comments, vocab), fx.MAX_LEN).numpy()
    expected = np.asarray(model({"tokens": tokens}, training=False)["distribution"])
    np.testing.assert_allclose(served["distribution"].numpy(), expected, atol=1e-5)
    assert np.abs(expected[0] - expected[1]).max() > 1e-6
    # The lexicon branch is in the served graph: its features differ between the comments.
    lexicon = np.asarray(model.sentiment_lexicon_layer(tokens))
    assert np.abs(lexicon[0] - lexicon[2]).max() > 0, lexicon


# Text variants on the demo: the paper's Text-CNN and the real-comment stream (bag of
# words / bigrams beside the Text-CNN, vector pooling), trained with the product's
# `train_and_evaluate` from the demo preset.
TEXT_VARIANTS = {
    "cnn": dict(),
    "cnn_bag": dict(text_encoder="cnn_bag", bag_units=16, bag_buckets=4096, bag_pooling="sqrt", bag_l2=1e-4,
                    vector_pooling=["mean", "max", "min"], kernel_sizes=[1, 2], sentiment_lexicon=True,
                    bag_subword_buckets=4096, bag_subword_pooling="sqrt"),
}


@pytest.mark.slow
@pytest.mark.parametrize("encoder", sorted(TEXT_VARIANTS))
def test_text_variants_learn_on_demo_records(demo_records, tmp_path, encoder):
    """Each text-only stream beats the training prior on the demo test split.

    Budget: the `demo` preset, `text_only`, 8 epochs at constant lr 3e-3 on the
    tiny demo fixture. Measured (seed 0, 2 cores under load 19: 45 s and 65 s):
    test EMD 0.0566 (`cnn`) and 0.0573 (`cnn_bag`) against the prior's 0.0780
    (0.73×), SRCC 0.74 and 0.80. The thresholds, EMD <= 0.92 × the prior's and
    SRCC >= 0.45, are those of the full model's demo learning test above.
    """
    from tfaesthetic import config as config_lib
    from tfaesthetic import trainer
    from tfaesthetic.data import build_dataset
    from tfaesthetic.metrics import evaluate_distributions
    from tfaesthetic.records.writer import read_manifest

    config = config_lib.with_overrides(config_lib.get_experiment("demo"), {
        "data.records_dir": demo_records, "model.variant": "text_only", "trainer.epochs": 8,
        "trainer.learning_rate": 3e-3, "trainer.schedule": "constant", "trainer.verbose": 0, "runtime.seed": 0,
        **{f"model.params.{k}": v for k, v in TEXT_VARIANTS[encoder].items()},
    })
    summary = trainer.train_and_evaluate(config, str(tmp_path / encoder), export=False)
    data = config_lib.resolve(config).data
    train = np.concatenate([y["distribution"] for _, y in build_dataset(data, False, split="train")])
    test = np.concatenate([y["distribution"] for _, y in build_dataset(data, False, split="test")])
    prior = evaluate_distributions(test, np.tile(train.mean(0), (len(test), 1)))["overall"]
    overall = summary["test"]["overall"]
    assert overall["count"] == read_manifest(demo_records)["splits"]["test"]
    print(encoder, "EMD", overall["emd"], "prior", prior["emd"], "SRCC", overall["srcc"])
    assert overall["emd"] <= 0.92 * prior["emd"], (overall, prior)
    assert overall["srcc"] >= 0.45, overall
