r"""Evaluate a run or an export on a records split: `python -m tfaesthetic.evaluate`.

Prints the metrics table (overall and per tag) and writes it as JSON:

    python -m tfaesthetic.evaluate --run_dir=runs/demo-20261123-200000
    python -m tfaesthetic.evaluate --run_dir=runs/demo-... --split=val --output=val.json
    python -m tfaesthetic.evaluate --export=runs/demo-.../export/mracnn --records=demo_records

A run directory gives its model (`model.keras`, else its config and best or last
checkpoint) and its records; an export directory (a version directory or the model
directory holding integer versions) is evaluated through its `serve_tensors`
signature on the records given with `--records` (they must share the export's
vocabulary: the records it was trained on, or another split of them). MRACNN-like models get the seed 003 §IV-A table (accuracy, SRCC,
PLCC, MAE, RMSE, EMD; overall and per tag); CFAN, BPR and VBPR the seed 000 metrics
(AUC overall and per user, rating accuracy) for every serving path side by side:
with review, without review (known user), the user-agnostic baseline (also its
accuracy per image and per tag) and an unknown user; `--protocol=warm` evaluates
the held-out reviews of seen images instead of the held-out images.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags

# TensorFlow-free modules; those that import TensorFlow are imported in the functions
# that need them, after `console.quiet_startup()`.
from tfaesthetic import config as config_lib
from tfaesthetic import console
from tfaesthetic import io

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Run directory of `python -m tfaesthetic.train`.")
_EXPORT = flags.DEFINE_string("export", None, "SavedModel version directory, or a model directory with versions.")
_RECORDS = flags.DEFINE_string("records", None, "Records directory (default: the run's / the export's).")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Records split.")
_BATCH = flags.DEFINE_integer("batch_size", None, "Batch size (default: the run's).")
_PROTOCOL = flags.DEFINE_enum(
    "protocol", None, ["cold", "warm"],
    "CFAN/BPR/VBPR split protocol: cold (held-out images) or warm (held-out reviews of seen images); "
    "default: the run's, or cold for an export.",
)
_OUTPUT = flags.DEFINE_string("output", None, "JSON output (default <run_dir or export>/evaluation-<split>.json).")
_REPORT_DIR = flags.DEFINE_string(
    "report_dir", None, "Also write report.md + report.html (metrics tables, gallery; curves for a run) here."
)


class ExportedModel:
    """A SavedModel's `serve_tensors` signature, callable like a Keras model on feature dicts.

    Args:
        path: a SavedModel version directory (with `assets.extra/tfaesthetic.json`).
    """

    def __init__(self, path: str):
        import tensorflow as tf

        self.path = path
        with open(os.path.join(path, "assets.extra", "tfaesthetic.json"), encoding="utf-8") as f:
            self.sidecar = json.load(f)
        self.loaded = tf.saved_model.load(path)
        self.signature = self.loaded.signatures["serve_tensors"]
        self.input_keys = tuple(self.sidecar["signatures"]["serve_tensors"]["inputs"])

    def __call__(self, features, training=False):
        import tensorflow as tf

        specs = self.signature.structured_input_signature[1]
        args = {k: tf.cast(features[k], specs[k].dtype) for k in self.input_keys}
        return self.signature(**args)

    def predict_on_batch(self, features):
        return {k: v.numpy() for k, v in self(features).items()}


def _data_config_for_export(sidecar: dict, records_dir: str, batch_size: int):
    keys = tuple(sidecar["signatures"]["serve_tensors"]["inputs"])
    review = any(k in keys for k in ("user_index", "image_index", "review"))
    return config_lib.DataConfig(
        records_dir=records_dir,
        mode="review" if review else "image",
        features=keys,
        image_size=int(sidecar.get("image_size") or 224),
        max_len=int(sidecar.get("max_len") or 200),
        global_batch_size=batch_size,
        augment=False,
    )


def family_of_class(class_name) -> str:
    """The model family (`tfaesthetic.config` registry) of an export's model class name."""
    for name in config_lib.families():
        if config_lib.get_family(name).model_class.split(":")[1] == class_name:
            return name
    return "mracnn"  # MRACNN-like models (image + tokens)


