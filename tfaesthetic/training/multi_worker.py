"""Custom distributed training loop for `tf.distribute.MultiWorkerMirroredStrategy`.

Keras 3 `Model.fit` does not run under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585), so several-machine training uses this loop instead. Each
step runs `strategy.run(step_fn)` on every replica of every worker:

- per-example losses (`Loss.call`, weighted per output) are summed and divided by
  the number of examples in the **global** batch (all-reduced, so a short batch is
  weighted exactly; `tf.nn.compute_average_loss` with the true count), and the
  model's regularisation losses are divided by the number of replicas
  (`tf.nn.scale_regularization_loss`);
- the Keras 3 optimizer is applied in the replica context: its TensorFlow backend
  sums the gradients over all replicas (`all_reduce(SUM)`) and updates the mirrored
  variables once (`merge_call`), so every worker ends each step with identical
  weights;
- losses and example counts are reduced with `strategy.reduce(SUM)`, so the logged
  training and validation losses are those of the whole cluster (with several
  outputs, each output's unweighted loss too, logged as `<output>_loss` like `fit`);
- the model's compiled metrics (MRACNN's accuracy, SRCC, PLCC, MAE, RMSE, EMD;
  CFAN's AUC and accuracy) are updated in the replica step with `compute_metrics`.
  Their state variables are sum-aggregated on-read variables: each replica adds its
  examples to its own copy, and reading them after the epoch in cross-replica
  context sums every replica of every worker, so each worker logs the metric of the
  whole split the cluster saw (`accuracy`, `val_accuracy`, ... as `Model.fit` does).

Checkpoints follow `tfaesthetic.training.state.RunState`: the chief writes them to the run
directory, the other workers to a scratch directory (deleted at the end). On resume
the chief loads its last checkpoint and **broadcasts** every model and optimizer
variable, and the run state (epoch, best value, patience), to the other workers with
an all-reduce (`value` on replica 0, zeros elsewhere), so the workers need no shared
file system.
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfaesthetic.training.datasets import build_datasets
from tfaesthetic.training.optimization import learning_rate_at_epoch
from tfaesthetic.training.state import RunState
from tfaesthetic.training.tasks import compile_model, plain_copy


def _local(strategy, value):
    """The value of the first local replica of a per-replica result."""
    return strategy.experimental_local_results(value)[0]


def broadcast_from_chief(strategy, values: list) -> list:
    """Returns the chief's (replica 0's) values of `values` on every worker.

    Args:
        strategy: the strategy.
        values: a list of tensors (this worker's values; only the chief's count).

    Returns:
        The list of the chief's values, as tensors of the original dtypes.
    """
    if not values:
        return []
    dtypes = [v.dtype for v in values]
    # One packed all-reduce needs one dtype: float64 carries float16/32 exactly, and
    # integers below 2**53 (step counters, epochs).
    wide = [tf.cast(v, tf.float64) for v in values]

    @tf.function
    def run():
        def replica_fn(tensors):
            ctx = tf.distribute.get_replica_context()
            keep = tf.cast(tf.equal(ctx.replica_id_in_sync_group, 0), tf.float32)
            masked = [t * tf.cast(keep, t.dtype) for t in tensors]
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, masked)

        return strategy.run(replica_fn, args=(wide,))

    out = [_local(strategy, t) for t in run()]
    return [tf.cast(o, d) for o, d in zip(out, dtypes)]


def _sync_state(strategy, model, state: RunState) -> None:
    """Broadcasts the chief's variables and run state to every worker."""
    variables = list(model.variables) + list(model.optimizer.variables)
    scalars = [
        tf.constant(state.epoch, tf.float64),
        tf.constant(1.0 if state.completed else 0.0, tf.float64),
        tf.constant(state.best_value if np.isfinite(state.best_value) else -1.0, tf.float64),
        tf.constant(state.best_epoch, tf.float64),
        tf.constant(state.wait, tf.float64),
        tf.constant(1.0 if state.stopped_early else 0.0, tf.float64),
    ]
    synced = broadcast_from_chief(strategy, [tf.convert_to_tensor(v.value) for v in variables] + scalars)
    for variable, value in zip(variables, synced[: len(variables)]):
        variable.assign(value)
    epoch, completed, best_value, best_epoch, wait, stopped = (float(s.numpy()) for s in synced[len(variables) :])
    state.epoch = int(epoch)
    state.completed = bool(completed)
    state.best_epoch = int(best_epoch)
    state.best_value = best_value if state.best_epoch >= 0 else float("inf")
    state.wait = int(wait)
    state.stopped_early = bool(stopped)


