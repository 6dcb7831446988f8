"""The hyperparameter search behind `python -m tfaesthetic.tune`: tuner, objective, results.

`run_search(config, space=...)` checks everything before the first trial, runs (or
resumes) a KerasTuner search (Hyperband, Bayesian optimisation or random search) of
the HyperModels in `tfaesthetic.tuning.hypermodels` over a search space of
`tfaesthetic.tuning.search_space`, and writes, under `<directory>/<project_name>/`:
KerasTuner's oracle and trial files, `results.md` and `results.json` (one row per
trial: hyperparameters and validation metrics, like seed 003 Table I),
`best/model.keras` and a TF Serving export of the best trial.

Several machines: KerasTuner's chief/worker mode, from the `KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` environment variables; see
README.md, "Hyperparameter tuning".
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from typing import Optional

# TensorFlow-free modules; those that import TensorFlow are imported in the functions
# that need them, so that the CLI can call `console.quiet_startup()` first.
from tfaesthetic import io
from tfaesthetic.config import ConfigError
from tfaesthetic.tuning import search_space as ss

TUNERS = ("hyperband", "bayesian", "random")
RESULTS_MD = "results.md"
RESULTS_JSON = "results.json"

#: Metrics of the results table per model: (column, log name without "val_", scale).
TABLE_METRICS = {
    "mracnn": (
        ("accuracy (%)", "distribution_accuracy", 100.0),
        ("SRCC", "distribution_srcc", 1.0),
        ("PLCC", "distribution_plcc", 1.0),
        ("MAE", "distribution_mae", 1.0),
        ("RMSE", "distribution_rmse", 1.0),
        ("EMD", "distribution_emd", 1.0),
        ("loss", "loss", 1.0),
    ),
    "cfan": (
        ("AUC", "user_rating_auc", 1.0),
        ("accuracy (%)", "agnostic_rating_accuracy", 100.0),
        ("loss", "loss", 1.0),
    ),
}

#: Metric names that are minimised; every other metric is maximised.
_MINIMISED = ("loss", "emd", "mae", "rmse")

# ---------------------------------------------------------------------------------------
# Objective.


def metric_direction(name: str) -> str:
    """"min" for losses and errors (loss, emd, mae, rmse), "max" otherwise."""
    base = name.lower()
    return "min" if any(base.endswith(m) for m in _MINIMISED) else "max"


def resolve_objective(name: str, model_name: str):
    """A `keras_tuner.Objective` on the validation log of a metric given by name.

    Args:
        name: "val_loss", "loss", a short metric name ("srcc", "emd", "auc",
            "accuracy") or a full log name ("val_distribution_srcc").
        model_name: "mracnn" or "cfan".

    Returns:
        `keras_tuner.Objective(log_name, direction)` with the direction inferred.

    Raises:
        ConfigError: the name matches no metric of the model, or several.
    """
    import keras_tuner

    base = name[4:] if name.startswith("val_") else name
    known = ["loss"] + [log for _, log, _ in TABLE_METRICS[model_name] if log != "loss"]
    if model_name == "cfan":
        known += ["user_rating_loss", "tag_loss", "agnostic_rating_loss"]
    if base in known:
        full = base
    else:
        matches = [k for k in known if k.endswith("_" + base)]
        if len(matches) != 1:
            raise ConfigError(
                f"Unknown objective for --model={model_name}. Expected one of {known} (with or without val_). "
                f"Received: --objective={name}"
            )
        full = matches[0]
    return keras_tuner.Objective(f"val_{full}", metric_direction(full))


# ---------------------------------------------------------------------------------------
# The search.


def make_tuner(kind: str, hypermodel, objective, *, max_trials: int, epochs: int, directory: str,
               project_name: str, seed: int, overwrite: bool, distribution_strategy=None):
    """A KerasTuner tuner of `kind` ("hyperband", "bayesian" or "random").

    Hyperband runs up to `epochs` epochs per trial (`max_epochs`) and stops after
    `max_trials` trials.
    """
    import keras_tuner

    common = dict(
        objective=objective, seed=seed, directory=directory, project_name=project_name, overwrite=overwrite,
        distribution_strategy=distribution_strategy,
    )
    if kind == "hyperband":
        tuner = keras_tuner.Hyperband(hypermodel, max_epochs=max(1, epochs), factor=3, **common)
        # The Hyperband oracle has no `max_trials` argument; the base oracle honours it.
        tuner.oracle.max_trials = max_trials
        return tuner
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if kind == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, **common)

    raise ConfigError(f"Unknown tuner. Expected one of {TUNERS}. Received: --tuner={kind}")


def _distributed_role() -> str:
    """"chief", "worker" or "" (not distributed), from the KERASTUNER_* variables."""
    # Read the documented KERASTUNER_* variables directly (KerasTuner's own helpers
    # live in a private module): an oracle address means distributed tuning, and the
    # tuner id of the chief contains "chief".
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return ""
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if v not in os.environ]
    if missing:
        raise ConfigError(f"KERASTUNER_ORACLE_IP is set but {', '.join(missing)} is not: set all three variables.")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def run_search(
    config,
    *,
    space=None,
    tuner: str = "hyperband",
    max_trials: int = 10,
    objective: str = "val_loss",
    directory: str = "tuning_trials",
    project_name: Optional[str] = None,
    overwrite: bool = False,
    export: bool = True,
    evaluate_best: bool = True,
) -> dict:
    """Runs (or resumes) a hyperparameter search and reports it.

    Args:
        config: the base `ExperimentConfig` (as for `trainer.train_and_evaluate`);
            `trainer.epochs` is the epoch budget of a trial, `runtime.strategy`
            "mirrored" trains every trial under a `MirroredStrategy`.
        space: a `SearchSpace`, a file path, or None for `tuning/<model>.json`.
        tuner: "hyperband", "bayesian" or "random".
        max_trials: most trials to run.
        objective: validation metric by name (`resolve_objective`).
        directory: directory of the trials.
        project_name: sub-directory of this search; default `<model>_<variant>`.
        overwrite: discard an existing search there instead of resuming it.
        export: export the best trial's model for TF Serving.
        evaluate_best: evaluate the best model on the test split (when it exists).

    Returns:
        A summary dict: `project_dir`, `trials` (the rows of the results table),
        `best` (trial id, hyperparameters, objective value), `table` (Markdown),
        `export` (path or None), `role` ("", "chief" or "worker").

    Raises:
        ConfigError / SearchSpaceError: before any trial.
    """
    from tfaesthetic.tuning import hypermodels
    from tfaesthetic import trainer

    # Everything is checked before the first trial.
    config, manifest = trainer.prepare_config(config)
    if config.model.name not in hypermodels.HYPERMODELS:
        raise ConfigError(f"No search for this model. Expected one of {sorted(hypermodels.HYPERMODELS)}. "
                          f"Received: --model={config.model.name}")
    if space is None or isinstance(space, str):
        space = ss.load_search_space(space or ss.default_space_path(config.model.name), model=config.model.name)
    elif space.model != config.model.name:
        raise ss.SearchSpaceError(f"{space.path}: this file is a search space for {space.model!r}, not for "
                                  f"--model={config.model.name!r}")
    if tuner not in TUNERS:
        raise ConfigError(f"Unknown tuner. Expected one of {TUNERS}. Received: --tuner={tuner}")
    if tuner == "bayesian" and importlib.util.find_spec("sklearn") is None:
        # KerasTuner's Gaussian process needs scikit-learn (keras-tuner[bayesian]).
        raise ConfigError("--tuner=bayesian needs scikit-learn: pip install 'keras-tuner[bayesian]'. "
                          "Received: --tuner=bayesian without sklearn installed (use hyperband or random).")
    if config.runtime.strategy == "multi_worker":
        raise ConfigError("Tuning runs trials under --strategy=default or mirrored; several machines use "
                          "KerasTuner's chief/worker mode (README.md, 'Hyperparameter tuning'). Received: --strategy=multi_worker")
    keras_objective = resolve_objective(objective, config.model.name)
    if not trainer.num_split_examples(manifest, "val"):
        raise ConfigError(f"The search optimises a validation metric, but --records={config.data.records_dir} "
                          "has no val split.")
    strategy = trainer.create_strategy(config.runtime) if config.runtime.strategy == "mirrored" else None
    project_name = project_name or f"{config.model.name}_{config.model.variant}"
    project_dir = os.path.join(directory, project_name)
    role = _distributed_role()

    hypermodel = hypermodels.get_hypermodel(config, manifest, space)
    kt_tuner = make_tuner(
        tuner, hypermodel, keras_objective, max_trials=max_trials, epochs=config.trainer.epochs,
        directory=directory, project_name=project_name, seed=config.runtime.seed, overwrite=overwrite,
        distribution_strategy=strategy,
    )
    # The trials this process runs (a resumed search skips the completed ones; a
    # worker of a distributed search runs its share).
    ran_here = []
    end_trial = kt_tuner.on_trial_end

    def on_trial_end(trial):
        ran_here.append(trial.trial_id)
        end_trial(trial)

    kt_tuner.on_trial_end = on_trial_end
    started = time.time()
    kt_tuner.search(verbose=config.trainer.verbose)
    seconds = time.time() - started
    summary = {
        "project_dir": os.path.abspath(project_dir),
        "role": role,
        "tuner_id": kt_tuner.tuner_id,
        "trials_run_here": ran_here,
        "num_replicas": strategy.num_replicas_in_sync if strategy is not None else 1,
        "search_seconds": round(seconds, 1),
    }
    if role == "worker":
        return summary  # the chief's oracle holds the results

    oracle = kt_tuner.oracle
    if role == "chief":
        # KerasTuner's chief last saved its oracle before the final trial ended;
        # save the finished state so that a rerun does not resume a stale trial.
        oracle.save()
    rows = trial_rows(oracle, space, config.model.name)
    best_trials = oracle.get_best_trials(1)
    best = best_trials[0] if best_trials else None
    summary.update(
        objective={"name": keras_objective.name, "direction": keras_objective.direction},
        tuner=tuner,
        trials=rows,
        best=None if best is None else {
            "trial_id": best.trial_id,
            "hyperparameters": {k: best.hyperparameters.values[k] for k in space.entries},
            "score": _num(best.score),
        },
        export=None,
    )
    if best is not None:
        summary.update(_finish_best(kt_tuner, best, hypermodel, project_dir, export=export, evaluate=evaluate_best))
    table = format_results_table(summary, config.model.name, list(space.entries))
    summary["table"] = table
    _write(os.path.join(project_dir, RESULTS_MD), table + "\n")
    _write(os.path.join(project_dir, RESULTS_JSON), json.dumps(summary, indent=2) + "\n")
    return summary


def _finish_best(kt_tuner, best, hypermodel, project_dir, *, export, evaluate) -> dict:
    """Reloads the best trial's best epoch into a plain model; saves, evaluates, exports."""
    from tfaesthetic.serving import export as export_lib
    from tfaesthetic import trainer

    checkpoint = kt_tuner._get_checkpoint_fname(best.trial_id)
    if not os.path.exists(checkpoint):
        # Several machines without a shared directory: the worker kept the weights.
        print(f"No checkpoint of the best trial {best.trial_id} here ({checkpoint}); nothing exported.")
        return {}
    config = hypermodel.trial_config(best.hyperparameters)
    task = trainer.make_task(config, hypermodel.manifest)
    # Built outside any strategy scope (evaluation and export of a plain model).
    model = task.build_model()
    trainer.compile_model(model, task, config)
    model.optimizer.build(model.trainable_variables)  # the checkpoint holds the optimizer state too
    model.load_weights(checkpoint)
    best_dir = os.path.join(project_dir, "best")
    os.makedirs(best_dir, exist_ok=True)
    config.save(os.path.join(best_dir, "config.json"))
    model.save(os.path.join(best_dir, trainer.MODEL_FILE))
    out = {"best_model": os.path.abspath(os.path.join(best_dir, trainer.MODEL_FILE))}
    if evaluate and trainer.num_split_examples(hypermodel.manifest, "test"):
        results, table = task.evaluate(model, "test")
        out["best_test"] = io.json_safe(results)
        _write(os.path.join(best_dir, trainer.METRICS_TABLE), table + "\n")
    if export:
        export_base = config.export_dir or os.path.join(project_dir, "export")
        out["export"] = export_lib.export_model(model, config.data.records_dir, export_base, model_name=config.model.name)
    return out


