"""What the command lines print: quiet start-up, progress of long loops, one-line errors.

- `quiet_startup()` runs first in every CLI's `main`, before TensorFlow is
  imported. It sets TensorFlow's C++ log level (`TF_CPP_MIN_LOG_LEVEL=2`, unless
  the user set it), sets absl's verbosity (and TensorFlow's Python logger) to
  WARNING (the INFO lines of TensorFlow's saving code about signature renaming,
  sharding callbacks and fingerprints go; warnings and errors stay), and imports
  TensorFlow once with its start-up banner held back: lines that TensorFlow's
  CUDA stubs and CPU checks print through absl's C++ logging before anyone can
  set a level (`Could not find cuda drivers`, `cuInit: UNKNOWN ERROR (303)`,
  `This TensorFlow binary is optimized...`, `oneDNN custom operations are on`,
  `All log messages before absl::InitializeLog()...`) are dropped, every other
  line of that import is printed as it was. `--verbosity=...` (absl's own flag)
  or `TFAESTHETIC_VERBOSE=1` leaves everything as TensorFlow prints it.
- `Progress(total, label)`: count, rate and ETA of a long loop. On a terminal a
  live `keras.utils.Progbar`; otherwise (logs, CI) one line every 10 % on stderr.
- `ProgressModel(model, progress)`: a model proxy that advances a `Progress` by
  the batch size of every call (the evaluation loops call the model per batch).
- `user_error(e)`: the one-line message of an error a user can cause (a bad
  flag, missing or corrupt records), or None for a bug (which keeps its
  traceback).
- `run_cli(body, exit_codes=..., ...)`: how every CLI's `main` runs its work: a
  user error becomes one line `Error: ...` on stderr and an exit status (1 unless
  `exit_codes` says otherwise); a bug keeps its traceback.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import time
from typing import Callable, Optional, Sequence, Tuple

from absl import app

from tfaesthetic.config import ConfigError  # TensorFlow-free (config imports only tfaesthetic.io)

VERBOSE_ENV = "TFAESTHETIC_VERBOSE"

#: Start-up lines of TensorFlow's native libraries that say nothing about the run.
STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|cudart_stub\.cc.*Could not find cuda drivers"
    r"|cuda_platform\.cc.*failed call to cuInit"
    r"|cuda_executor\.cc.*(CUDA_ERROR_NO_DEVICE|no NVIDIA GPU)"
    r"|cpu_feature_guard\.cc"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
    r"|oneDNN custom operations are on"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
)

_QUIET = None  # the decision of the first quiet_startup() call


def loud_requested(environ=None) -> bool:
    """Whether the user asked for TensorFlow's full output (`--verbosity` or $TFAESTHETIC_VERBOSE)."""
    environ = os.environ if environ is None else environ
    if environ.get(VERBOSE_ENV, "").strip() not in ("", "0", "false", "False"):
        return True
    try:
        from absl import flags

        return bool(flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].present)
    except (KeyError, AttributeError):
        return False


def quiet_startup() -> bool:
    """Quiets TensorFlow's start-up and INFO logs unless loud output was asked for.

    Call before anything imports TensorFlow (idempotent). Returns True when quiet.
    """
    global _QUIET
    if _QUIET is not None:
        return _QUIET
    _QUIET = not loud_requested()
    if not _QUIET:
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if "tensorflow" not in sys.modules:
        _import_tensorflow_without_banner()
    import tensorflow as tf

    tf.get_logger().setLevel(logging.WARNING)
    # TensorFlow's saving code logs through absl: INFO lines about renamed signature
    # inputs, sharding callbacks and fingerprints. absl's own verbosity (what
    # --verbosity sets; TensorFlow saves and restores it around some calls) goes to
    # WARNING; --verbosity=0 brings INFO back.
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)
    except Exception:  # noqa: BLE001  (absl flags not parsed: the level stays)
        pass
    return True


def _import_tensorflow_without_banner() -> None:
    """Imports TensorFlow and lists its devices with fd 2 captured; replays all but the banner."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. some notebooks): import plainly
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe prints when devices are listed first
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = startup_lines_to_keep(capture.read().decode("utf-8", "replace"))
            if kept:
                print("\n".join(kept), file=sys.stderr)


def startup_lines_to_keep(text: str) -> list:
    """The lines of TensorFlow's import output that are not `STARTUP_NOISE`."""
    return [line for line in text.splitlines() if line.strip() and not STARTUP_NOISE.search(line)]


# ---------------------------------------------------------------------------------------
# Progress.


