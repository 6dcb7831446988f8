"""Subprocess entry for trainer tests: train one config in a fresh process.

Usage: python tests/_workers/train_worker.py CONFIG_JSON RUN_DIR [WEIGHTS_NPZ] [--evaluate]

Runs `tfaesthetic.trainer.train` (or `train_and_evaluate` with --evaluate, without
export) and, when WEIGHTS_NPZ is given, saves the last epoch's model weights there (one
array per variable, in `model.weights` order) and the run summary beside it as JSON.
The devices (`num_logical_cpu_devices`) are configured here, before TensorFlow
initialises them.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    evaluate = "--evaluate" in argv
    config_path, run_dir = args[0], args[1]
    weights_path = args[2] if len(args) > 2 else None

    import numpy as np

    from tfaesthetic import config as config_lib
    from tfaesthetic import trainer

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
