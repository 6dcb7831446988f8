"""Training: strategies, optimizer and schedules, tasks, datasets, run state, the loops.

Modules, in the order a run uses them (none imports a later one's caller):

- `runtime`: devices and the distribution strategy (created once), chief detection;
- `optimization`: the optimizer and the papers' learning-rate schedules;
- `tasks`: per model family, how to build, compile and evaluate (`make_task`);
- `datasets`: the train / validation datasets with the global batch size;
- `state`: `RunState` (resumable epochs, best epoch, early stopping) and `RunLock`;
- `multi_worker`: the custom loop for `MultiWorkerMirroredStrategy`.

`tfaesthetic.trainer.train_and_evaluate` orchestrates them (and `Model.fit`).
"""
