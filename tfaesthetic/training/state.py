"""What makes a run resumable and exclusive: `RunState`, its callback, the run-directory lock.

`state.json` (completed epochs, history, best epoch, early-stopping counter, the
weights file of the last completed epoch) is the commit point of every epoch: the
weights are written first under a temporary name and renamed, then `state.json`.
`RunLock` is an exclusive `flock` on `run_dir/.lock`, naming its holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from typing import Optional

import keras
import numpy as np

from tfaesthetic import config as config_lib
from tfaesthetic import io
from tfaesthetic.training.optimization import EpochLearningRate

STATE_FILE = "state.json"
BEST_WEIGHTS = "best.weights.h5"


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
            io.atomic_write_text(self.path, json.dumps(self.to_dict(), indent=1))

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


class RunStateCallback(EpochLearningRate):
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
        super().__init__(trainer)
        self.state = state
        self.trainer = trainer
        self.monitor = monitor
        self.save_model = save_model

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.state.end_epoch(self.save_model or self.model, epoch, logs, self.monitor):
            print(
                f"\nEarly stopping: {self.monitor} has not improved for {self.state.wait} epochs "
                f"(best {self.state.best_value:.4f} at epoch {self.state.best_epoch + 1})."
            )
            self.model.stop_training = True


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


def lock_run_dir(run_dir: str) -> Optional[RunLock]:
    """Locks `run_dir` unless this process holds it already; returns the new lock or None."""
    key = os.path.abspath(run_dir)
    if key in _HELD_LOCKS:
        return None
    lock = RunLock(key).acquire()
    _HELD_LOCKS[key] = lock
    return lock


def unlock_run_dir(lock: Optional[RunLock]) -> None:
    if lock is not None:
        _HELD_LOCKS.pop(lock.run_dir, None)
        lock.release()
