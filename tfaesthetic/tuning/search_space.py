"""Search-space files for `python -m tfaesthetic.tune` (defaults: `tfaesthetic/tuning/spaces/`, linked as `tuning/`).

A search space is a JSON file, readable and editable by users::

    {
      "model": "mracnn",
      "hyperparameters": {
        "recurrences": {"type": "choice", "values": [1, 3, 5], "default": 3},
        "learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2,
                          "sampling": "log", "default": 1e-3}
      }
    }

Entry types:
  - `choice`: `values` (a non-empty list of numbers, strings or booleans of one
    kind) and `default` (one of them).
  - `int`: `min`, `max`, optional `step` (default 1), `default`.
  - `float`: `min`, `max`, optional `step`, optional `sampling`
    (`linear` | `log` | `reverse_log`; log needs `min > 0`), `default`.
  - `boolean`: `default`.
  - `fixed`: `value` (not searched, but recorded in every trial).

Every name must be a hyperparameter the model's HyperModel knows (`KNOWN` below,
which also gives the value type and the valid range). A file with an unknown name, a
bad range or a type error fails in `load_search_space`, before any trial runs, with a
`SearchSpaceError` naming the file and the entry.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Optional

from tfaesthetic.tuning import SPACES_DIR as TUNING_DIR  # package data: present in an installed wheel


class SearchSpaceError(ValueError):
    """A search-space file is invalid; the message names the file and the entry."""


@dataclasses.dataclass(frozen=True)
class Known:
    """What a HyperModel accepts for one hyperparameter.

    Attributes:
        kind: the Python value type: "int", "float", "str" or "bool".
        low: smallest valid value (numbers), or None.
        high: largest valid value (numbers), or None.
        options: the valid values (strings), or None for any.
        target: where the value goes: "model" (model params), "trainer"
            (learning rate), "fit" (fit-time choice such as batch size).
    """

    kind: str
    low: Optional[float] = None
    high: Optional[float] = None
    options: Optional[tuple] = None
    target: str = "model"


_LR = Known("float", 1e-6, 1.0, target="trainer")
_BATCH = Known("int", 1, 4096, target="fit")

KNOWN = {
    "mracnn": {
        "recurrences": Known("int", 1, 16),
        "lstm_layers": Known("int", 1, 8),
        "lstm_units": Known("int", 1, 4096),
        "attention_units": Known("int", 1, 4096),
        "fusion": Known("str", options=("mfb", "concat", "sum", "product")),
        "mfb_k": Known("int", 1, 64),
        "mfb_o": Known("int", 1, 8192),
        "mfb_dropout": Known("float", 0.0, 0.95),
        "text_dropout": Known("float", 0.0, 0.95),
        "head_dropout": Known("float", 0.0, 0.95),
        "embedding_dim": Known("int", 1, 4096),
        "num_filters": Known("int", 1, 1024),
        "learning_rate": _LR,
        "batch_size": _BATCH,
    },
    # CFAN's constructor argument names (tfaesthetic.models.cfan.CFAN); `hidden_units`
    # is the width of the one hidden layer of the interaction f(gamma_u, q_iv).
    "cfan": {
        "lambda_z": Known("float", 0.0, 100.0),
        "lambda_beta": Known("float", 0.0, 100.0),
        "factor_dim": Known("int", 1, 4096),
        "embedding_dim": Known("int", 1, 4096),
        "gru_units": Known("int", 1, 4096),
        "kernel_size": Known("int", 1, 15),
        "hidden_units": Known("int", 1, 4096),
        "dropout": Known("float", 0.0, 0.95),
        "index_dropout": Known("float", 0.0, 0.95),
        "review_dropout": Known("float", 0.0, 0.95),
        "visual_taste": Known("int", 0, 4096),
        "learning_rate": _LR,
        "batch_size": _BATCH,
    },
}

_TYPES = ("choice", "int", "float", "boolean", "fixed")
_ALLOWED_KEYS = {
    "choice": {"type", "values", "default"},
    "int": {"type", "min", "max", "step", "default"},
    "float": {"type", "min", "max", "step", "sampling", "default"},
    "boolean": {"type", "default"},
    "fixed": {"type", "value"},
}


@dataclasses.dataclass
class SearchSpace:
    """A validated search space.

    Attributes:
        model: "mracnn" or "cfan".
        entries: hyperparameter name -> validated entry dict.
        path: the file it came from.
    """

    model: str
    entries: dict
    path: str = ""

    def defaults(self) -> dict:
        """The default value of every entry."""
        return {name: (e["value"] if e["type"] == "fixed" else e["default"]) for name, e in self.entries.items()}

    def extremes(self) -> list:
        """Two assignments: every entry at its lowest, and at its highest value."""
        low, high = {}, {}
        for name, e in self.entries.items():
            t = e["type"]
            if t == "fixed":
                low[name] = high[name] = e["value"]
            elif t == "boolean":
                low[name], high[name] = False, True
            elif t == "choice":
                values = e["values"]
                if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                    values = sorted(values)
                low[name], high[name] = values[0], values[-1]
            else:
                low[name], high[name] = e["min"], e["max"]
        return [low, high]

    def target(self, name: str) -> str:
        """Where entry `name` goes: "model" (model params), "trainer" or "fit"."""
        return KNOWN[self.model][name].target

    def register(self, hp, name: str):
        """Declares entry `name` on a `keras_tuner.HyperParameters` and returns its value."""
        e = self.entries[name]
        t = e["type"]
        if t == "choice":
            return hp.Choice(name, e["values"], default=e["default"])
        if t == "int":
            return hp.Int(name, e["min"], e["max"], step=e.get("step", 1), default=e["default"])
        if t == "float":
            return hp.Float(
                name, e["min"], e["max"], step=e.get("step"), sampling=e.get("sampling", "linear"), default=e["default"]
            )
        if t == "boolean":
            return hp.Boolean(name, default=e["default"])
        return hp.Fixed(name, e["value"])


def default_space_path(model: str) -> str:
    return os.path.join(TUNING_DIR, f"{model}.json")


def _fail(path, name, msg):
    where = f"{path}: " if path else ""
    entry = f"hyperparameter {name!r}: " if name else ""
    raise SearchSpaceError(f"{where}{entry}{msg}")


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_value(path, name, known: Known, value, what):
    if known.kind == "int":
        if not (isinstance(value, int) and not isinstance(value, bool)):
            _fail(path, name, f"{what} must be an integer. Received: {value!r}")
    elif known.kind == "float":
        if not _is_number(value):
            _fail(path, name, f"{what} must be a number. Received: {value!r}")
    elif known.kind == "str":
        if not isinstance(value, str):
            _fail(path, name, f"{what} must be a string. Received: {value!r}")
    elif known.kind == "bool":
        if not isinstance(value, bool):
            _fail(path, name, f"{what} must be true or false. Received: {value!r}")
    if known.options is not None and value not in known.options:
        _fail(path, name, f"{what} must be one of {list(known.options)}. Received: {value!r}")
    if known.low is not None and _is_number(value) and value < known.low:
        _fail(path, name, f"{what} must be >= {known.low}. Received: {value!r}")
    if known.high is not None and _is_number(value) and value > known.high:
        _fail(path, name, f"{what} must be <= {known.high}. Received: {value!r}")


def _validate_entry(path, name, known: Known, e: Any) -> dict:
    if not isinstance(e, dict):
        _fail(path, name, f"expected an object with a 'type'. Received: {e!r}")
    t = e.get("type")
    if t not in _TYPES:
        _fail(path, name, f"'type' must be one of {list(_TYPES)}. Received: {t!r}")
    extra = set(e) - _ALLOWED_KEYS[t]
    if extra:
        _fail(path, name, f"unknown keys {sorted(extra)} for type {t!r}; allowed: {sorted(_ALLOWED_KEYS[t])}")
    missing = {k for k in _ALLOWED_KEYS[t] if k not in ("step", "sampling")} - set(e)
    if missing:
        _fail(path, name, f"missing keys {sorted(missing)} for type {t!r}")
    if t == "fixed":
        _check_value(path, name, known, e["value"], "'value'")
    elif t == "boolean":
        if known.kind != "bool":
            _fail(path, name, f"type 'boolean' does not fit a {known.kind} hyperparameter")
        _check_value(path, name, known, e["default"], "'default'")
    elif t == "choice":
        values = e["values"]
        if not isinstance(values, list) or not values:
            _fail(path, name, f"'values' must be a non-empty list. Received: {values!r}")
        for v in values:
            _check_value(path, name, known, v, "each of 'values'")
        if len(set(map(repr, values))) != len(values):
            _fail(path, name, f"'values' has duplicates. Received: {values!r}")
        if e["default"] not in values:
            _fail(path, name, f"'default' must be one of 'values'. Received: default={e['default']!r}, values={values!r}")
    else:  # int / float
        expected = "int" if t == "int" else "float"
        if known.kind not in ("int", "float") or (t == "int" and known.kind != "int"):
            _fail(path, name, f"type {t!r} does not fit a {known.kind} hyperparameter")
        if t == "float" and known.kind == "int":
            _fail(path, name, f"type 'float' does not fit an int hyperparameter")
        for key in ("min", "max", "default") + (("step",) if "step" in e and e["step"] is not None else ()):
            if expected == "int":
                _check_value(path, name, Known("int"), e[key], f"'{key}'")
            elif not _is_number(e[key]):
                _fail(path, name, f"'{key}' must be a number. Received: {e[key]!r}")
        for key in ("min", "max", "default"):
            _check_value(path, name, known, e[key], f"'{key}'")
        if e["min"] > e["max"]:
            _fail(path, name, f"bad range: 'min' > 'max'. Received: min={e['min']!r}, max={e['max']!r}")
        if not e["min"] <= e["default"] <= e["max"]:
            _fail(path, name, f"'default' outside [min, max]. Received: default={e['default']!r}")
        if e.get("step") is not None and e["step"] <= 0:
            _fail(path, name, f"'step' must be > 0. Received: {e['step']!r}")
        sampling = e.get("sampling", "linear")
        if sampling not in ("linear", "log", "reverse_log"):
            _fail(path, name, f"'sampling' must be linear, log or reverse_log. Received: {sampling!r}")
        if sampling != "linear" and e["min"] <= 0:
            _fail(path, name, f"{sampling} sampling needs min > 0. Received: min={e['min']!r}")
    return dict(e)


def parse_search_space(obj: Any, path: str = "", model: Optional[str] = None) -> SearchSpace:
    """Validates a decoded search-space object (see the module docstring)."""
    if not isinstance(obj, dict):
        _fail(path, None, f"expected a JSON object at the top level. Received: {type(obj).__name__}")
    file_model = obj.get("model")
    if file_model not in KNOWN:
        _fail(path, None, f"'model' must be one of {sorted(KNOWN)}. Received: {file_model!r}")
    if model is not None and file_model != model:
        _fail(path, None, f"this file is a search space for {file_model!r}, not for --model={model!r}")
    unknown_top = set(obj) - {"model", "description", "hyperparameters"}
    if unknown_top:
        _fail(path, None, f"unknown top-level keys {sorted(unknown_top)}")
    hps = obj.get("hyperparameters")
    if not isinstance(hps, dict) or not hps:
        _fail(path, None, "'hyperparameters' must be a non-empty object")
    known = KNOWN[file_model]
    entries = {}
    for name, e in hps.items():
        if name not in known:
            _fail(path, name, f"unknown hyperparameter for {file_model}; known: {sorted(known)}")
        entries[name] = _validate_entry(path, name, known[name], e)
    return SearchSpace(model=file_model, entries=entries, path=path)


def load_search_space(path: str, model: Optional[str] = None) -> SearchSpace:
    """Reads and validates a search-space file; raises `SearchSpaceError` naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise SearchSpaceError(f"{path}: search-space file not found") from None
    except json.JSONDecodeError as e:
        raise SearchSpaceError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from None
    return parse_search_space(obj, path=path, model=model)
