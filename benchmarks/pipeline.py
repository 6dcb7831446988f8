"""Input-pipeline benchmark (a report, not a test).

Measures, on one records directory (the demo records by default):

1. throughput, examples/s: `tfaesthetic.data.build_dataset` (training branch:
   interleave, shuffle, decode, resize, flip, batch, prefetch; uint8 pixels) with
   the default `DataConfig` (`cache="auto"`: these records fit in memory, so epochs
   after the first come from the cache) and with `cache=False` (the path of records
   too large to cache), against the naive way (read each image file, decode and
   resize with Pillow, tokenise in Python, stack float32 batches), on the same
   images and comments; the ratios are the figures;
2. CFAN's per-review pipeline (mode "review") against the image mode on the same
   records: examples/s and the time to the first batch; and the batch-to-batch
   delivery times when one image has 125 reviews (AVA's maximum);
3. peak resident memory (`resource.getrusage`) of one streaming (`cache=False`)
   pass at two dataset sizes (x1 and x`--memory_factor`), each in its own
   subprocess: it must stay flat;
4. records bytes against source bytes (image files + comments as JSON lines).

Usage:
    python benchmarks/pipeline.py [--num_images 800] [--image_sizes 64,224] [--batch_size 32]

Prints a table and writes `benchmarks/results/pipeline-<host>-<date>.json`.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

_MEMORY_CHILD = r"""
import json, resource, sys, time
import tensorflow as tf
from tfaesthetic.config import DataConfig
from tfaesthetic.data import build_dataset

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")

records_dir, image_size, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# cache=False: the streaming path must stay flat ("auto" caching holds at most
# tfaesthetic.data.reader.CACHE_AUTO_MAX_BYTES by design).
config = DataConfig(records_dir=records_dir, image_size=image_size, global_batch_size=batch_size, shuffle_buffer=2048,
                    cache=False)
ds = build_dataset(config, is_training=True)
before = status("VmRSS")
peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:  # reset the high-water mark (Linux >= 4.0) so VmHWM is the peak of the pass alone
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
n = 0
start = time.perf_counter()
for feats, labels in ds:
    n += int(feats["image"].shape[0])
seconds = time.perf_counter() - start
print("RESULT " + json.dumps({
    "examples": n, "seconds": seconds, "rss_before_pass_mb": before, "peak_rss_during_pass_mb": status("VmHWM") if reset else None,
    "rss_after_pass_mb": status("VmRSS"), "peak_rss_process_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_rss_before_pass_mb": peak_before}))
