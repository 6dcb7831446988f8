"""HyperModels: build at the space's defaults (the papers' values) and at its extremes."""

import keras
import keras_tuner
import numpy as np
import pytest

from tests._workers.tiny import tiny_experiment
from tfaesthetic import trainer
from tfaesthetic.tuning import hypermodels
from tfaesthetic.tuning import search
from tfaesthetic.tuning import search_space as ss

EXPERIMENT = {"mracnn": "demo", "cfan": "demo_cfan"}


def _hypermodel(model, records):
    config, manifest = trainer.prepare_config(tiny_experiment(EXPERIMENT[model], records))
    space = ss.load_search_space(ss.default_space_path(model), model=model)
    return hypermodels.get_hypermodel(config, manifest, space)


def _hp(hypermodel, values=None):
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values.update(values or {})
    return hp


def _learning_rate(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def test_mracnn_builds_at_defaults_the_papers_values(demo_records, seed):
    hypermodel = _hypermodel("mracnn", demo_records)
    assert isinstance(hypermodel, hypermodels.MRACNNHyperModel)
    hp = _hp(hypermodel)
    assert hp.values == hypermodel.space.defaults()
    model = hypermodel.build(hp)
    # Seed 003: T = 3, one LSTM layer, MFB (k = 5, o = 1000), Text-CNN dropout 0.3, lr 1e-3.
    cfg = model.get_config()
    assert (cfg["recurrences"], cfg["lstm_layers"], cfg["fusion"]) == (3, 1, "mfb")
    assert (cfg["mfb_k"], cfg["mfb_o"]) == (5, 1000)
    assert cfg["text_dropout"] == pytest.approx(0.3)
    assert _learning_rate(model) == pytest.approx(1e-3)
    # The tiny experiment's fixed (non-searched) sizes pass through unchanged.
    assert cfg["lstm_units"] == 8 and cfg["num_filters"] == 4
    out = model({"image": np.zeros((2, 32, 32, 3), "float32"), "tokens": np.ones((2, 32), "int32")})
    assert out["distribution"].shape == (2, 10)
    assert out["attention"].shape[1] == 3  # one attention map per recurrence


def test_cfan_builds_at_defaults_the_papers_values(demo_records, seed):
    hypermodel = _hypermodel("cfan", demo_records)
    assert isinstance(hypermodel, hypermodels.CFANHyperModel)
    hp = _hp(hypermodel)
    assert hp.values == hypermodel.space.defaults()
    model = hypermodel.build(hp)
    # Seed 000 §4.1: k = 50, λz = 0.015, λβ = 1, lr 0.005.
    cfg = model.get_config()
    assert cfg["factor_dim"] == 50
    assert cfg["lambda_z"] == pytest.approx(0.015) and cfg["lambda_beta"] == pytest.approx(1.0)
    assert _learning_rate(model) == pytest.approx(0.005)
    # Eq. 6 weights reach the compiled loss.
    assert model.default_loss_weights() == pytest.approx({"user_rating": 1.0, "tag": 0.015, "agnostic_rating": 1.0})


@pytest.mark.parametrize("model_name", ["mracnn", "cfan"])
def test_builds_and_runs_at_the_extremes(demo_records, seed, model_name):
    hypermodel = _hypermodel(model_name, demo_records)
    for values in hypermodel.space.extremes():
        hp = _hp(hypermodel, values)
        model = hypermodel.build(hp)
        cfg = model.get_config()
        for name, value in values.items():
            if hypermodel.space.target(name) == "model":
                assert cfg[name] == pytest.approx(value), name
        assert _learning_rate(model) == pytest.approx(values["learning_rate"])
        config = hypermodel.trial_config(hp)
        task = trainer.make_task(config, hypermodel.manifest)
        train_ds, _ = trainer.build_datasets(config, task, model)
        features, labels = next(iter(train_ds))
        outputs = model(features, training=True)
        for key, loss in task.losses(model)[0].items():
            assert np.all(np.isfinite(keras.ops.convert_to_numpy(loss(labels[key], outputs[key]))))
        keras.backend.clear_session()


def test_overrides_map_to_the_config(demo_records):
    hypermodel = _hypermodel("cfan", demo_records)
    space = ss.parse_search_space({"model": "cfan", "hyperparameters": {
        "hidden_units": {"type": "choice", "values": [8, 16], "default": 16},
        "batch_size": {"type": "choice", "values": [8, 32], "default": 8},
        "learning_rate": {"type": "fixed", "value": 0.01},
    }})
    hypermodel = hypermodels.CFANHyperModel(hypermodel.config, hypermodel.manifest, space)
    config = hypermodel.trial_config(_hp(hypermodel))
    assert config.model.params["hidden_units"] == [16]
    assert config.data.global_batch_size == 8
    assert config.trainer.learning_rate == 0.01
    with pytest.raises(ValueError, match="needs a cfan search space"):
        hypermodels.CFANHyperModel(hypermodel.config, hypermodel.manifest,
                                   ss.load_search_space(ss.default_space_path("mracnn")))


@pytest.mark.parametrize("name,model,key,direction", [
    ("val_loss", "mracnn", "val_loss", "min"),
    ("loss", "cfan", "val_loss", "min"),
    ("srcc", "mracnn", "val_distribution_srcc", "max"),
    ("val_emd", "mracnn", "val_distribution_emd", "min"),
    ("rmse", "mracnn", "val_distribution_rmse", "min"),
    ("accuracy", "mracnn", "val_distribution_accuracy", "max"),
    ("auc", "cfan", "val_user_rating_auc", "max"),
    ("accuracy", "cfan", "val_agnostic_rating_accuracy", "max"),
    ("tag_loss", "cfan", "val_tag_loss", "min"),
])
def test_objective_by_name_with_direction(name, model, key, direction):
    objective = search.resolve_objective(name, model)
    assert (objective.name, objective.direction) == (key, direction)


def test_unknown_objective_fails_naming_it():
    from tfaesthetic.config import ConfigError

    with pytest.raises(ConfigError, match="Received: --objective=bleu"):
        search.resolve_objective("bleu", "mracnn")
