"""Subprocess entry for tuning tests: run `tfaesthetic.tuning.search.run_search` in a fresh process.

Usage: python tests/_workers/tune_worker.py SPEC_JSON SUMMARY_JSON

SPEC_JSON holds `{"config": <ExperimentConfig dict>, "search": <run_search keyword
arguments>}`. The logical CPU devices (`runtime.num_logical_cpu_devices`) are
configured here, before TensorFlow initialises them. The chief/worker role comes from
the KERASTUNER_* environment variables, as for the CLI. The summary returned by
`run_search` is written to SUMMARY_JSON.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main(argv):
    spec_path, summary_path = argv[1], argv[2]
    with open(spec_path) as f:
        spec = json.load(f)

    from tfaesthetic import config as config_lib
    from tfaesthetic import trainer
    from tfaesthetic.tuning import search

    config = config_lib.ExperimentConfig.from_dict(spec["config"])
    trainer.configure_logical_devices(config.runtime.num_logical_cpu_devices)
    summary = search.run_search(config, **spec.get("search", {}))
    summary["pid"] = os.getpid()
    tmp = summary_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1, default=str)
    os.replace(tmp, summary_path)


if __name__ == "__main__":
    main(sys.argv)