def per_output_losses(losses: dict, labels: dict, outputs: dict) -> dict:
    """Each loss's unweighted per-example values, output name -> shape `[B]` float32.

    Args:
        losses: output name -> `keras.losses.Loss` (its `call` gives per-example values).
        labels: the labels dict.
        outputs: the model's outputs dict.
    """
    return {
        name: tf.reshape(tf.cast(loss.call(labels[name], outputs[name]), tf.float32), [-1])
        for name, loss in losses.items()
    }


def per_example_loss(losses: dict, weights: dict, labels: dict, outputs: dict, parts: dict | None = None):
    """Weighted sum over outputs of each loss's per-example values, shape `[B]`.

    Args:
        losses: output name -> `keras.losses.Loss` (its `call` gives per-example values).
        weights: output name -> loss weight.
        labels: the labels dict.
        outputs: the model's outputs dict.
        parts: `per_output_losses(losses, labels, outputs)` when already computed.
    """
    parts = per_output_losses(losses, labels, outputs) if parts is None else parts
    total = None
    for name, values in parts.items():
        values = values * float(weights.get(name, 1.0))
        total = values if total is None else total + values
    return total


def _distribute(strategy, dataset):
    if dataset is None:
        return None
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def build_metrics(strategy, model, element_spec) -> None:
    """Creates the compiled metrics' state variables under the strategy, up front.

    The metric variables must exist before the replica step is traced (they cannot be
    created inside `strategy.run`); they are built symbolically from the dataset's
    element spec, as `Model.fit` does before its first step.

    Args:
        strategy: the strategy.
        model: the compiled model (built).
        element_spec: the `(features, labels)` element spec of the (undistributed)
            training dataset.
    """
    with strategy.scope():
        model._symbolic_build(data_batch=tuple(element_spec))


def _is_loss_key(name: str) -> bool:
    # Loss trackers of `compile` (the loop computes the losses itself).
    return name == "loss" or name.endswith("_loss")


def make_metrics_reader(strategy, model):
    """A function returning the compiled metrics' values over the whole cluster.

    The reader reads the sum-aggregated metric variables in cross-replica context
    (an all-reduce: every worker must call it at the same point of the loop), in one
    `tf.function` traced once.

    Args:
        strategy: the strategy.
        model: the compiled model, its metrics built (`build_metrics`).

    Returns:
        `read() -> dict`: metric name (as `Model.fit` logs it, e.g.
        "distribution_srcc" or "auc") -> float; the loss trackers of `compile` are
        left out (the loop computes the losses itself).
    """

    @tf.function
    def results():
        return model.get_metrics_result()

    def read() -> dict:
        with strategy.scope():
            values = results()
        return {k: float(np.asarray(v)) for k, v in values.items() if not _is_loss_key(k)}

    return read


def reset_metrics(strategy, model) -> None:
    """Zeroes the compiled metrics' state on every replica."""
    with strategy.scope():
        model.reset_metrics()


