"""Training and evaluation of one experiment: `train_and_evaluate(config, run_dir)`.

One call does the whole job the `python -m tfaesthetic.train` CLI promises:

1. resolves and validates the config against the records' manifest (before any
   training), writes it to `run_dir/config.json`;
2. creates the distribution strategy once ("default", "mirrored", "multi_worker");
3. builds the datasets outside the strategy scope with the global batch size, and
   the model (sizes from the manifest) and its optimizer inside it;
4. trains with `Model.fit` (or, under `MultiWorkerMirroredStrategy`, whose `fit`
   Keras 3 does not support - keras-team/keras#20585 - with the custom distributed
   loop of `tfaesthetic.distributed`), with TensorBoard logs, a progress bar, the
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

import fcntl
import inspect
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from tfaesthetic import config as config_lib

STATE_FILE = "state.json"
BEST_WEIGHTS = "best.weights.h5"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
METRICS_TABLE = "metrics.txt"


# ---------------------------------------------------------------------------------------
# Devices and strategies.


def configure_logical_devices(num_cpu_devices: int) -> None:
    """Splits the host CPU into `num_cpu_devices` logical devices.

    Must run before TensorFlow initialises its devices (i.e. before the first op).

    Args:
        num_cpu_devices: number of logical CPU devices (> 1 to have any effect).

    Raises:
        RuntimeError: the devices were already initialised with another count.
    """
    if num_cpu_devices <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_cpu_devices)]
        )
    except RuntimeError as e:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != num_cpu_devices:
            raise RuntimeError(
                f"Cannot split the CPU into {num_cpu_devices} logical devices: TensorFlow already "
                f"initialised {have}. Configure the devices before any TensorFlow op. ({e})"
            ) from e


def create_strategy(runtime: config_lib.RuntimeConfig) -> tf.distribute.Strategy:
    """Creates the distribution strategy named by `runtime.strategy`.

    Args:
        runtime: "default" gives the default (single-device) strategy; "mirrored" a
            `MirroredStrategy` over all local GPUs, or over the logical CPU devices
            when there is no GPU and `num_logical_cpu_devices > 1`; "multi_worker" a
            `MultiWorkerMirroredStrategy` configured from `TF_CONFIG`.

    Returns:
        The strategy.
    """
    if runtime.strategy == "default":
        return tf.distribute.get_strategy()
    if runtime.strategy == "mirrored":
        configure_logical_devices(runtime.num_logical_cpu_devices)
        if not tf.config.list_logical_devices("GPU") and runtime.num_logical_cpu_devices > 1:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            return tf.distribute.MirroredStrategy(devices=devices)
        return tf.distribute.MirroredStrategy()
    if runtime.strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise config_lib.ConfigError(
        f"Unknown strategy. Expected one of {config_lib.STRATEGIES}. Received: --strategy={runtime.strategy}"
    )


def is_multi_worker(strategy) -> bool:
    """Whether `strategy` spans several workers (needs the custom training loop)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints, logs, metrics and the export.

    The chief is the `chief` task, or worker 0 when the cluster has no chief; every
    process is the chief of a single-worker strategy.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not is_multi_worker(strategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


# ---------------------------------------------------------------------------------------
# Optimisation.


def learning_rate_at_epoch(trainer: config_lib.TrainerConfig, epoch: int) -> float:
    """Learning rate of an epoch under the "step_epochs" schedule (else the base rate).

    Seed 003 §IV-B: 1e-3 divided by 10 every 10 epochs, i.e.
    `lr * decay_rate ** (epoch // decay_every)` with 0-based epochs.
    """
    if trainer.schedule != "step_epochs":
        return float(trainer.learning_rate)
    return float(trainer.learning_rate * trainer.decay_rate ** (epoch // trainer.decay_every))


def make_optimizer(trainer: config_lib.TrainerConfig) -> keras.optimizers.Optimizer:
    """The optimizer and learning-rate schedule of `trainer`.

    "exponential_steps" is a staircase `ExponentialDecay` on the optimizer's step
    counter (seed 000: 0.005 × 0.99 every 1000 steps), so it resumes with the
    restored `optimizer.iterations`; "step_epochs" starts at the base rate and is set
    per epoch by the training loop (`learning_rate_at_epoch`).
    """
    if trainer.schedule == "exponential_steps":
        lr = keras.optimizers.schedules.ExponentialDecay(
            trainer.learning_rate, decay_steps=trainer.decay_every, decay_rate=trainer.decay_rate, staircase=True
        )
    else:
        lr = float(trainer.learning_rate)
    if trainer.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr, beta_1=trainer.beta_1, beta_2=trainer.beta_2)
    if trainer.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=trainer.momentum)
    raise config_lib.ConfigError(
        f"Unknown optimizer. Expected one of {config_lib.OPTIMIZERS}. Received: --optimizer={trainer.optimizer}"
    )


# ---------------------------------------------------------------------------------------
# Models and their losses.


class Task:
    """How to build, train and evaluate one model family.

    Attributes:
        config: the resolved experiment config.
        manifest: the records' manifest.
    """

    def __init__(self, config: config_lib.ExperimentConfig, manifest: dict):
        self.config = config
        self.manifest = manifest

    @property
    def vocab_size(self) -> int:
        return int(self.manifest.get("vocab_size", 0))

    @property
    def num_bins(self) -> int:
        return int(self.manifest["score_scale"]["num_bins"])

    def vectors(self) -> Optional[np.ndarray]:
        """The word-vector matrix for the vocabulary, or None without `--embeddings`."""
        path = self.config.model.embeddings
        if not path:
            return None
        from tfaesthetic.layers.vectors import load_vectors

        words = _read_vocabulary_words(self.config.data.records_dir)
        matrix, report = load_vectors(path, words)
        print(f"Word vectors from {path}: {report}")
        return matrix

    def build_model(self) -> keras.Model:
        raise NotImplementedError

    def losses(self, model) -> tuple[dict, dict]:
        """(losses by output name, loss weights by output name)."""
        if hasattr(model, "default_losses"):
            losses = model.default_losses()
            weights = model.default_loss_weights() if hasattr(model, "default_loss_weights") else {}
            return losses, {k: float(weights.get(k, 1.0)) for k in losses}
        raise NotImplementedError

    def batch_fn(self, model):
        """`fn(features, labels) -> (features, labels)` for `Dataset.map`.

        Keeps the features the model reads (and, through the model's own
        `prepare_batch` where it has one, the labels its losses and metrics use).
        """
        if hasattr(model, "prepare_batch"):
            return model.prepare_batch
        input_keys = tuple(_input_keys(model))

        def fn(features, labels):
            return {k: features[k] for k in input_keys}, labels

        return fn

    def evaluate(self, model, split: str) -> tuple[dict, str]:
        """Metrics dict and readable table of `model` on a records split."""
        raise NotImplementedError


def _input_keys(model):
    keys = getattr(model, "input_keys", None)
    if keys:
        return keys
    return tuple(model.input.keys()) if isinstance(model.input, dict) else tuple(model.input_names)


def _read_vocabulary_words(records_dir: str) -> list:
    from tfaesthetic.records import writer

    path = os.path.join(records_dir, writer.VOCAB_FILE)
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def _read_tag_names(records_dir: str) -> Optional[list]:
    from tfaesthetic.records import writer

    path = os.path.join(records_dir, writer.TAGS_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if rows and rows[0][0] in ("index", "id", "tag_id"):  # header line
        rows = rows[1:]
    return [row[-1] for row in rows]


class MRACNNTask(Task):
    """MRACNN: score distribution, EMD loss (r = 2), seed 003 metrics."""

    def build_model(self):
        from tfaesthetic.models.mracnn import MRACNN

        m, d = self.config.model, self.config.data
        kwargs = dict(
            vocab_size=self.vocab_size,
            num_bins=self.num_bins,
            backbone=m.backbone,
            backbone_weights=m.weights or None,
            trainable_backbone=m.trainable_backbone,
            image_size=d.image_size,
            max_len=d.max_len,
            variant=m.variant,
        )
        kwargs.update(m.params)
        vectors = self.vectors()
        if vectors is not None:
            kwargs["embedding_dim"] = int(vectors.shape[1])
        model = MRACNN(**kwargs)
        if vectors is not None:
            # Seed 003 §IV-B1: GloVe-initialised, frozen word embeddings.
            model.initialize_embeddings(vectors, trainable=False)
        return model

    def losses(self, model):
        if hasattr(model, "default_losses"):
            return super().losses(model)
        from tfaesthetic.losses.emd import EMD

        return {"distribution": EMD(r=2)}, {"distribution": 1.0}

    def evaluate(self, model, split):
        from tfaesthetic import data
        from tfaesthetic.metrics import evaluation

        dataset = data.build_dataset(self.config.data, False, split=split, include_metadata=True)
        keys = tuple(_input_keys(model))
        dataset = dataset.map(lambda f, y, meta: ({k: f[k] for k in keys}, y, meta))
        results = evaluation.evaluate_model(
            model,
            dataset,
            scale=self.manifest["score_scale"],
            tag_names=_read_tag_names(self.config.data.records_dir),
        )
        table = evaluation.format_table(results, title=f"MRACNN ({self.config.model.variant}) on {split}")
        return results, table


class ReviewTask(Task):
    """CFAN / BPR / VBPR: one example per review, personalised metrics per serving path (seed 000 §4)."""

    def image_kwargs(self) -> dict:
        m, d = self.config.model, self.config.data
        return dict(
            backbone=m.backbone,
            backbone_weights=m.weights or None,
            backbone_trainable=m.trainable_backbone,
            image_size=d.image_size if config_lib.uses_images(m) else None,
        )

    def build_model(self):
        m = self.config.model
        kwargs = {} if m.name == "bpr" else self.image_kwargs()
        kwargs.update(m.params)
        return model_class(m.name).from_manifest(self.manifest, **kwargs)

    def evaluate(self, model, split):
        from tfaesthetic import data
        from tfaesthetic.metrics import ranking

        dataset = data.build_dataset(self.config.data, False, split=split, include_metadata=True)
        results = ranking.evaluate_personalised(
            model,
            dataset,
            num_users=int(self.manifest["num_users"]),
            num_train_images=int(self.manifest.get("num_train_images", self.manifest.get("num_images"))),
        )
        results["protocol"] = getattr(self.config.data, "protocol", "cold")
        title = (
            f"{self.config.model.name.upper()} ({self.config.model.variant}) on {split}, "
            f"{results['protocol']} protocol"
        )
        return results, format_ranking_table(results, title, _read_tag_names(self.config.data.records_dir))


class CFANTask(ReviewTask):
    """CFAN and its CFN variants (seed 000)."""

    def build_model(self):
        from tfaesthetic.models.cfan import CFAN

        m, d = self.config.model, self.config.data
        kwargs = dict(self.image_kwargs(), variant=m.variant, max_len=d.max_len)
        vectors = self.vectors()
        if vectors is not None:
            kwargs["review_vectors"] = vectors
            kwargs["embedding_dim"] = int(vectors.shape[1])
            kwargs["freeze_embeddings"] = True
        kwargs.update(m.params)
        return CFAN.from_manifest(self.manifest, **kwargs)


_PATH_TITLES = {
    "with_review": "with review",
    "no_review": "without review",
    "agnostic": "user-agnostic",
    "unknown_user": "unknown user",
}


def format_ranking_table(results: dict, title: str = "", tag_names=None) -> str:
    """A readable table of `evaluate_personalised` results: one column per serving path, then per tag."""
    from tfaesthetic.metrics.ranking import PATH_DESCRIPTIONS, PATHS

    lines = [title, ""] if title else []
    paths = [p for p in PATHS if results.get(p)]
    lines += ["| metric | " + " | ".join(_PATH_TITLES[p] for p in paths) + " |", "|---|" + "---:|" * len(paths)]
    for key, label in (("auc", "AUC"), ("per_user_auc", "per-user AUC"), ("users_evaluated", "users evaluated"),
                       ("rating_accuracy", "rating accuracy")):
        lines.append(f"| {label} | " + " | ".join(_fmt(results[p].get(key)) for p in paths) + " |")
    agnostic = results.get("agnostic")
    lines.append("")
    if agnostic:
        lines.append(
            f"user-agnostic accuracy (per image, {agnostic['images']} images): {_fmt(agnostic['accuracy'])} "
            f"(majority class {_fmt(agnostic['majority_accuracy'])})"
        )
    if results.get("tag"):
        tag = results["tag"]
        lines.append(f"tag accuracy ({tag['images']} images): {_fmt(tag['accuracy'])} (most frequent tag {_fmt(tag['majority_accuracy'])})")
    lines.append(
        f"examples: {results.get('num_examples')} ({results.get('known_user_examples')} by known users); "
        f"OOV images: {results.get('oov_images')}, OOV users: {results.get('oov_users')}"
    )
    lines += ["", "Paths:"] + [f"- {_PATH_TITLES[p]}: {PATH_DESCRIPTIONS[p]}" for p in paths]
    per_tag = (agnostic or {}).get("accuracy_per_tag") or {}
    if per_tag:
        lines += ["", "| tag | n | user-agnostic accuracy (%) |", "|---|---:|---:|"]
        for tag, row in per_tag.items():
            name = tag
            if tag_names is not None and str(tag).lstrip("-").isdigit() and 0 <= int(tag) < len(tag_names):
                name = tag_names[int(tag)]
            lines.append(f"| {name} | {row.get('count', '')} | {100.0 * float(row['accuracy']):.2f} |")
    return "\n".join(lines)


def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if np.isnan(value) else f"{value:.4f}"
    if isinstance(value, (tuple, list)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def make_task(config: config_lib.ExperimentConfig, manifest: dict) -> Task:
    """The `Task` of the config's model family (`tfaesthetic.config` registry)."""
    return config_lib.get_family(config.model.name).load_task()(config, manifest)


# ---------------------------------------------------------------------------------------
# Datasets.


def num_split_examples(manifest: dict, split: str) -> int:
    """Images in a split according to the manifest."""
    return int((manifest.get("splits") or {}).get(split, 0))


def build_datasets(config, task: Task, model, *, input_context=None) -> tuple:
    """(train, val or None) datasets of `(features, labels)` for `model`, global batch size.

    Call outside the strategy scope (the model only names the inputs and outputs).
    """
    from tfaesthetic import data

    fn = task.batch_fn(model)

    def prepare(ds):
        return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)

    train = prepare(data.build_dataset(config.data, True, split="train", input_context=input_context))
    val = None
    if num_split_examples(task.manifest, "val"):
        val = prepare(data.build_dataset(config.data, False, split="val", input_context=input_context))
    return _with_known_length(train, val, config, task.manifest, input_context)


def num_batches(config, manifest: dict, split: str, *, training: bool) -> Optional[int]:
    """Batches in one pass over `split` at the global batch size (None if the manifest cannot tell).

    Training batches drop the remainder (`build_dataset(is_training=True)`); evaluation
    batches keep it.
    """
    mode = config_lib.MODES.get(config.model.name, getattr(config.data, "mode", "image"))
    try:
        if mode == "review":
            reviews = manifest.get("reviews")
            if reviews is None:
                return None
            n = int(reviews.get(split, 0))
        else:
            n = num_split_examples(manifest, split)
    except (TypeError, ValueError):
        return None
    batch = int(config.data.global_batch_size)
    return n // batch if training else math.ceil(n / batch)


def _with_known_length(train, val, config, manifest, input_context=None) -> tuple:
    """Gives `fit` what it expects: a repeated dataset for a fixed step count, else a known length.

    With `--steps_per_epoch` (`--validation_steps`) the dataset repeats and epochs
    continue through it; without, one epoch is one pass and the dataset carries its
    length (`assert_cardinality`, from the manifest's counts), so Keras neither runs
    into the end of the data nor warns that it did.
    """
    sharded = input_context is not None and input_context.num_input_pipelines > 1
    if config.trainer.steps_per_epoch:
        train = train.repeat()  # epochs of a fixed step count continue through the data
    elif not sharded:
        n = num_batches(config, manifest, "train", training=True)
        if n:
            train = train.apply(tf.data.experimental.assert_cardinality(n))
    if val is not None:
        if config.trainer.validation_steps:
            val = val.repeat()
        elif not sharded:
            n = num_batches(config, manifest, "val", training=False)
            if n:
                val = val.apply(tf.data.experimental.assert_cardinality(n))
    return train, val


# ---------------------------------------------------------------------------------------
# Resumable run state: epoch checkpoint, history, best epoch, early stopping.


def _atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_save_weights(model, path: str) -> None:
    # Keras wants the ".weights.h5" suffix: write "<dir>/tmp-<pid>-<name>", then rename.
    tmp = os.path.join(os.path.dirname(path), f"tmp-{os.getpid()}-{os.path.basename(path)}")
    model.save_weights(tmp, overwrite=True)
    os.replace(tmp, path)


class RunState:
    """The resumable part of a run, kept in `<checkpoint_dir>/state.json`.

    Attributes:
        checkpoint_dir: where the state and the weight files live.
        epoch: number of completed epochs.
        weights: file name (in `checkpoint_dir`) of the last completed epoch's weights.
        history: per-epoch logs, `{"loss": [...], "val_loss": [...], ...}`.
        epochs_run: the 0-based epoch indices trained, in order, by every process
            that worked on this run (shows a resume continued instead of restarting).
        best_value: lowest monitored value so far (validation loss, or the training
            loss without a validation split).
        best_epoch: its 0-based epoch, -1 before the first epoch.
        wait: epochs since the last improvement (early stopping).
        stopped_early: early stopping ended the run.
        completed: the last process working on the run finished training (all
            configured epochs, or stopped early); a restart with more epochs continues.
    """

    def __init__(self, checkpoint_dir: str, *, patience: int = 5, write: bool = True):
        self.checkpoint_dir = checkpoint_dir
        self.patience = patience
        self.write = write
        self.epoch = 0
        self.weights = ""
        self.history: dict = {}
        self.epochs_run: list = []
        self.best_value = float("inf")
        self.best_epoch = -1
        self.wait = 0
        self.stopped_early = False
        self.completed = False
        os.makedirs(checkpoint_dir, exist_ok=True)

    @property
    def path(self) -> str:
        return os.path.join(self.checkpoint_dir, STATE_FILE)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def load(self) -> "RunState":
        with open(self.path, encoding="utf-8") as f:
            d = json.load(f)
        for key in ("epoch", "weights", "history", "epochs_run", "best_epoch", "wait", "stopped_early", "completed"):
            setattr(self, key, d[key])
        self.best_value = float("inf") if d["best_value"] is None else float(d["best_value"])
        return self

    def to_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "weights": self.weights,
            "history": self.history,
            "epochs_run": self.epochs_run,
            "best_value": None if not np.isfinite(self.best_value) else self.best_value,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_early": self.stopped_early,
            "completed": self.completed,
        }

    def save(self) -> None:
        if self.write:
            _atomic_write_text(self.path, json.dumps(self.to_dict(), indent=1))

    def restore_weights(self, model) -> None:
        """Loads the last completed epoch's weights (model + optimizer) into `model`."""
        model.load_weights(os.path.join(self.checkpoint_dir, self.weights))

    def end_epoch(self, model, epoch: int, logs: dict, monitor: str) -> bool:
        """Records a completed epoch and writes the checkpoint; returns True to stop.

        Order of writes: best weights, epoch weights, then `state.json` (the commit
        point); the previous epoch's weights file is removed only afterwards.
        """
        logs = {k: float(v) for k, v in (logs or {}).items()}
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        self.epochs_run.append(int(epoch))
        value = logs.get(monitor, logs.get("loss", float("nan")))
        if np.isfinite(value) and value < self.best_value:
            self.best_value, self.best_epoch, self.wait = float(value), int(epoch), 0
            if self.write:
                _atomic_save_weights(model, os.path.join(self.checkpoint_dir, BEST_WEIGHTS))
        else:
            self.wait += 1
        self.stopped_early = bool(self.patience and self.wait >= self.patience)
        self.epoch = int(epoch) + 1
        self.weights = f"epoch-{self.epoch:04d}.weights.h5"
        if self.write:
            _atomic_save_weights(model, os.path.join(self.checkpoint_dir, self.weights))
        self.save()
        if self.write:
            # Older epochs (and partial files of a process killed mid-write) go only
            # after the new state is committed.
            for name in os.listdir(self.checkpoint_dir):
                stale = name.startswith("epoch-") and name.endswith(".weights.h5") and name != self.weights
                if stale or name.startswith("tmp-"):
                    try:
                        os.remove(os.path.join(self.checkpoint_dir, name))
                    except FileNotFoundError:
                        pass
        return self.stopped_early

    def finish(self) -> None:
        self.completed = True
        self.save()

    def best_weights_path(self) -> Optional[str]:
        path = os.path.join(self.checkpoint_dir, BEST_WEIGHTS)
        return path if self.best_epoch >= 0 and os.path.exists(path) else None


class RunStateCallback(keras.callbacks.Callback):
    """Keras callback around `RunState`: step learning rate, checkpoint, early stopping.

    Args:
        state: the run state.
        trainer: the trainer config (for the "step_epochs" schedule).
        monitor: the logged value early stopping and the best checkpoint watch.
        save_model: the model whose weights the checkpoints hold, when it is not
            the one being fitted (the full MRACNN while its head trains from the
            feature cache; both share one optimizer). Default: the fitted model.
    """

    def __init__(self, state: RunState, trainer: config_lib.TrainerConfig, monitor: str, save_model=None):
        super().__init__()
        self.state = state
        self.trainer = trainer
        self.monitor = monitor
        self.save_model = save_model

    def on_epoch_begin(self, epoch, logs=None):
        if self.trainer.schedule == "step_epochs":
            self.model.optimizer.learning_rate = learning_rate_at_epoch(self.trainer, epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.state.end_epoch(self.save_model or self.model, epoch, logs, self.monitor):
            print(
                f"\nEarly stopping: {self.monitor} has not improved for {self.state.wait} epochs "
                f"(best {self.state.best_value:.4f} at epoch {self.state.best_epoch + 1})."
            )
            self.model.stop_training = True


# ---------------------------------------------------------------------------------------
# Run-directory lock: one training process per run directory.

LOCK_FILE = ".lock"


class RunDirLocked(RuntimeError):
    """Another process holds the run directory (the message names its pid and host)."""


_HELD_LOCKS: dict = {}  # run_dir -> RunLock held by this process


class RunLock:
    """An exclusive `fcntl.flock` on `run_dir/.lock`, with the holder's pid and host in the file.

    Held by the chief from before `config.json` is written until the export is
    written; a second process on the same run directory fails at once. The kernel
    drops the lock when the holder exits, however it exits, so a killed run never
    leaves a stale lock (the file stays, it is not the lock). `flock` is local to one
    machine (and unreliable on some network file systems).

    Args:
        run_dir: the run directory (created).
    """

    def __init__(self, run_dir: str):
        self.run_dir = os.path.abspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK_FILE)
        self._fd = None

    def acquire(self) -> "RunLock":
        os.makedirs(self.run_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder()
            raise RunDirLocked(
                f"Run directory {self.run_dir} is in use by another training (pid {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')}, started {holder.get('started', '?')}). Wait for it to finish, stop it, "
                "or pass another --run_dir."
            ) from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.write(fd, (json.dumps(info) + "\n").encode("utf-8"))
        os.fsync(fd)
        self._fd = fd
        return self

    def holder(self, attempts: int = 20) -> dict:
        """The pid/host the lock file names (waits briefly while the holder writes it)."""
        for _ in range(attempts):
            try:
                with open(self.path, encoding="utf-8") as f:
                    text = f.read().strip()
                if text:
                    return json.loads(text)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        return {}

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _lock_run_dir(run_dir: str) -> Optional[RunLock]:
    """Locks `run_dir` unless this process holds it already; returns the new lock or None."""
    key = os.path.abspath(run_dir)
    if key in _HELD_LOCKS:
        return None
    lock = RunLock(key).acquire()
    _HELD_LOCKS[key] = lock
    return lock


def _unlock_run_dir(lock: Optional[RunLock]) -> None:
    if lock is not None:
        _HELD_LOCKS.pop(lock.run_dir, None)
        lock.release()


# ---------------------------------------------------------------------------------------
# The experiment.


def _read_manifest(records_dir: str) -> dict:
    from tfaesthetic.records.writer import read_manifest

    if not os.path.exists(os.path.join(records_dir, "manifest.json")):
        raise config_lib.ConfigError(f"No manifest.json in the records directory. Received: --records={records_dir}")
    try:
        return read_manifest(records_dir)
    except ValueError as e:
        raise config_lib.ConfigError(f"Unreadable records. Received: --records={records_dir} ({e})") from e


def prepare_config(config: config_lib.ExperimentConfig, environ=None) -> tuple:
    """Resolves and validates a config against its records; returns (config, manifest)."""
    config_lib.validate(config, environ=environ)
    config = config_lib.resolve(config)
    manifest = _read_manifest(config.data.records_dir)
    config_lib.validate(config, manifest=manifest, environ=environ)
    _check_model_params(config)
    _check_budgets(config, manifest)
    _check_param_values(config, manifest)
    if config.data.feature_cache_dir:
        from tfaesthetic import data

        # The input pipeline declares when it reads cached backbone features; never
        # accept the flag and silently train from pixels.
        if not getattr(data, "SUPPORTS_FEATURE_CACHE", False):
            raise config_lib.ConfigError(
                "This input pipeline does not read cached backbone features yet. "
                f"Received: --feature_cache={config.data.feature_cache_dir}"
            )
    return config, manifest


def model_class(name: str):
    """The Keras model class of a model family (`tfaesthetic.config` registry)."""
    return config_lib.get_family(name).load_model_class()


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


def compile_model(model, task: Task, config: config_lib.ExperimentConfig) -> None:
    """Compiles `model` with the task's losses and the trainer's optimizer (in scope)."""
    losses, weights = task.losses(model)
    kwargs = {}
    if hasattr(model, "default_metrics"):
        kwargs["metrics"] = model.default_metrics()
    if "scale" in inspect.signature(model.compile).parameters:
        kwargs["scale"] = task.manifest["score_scale"]  # MRACNN's distribution metrics
    model.compile(
        optimizer=make_optimizer(config.trainer),
        loss=losses,
        loss_weights=weights,
        jit_compile=bool(config.trainer.jit_compile),
        **kwargs,
    )


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
    tb_images: bool = False,
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
    strategy = create_strategy(config.runtime)
    chief = is_chief(strategy)
    run_dir = os.path.abspath(run_dir)
    # Non-chief workers write their (identical) files to a scratch directory.
    work_dir = run_dir if chief else tempfile.mkdtemp(prefix="tfaesthetic-worker-")
    lock = _lock_run_dir(run_dir) if chief else None
    try:
        result = _train_locked(config, manifest, strategy, chief, run_dir, work_dir, restore_best, tb_images)
    except BaseException:
        _unlock_run_dir(lock)
        raise
    if keep_lock:
        result.lock = lock
    else:
        _unlock_run_dir(lock)
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
        from tfaesthetic import distributed

        model = distributed.train_multi_worker(config, task, strategy, state, work_dir, chief=chief)
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
    tb_images: bool = False,
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
        result = train(config, run_dir, keep_lock=True, tb_images=tb_images)
        config, manifest, state, model = result.config, result.manifest, result.state, result.model
        if num_split_examples(manifest, "test"):
            results, table = result.task.evaluate(model, "test")
        else:
            results, table = {}, "(no test split)"
        summary = {
            "experiment": config.name,
            "model": config.model.name,
            "variant": config.model.variant,
            "test": _json_safe(results),
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
            _atomic_write_text(os.path.join(result.run_dir, METRICS_TABLE), table + "\n")
            _atomic_write_text(metrics_path, json.dumps(summary, indent=2) + "\n")
            model.save(os.path.join(result.run_dir, MODEL_FILE))
            if export:
                summary["export"] = _export(model, config, result.run_dir)
                _atomic_write_text(metrics_path, json.dumps(summary, indent=2) + "\n")
            if report:
                summary["report"] = _write_run_report(model, config, manifest, summary)
        summary["table"] = table
        return summary
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if result is not None:
            _unlock_run_dir(result.lock)
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


def plain_copy(model, task: Task, config) -> keras.Model:
    """A copy of a model trained under a strategy, built under the default strategy.

    Keras' `predict_on_batch` under a `MirroredStrategy` feeds the whole batch to
    every replica and concatenates their outputs; evaluation, saving and export use
    this copy instead (same weights, same optimizer state).
    """
    plain = task.build_model()
    compile_model(plain, task, config)
    plain.optimizer.build(plain.trainable_variables)
    for target, source in zip(plain.variables, model.variables):
        target.assign(keras.ops.convert_to_numpy(source))
    for target, source in zip(plain.optimizer.variables, model.optimizer.variables):
        target.assign(keras.ops.convert_to_numpy(source))
    return plain


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
            from tfaesthetic import report as report_lib

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
    from tfaesthetic.data import feature_cache as fc

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
    train, val = _with_known_length(train, val, config, task.manifest)
    return head, train, val


def _write_run_report(model, config, manifest, summary) -> str:
    """`run_dir/report.md` (+ `report.html`, pictures) of a finished run; returns its path."""
    from tfaesthetic import report as report_lib

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
    from tfaesthetic import export

    export_base = config.export_dir or os.path.join(run_dir, "export")
    return export.export_model(model, config.data.records_dir, export_base, model_name=config.model.name)


def _json_safe(obj: Any):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def load_run_model(run_dir: str) -> keras.Model:
    """The trained model of a run directory: `model.keras`, else config + weights.

    Falls back to rebuilding the model from `config.json` and loading the best (or
    the last completed epoch's) weights, for runs that were interrupted.
    """
    path = os.path.join(run_dir, MODEL_FILE)
    if os.path.exists(path):
        import tfaesthetic.models  # noqa: F401  (registers the custom objects)

        return keras.saving.load_model(path, compile=False)
    config = config_lib.ExperimentConfig.load(os.path.join(run_dir, "config.json"))
    manifest = _read_manifest(config.data.records_dir)
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