"""


def _build_records(out_dir, num_images, seed):
    """Demo records when the generator exists, else a small synthetic set."""
    try:
        from tfaesthetic.records import demo
    except ImportError:
        demo = None
    if demo is not None and hasattr(demo, "build_demo"):
        demo.build_demo(out_dir, num_images=num_images, seed=seed, num_shards=2)
        return "demo"
    _synthetic_records(out_dir, num_images, seed)
    return "synthetic"


def _synthetic_records(out_dir, num_images, seed, source_records=None):
    from PIL import Image

    from tfaesthetic import features
    from tfaesthetic.records.rejections import Rejections
    from tfaesthetic.records.writer import write_records

    rng = np.random.default_rng(seed)
    words = "sharp blurry lovely colours dark bright composition nice focus light subject".split()
    records = []
    for i in range(num_images):
        pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        comments = [
            features.Comment(text=" ".join(rng.choice(words, size=8)), user_index=int(rng.integers(0, 10)), rating=1)
            for _ in range(int(rng.integers(1, 6)))
        ]
        split = "train" if i % 10 < 8 else ("val" if i % 10 == 8 else "test")
        records.append(
            features.ImageRecord(
                image_id=str(i), split=split, encoded=buf.getvalue(), image_format="jpeg",
                votes=[int(v) for v in rng.integers(0, 20, size=10)], comments=comments,
            )
        )
    write_records(
        out_dir, records, scale=features.AVA_SCALE, users=[f"u{i}" for i in range(10)], tags=["a", "b"],
        source="synthetic", rejections=Rejections(), num_shards=2,
    )


def _read_records(records_dir):
    """(split, image_id, encoded, format, votes, tags, comments[(text, user, sentiment, rating)]) per record."""
    import tensorflow as tf

    from tfaesthetic.data.decoder import Decoder
    from tfaesthetic.data.reader import shard_paths
    from tfaesthetic.records.writer import read_manifest

    manifest = read_manifest(records_dir)
    decoder = Decoder()
    out = []
    for split in ("train", "val", "test"):
        if not manifest["splits"].get(split):
            continue
        for serialized in tf.data.TFRecordDataset(shard_paths(records_dir, split, manifest)):
            raw = decoder(serialized)
            out.append(
                dict(
                    split=split,
                    image_id=raw["image_id"].numpy().decode(),
                    encoded=raw["encoded"].numpy(),
                    format=raw["image_format"].numpy().decode(),
                    votes=raw["votes"].numpy().tolist(),
                    tags=raw["tags"].numpy().tolist(),
                    comments=[
                        dict(text=t.decode("utf-8"), user=int(u), sentiment=int(s), rating=int(r))
                        for t, u, s, r in zip(
                            raw["comment_text"].numpy(), raw["comment_user"].numpy(),
                            raw["comment_sentiment"].numpy(), raw["comment_rating"].numpy(),
                        )
                    ],
                )
            )
    return manifest, out


def _write_source(source_dir, rows):
    """The 'source' form of the data: one image file per image plus comments.jsonl."""
    os.makedirs(os.path.join(source_dir, "images"), exist_ok=True)
    total = 0
    with open(os.path.join(source_dir, "comments.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            ext = {"jpeg": "jpg"}.get(row["format"], row["format"] or "bin")
            path = os.path.join(source_dir, "images", f"{row['image_id']}.{ext}")
            with open(path, "wb") as img:
                img.write(row["encoded"])
            total += len(row["encoded"])
            meta = {k: row[k] for k in ("image_id", "split", "votes", "tags", "comments")}
            meta["image_path"] = path
            f.write(json.dumps(meta, ensure_ascii=False) + "\n")
    total += os.path.getsize(os.path.join(source_dir, "comments.jsonl"))
    return total


def _write_scaled_records(out_dir, rows, manifest, factor):
    """Records with every image repeated `factor` times under new ids (memory test)."""
    from tfaesthetic import features
    from tfaesthetic.records.rejections import Rejections
    from tfaesthetic.records.writer import write_records

    records = []
    for k in range(factor):
        for row in rows:
            records.append(
                features.ImageRecord(
                    image_id=f"{row['image_id']}#{k}", split=row["split"], encoded=row["encoded"],
                    image_format=row["format"], votes=row["votes"], tags=row["tags"],
                    comments=[features.Comment(text=c["text"], user_index=c["user"], sentiment=c["sentiment"],
                                               rating=c["rating"]) for c in row["comments"]],
                )
            )
    scale = features.ScoreScale.from_json(manifest["score_scale"])
    write_records(
        out_dir, records, scale=scale, users=[str(i) for i in range(manifest["num_users"])],
        tags=[str(i) for i in range(manifest["num_tags"])], source="benchmark", rejections=Rejections(),
        num_shards=4, validate_images=False,
    )


def _python_tokenizer(vocab_path):
    with open(vocab_path, encoding="utf-8") as f:
        ids = {line.rstrip("\n"): i + 2 for i, line in enumerate(f)}
    word = re.compile(r"[^\W_]+")

    def tokenize(texts, max_len):
        out = []
        for t in texts:
            t = unicodedata.normalize("NFKC", t).casefold().replace("'", "").replace("\u2019", "")
            out.extend(ids.get(w, 1) for w in word.findall(t))
        out = out[:max_len]
        return out + [0] * (max_len - len(out))

    return tokenize


def naive_pass(source_dir, vocab_path, image_size, batch_size, max_len, factor=1):
    """Reads files one by one, Pillow decode+resize, Python tokenisation, np.stack batches.

    `factor` goes over the training rows that many times (as the x`factor` records hold
    each image that many times).
    """
    from PIL import Image

    tokenize = _python_tokenizer(vocab_path)
    with open(os.path.join(source_dir, "comments.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    rows = [r for r in rows if r["split"] == "train"] * factor
    start = time.perf_counter()
    cpu = time.process_time()
    n = 0
    images, tokens, dists = [], [], []
    for row in rows:
        with open(row["image_path"], "rb") as f:
            data = f.read()
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        images.append(np.asarray(image, np.float32))
        tokens.append(tokenize([c["text"] for c in row["comments"]], max_len))
        votes = np.asarray(row["votes"], np.float32)
        dists.append(votes / max(votes.sum(), 1e-12))
        if len(images) == batch_size:
            batch = (np.stack(images), np.asarray(tokens, np.int32), np.stack(dists))
            n += batch[0].shape[0]
            images, tokens, dists = [], [], []
    return n, time.perf_counter() - start, time.process_time() - cpu


def make_pipeline(records_dir, image_size, batch_size, max_len, cache="auto", **kw):
    """The training dataset (default training config: seed None, tf.data may reorder).

    `cache="auto"` is the product default (`DataConfig.cache`): the benchmark's
    records fit in memory, so epochs after the first read decoded pixels from the
    cache; `cache=False` is the path of records too large to cache (AVA at 224 px).
    """
    from tfaesthetic.config import DataConfig
    from tfaesthetic.data import build_dataset

    config = DataConfig(records_dir=records_dir, image_size=image_size, global_batch_size=batch_size, max_len=max_len,
                        cache=cache, **kw)
    return build_dataset(config, is_training=True)


def pipeline_epoch(ds):
    """(examples, wall seconds, process CPU seconds: all tf.data threads included)."""
    start = time.perf_counter()
    cpu = time.process_time()
    n = 0
    for feats, _ in ds:
        n += int(feats["image"].shape[0])
    return n, time.perf_counter() - start, time.process_time() - cpu


def memory_pass(records_dir, image_size, batch_size):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, records_dir, str(image_size), str(batch_size)],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess failed on {records_dir}:\n{proc.stderr[-3000:]}")
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _peak(mem):
    """Peak RSS of the pass alone when the high-water mark could be reset, else of the process."""
    return mem["peak_rss_during_pass_mb"] or mem["peak_rss_process_mb"]


def _dir_bytes(path, predicate=lambda name: True):
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path) if predicate(n))


def throughput(records_dir, source_dir, vocab, image_size, batch_size, max_len, repeats, factor):
    """Paired naive/pipeline throughput at one image size.

    The machine may be shared, so load drifts: naive passes and pipeline epochs
    alternate and the ratio is taken per adjacent pair (median over pairs). The
    first of each warms the file cache and tf.data's autotuner and is not counted.
    Process CPU seconds per example are reported too: they do not depend on load.
    """
    from tfaesthetic.config import DataConfig
    from tfaesthetic.data.reader import should_cache
    from tfaesthetic.records.writer import read_manifest

    start = time.perf_counter()
    ds = make_pipeline(records_dir, image_size, batch_size, max_len)
    build_seconds = time.perf_counter() - start
    cached = should_cache(DataConfig(records_dir=records_dir, image_size=image_size, max_len=max_len),
                          read_manifest(records_dir), "train", True)
    uncached = make_pipeline(records_dir, image_size, batch_size, max_len, cache=False)
    first = pipeline_epoch(ds)
    pipeline_epoch(uncached)
    naive_pass(source_dir, vocab, image_size, batch_size, max_len, factor)
    naive, piped, raw = [], [], []
    for _ in range(repeats):
        naive.append(naive_pass(source_dir, vocab, image_size, batch_size, max_len, factor))
        piped.append(pipeline_epoch(ds))
        raw.append(pipeline_epoch(uncached))
    naive_rates = [n / s for n, s, _ in naive]
    pipe_rates = [n / s for n, s, _ in piped]
    raw_rates = [n / s for n, s, _ in raw]
    naive_cpu = float(np.median([c / n for n, _, c in naive]))
    pipe_cpu = float(np.median([c / n for n, _, c in piped]))
    raw_cpu = float(np.median([c / n for n, _, c in raw]))
    return {
        "image_size": image_size,
        "default_config_caches": bool(cached),
        "naive_examples_per_s": float(np.median(naive_rates)),
        "build_dataset_examples_per_s": float(np.median(pipe_rates)),
        "ratio": float(np.median([p / q for p, q in zip(pipe_rates, naive_rates)])),
        "ratio_definition": "median over alternating (naive pass, pipeline epoch, uncached pipeline epoch) rounds "
        "of pipeline/naive; the pipeline is build_dataset with the default DataConfig (cache='auto')",
        "no_cache_examples_per_s": float(np.median(raw_rates)),
        "no_cache_ratio": float(np.median([p / q for p, q in zip(raw_rates, naive_rates)])),
        "build_dataset_first_epoch_incl_construction_examples_per_s": first[0] / (first[1] + build_seconds),
        "first_epoch_ratio": (first[0] / (first[1] + build_seconds)) / float(np.median(naive_rates)),
        "build_dataset_construction_seconds": build_seconds,
        "naive_cpu_ms_per_example": 1000 * naive_cpu,
        "build_dataset_cpu_ms_per_example": 1000 * pipe_cpu,
        "no_cache_cpu_ms_per_example": 1000 * raw_cpu,
        "cpu_efficiency_ratio": naive_cpu / pipe_cpu,
        "no_cache_cpu_efficiency_ratio": naive_cpu / raw_cpu,
        "naive_runs": [{"examples": n, "seconds": s, "cpu_seconds": c} for n, s, c in naive],
        "build_dataset_runs": [{"examples": n, "seconds": s, "cpu_seconds": c} for n, s, c in piped],
        "no_cache_runs": [{"examples": n, "seconds": s, "cpu_seconds": c} for n, s, c in raw],
    }


REVIEW_FEATURES = ("image", "image_index", "user_index", "review")


def _timed_batches(ds, limit=None):
    """(time to first batch incl. iterator start, per-batch gaps after it, examples)."""
    start = time.perf_counter()
    it = iter(ds)
    gaps, n, last, first = [], 0, None, None
    for k, (feats, _) in enumerate(it):
        now = time.perf_counter()
        n += int(next(iter(feats.values())).shape[0])
        if first is None:
            first = now - start
        else:
            gaps.append(now - last)
        last = now
        if limit and k + 1 >= limit:
            break
    return first, gaps, n, time.perf_counter() - start


def review_mode(records_dir, image_size, batch_size, max_len, repeats):
    """CFAN's per-review pipeline against the image mode on the same records (cache off: the decode path).

    Examples/s of each (interleaved epochs), reviews per image, and the time to the
    first batch of a fresh iterator (dataset construction + the first batch).
    """
    modes = {
        "image": dict(mode="image", features=("image", "tokens")),
        "review": dict(mode="review", features=REVIEW_FEATURES),
    }
    out = {}
    runs = {m: [] for m in modes}
    firsts = {m: [] for m in modes}
    for _ in range(repeats + 1):
        for m, kw in modes.items():
            start = time.perf_counter()
            ds = make_pipeline(records_dir, image_size, batch_size, max_len, cache=False, **kw)
            construct = time.perf_counter() - start
            first, gaps, n, seconds = _timed_batches(ds)
            runs[m].append(n / seconds)
            firsts[m].append(construct + first)
    for m in modes:
        out[m] = {"examples_per_s": float(np.median(runs[m][1:])), "time_to_first_batch_s": float(np.median(firsts[m][1:])),
                  "runs_examples_per_s": runs[m][1:]}
    out["review_over_image_examples_per_s"] = float(
        np.median([r / i for r, i in zip(runs["review"][1:], runs["image"][1:])]))
    return out


def _write_big_review_records(out_dir, rows, manifest, big_reviews=125, factor=2):
    """Records of `rows` x `factor` where the first training image has `big_reviews` rated reviews (AVA's maximum)."""
    import copy

    rows = [copy.deepcopy(r) for r in rows]
    big = next(r for r in rows if r["split"] == "train")
    template = big["comments"] or [dict(text="nice light and colours", user=0, sentiment=3, rating=1)]
    big["comments"] = [dict(template[k % len(template)], user=k % max(1, manifest["num_users"]), rating=k % 2)
                       for k in range(big_reviews)]
    _write_scaled_records(out_dir, rows, manifest, factor)
    return big["image_id"]


def review_stall(records_dir, image_size, batch_size, max_len, rounds=3):
    """Per-batch delivery times of the review-mode training pipeline when one image has 125 reviews.

    The image's reviews come out of `flat_map` one by one behind its single decode;
    a stall would show as a batch gap far above the median. Reported: the largest
    gap over the median gap, and the time to the first batch.
    """
    gaps, firsts = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        ds = make_pipeline(records_dir, image_size, batch_size, max_len, cache=False, mode="review",
                           features=REVIEW_FEATURES)
        construct = time.perf_counter() - start
        first, g, _, _ = _timed_batches(ds)
        gaps.extend(g)
        firsts.append(construct + first)
    median = float(np.median(gaps))
    return {"batches": len(gaps) + rounds, "median_batch_gap_ms": 1e3 * median, "max_batch_gap_ms": 1e3 * max(gaps),
            "p99_batch_gap_ms": 1e3 * float(np.percentile(gaps, 99)), "max_over_median": max(gaps) / median,
            "time_to_first_batch_s": float(np.median(firsts))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records_dir", default="", help="existing records; default: build demo records")
    parser.add_argument("--num_images", type=int, default=800)
    parser.add_argument(
        "--image_sizes", default="64,224",
        help="comma-separated sizes: 64 is the demo experiments' input (no resize), 224 VGG16's (upscaled)",
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_len", type=int, default=64, help="64: the demo experiments' max_len")
    parser.add_argument("--repeats", type=int, default=3, help="timed (naive, pipeline) pairs after a warm-up")
    parser.add_argument("--memory_factor", type=int, default=4)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.image_sizes.split(",") if s.strip()]

    import tensorflow as tf

    work = tempfile.mkdtemp(prefix="tfaesthetic-bench-")
    records_dir = args.records_dir
    kind = "given"
    if not records_dir:
        records_dir = os.path.join(work, "records")
        t = time.perf_counter()
        kind = _build_records(records_dir, args.num_images, seed=0)
        print(f"built {kind} records in {time.perf_counter() - t:.1f} s: {records_dir}")
    manifest, rows = _read_records(records_dir)
    source_dir = os.path.join(work, "source")
    source_bytes = _write_source(source_dir, rows)
    records_bytes = _dir_bytes(records_dir, lambda n: n.endswith(".tfrecord"))
    records_total = _dir_bytes(records_dir)
    vocab = os.path.join(records_dir, "vocab.txt")

    # Throughput is measured on the x`memory_factor` records (each image repeated
    # under new ids) so that an epoch is long enough to amortise the per-epoch start
    # (file opening, filling the shuffle buffer); the naive loop goes over the
    # source rows as many times.
    big_dir = os.path.join(work, f"records_x{args.memory_factor}")
    small_dir = os.path.join(work, "records_x1")
    _write_scaled_records(small_dir, rows, manifest, 1)
    _write_scaled_records(big_dir, rows, manifest, args.memory_factor)
    speeds = [
        throughput(big_dir, source_dir, vocab, size, args.batch_size, args.max_len, args.repeats, args.memory_factor)
        for size in sizes
    ]

    review = review_mode(small_dir, sizes[0], args.batch_size, args.max_len, args.repeats)
    big_dir = os.path.join(work, "records_125_reviews")
    big_id = _write_big_review_records(big_dir, rows, manifest, 125)
    stall = review_stall(big_dir, sizes[0], args.batch_size, args.max_len)
    stall["image_with_125_reviews"] = big_id

    mem_small = memory_pass(small_dir, sizes[-1], args.batch_size)
    mem_big = memory_pass(big_dir, sizes[-1], args.batch_size)

    n_train = manifest["splits"]["train"]
    result = {
        "host": socket.gethostname(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "records": kind,
        "num_images": len(rows),
        "train_examples": n_train,
        "throughput_train_examples_per_epoch": n_train * args.memory_factor,
        "batch_size": args.batch_size,
        "max_len": args.max_len,
        "throughput": speeds,
        "review_mode": dict(review, image_size=sizes[0]),
        "review_stall": dict(stall, image_size=sizes[0]),
        "memory": {
            "image_size": sizes[-1],
            "x1": dict(mem_small, train_images=n_train),
            f"x{args.memory_factor}": dict(mem_big, train_images=n_train * args.memory_factor),
            "growth_ratio": _peak(mem_big) / _peak(mem_small),
        },
        "size": {
            "source_bytes": source_bytes,
            "shard_bytes": records_bytes,
            "records_dir_bytes": records_total,
            "shards_over_source": records_bytes / source_bytes,
        },
        "targets": {"ratio_min": 4.0, "memory_growth_max": 1.10},
    }

    rows_out = []
    for sp in speeds:
        px = f"{sp['image_size']}px"
        rows_out += [
            (f"[{px}] naive (files + Pillow + Python tokens)", f"{sp['naive_examples_per_s']:,.0f} ex/s"),
            (f"[{px}] build_dataset (train branch)", f"{sp['build_dataset_examples_per_s']:,.0f} ex/s"),
            (f"[{px}] ratio, default config (cache {'on' if sp['default_config_caches'] else 'off'}) (target >= 4x)",
             f"{sp['ratio']:.2f}x"),
            (f"[{px}] ratio, cache off (records larger than memory)", f"{sp['no_cache_ratio']:.2f}x"),
            (f"[{px}] ratio, first epoch incl. construction", f"{sp['first_epoch_ratio']:.2f}x"),
            (f"[{px}] build_dataset, 1st epoch incl. construction",
             f"{sp['build_dataset_first_epoch_incl_construction_examples_per_s']:,.0f} ex/s"),
            (f"[{px}] CPU ms/example: naive / build_dataset / cache off",
             f"{sp['naive_cpu_ms_per_example']:.2f} / {sp['build_dataset_cpu_ms_per_example']:.2f} / "
             f"{sp['no_cache_cpu_ms_per_example']:.2f}"),
        ]
    rows_out += [
        (f"[{sizes[0]}px] review mode / image mode examples/s (cache off)",
         f"{review['review_over_image_examples_per_s']:.2f}x ({review['review']['examples_per_s']:,.0f} vs "
         f"{review['image']['examples_per_s']:,.0f} ex/s)"),
        (f"[{sizes[0]}px] time to first batch: review / image mode",
         f"{review['review']['time_to_first_batch_s']:.2f} / {review['image']['time_to_first_batch_s']:.2f} s"),
        (f"[{sizes[0]}px] one image with 125 reviews: max / median batch gap",
         f"{stall['max_over_median']:.1f}x ({stall['max_batch_gap_ms']:.1f} / {stall['median_batch_gap_ms']:.1f} ms, "
         f"p99 {stall['p99_batch_gap_ms']:.1f} ms)"),
        (f"peak RSS during a pass, {n_train} train images", f"{_peak(mem_small):,.0f} MB "
         f"(before the pass {mem_small['rss_before_pass_mb']:,.0f} MB)"),
        (f"peak RSS during a pass, {n_train * args.memory_factor} train images", f"{_peak(mem_big):,.0f} MB "
         f"(before the pass {mem_big['rss_before_pass_mb']:,.0f} MB)"),
        ("memory growth (target flat)", f"{result['memory']['growth_ratio']:.3f}x"),
        ("source bytes (images + comments.jsonl)", f"{source_bytes:,}"),
        ("shard bytes", f"{records_bytes:,} ({records_bytes / source_bytes:.2f}x source)"),
    ]
    width = max(len(a) for a, _ in rows_out)
    print(f"\ninput pipeline, {len(rows)} {kind} images, batch {args.batch_size}, max_len {args.max_len}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for a, b in rows_out:
        print(f"  {a:<{width}}  {b}")

    os.makedirs(args.out, exist_ok=True)
    name = f"pipeline-{socket.gethostname()}-{datetime.date.today().isoformat()}.json"
    path = os.path.join(args.out, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