def _fmt_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Count, rate and ETA of a loop over `total` items.

    Args:
        total: number of items (None or 0: unknown, no ETA).
        label: what is counted, e.g. "evaluate test" or "records: validating images".
        unit: the item name ("image", "example").
        stream: where lines go when not a terminal (default stderr).
        interactive: force the live bar (True) or the line mode (False); default:
            whether stdout is a terminal.
        every: the line mode prints each time another `every` fraction is done...
        min_seconds: ...once at least this long after the start (a job shorter than
            that prints its summary line only).

    Call `update(n)` after each `n` items and `close()` at the end (also a context
    manager). The live bar is `keras.utils.Progbar`; the line mode prints
    `label: 120/1200 (10%) 35.1 image/s, ETA 31s`.
    """

    def __init__(self, total: Optional[int], label: str, *, unit: str = "image", stream=None,
                 interactive: Optional[bool] = None, every: float = 0.1, min_seconds: float = 2.0):
        self.total = int(total) if total else None
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.every = every
        self.min_seconds = min_seconds
        self.started = time.time()
        self._next_line = every
        self._closed = False
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self._bar = None
        if self.interactive:
            from keras.utils import Progbar

            print(label, flush=True)
            self._bar = Progbar(self.total, unit_name=unit)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def rate(self) -> float:
        elapsed = time.time() - self.started
        return self.count / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """The current state as one line."""
        rate = self.rate
        if self.total:
            pct = 100.0 * self.count / self.total
            eta = (self.total - self.count) / rate if rate > 0 else float("nan")
            eta_text = _fmt_seconds(eta) if eta == eta else "?"
            return f"{self.label}: {self.count}/{self.total} ({pct:.0f}%) {rate:.1f} {self.unit}/s, ETA {eta_text}"
        return f"{self.label}: {self.count} {self.unit}s, {rate:.1f} {self.unit}/s"

    def update(self, n: int = 1) -> None:
        self.count += int(n)
        if self._bar is not None:
            self._bar.update(self.count)
            return
        if self.total and self.count / self.total + 1e-12 >= self._next_line and self.count < self.total:
            if time.time() - self.started >= self.min_seconds:
                print(self.line(), file=self.stream, flush=True)
            while self._next_line <= self.count / self.total + 1e-12:
                self._next_line += self.every

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        elapsed = time.time() - self.started
        if self._bar is not None:
            if self.total is None or self.count < self.total:
                self._bar.update(self.count, finalize=True)
            return
        print(f"{self.label}: {self.count} {self.unit}s in {_fmt_seconds(elapsed)} ({self.rate:.1f} {self.unit}/s)",
              file=self.stream, flush=True)


class ProgressModel:
    """`model` with every call advancing `progress` by the batch size (delegates the rest).

    Args:
        model: a Keras model (or any callable on a feature dict).
        progress: a `Progress`.
    """

    def __init__(self, model, progress: Progress):
        self._model = model
        self._progress = progress

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, features, *args, **kwargs):
        out = self._model(features, *args, **kwargs)
        self._progress.update(_batch_size(features))
        return out

    def predict_on_batch(self, features):
        out = self._model.predict_on_batch(features)
        self._progress.update(_batch_size(features))
        return out


def _batch_size(features) -> int:
    values = list(features.values()) if isinstance(features, dict) else [features]
    for v in values:
        shape = getattr(v, "shape", None)
        if shape is not None and len(shape) and shape[0] is not None:
            return int(shape[0])
    return 1


# ---------------------------------------------------------------------------------------
# Errors a user can cause.


def user_error(e: BaseException) -> Optional[str]:
    """The one-line message of an error the user can fix, or None (a bug: keep the traceback).

    User errors: `ConfigError` (flags, config, records that do not fit), `ShardError`
    (missing/truncated/corrupt shard), `tf.errors.DataLossError` (corrupt record),
    `FileNotFoundError` / `NotADirectoryError` / `PermissionError`, and `RunDirLocked`.
    `ShardError`, `RunDirLocked` and TensorFlow's errors are looked up among the
    loaded modules (an error of theirs exists only once its module is loaded): this
    module stays free of TensorFlow, which the CLIs import after `quiet_startup`.
    """
    kinds = [ConfigError, FileNotFoundError, NotADirectoryError, PermissionError, FileExistsError]
    for module, name in (("tfaesthetic.records.shards", "ShardError"), ("tfaesthetic.training.state", "RunDirLocked")):
        if module in sys.modules:
            kinds.append(getattr(sys.modules[module], name))
    if isinstance(e, tuple(kinds)):
        text = str(e)
    else:
        tf = sys.modules.get("tensorflow")
        if tf is None or not isinstance(e, tf.errors.DataLossError):
            return None
        text = _data_loss_message(e)
    return _one_line(text) or type(e).__name__


def run_cli(body: Callable[[], int], *, exit_codes: Sequence[Tuple[type, int]] = (),
            user_errors: Tuple[type, ...] = (), usage_errors: Tuple[type, ...] = ()) -> int:
    """Runs a CLI's work; an error the user can fix becomes one line and an exit status.

    Args:
        body: the CLI's work (no arguments), returning its exit status.
        exit_codes: `(error class, status)` pairs, the first match wins; any other
            user error exits with 1.
        user_errors: error classes that are the user's beyond those `user_error`
            knows (e.g. a bad search-space file).
        usage_errors: error classes raised again as `absl.app.UsageError` (absl
            prints the message with its usage hint and exits with 1).

    Returns:
        `body()`'s status, or the status of the user error after printing
        `Error: <one line>` on stderr. Any other error (a bug) propagates with its
        traceback.
    """
    try:
        return body()
    except Exception as e:  # noqa: BLE001  (user errors: one line; bugs keep their traceback)
        if usage_errors and isinstance(e, usage_errors):
            raise app.UsageError(user_error(e) or str(e)) from None
        message = user_error(e)
        if message is None and user_errors and isinstance(e, user_errors):
            message = _one_line(str(e)) or type(e).__name__
        if message is None:
            raise
        print(f"Error: {message}", file=sys.stderr)
        for kind, status in exit_codes:
            if isinstance(e, kind):
                return status
        return 1


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _data_loss_message(e) -> str:
    message = getattr(e, "message", None) or str(e)
    # The op's message ("corrupted record at 41164") plus the file when TensorFlow names it.
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    head = lines[0] if lines else "corrupted record"
    files = re.findall(r"[\w./\\-]+\.tfrecord(?:\.gz)?", message)
    where = f" in {files[0]}" if files else ""
    if files and files[0] in head:
        where = ""
    return (f"Corrupt records{where}: {head}. Rebuild the records (or restore the shard) and check them with "
            "tfaesthetic.data.validate_shards(records_dir, full=True).")


def setup_build_cli() -> None:
    """The records builders' start: quiet TensorFlow, progress of image checks and shard writes."""
    quiet_startup()
    from tfaesthetic.records import writer

    writer.progress_factory = lambda total, label: Progress(total, label, unit="image")
