"""Subprocess entry for trainer tests: train one config in a fresh process.

Usage: python tests/_workers/train_worker.py CONFIG_JSON RUN_DIR [WEIGHTS_NPZ] [--evaluate] [--val-metrics]

Runs `tfaesthetic.trainer.train` (or `train_and_evaluate` with --evaluate, without
export) and, when WEIGHTS_NPZ is given, saves the last epoch's model weights there (one
array per variable, in `model.weights` order) and the run summary beside it as JSON.
With --val-metrics the chief also evaluates the trained model (compiled metrics,
default strategy, one process) on the whole validation split and adds the values to
the summary as "val_metrics".

Kill tests are made deterministic by an environment hook (test-only, the library has
none): with `TRAIN_WORKER_BLOCK_AFTER_EPOCH=N` and `TRAIN_WORKER_BLOCK_FILE=PATH`, once
the checkpoint of epoch N (1-based: N completed epochs) is committed the worker writes
`PATH.blocked` and then waits until `PATH` exists (at most 10 minutes) before training
on. A test kills the worker while it waits.

The devices (`num_logical_cpu_devices`) are configured here, before TensorFlow
initialises them.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

BLOCK_AFTER_EPOCH = "TRAIN_WORKER_BLOCK_AFTER_EPOCH"
BLOCK_FILE = "TRAIN_WORKER_BLOCK_FILE"


def _install_block_hook(trainer):
    """Wraps `RunState.end_epoch`: block after the checkpoint of the named epoch."""
    after = os.environ.get(BLOCK_AFTER_EPOCH)
    path = os.environ.get(BLOCK_FILE)
    if not after or not path:
        return
    after = int(after)
    end_epoch = trainer.RunState.end_epoch

    def blocking_end_epoch(self, model, epoch, logs, monitor):
        stop = end_epoch(self, model, epoch, logs, monitor)
        # `end_epoch` has written the weights and committed state.json.
        if self.epoch == after:
            with open(path + ".blocked", "w") as f:
                f.write(str(self.epoch))
            deadline = time.time() + 600
            while not os.path.exists(path) and time.time() < deadline:
                time.sleep(0.05)
        return stop

    trainer.RunState.end_epoch = blocking_end_epoch


def _val_metrics(result):
    """The trained model's compiled metrics on the whole validation split."""
    from tfaesthetic import trainer

    model = result.model
    _, val = trainer.build_datasets(result.config, result.task, model)
    values = model.evaluate(val, verbose=0, return_dict=True)
    return {k: float(v) for k, v in values.items()}


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    evaluate = "--evaluate" in argv
    val_metrics = "--val-metrics" in argv
    config_path, run_dir = args[0], args[1]
    weights_path = args[2] if len(args) > 2 else None

    import numpy as np

    from tfaesthetic import config as config_lib
    from tfaesthetic import trainer

    _install_block_hook(trainer)
    config = config_lib.ExperimentConfig.load(config_path)
    trainer.configure_logical_devices(config.runtime.num_logical_cpu_devices)
    if evaluate:
        summary = trainer.train_and_evaluate(config, run_dir, export=False)
        model = None
    else:
        result = trainer.train(config, run_dir, restore_best=False)
        model = result.model
        summary = {
            "epochs": result.state.epoch,
            "epochs_run": result.state.epochs_run,
            "history": result.state.history,
            "num_replicas": result.strategy.num_replicas_in_sync,
            "chief": result.chief,
        }
        if val_metrics and result.chief:
            summary["val_metrics"] = _val_metrics(result)
        if not result.chief:
            import shutil

            shutil.rmtree(result.work_dir, ignore_errors=True)
    if weights_path:
        if model is None:
            model = trainer.load_run_model(run_dir)
        np.savez(weights_path, *[np.asarray(w) for w in model.get_weights()])
        with open(weights_path + ".json", "w") as f:
            json.dump({k: v for k, v in summary.items() if k != "table"}, f, default=str)


if __name__ == "__main__":
    main(sys.argv)
