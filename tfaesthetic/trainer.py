"""Training and evaluation of one experiment: `train_and_evaluate(config, run_dir)`.

One call does the whole job the `python -m tfaesthetic.train` CLI promises:

1. resolves and validates the config against the records' manifest (before any
   training), writes it to `run_dir/config.json`;
2. creates the distribution strategy once ("default", "mirrored", "multi_worker");
3. builds the datasets outside the strategy scope with the global batch size, and
   the model (sizes from the manifest) and its optimizer inside it;
4. trains with `Model.fit` (or, under `MultiWorkerMirroredStrategy`, whose `fit`
   Keras 3 does not support - keras-team/keras#20585 - with the custom distributed
   loop of `tfaesthetic.training.multi_worker`), with TensorBoard logs, a progress bar, the
   papers' learning-rate schedules, early stopping on the validation loss and an
   epoch checkpoint that makes the run resumable; with `--feature_cache` (MRACNN,
   frozen backbone) the backbone's maps are written once and `fit` trains the
   model's head (same layers, same optimizer) from them, while checkpoints,
   evaluation and export use the full model;
5. evaluates the best epoch's weights on the test split with the metrics modules
   and writes `run_dir/metrics.json` (+ a readable `metrics.txt`);
6. exports a SavedModel for TF Serving (chief only).

Run directory layout:

    run_dir/config.json              resolved config (written at start)
    run_dir/checkpoints/state.json   completed epochs, history, best epoch, patience
    run_dir/checkpoints/epoch-NNNN.weights.h5   last completed epoch (model + optimizer)
    run_dir/checkpoints/best.weights.h5         lowest validation loss so far
    run_dir/logs/                    TensorBoard
    run_dir/model.keras              the final (best) model
    run_dir/metrics.json, metrics.txt   test-split evaluation
    run_dir/report.md, report.html, report_files/   the report (`report=True`)
    run_dir/logs/images/             TensorBoard gallery of validation images (`tb_images=True`)
    run_dir/.lock                    held (flock) by the training process, with its pid/host
    <export_dir>/<model>/<version>/  SavedModel (export_dir defaults to run_dir/export)

Before anything is written, `prepare_config` checks the config against the records:
step counts >= 1 when given, a batch no larger than the training split (an epoch of
zero steps is refused, never reported as success), `--param` names and values (the
model class is built once on the tiny backbone). One process trains in a run
directory at a time (`RunLock`; a second fails with `RunDirLocked` naming the holder).

Resume: every checkpoint file is written under a temporary name and renamed, and
`state.json` (which names the weights file) is replaced last, so a run killed at any
point restarts, with the same `run_dir`, from its last completed epoch - with the
optimizer state, the learning-rate schedule position and the early-stopping patience
counter restored - and stops at the configured number of epochs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfaesthetic import config as config_lib
from tfaesthetic.serving import export as export_lib
from tfaesthetic import io
from tfaesthetic import models  # noqa: F401  (registers the custom objects `load_run_model` reads)
from tfaesthetic import report as report_lib
from tfaesthetic.data import feature_cache as fc
from tfaesthetic.data import records_info
from tfaesthetic.training import multi_worker
# The public names of the training package, re-exported: `trainer` is the one module
# a caller (CLI, tuner, test) needs.
from tfaesthetic.training.datasets import build_datasets, num_batches, num_split_examples, with_known_length  # noqa: F401
from tfaesthetic.training.optimization import learning_rate_at_epoch, make_optimizer  # noqa: F401
from tfaesthetic.training.runtime import configure_logical_devices, create_strategy, is_chief, is_multi_worker  # noqa: F401
from tfaesthetic.training.state import (  # noqa: F401
    BEST_WEIGHTS, LOCK_FILE, STATE_FILE, RunDirLocked, RunLock, RunState, RunStateCallback, lock_run_dir, unlock_run_dir,
)
from tfaesthetic.training.tasks import (  # noqa: F401
    CFANTask, MRACNNTask, ReviewTask, Task, compile_model, format_ranking_table, input_keys, make_task, model_class,
    plain_copy,
)

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
METRICS_TABLE = "metrics.txt"



































def prepare_config(config: config_lib.ExperimentConfig, environ=None) -> tuple:
    """Resolves and validates a config against its records; returns (config, manifest)."""
    config_lib.validate(config, environ=environ)
    config = config_lib.resolve(config)
    manifest = records_info.read_manifest(config.data.records_dir)
    config_lib.validate(config, manifest=manifest, environ=environ)
    _check_model_params(config)
    _check_budgets(config, manifest)
    _check_param_values(config, manifest)
    return config, manifest


def _check_model_params(config) -> None:
    """Unknown model hyperparameters (`--param`) fail before training, naming them."""
    config_lib.check_model_params(config)


def _check_budgets(config, manifest) -> None:
    """Step counts and the batch size against the records, before any work (never zero steps)."""
    t, d = config.trainer, config.data
    for flag, value in (("--steps_per_epoch", t.steps_per_epoch), ("--validation_steps", t.validation_steps)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise config_lib.ConfigError(
                f"Expected a positive integer (or no flag: one pass over the split). Received: {flag}={value}"
            )
    if (t.early_stopping_patience or 0) < 0:
        raise config_lib.ConfigError(
            f"Expected --patience >= 0 (0 disables early stopping). Received: --patience={t.early_stopping_patience}"
        )
    review = config_lib.MODES.get(config.model.name) == "review"
    unit = "rated reviews" if review else "images"
    if review and manifest.get("reviews") is None:
        return
    n_train = int((manifest.get("reviews") if review else manifest.get("splits", {})).get("train", 0))
    batch = int(d.global_batch_size)
    if n_train and batch > n_train:
        raise config_lib.ConfigError(
            f"--batch_size={batch} is larger than the training split ({n_train} {unit} in {d.records_dir}): "
            f"an epoch would run zero training steps. Use --batch_size={n_train} or less."
        )


def _check_param_values(config, manifest) -> None:
    """`--param` values the model refuses fail here, before the run directory exists.

    Builds the model class once with the given hyperparameters on the tiny backbone
    at 32 px without word vectors (about a second), so constructor checks such as
    `recurrences >= 1` run. Skipped without `--param` and under multi_worker (no op
    may run before its strategy exists).
    """
    if not config.model.params or config.runtime.strategy == "multi_worker":
        return
    probe = config_lib.with_overrides(
        config,
        {"model.backbone": "tiny", "model.weights": None, "model.embeddings": "", "data.image_size": 32,
         "data.max_len": min(int(config.data.max_len), 16)},
    )
    if config.runtime.num_logical_cpu_devices > 1:
        configure_logical_devices(config.runtime.num_logical_cpu_devices)
    try:
        make_task(probe, manifest).build_model()
    except (ValueError, TypeError) as e:
        reason = " ".join(str(e).split())
        params = config.model.params
        named = [k for k in params if re.search(rf"\b{re.escape(k)}\b", reason)] or list(params)
        given = " ".join(f"--param={k}={json.dumps(params[k])}" for k in named)
        raise config_lib.ConfigError(f"Invalid model hyperparameter {given}: {reason}") from None


class TrainResult:
    """What `train` returns.

    Attributes:
        model: the trained model (best epoch's weights when there was one), built
            for the current process (outside any multi-worker strategy).
        state: the run's `RunState`.
        config: the resolved config.
        manifest: the records' manifest.
        strategy: the strategy it trained under.
        chief: whether this process is the chief.
        run_dir: the run directory (absolute).
        work_dir: where this process wrote (the run directory, or a scratch
            directory on non-chief workers, removed by `train_and_evaluate`).
        seconds: wall time of the training.
        task: the `Task` (model family: builds, evaluates).
    """

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def train(
    config: config_lib.ExperimentConfig, run_dir: str, *, restore_best: bool = True, keep_lock: bool = False,
    tb_images: bool = False, strategy: Optional[tf.distribute.Strategy] = None,
) -> TrainResult:
    """Trains one experiment (the first half of `train_and_evaluate`).

    Leaves the global dtype policy at "mixed_float16" when the config asks for mixed
    precision (`train_and_evaluate` restores it).

    Args:
        config: the experiment config.
        run_dir: the run directory; an existing run there is resumed.
        restore_best: load the best epoch's weights (lowest validation loss) into
            the returned model; False keeps the last epoch's.
        keep_lock: return with the run-directory lock still held (`result.lock`;
            the caller releases it with `result.lock.release()`).
        tb_images: log attention overlays and predicted-vs-true distributions of
            a few validation images to `run_dir/logs/images` each epoch.
        strategy: a strategy to train under (tests, the tuner); default: the one
            `config.runtime` names, created here.

    Returns:
        A `TrainResult`.

    Raises:
        ConfigError: the config contradicts itself or its records (before the run
            directory is created).
        RunDirLocked: another process trains in `run_dir`.
    """
    config, manifest = prepare_config(config)
    # The strategy is created once, first (MultiWorkerMirroredStrategy must exist
    # before other TensorFlow ops run).
    strategy = strategy or create_strategy(config.runtime)
    chief = is_chief(strategy)
    run_dir = os.path.abspath(run_dir)
    # Non-chief workers write their (identical) files to a scratch directory.
    work_dir = run_dir if chief else tempfile.mkdtemp(prefix="tfaesthetic-worker-")
    lock = lock_run_dir(run_dir) if chief else None
    try:
        result = _train_locked(config, manifest, strategy, chief, run_dir, work_dir, restore_best, tb_images)
    except BaseException:
        unlock_run_dir(lock)
        raise
    if keep_lock:
        result.lock = lock
    else:
        unlock_run_dir(lock)
        result.lock = None
    return result


def _train_locked(config, manifest, strategy, chief, run_dir, work_dir, restore_best, tb_images) -> TrainResult:
    os.makedirs(work_dir, exist_ok=True)
    if chief:
        config_path = os.path.join(run_dir, "config.json")
        _check_same_experiment(config, config_path)
        config.save(config_path)
    keras.utils.set_random_seed(config.runtime.seed)
    if config.trainer.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    started = time.time()
    task = make_task(config, manifest)
    state = RunState(os.path.join(work_dir, "checkpoints"), patience=config.trainer.early_stopping_patience)
    if is_multi_worker(strategy):
        model = multi_worker.train_multi_worker(config, task, strategy, state, work_dir, chief=chief)
    else:
        model = _train_with_fit(config, task, strategy, state, work_dir, tb_images=tb_images)
    seconds = time.time() - started
    best = state.best_weights_path() if restore_best else None
    if best:
        model.load_weights(best)
    return TrainResult(
        model=model, state=state, config=config, manifest=manifest, strategy=strategy, chief=chief,
        run_dir=run_dir, work_dir=work_dir, seconds=seconds, task=task,
    )


def train_and_evaluate(
    config: config_lib.ExperimentConfig, run_dir: str, *, export: bool = True, report: bool = False,
    tb_images: bool = False, strategy: Optional[tf.distribute.Strategy] = None,
) -> dict:
    """Trains, evaluates on the test split and exports one experiment.

    Args:
        config: the experiment (`tfaesthetic.config.get_experiment(...)` plus overrides).
        run_dir: the run directory; an existing run there is resumed from its last
            completed epoch.
        export: export a SavedModel at the end (chief only).
        report: write `run_dir/report.md` + `report.html` (config, metrics tables,
            training curves, a gallery of test images; `tfaesthetic.report`).
        tb_images: log attention overlays and distributions of a few validation
            images to TensorBoard each epoch (`run_dir/logs/images`).
        strategy: a strategy to train under (tests, the tuner); default: the one
            `config.runtime` names.

    Returns:
        The final metrics, also written to `run_dir/metrics.json`:
        `{"test": <metrics of the test split>, "history": {...}, "epochs": n,
        "best_epoch": i, "stopped_early": bool, "export": path or None, ...}`, plus
        `"table"` (the readable metrics table, also in `run_dir/metrics.txt`).

    Raises:
        ConfigError: the config contradicts itself or its records (before training).
    """
    previous_policy = keras.config.dtype_policy()
    result = None
    try:
        result = train(config, run_dir, keep_lock=True, tb_images=tb_images, strategy=strategy)
        config, manifest, state, model = result.config, result.manifest, result.state, result.model
        if num_split_examples(manifest, "test"):
            results, table = result.task.evaluate(model, "test")
        else:
            results, table = {}, "(no test split)"
        summary = {
            "experiment": config.name,
            "model": config.model.name,
            "variant": config.model.variant,
            "test": io.json_safe(results),
            "epochs": state.epoch,
            "epochs_run": state.epochs_run,
            "best_epoch": state.best_epoch,
            "best_value": None if not np.isfinite(state.best_value) else state.best_value,
            "stopped_early": state.stopped_early,
            "history": state.history,
            "train_seconds": round(result.seconds, 1),
            "num_replicas": result.strategy.num_replicas_in_sync,
            "run_dir": result.run_dir,
            "logs": os.path.join(result.run_dir, "logs"),
            "model_file": os.path.join(result.run_dir, MODEL_FILE),
            "export": None,
            "chief": result.chief,
        }
        if result.chief:
            metrics_path = os.path.join(result.run_dir, METRICS_FILE)
            io.atomic_write_text(os.path.join(result.run_dir, METRICS_TABLE), table + "\n")
            io.atomic_write_text(metrics_path, json.dumps(summary, indent=2) + "\n")
            model.save(os.path.join(result.run_dir, MODEL_FILE))
            if export:
                summary["export"] = _export(model, config, result.run_dir)
                io.atomic_write_text(metrics_path, json.dumps(summary, indent=2) + "\n")
            if report:
                summary["report"] = _write_run_report(model, config, manifest, summary)
        summary["table"] = table
        return summary
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if result is not None:
            unlock_run_dir(result.lock)
        if result is not None and not result.chief:
            shutil.rmtree(result.work_dir, ignore_errors=True)


def _check_same_experiment(config, config_path):
    """Refuses to resume a run directory that holds a different model."""
    if not os.path.exists(config_path):
        return
    try:
        old = config_lib.ExperimentConfig.load(config_path)
    except (ValueError, OSError):
        return
    keys = (("model", "name"), ("model", "variant"), ("model", "backbone"), ("data", "image_size"), ("data", "protocol"))
    for section, key in keys:
        a, b = getattr(getattr(old, section), key), getattr(getattr(config, section), key)
        if a != b:
            flag = config_lib.FLAGS.get(f"{section}.{key}", f"{section}.{key}")
            raise config_lib.ConfigError(
                f"{config_path} was trained with {flag}={a}; cannot resume it with {flag}={b}. "
                "Use another --run_dir."
            )


def _train_with_fit(config, task, strategy, state, work_dir, *, tb_images=False):
    with strategy.scope():
        model = task.build_model()
        compile_model(model, task, config)
        if state.exists():
            state.load()
            model.optimizer.build(model.trainable_variables)
            state.restore_weights(model)
            print(f"Resuming {work_dir} after epoch {state.epoch} of {config.trainer.epochs}.")
    done = state.stopped_early or state.epoch >= config.trainer.epochs
    fit_model = model
    if config.data.feature_cache_dir and not done:
        fit_model, train_ds, val_ds = _feature_cache_fit(config, task, strategy, model)
    else:
        train_ds, val_ds = build_datasets(config, task, model)
    monitor = "val_loss" if val_ds is not None else "loss"
    if done:
        # A finished run: nothing to train (a larger --epochs continues it).
        print(f"Training already complete in {work_dir} ({state.epoch} epochs).")
    else:
        callbacks = [
            RunStateCallback(state, config.trainer, monitor, save_model=model if fit_model is not model else None),
            keras.callbacks.TensorBoard(log_dir=os.path.join(work_dir, "logs")),
        ]
        if tb_images and fit_model is model:
            gallery = report_lib.tensorboard_callback(
                model, config.data, task.manifest, os.path.join(work_dir, "logs", "images")
            )
            callbacks += [gallery] if gallery is not None else []
        fit_model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.trainer.epochs,
            initial_epoch=state.epoch,
            steps_per_epoch=config.trainer.steps_per_epoch,
            validation_steps=config.trainer.validation_steps if val_ds is not None else None,
            callbacks=callbacks,
            verbose=config.trainer.verbose,
            shuffle=False,  # the input pipeline shuffles; fit cannot shuffle a tf.data.Dataset
        )
    state.finish()
    if strategy.num_replicas_in_sync > 1 or strategy is not tf.distribute.get_strategy():
        return plain_copy(model, task, config)
    return model


def _feature_cache_fit(config, task, strategy, model) -> tuple:
    """The head of `model` and its cached-feature datasets: `(head, train, val or None)`.

    Writes the frozen backbone's feature maps to `--feature_cache` once (a cache
    that matches the records and the backbone's weights is reused, so a resumed
    run does not rebuild it). The head shares every layer with `model` and is
    compiled with `model`'s optimizer, so training it trains `model`, and the
    checkpoints (written from `model`) hold the full model with that optimizer.
    """
    if not getattr(model, "backbone_model", None) or model.backbone_model.trainable_weights:
        raise config_lib.ConfigError(
            "The feature cache needs a frozen image backbone. "
            f"Received: --feature_cache={config.data.feature_cache_dir} with --model={config.model.name} "
            f"--variant={config.model.variant}"
        )
    _, rebuilt = fc.ensure_feature_cache(
        config.data.feature_cache_dir, model.backbone_model, config.data, backbone_name=config.model.backbone
    )
    print(
        f"Feature cache {config.data.feature_cache_dir}: "
        + (f"written ({rebuilt[0]})." if rebuilt else "reused.")
    )
    with strategy.scope():
        head = fc.head_model(model)
        if not model.optimizer.built:
            # Built on the full model's variables so its checkpoints restore in order.
            model.optimizer.build(model.trainable_variables)
        losses, weights = task.losses(head)
        head.compile(
            optimizer=model.optimizer,
            loss=losses,
            loss_weights=weights,
            jit_compile=bool(config.trainer.jit_compile),
        )
    keys = tuple(head.input.keys())

    def select(features, labels):
        return {k: features[k] for k in keys}, labels

    train = fc.build_cached_dataset(config.data, True, split="train").map(select)
    val = None
    if num_split_examples(task.manifest, "val"):
        val = fc.build_cached_dataset(config.data, False, split="val").map(select)
    train, val = with_known_length(train, val, config, task.manifest)
    return head, train, val


def _write_run_report(model, config, manifest, summary) -> str:
    """`run_dir/report.md` (+ `report.html`, pictures) of a finished run; returns its path."""
    gallery = report_lib.collect_gallery(model, config.data, manifest, "test", n=4)
    facts = [
        ("epochs", summary["epochs"]),
        ("best epoch", summary["best_epoch"] + 1),
        ("stopped early", summary["stopped_early"]),
        ("train seconds", summary["train_seconds"]),
        ("replicas", summary["num_replicas"]),
        ("export", summary.get("export") or "none"),
    ]
    written = report_lib.write_report(
        summary["run_dir"],
        title=f"{config.name}: {config.model.name.upper()} ({config.model.variant}) on test",
        metrics=summary["test"],
        config=config,
        history=summary["history"],
        best_epoch=summary["best_epoch"],
        gallery=gallery,
        manifest=manifest,
        facts=facts,
    )
    return written["markdown"]


def _export(model, config, run_dir) -> Optional[str]:
    export_base = config.export_dir or os.path.join(run_dir, "export")
    return export_lib.export_model(model, config.data.records_dir, export_base, model_name=config.model.name)


def load_run_model(run_dir: str) -> keras.Model:
    """The trained model of a run directory: `model.keras`, else config + weights.

    Falls back to rebuilding the model from `config.json` and loading the best (or
    the last completed epoch's) weights, for runs that were interrupted.
    """
    path = os.path.join(run_dir, MODEL_FILE)
    if os.path.exists(path):
        return keras.saving.load_model(path, compile=False)
    config = config_lib.ExperimentConfig.load(os.path.join(run_dir, "config.json"))
    manifest = records_info.read_manifest(config.data.records_dir)
    task = make_task(config, manifest)
    model = task.build_model()
    compile_model(model, task, config)
    model.optimizer.build(model.trainable_variables)
    state = RunState(os.path.join(run_dir, "checkpoints"), write=False)
    if not state.exists():
        raise FileNotFoundError(f"No {MODEL_FILE} and no checkpoint in the run directory. Received: {run_dir}")
    state.load()
    best = state.best_weights_path()
    model.load_weights(best or os.path.join(state.checkpoint_dir, state.weights))
    return model