def make_step_functions(strategy, model, losses: dict, weights: dict):
    """The distributed train and eval steps.

    Both steps also update the model's compiled metrics (`model.compute_metrics`) on
    each replica's examples; read them with `make_metrics_reader`.

    Returns:
        `(train_step, eval_step)`; each takes a distributed `(features, labels)` batch
        and returns `(sum of per-example losses, number of examples, parts)` over the
        cluster; with several losses `parts` maps "<output>_loss" to the sum of that
        output's unweighted per-example losses (what `Model.fit` logs as
        "<output>_loss", once divided by the count), else it is empty.
    """
    optimizer = model.optimizer
    num_replicas = strategy.num_replicas_in_sync

    def sums(parts):
        if len(parts) < 2:
            return {}
        # Summed here and divided by the example count of the whole pass: the exact
        # per-example mean (Keras' own per-output trackers weight a short last batch
        # like a full one).
        return {f"{name}_loss": tf.reduce_sum(values) for name, values in parts.items()}

    def train_fn(features, labels):
        ctx = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            parts = per_output_losses(losses, labels, outputs)
            per_example = per_example_loss(losses, weights, labels, outputs, parts)
            local_count = tf.cast(tf.shape(per_example)[0], tf.float32)
            global_count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local_count)
            loss = tf.reduce_sum(per_example) / tf.maximum(global_count, 1.0)
            if model.losses:
                loss += tf.add_n([tf.cast(x, tf.float32) for x in model.losses]) / num_replicas
            scaled = optimizer.scale_loss(loss)
        variables = model.trainable_variables
        grads = tape.gradient(scaled, variables)
        # Keras 3 (TF backend) all-reduces the gradients (SUM) in the replica
        # context and applies one update to the mirrored variables.
        optimizer.apply_gradients(zip(grads, variables))
        # This replica's examples into the (sum-aggregated) metric state.
        model.compute_metrics(features, labels, outputs)
        return tf.reduce_sum(per_example), local_count, sums(parts)

    def eval_fn(features, labels):
        outputs = model(features, training=False)
        parts = per_output_losses(losses, labels, outputs)
        per_example = per_example_loss(losses, weights, labels, outputs, parts)
        model.compute_metrics(features, labels, outputs)
        return tf.reduce_sum(per_example), tf.cast(tf.shape(per_example)[0], tf.float32), sums(parts)

    def reduce(result):
        return tf.nest.map_structure(lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), result)

    @tf.function
    def train_step(batch):
        features, labels = batch
        return reduce(strategy.run(train_fn, args=(features, labels)))

    @tf.function
    def eval_step(batch):
        features, labels = batch
        return reduce(strategy.run(eval_fn, args=(features, labels)))

    return train_step, eval_step


def _run_epoch(step, dataset, steps, progbar, iterator=None):
    """Runs `steps` steps (or one pass); `iterator` continues a repeated dataset.

    Returns:
        `(mean loss, steps run, {"<output>_loss": mean unweighted loss})`.
    """
    total, count, done, parts = 0.0, 0.0, 0, {}
    iterator = iter(dataset) if iterator is None else iterator
    while steps is None or done < steps:
        try:
            batch = next(iterator)
        except StopIteration:
            break
        batch_total, batch_count, batch_parts = step(batch)
        total += float(batch_total)
        count += float(batch_count)
        for key, value in batch_parts.items():
            parts[key] = parts.get(key, 0.0) + float(value)
        done += 1
        if progbar is not None:
            progbar.update(done, [("loss", total / max(count, 1.0))])
    return total / max(count, 1.0), done, {k: v / max(count, 1.0) for k, v in parts.items()}


