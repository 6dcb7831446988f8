r"""Hyperparameter search with KerasTuner: `python -m tfaesthetic.tune`.

Searches the space of a file in `tuning/` (MRACNN: recurrences T, LSTM layers,
fusion, MFB k and o, dropouts, learning rate; CFAN: λz, λβ, factor size, GRU units,
kernel size, learning rate) with Hyperband, Bayesian optimisation or random search.
Every trial builds, compiles and trains through the same config and trainer code as
`python -m tfaesthetic.train` (`tfaesthetic.tuning.hypermodels`), and accepts the same
flags (--experiment, --records, --epochs, --batch_size, --param, --demo_size, ...).

Examples:

    python -m tfaesthetic.tune --demo_size=tiny --tuner=random --max_trials=3
    python -m tfaesthetic.tune --model=cfan --tuner=bayesian --max_trials=20 --epochs=10
    python -m tfaesthetic.tune --experiment=mracnn_vgg16_ava --records=/data/ava \
        --strategy=mirrored --objective=srcc --directory=/data/trials

Writes, under `<directory>/<project_name>/`: KerasTuner's oracle and trial files
(rerun the same command to resume an interrupted search: completed trials are not
run again), `results.md` and `results.json` (one row per trial: hyperparameters and
validation metrics, like seed 003 Table I), `best/model.keras` and a TF Serving
export of the best trial (`<export_dir>/<model>/<version>/`, default
`<directory>/<project_name>/export`).

Several machines: KerasTuner's chief/worker mode, from the `KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` environment variables; see
README.md, "Hyperparameter tuning".

The library call behind this CLI is `tfaesthetic.tuning.search.run_search`.
"""

from __future__ import annotations

from absl import app
from absl import flags

# TensorFlow-free modules; those that import TensorFlow are imported in the functions
# that need them, after `console.quiet_startup()`.
from tfaesthetic import config as config_lib
from tfaesthetic import console
from tfaesthetic.tuning import search
from tfaesthetic.tuning import search_space as ss

# The train CLI's flags (--experiment, --model, --records, --epochs, --strategy,
# --seed, --export_dir, --param, --demo_size, ...): the same config as `train`.
from tfaesthetic import train as train_cli

_SPACE = flags.DEFINE_string("space", None, "Search-space file (default tuning/<model>.json).")
_TUNER = flags.DEFINE_enum("tuner", "hyperband", list(search.TUNERS), "Search algorithm.")
_MAX_TRIALS = flags.DEFINE_integer("max_trials", 10, "Most trials to run (Hyperband: an upper bound).")
_OBJECTIVE = flags.DEFINE_string(
    "objective", "val_loss", "Validation metric to optimise, by name (val_loss, srcc, plcc, accuracy, emd, auc, ...)."
)
_DIRECTORY = flags.DEFINE_string("directory", "tuning_trials", "Directory of the trials (rerun to resume).")
_PROJECT = flags.DEFINE_string("project_name", None, "Sub-directory of this search (default <model>_<variant>).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Start the search afresh instead of resuming it.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    console.quiet_startup()  # before TensorFlow is imported

    fl = flags.FLAGS
    if fl["model"].value == "cfan" and not fl["experiment"].present and not fl["config"].present:
        fl.experiment = "demo_cfan"  # the CFAN demo preset, as the MRACNN default is "demo"
    return console.run_cli(
        _main,
        exit_codes=[(config_lib.ConfigError, 2), (ss.SearchSpaceError, 2)],
        user_errors=(ss.SearchSpaceError,),
    )


def _main() -> int:
    config, _ = train_cli.build_config()
    summary = search.run_search(
        config,
        space=_SPACE.value,
        tuner=_TUNER.value,
        max_trials=_MAX_TRIALS.value,
        objective=_OBJECTIVE.value,
        directory=_DIRECTORY.value,
        project_name=_PROJECT.value,
        overwrite=_OVERWRITE.value,
    )
    if summary["role"] == "worker":
        print(f"Worker finished; the chief writes the results ({summary['project_dir']}).")
        return 0
    print()
    print(summary["table"])
    print()
    print(f"Trials and results: {summary['project_dir']}  (rerun the same command to resume)")
    if summary.get("best_model"):
        print(f"Best model:         {summary['best_model']}")
    return 0


if __name__ == "__main__":
    app.run(main)
