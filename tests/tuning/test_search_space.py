"""Search-space files: the shipped ones are valid; bad ones fail before any trial, naming file and entry."""

import json

import keras_tuner
import pytest

from tfaesthetic.tuning import search_space as ss


@pytest.mark.parametrize("model", ["mracnn", "cfan"])
def test_shipped_spaces_load(model):
    space = ss.load_search_space(ss.default_space_path(model), model=model)
    assert space.model == model
    hp = keras_tuner.HyperParameters()
    values = {name: space.register(hp, name) for name in space.entries}
    assert values == space.defaults()
    low, high = space.extremes()
    assert set(low) == set(high) == set(space.entries)


def test_mracnn_space_defaults_are_the_papers():
    defaults = ss.load_search_space(ss.default_space_path("mracnn")).defaults()
    assert defaults["recurrences"] == 3 and defaults["lstm_layers"] == 1
    assert defaults["fusion"] == "mfb" and defaults["text_dropout"] == pytest.approx(0.3)
    assert defaults["learning_rate"] == pytest.approx(1e-3)


def test_cfan_space_defaults_are_the_papers():
    defaults = ss.load_search_space(ss.default_space_path("cfan")).defaults()
    assert defaults["lambda_z"] == pytest.approx(0.015) and defaults["lambda_beta"] == pytest.approx(1.0)
    assert defaults["factor_dim"] == 50 and defaults["learning_rate"] == pytest.approx(0.005)


def _write(tmp_path, obj, name="space.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


BAD = [
    ({"model": "mracnn", "hyperparameters": {"warp_factor": {"type": "int", "min": 1, "max": 2, "default": 1}}},
     "warp_factor", "unknown hyperparameter"),
    ({"model": "mracnn", "hyperparameters": {"lstm_layers": {"type": "int", "min": 3, "max": 1, "default": 1}}},
     "lstm_layers", "bad range"),
    ({"model": "mracnn", "hyperparameters": {"lstm_layers": {"type": "int", "min": 1, "max": 3, "default": "two"}}},
     "lstm_layers", "must be an integer"),
    ({"model": "mracnn", "hyperparameters": {"fusion": {"type": "choice", "values": ["mfb", "blend"], "default": "mfb"}}},
     "fusion", "must be one of"),
    ({"model": "mracnn", "hyperparameters": {"recurrences": {"type": "choice", "values": [1, 3], "default": 5}}},
     "recurrences", "'default' must be one of 'values'"),
    ({"model": "mracnn", "hyperparameters": {"text_dropout": {"type": "float", "min": 0.0, "max": 0.5, "sampling": "log", "default": 0.1}}},
     "text_dropout", "log sampling needs min > 0"),
    ({"model": "mracnn", "hyperparameters": {"text_dropout": {"type": "float", "min": 0.0, "max": 1.5, "default": 0.3}}},
     "text_dropout", "must be <="),
    ({"model": "cfan", "hyperparameters": {"lambda_z": {"type": "int", "min": 0, "max": 1, "default": 0}}},
     "lambda_z", "does not fit"),
    ({"model": "cfan", "hyperparameters": {"gru_units": {"type": "choice", "values": [], "default": 1}}},
     "gru_units", "non-empty list"),
    ({"model": "cfan", "hyperparameters": {"gru_units": {"type": "int", "min": 1, "max": 9, "default": 4, "stride": 2}}},
     "gru_units", "unknown keys"),
]


@pytest.mark.parametrize("obj,entry,message", BAD)
def test_bad_entries_fail_naming_file_and_entry(tmp_path, obj, entry, message):
    path = _write(tmp_path, obj)
    with pytest.raises(ss.SearchSpaceError) as err:
        ss.load_search_space(path)
    text = str(err.value)
    assert path in text and repr(entry) in text and message in text


def test_bad_files_fail_naming_the_file(tmp_path):
    path = _write(tmp_path, "{not json")
    with pytest.raises(ss.SearchSpaceError, match="not valid JSON"):
        ss.load_search_space(path)
    path = _write(tmp_path, {"model": "cfan", "hyperparameters": {"gru_units": {"type": "int", "min": 1, "max": 2, "default": 1}}}, "c.json")
    with pytest.raises(ss.SearchSpaceError, match="not for --model='mracnn'"):
        ss.load_search_space(path, model="mracnn")
    with pytest.raises(ss.SearchSpaceError, match="not found"):
        ss.load_search_space(str(tmp_path / "missing.json"))