def train_multi_worker(config, task, strategy, state, work_dir, *, chief: bool) -> keras.Model:
    """Trains `task`'s model under `MultiWorkerMirroredStrategy` with a custom loop.

    Args:
        config: the resolved `ExperimentConfig`.
        task: the `tfaesthetic.trainer.Task`.
        strategy: a `MultiWorkerMirroredStrategy`.
        state: the `RunState` of this worker (chief: in the run directory).
        work_dir: this worker's directory (run directory, or scratch for non-chiefs).
        chief: whether this worker is the chief (prints, TensorBoard).

    Returns:
        A copy of the trained model built **outside** the strategy (default strategy),
        compiled, holding the final weights - for evaluation, saving and export.
    """
    train_cfg = config.trainer
    with strategy.scope():
        model = task.build_model()
        compile_model(model, task, config)
        model.optimizer.build(model.trainable_variables)
    train_ds, val_ds = build_datasets(config, task, model)
    dist_train, dist_val = _distribute(strategy, train_ds), _distribute(strategy, val_ds)
    losses, weights = task.losses(model)
    if chief and state.exists():
        state.load()
        state.restore_weights(model)
        print(f"Resuming {work_dir} after epoch {state.epoch} of {train_cfg.epochs}.")
    history, epochs_run = state.history, state.epochs_run
    _sync_state(strategy, model, state)
    state.history, state.epochs_run = history, epochs_run
    # After the broadcast: the metric state is not part of `model.variables`.
    build_metrics(strategy, model, train_ds.element_spec)
    train_step, eval_step = make_step_functions(strategy, model, losses, weights)
    read_metrics = make_metrics_reader(strategy, model)
    monitor = "val_loss" if dist_val is not None else "loss"
    writers = {}
    if chief:
        writers = {
            name: tf.summary.create_file_writer(os.path.join(work_dir, "logs", name)) for name in ("train", "validation")
        }
    # With a fixed step count the (repeated) datasets are read by one iterator
    # across epochs, as `Model.fit` does.
    train_iterator = iter(dist_train) if train_cfg.steps_per_epoch else None
    val_iterator = iter(dist_val) if dist_val is not None and train_cfg.validation_steps else None
    epoch = state.epoch
    # A run extended with more epochs continues; one stopped early stays stopped.
    while not state.stopped_early and epoch < train_cfg.epochs:
        if train_cfg.schedule == "step_epochs":
            model.optimizer.learning_rate = learning_rate_at_epoch(train_cfg, epoch)
        progbar = None
        if chief and train_cfg.verbose:
            print(f"Epoch {epoch + 1}/{train_cfg.epochs}")
            progbar = keras.utils.Progbar(train_cfg.steps_per_epoch, verbose=train_cfg.verbose)
        started = time.time()
        # Every worker runs the same collectives in the same order: reset, steps,
        # read (all-reduce), reset, validation steps, read.
        reset_metrics(strategy, model)
        loss, steps, parts = _run_epoch(train_step, dist_train, train_cfg.steps_per_epoch, progbar, train_iterator)
        logs = {"loss": loss, **parts, **read_metrics()}
        if dist_val is not None:
            reset_metrics(strategy, model)
            logs["val_loss"], _, parts = _run_epoch(eval_step, dist_val, train_cfg.validation_steps, None, val_iterator)
            logs.update({"val_" + k: v for k, v in parts.items()})
            logs.update({"val_" + k: v for k, v in read_metrics().items()})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        if chief:
            for name, writer in writers.items():
                with writer.as_default(step=epoch):
                    prefix = "val_" if name == "validation" else ""
                    for key, value in logs.items():
                        if key.startswith("val_") == (name == "validation"):
                            tf.summary.scalar("epoch_" + key[len(prefix) :], value)
            if train_cfg.verbose:
                print(" - ".join([f"{steps} steps, {time.time() - started:.1f}s"] + [f"{k}: {v:.4f}" for k, v in logs.items()]))
        stop = state.end_epoch(model, epoch, logs, monitor)
        epoch += 1
        if stop:
            if chief:
                print(f"Early stopping: {monitor} has not improved for {state.wait} epochs.")
            break
    state.finish()
    for writer in writers.values():
        writer.close()
    # A plain copy for evaluation and export, free of the cluster's collectives.
    return plain_copy(model, task, config)
