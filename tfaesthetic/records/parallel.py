"""The records writer's per-image work in worker processes (`num_workers`, issue 14 item 2).

The writer (`tfaesthetic.records.writer.write_records`) keeps every decision that
orders or counts something in the parent process: record rules, ids, rejections,
the vocabulary (training split only), tokenisation, shard assignment (by source
order, as with one process), the shard files, the manifest. Workers do the per-image
work that costs CPU, in chunks of `CHUNK` consecutive records:

- pass 1 (`inspect_chunk`): load the image bytes, the `tfaesthetic.images` rules
  (format, structure, pixel budget from the header) and a full decode with Pillow;
- pass 2 (`serialize_chunk`): load the bytes again and serialise the
  `tf.train.Example` (token ids computed by the parent), and score each comment
  with VADER for the manifest's review check (`review_compounds`).

The writer forks one pool for both passes, once the records' ids are normalised;
what it decides later (the image index) travels with the pass-2 tasks. Before the
writer, `derive_ratings` shares the review-rating derivation (seed 000 §4.1,
`tfaesthetic.records.reviews`, per comment) over the workers the same way.

The parent's remaining per-image work (ids and record rules, tokenisation, the shard
writes and their sha256, the vocabulary count) is ~1.4 ms an image against ~5.5 ms in
the workers (`benchmarks/build.py`, 640x480 JPEGs of 150 KB, 6 comments an image).

Results come back in submission order and the parent applies them in that order, so
the records, `vocab.txt`, the tsv files, `rejected.jsonl` and the manifest (apart
from `created`) are the same byte for byte whatever `num_workers` is:
`num_workers=1` runs the same two functions in the parent process.

Workers are forked from the parent after TensorFlow was imported, so no worker pays
a TensorFlow import; they never run a TensorFlow op (a forked child must not use the
parent's TF runtime): Pillow decodes and the `Example` is plain protobuf. An image
Pillow cannot decode is decided in the parent by `tf.io.decode_image` (the input
pipeline's decoder), so the `undecodable_image` rule and its message are TF's and an
image TF reads is never rejected because of Pillow.

Workers die with the builder (a killed build leaves no worker holding its output
pipes). A worker that raises or dies fails the build (`WorkerError` naming the chunk, or the
`BrokenProcessPool` of a killed worker); the writer then removes its staging
directory and the previous records stay as they were. At most `WINDOW_PER_WORKER`
chunks per worker are in flight, so memory does not grow with the number of images.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import gc
import io
import multiprocessing
import os
import signal
import warnings
from typing import Callable, Iterable, Iterator, Optional

from tfaesthetic import features
from tfaesthetic import images as images_lib
from tfaesthetic.records import reviews

# Consecutive records per task and tasks in flight per worker.
CHUNK = 8
WINDOW_PER_WORKER = 4

FAULT_ENV = "TFAESTHETIC_RECORDS_FAULT"  # the writer's fault hook; stage "worker" fires inside a worker task

# Fault stages of the worker tasks (`worker` matches both).
_TASK_STAGES = {"inspect_chunk": "worker_check", "serialize_chunk": "worker_write", "derive_chunk": "worker_reviews"}

# The records of the running pass, inherited by forked workers (never pickled).
_RECORDS: Optional[list] = None


class WorkerError(RuntimeError):
    """A worker task raised; the build fails (the message names the records and the error)."""


def default_num_workers() -> int:
    """The number of cores this process may run on (the builders' `--num_workers` default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def check_num_workers(num_workers) -> int:
    """`num_workers` as an int >= 1; None means `default_num_workers()`."""
    if num_workers is None:
        return default_num_workers()
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"Expected num_workers >= 1 (an integer). Received: num_workers={num_workers!r}")
    return num_workers