def evaluate_path(run_dir=None, export=None, records_dir=None, split="test", batch_size=None, protocol=None, *,
                  progress: bool = False, report_dir=None) -> tuple:
    """Evaluates a run directory or an export on a records split.

    Args:
        run_dir: a run directory (exclusive with `export`).
        export: an export version or model directory.
        records_dir: the records (default: the run's or the export's).
        split: "train", "val" or "test".
        batch_size: evaluation batch size (default: the run's, or 32).
        protocol: "cold" or "warm" split protocol of the review models (default:
            the run's, or "cold" for an export).
        progress: show count, rate and ETA while evaluating (`tfaesthetic.console.Progress`).
        report_dir: also write `report.md` + `report.html` there (`tfaesthetic.report`):
            the metrics tables, a gallery of the split's first images and, for a run
            directory, its training curves.

    Returns:
        `(results dict, readable table)`.
    """
    from tfaesthetic import trainer
    from tfaesthetic.data import records_info

    if bool(run_dir) == bool(export):
        raise config_lib.ConfigError(
            f"Give exactly one of --run_dir and --export. Received: --run_dir={run_dir} --export={export}"
        )
    if run_dir:
        config = config_lib.ExperimentConfig.load(os.path.join(run_dir, "config.json"))
        overrides = {}
        if records_dir:
            overrides["data.records_dir"] = records_dir
        if batch_size:
            overrides["data.global_batch_size"] = batch_size
        if protocol:
            overrides["data.protocol"] = protocol
        config = config_lib.with_overrides(config, overrides)
        config_lib.validate(config)
        manifest = records_info.read_manifest(config.data.records_dir)
        task = trainer.make_task(config, manifest)
        model = trainer.load_run_model(run_dir)
        results, table = _evaluate(task, model, config, manifest, split, progress)
        if report_dir:
            _write_report(report_dir, model, config, manifest, split, results, f"run {os.path.abspath(run_dir)}",
                          history_of=run_dir)
        return results, table

    from tfaesthetic.serving.export import check_export_matches_records, latest_version_dir

    if not records_dir:
        raise config_lib.ConfigError(f"Name the records to evaluate the export on. Received: --export={export} without --records")
    model = ExportedModel(latest_version_dir(export))
    sidecar = model.sidecar
    manifest = records_info.read_manifest(records_dir)
    check_export_matches_records(sidecar, manifest, records_dir)  # tfaesthetic.serving.export
    data_config = _data_config_for_export(sidecar, records_dir, batch_size or 32)
    if protocol:
        data_config.protocol = protocol
    name = family_of_class(sidecar.get("model_class"))
    config = config_lib.ExperimentConfig(data=data_config, model=config_lib.ModelConfig(name=name))
    config.model.variant = (sidecar.get("model_config") or {}).get("variant") or config_lib.get_family(name).default_variant
    config_lib.validate(config)
    task = trainer.make_task(config, manifest)
    results, table = _evaluate(task, model, config, manifest, split, progress)
    if report_dir:
        _write_report(report_dir, model, config, manifest, split, results, f"export {model.path}")
    return results, table


def _evaluate(task, model, config, manifest, split, progress):
    from tfaesthetic import trainer

    if not progress:
        return task.evaluate(model, split)
    review = config_lib.MODES.get(config.model.name) == "review"
    total = int((manifest.get("reviews") or {}).get(split, 0)) if review else trainer.num_split_examples(manifest, split)
    with console.Progress(total, f"evaluate {split}", unit="review" if review else "image") as bar:
        return task.evaluate(console.ProgressModel(model, bar), split)


def _write_report(report_dir, model, config, manifest, split, results, source, history_of=None):
    from tfaesthetic import report
    from tfaesthetic import trainer

    history, best_epoch = None, None
    if history_of:
        state = trainer.RunState(os.path.join(history_of, "checkpoints"), write=False)
        if state.exists():
            state.load()
            history, best_epoch = state.history, state.best_epoch
    gallery = report.collect_gallery(model, config.data, manifest, split, n=4)
    return report.write_report(
        report_dir,
        title=f"{config.model.name.upper()} ({config.model.variant}) on {split} of {config.data.records_dir}",
        metrics=io.json_safe(results),
        config=config if history_of else None,
        history=history,
        best_epoch=best_epoch,
        gallery=gallery,
        manifest=manifest,
        facts=[("model", source), ("records", os.path.abspath(config.data.records_dir)), ("split", split)],
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    console.quiet_startup()  # before TensorFlow is imported

    return console.run_cli(_main, exit_codes=[(config_lib.ConfigError, 2), (FileNotFoundError, 2)])


def _main() -> int:
    results, table = evaluate_path(
        _RUN_DIR.value, _EXPORT.value, _RECORDS.value, _SPLIT.value, _BATCH.value, _PROTOCOL.value,
        progress=True, report_dir=_REPORT_DIR.value,
    )
    base = _RUN_DIR.value or _EXPORT.value
    output = _OUTPUT.value or os.path.join(base, f"evaluation-{_SPLIT.value}.json")
    payload = {
        "source": os.path.abspath(base),
        "kind": "run" if _RUN_DIR.value else "export",
        "split": _SPLIT.value,
        "records": _RECORDS.value,
        "metrics": io.json_safe(results),
    }
    with open(output, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
    print(table)
    print()
    print(f"Metrics JSON: {output}")
    if _REPORT_DIR.value:
        print(f"Report:       {os.path.join(_REPORT_DIR.value, 'report.md')}")
    return 0


if __name__ == "__main__":
    app.run(main)