# ---------------------------------------------------------------------------------------
# Results table.


def _num(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def trial_rows(oracle, space, model_name: str) -> list:
    """One dict per trial: id, status, hyperparameters, validation metrics.

    The metrics are those of the trial's best epoch for the objective (the epoch
    whose weights KerasTuner keeps).
    """
    objective = oracle.objective
    rows = []
    for trial_id in sorted(oracle.trials, key=lambda t: (len(t), t)):
        trial = oracle.trials[trial_id]
        row = {
            "trial_id": trial_id,
            "status": str(trial.status),
            "hyperparameters": {k: trial.hyperparameters.values.get(k) for k in space.entries},
            "epochs": trial.hyperparameters.values.get("tuner/epochs"),
            "score": _num(trial.score),
            "best_step": trial.best_step,
            "metrics": {},
        }
        best_step = trial.best_step
        history = _history(trial, objective.name)
        if best_step is None and history:
            best_step = history[-1][0]
        for _, log, _ in TABLE_METRICS[model_name]:
            values = dict(_history(trial, f"val_{log}"))
            if values:
                value = values.get(best_step, list(values.values())[-1])
                row["metrics"][log] = _num(value)
        rows.append(row)
    return rows


def _history(trial, name):
    if not trial.metrics.exists(name):
        return []
    return [(obs.step, float(obs.value[0]) if isinstance(obs.value, (list, tuple)) else float(obs.value))
            for obs in trial.metrics.get_history(name)]


def _cell(value, scale=1.0):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = value * scale
        return f"{value:.2f}" if scale != 1.0 else f"{value:.4g}"
    return str(value)


def format_results_table(summary: dict, model_name: str, hp_names: list) -> str:
    """Markdown table, one row per trial (like seed 003 Table I), best trial marked."""
    metrics = TABLE_METRICS[model_name]
    best_id = (summary.get("best") or {}).get("trial_id")
    objective = summary.get("objective", {})
    rows = summary.get("trials", [])
    show_epochs = any(row.get("epochs") is not None for row in rows)  # Hyperband's budget per trial
    header = ["trial"] + hp_names + (["epochs"] if show_epochs else []) + [f"val {col}" for col, _, _ in metrics] + ["status"]
    lines = [
        f"Search of {model_name} ({summary.get('tuner', '')}): objective {objective.get('name')} "
        f"({objective.get('direction')}), {len(rows)} trials. * = best.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|",
    ]
    for row in rows:
        cells = [row["trial_id"] + (" *" if row["trial_id"] == best_id else "")]
        cells += [_cell(row["hyperparameters"].get(name)) for name in hp_names]
        cells += [_cell(row.get("epochs"))] if show_epochs else []
        cells += [_cell(row["metrics"].get(log), scale) for _, log, scale in metrics]
        cells.append(row["status"].lower())
        lines.append("| " + " | ".join(cells) + " |")
    if summary.get("export"):
        lines += ["", f"Best trial {best_id} exported to {summary['export']}"]
    return "\n".join(lines)


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    io.atomic_write_text(path, text)