def _worker_fault(fn: Callable) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    stage = spec.partition(":")[0]
    if not stage or stage not in ("worker", _TASK_STAGES.get(getattr(fn, "__name__", ""))):
        return
    if spec.endswith(":kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"{FAULT_ENV}: simulated failure in a records worker (pid {os.getpid()})")


def _worker_init(parent_pid: int) -> None:
    """Each worker dies with the builder (Linux `PR_SET_PDEATHSIG`): a killed build leaves no worker behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the builder died before the line above
        os._exit(1)


def _run_task(fn: Callable, args: tuple):
    try:
        _worker_fault(fn)
        return fn(*args)
    except Exception as e:
        raise WorkerError(f"records worker (pid {os.getpid()}) failed: {type(e).__name__}: {e}") from e


class Pool:
    """Runs tasks over `records` in forked workers (or in this process for one worker), results in order.

    Args:
        records: the list the tasks index into; workers see it as it is when the
            pool is created (fork), so create the pool after the records are final.
        num_workers: worker processes; 1 runs every task in this process.
        num_tasks: an upper bound of the tasks to come (fewer workers are started
            when there is not enough work for them).
    """

    def __init__(self, records: list, num_workers: int, num_tasks: Optional[int] = None):
        global _RECORDS
        self.num_workers = check_num_workers(num_workers)
        if num_tasks is not None:
            self.num_workers = max(1, min(self.num_workers, num_tasks))
        if "fork" not in multiprocessing.get_all_start_methods():
            self.num_workers = 1  # (no fork: a spawned worker would pay a TensorFlow import)
        _RECORDS = records
        self._executor = None
        if self.num_workers > 1:
            self._executor = concurrent.futures.ProcessPoolExecutor(
                self.num_workers, mp_context=multiprocessing.get_context("fork"),
                initializer=_worker_init, initargs=(os.getpid(),),
            )
            # Fork the workers now, with the parent's objects frozen: a forked worker's
            # garbage collector then never walks the parent's heap (TensorFlow's modules,
            # the records), which would copy every page it touches (copy-on-write) and
            # cost more CPU than the worker's own work.
            gc.freeze()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._executor.submit(os.getpid).result()  # (a fork pool starts all its workers at once)
            finally:
                gc.unfreeze()

    def map(self, fn: Callable, tasks: Iterable[tuple]) -> Iterator:
        """`fn(*task)` for each task, yielded in task order; the task iterator is pulled lazily."""
        if self._executor is None:
            for task in tasks:
                yield _run_task(fn, task)
            return
        window = self.num_workers * WINDOW_PER_WORKER
        pending = collections.deque()
        tasks = iter(tasks)
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a multi-threaded process may deadlock; the
            # workers touch no lock of the parent's threads (no TF op, no logging handler).
            warnings.simplefilter("ignore", DeprecationWarning)
            for task in tasks:
                pending.append(self._executor.submit(_run_task, fn, task))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def close(self) -> None:
        global _RECORDS
        _RECORDS = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def chunks(items: Iterable, size: int = CHUNK) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- pass 1: image checks -------------------------------------------------------------


@dataclasses.dataclass
class ImageCheck:
    """What a worker found about one record's image.

    Attributes:
        fmt: the format detected from the bytes, or None when rejected.
        reject: `(reason, detail)` of the rejection, or None.
        notes: kept notes `(note, detail)` (e.g. `image_format_mismatch`).
        decode_error: Pillow could not decode it; the parent decides with TF.
    """

    fmt: Optional[str] = None
    reject: Optional[tuple] = None
    notes: list = dataclasses.field(default_factory=list)
    decode_error: Optional[str] = None


def load_bytes(record) -> Optional[bytes]:
    """The encoded image bytes of a record (held, or read through its loader), or None without an image."""
    if record.encoded is not None:
        return bytes(record.encoded)
    if record.load_image is not None:
        return record.load_image()
    return None


def pillow_problem(data: bytes) -> Optional[str]:
    """None when Pillow decodes the whole image (first frame), else the error text."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (the pixel budget was checked from the header)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                if image.width == 0 or image.height == 0:
                    return f"empty image of shape {image.size}"
    except Exception as e:  # noqa: BLE001 -- any decoder error means "ask TF"
        return f"{type(e).__name__}: {e}"
    return None


def inspect_image(record, validate_images: bool, max_pixels) -> ImageCheck:
    """The writer's image rules on one record, without TensorFlow (see `writer._check_image`)."""
    try:
        data = load_bytes(record)
    except OSError as e:
        return ImageCheck(reject=("missing_image_file", str(e)))
    except Exception as e:  # A source's loader failing otherwise must not stop the build.
        return ImageCheck(reject=("unreadable_image", f"{type(e).__name__}: {e}"))
    if not data:
        return ImageCheck(reject=("undecodable_image", "empty image bytes"))
    fmt = images_lib.detect_format(data)
    if not fmt:
        return ImageCheck(reject=("unknown_image_format", f"first bytes {data[:8]!r}"))
    problem = images_lib.structure_problem(data, fmt) or images_lib.pixel_problem(data, max_pixels, fmt)
    if problem is not None:
        return ImageCheck(reject=(problem[0], problem[1]))
    check = ImageCheck(fmt=fmt)
    if validate_images:
        check.decode_error = pillow_problem(data)
    declared = (record.image_format or "").lower().replace("jpg", "jpeg")
    if declared and declared != fmt:
        check.notes.append(("image_format_mismatch", f"declared {record.image_format!r}, bytes are {fmt}"))
    return check


def inspect_chunk(positions: list, validate_images: bool, max_pixels) -> list:
    """Pass 1 task: `inspect_image` of `_RECORDS[p]` for each position."""
    return [inspect_image(_RECORDS[p], validate_images, max_pixels) for p in positions]


# --- pass 2: serialisation ------------------------------------------------------------


def _repaired_text(value) -> bytes:
    # The same repair as `writer._text_bytes` (the parent counts the notes).
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
            return value
        except UnicodeDecodeError:
            return value.decode("utf-8", errors="replace").encode("utf-8")
    return str(value).encode("utf-8", errors="replace")


def serialize_record(record, token_rows: list, fmt: Optional[str], image_index: Optional[int] = None) -> bytes:
    """One record's serialised `tf.train.Example` (image bytes loaded here when `fmt` is set).

    `image_index`: the index assigned by the parent after the workers were forked
    (None: `record.image_index`).
    """
    record = dataclasses.replace(
        record, comments=[dataclasses.replace(c, text=_repaired_text(c.text)) for c in record.comments],
        image_index=record.image_index if image_index is None else image_index,
    )
    image_bytes = None
    if fmt is not None:
        image_bytes = load_bytes(record)
        if not image_bytes:
            raise RuntimeError(
                f"Image {record.image_id!r} could be loaded in the validation pass but not when writing its shard"
            )
        record = dataclasses.replace(record, image_format=fmt)
    # deterministic: map entries (the feature names) in sorted order; otherwise their order
    # follows a per-process hash seed and two builds of the same input differ byte for byte.
    return features.to_example(record, token_rows, image_bytes).SerializeToString(deterministic=True)


def review_compounds(record) -> Optional[list]:
    """The VADER compound score of each comment of `record`, for the manifest's review check.

    `reviews.review_check` needs them for the records with votes and comments; they
    cost ~1.4 ms a comment (more than the rest of the per-image work), so the
    workers compute them beside the serialisation instead of the parent after the
    shards. `[]` for a record the check skips; None when VADER fails on one of its
    comments (the parent then runs the check itself, failing the same way).
    """
    if record.votes is None or not record.comments or sum(record.votes) <= 0:
        return []
    try:
        return [reviews.vader_compound(c.text) for c in record.comments]
    except Exception:  # noqa: BLE001 -- the parent's review check reports it
        return None


def serialize_chunk(items: list) -> list:
    """Pass 2 task: items `(index into _RECORDS, image_index, token_rows, fmt)` -> `(serialised Example, compounds)`."""
    return [
        (serialize_record(_RECORDS[i], rows, fmt, image_index), review_compounds(_RECORDS[i]))
        for i, image_index, rows, fmt in items
    ]


# --- review ratings (seed 000 §4.1), before the writer ---------------------------------

DERIVE_CHUNK = 64


def derive_chunk(lo: int, hi: int, rules, rewrite: bool) -> tuple:
    """`reviews.derive_ratings` on `_RECORDS[lo:hi]`: per comment `(sentiment, rating, text or None)`, the summary."""
    from tfaesthetic.records import reviews

    records = _RECORDS[lo:hi]
    summary = reviews.derive_ratings(records, rules, rewrite=rewrite)
    rows = [(c.sentiment, c.rating, c.text if rewrite else None) for r in records for c in r.comments]
    return rows, summary


def _add_summaries(total, part):
    if isinstance(part, dict):
        for key, value in part.items():
            total[key] = _add_summaries(total.get(key, 0 if not isinstance(value, dict) else {}), value)
        return total
    return total + part


def derive_ratings(records: list, rules, *, rewrite: bool = False, num_workers: int = 1) -> dict:
    """`reviews.derive_ratings(records, rules, rewrite=...)` with the comments shared over workers.

    Each comment's rating depends on its text alone, so the records get the same
    ratings (and the summary the same counts, summed chunk by chunk in order)
    whatever `num_workers` is. One worker calls `reviews.derive_ratings` directly.
    """
    from tfaesthetic.records import reviews

    num_workers = check_num_workers(num_workers)
    bounds = [(lo, min(lo + DERIVE_CHUNK, len(records))) for lo in range(0, len(records), DERIVE_CHUNK)]
    if num_workers == 1 or len(bounds) < 2:
        return reviews.derive_ratings(records, rules, rewrite=rewrite)
    total = None
    with Pool(records, num_workers, len(bounds)) as pool:
        results = pool.map(derive_chunk, ((lo, hi, rules, rewrite) for lo, hi in bounds))
        for (lo, hi), (rows, summary) in zip(bounds, results):
            it = iter(rows)
            for record in records[lo:hi]:
                for comment in record.comments:
                    comment.sentiment, comment.rating, text = next(it)
                    if text is not None:
                        comment.text = text
            total = summary if total is None else _add_summaries(total, summary)
    return total
