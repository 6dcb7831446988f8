"""`--feature_cache` in the trainer: heads trained from cached backbone features (SPEC §3).

Reference: seed 003 (MRACNN) §III; the frozen backbone's maps are computed once.
"""

import json
import os

import numpy as np
import pytest

from tests._workers.tiny import tiny_experiment
from tfaesthetic import config as config_lib
from tfaesthetic.config import ConfigError, get_experiment, validate, with_overrides


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _demo(**overrides):
    base = {"data.feature_cache_dir": "cache", "model.trainable_backbone": False}
    base.update(overrides)
    return with_overrides(get_experiment("demo"), base)


def test_feature_cache_with_trainable_backbone_names_both_flags():
    with pytest.raises(ConfigError) as e:
        validate(_demo(**{"model.trainable_backbone": True}), environ={})
    assert "--feature_cache=cache" in str(e.value) and "--trainable_backbone" in str(e.value)


def test_feature_cache_with_multi_worker_names_both_flags():
    with pytest.raises(ConfigError) as e:
        validate(_demo(**{"runtime.strategy": "multi_worker"}), environ={"TF_CONFIG": "{}"})
    assert "--feature_cache=cache" in str(e.value) and "--strategy=multi_worker" in str(e.value)


def test_feature_cache_refuses_cfan_naming_the_model():
    config = with_overrides(
        get_experiment("demo_cfan"), {"data.feature_cache_dir": "cache", "model.trainable_backbone": False}
    )
    with pytest.raises(ConfigError) as e:
        validate(config, environ={})
    assert "--feature_cache=cache" in str(e.value) and "--model=cfan" in str(e.value)


def test_feature_cache_frozen_mracnn_is_accepted():
    validate(_demo(), environ={})  # raises ConfigError on any conflict


def _initial_val_loss(config):
    """Validation EMD of the model as `train` initialises it (same seed), before any step."""
    import keras

    from tfaesthetic import trainer

    config, manifest = trainer.prepare_config(config)
    keras.utils.set_random_seed(config.runtime.seed)
    task = trainer.make_task(config, manifest)
    model = task.build_model()
    trainer.compile_model(model, task, config)
    _, val = trainer.build_datasets(config, task, model)
    return float(model.evaluate(val, verbose=0, return_dict=True)["loss"]), model


@pytest.mark.slow
def test_train_and_evaluate_from_feature_cache(demo_records, tmp_path):
    import tensorflow as tf

    from tfaesthetic import trainer
    from tfaesthetic.data import feature_cache as fc

    cache_dir = str(tmp_path / "cache")
    run_dir = str(tmp_path / "run")
    config = tiny_experiment(
        "demo",
        demo_records,
        data__feature_cache_dir=cache_dir,
        model__trainable_backbone=False,
        trainer__epochs=2,
        trainer__steps_per_epoch=None,
        trainer__validation_steps=None,
        trainer__learning_rate=3e-3,
        trainer__schedule="constant",
        trainer__verbose=0,
    )
    before, initial = _initial_val_loss(config)
    backbone_sha = fc.weights_fingerprint(initial.backbone_model)

    summary = trainer.train_and_evaluate(config, run_dir)

    # The cache was written for the train and val splits of the records.
    cache = fc.read_cache_manifest(cache_dir)
    manifest = _read_json(os.path.join(demo_records, "manifest.json"))
    assert cache is not None
    assert cache["splits"]["train"] == manifest["splits"]["train"]
    assert cache["splits"]["val"] == manifest["splits"]["val"]
    # Two epochs over the cached features lowered the validation loss (EMD, r = 2).
    history = summary["history"]
    assert len(history["val_loss"]) == 2 and summary["epochs_run"] == [0, 1]
    assert history["val_loss"][-1] < before, (history["val_loss"], before)
    # The checkpoints hold the full model: frozen backbone unchanged, heads trained.
    restored = trainer.load_run_model(run_dir)
    assert fc.weights_fingerprint(restored.backbone_model) == backbone_sha == cache["key"]["backbone_weights_sha256"]
    changed = [not np.allclose(a, b) for a, b in zip(initial.get_weights(), restored.get_weights())]
    assert any(changed)
    # Test metrics of the full model (raw images), and a raw-input export.
    metrics = _read_json(os.path.join(run_dir, "metrics.json"))
    assert metrics["test"]["overall"]["count"] == manifest["splits"]["test"]
    assert np.isfinite(metrics["test"]["overall"]["emd"])
    loaded = tf.saved_model.load(summary["export"])
    assert "serving_default" in loaded.signatures
    spec = loaded.signatures["serving_default"].structured_input_signature[1]
    assert spec["image_bytes"].dtype == tf.string

    # A resumed run with more epochs reuses the cache (same manifest, not rebuilt)
    # and continues the shared optimizer's state from the full model's checkpoint.
    stamp = cache["created"], os.path.getmtime(os.path.join(cache_dir, fc.MANIFEST))
    resumed = trainer.train(config_lib.with_overrides(config, {"trainer.epochs": 3}), run_dir, restore_best=False)
    assert resumed.state.epochs_run == [0, 1, 2]
    steps = manifest["splits"]["train"] // config.data.global_batch_size
    # (A fresh optimizer would count one epoch of steps; Keras may count one more
    # step per epoch at the end of a dataset of unknown length.)
    assert 3 * steps <= int(resumed.model.optimizer.iterations.numpy()) <= 3 * (steps + 1)
    again = fc.read_cache_manifest(cache_dir)
    assert (again["created"], os.path.getmtime(os.path.join(cache_dir, fc.MANIFEST))) == stamp
